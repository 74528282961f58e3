"""LockingFileSystemStore: conformance, locks, commit log, remote events, many processes."""

from __future__ import annotations

import datetime
import gc
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import unittest
from io import BytesIO

import pytest

from encore.events.api import EventManager
from encore.storage import locking_filesystem_store as lfs
from encore.storage.events import (
    StoreDeleteEvent,
    StoreModificationEvent,
    StoreSetEvent,
    StoreUpdateEvent,
)
from encore.storage.file_lock import FileLock, SharedFileLock
from encore.storage.filesystem_store import encode_key, init_shared_store
from encore.storage.locking_filesystem_store import LockingFileSystemStore
from encore.storage.tests.abstract_test import (
    StoreBadInputTestMixin,
    StoreConcurrencyTestMixin,
    StoreEventsTestMixin,
    StoreKeysTestMixin,
    StoreLargeValueTestMixin,
    StoreReadTestMixin,
    StoreTransactionTestMixin,
    StoreWriteTestMixin,
    populate_fixture,
)

WAIT = 60
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(lfs.__file__)))


class LockingStoreFixture:
    def setUp(self):
        self.root = tempfile.mkdtemp()
        init_shared_store(self.root)
        self.store = LockingFileSystemStore(self.root, remote_event_poll_interval=0)
        self.store.event_manager = EventManager()
        self.store.connect()
        populate_fixture(self.store)

    def tearDown(self):
        self.store.disconnect()
        shutil.rmtree(self.root, ignore_errors=True)


class LockingStoreReadTest(LockingStoreFixture, StoreReadTestMixin, unittest.TestCase):
    pass


class LockingStoreWriteTest(LockingStoreFixture, StoreWriteTestMixin, unittest.TestCase):
    pass


class LockingStoreKeysTest(LockingStoreFixture, StoreKeysTestMixin, unittest.TestCase):
    pass


class LockingStoreEventsTest(LockingStoreFixture, StoreEventsTestMixin, unittest.TestCase):
    pass


class LockingStoreTransactionTest(
    LockingStoreFixture, StoreTransactionTestMixin, unittest.TestCase
):
    def test_locks_held_until_commit_and_logged_once(self):
        lock_path = os.path.join(self.root, encode_key("test3") + ".lock")
        with self.store.transaction("t"):
            self.store.set("test3", (BytesIO(b"a"), {}))
            assert os.path.isfile(lock_path)
            self.store.set("test3", (BytesIO(b"b"), {}))
            self.store.get_metadata("existing_key1")  # read lock, held too
        assert not os.path.exists(lock_path)
        assert [entry[1:] for entry in log_entries(self.root)][-2:] == [
            ("w", "test3"), ("w", "test3"),
        ]
        assert not [n for n in os.listdir(self.root) if n.endswith(".lock")]

    def test_rollback_logs_nothing_and_unlocks(self):
        before = log_entries(self.root)
        with pytest.raises(ZeroDivisionError), self.store.transaction("t"):
            self.store.set("test3", (BytesIO(b"a"), {}))
            1 / 0  # noqa: B018
        assert log_entries(self.root) == before
        assert not [n for n in os.listdir(self.root) if n.endswith(".lock")]


class LockingStoreLargeValueTest(
    LockingStoreFixture, StoreLargeValueTestMixin, unittest.TestCase
):
    large_value_size = 8 * 1048576


class LockingStoreConcurrencyTest(
    LockingStoreFixture, StoreConcurrencyTestMixin, unittest.TestCase
):
    concurrency_threads = 4


class LockingStoreBadInputTest(LockingStoreFixture, StoreBadInputTestMixin, unittest.TestCase):
    pass


# -- helpers ---------------------------------------------------------------------------


def log_entries(root):
    """``[(id, action, key)]`` of the commit log."""
    entries = []
    with open(os.path.join(root, "__log__.txt"), "rb") as f:
        for line in f:
            ident, action, _, key = lfs._parse_line(line.rstrip(b"\n"))
            entries.append((ident, action, key))
    return entries


@pytest.fixture
def root(tmp_path):
    init_shared_store(tmp_path)
    return str(tmp_path)


@pytest.fixture
def store(root):
    store = LockingFileSystemStore(root, remote_event_poll_interval=0)
    store.event_manager = EventManager()
    yield store
    store.disconnect()


# -- the commit log ----------------------------------------------------------------------


def test_every_write_logs_one_line(store, root):
    store.set("a", (BytesIO(b"1"), {}))
    store.set_data("a", BytesIO(b"2"))  # once, not twice
    store.set_metadata("a", {"m": 1})
    store.update_metadata("a", {"n": 2})
    store.from_bytes("b", b"x")
    store.delete("a")
    entries = log_entries(root)
    assert [(e[1], e[2]) for e in entries] == [
        ("w", "a"), ("w", "a"), ("w", "a"), ("u", "a"), ("w", "b"), ("d", "a"),
    ]
    assert [e[0] for e in entries] == [1, 2, 3, 4, 5, 6]


def test_failed_write_is_not_logged(store, root):
    with pytest.raises(KeyError):
        store.delete("missing")
    with pytest.raises(TypeError):
        store.set("a", (BytesIO(b"1"), "not a dict"))
    assert log_entries(root) == []


def test_log_keys_with_newlines_and_spaces(store, root):
    key = "odd key\nwith %0A newline"
    store.from_bytes(key, b"x")
    assert log_entries(root)[-1][2] == key
    assert store.get_modified_keys(datetime.datetime(2000, 1, 1)) == [key]


def test_log_survives_microsecond_free_times(root):
    with open(os.path.join(root, "__log__.txt"), "wb") as f:
        f.write(b"1 w 2020-01-01 00:00:00 old\n")
    store = LockingFileSystemStore(root, remote_event_poll_interval=0)
    store.from_bytes("new", b"x")
    assert [e[0] for e in log_entries(root)] == [1, 2]
    assert store.get_modified_keys("2019-12-31 23:59:00.000000") == ["old", "new"]


def test_get_modified_keys(store):
    store.from_bytes("a", b"1")
    store.from_bytes("b", b"1")
    store.from_bytes("a", b"2")
    now = datetime.datetime.now(datetime.timezone.utc)
    assert store.get_modified_keys(now - datetime.timedelta(hours=1)) == ["a", "b", "a"]
    # max_time_delta (1 minute) gives slack for clock skew.
    assert store.get_modified_keys(now) == ["a", "b", "a"]
    store.max_time_delta = datetime.timedelta(0)
    assert store.get_modified_keys(now + datetime.timedelta(hours=1)) == []
    assert store.get_modified_keys(now.strftime("%Y-%m-%d %H:%M:%S.%f")) == []


def test_log_rotation(store, root, monkeypatch):
    monkeypatch.setattr(lfs, "LOG_ROTATE_EVERY", 10)
    for i in range(75):
        store.from_bytes("k", b"%d" % i)
    rotated = sorted(n for n in os.listdir(root) if n.startswith("__log__.txt."))
    assert len(rotated) == lfs.LOG_KEEP
    assert [e[0] for e in log_entries(root)][-1] == 75
    ids = [e[0] for e in log_entries(root)]
    assert ids == list(range(ids[0], 76))


# -- locks ---------------------------------------------------------------------------------


def run_blocked(target):
    """Start *target* in a thread; return (thread, result list)."""
    result = []
    thread = threading.Thread(target=lambda: result.append(target()), daemon=True)
    thread.start()
    return thread, result


def test_reads_wait_for_an_exclusive_writer(store, root):
    store.from_bytes("k", b"v")
    other = FileLock(encode_key("k"), dir=root, uid="another client")
    other.acquire()
    thread, result = run_blocked(lambda: store.get_metadata("k"))
    thread.join(0.2)
    assert thread.is_alive() and result == []  # blocked by the lock
    other.release()
    thread.join(WAIT)
    assert result == [{}]


def test_writes_wait_for_readers(store, root):
    store.from_bytes("k", b"v")
    reader = SharedFileLock(encode_key("k"), dir=root, uid="a reader")
    reader.acquire()
    assert store.get_metadata("k") == {}  # readers share
    thread, result = run_blocked(lambda: store.from_bytes("k", b"w"))
    thread.join(0.2)
    assert thread.is_alive()
    assert store.to_bytes("k") == b"v"
    reader.release()
    thread.join(WAIT)
    assert store.to_bytes("k") == b"w"


def test_force_lock_timeout_breaks_a_stuck_lock(root):
    store = LockingFileSystemStore(root, force_lock_timeout=0.1, remote_event_poll_interval=0)
    stuck = FileLock(encode_key("k"), dir=root, uid="hung client")
    stuck.acquire()
    store.from_bytes("k", b"v")
    assert store.to_bytes("k") == b"v"
    assert not stuck.acquired()


def test_lock_of_a_dead_writer_is_broken_at_once(root):
    code = """
        import os, sys
        from encore.storage.file_lock import FileLock
        from encore.storage.filesystem_store import encode_key
        assert FileLock(encode_key("k"), dir=sys.argv[1]).acquire()
        os._exit(0)  # dies holding the key's lock
    """
    env = dict(os.environ, PYTHONPATH=ROOT)
    subprocess.run([sys.executable, "-c", textwrap.dedent(code), root], env=env,
                   check=True, timeout=WAIT)
    assert os.path.isfile(os.path.join(root, "k.lock"))
    # force_lock_timeout is an hour: only stale-owner detection can help.
    store = LockingFileSystemStore(root, force_lock_timeout=3600, remote_event_poll_interval=0)
    store.from_bytes("k", b"v")
    assert store.to_bytes("k") == b"v"


def test_no_lock_files_left_behind(store, root):
    store.from_bytes("k", b"v")
    store.get("k").data.close()
    store.update_metadata("k", {"a": 1})
    leftovers = [n for n in os.listdir(root) if ".lock" in n]
    assert leftovers == []


# -- remote events ----------------------------------------------------------------------------


class Collector:
    def __init__(self, count):
        self.events = []
        self.count = count
        self.done = threading.Event()

    def __call__(self, event):
        if getattr(event, "remote", False):
            self.events.append(event)
            if len(self.events) >= self.count:
                self.done.set()


def test_remote_events_announce_other_clients_once(root):
    watcher = LockingFileSystemStore(root, remote_event_poll_interval=0.02)
    watcher.event_manager = EventManager()
    collector = Collector(3)
    watcher.event_manager.connect(StoreModificationEvent, collector)
    writer = LockingFileSystemStore(root, remote_event_poll_interval=0)
    try:
        watcher.from_bytes("mine", b"x")  # own writes are not remote events
        writer.set("a", (BytesIO(b"1"), {"x": 1}))
        writer.update_metadata("a", {"y": 2})
        writer.delete("a")
        assert collector.done.wait(WAIT)
        # Several more polls: the last entry must not be announced again.
        extra = Collector(1)
        watcher.event_manager.connect(StoreModificationEvent, extra)
        writer.from_bytes("b", b"2")
        assert extra.done.wait(WAIT)
    finally:
        watcher.disconnect()
    kinds = [(type(e), e.key) for e in collector.events]
    assert kinds[:3] == [(StoreSetEvent, "a"), (StoreUpdateEvent, "a"), (StoreDeleteEvent, "a")]
    assert [(type(e), e.key) for e in extra.events] == [(StoreSetEvent, "b")]
    assert all(e.source is watcher for e in collector.events)
    assert isinstance(collector.events[0].timestamp, datetime.datetime)
    assert "mine" not in [e.key for e in collector.events]


def test_disconnect_stops_poller_promptly(root):
    store = LockingFileSystemStore(root, remote_event_poll_interval=3600)
    poller = store._poller
    assert poller.is_alive() and poller.daemon
    store.disconnect()
    assert not poller.is_alive()
    store.connect()
    assert store._poller.is_alive()
    store.disconnect()


def test_garbage_collected_store_stops_poller(root):
    store = LockingFileSystemStore(root, remote_event_poll_interval=0.01)
    poller = store._poller
    del store
    gc.collect()
    poller.join(WAIT)
    assert not poller.is_alive()


# -- many processes ---------------------------------------------------------------------------

WRITER = """
    import hashlib, os, sys
    from io import BytesIO
    from encore.storage.locking_filesystem_store import LockingFileSystemStore

    root, worker = sys.argv[1], int(sys.argv[2])
    store = LockingFileSystemStore(root, remote_event_poll_interval=0)
    for i in range(250):
        key = "key%d" % ((i * 7 + worker) % 20)
        # Every third value is too big to be kept inside its record.
        size = 40000 if i % 3 == 0 else 64 + i
        payload = b"%d-%d-" % (worker, i) + os.urandom(size)
        digest = hashlib.sha256(payload).hexdigest()
        if i % 5 == 4:
            # Two writes made one: the transaction holds the key's lock.
            with store.transaction("pair"):
                store.set_data(key, BytesIO(payload))
                store.update_metadata(key, {"sha256": digest, "writer": worker, "i": i})
        else:
            store.set(key, (BytesIO(payload), {"sha256": digest, "writer": worker, "i": i}))
    store.disconnect()
"""


def test_four_processes_overlapping_keys(root):
    env = dict(os.environ, PYTHONPATH=ROOT)
    procs = [
        subprocess.Popen([sys.executable, "-c", textwrap.dedent(WRITER), root, str(w)], env=env)
        for w in range(4)
    ]
    try:
        for proc in procs:
            assert proc.wait(WAIT * 3) == 0
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(WAIT)
    store = LockingFileSystemStore(root, remote_event_poll_interval=0)
    assert sorted(store.query_keys()) == sorted(f"key{i}" for i in range(20))
    for i in range(20):
        value = store.get(f"key{i}")
        with value.data as data:
            payload = data.read()
        metadata = value.metadata
        assert hashlib.sha256(payload).hexdigest() == metadata["sha256"]
        assert payload.startswith(b"%d-%d-" % (metadata["writer"], metadata["i"]))
    entries = log_entries(root)
    # 250 writes per process, a set_data + update_metadata pair counting as two.
    assert len(entries) == 4 * 250 + 4 * 50
    assert [e[0] for e in entries] == list(range(1, len(entries) + 1))
    assert not [n for n in os.listdir(root) if ".lock" in n or n.startswith(".tmp-")]
    # Replaced data files were all removed: every one left is referenced.
    data_files = {n for n in os.listdir(root) if n.endswith(".data")}
    referenced = set()
    for n in os.listdir(root):
        if n.endswith(".metadata"):
            with open(os.path.join(root, n), "rb") as f:
                referenced.add(json.loads(f.readline())["data"])
    assert data_files == referenced - {None}
