"""FileSystemStore: every conformance mixin, key safety, crash safety and caching."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest
from io import BytesIO

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from encore.events.api import EventManager
from encore.storage import filesystem_store
from encore.storage.events import StoreModificationEvent, StoreUpdateEvent
from encore.storage.filesystem_store import (
    FileSystemStore,
    FileSystemStoreError,
    decode_name,
    encode_key,
    init_shared_store,
)
from encore.storage.tests.abstract_test import (
    TEST1_MD,
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

#: Bound for anything that waits on another process.
WAIT = 60
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(filesystem_store.__file__)))


def make_legacy_store(path: str) -> None:
    """Lay out a directory exactly as the original EnCore would."""
    with open(os.path.join(path, ".FSStore"), "wb") as f:
        f.write(b"__version__ = 0\n")


def write_legacy_key(path: str, key: str, data: bytes, metadata: dict) -> None:
    with open(os.path.join(path, key + ".data"), "wb") as f:
        f.write(data)
    with open(os.path.join(path, key + ".metadata"), "w", encoding="utf-8") as f:
        json.dump(metadata, f)


class FileSystemStoreFixture:
    legacy = False

    def setUp(self):
        self.root = tempfile.mkdtemp()
        if self.legacy:
            make_legacy_store(self.root)
        else:
            init_shared_store(self.root)
        self.store = FileSystemStore(self.root)
        self.store.event_manager = EventManager()
        self.store.connect()
        populate_fixture(self.store)

    def tearDown(self):
        self.store.disconnect()
        shutil.rmtree(self.root, ignore_errors=True)


class FileSystemStoreReadTest(FileSystemStoreFixture, StoreReadTestMixin, unittest.TestCase):
    pass


class FileSystemStoreWriteTest(FileSystemStoreFixture, StoreWriteTestMixin, unittest.TestCase):
    def test_set_data_keeps_metadata(self):
        self.store.set_data("test1", BytesIO(b"test4"))
        self.assertEqual(self.store.get_metadata("test1"), TEST1_MD)


class FileSystemStoreKeysTest(FileSystemStoreFixture, StoreKeysTestMixin, unittest.TestCase):
    arbitrary_keys = StoreKeysTestMixin.arbitrary_keys + (
        "", "\x00nul", "line\nbreak", "trailing dot.", "COM1", "lpt9.txt", "~", "y" * 300,
    )


class FileSystemStoreEventsTest(FileSystemStoreFixture, StoreEventsTestMixin, unittest.TestCase):
    pass


class FileSystemStoreTransactionTest(
    FileSystemStoreFixture, StoreTransactionTestMixin, unittest.TestCase
):
    def test_rollback_removes_new_data_files(self):
        before = sorted(os.listdir(self.root))
        with pytest.raises(ZeroDivisionError), self.store.transaction("rollback"):
            self.store.set("test1", (BytesIO(b"x"), {}))
            self.store.set("test1", (BytesIO(b"y" * 100_000), {}))
            self.store.set("test3", (BytesIO(b"y" * 100_000), {}))
            self.store.set_metadata("test1", {"m": 1})
            self.store.set_metadata("existing_key3", {"m": 1})
            1 / 0  # noqa: B018
        assert sorted(os.listdir(self.root)) == before

    def test_commit_removes_replaced_data_files(self):
        with self.store.transaction("commit"):
            self.store.set("test1", (BytesIO(b"x"), {}))
            self.store.set("test1", (BytesIO(b"y"), {}))
        big = b"z" * (filesystem_store.INLINE_MAX + 1)
        with self.store.transaction("commit"):
            self.store.set("test1", (BytesIO(big), {}))
            self.store.set("test1", (BytesIO(big + b"!"), {}))
            self.store.set_metadata("test1", {"m": 1})
        files = [n for n in os.listdir(self.root) if n.startswith("test1.")]
        assert len(files) == 2  # the record and one data file
        assert self.store.to_bytes("test1") == big + b"!"
        self.store.from_bytes("test1", b"small again")
        assert [n for n in os.listdir(self.root) if n.startswith("test1.")] == ["test1.metadata"]


class FileSystemStoreLargeValueTest(
    FileSystemStoreFixture, StoreLargeValueTestMixin, unittest.TestCase
):
    large_value_size = 8 * 1048576


class FileSystemStoreConcurrencyTest(
    FileSystemStoreFixture, StoreConcurrencyTestMixin, unittest.TestCase
):
    concurrency_threads = 4


class FileSystemStoreBadInputTest(
    FileSystemStoreFixture, StoreBadInputTestMixin, unittest.TestCase
):
    def test_unserialisable_metadata_writes_nothing(self):
        before = sorted(os.listdir(self.root))
        for bad in ({"a": object()}, {"a": {1, 2}}, {"a": b"bytes"}):
            with pytest.raises(TypeError, match="JSON"):
                self.store.set("test3", (BytesIO(b"x"), bad))
            with pytest.raises(TypeError, match="JSON"):
                self.store.set_metadata("test1", bad)
            with pytest.raises(TypeError, match="JSON"):
                self.store.update_metadata("test1", bad)
        assert sorted(os.listdir(self.root)) == before
        self._assert_unchanged()


# The original EnCore layout (magic file version 0), through the same suites.


class LegacyStoreReadTest(FileSystemStoreFixture, StoreReadTestMixin, unittest.TestCase):
    legacy = True
    resolution = "second"


class LegacyStoreWriteTest(FileSystemStoreFixture, StoreWriteTestMixin, unittest.TestCase):
    legacy = True
    resolution = "second"


class LegacyStoreEventsTest(FileSystemStoreFixture, StoreEventsTestMixin, unittest.TestCase):
    legacy = True


class LegacyStoreTransactionTest(
    FileSystemStoreFixture, StoreTransactionTestMixin, unittest.TestCase
):
    legacy = True


class LegacyStoreBadInputTest(FileSystemStoreFixture, StoreBadInputTestMixin, unittest.TestCase):
    legacy = True


class LegacyStoreConcurrencyTest(
    FileSystemStoreFixture, StoreConcurrencyTestMixin, unittest.TestCase
):
    legacy = True
    concurrency_threads = 4


# -- opening stores ---------------------------------------------------------------


@pytest.fixture
def root(tmp_path):
    init_shared_store(tmp_path)
    return str(tmp_path)


@pytest.fixture
def store(root):
    store = FileSystemStore(root)
    store.event_manager = EventManager()
    yield store
    store.disconnect()


def test_init_shared_store_records_scheme(tmp_path):
    init_shared_store(str(tmp_path))
    assert (tmp_path / ".FSStore").read_bytes() == b"__version__ = 1\n"
    init_shared_store(tmp_path, magic_fname="MAGIC")
    assert (tmp_path / "MAGIC").exists()
    assert FileSystemStore(tmp_path, magic_fname="MAGIC").version == 1


def test_init_shared_store_needs_existing_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="Unable to find"):
        init_shared_store(tmp_path / "missing")


def test_open_errors(tmp_path):
    with pytest.raises(FileSystemStoreError, match="Unable to find path"):
        FileSystemStore(tmp_path / "missing")
    with pytest.raises(FileSystemStoreError, match="not a valid store"):
        FileSystemStore(tmp_path)
    (tmp_path / ".FSStore").write_bytes(b"__version__ = 7\n")
    with pytest.raises(FileSystemStoreError, match="scheme 7"):
        FileSystemStore(tmp_path)


def test_connect_flag_and_info(store, root):
    assert not store.is_connected()
    store.connect()
    assert store.is_connected()
    store.disconnect()
    assert not store.is_connected()
    info = store.info()
    assert info["type"] == "FileSystemStore"
    assert info["version"] == 1
    assert info["readonly"] is False


# -- keys never escape or collide --------------------------------------------------


def listing(path):
    return sorted(os.listdir(path))


def test_dotdot_key_stays_inside(tmp_path):
    root = tmp_path / "store"
    root.mkdir()
    init_shared_store(root)
    store = FileSystemStore(root)
    outside_before = listing(tmp_path)
    for key in ("../outside", "../../outside", "/tmp/absolute", "..", "a/../../b", "C:\\x"):
        store.set(key, (BytesIO(b"payload"), {"k": key}))
        assert store.to_bytes(key) == b"payload"
    assert listing(tmp_path) == outside_before
    for name in os.listdir(root):
        assert "/" not in name and "\\" not in name and not name.startswith("..")
    assert sorted(store.query_keys()) == sorted(
        ["../outside", "../../outside", "/tmp/absolute", "..", "a/../../b", "C:\\x"]
    )
    assert not os.path.exists("/tmp/absolute.data")


def test_encode_key_examples():
    assert encode_key("abc") == "abc"
    assert encode_key("Abc") == "%41bc"
    assert encode_key("a.b") == "a%2Eb"
    assert encode_key("con") == "%63on"
    assert encode_key("") == "%"
    assert len(encode_key("é" * 500)) <= 150
    for key in ("abc", "Abc", "a.b", "con", "", "../x", "caf\u00e9"):
        assert decode_name(encode_key(key)) == key
    assert decode_name(encode_key("z" * 500)) is None


SAFE_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-_%ABCDEF~")


@settings(max_examples=300, deadline=None)
@given(st.text(), st.text())
def test_encoding_is_safe_and_case_insensitively_injective(a, b):
    name = encode_key(a)
    assert set(name) <= SAFE_NAME_CHARS
    assert 0 < len(name) <= 150
    assert name.lower() not in {"con", "prn", "aux", "nul"}
    if "~" not in name:
        assert decode_name(name) == a
    if a != b:
        assert encode_key(a).lower() != encode_key(b).lower()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(keys=st.lists(st.text(min_size=0, max_size=300), min_size=1, max_size=4, unique=True))
def test_random_unicode_keys_round_trip(store, keys):
    for i, key in enumerate(keys):
        store.set(key, (BytesIO(b"%d" % i), {"i": i, "key": key}))
    assert set(keys) <= set(store.query_keys())
    for i, key in enumerate(keys):
        value = store.get(key)
        with value.data as data:
            assert data.read() == b"%d" % i
        assert value.metadata == {"i": i, "key": key}
        assert list(store.query_keys(key=key)) == [key]
    for key in keys:
        store.delete(key)
        assert not store.exists(key)
    assert not set(keys) & set(store.query_keys())


def test_case_insensitive_file_system_safe(store, root):
    # Whatever the file system, the file names of case variants differ in
    # more than case, so they cannot share a file on NTFS/APFS either.
    keys = ["readme", "README", "ReadMe"]
    for key in keys:
        store.from_bytes(key, key.encode())
    names = [n for n in os.listdir(root) if n.endswith(".metadata")]
    assert len({n.lower() for n in names}) == 3


# -- crash safety -----------------------------------------------------------------------


def test_temporary_files_are_not_keys(store, root):
    store.from_bytes("k", b"x")
    for leftover in (".tmp-abc.tmp", ".tmp-def.tmp.metadata", "junk.metadata", "z.1234.data"):
        with open(os.path.join(root, leftover), "wb") as f:
            f.write(b"{not json")
    fresh = FileSystemStore(root)
    assert list(fresh.query_keys()) == ["k"]


def test_old_leftovers_are_collected(store, root):
    store.from_bytes("k", b"x")
    old = time.time() - 2 * 3600
    leftovers = [".tmp-abc.tmp", "k.0123456789abcdef.data"]
    for leftover in leftovers:
        path = os.path.join(root, leftover)
        with open(path, "wb") as f:
            f.write(b"partial")
        os.utime(path, (old, old))
    recent = os.path.join(root, ".tmp-recent.tmp")
    with open(recent, "wb") as f:
        f.write(b"in progress")
    list(FileSystemStore(root).query_keys())  # a full scan
    for leftover in leftovers:
        assert not os.path.exists(os.path.join(root, leftover))
    assert os.path.exists(recent)  # may belong to a live writer
    assert store.to_bytes("k") == b"x"


def test_failed_write_leaves_no_files(store, root):
    store.from_bytes("k", b"old")
    before = listing(root)

    class Failing:
        def __init__(self):
            self.n = 0

        def read(self, size=-1):
            self.n += 1
            if self.n > 3:
                raise OSError("boom")
            return b"x" * 10

    with pytest.raises(OSError, match="boom"):
        store.set("k", (Failing(), {"new": True}), 10)
    assert listing(root) == before
    assert store.to_bytes("k") == b"old"


def test_value_is_a_snapshot(store):
    store.set("k", (BytesIO(b"old"), {"v": 1}))
    value = store.get("k")
    store.set("k", (BytesIO(b"new"), {"v": 2}))
    with value.data as data:
        assert data.read() == b"old"
    assert value.metadata == {"v": 1}
    assert store.get_metadata("k") == {"v": 2}


def test_set_does_not_close_callers_stream(store):
    stream = BytesIO(b"abc")
    store.set("k", (stream, {}))
    assert not stream.closed


def test_update_metadata_merges_and_requires_key(store):
    store.set("k", (BytesIO(b"abc"), {"a": 1, "b": 2}))
    store.update_metadata("k", {"b": 3, "c": 4})
    assert store.get_metadata("k") == {"a": 1, "b": 3, "c": 4}
    assert store.to_bytes("k") == b"abc"
    with pytest.raises(KeyError):
        store.update_metadata("missing", {"a": 1})
    assert not store.exists("missing")


def test_set_metadata_and_set_data_emit_events(store):
    seen = []
    store.event_manager.connect(StoreModificationEvent, seen.append)
    store.set_metadata("k", {"a": 1})  # creates the key with empty data
    assert store.to_bytes("k") == b""
    store.set_data("k", BytesIO(b"new"))
    store.set_metadata("k", {"a": 2})
    assert [(type(e).__name__, e.metadata) for e in seen] == [
        ("StoreSetEvent", {"a": 1}),
        ("StoreUpdateEvent", {"a": 1}),
        ("StoreUpdateEvent", {"a": 2}),
    ]
    assert isinstance(seen[-1], StoreUpdateEvent)
    assert store.to_bytes("k") == b"new"


def test_created_kept_and_modified_bumped(store):
    store.from_bytes("k", b"a")
    first = store.get("k")
    store.set_metadata("k", {"x": 1})
    second = store.get("k")
    assert second.created == first.created
    assert second.modified >= first.modified


def test_durable_store_round_trips(root):
    store = FileSystemStore(root, durable=True)
    store.set("k", (BytesIO(b"abc"), {"a": 1}))
    store.set_metadata("k", {"a": 2})
    assert store.to_bytes("k") == b"abc"
    store.delete("k")
    assert not store.exists("k")


def test_to_file_and_from_file(store, tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(3 * 1048576 + 17))
    store.set_metadata("k", {"a": 1})
    store.from_file("k", source)
    assert store.get_metadata("k") == {"a": 1}
    target = tmp_path / "out" / "target.bin"
    target.parent.mkdir()
    store.to_file("k", target)
    assert target.read_bytes() == source.read_bytes()
    assert os.listdir(target.parent) == ["target.bin"]


def test_file_copies_report_progress(store, tmp_path):
    from encore.storage.events import (
        StoreProgressEndEvent,
        StoreProgressEvent,
        StoreProgressStartEvent,
    )

    size = 20 * 1048576 + 5
    source = tmp_path / "source.bin"
    with open(source, "wb") as f:
        f.truncate(size)
    seen = []
    store.event_manager.connect(StoreProgressEvent, seen.append)
    with open(source, "rb") as stream:
        store.set("k", (stream, {}))  # a real file: copied by the kernel
        assert stream.read() == b""  # and left at its end
    for copy in (lambda: store.from_file("k", source), lambda: store.to_file("k", tmp_path / "o")):
        del seen[:]
        copy()
        assert isinstance(seen[0], StoreProgressStartEvent)
        assert isinstance(seen[-1], StoreProgressEndEvent)
        assert seen[-2].step == size
        assert all(event.key == "k" for event in seen)
    assert os.path.getsize(tmp_path / "o") == size


CRASH_WRITER = """
    import hashlib, sys
    from encore.storage.filesystem_store import FileSystemStore

    root, size = sys.argv[1], int(sys.argv[2])
    chunk = b"N" * 1048576
    digest = hashlib.sha256(b"N" * size).hexdigest()

    class Stream:
        sent = 0
        def read(self, n=-1):
            if self.sent >= size:
                return b""
            if self.sent >= size // 2:
                print("halfway", flush=True)
                sys.stdin.readline()  # the parent kills us here
            self.sent += len(chunk)
            return chunk

    FileSystemStore(root).set("big", (Stream(), {"sha256": digest}))
    print("done", flush=True)
"""


def run_child(code, *args, **kwargs):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args], env=env, **kwargs
    )


def assert_consistent(store, key):
    value = store.get(key)
    digest = hashlib.sha256()
    with value.data as data:
        for chunk in iter(lambda: data.read(1048576), b""):
            digest.update(chunk)
    assert digest.hexdigest() == value.metadata["sha256"]
    return value.metadata["sha256"]


@pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")
def test_sigkill_mid_write_keeps_old_value(root):
    size = 64 * 1048576
    store = FileSystemStore(root)
    old = b"O" * size
    store.set("big", (BytesIO(old), {"sha256": hashlib.sha256(old).hexdigest()}))
    del old
    child = run_child(CRASH_WRITER, root, str(size), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert child.stdout.readline() == b"halfway\n"
        child.send_signal(signal.SIGKILL)
        assert child.wait(WAIT) == -signal.SIGKILL
    finally:
        child.kill()
        child.wait(WAIT)
    fresh = FileSystemStore(root)
    assert assert_consistent(fresh, "big") == hashlib.sha256(b"O" * size).hexdigest()
    assert list(fresh.query_keys()) == ["big"]


@pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")
def test_sigkill_at_random_times_never_tears(root):
    size = 4 * 1048576
    store = FileSystemStore(root)
    old = b"O" * size
    store.set("big", (BytesIO(old), {"sha256": hashlib.sha256(old).hexdigest()}))
    code = CRASH_WRITER.replace("sys.stdin.readline()", "pass")
    for delay in (0.0, 0.02, 0.05, 0.1, 0.2):
        child = run_child(code, root, str(size), stdout=subprocess.DEVNULL)
        try:
            time.sleep(delay)
            child.kill()
        finally:
            child.wait(WAIT)
        assert_consistent(FileSystemStore(root), "big")


# -- the query cache ------------------------------------------------------------------


def test_query_sees_writes_of_another_store_object(root):
    reader = FileSystemStore(root)
    writer = FileSystemStore(root)
    writer.set("a", (BytesIO(b"1"), {"tag": 1}))
    assert list(reader.query_keys(tag=1)) == ["a"]
    writer.set_metadata("a", {"tag": 2})
    writer.set("b", (BytesIO(b"2"), {"tag": 2}))
    assert sorted(reader.query_keys(tag=2)) == ["a", "b"]
    assert list(reader.query_keys(tag=1)) == []
    writer.delete("a")
    assert list(reader.query(tag=2)) == [("b", {"tag": 2})]


def test_query_sees_writes_of_another_process(root):
    reader = FileSystemStore(root)
    assert list(reader.query_keys()) == []
    code = """
        import sys
        from io import BytesIO
        from encore.storage.filesystem_store import FileSystemStore
        store = FileSystemStore(sys.argv[1])
        for i in range(20):
            store.set("k%d" % i, (BytesIO(b"x"), {"i": i, "odd": i % 2}))
        store.delete("k0")
    """
    assert run_child(code, root).wait(WAIT) == 0
    assert sorted(reader.query_keys(odd=0)) == sorted(f"k{i}" for i in range(2, 20, 2))
    assert len(list(reader.query_keys())) == 19


def test_foreign_changes_found_by_full_rescan(root):
    store = FileSystemStore(root)
    store.set("a", (BytesIO(b"1"), {"tag": 1}))
    assert list(store.query_keys(tag=1)) == ["a"]
    # Another program rewrites the record without journaling it.
    path = os.path.join(root, "a.metadata")
    with open(path, "rb") as f:
        header, inline = f.read().split(b"\n", 1)
    record = json.loads(header)
    record["metadata"] = {"tag": 9}
    with open(path, "wb") as f:
        f.write(json.dumps(record).encode() + b"\n" + inline)
    store.full_rescan_interval = 0
    assert list(store.query_keys(tag=9)) == ["a"]


def test_query_results_are_copies(store):
    store.set("a", (BytesIO(b"1"), {"nested": {"x": 1}}))
    (key, metadata), = store.query()
    metadata["nested"]["x"] = 2
    assert list(store.query()) == [("a", {"nested": {"x": 1}})]


# -- stores created by the original EnCore ------------------------------------------------


def test_legacy_store_reads(tmp_path):
    make_legacy_store(str(tmp_path))
    write_legacy_key(str(tmp_path), "alpha", b"A", {"kind": "letter"})
    write_legacy_key(str(tmp_path), "beta.txt", b"BB", {"kind": "letter", "n": 2})
    store = FileSystemStore(tmp_path)
    assert store.version == 0
    assert store.to_bytes("alpha") == b"A"
    value = store.get("beta.txt")
    assert value.size == 2
    assert value.metadata == {"kind": "letter", "n": 2}
    assert sorted(store.query_keys(kind="letter")) == ["alpha", "beta.txt"]
    assert list(store.glob("be*")) == ["beta.txt"]
    assert store.get_data_range("beta.txt", 1, 2).read() == b"B"


def test_legacy_store_writes_keep_layout(tmp_path):
    make_legacy_store(str(tmp_path))
    store = FileSystemStore(tmp_path)
    store.set("gamma", (BytesIO(b"G"), {"é": "ü"}))
    assert (tmp_path / "gamma.data").read_bytes() == b"G"
    assert json.loads((tmp_path / "gamma.metadata").read_text("utf-8")) == {"é": "ü"}
    store.update_metadata("gamma", {"x": 1})
    assert json.loads((tmp_path / "gamma.metadata").read_text("utf-8")) == {"é": "ü", "x": 1}
    store.delete("gamma")
    assert listing(tmp_path) == [".FSStore"]


def test_legacy_store_refuses_unsafe_keys(tmp_path):
    make_legacy_store(str(tmp_path))
    store = FileSystemStore(tmp_path)
    outside = listing(tmp_path.parent)
    for key in ("../outside", "a/b", "/abs", "back\\slash", "", ".", "..", "nul\x00", "x" * 300):
        with pytest.raises(ValueError, match="legacy|too long"):
            store.set(key, (BytesIO(b"x"), {}))
        with pytest.raises(KeyError):
            store.get(key)
        assert not store.exists(key)
    assert listing(tmp_path.parent) == outside
    assert listing(tmp_path) == [".FSStore"]
