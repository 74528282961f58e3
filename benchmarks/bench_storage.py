"""Benchmark encore key-value stores against yardsticks measured in the same run.

Usage::

    python benchmarks/bench_storage.py memory sqlite filesystem
    python benchmarks/bench_storage.py memory --count 1000 --large-mb 16 --repeat 1

Stores are named on the command line (default: ``memory``); ``--list`` shows
the registry.  Every store module is imported lazily, so a store that is not
written yet, or whose dependencies are missing, is reported as unavailable and
the others still run.

Row ``get`` reads the data stream and the metadata of each value (what
minimalkv's ``get`` and the other yardsticks return); ``get (value only)``
calls ``store.get`` alone, which is lazy for most stores and is what the
original EnCore's figure measured.

For each store it measures, on ``--count`` small values (100 bytes and a 3-key
metadata dict): ``set`` one by one, one ``multiset``, ``set`` inside one
``transaction``, ``get`` (data and metadata), ``get_metadata``, ``query`` on
one field (``count/10`` hits), ``query_keys`` (same), ``glob`` (``count/100``
hits) and ``delete``; then 64 values of 1 MiB (``set``/``to_bytes``, MB/s);
then a large-value round trip (``from_file`` then ``to_file`` of a
``--large-mb`` file, default 512 MiB) in a fresh subprocess, reporting MB/s and
the subprocess's peak RSS above its baseline.

Yardsticks, when installed (``pip install 'encore[bench]'``): a plain dict,
minimalkv's ``DictStore``, diskcache's ``Cache``, raw :mod:`sqlite3` and
:func:`shutil.copyfile`.  The ratio table divides each store figure by the
yardstick figures of the same row, so results compare across noisy machines.

Reference (from the storage-core issue, on this kind of machine): the original
EnCore DictMemoryStore did about 41k sets/s and 1.2M gets/s; minimalkv's
DictStore 313k puts/s and 248k gets/s.  Targets for DictMemoryStore: set at
least 3x the original (and at least 0.4x minimalkv put in the same run) while
emitting its events; get at least the original.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from io import BytesIO
from typing import Any

SMALL = 100
MIB = 1048576

# ---------------------------------------------------------------------------
# The store registry: name -> factory(tmpdir) -> store.  Imports are lazy.


def _memory(tmpdir: str) -> Any:
    from encore.storage.dict_memory_store import DictMemoryStore

    return DictMemoryStore()


def _sqlite(tmpdir: str) -> Any:
    from encore.storage.sqlite_store import SqliteStore

    return SqliteStore(location=os.path.join(tmpdir, "store.db"))


def _sqlite_memory(tmpdir: str) -> Any:
    from encore.storage.sqlite_store import SqliteStore

    return SqliteStore()


def _filesystem(tmpdir: str) -> Any:
    from encore.storage.filesystem_store import FileSystemStore, init_shared_store

    path = os.path.join(tmpdir, "fs")
    os.makedirs(path, exist_ok=True)
    init_shared_store(path)
    return FileSystemStore(path)


def _locking_filesystem(tmpdir: str) -> Any:
    # import_module keeps import sorting stable while the module is unwritten.
    filesystem = importlib.import_module("encore.storage.filesystem_store")
    locking = importlib.import_module("encore.storage.locking_filesystem_store")
    init_shared_store = filesystem.init_shared_store
    LockingFileSystemStore = locking.LockingFileSystemStore

    path = os.path.join(tmpdir, "lfs")
    os.makedirs(path, exist_ok=True)
    init_shared_store(path)
    return LockingFileSystemStore(path)


STORES: dict[str, Callable[[str], Any]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "sqlite-memory": _sqlite_memory,
    "filesystem": _filesystem,
    "locking-filesystem": _locking_filesystem,
}


def make_store(name: str, tmpdir: str) -> Any:
    """Create and connect the store *name*; raise for unknown or unavailable stores."""
    if name not in STORES:
        raise KeyError(f"unknown store {name!r}; known: {', '.join(STORES)}")
    store = STORES[name](tmpdir)
    store.connect()
    return store


# ---------------------------------------------------------------------------
# Timing helpers


def best_rate(run: Callable[[], int], repeat: int) -> float:
    """Run *run* (returning the number of operations) *repeat* times; best ops/s."""
    best = 0.0
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        count = run()
        elapsed = time.perf_counter() - start
        best = max(best, count / elapsed if elapsed > 0 else float("inf"))
    return best


def small_items(count: int) -> list[tuple[str, bytes, dict[str, Any]]]:
    """Keys ``item/00000``...; metadata with a field matching ``count/10`` keys."""
    payload = b"x" * SMALL
    return [
        (f"item/{i:05d}", payload, {"group": i % 10, "name": f"item{i}", "flag": i % 2 == 0})
        for i in range(count)
    ]


# ---------------------------------------------------------------------------
# Store rows


def bench_store(name: str, count: int, repeat: int, tmp_root: str) -> dict[str, float]:
    """Measure every small-value and 1 MiB row for the store *name*."""
    items = small_items(count)
    results: dict[str, float] = {}

    def fresh() -> Any:
        return make_store(name, tempfile.mkdtemp(dir=tmp_root))

    def timed_write(body: Callable[[Any], None]) -> float:
        best = 0.0
        for _ in range(repeat):
            store = fresh()
            gc.collect()
            start = time.perf_counter()
            body(store)
            elapsed = time.perf_counter() - start
            store.disconnect()
            best = max(best, count / elapsed)
        return best

    def one_by_one(store: Any) -> None:
        set_ = store.set
        for key, data, metadata in items:
            set_(key, (BytesIO(data), metadata))

    def multiset(store: Any) -> None:
        store.multiset([key for key, _, _ in items],
                       [(BytesIO(data), metadata) for _, data, metadata in items])

    def in_transaction(store: Any) -> None:
        set_ = store.set
        with store.transaction("bench"):
            for key, data, metadata in items:
                set_(key, (BytesIO(data), metadata))

    results["set"] = timed_write(one_by_one)
    results["multiset"] = timed_write(multiset)
    results["transaction set"] = timed_write(in_transaction)

    store = fresh()
    multiset(store)
    keys = [key for key, _, _ in items]

    def get_value() -> int:
        get = store.get
        for key in keys:
            get(key)
        return count

    def get_all() -> int:
        get = store.get
        for key in keys:
            value = get(key)
            with value.data as data:
                data.read()
            value.metadata  # noqa: B018 - the read is what is measured
        return count

    def get_metadata_all() -> int:
        get_metadata = store.get_metadata
        for key in keys:
            get_metadata(key)
        return count

    queries = max(1, min(50, 200_000 // max(count, 1)))

    def query() -> int:
        for i in range(queries):
            hits = list(store.query(group=i % 10))
            assert len(hits) == count // 10, len(hits)
        return queries

    def query_keys() -> int:
        for i in range(queries):
            hits = list(store.query_keys(group=i % 10))
            assert len(hits) == count // 10, len(hits)
        return queries

    glob_pattern = "item/001*" if count >= 1000 else "item/000*"

    def glob() -> int:
        for _ in range(queries):
            list(store.glob(glob_pattern))
        return queries

    results["get (value only)"] = best_rate(get_value, repeat)
    results["get"] = best_rate(get_all, repeat)
    results["get_metadata"] = best_rate(get_metadata_all, repeat)
    results["query (1/10 hits)"] = best_rate(query, repeat)
    results["query_keys (1/10 hits)"] = best_rate(query_keys, repeat)
    results["glob"] = best_rate(glob, repeat)

    def delete_all(target: Any) -> None:
        delete = target.delete
        for key in keys:
            delete(key)

    best = 0.0
    for attempt in range(repeat):
        if attempt:
            store = fresh()
            multiset(store)
        gc.collect()
        start = time.perf_counter()
        delete_all(store)
        best = max(best, count / (time.perf_counter() - start))
        store.disconnect()
    results["delete"] = best

    big = os.urandom(MIB)
    store = fresh()

    def set_mib() -> int:
        for i in range(64):
            store.set(f"big{i}", (BytesIO(big), {"i": i}))
        return 64

    def get_mib() -> int:
        for i in range(64):
            store.to_bytes(f"big{i}")
        return 64

    results["1 MiB set (MB/s)"] = best_rate(set_mib, repeat) * MIB / 1e6
    results["1 MiB get (MB/s)"] = best_rate(get_mib, repeat) * MIB / 1e6
    store.disconnect()
    return results


# ---------------------------------------------------------------------------
# Yardsticks


def bench_yardsticks(count: int, repeat: int, tmp_root: str) -> dict[str, dict[str, float]]:
    """Measure the comparable rows of each installed yardstick."""
    items = small_items(count)
    keys = [key for key, _, _ in items]
    flat_keys = [key.replace("/", "_") for key in keys]
    out: dict[str, dict[str, float]] = {}

    # A plain dict of (bytes, metadata) tuples.
    table: dict[str, Any] = {}

    def dict_set() -> int:
        table.clear()
        for key, data, metadata in items:
            table[key] = (data, dict(metadata))
        return count

    def dict_get() -> int:
        for key in keys:
            data, metadata = table[key]
            dict(metadata)
        return count

    def dict_query() -> int:
        for i in range(10):
            [(k, dict(m)) for k, (_, m) in table.items() if m.get("group") == i]
        return 10

    out["dict"] = {
        "set": best_rate(dict_set, repeat),
        "get": best_rate(dict_get, repeat),
        "query (1/10 hits)": best_rate(dict_query, repeat),
    }

    try:
        from minimalkv.memory import DictStore
    except ImportError:
        DictStore = None
    if DictStore is not None:
        kv = DictStore()

        def kv_put() -> int:
            for key, (_, data, _) in zip(flat_keys, items, strict=True):
                kv.put(key, data)
            return count

        def kv_get() -> int:
            for key in flat_keys:
                kv.get(key)
            return count

        def kv_delete() -> int:
            kv_put()
            start = time.perf_counter()
            for key in flat_keys:
                kv.delete(key)
            kv_delete.elapsed = time.perf_counter() - start  # type: ignore[attr-defined]
            return count

        rates = {"set": best_rate(kv_put, repeat), "get": best_rate(kv_get, repeat)}
        kv_delete()
        rates["delete"] = count / kv_delete.elapsed  # type: ignore[attr-defined]
        out["minimalkv"] = rates

    try:
        import diskcache
    except ImportError:
        diskcache = None
    if diskcache is not None:
        cache = diskcache.Cache(tempfile.mkdtemp(dir=tmp_root))

        def dc_set() -> int:
            for key, data, metadata in items:
                cache.set(key, (data, metadata))
            return count

        def dc_transact() -> int:
            with cache.transact():
                for key, data, metadata in items:
                    cache.set(key, (data, metadata))
            return count

        def dc_get() -> int:
            for key in keys:
                cache.get(key)
            return count

        out["diskcache"] = {
            "set": best_rate(dc_set, repeat),
            "transaction set": best_rate(dc_transact, repeat),
            "get": best_rate(dc_get, repeat),
        }
        cache.close()

    db_path = os.path.join(tempfile.mkdtemp(dir=tmp_root), "raw.db")
    connection = sqlite3.connect(db_path)
    connection.execute("CREATE TABLE kv (key TEXT PRIMARY KEY, data BLOB, metadata TEXT)")
    rows = [(key, data, json.dumps(metadata)) for key, data, metadata in items]

    # One commit per row is fsync-bound: a few hundred rows give the rate.
    commit_rows = rows[:500]

    def sql_set() -> int:
        for row in commit_rows:
            connection.execute("INSERT OR REPLACE INTO kv VALUES (?, ?, ?)", row)
            connection.commit()
        return len(commit_rows)

    def sql_many() -> int:
        with connection:
            connection.executemany("INSERT OR REPLACE INTO kv VALUES (?, ?, ?)", rows)
        return count

    def sql_get() -> int:
        for key in keys:
            data, metadata = connection.execute(
                "SELECT data, metadata FROM kv WHERE key = ?", (key,)).fetchone()
            json.loads(metadata)
        return count

    out["sqlite3"] = {
        "set": best_rate(sql_set, 1),
        "multiset": best_rate(sql_many, repeat),
        "transaction set": best_rate(sql_many, repeat),
        "get": best_rate(sql_get, repeat),
    }
    connection.close()
    return out


# ---------------------------------------------------------------------------
# Large values, each in its own process so peak RSS belongs to one store.


def _rss_mib() -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS.
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / MIB


def _large_child(name: str, size_mb: int) -> dict[str, float]:
    tmpdir = tempfile.mkdtemp()
    try:
        source = os.path.join(tmpdir, "source.bin")
        block = os.urandom(MIB)
        with open(source, "wb") as stream:
            for _ in range(size_mb):
                stream.write(block)
        del block
        gc.collect()
        size = size_mb * MIB
        target = os.path.join(tmpdir, "target.bin")
        baseline = _rss_mib()
        if name == "copyfile":
            start = time.perf_counter()
            shutil.copyfile(source, target)
            write = time.perf_counter() - start
            os.unlink(target)
            start = time.perf_counter()
            shutil.copyfile(source, target)
            read = time.perf_counter() - start
        else:
            store = make_store(name, tmpdir)
            baseline = _rss_mib()
            start = time.perf_counter()
            store.from_file("large", source)
            write = time.perf_counter() - start
            start = time.perf_counter()
            store.to_file("large", target)
            read = time.perf_counter() - start
        if os.path.getsize(target) != size:
            raise RuntimeError(f"round trip wrote {os.path.getsize(target)} bytes, not {size}")
        return {
            "from_file (MB/s)": size / write / 1e6,
            "to_file (MB/s)": size / read / 1e6,
            "peak RSS above baseline (MiB)": _rss_mib() - baseline,
        }
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def bench_large(name: str, size_mb: int) -> dict[str, float] | str:
    """Run the large round trip for *name* in a subprocess; figures or an error text."""
    command = [sys.executable, os.path.abspath(__file__), "--large-child", name,
               "--large-mb", str(size_mb)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        return (done.stderr.strip().splitlines() or ["failed"])[-1]
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------
# Output


def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}"


def print_table(title: str, columns: list[str], rows: dict[str, dict[str, Any]]) -> None:
    print(f"\n{title}")
    row_names: list[str] = []
    for column in columns:
        for row in rows.get(column, {}):
            if row not in row_names:
                row_names.append(row)
    width = max([len(r) for r in row_names] + [10])
    cell = max([len(c) + 2 for c in columns] + [14])
    print(" " * width + "".join(f"{c:>{cell}}" for c in columns))
    for row in row_names:
        cells = []
        for column in columns:
            value = rows.get(column, {}).get(row)
            text = _fmt(value) if isinstance(value, (int, float)) else "-"
            cells.append(f"{text:>{cell}}")
        print(f"{row:<{width}}" + "".join(cells))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stores", nargs="*", default=["memory"], help="store names")
    parser.add_argument("--count", type=int, default=10_000, help="small values (10000)")
    parser.add_argument("--large-mb", type=int, default=512, help="large value MiB (512)")
    parser.add_argument("--repeat", type=int, default=3, help="best of N (3)")
    parser.add_argument("--skip-large", action="store_true", help="skip the large round trip")
    parser.add_argument("--list", action="store_true", help="list the store registry")
    parser.add_argument("--large-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.large_child:
        print(json.dumps(_large_child(args.large_child, args.large_mb)))
        return 0
    if args.list:
        for name in STORES:
            print(name)
        return 0

    print(f"python {sys.version.split()[0]}, {args.count} small values, "
          f"best of {args.repeat} interleaved rounds")
    tmp_root = tempfile.mkdtemp(prefix="bench-storage-")
    figures: dict[str, dict[str, Any]] = {}
    yardsticks: dict[str, dict[str, float]] = {}
    unavailable: dict[str, str] = {}

    def keep_best(into: dict[str, dict[str, Any]], name: str, rows: dict[str, float]) -> None:
        best = into.setdefault(name, {})
        for row, value in rows.items():
            best[row] = max(best.get(row, 0.0), value)

    try:
        # Rounds interleave stores and yardsticks so that both see the same
        # machine load; each row keeps its best round.
        for _ in range(max(args.repeat, 1)):
            for name in args.stores:
                if name in unavailable:
                    continue
                try:
                    keep_best(figures, name, bench_store(name, args.count, 1, tmp_root))
                except (ImportError, KeyError, AttributeError, TypeError,
                        NotImplementedError) as error:
                    unavailable[name] = f"{type(error).__name__}: {error}"
            for name, rows in bench_yardsticks(args.count, 1, tmp_root).items():
                keep_best(yardsticks, name, rows)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)

    large: dict[str, dict[str, Any]] = {}
    if not args.skip_large:
        for name in ["copyfile", *figures]:
            result = bench_large(name, args.large_mb)
            if isinstance(result, str):
                unavailable[f"{name} (large)"] = result
            else:
                large[name] = result

    columns = list(figures) + list(yardsticks)
    print_table("ops/s (MB/s where stated; query/glob rows are queries/s)", columns,
                {**figures, **yardsticks})
    if large:
        print_table(f"large value round trip ({args.large_mb} MiB)", list(large), large)

    ratios: dict[str, dict[str, float]] = {}
    for name, rows in figures.items():
        for yardstick, yrows in yardsticks.items():
            column = f"{name}/{yardstick}"
            ratios[column] = {row: rows[row] / yrows[row] for row in rows
                              if row in yrows and yrows[row]}
        if name in large and "copyfile" in large:
            column = f"{name}/copyfile"
            ratios[column] = {row: large[name][row] / large["copyfile"][row]
                              for row in ("from_file (MB/s)", "to_file (MB/s)")}
    ratios = {column: rows for column, rows in ratios.items() if rows}
    if ratios:
        print_table("ratios (store / yardstick, same run; higher is better)", list(ratios),
                    ratios)
    for name, reason in unavailable.items():
        print(f"\nunavailable: {name}: {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
