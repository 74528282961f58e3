"""Tests for StaticURLStore over file: URLs, python's http.server and encore's store server."""

from __future__ import annotations

import functools
import http.server
import io
import json
import logging
import os
import pathlib
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.request

import pytest

from encore.events.api import EventManager
from encore.storage.abstract_store import AuthorizationError, StoreError
from encore.storage.dict_memory_store import DictMemoryStore
from encore.storage.events import (
    StoreDeleteEvent,
    StoreModificationEvent,
    StoreSetEvent,
    StoreUpdateEvent,
)
from encore.storage.server import StoreServer, password_checker
from encore.storage.static_url_store import StaticURLStore, basic_auth_factory
from encore.storage.tests.abstract_test import (
    StoreReadTestMixin,
    _read_fixture_items,
    populate_read_fixture,
)

pytestmark = pytest.mark.timeout(120)


def write_layout(directory: str, items, index_bytes: bytes | None = None) -> None:
    """Write a static layout (index.json + data/<key>) into *directory*."""
    data_dir = os.path.join(directory, "data")
    os.makedirs(data_dir, exist_ok=True)
    index = {}
    for key, data, metadata in items:
        path = os.path.join(data_dir, *key.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as stream:
            stream.write(data)
        index[key] = metadata
    if index_bytes is None:
        index_bytes = json.dumps(index, ensure_ascii=False).encode("utf-8")
    write_index(directory, index_bytes)


def write_index(directory: str, index_bytes: bytes) -> None:
    tmp = os.path.join(directory, "index.json.tmp")
    with open(tmp, "wb") as stream:
        stream.write(index_bytes)
    os.replace(tmp, os.path.join(directory, "index.json"))


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


class StaticHTTPServer:
    """``python -m http.server`` for a directory, on a free loopback port."""

    def __init__(self, directory: str) -> None:
        handler = functools.partial(_QuietHandler, directory=directory)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> StaticHTTPServer:
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.httpd.shutdown()
        self.thread.join(10)
        self.httpd.server_close()


class StaticURLStoreFileReadTest(StoreReadTestMixin, unittest.TestCase):
    """The read conformance suite over file: URLs."""

    resolution = "second"

    def setUp(self) -> None:
        self.directory = tempfile.mkdtemp()
        write_layout(self.directory, _read_fixture_items())
        root = pathlib.Path(self.directory).as_uri() + "/"
        self.store = StaticURLStore(root, "data/", "index.json", poll=0)
        self.store.connect()

    def tearDown(self) -> None:
        self.store.disconnect()
        shutil.rmtree(self.directory, ignore_errors=True)


class StaticURLStoreHTTPReadTest(StoreReadTestMixin, unittest.TestCase):
    """The read conformance suite against python's http.server (which ignores Range)."""

    resolution = "second"

    @classmethod
    def setUpClass(cls) -> None:
        cls.directory = tempfile.mkdtemp()
        write_layout(cls.directory, _read_fixture_items())
        cls.server = StaticHTTPServer(cls.directory).__enter__()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.server.__exit__(None, None, None)
        shutil.rmtree(cls.directory, ignore_errors=True)

    def setUp(self) -> None:
        self.store = StaticURLStore(self.server.url, "data/", "index.json", poll=0)
        self.store.connect()

    def tearDown(self) -> None:
        self.store.disconnect()


class StaticURLStoreServerReadTest(StoreReadTestMixin, unittest.TestCase):
    """The read conformance suite against encore's store server (which answers 206)."""

    resolution = "second"

    @classmethod
    def setUpClass(cls) -> None:
        served = DictMemoryStore()
        served.connect()
        populate_read_fixture(served)
        cls.server = StoreServer(served, read_only=True).start()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.server.stop()

    def setUp(self) -> None:
        self.store = StaticURLStore(self.server.static_url, "data/", "index.json", poll=0)
        self.store.connect()

    def tearDown(self) -> None:
        self.store.disconnect()


def _wait_for(condition, timeout: float = 20.0) -> bool:
    """Poll *condition* until true or until *timeout* (a bound, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


class StaticURLStoreBehaviourTest(unittest.TestCase):
    def setUp(self) -> None:
        self.served = DictMemoryStore()
        self.served.connect()
        self.served.set("a", (io.BytesIO(b"A"), {"n": 1}))
        self.served.set("b", (io.BytesIO(b"B"), {"n": 2}))
        self.served.set("c", (io.BytesIO(b"C"), {"n": 3}))
        self.server = StoreServer(self.served).start()
        self.stores: list[StaticURLStore] = []

    def tearDown(self) -> None:
        for store in self.stores:
            store.disconnect()
        self.server.stop()

    def make_store(self, poll: float = 0, connect: bool = True, **connect_args) -> StaticURLStore:
        store = StaticURLStore(self.server.static_url, "data/", "index.json", poll=poll,
                               timeout=10)
        self.stores.append(store)
        if connect:
            store.connect(**connect_args)
        return store

    def test_info_and_connection(self) -> None:
        store = self.make_store(connect=False)
        assert not store.is_connected()
        assert store.info() == {"readonly": True}
        store.connect()
        assert store.is_connected()
        store.disconnect()
        assert not store.is_connected()
        assert not hasattr(store, "set")

    def test_update_index_emits_differences(self) -> None:
        store = self.make_store()
        store.event_manager = EventManager()
        events = []
        store.event_manager.connect(StoreModificationEvent, events.append)
        self.served.delete("a")
        self.served.set_metadata("b", {"n": 20})
        self.served.set("d", (io.BytesIO(b"D"), {"n": 4}))
        self.served.from_bytes("c", b"data only change")
        store.update_index()
        summary = [(type(e), e.key, e.metadata) for e in events]
        assert summary == [
            (StoreDeleteEvent, "a", {"n": 1}),
            (StoreSetEvent, "d", {"n": 4}),
            (StoreUpdateEvent, "b", {"n": 20}),
        ]
        assert all(e.source is store for e in events)
        assert sorted(store.query_keys()) == ["b", "c", "d"]
        assert store.get_metadata("b") == {"n": 20}
        assert store.to_bytes("c") == b"data only change"

    def test_no_events_on_first_load(self) -> None:
        store = self.make_store(connect=False)
        store.event_manager = EventManager()
        events = []
        store.event_manager.connect(StoreModificationEvent, events.append)
        store.connect()
        assert events == []

    def test_polling_picks_up_changes(self) -> None:
        store = self.make_store(poll=0.05)
        self.served.set("new", (io.BytesIO(b"N"), {"n": 9}))
        assert _wait_for(lambda: store.exists("new"))
        assert store.to_bytes("new") == b"N"

    def test_disconnect_stops_poll_thread(self) -> None:
        store = self.make_store(poll=300)
        thread = store._poll_thread
        assert thread is not None and thread.daemon and thread.is_alive()
        store.disconnect()
        assert not thread.is_alive()
        assert not store.is_connected()

    def test_disconnect_during_download_discards_it(self) -> None:
        store = self.make_store(poll=0.05)
        store.event_manager = EventManager()
        events = []
        store.event_manager.connect(StoreModificationEvent, events.append)
        started, release = threading.Event(), threading.Event()
        app = self.server.app

        def stalling(environ, start_response):
            if environ["PATH_INFO"] == "/index.json":
                started.set()
                release.wait(20)
                start_response("200 OK", [("Content-Type", "application/json")])
                return [b'{"late": {}}']
            return app(environ, start_response)

        self.server._server.set_app(stalling)
        try:
            assert started.wait(20)
            thread = store._poll_thread
            store.disconnect()  # does not wait for the stalled download
            assert not store.is_connected()
        finally:
            release.set()
        thread.join(20)
        assert not thread.is_alive()
        assert sorted(store.query_keys()) == ["a", "b", "c"]
        assert events == []

    def test_failed_poll_keeps_last_index_and_goes_on(self) -> None:
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory, True)
        write_layout(directory, [("k", b"v", {"good": 1})])
        root = pathlib.Path(directory).as_uri() + "/"
        store = StaticURLStore(root, "data/", "index.json", poll=0.05)
        self.stores.append(store)
        store.connect()
        handler = _ListHandler()
        logger = logging.getLogger("encore.storage.static_url_store")
        logger.addHandler(handler)
        self.addCleanup(logger.removeHandler, handler)
        write_index(directory, b"{not json")
        assert _wait_for(lambda: len(handler.records) >= 2)  # it keeps polling
        assert store.get_metadata("k") == {"good": 1}
        assert "not UTF-8 JSON" in handler.records[0].getMessage() + str(
            handler.records[0].exc_info[1])
        write_index(directory, json.dumps({"k": {"good": 2}}).encode())
        assert _wait_for(lambda: store.get_metadata("k") == {"good": 2})

    def test_update_index_errors_keep_index(self) -> None:
        store = self.make_store()
        self.server.stop()
        with pytest.raises(StoreError, match="cannot fetch the index"):
            store.update_index()
        assert sorted(store.query_keys()) == ["a", "b", "c"]

    def test_first_connect_to_bad_index_raises(self) -> None:
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory, True)
        root = pathlib.Path(directory).as_uri() + "/"
        for content, message in [(b"[1, 2]", "must be a JSON object"),
                                 (b'{"k": 3}', "not an object"),
                                 (b"\xff\xfe{", "not UTF-8 JSON"),
                                 (None, "cannot fetch the index")]:
            if content is None:
                os.unlink(os.path.join(directory, "index.json"))
            else:
                write_index(directory, content)
            store = StaticURLStore(root, "data/", "index.json", poll=10)
            with pytest.raises(StoreError, match=message):
                store.connect()
            assert not store.is_connected()
            assert store._poll_thread is None

    def test_utf8_index(self) -> None:
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory, True)
        items = [("caf\u00e9/\u65e5\u672c", b"unicode", {"name": "\u00e9t\u00e9 \U0001f389"}),
                 ("with space?#%", b"odd", {})]
        write_layout(directory, items)
        with open(os.path.join(directory, "index.json"), "rb") as stream:
            assert "\u00e9".encode() in stream.read()  # raw UTF-8, not \u escapes
        for root in (pathlib.Path(directory).as_uri() + "/",):
            store = StaticURLStore(root, "data/", "index.json", poll=0)
            store.connect()
            expected = {"name": "\u00e9t\u00e9 \U0001f389"}
            assert store.get_metadata("caf\u00e9/\u65e5\u672c") == expected
            assert store.to_bytes("caf\u00e9/\u65e5\u672c") == b"unicode"
            assert store.to_bytes("with space?#%") == b"odd"
            store.disconnect()
        with StaticHTTPServer(directory) as server:
            store = StaticURLStore(server.url, "data/", "index.json", poll=0)
            store.connect()
            assert store.to_bytes("caf\u00e9/\u65e5\u672c") == b"unicode"
            assert store.to_bytes("with space?#%") == b"odd"
            store.disconnect()

    def test_arbitrary_keys_through_store_server(self) -> None:
        keys = ["a/b", "caf\u00e9", "q?x#y", "100%", " sp ", "a//b", "/lead"]
        for i, key in enumerate(keys):
            self.served.set(key, (io.BytesIO(str(i).encode()), {"i": i}))
        store = self.make_store()
        for i, key in enumerate(keys):
            assert store.to_bytes(key) == str(i).encode(), key
            assert store.get_metadata(key) == {"i": i}

    def test_dot_segment_keys_are_refused(self) -> None:
        self.served.set("../escape", (io.BytesIO(b"x"), {}))
        store = self.make_store()
        assert store.exists("../escape")
        assert store.get_metadata("../escape") == {}
        with pytest.raises(StoreError, match="path segments"):
            store.get_data("../escape")

    def test_missing_data_is_key_error(self) -> None:
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory, True)
        write_layout(directory, [("k", b"v", {})])
        write_index(directory, json.dumps({"k": {}, "ghost": {}}).encode())
        with StaticHTTPServer(directory) as server:
            for root in (pathlib.Path(directory).as_uri() + "/", server.url):
                store = StaticURLStore(root, "data/", "index.json", poll=0)
                store.connect()
                with pytest.raises(KeyError) as info:
                    store.get_data("ghost")
                assert info.value.args == ("ghost",)
                with pytest.raises(KeyError):
                    store.to_bytes("ghost")
                with pytest.raises(KeyError):
                    store.get_data("not-in-index")
                store.disconnect()

    def test_query_does_not_hold_a_lock_while_suspended(self) -> None:
        store = self.make_store()
        query = store.query()
        first = next(query)
        assert first[0] in ("a", "b", "c")
        # Same thread, then another thread, while the generator is suspended.
        assert store.exists("a")
        assert store.get_metadata("b") == {"n": 2}
        results = []
        thread = threading.Thread(target=lambda: results.append(
            (store.exists("c"), store.update_index(), store.to_bytes("a"))))
        thread.start()
        thread.join(20)
        assert not thread.is_alive()
        assert results == [(True, None, b"A")]
        assert len(list(query)) == 2

    def test_concurrent_updates_and_reads(self) -> None:
        store = self.make_store()
        errors = []
        stop = threading.Event()

        def update() -> None:
            try:
                while not stop.is_set():
                    store.update_index()
            except BaseException as error:  # pragma: no cover - reported below
                errors.append(error)

        def read() -> None:
            try:
                while not stop.is_set():
                    for key, metadata in store.query():
                        assert isinstance(metadata, dict), key
                    store.exists("a")
            except BaseException as error:  # pragma: no cover - reported below
                errors.append(error)

        threads = [threading.Thread(target=update) for _ in range(3)]
        threads += [threading.Thread(target=read) for _ in range(2)]
        for thread in threads:
            thread.start()
        try:
            for i in range(20):
                self.served.set(f"n{i}", (io.BytesIO(b"x"), {"i": i}))
        finally:
            stop.set()
            for thread in threads:
                thread.join(30)
        assert not any(thread.is_alive() for thread in threads)
        assert errors == []
        store.update_index()
        assert {f"n{i}" for i in range(20)} <= set(store.query_keys())

    def test_metadata_copies(self) -> None:
        self.served.set_metadata("a", {"l": [1, 2]})
        store = self.make_store()
        md = store.get_metadata("a")
        md["l"].append(3)
        assert store.get_metadata("a") == {"l": [1, 2]}
        for _key, md in store.query():
            md.clear()
        assert store.get_metadata("a") == {"l": [1, 2]}

    def test_ranges_through_206_and_200(self) -> None:
        self.served.from_bytes("r", b"0123456789")
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory, True)
        write_layout(directory, [("r", b"0123456789", {})])
        cases = [((2, 5), b"234"), ((None, 3), b"012"), ((7, None), b"789"),
                 ((5, 100), b"56789"), ((4, 4), b""), ((20, 30), b""), ((10, None), b"")]
        with StaticHTTPServer(directory) as plain:
            for root in (self.server.static_url, plain.url,
                         pathlib.Path(directory).as_uri() + "/"):
                store = StaticURLStore(root, "data/", "index.json", poll=0)
                store.connect()
                for (start, end), expected in cases:
                    with store.get_data_range("r", start, end) as data:
                        assert data.read() == expected, (root, start, end)
                store.disconnect()

    def test_basic_auth(self) -> None:
        self.server.stop()
        self.server = StoreServer(self.served, authenticate=password_checker({"alice": "s3cret"}))
        self.server.start()
        anonymous = StaticURLStore(self.server.static_url, "data/", "index.json", poll=0)
        with pytest.raises(AuthorizationError):
            anonymous.connect()
        wrong = StaticURLStore(self.server.static_url, "data/", "index.json", poll=0)
        with pytest.raises(AuthorizationError):
            wrong.connect(credentials={"username": "alice", "password": "nope"})
        store = self.make_store(credentials={"username": "alice", "password": "s3cret"})
        assert store.to_bytes("a") == b"A"
        # urllib's own keyword names and an explicit factory work too.
        other = self.make_store(credentials={"user": "alice", "passwd": "s3cret"},
                                auth_handler_factory=basic_auth_factory)
        with other.get_data("b") as data:
            assert data.read() == b"B"

    def test_credentials_must_be_complete(self) -> None:
        store = self.make_store(connect=False)
        with pytest.raises(TypeError, match="username"):
            store.connect(credentials={"username": "alice"})

    def test_proxy_handler_without_credentials(self) -> None:
        store = self.make_store(proxy_handler=urllib.request.ProxyHandler({}))
        assert store.to_bytes("a") == b"A"

    def test_basic_auth_factory_returns_handler(self) -> None:
        handler = basic_auth_factory()
        assert isinstance(handler, urllib.request.HTTPBasicAuthHandler)
        handler = basic_auth_factory(realm=None, uri="http://x/", user="u", passwd="p")
        assert handler.passwd.find_user_password("any realm", "http://x/y") == ("u", "p")

    def test_https_certificates_are_verified(self) -> None:
        openssl = shutil.which("openssl")
        if openssl is None:
            pytest.skip("openssl is needed to make a self-signed certificate")
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory, True)
        key, cert = os.path.join(directory, "key.pem"), os.path.join(directory, "cert.pem")
        subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                        "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1"],
                       check=True, capture_output=True, timeout=60)
        write_layout(directory, [("k", b"v", {})])
        server = StaticHTTPServer(directory)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.httpd.socket = context.wrap_socket(server.httpd.socket, server_side=True)
        with server:
            url = server.url.replace("http:", "https:")
            store = StaticURLStore(url, "data/", "index.json", poll=0, timeout=10)
            with pytest.raises(StoreError, match="CERTIFICATE_VERIFY_FAILED"):
                store.connect()

    def test_reconnect(self) -> None:
        store = self.make_store(poll=300)
        first_thread = store._poll_thread
        store.connect()
        assert not first_thread.is_alive()
        assert store._poll_thread.is_alive()
        assert store.to_bytes("a") == b"A"

    def test_not_connected(self) -> None:
        store = self.make_store(connect=False)
        with pytest.raises(StoreError, match="not connected"):
            store.get_metadata("a")
        with pytest.raises(StoreError, match="not connected"):
            store.update_index()


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_unreachable_server() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = StaticURLStore(f"http://127.0.0.1:{port}/", "data/", "index.json", poll=0,
                           timeout=5)
    with pytest.raises(StoreError, match="cannot fetch the index"):
        store.connect()
    assert not store.is_connected()


class _OddRangeHandler(http.server.BaseHTTPRequestHandler):
    """Answers every Range request with a fixed (possibly wrong) 206 or a 416."""

    answers: dict = {}

    def do_GET(self) -> None:
        status, content_range, body = self.answers[self.path]
        self.send_response(status)
        if content_range:
            self.send_header("Content-Range", content_range)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass


def test_url_value_checks_content_range() -> None:
    from encore.storage.url_value import URLValue, range_plan

    answers = {
        "/early": (206, "bytes 0-5/10", b"012345"),  # starts before: skip 2
        "/late": (206, "bytes 5-9/10", b"56789"),  # starts after the request
        "/garbled": (206, "items 2-4/10", b"234"),
        "/past-end": (416, "bytes */10", b""),
    }
    handler = type("Handler", (_OddRangeHandler,), {"answers": answers})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        root = f"http://127.0.0.1:{httpd.server_address[1]}"
        with URLValue(root + "/early", timeout=10).range(2, 5) as data:
            assert data.read() == b"234"
        for path in ("/late", "/garbled"):
            with pytest.raises(StoreError, match="Content-Range"):
                URLValue(root + path, timeout=10).range(2, 5)
        with URLValue(root + "/past-end", timeout=10).range(20, 30) as data:
            assert data.read() == b""
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)
    assert range_plan(200, None, 3, 7) == (3, 4)
    assert range_plan(None, None, 0, None) == (0, None)
    assert range_plan(206, "bytes 3-6/10", 3, 7) == (0, 4)
    assert range_plan(206, "bytes 1-9/*", 3, None) == (2, None)
