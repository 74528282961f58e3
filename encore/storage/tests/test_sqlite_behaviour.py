"""SqliteStore's own behaviour: safety, index modes, schema, streaming, processes."""

from __future__ import annotations

import io
import json
import os
import pickle
import sqlite3
import subprocess
import sys
import textwrap
import threading
from io import BytesIO

import pytest

from encore.events.api import EventManager
from encore.storage.abstract_store import StoreError
from encore.storage.events import StoreModificationEvent, StoreSetEvent
from encore.storage.sqlite_store import CHUNK_SIZE, SqliteStore

HOSTILE_TABLES = [
    'x"; DROP TABLE victim; --',
    "with space",
    "it's",
    "[bracket]",
    "`tick`",
    "caf\u00e9 \U0001f389",
    'a"b"c',
    "store:chunks-like",
    "main.store",
]

HOSTILE_NAMES = [
    'q"uote',
    '"); DROP TABLE victim; --',
    "with space",
    "A",
    "a",
    "key",
    "id",
    "metadata",
    "rowid",
    "data",
    "caf\u00e9",
    "\U0001f389",
    "m_61",
    "",
    "x" * 300,
]


@pytest.fixture
def db_path(tmp_path):
    return str(tmp_path / "store.db")


def make(location=":memory:", **kwargs):
    kwargs.setdefault("event_manager", EventManager())
    store = SqliteStore(location, **kwargs)
    store.connect()
    return store


def put(store, key, data=b"", metadata=None):
    store.set(key, (BytesIO(data), {} if metadata is None else metadata))


def table_names(path):
    with sqlite3.connect(path) as conn:
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    return names


# -- safety -------------------------------------------------------------------


def test_module_registers_no_global_adapters_or_converters():
    # Importing the module (done above) must not change sqlite3 for everyone.
    assert dict not in {key[0] for key in sqlite3.adapters}
    assert "DICT" not in sqlite3.converters and "dict" not in sqlite3.converters


@pytest.mark.parametrize("table", HOSTILE_TABLES)
def test_hostile_table_names_are_quoted(db_path, table):
    with sqlite3.connect(db_path) as conn:
        conn.execute("CREATE TABLE victim (x)")
        conn.execute("INSERT INTO victim VALUES (42)")
    conn.close()
    store = make(db_path, table=table)
    put(store, "k", b"data", {"name": "v", "n": 1})
    assert store.to_bytes("k") == b"data"
    assert list(store.query_keys(name="v")) == ["k"]
    assert list(store.glob("k*")) == ["k"]
    store.delete("k")
    store.disconnect()
    assert table in table_names(db_path)
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT x FROM victim").fetchall() == [(42,)]
    conn.close()


def test_hostile_metadata_names_are_columns_safely(db_path):
    with sqlite3.connect(db_path) as conn:
        conn.execute("CREATE TABLE victim (x)")
    conn.close()
    store = make(db_path)
    for i, name in enumerate(HOSTILE_NAMES):
        put(store, f"k{i}", b"", {name: i, "common": "yes"})
    put(store, "both", b"", {"A": "upper", "a": "lower"})
    for i, name in enumerate(HOSTILE_NAMES):
        assert list(store.query_keys(**{name: i})) == [f"k{i}"], name
        assert store.get_metadata(f"k{i}") == {name: i, "common": "yes"}
    assert sorted(store.query_keys(common="yes")) == sorted(f"k{i}" for i in
                                                            range(len(HOSTILE_NAMES)))
    assert list(store.query_keys(A="upper")) == ["both"]
    assert list(store.query_keys(a="lower")) == ["both"]
    assert list(store.query_keys(A="lower")) == []
    assert set(HOSTILE_NAMES) <= store.index_columns
    store.disconnect()
    assert "victim" in table_names(db_path)
    # Reconnecting reads every one of those columns back from the schema.
    again = make(db_path)
    assert set(HOSTILE_NAMES) <= again.index_columns
    assert list(again.query_keys(**{'q"uote': 0})) == ["k0"]
    again.disconnect()


def test_two_stores_in_one_database_do_not_collide(db_path):
    first = make(db_path, table="one")
    second = make(db_path, table="two")
    put(first, "k", b"1", {"shared": 1})
    put(second, "k", b"2", {"shared": 2})
    assert list(first.query_keys(shared=1)) == ["k"]
    assert list(second.query_keys(shared=2)) == ["k"]
    assert list(first.query_keys(shared=2)) == []
    assert first.to_bytes("k") == b"1" and second.to_bytes("k") == b"2"


def test_metadata_is_json_not_pickle(db_path):
    store = make(db_path)
    put(store, "k", b"x", {"a": [1, 2], "b": {"c": None}})
    store.disconnect()
    with sqlite3.connect(db_path) as conn:
        text = conn.execute('SELECT metadata FROM "store"').fetchone()[0]
    conn.close()
    assert json.loads(text) == {"a": [1, 2], "b": {"c": None}}


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_upstream_pickled_table_is_refused_without_unpickling(tmp_path):
    path = str(tmp_path / "upstream.db")
    marker = tmp_path / "pwned"
    with sqlite3.connect(path) as conn:
        conn.execute('CREATE TABLE "store" (key text primary key, metadata dict, '
                     'created float, modified float, data blob)')
        conn.execute('INSERT INTO "store" VALUES (?, ?, 0, 0, ?)',
                     ("k", pickle.dumps(_Boom(), protocol=2), b""))
    conn.close()
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        store = SqliteStore(path)
        with pytest.raises(StoreError, match="pickled"):
            store.connect()
        assert not store.is_connected()
    finally:
        os.chdir(cwd)
    assert not marker.exists()


@pytest.mark.parametrize("content", [b"this is not a database, just text\n" * 100,
                                     b"SQLite format 3\x00" + b"\xff" * 200])
def test_non_sqlite_file_raises_and_is_not_modified(tmp_path, content):
    path = tmp_path / "bogus.db"
    path.write_bytes(content)
    store = SqliteStore(str(path))
    with pytest.raises(StoreError, match="bogus.db"):
        store.connect()
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bogus.db"]
    assert not store.is_connected()


def test_missing_directory_raises_store_error(tmp_path):
    store = SqliteStore(str(tmp_path / "no" / "such" / "dir.db"))
    with pytest.raises(StoreError):
        store.connect()


def test_foreign_table_with_same_name_is_refused(db_path):
    with sqlite3.connect(db_path) as conn:
        conn.execute('CREATE TABLE "store" (a, b)')
    conn.close()
    with pytest.raises(StoreError, match="not made by SqliteStore"):
        make(db_path)


@pytest.mark.parametrize("table", ["", "nul\x00", "sqlite_master", "\udc80"])
def test_bad_table_names_are_rejected(table):
    with pytest.raises((TypeError, ValueError)):
        SqliteStore(table=table)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError):
        SqliteStore(index="sometimes")
    with pytest.raises(ValueError):
        SqliteStore(synchronous="off")
    with pytest.raises(TypeError):
        SqliteStore(index_columns="abc")
    with pytest.raises(TypeError):
        SqliteStore(index_columns=[1])


# -- lifecycle ----------------------------------------------------------------


def test_closed_store_raises_clear_error():
    store = SqliteStore()
    with pytest.raises(StoreError, match="not connected"):
        put(store, "k")
    store.connect()
    put(store, "k", b"x")
    reader = store.get_data("k")
    store.disconnect()
    assert not store.is_connected()
    for call in (lambda: put(store, "k"), lambda: store.get("k"),
                 lambda: store.delete("k"), lambda: list(store.query_keys()),
                 lambda: store.set_metadata("k", {}), lambda: list(store.glob("*"))):
        with pytest.raises(StoreError, match="not connected"):
            call()
    with pytest.raises(StoreError, match="not connected"), store.transaction():
        pass
    assert reader.read() == b"x"  # small values are already in memory


def test_connect_twice_and_reconnect_file(db_path):
    store = make(db_path)
    store.connect()
    put(store, "k", b"kept", {"m": 1})
    store.disconnect()
    store.disconnect()
    store.connect()
    assert store.to_bytes("k") == b"kept"
    assert store.info() == {"readonly": False, "location": db_path, "table": "store"}


def test_file_database_uses_wal_and_synchronous_setting(db_path):
    store = make(db_path, synchronous="full")
    mode = store._conn.execute("PRAGMA journal_mode").fetchone()[0]
    sync = store._conn.execute("PRAGMA synchronous").fetchone()[0]
    assert (mode, sync) == ("wal", 2)
    store.disconnect()
    store = make(db_path)
    assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 1


def test_path_like_location(tmp_path):
    store = make(tmp_path / "p.db")
    put(store, "k", b"v")
    assert store.location == str(tmp_path / "p.db")


def test_lone_surrogate_key_is_a_value_error():
    store = make()
    with pytest.raises(ValueError, match="surrogate"):
        put(store, "bad\udc80")
    with pytest.raises(ValueError, match="surrogate"):
        store.get("bad\udc80")


# -- metadata -----------------------------------------------------------------


@pytest.mark.parametrize("metadata", [{"a": b"bytes"}, {"a": {1: "int key"}}, {"a": {1, 2}},
                                      {1: "top-level int name"}, {"a": [object()]}])
def test_metadata_that_is_not_json_raises_type_error(metadata):
    store = make()
    put(store, "k", b"old", {"m": 1})
    with pytest.raises(TypeError):
        put(store, "k", b"new", metadata)
    with pytest.raises(TypeError):
        store.set_metadata("k", metadata)
    with pytest.raises(TypeError):
        store.update_metadata("k", metadata)
    assert store.to_bytes("k") == b"old"
    assert store.get_metadata("k") == {"m": 1}


def test_tuples_come_back_as_lists_and_values_are_copies():
    store = make()
    metadata = {"t": (1, 2), "nested": {"l": [1]}}
    put(store, "k", b"", metadata)
    metadata["nested"]["l"].append(2)
    assert store.get_metadata("k") == {"t": [1, 2], "nested": {"l": [1]}}


def test_set_metadata_on_new_key_creates_empty_data_and_emits_set():
    store = make()
    seen = []
    store.event_manager.connect(StoreModificationEvent, seen.append)
    store.set_metadata("new", {"a": 1})
    assert store.to_bytes("new") == b""
    assert [type(e) for e in seen] == [StoreSetEvent]
    assert list(store.query_keys(a=1)) == ["new"]


# -- index modes and query semantics ----------------------------------------


def column_names(store):
    return [row[1] for row in store._conn.execute(f"PRAGMA table_info({store._t})")]


def test_every_write_path_keeps_dynamic_index_in_sync():
    store = make()
    put(store, "k", b"", {"a": 1})
    assert list(store.query_keys(a=1)) == ["k"]
    store.set_metadata("k", {"a": 2})
    assert list(store.query_keys(a=1)) == [] and list(store.query_keys(a=2)) == ["k"]
    store.update_metadata("k", {"a": 3, "b": "new"})
    assert list(store.query_keys(a=3, b="new")) == ["k"]
    store.set_data("k", BytesIO(b"data"))
    assert list(store.query_keys(a=3)) == ["k"]
    store.multiset(["k", "j"], [(BytesIO(b""), {"a": 4}), (BytesIO(b""), {"a": 4})])
    assert sorted(store.query_keys(a=4)) == ["j", "k"]
    assert list(store.query_keys(b="new")) == []  # the column was reset to NULL
    store.multiset_metadata(["k"], [{"a": 5}])
    store.multiupdate_metadata(["j"], [{"c": True}])
    assert list(store.query_keys(a=5)) == ["k"]
    assert list(store.query_keys(c=1)) == ["j"]
    store.delete("j")
    assert list(store.query_keys(c=True)) == []


def test_query_keys_with_only_indexed_arguments_runs_in_sql():
    store = make(index="static", index_columns=["a"])
    for i in range(20):
        put(store, f"k{i}", b"", {"a": i % 3, "b": i})
    statements = []
    store._conn.set_trace_callback(statements.append)
    assert sorted(store.query_keys(a=1)) == sorted(f"k{i}" for i in range(20) if i % 3 == 1)
    store._conn.set_trace_callback(None)
    assert any('"m_61" = ' in sql for sql in statements), statements
    assert not any("metadata" in sql for sql in statements if sql.startswith("SELECT id"))


def test_static_mode_creates_only_its_columns():
    store = make(index="static", index_columns=["a"])
    put(store, "k", b"", {"a": 1, "b": 2})
    assert store.index_columns == {"a"}
    assert [c for c in column_names(store) if c.startswith("m_")] == ["m_61"]
    assert list(store.query_keys(b=2)) == ["k"]  # answered by scanning


def test_no_index_mode_creates_no_columns():
    store = make(index=None)
    put(store, "k", b"", {"a": 1})
    assert [c for c in column_names(store) if c.startswith("m_")] == []
    assert list(store.query_keys(a=1.0)) == ["k"]


def test_reconnect_reloads_dynamic_columns(db_path):
    store = make(db_path)
    put(store, "k", b"", {"a": 1, "b": "x"})
    store.disconnect()
    again = make(db_path)
    assert again.index_columns == {"a", "b"}
    put(again, "j", b"", {"a": 1, "c": 2})  # upstream: "duplicate column name"
    assert sorted(again.query_keys(a=1)) == ["j", "k"]


def test_new_index_columns_on_existing_table_are_backfilled(db_path):
    store = make(db_path, index=None)
    for i in range(10):
        put(store, f"k{i}", b"", {"a": i % 2, "b": [i]})
    store.disconnect()
    statements = []
    again = SqliteStore(db_path, index="static", index_columns=["a", "b"])
    again.connect()
    assert again.index_columns == {"a", "b"}
    values = again._conn.execute('SELECT key, "m_61" FROM "store" ORDER BY key').fetchall()
    assert values == [(f"k{i}", i % 2) for i in range(10)]
    again._conn.set_trace_callback(statements.append)
    assert sorted(again.query_keys(a=1)) == [f"k{i}" for i in range(1, 10, 2)]
    assert list(again.query_keys(b=[3.0])) == ["k3"]
    assert any('"m_61" = ' in sql for sql in statements)


def test_columns_added_by_another_connection_are_maintained(db_path):
    writer = make(db_path, index=None)
    dynamic = make(db_path)
    put(writer, "k", b"", {"a": 1})
    put(dynamic, "j", b"", {"a": 1})  # adds column a, backfilling k
    assert sorted(dynamic.query_keys(a=1)) == ["j", "k"]
    put(writer, "k", b"", {"a": 2})  # the writer must now keep column a in sync
    assert list(dynamic.query_keys(a=1)) == ["j"]
    assert list(dynamic.query_keys(a=2)) == ["k"]


def test_failed_transaction_forgets_columns_it_added():
    store = make()
    with pytest.raises(ZeroDivisionError), store.transaction():
        put(store, "k", b"", {"brand_new": 1})
        1 / 0  # noqa: B018
    assert "brand_new" not in store.index_columns
    put(store, "k", b"", {"brand_new": 2})
    assert list(store.query_keys(brand_new=2)) == ["k"]


@pytest.mark.parametrize("index", ["dynamic", "static", None])
def test_numbers_compare_like_python(index):
    store = make(index=index, index_columns=["v"] if index == "static" else None)
    values = {"int1": 1, "float1": 1.0, "true": True, "zero": 0, "false": False,
              "negzero": -0.0, "half": 0.5, "big": 2**70, "bigf": float(2**70),
              "bigger": 2**70 + 1, "huge": 10**400, "none": None, "str1": "1",
              "list": [1, True], "listf": [1.0, 1], "dict": {"x": 1, "y": [2]},
              "dictf": {"y": [2.0], "x": True}, "inf": float("inf")}
    for key, value in values.items():
        put(store, key, b"", {"v": value})
    for probe in [1, 0, 0.5, 2**70, 2**70 + 1, 10**400, None, "1", [1, 1], (1, 1),
                  {"x": 1, "y": [2]}, float("inf"), float("nan"), b"1", 1.5]:
        expected = sorted(k for k, v in values.items() if v == probe)
        assert sorted(store.query_keys(v=probe)) == expected, probe
        assert sorted(k for k, _ in store.query(v=probe)) == expected, probe


def test_query_select_and_copies():
    store = make()
    put(store, "k", b"", {"a": 1, "b": [1], "c": 3})
    result = list(store.query(["a", "b", "missing"], c=3))
    assert result == [("k", {"a": 1, "b": [1]})]
    result[0][1]["b"].append(2)
    assert store.get_metadata("k") == {"a": 1, "b": [1], "c": 3}
    with pytest.raises(TypeError):
        list(store.query("a"))


def test_queries_page_through_large_results(monkeypatch):
    from encore.storage import sqlite_store

    monkeypatch.setattr(sqlite_store, "_PAGE", 7)
    store = make()
    store.multiset([f"k{i:03}" for i in range(50)],
                   [(BytesIO(b""), {"even": i % 2 == 0}) for i in range(50)])
    assert sorted(store.query_keys()) == [f"k{i:03}" for i in range(50)]
    assert sorted(store.query_keys(even=True)) == [f"k{i:03}" for i in range(0, 50, 2)]
    assert sorted(store.glob("k0*")) == [f"k{i:03}" for i in range(50) if i < 100]
    assert len(list(store.query(even=False))) == 25


@pytest.mark.parametrize("pattern", ["*", "a*", "a?c", "[ab]*", "[!a]*", "*c", "a[", "a[]]",
                                     "\u00e9*", "[*]", "*\x00*", "a\\*", "", "\U0010ffff*",
                                     "a\ud7ff*"])
def test_glob_matches_fnmatch_exactly(pattern):
    import fnmatch
    import re

    keys = ["a", "abc", "aXc", "bcd", "ABC", "a[", "a]", "a[]]", "\u00e9t\u00e9", "*", "a\\b",
            "nul\x00c", "a\nc", "", "\U0010ffffz", "a\ud7ffb", "a\ue000"]
    store = make()
    for key in keys:
        put(store, key)
    regex = re.compile(fnmatch.translate(pattern), re.DOTALL)
    assert sorted(store.glob(pattern)) == sorted(k for k in keys if regex.match(k))


def test_glob_uses_the_key_index():
    store = make()
    for i in range(20):
        put(store, f"key{i}")
    statements = []
    store._conn.set_trace_callback(statements.append)
    assert sorted(store.glob("key1*")) == ["key1"] + [f"key1{i}" for i in range(10)]
    store._conn.set_trace_callback(None)
    plans = [str(store._conn.execute("EXPLAIN QUERY PLAN " + sql).fetchall())
             for sql in statements if sql.startswith("SELECT")]
    assert plans and all("COVERING INDEX" in plan for plan in plans), plans
    assert not any("SCAN store" in plan and "INDEX" not in plan for plan in plans), plans


# -- streaming ------------------------------------------------------------------


class FailingAfter(io.RawIOBase):
    """A stream that yields *good* bytes then raises."""

    def __init__(self, good):
        self.good = good

    def readable(self):
        return True

    def read(self, size=-1):
        if self.good <= 0:
            raise OSError("stream broke")
        n = min(size if size and size > 0 else self.good, self.good)
        self.good -= n
        return b"z" * n


@pytest.mark.parametrize("old_size", [10, 3 * CHUNK_SIZE + 5])
def test_stream_failing_midway_leaves_old_value(old_size):
    store = make()
    old = bytes(range(256)) * (old_size // 256) + b"x" * (old_size % 256)
    put(store, "k", old, {"m": "old"})
    with pytest.raises(OSError, match="stream broke"):
        store.set("k", (FailingAfter(2 * CHUNK_SIZE + 100), {"m": "new"}))
    with pytest.raises(OSError):
        store.set_data("k", FailingAfter(5 * CHUNK_SIZE))
    with pytest.raises(OSError):
        store.set("new", (FailingAfter(2 * CHUNK_SIZE), {}))
    assert store.to_bytes("k") == old
    assert store.get_metadata("k") == {"m": "old"}
    assert not store.exists("new")
    assert store._conn.execute(f"SELECT count(*) FROM {store._c}").fetchone()[0] == (
        (old_size - 1) // CHUNK_SIZE)


def test_failed_write_inside_transaction_keeps_transaction_usable():
    store = make()
    put(store, "k", b"old")
    with store.transaction():
        put(store, "a", b"a")
        with pytest.raises(OSError):
            store.set_data("k", FailingAfter(2 * CHUNK_SIZE))
        put(store, "b", b"b")
    assert (store.to_bytes("k"), store.to_bytes("a"), store.to_bytes("b")) == (
        b"old", b"a", b"b")


def test_large_value_round_trip_and_ranges():
    store = make()
    size = 3 * CHUNK_SIZE + 17
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    put(store, "big", payload, {"m": 1})
    value = store.get("big")
    assert value.size == size
    with value as data:
        assert data.read(10) == payload[:10]
        assert data.read(CHUNK_SIZE) == payload[10 : CHUNK_SIZE + 10]
        data.seek(size - 5)
        assert data.read() == payload[-5:]
    for start, end in [(0, 1), (CHUNK_SIZE - 3, CHUNK_SIZE + 3), (2 * CHUNK_SIZE, None),
                       (None, 5), (size - 1, size + 100), (size + 5, None), (7, 7)]:
        with store.get_data_range("big", start, end) as data:
            assert data.read() == payload[start:end], (start, end)
        with value.range(start, end) as data:
            assert data.read() == payload[start:end], (start, end)
    assert store.to_bytes("big") == payload
    put(store, "big", b"small now")
    assert store.to_bytes("big") == b"small now"
    assert store._conn.execute(f"SELECT count(*) FROM {store._c}").fetchone()[0] == 0


def test_range_reads_only_the_chunks_it_needs():
    store = make()
    put(store, "big", b"q" * (6 * CHUNK_SIZE))
    reads = []
    original = store._read_chunk
    store._read_chunk = lambda *args: reads.append(args[3]) or original(*args)
    with store.get_data_range("big", 4 * CHUNK_SIZE + 10, 4 * CHUNK_SIZE + 20) as data:
        assert data.read() == b"q" * 10
    assert reads == [4]


def test_reading_a_value_replaced_meanwhile_raises():
    store = make()
    put(store, "big", b"1" * (3 * CHUNK_SIZE))
    data = store.get_data("big")
    assert data.read(10) == b"1" * 10
    put(store, "big", b"2" * (3 * CHUNK_SIZE))
    with pytest.raises(StoreError, match="changed or deleted"):
        data.read()
    data = store.get_data("big")
    store.delete("big")
    data.read(CHUNK_SIZE)  # the first chunk was already fetched
    with pytest.raises(StoreError, match="changed or deleted"):
        data.read(1)


def test_progress_events_use_the_store_manager():
    from encore.storage.events import StoreProgressEvent

    store = make()
    seen = []
    store.event_manager.connect(StoreProgressEvent, seen.append)
    put(store, "big", b"p" * (2 * CHUNK_SIZE + 1))
    assert seen and seen[-1].exit_state == "normal"


# -- threads and processes ------------------------------------------------------


def test_transaction_isolated_from_other_threads():
    store = make()
    started = threading.Event()
    release = threading.Event()
    results = []

    def other():
        started.wait(10)
        put(store, "other", b"o")  # must wait for the transaction below
        results.append(store.exists("inside"))

    thread = threading.Thread(target=other, daemon=True)
    thread.start()
    with pytest.raises(ZeroDivisionError), store.transaction():
        put(store, "inside", b"i")
        started.set()
        release.wait(0.2)
        1 / 0  # noqa: B018
    thread.join(30)
    assert not thread.is_alive()
    assert results == [False]
    assert store.exists("other") and not store.exists("inside")


WORKER = textwrap.dedent("""
    import sys
    from io import BytesIO
    from encore.storage.sqlite_store import SqliteStore

    path, worker, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    store = SqliteStore(path, timeout=60)
    store.connect()
    for i in range(count):
        store.set(f"w{worker}-{i}", (BytesIO(b"x" * (i % 7)), {"worker": worker, "i": i,
                                                              f"only{worker}": True}))
        if i % 10 == 0:
            with store.transaction():
                store.update_metadata(f"w{worker}-{i}", {"touched": worker})
    store.disconnect()
""")


def test_several_processes_write_one_file(db_path):
    workers, count = 4, 40
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    processes = [subprocess.Popen([sys.executable, "-c", WORKER, db_path, str(w), str(count)],
                                  env=env, stderr=subprocess.PIPE)
                 for w in range(workers)]
    errors = []
    for process in processes:
        try:
            _, stderr = process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
        if process.returncode != 0:
            errors.append(stderr.decode(errors="replace"))
    assert errors == []
    store = make(db_path)
    assert len(list(store.query_keys())) == workers * count
    for w in range(workers):
        assert len(list(store.query_keys(worker=w))) == count
        assert len(list(store.query_keys(**{f"only{w}": True}))) == count
        assert len(list(store.query_keys(touched=w))) == count // 10
    assert {f"only{w}" for w in range(workers)} <= store.index_columns


def test_failed_column_addition_is_undone(monkeypatch):
    store = make()
    put(store, "k", b"", {"old": 1})
    original = store._add_columns_unguarded

    def add_then_fail(conn, names):
        original(conn, names)
        raise sqlite3.OperationalError("disk I/O error (simulated)")

    monkeypatch.setattr(store, "_add_columns_unguarded", add_then_fail)
    with pytest.raises(sqlite3.OperationalError, match="simulated"):
        put(store, "j", b"", {"new": 1})
    assert store.index_columns == {"old"}
    assert [c for c in column_names(store) if c.startswith("m_")] == ["m_6f6c64"]
    assert not store.exists("j")
    monkeypatch.undo()
    put(store, "j", b"", {"new": 1})
    assert list(store.query_keys(new=1)) == ["j"]


def test_single_statement_failures_inside_a_transaction_keep_it_usable():
    store = make()
    put(store, "k", b"v", {"m": 1})
    with store.transaction():
        put(store, "a", b"a")
        with pytest.raises(KeyError):
            store.update_metadata("missing", {"x": 1})
        with pytest.raises(KeyError):
            store.delete("missing")
        store.update_metadata("k", {"m": 2})
    assert store.to_bytes("a") == b"a"
    assert store.get_metadata("k") == {"m": 2}


def test_large_writes_are_checkpointed_in_the_background(db_path):
    store = make(db_path)
    put(store, "big", b"c" * (6 * CHUNK_SIZE))
    checkpointer = store._checkpointer
    assert checkpointer is not None
    store.disconnect()
    assert checkpointer._thread is None or not checkpointer._thread.is_alive()
    assert not [t for t in threading.enumerate() if t.name.startswith("SqliteStore checkpoints")
                and t.name.endswith(db_path)]
    with sqlite3.connect(db_path) as conn:
        size = conn.execute('SELECT size FROM "store" WHERE key = ?', ("big",)).fetchone()[0]
    conn.close()
    assert size == 6 * CHUNK_SIZE
    # The log was copied into the database file.
    assert os.path.getsize(db_path) > 6 * CHUNK_SIZE


def test_disconnect_inside_a_transaction_fails_cleanly(db_path):
    store = make(db_path)
    put(store, "k", b"old")
    with pytest.raises(StoreError, match="not connected"), store.transaction():
        put(store, "k", b"new")
        store.disconnect()
    store.connect()
    assert store.to_bytes("k") == b"old"
    # The store's lock was released: another thread can write.
    thread = threading.Thread(target=put, args=(store, "t", b"t"), daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive() and store.exists("t")


def test_failed_commit_rolls_back_and_releases(monkeypatch):
    store = make()
    put(store, "k", b"old")

    class FailingCommit:
        def __init__(self, conn):
            self.conn = conn

        def execute(self, sql, *args):
            if sql == "COMMIT":
                raise sqlite3.OperationalError("disk full (simulated)")
            return self.conn.execute(sql, *args)

    with pytest.raises(sqlite3.OperationalError, match="simulated"), store.transaction():
        put(store, "k", b"new")
        monkeypatch.setattr(store, "_connection", lambda: FailingCommit(store._conn))
    monkeypatch.undo()
    assert store.to_bytes("k") == b"old"
    thread = threading.Thread(target=put, args=(store, "t", b"t"), daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive() and store.exists("t")
