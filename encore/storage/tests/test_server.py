"""Tests for encore.storage.server: the HTTP protocol, bad input, streaming and waitress."""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import json
import socket
import threading
import tracemalloc
import unittest

import pytest

from encore.storage.abstract_store import AbstractStore, StoreError, Value
from encore.storage.dict_memory_store import DictMemoryStore
from encore.storage.server import StoreApplication, StoreServer, password_checker
from encore.storage.tests.abstract_test import TEST1_MD, populate_fixture
from encore.storage.utils import BufferIteratorIO

pytestmark = pytest.mark.timeout(120)


def raw_request(port: int, data: bytes, shutdown: bool = True, timeout: float = 10) -> bytes:
    """Send raw bytes to the server and return everything it answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        if shutdown:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def json_body(response: bytes) -> dict:
    return json.loads(response.split(b"\r\n\r\n", 1)[1])


class ServerTestCase(unittest.TestCase):
    options: dict = {}

    def setUp(self) -> None:
        self.store = DictMemoryStore()
        self.store.connect()
        populate_fixture(self.store)
        self.server = StoreServer(self.store, **self.options).start()
        self.port = self.server.port

    def tearDown(self) -> None:
        self.server.stop()

    def request(self, method: str, path: str, body=None, headers=None):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    def snapshot(self) -> dict:
        return {key: (self.store.to_bytes(key), self.store.get_metadata(key))
                for key in self.store.query_keys()}


class ProtocolTest(ServerTestCase):
    def test_get_data_headers(self) -> None:
        status, headers, body = self.request("GET", "/store/test1/data")
        assert status == 200
        assert body == b"test2\n"
        assert headers["Content-Length"] == "6"
        assert headers["Content-Type"] == "application/octet-stream"
        assert headers["Accept-Ranges"] == "bytes"
        assert headers["ETag"].startswith('W/"')
        assert "GMT" in headers["Last-Modified"]

    def test_head(self) -> None:
        status, headers, body = self.request("HEAD", "/store/test1/data")
        assert status == 200
        assert headers["Content-Length"] == "6"
        assert body == b""

    def test_if_none_match(self) -> None:
        _, headers, _ = self.request("GET", "/store/test1/data")
        status, _, body = self.request("GET", "/store/test1/data",
                                       headers={"If-None-Match": headers["ETag"]})
        assert status == 304 and body == b""
        self.store.from_bytes("test1", b"changed")
        status, _, body = self.request("GET", "/store/test1/data",
                                       headers={"If-None-Match": headers["ETag"]})
        assert status == 200 and body == b"changed"

    def test_ranges(self) -> None:
        self.store.from_bytes("r", b"0123456789")
        cases = {
            "bytes=2-4": (206, b"234", "bytes 2-4/10"),
            "bytes=7-": (206, b"789", "bytes 7-9/10"),
            "bytes=-3": (206, b"789", "bytes 7-9/10"),
            "bytes=5-100": (206, b"56789", "bytes 5-9/10"),
            "bytes=0-0": (206, b"0", "bytes 0-0/10"),
            "bytes=0-1,4-5": (200, b"0123456789", None),  # multiple ranges: ignored
            "bytes=5-2": (200, b"0123456789", None),  # invalid: ignored
            "lines=1-2": (200, b"0123456789", None),
        }
        for header, (status, body, content_range) in cases.items():
            got_status, headers, got_body = self.request("GET", "/store/r/data",
                                                         headers={"Range": header})
            assert (got_status, got_body) == (status, body), header
            assert headers.get("Content-Range") == content_range, header
            assert headers["Content-Length"] == str(len(body))
        for header in ("bytes=10-", "bytes=20-30", "bytes=-0"):
            status, headers, body = self.request("GET", "/store/r/data", headers={"Range": header})
            assert status == 416, header
            assert headers["Content-Range"] == "bytes */10"
        # The static data URL honours ranges too.
        status, headers, body = self.request("GET", "/data/r", headers={"Range": "bytes=1-2"})
        assert (status, body, headers["Content-Range"]) == (206, b"12", "bytes 1-2/10")

    def test_metadata_round_trip(self) -> None:
        status, headers, body = self.request("GET", "/store/test1/metadata")
        assert status == 200
        assert headers["Content-Type"] == "application/json"
        assert json.loads(body) == TEST1_MD
        status, _, _ = self.request("PUT", "/store/test1/metadata", json.dumps({"a": 1}),
                                    {"Content-Type": "application/json"})
        assert status == 204
        assert self.store.get_metadata("test1") == {"a": 1}
        status, _, _ = self.request("POST", "/store/test1/metadata", json.dumps({"b": 2}))
        assert status == 204
        assert self.store.get_metadata("test1") == {"a": 1, "b": 2}
        assert self.store.to_bytes("test1") == b"test2\n"

    def test_put_data_and_delete(self) -> None:
        status, _, _ = self.request("PUT", "/store/new/data", b"payload")
        assert status == 204
        assert self.store.to_bytes("new") == b"payload"
        status, _, _ = self.request("DELETE", "/store/new")
        assert status == 204
        assert not self.store.exists("new")
        status, _, body = self.request("DELETE", "/store/new")
        assert status == 404
        assert json.loads(body)["status"] == 404

    def test_chunked_upload(self) -> None:
        body = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        response = raw_request(self.port, b"PUT /store/chunked/data HTTP/1.1\r\nHost: x\r\n"
                               b"Transfer-Encoding: chunked\r\n\r\n" + body)
        assert status_of(response) == 204
        assert self.store.to_bytes("chunked") == b"hello world"

    def test_query(self) -> None:
        status, headers, body = self.request("GET", '/query?query_test2=3',
                                             headers={"Accept": "application/json"})
        assert status == 200
        assert headers["Content-Type"] == "application/json"
        assert json.loads(body) == ["key3"]
        status, headers, body = self.request("GET", "/query?query_test1=%22value%22")
        assert headers["Content-Type"].startswith("text/plain")
        assert sorted(body.decode().split()) == [f"key{i}" for i in range(10)]
        status, _, body = self.request("GET", "/query?nothing=1",
                                       headers={"Accept": "application/json"})
        assert json.loads(body) == []

    def test_index(self) -> None:
        status, headers, body = self.request("GET", "/index.json")
        assert status == 200
        index = json.loads(body)
        assert index["test1"] == TEST1_MD
        assert set(index) == set(self.store.query_keys())

    def test_key_is_everything_before_the_part(self) -> None:
        self.store.from_bytes("a/data", b"x")
        status, _, body = self.request("GET", "/store/a%2Fdata/data")
        assert (status, body) == (200, b"x")
        status, _, body = self.request("GET", "/store/a/data/data")  # unencoded slash
        assert (status, body) == (200, b"x")
        status, _, body = self.request("GET", "/data/a/data")
        assert (status, body) == (200, b"x")

    def test_key_is_decoded_once(self) -> None:
        self.store.from_bytes("100%25", b"literal")
        status, _, body = self.request("GET", "/store/100%2525/data")
        assert (status, body) == (200, b"literal")
        status, _, _ = self.request("GET", "/store/100%25/data")
        assert status == 404

    def test_unicode_key(self) -> None:
        self.store.from_bytes("caf\u00e9 \U0001f389", b"u")
        status, _, body = self.request("GET", "/store/caf%C3%A9%20%F0%9F%8E%89/data")
        assert (status, body) == (200, b"u")

    def test_error_bodies(self) -> None:
        status, headers, body = self.request("GET", "/store/missing/data")
        assert status == 404
        assert headers["Content-Type"] == "application/json"
        error = json.loads(body)
        assert error["status"] == 404 and error["error"] == "Not Found"
        assert "missing" in error["message"]
        for path in ("/", "/nothing", "/store/k/unknown-part", "/store/nopart"):
            status, _, body = self.request("GET", path)
            assert status == 404, path
            assert json.loads(body)["status"] == 404

    def test_methods_not_allowed(self) -> None:
        for method, path in [("POST", "/store/test1/data"), ("PUT", "/index.json"),
                             ("DELETE", "/query"), ("PUT", "/data/test1"),
                             ("PATCH", "/store/test1/metadata")]:
            status, headers, body = self.request(method, path, b"{}")
            assert status == 405, (method, path)
            assert "GET" in headers["Allow"]
            assert json.loads(body)["status"] == 405

    def test_permissions_of_plain_store_are_forbidden(self) -> None:
        status, _, body = self.request("GET", "/store/test1/auth")
        assert status == 403
        status, _, body = self.request("GET", "/store/missing/auth")
        assert status == 404
        status, _, body = self.request("PUT", "/store/test1/auth", b'{"owned": ["a"]}')
        assert status == 403
        status, _, body = self.request("PUT", "/store/test1/auth", b'{"owned": "a"}')
        assert status == 400

    def test_custom_parts(self) -> None:
        app = StoreApplication(self.store, parts={"data": "d", "metadata": "m",
                                                  "permissions": "p"})
        with StoreServer(app) as server:
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            connection.request("GET", "/store/test1/d")
            assert connection.getresponse().read() == b"test2\n"
            connection.close()
        with pytest.raises(ValueError):
            StoreApplication(self.store, parts={"data": "d"})


class ConnectionTest(ServerTestCase):
    """HTTP/1.1 keep-alive, framing and shutdown of the embedded server."""

    def test_keep_alive(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request("GET", "/store/test1/data")
            first = connection.getresponse()
            assert first.version == 11 and not first.will_close
            assert first.read() == b"test2\n"
            sock = connection.sock
            connection.request("PUT", "/store/k/data", body=b"kept")
            second = connection.getresponse()
            assert second.status == 204 and second.getheader("Content-Length") is None
            second.read()
            connection.request("GET", "/store/k/data")
            assert connection.getresponse().read() == b"kept"
            assert connection.sock is sock  # one connection for all three
        finally:
            connection.close()

    def test_pipelined_requests_respect_content_length(self) -> None:
        response = raw_request(
            self.port,
            b"PUT /store/p/data HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
            b"GET /store/p/data HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert response.count(b"HTTP/1.1 ") == 2
        assert response.startswith(b"HTTP/1.1 204")
        assert response.endswith(b"hello")
        assert self.store.to_bytes("p") == b"hello"

    def test_unread_body_of_refused_request_closes(self) -> None:
        response = raw_request(self.port, b"POST /store/test1/data HTTP/1.1\r\nHost: x\r\n"
                               b"Content-Length: 100\r\n\r\n", shutdown=False)
        assert status_of(response) == 405
        assert b"Connection: close" in response

    def test_expect_continue(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(b"PUT /store/e/data HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                         b"Expect: 100-continue\r\n\r\n")
            assert sock.recv(1024) == b"HTTP/1.1 100 Continue\r\n\r\n"
            sock.sendall(b"body")
            assert sock.recv(1024).startswith(b"HTTP/1.1 204")
        assert self.store.to_bytes("e") == b"body"
        # A refused upload gets its final answer without a go-ahead.
        response = raw_request(self.port, b"PUT /index.json HTTP/1.1\r\nHost: x\r\n"
                               b"Content-Length: 4\r\nExpect: 100-continue\r\n\r\n",
                               shutdown=False)
        assert response.startswith(b"HTTP/1.1 405")
        assert b"Connection: close" in response

    def test_stop_closes_kept_alive_connections(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        connection.request("GET", "/store/test1/data")
        assert connection.getresponse().read() == b"test2\n"
        self.server.stop()
        with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
            connection.request("GET", "/store/test1/data")
            connection.getresponse().read()
        connection.close()


class BadInputTest(ServerTestCase):
    """Bad requests get the right status and leave the served store unchanged."""

    options = {"max_body_size": 1000, "max_json_size": 200}

    def assert_rejected(self, status: int, response: bytes) -> None:
        assert status_of(response) == status, response[:300]
        assert json_body(response)["status"] == status

    def test_malformed_json(self) -> None:
        before = self.snapshot()
        for body in (b"{bad", b"[1, 2]", b'"text"', b"\xff\xfe", b""):
            for method in ("PUT", "POST"):
                status, _, response = self.request(method, "/store/test1/metadata", body)
                assert status == 400, (method, body)
                assert json.loads(response)["status"] == 400
        assert self.snapshot() == before

    def test_bad_query(self) -> None:
        for query in ("a={bad", "a=1&a=2", "a=%ff", "a=undefined"):
            status, _, body = self.request("GET", "/query?" + query)
            assert status == 400, query
            assert json.loads(body)["status"] == 400

    def test_huge_content_length(self) -> None:
        before = self.snapshot()
        response = raw_request(self.port, b"PUT /store/test1/data HTTP/1.1\r\nHost: x\r\n"
                               b"Content-Length: 1000000000000000\r\n\r\nabc", shutdown=False)
        self.assert_rejected(413, response)
        response = raw_request(self.port, b"PUT /store/test1/metadata HTTP/1.1\r\nHost: x\r\n"
                               b"Content-Length: 201\r\n\r\n{}", shutdown=False)
        self.assert_rejected(413, response)
        assert self.snapshot() == before

    def test_body_over_limit(self) -> None:
        before = self.snapshot()
        status, _, _ = self.request("PUT", "/store/test1/data", b"x" * 1001)
        assert status == 413
        status, _, _ = self.request("PUT", "/store/test1/data", b"x" * 1000)
        assert status == 204
        assert self.store.to_bytes("test1") == b"x" * 1000
        self.store.from_bytes("test1", b"test2\n")
        chunk = b"400\r\n" + b"y" * 0x400 + b"\r\n"
        response = raw_request(self.port, b"PUT /store/test1/data HTTP/1.1\r\nHost: x\r\n"
                               b"Transfer-Encoding: chunked\r\n\r\n" + chunk + b"0\r\n\r\n")
        self.assert_rejected(413, response)
        assert self.snapshot() == before

    def test_truncated_upload(self) -> None:
        before = self.snapshot()
        response = raw_request(self.port, b"PUT /store/test1/data HTTP/1.1\r\nHost: x\r\n"
                               b"Content-Length: 100\r\n\r\nonly ten b")
        self.assert_rejected(400, response)
        response = raw_request(self.port, b"PUT /store/test3/data HTTP/1.1\r\nHost: x\r\n"
                               b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n10\r\nshort")
        self.assert_rejected(400, response)
        response = raw_request(self.port, b"PUT /store/test3/data HTTP/1.1\r\nHost: x\r\n"
                               b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n")
        self.assert_rejected(400, response)
        response = raw_request(self.port, b"PUT /store/test1/metadata HTTP/1.1\r\nHost: x\r\n"
                               b"Content-Length: 50\r\n\r\n{\"a\": 1}")
        self.assert_rejected(400, response)
        assert self.snapshot() == before

    def test_invalid_content_length(self) -> None:
        response = raw_request(self.port, b"PUT /store/test1/data HTTP/1.1\r\nHost: x\r\n"
                               b"Content-Length: -5\r\n\r\n")
        self.assert_rejected(400, response)

    def test_path_tricks(self) -> None:
        before = self.snapshot()
        for path in (b"/store/%2e%2e%2findex.json/data", b"/data/%2e%2e/index.json",
                     b"/data/../index.json", b"/store/../index.json",
                     b"/data/%2e%2e%2f%2e%2e%2fetc",
                     b"/data/../../../../etc/passwd", b"/store/..%2f..%2fetc%2fpasswd/data"):
            response = raw_request(self.port, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            assert status_of(response) == 404, path
            assert b"root:" not in response
        assert self.snapshot() == before
        # A dot-dot key is just a key: stored under exactly that name.
        status, _, _ = self.request("PUT", "/store/%2e%2e%2fescape/data", b"v")
        assert status == 204
        assert self.store.to_bytes("../escape") == b"v"
        after = self.snapshot()
        del after["../escape"]
        assert after == before

    def test_invalid_utf8_key(self) -> None:
        before = self.snapshot()
        for request in (b"GET /store/%ff/data", b"PUT /store/%C3%28/data", b"DELETE /store/%80",
                        b"GET /data/%fe"):
            response = raw_request(self.port, request + b" HTTP/1.1\r\nHost: x\r\n"
                                   b"Content-Length: 1\r\n\r\nx")
            self.assert_rejected(400, response)
        assert self.snapshot() == before


class ReadOnlyTest(ServerTestCase):
    options = {"read_only": True}

    def test_writes_are_refused(self) -> None:
        before = self.snapshot()
        for method, path in [("PUT", "/store/test1/data"), ("PUT", "/store/test1/metadata"),
                             ("POST", "/store/test1/metadata"), ("DELETE", "/store/test1"),
                             ("PUT", "/store/test1/auth")]:
            status, headers, body = self.request(method, path, b"{}")
            assert status == 405, (method, path)
            # /store/<key> only has DELETE, so nothing is allowed there.
            assert headers["Allow"] == ("" if method == "DELETE" else "GET, HEAD")
            assert "read-only" in json.loads(body)["message"]
        assert self.snapshot() == before
        status, _, body = self.request("GET", "/store/test1/data")
        assert (status, body) == (200, b"test2\n")


class AuthTest(ServerTestCase):
    options = {"authenticate": password_checker({"alice": "s3cret", "b\u00f6b": "p\u00e4ss"})}

    @staticmethod
    def basic(user: str, password: str) -> dict:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    def test_credentials(self) -> None:
        status, headers, _ = self.request("GET", "/store/test1/data")
        assert status == 401
        assert headers["WWW-Authenticate"].startswith('Basic realm="encore.storage"')
        for headers in (self.basic("alice", "wrong"), self.basic("mallory", "s3cret"),
                        {"Authorization": "Basic !!!"}, {"Authorization": "Bearer x"},
                        {"Authorization": "Basic " + base64.b64encode(b"nocolon").decode()}):
            status, _, _ = self.request("GET", "/store/test1/data", headers=headers)
            assert status == 401, headers
        status, _, body = self.request("GET", "/store/test1/data",
                                       headers=self.basic("alice", "s3cret"))
        assert (status, body) == (200, b"test2\n")
        status, _, _ = self.request("GET", "/index.json",
                                    headers=self.basic("b\u00f6b", "p\u00e4ss"))
        assert status == 200

    def test_unauthenticated_writes_change_nothing(self) -> None:
        before = self.snapshot()
        status, _, _ = self.request("PUT", "/store/test1/data", b"evil")
        assert status == 401
        status, _, _ = self.request("DELETE", "/store/test1")
        assert status == 401
        assert self.snapshot() == before

    def test_dynamic_client_with_session_auth(self) -> None:
        requests = pytest.importorskip("requests")
        from encore.storage.dynamic_url_store import DynamicURLStore

        session = requests.Session()
        session.auth = ("alice", "s3cret")
        client = DynamicURLStore(self.server.base_url, self.server.query_url, timeout=10)
        client.connect(("alice", session))
        assert client.to_bytes("test1") == b"test2\n"
        session.close()


class SimpleAuthStoreAuthTest(unittest.TestCase):
    """authenticate=SimpleAuthStore: user records checked, and hidden when served."""

    def setUp(self) -> None:
        from encore.storage.simple_auth_store import (
            SimpleAuthStore,
            make_encoder,
            set_user_password,
        )

        self.store = DictMemoryStore()
        self.store.connect()
        populate_fixture(self.store)
        set_user_password(self.store, "alice", "s3cret")  # a modern (scrypt) record
        set_user_password(self.store, "bob", "legacy", encoder=make_encoder(b"salt"))
        self.record = self.store.to_bytes(".user_alice")
        auth = SimpleAuthStore(self.store, make_encoder(b"salt"))
        self.server = StoreServer(self.store, authenticate=auth).start()
        self.addCleanup(self.server.stop)

    def request(self, method: str, path: str, user: str | None = None,
                password: str = "", body: bytes | None = None):
        headers = {}
        if user is not None:
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        connection = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def test_users_are_checked(self) -> None:
        assert self.request("GET", "/store/test1/data")[0] == 401
        assert self.request("GET", "/store/test1/data", "alice", "wrong")[0] == 401
        assert self.request("GET", "/store/test1/data", "nobody", "s3cret")[0] == 401
        assert self.request("GET", "/store/test1/data", "alice", "s3cret") == (200, b"test2\n")
        # Cached after the first (slow) check, and still right.
        assert self.request("GET", "/store/test1/data", "alice", "s3cret")[0] == 200
        assert self.request("GET", "/store/test1/data", "bob", "legacy")[0] == 200

    def test_user_records_are_hidden(self) -> None:
        ok = ("alice", "s3cret")
        assert self.request("GET", "/store/.user_alice/data", *ok)[0] == 404
        assert self.request("GET", "/data/.user_bob", *ok)[0] == 404
        assert self.request("PUT", "/store/.user_alice/data", *ok, body=b"evil")[0] == 404
        assert self.request("DELETE", "/store/.user_bob", *ok)[0] == 404
        _, index = self.request("GET", "/index.json", *ok)
        assert not [key for key in json.loads(index) if key.startswith(".user_")]
        _, keys = self.request("GET", "/query", *ok)
        assert b".user_" not in keys and b"test1" in keys
        assert self.store.to_bytes(".user_alice") == self.record
        assert self.store.exists(".user_bob")

    def test_changed_record_invalidates_cache(self) -> None:
        from encore.storage.simple_auth_store import set_user_password

        assert self.request("GET", "/index.json", "alice", "s3cret")[0] == 200
        set_user_password(self.store, "alice", "new password")
        assert self.request("GET", "/index.json", "alice", "s3cret")[0] == 401
        assert self.request("GET", "/index.json", "alice", "new password")[0] == 200


def test_authenticate_must_be_callable_or_auth_store() -> None:
    with pytest.raises(TypeError):
        StoreApplication(DictMemoryStore(), authenticate="alice:secret")


def test_password_checker() -> None:
    check = password_checker({"u": "p"})
    assert check("u", "p")
    assert not check("u", "q")
    assert not check("v", "p")
    assert not check("u", "")


class _GeneratedValue(Value):
    """A value of *size* pattern bytes produced on the fly (never held in memory)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.created = self.modified = 1.0e9

    @staticmethod
    def chunks(size: int, start: int = 0):
        block = bytes(range(256)) * 4096  # 1 MiB
        position = start
        while position < size:
            offset = position % len(block)
            piece = block[offset:offset + min(len(block) - offset, size - position)]
            position += len(piece)
            yield piece

    @property
    def data(self):
        return BufferIteratorIO(self.chunks(self.size))

    @property
    def metadata(self):
        return {}

    def range(self, start=None, end=None):
        end = self.size if end is None else min(end, self.size)
        return BufferIteratorIO(self.chunks(end, start or 0))


class _StreamingStore(AbstractStore):
    """A store that generates one large value and hashes uploads without keeping them."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        self.uploads: dict[str, tuple[int, str]] = {}

    def get(self, key):
        if key != "big":
            raise KeyError(key)
        return _GeneratedValue(self.size)

    def query(self, select=None, **kwargs):
        return iter([("big", {})])

    def set(self, key, value, buffer_size=1048576):
        data, _, _ = self._unpack_value(value)
        digest, total = hashlib.sha256(), 0
        for chunk in iter(lambda: data.read(buffer_size), b""):
            digest.update(chunk)
            total += len(chunk)
        self.uploads[key] = (total, digest.hexdigest())

    def set_data(self, key, data, buffer_size=1048576):
        self.set(key, (data, {}), buffer_size)

    def delete(self, key):
        raise KeyError(key)


def test_values_stream_in_bounded_memory() -> None:
    requests = pytest.importorskip("requests")
    size = 64 * 1048576
    store = _StreamingStore(size)
    expected = hashlib.sha256()
    for chunk in _GeneratedValue.chunks(size):
        expected.update(chunk)
    with StoreServer(store) as server:
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            digest = hashlib.sha256()
            with requests.get(server.base_url + "/big/data", stream=True, timeout=30) as response:
                assert response.headers["Content-Length"] == str(size)
                for chunk in response.iter_content(1048576):
                    digest.update(chunk)
            assert digest.hexdigest() == expected.hexdigest()
            download_peak = tracemalloc.get_traced_memory()[1] - base
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            body = BufferIteratorIO(_GeneratedValue.chunks(size))
            response = requests.put(server.base_url + "/up/data", data=body, timeout=30)
            assert response.status_code == 204
            upload_peak = tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()
    assert store.uploads["up"] == (size, expected.hexdigest())
    # Both directions together stay far below the value's size.
    assert download_peak < 16 * 1048576, download_peak
    assert upload_peak < 16 * 1048576, upload_peak


def test_store_errors_become_json_500() -> None:
    class Broken(DictMemoryStore):
        def get_metadata(self, key, select=None):
            raise StoreError("database on fire")

    store = Broken()
    store.connect()
    with StoreServer(store) as server:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        connection.request("GET", "/store/k/metadata")
        response = connection.getresponse()
        assert response.status == 500
        body = json.loads(response.read())
        assert body["status"] == 500
        assert "fire" not in body["message"]  # internals are logged, not sent
        connection.close()


def test_threads_do_not_leak_after_stop() -> None:
    server = StoreServer(DictMemoryStore()).start()
    thread = server._thread
    server.stop()
    assert thread is not None and not thread.is_alive()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()


def test_waitress() -> None:
    waitress = pytest.importorskip("waitress")
    pytest.importorskip("requests")
    from encore.storage.dynamic_url_store import DynamicURLStore
    from encore.storage.static_url_store import StaticURLStore

    store = DictMemoryStore()
    store.connect()
    populate_fixture(store)
    server = waitress.create_server(StoreApplication(store), host="127.0.0.1", port=0,
                                    threads=4)
    stop = threading.Event()

    def run() -> None:
        # server.run() has no stop call; closing its sockets under the loop
        # races, so run the loop in short turns and close after it ends.
        from waitress import wasyncore

        while not stop.is_set():
            wasyncore.loop(timeout=0.05, map=server._map, count=1)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        root = f"http://127.0.0.1:{server.effective_port}"
        client = DynamicURLStore(root + "/store", root + "/query", timeout=10)
        client.connect()
        assert client.to_bytes("test1") == b"test2\n"
        assert client.get_metadata("test1") == TEST1_MD
        with client.get_data_range("test1", 1, 3) as data:
            assert data.read() == b"es"
        client.set("new/key", (BufferIteratorIO(iter([b"chunk", b"ed"])), {"a": 1}))  # chunked
        assert store.to_bytes("new/key") == b"chunked"
        client.from_bytes("sized", b"x" * 100000)
        assert store.to_bytes("sized") == b"x" * 100000
        assert sorted(client.query_keys(a=1)) == ["new/key"]
        client.delete("new/key")
        assert not store.exists("new/key")
        static = StaticURLStore(root + "/", "data/", "index.json", poll=0, timeout=10)
        static.connect()
        assert static.get_metadata("test1") == TEST1_MD
        assert static.to_bytes("sized") == b"x" * 100000
        static.disconnect()
        client.disconnect()
    finally:
        stop.set()
        thread.join(10)
        from waitress import wasyncore

        wasyncore.close_all(server._map)  # the listener and any kept-alive connection
        server.task_dispatcher.shutdown()
    assert not thread.is_alive()


def test_streamed_index_is_valid_json_for_many_keys() -> None:
    store = DictMemoryStore()
    store.connect()
    for i in range(5000):
        store.set(f"k{i}", (io.BytesIO(b""), {"i": i, "pad": "x" * 100}))
    with StoreServer(store) as server:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        connection.request("GET", "/index.json")
        index = json.loads(connection.getresponse().read())
        connection.close()
    assert len(index) == 5000
    assert index["k4999"] == {"i": 4999, "pad": "x" * 100}
