"""Tests for DynamicURLStore, run against encore.storage.server over loopback sockets."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import threading
import unittest

import pytest

requests = pytest.importorskip("requests")

from encore.storage.abstract_store import AuthorizationError, StoreError  # noqa: E402
from encore.storage.dict_memory_store import DictMemoryStore  # noqa: E402
from encore.storage.dynamic_url_store import (  # noqa: E402
    DynamicURLStore,
    HTTPStoreError,
    RequestsURLValue,
)
from encore.storage.server import StoreApplication, StoreServer  # noqa: E402
from encore.storage.tests.abstract_test import (  # noqa: E402
    TEST1_MD,
    StoreBadInputTestMixin,
    StoreKeysTestMixin,
    StoreLargeValueTestMixin,
    StoreReadTestMixin,
    StoreWriteTestMixin,
    populate_fixture,
)

pytestmark = pytest.mark.timeout(120)


class _ServedStoreTest(unittest.TestCase):
    """One server per class; each test gets a fresh served DictMemoryStore."""

    server: StoreServer

    @classmethod
    def setUpClass(cls) -> None:
        cls.server = StoreServer(DictMemoryStore()).start()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.server.stop()

    def make_served_store(self):
        store = DictMemoryStore()
        store.connect()
        populate_fixture(store)
        return store

    def setUp(self) -> None:
        self.served = self.make_served_store()
        self.server.app.store = self.served
        self.store = DynamicURLStore(self.server.base_url, self.server.query_url, timeout=10)
        self.store.connect()
        super().setUp()

    def tearDown(self) -> None:
        self.store.disconnect()
        super().tearDown()


class DynamicURLStoreReadTest(StoreReadTestMixin, _ServedStoreTest):
    resolution = "second"  # Last-Modified has whole seconds


class DynamicURLStoreWriteTest(StoreWriteTestMixin, _ServedStoreTest):
    resolution = "second"  # Last-Modified has whole seconds


class DynamicURLStoreKeysTest(StoreKeysTestMixin, _ServedStoreTest):
    pass


class DynamicURLStoreBadInputTest(StoreBadInputTestMixin, _ServedStoreTest):
    pass


class DynamicURLStoreLargeValueTest(StoreLargeValueTestMixin, _ServedStoreTest):
    large_value_size = 8 * 1048576


class DynamicURLStoreBehaviourTest(_ServedStoreTest):
    def test_parts_url(self) -> None:
        store = DynamicURLStore("http://localhost", "http://localhost/query",
                                parts={"data": "d", "metadata": "m", "permissions": "p"})
        assert store._url("key", "data") == "http://localhost/key/d"
        assert store._url("key") == "http://localhost/key"

    def test_keys_are_percent_encoded(self) -> None:
        assert self.store._url("a/b?c#d%e f", "data").endswith("/a%2Fb%3Fc%23d%25e%20f/data")
        assert self.store._url("caf\u00e9") .endswith("/caf%C3%A9")
        assert self.store._url("..").endswith("/%2E%2E")

    def test_info_and_user_tag(self) -> None:
        assert self.store.info() == {"readonly": False, "authorizing": True}
        assert self.store.user_tag is None
        session = requests.Session()
        store = DynamicURLStore(self.server.base_url, self.server.query_url)
        store.connect(("alice", session))
        assert store.user_tag == "alice"
        assert store.is_connected()
        store.disconnect()
        assert not store.is_connected()
        session.close()

    def test_bad_credentials(self) -> None:
        store = DynamicURLStore(self.server.base_url, self.server.query_url)
        with pytest.raises(TypeError):
            store.connect(("alice",))
        with pytest.raises(TypeError):
            store.connect(("alice", "not a session"))

    def test_not_connected(self) -> None:
        store = DynamicURLStore(self.server.base_url, self.server.query_url)
        with pytest.raises(StoreError, match="not connected"):
            store.get_metadata("test1")

    def test_value_attributes(self) -> None:
        value = self.store.get("test1")
        assert isinstance(value, RequestsURLValue)
        assert value.size == 6
        assert value.mimetype == "application/octet-stream"
        assert value.created is None
        assert abs(value.modified - self.served.get("test1").modified) < 1.01
        assert value.metadata == TEST1_MD
        with value as data:
            assert data.read() == b"test2\n"

    def test_query_keys_yields_str(self) -> None:
        keys = list(self.store.query_keys(query_test1="value"))
        assert all(type(key) is str for key in keys)
        assert sorted(keys) == [f"key{i}" for i in range(10)]
        assert sorted(self.store.glob("key[0-2]")) == ["key0", "key1", "key2"]

    def test_query_keys_with_newline_in_key(self) -> None:
        self.served.from_bytes("line\nbreak", b"x")
        assert "line\nbreak" in set(self.store.query_keys())

    def test_query_values_are_json(self) -> None:
        self.served.set_metadata("test3", {"n": 1.5, "l": [1, "a"], "none": None, "b": False})
        assert list(self.store.query_keys(n=1.5)) == ["test3"]
        assert list(self.store.query_keys(l=[1, "a"], none=None, b=False)) == ["test3"]
        assert list(self.store.query_keys(b=True)) == []

    def test_query_plain_text_server(self) -> None:
        # A server of the original protocol answers one key per line.
        response = requests.get(self.server.query_url, params={"query_test2": "3"}, timeout=10)
        assert response.headers["Content-Type"].startswith("text/plain")
        assert response.text == "key3\n"

    def test_delete_missing_key_raises(self) -> None:
        with pytest.raises(KeyError) as info:
            self.store.delete("nope")
        assert info.value.args == ("nope",)

    def test_unserialisable_metadata_raises_type_error(self) -> None:
        with pytest.raises(TypeError, match="JSON"):
            self.store.set_metadata("test1", {"a": {1, 2}})
        with pytest.raises(TypeError, match="JSON"):
            self.store.set("test3", (io.BytesIO(b"x"), {"when": object()}))
        assert self.served.get_metadata("test1") == TEST1_MD
        assert not self.served.exists("test3")

    def test_unicode_metadata(self) -> None:
        self.store.set_metadata("test1", {"name": "caf\u00e9 \U0001f389"})
        assert self.served.get_metadata("test1") == {"name": "caf\u00e9 \U0001f389"}
        assert self.store.get_metadata("test1") == {"name": "caf\u00e9 \U0001f389"}

    def test_update_metadata(self) -> None:
        self.store.update_metadata("test1", {"a_str": "changed", "new": 1})
        expected = dict(TEST1_MD, a_str="changed", new=1)
        assert self.served.get_metadata("test1") == expected

    def test_get_data_range_variants(self) -> None:
        self.served.from_bytes("r", b"0123456789")
        cases = [((2, 5), b"234"), ((None, 3), b"012"), ((7, None), b"789"),
                 ((0, 10), b"0123456789"), ((5, 100), b"56789"), ((20, 30), b""), ((4, 4), b"")]
        for (start, end), expected in cases:
            with self.store.get_data_range("r", start, end) as data:
                assert data.read() == expected, (start, end)
            with self.store.get("r").range(start, end) as data:
                assert data.read() == expected, (start, end)

    def test_permissions_unsupported_by_served_store(self) -> None:
        # DictMemoryStore has no permissions: its Value refuses, so 403.
        with pytest.raises(AuthorizationError):
            self.store.get_permissions("test1")
        with pytest.raises(AuthorizationError):
            self.store.set_permissions("test1", {"owned": {"alice"}})
        with pytest.raises(KeyError):
            self.store.get_permissions("missing")

    def test_set_with_value_streams_with_length(self) -> None:
        self.store.set("copy", self.store.get("test1"))
        assert self.served.to_bytes("copy") == b"test2\n"
        assert self.served.get_metadata("copy") == TEST1_MD

    def test_set_unsized_stream_uses_chunked(self) -> None:
        from encore.storage.utils import BufferIteratorIO

        stream = BufferIteratorIO(iter([b"ab", b"cd", b"ef"]))
        self.store.set("chunked", (stream, {"k": 1}))
        assert self.served.to_bytes("chunked") == b"abcdef"

    def test_concurrent_clients(self) -> None:
        errors = []

        def work(n: int) -> None:
            try:
                for i in range(10):
                    self.store.from_bytes(f"c{n}-{i}", f"{n}:{i}".encode())
                    assert self.store.to_bytes(f"c{n}-{i}") == f"{n}:{i}".encode()
            except BaseException as error:  # pragma: no cover - reported below
                errors.append(error)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not any(thread.is_alive() for thread in threads)
        assert errors == []
        assert len(list(self.served.glob("c*-*"))) == 40


class _PermissionStore(DictMemoryStore):
    """A DictMemoryStore with per-key permissions, to test the auth part end to end."""

    def __init__(self) -> None:
        super().__init__()
        self.permissions: dict[str, dict[str, set[str]]] = {}

    def get_permissions(self, key):
        self.get(key)
        if key == "secret":
            raise AuthorizationError("not an owner of 'secret'")
        return self.permissions.get(key, {"owned": {"root"}})

    def set_permissions(self, key, permissions):
        self.get(key)
        self.permissions[key] = {k: set(v) for k, v in permissions.items()}

    def update_permissions(self, key, permissions):
        current = {k: set(v) for k, v in self.get_permissions(key).items()}
        for name, tags in permissions.items():
            current.setdefault(name, set()).update(tags)
        self.set_permissions(key, current)


class DynamicURLStorePermissionsTest(_ServedStoreTest):
    def make_served_store(self):
        store = _PermissionStore()
        store.connect()
        populate_fixture(store)
        store.from_bytes("secret", b"s")
        return store

    def test_permissions_round_trip(self) -> None:
        assert self.store.get_permissions("test1") == {"owned": {"root"}}
        self.store.set_permissions("test1", {"owned": {"alice", "bob"}, "read": set()})
        assert self.store.get_permissions("test1") == {"owned": {"alice", "bob"}, "read": set()}
        self.store.update_permissions("test1", {"read": {"carol"}})
        assert self.served.permissions["test1"]["read"] == {"carol"}
        assert self.store.get("test1").permissions["owned"] == {"alice", "bob"}

    def test_permissions_errors(self) -> None:
        with pytest.raises(AuthorizationError):
            self.store.get_permissions("secret")
        with pytest.raises(KeyError):
            self.store.set_permissions("missing", {"owned": {"x"}})
        with pytest.raises(TypeError):
            self.store.set_permissions("test1", {"owned": "alice"})


class ServerErrorsTest(unittest.TestCase):
    """Client behaviour for failures: statuses, bodies, a server that is down."""

    def test_server_down_raises_store_error_quickly(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        # Nothing listens on the port now.
        store = DynamicURLStore(f"http://127.0.0.1:{port}/store", f"http://127.0.0.1:{port}/query",
                                timeout=5)
        store.connect()
        for call in (lambda: store.get("k"), lambda: store.get_metadata("k"),
                     lambda: list(store.query_keys()), lambda: store.from_bytes("k", b"x")):
            with pytest.raises(HTTPStoreError) as info:
                call()
            assert info.value.status is None
            assert f"127.0.0.1:{port}" in str(info.value)

    def test_silent_server_times_out(self) -> None:
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            port = listener.getsockname()[1]
            store = DynamicURLStore(f"http://127.0.0.1:{port}/store",
                                    f"http://127.0.0.1:{port}/query", timeout=0.5)
            store.connect()
            with pytest.raises(HTTPStoreError, match="timed out"):
                store.get_metadata("k")

    def test_status_mapping(self) -> None:
        statuses = {"/store/missing/metadata": 404, "/store/denied/metadata": 403,
                    "/store/anon/metadata": 401, "/store/broken/metadata": 500}

        def app(environ, start_response):
            status = statuses.get(environ["PATH_INFO"], 200)
            start_response(f"{status} X", [("Content-Type", "text/plain")])
            return [b"body of the error " * 40]

        server = StoreServer(StoreApplication(DictMemoryStore()))
        server._server.set_app(app)
        with server:
            store = DynamicURLStore(server.base_url, server.query_url, timeout=10)
            store.connect()
            with pytest.raises(KeyError):
                store.get_metadata("missing")
            with pytest.raises(AuthorizationError):
                store.get_metadata("denied")
            with pytest.raises(AuthorizationError):
                store.get_metadata("anon")
            with pytest.raises(HTTPStoreError) as info:
                store.get_metadata("broken")
            assert info.value.status == 500
            assert info.value.excerpt.startswith("body of the error")
            assert len(info.value.excerpt) <= 200
            with pytest.raises(HTTPStoreError, match="JSON"):
                store.get_metadata("ok")

    def test_bad_range_response_is_detected(self) -> None:
        def app(environ, start_response):
            # Claims a range other than the one asked for.
            start_response("206 Partial Content", [("Content-Range", "bytes 5-9/10"),
                                                   ("Content-Length", "5")])
            return [b"56789"]

        server = StoreServer(StoreApplication(DictMemoryStore()))
        server._server.set_app(app)
        with server:
            store = DynamicURLStore(server.base_url, server.query_url, timeout=10)
            store.connect()
            with pytest.raises(HTTPStoreError, match="Content-Range"):
                store.get_data_range("k", 2, 4)

    def test_range_ignored_by_server(self) -> None:
        def app(environ, start_response):
            # Ignores Range and sends the whole value with 200.
            start_response("200 OK", [("Content-Length", "10")])
            return [b"0123456789"]

        server = StoreServer(StoreApplication(DictMemoryStore()))
        server._server.set_app(app)
        with server:
            store = DynamicURLStore(server.base_url, server.query_url, timeout=10)
            store.connect()
            with store.get_data_range("k", 2, 5) as data:
                assert data.read() == b"234"
            with store.get_data_range("k", 7) as data:
                assert data.read() == b"789"

    def test_plain_text_query_answer(self) -> None:
        def app(environ, start_response):
            # A server of the original protocol: one key per line, UTF-8.
            start_response("200 OK", [("Content-Type", "text/plain")])
            return ["k1\ncaf\u00e9\r\n\nlast".encode()]

        server = StoreServer(StoreApplication(DictMemoryStore()))
        server._server.set_app(app)
        with server:
            store = DynamicURLStore(server.base_url, server.query_url, timeout=10)
            store.connect()
            assert list(store.query_keys(a=1)) == ["k1", "caf\u00e9", "last"]
            assert list(store.glob("caf*")) == ["caf\u00e9"]

    def test_body_over_server_limit(self) -> None:
        store = DictMemoryStore()
        store.connect()
        with StoreServer(store, max_body_size=1000) as server:
            client = DynamicURLStore(server.base_url, server.query_url, timeout=10)
            client.connect()
            for size in (1001, 5_000_000):
                with pytest.raises(HTTPStoreError) as info:
                    client.from_bytes("k", b"x" * size)
                assert info.value.status == 413
                assert "exceeds the limit" in info.value.excerpt
            assert not store.exists("k")

    def test_metadata_request_carries_json_content_type(self) -> None:
        seen = {}

        def app(environ, start_response):
            seen["type"] = environ.get("CONTENT_TYPE")
            seen["body"] = environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))
            start_response("204 No Content", [])
            return []

        server = StoreServer(StoreApplication(DictMemoryStore()))
        server._server.set_app(app)
        with server:
            store = DynamicURLStore(server.base_url, server.query_url, timeout=10)
            store.connect()
            store.set_metadata("k", {"a": 1})
        assert seen["type"] == "application/json"
        assert json.loads(seen["body"]) == {"a": 1}


def test_import_error_names_the_extra() -> None:
    code = (
        "import sys\n"
        "sys.modules['requests'] = None\n"
        "try:\n"
        "    import encore.storage.dynamic_url_store\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert "pip install 'encore[http]'" in result.stdout, result.stdout + result.stderr


class _ServedSqliteStoreTest(_ServedStoreTest):
    """DynamicURLStore <-> server <-> SqliteStore (skipped if the module is missing)."""

    def make_served_store(self):
        sqlite_store = pytest.importorskip("encore.storage.sqlite_store")
        store = sqlite_store.SqliteStore()
        store.connect()
        populate_fixture(store)
        return store


class SqliteThroughServerReadTest(StoreReadTestMixin, _ServedSqliteStoreTest):
    resolution = "second"


class SqliteThroughServerWriteTest(StoreWriteTestMixin, _ServedSqliteStoreTest):
    resolution = "second"


class SqliteThroughServerKeysTest(StoreKeysTestMixin, _ServedSqliteStoreTest):
    pass


class SqliteThroughServerBadInputTest(StoreBadInputTestMixin, _ServedSqliteStoreTest):
    pass


def test_servers_of_this_module_are_stopped() -> None:
    # Runs last in the module: every server started above has stopped its thread.
    names = [t.name for t in threading.enumerate() if t.name.startswith("encore-store-server")]
    assert names == []

