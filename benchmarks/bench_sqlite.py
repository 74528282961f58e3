"""SqliteStore rows against raw sqlite3 / diskcache yardsticks, measured side by side.

Usage::

    python benchmarks/bench_sqlite.py                  # 10k keys, 512 MiB large value
    python benchmarks/bench_sqlite.py --count 2000 --large-mb 64 --repeat 3

``benchmarks/bench_storage.py sqlite`` gives the rows shared by every store;
this script adds the yardsticks the SqliteStore issue names, measured in the
same run and *interleaved* with the store (store, yardstick, store,
yardstick, ...; best of ``--repeat``), so that a busy machine slows both
alike and the ratios stay meaningful:

* ``set`` on a database file, one key at a time, against diskcache's
  ``Cache.set`` (both in WAL mode with ``synchronous=NORMAL``: durable across
  a crash of the process, not of the machine);
* ``multiset`` and ``set`` inside one ``transaction`` of ``--count`` small
  keys, against one raw ``executemany`` into a key/data/metadata table;
* ``query``/``query_keys`` on an indexed field (``count/10`` hits) and
  ``glob`` (``count/100`` hits), against the same SQL on a raw table with an
  index on that field;
* a ``--large-mb`` ``from_file``/``to_file`` round trip, against writing and
  reading the same file through chunked ``Connection.blobopen()``; each runs
  in a fresh subprocess that reports its peak RSS growth.
"""

from __future__ import annotations

import argparse
import gc
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

MIB = 1048576
SMALL = 100


def items(count: int) -> list[tuple[str, bytes, dict[str, Any]]]:
    payload = b"x" * SMALL
    return [(f"item/{i:05d}", payload, {"group": i % 10, "name": f"item{i}", "flag": i % 2 == 0})
            for i in range(count)]


def timed(body: Callable[[], int]) -> float:
    gc.collect()
    start = time.perf_counter()
    count = body()
    return count / (time.perf_counter() - start)


def interleaved(ours: Callable[[], Callable[[], int]], theirs: Callable[[], Callable[[], int]],
                repeat: int) -> tuple[float, float]:
    """Best rate of each, alternating runs; each factory prepares a fresh run."""
    best_ours = best_theirs = 0.0
    for _ in range(repeat):
        best_ours = max(best_ours, timed(ours()))
        best_theirs = max(best_theirs, timed(theirs()))
    return best_ours, best_theirs


def make_store(directory: str, index: str | None = "dynamic") -> Any:
    from encore.events.api import EventManager
    from encore.storage.sqlite_store import SqliteStore

    store = SqliteStore(os.path.join(directory, "store.db"), index=index,
                        event_manager=EventManager())
    store.connect()
    return store


def raw_table(directory: str, rows: list[tuple[str, bytes, dict[str, Any]]]) -> Any:
    connection = sqlite3.connect(os.path.join(directory, "raw.db"))
    connection.execute("CREATE TABLE kv (key TEXT PRIMARY KEY, data BLOB, metadata TEXT, "
                       "grp INTEGER)")
    connection.execute("CREATE INDEX kv_grp ON kv (grp)")
    with connection:
        connection.executemany("INSERT INTO kv VALUES (?, ?, ?, ?)",
                               [(k, d, json.dumps(m), m["group"]) for k, d, m in rows])
    return connection


def small_rows(count: int, repeat: int, root: str) -> dict[str, tuple[float, float, str]]:
    data = items(count)
    keys = [key for key, _, _ in data]
    results: dict[str, tuple[float, float, str]] = {}

    def fresh_dir() -> str:
        return tempfile.mkdtemp(dir=root)

    # -- set, one key at a time, vs diskcache --------------------------------
    import diskcache

    def ours_set() -> Callable[[], int]:
        store = make_store(fresh_dir())

        def run() -> int:
            for key, payload, metadata in data:
                store.set(key, (BytesIO(payload), metadata))
            store.disconnect()
            return count
        return run

    def diskcache_set() -> Callable[[], int]:
        cache = diskcache.Cache(fresh_dir())

        def run() -> int:
            for key, payload, metadata in data:
                cache.set(key, (payload, metadata))
            cache.close()
            return count
        return run

    results["set (file, one by one)"] = (*interleaved(ours_set, diskcache_set, repeat),
                                         "diskcache Cache.set")

    # -- bulk writes vs executemany --------------------------------------------
    def raw_many() -> Callable[[], int]:
        connection = sqlite3.connect(os.path.join(fresh_dir(), "raw.db"))
        connection.execute("CREATE TABLE kv (key TEXT PRIMARY KEY, data BLOB, metadata TEXT)")

        def run() -> int:
            rows = [(key, payload, json.dumps(metadata)) for key, payload, metadata in data]
            with connection:
                connection.executemany("INSERT OR REPLACE INTO kv VALUES (?, ?, ?)", rows)
            connection.close()
            return count
        return run

    def ours_multiset() -> Callable[[], int]:
        store = make_store(fresh_dir())

        def run() -> int:
            store.multiset(keys, [(BytesIO(payload), metadata) for _, payload, metadata in data])
            store.disconnect()
            return count
        return run

    def ours_multiset_unindexed() -> Callable[[], int]:
        store = make_store(fresh_dir(), index=None)

        def run() -> int:
            store.multiset(keys, [(BytesIO(payload), metadata) for _, payload, metadata in data])
            store.disconnect()
            return count
        return run

    def ours_transaction() -> Callable[[], int]:
        store = make_store(fresh_dir())

        def run() -> int:
            with store.transaction("bench"):
                for key, payload, metadata in data:
                    store.set(key, (BytesIO(payload), metadata))
            store.disconnect()
            return count
        return run

    results["multiset"] = (*interleaved(ours_multiset, raw_many, repeat), "raw executemany")
    # The same without index columns: what maintaining 3 indexes costs.
    results["multiset (index=None)"] = (
        *interleaved(ours_multiset_unindexed, raw_many, repeat), "raw executemany")
    results["transaction set"] = (*interleaved(ours_transaction, raw_many, repeat),
                                  "raw executemany")

    # -- queries ---------------------------------------------------------------
    store = make_store(fresh_dir())
    store.multiset(keys, [(BytesIO(payload), metadata) for _, payload, metadata in data])
    raw = raw_table(fresh_dir(), data)
    queries = max(10, min(200, 2_000_000 // count))
    hits = count // 10

    def checked(run: Callable[[int], int], n: int) -> Callable[[], Callable[[], int]]:
        def factory() -> Callable[[], int]:
            def body() -> int:
                for i in range(n):
                    run(i)
                return n
            return body
        return factory

    def ours_query(i: int) -> int:
        found = list(store.query(group=i % 10))
        assert len(found) == hits
        return len(found)

    def raw_query(i: int) -> int:
        found = [(key, json.loads(text)) for key, text in raw.execute(
            "SELECT key, metadata FROM kv WHERE grp = ?", (i % 10,))]
        assert len(found) == hits
        return len(found)

    def ours_query_keys(i: int) -> int:
        found = list(store.query_keys(group=i % 10))
        assert len(found) == hits
        return len(found)

    def raw_query_keys(i: int) -> int:
        found = [key for (key,) in raw.execute("SELECT key FROM kv WHERE grp = ?", (i % 10,))]
        assert len(found) == hits
        return len(found)

    pattern = "item/001*" if count >= 1000 else "item/000*"

    def ours_glob(i: int) -> int:
        return len(list(store.glob(pattern)))

    def raw_glob(i: int) -> int:
        return len([key for (key,) in raw.execute(
            "SELECT key FROM kv WHERE key GLOB ?", (pattern,))])

    results[f"query ({hits} hits, indexed)"] = (
        *interleaved(checked(ours_query, queries), checked(raw_query, queries), repeat),
        "raw SELECT + json.loads")
    results[f"query_keys ({hits} hits, indexed)"] = (
        *interleaved(checked(ours_query_keys, queries), checked(raw_query_keys, queries),
                     repeat),
        "raw SELECT key")
    results["glob"] = (*interleaved(checked(ours_glob, queries * 10),
                                    checked(raw_glob, queries * 10), repeat), "raw GLOB")
    store.disconnect()
    raw.close()
    return results


# ---------------------------------------------------------------------------
# Large values: each side in its own process, so peak RSS belongs to it.


def _rss_mib() -> float:
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / MIB


def _large_child(kind: str, size_mb: int) -> dict[str, float]:
    # Peak RSS growth is measured from here: only the imports come before.
    baseline = _rss_mib()
    directory = tempfile.mkdtemp()
    try:
        source = os.path.join(directory, "source.bin")
        block = os.urandom(MIB)
        with open(source, "wb") as stream:
            for _ in range(size_mb):
                stream.write(block)
        del block
        size = size_mb * MIB
        target = os.path.join(directory, "target.bin")
        gc.collect()
        if kind == "sqlite":
            store = make_store(directory)
            start = time.perf_counter()
            store.from_file("large", source)
            write = time.perf_counter() - start
            start = time.perf_counter()
            store.to_file("large", target)
            read = time.perf_counter() - start
            store.disconnect()
        else:
            connection = sqlite3.connect(os.path.join(directory, "raw.db"))
            connection.execute("CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB)")
            start = time.perf_counter()
            with connection:
                connection.execute("INSERT INTO blobs VALUES (1, zeroblob(?))", (size,))
                with connection.blobopen("blobs", "data", 1) as blob, \
                        open(source, "rb") as stream:
                    for chunk in iter(lambda: stream.read(MIB), b""):
                        blob.write(chunk)
            write = time.perf_counter() - start
            start = time.perf_counter()
            with connection.blobopen("blobs", "data", 1, readonly=True) as blob, \
                    open(target, "wb") as out:
                for chunk in iter(lambda: blob.read(MIB), b""):
                    out.write(chunk)
            read = time.perf_counter() - start
            connection.close()
        if os.path.getsize(target) != size:
            raise RuntimeError(f"round trip wrote {os.path.getsize(target)} bytes, not {size}")
        return {"in": size / write / 1e6, "out": size / read / 1e6,
                "rss": _rss_mib() - baseline, "peak": _rss_mib()}
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def large_rows(size_mb: int, repeat: int) -> dict[str, tuple[float, float, str]]:
    best: dict[str, dict[str, float]] = {}
    for _ in range(repeat):
        for kind in ("sqlite", "blobopen"):
            command = [sys.executable, os.path.abspath(__file__), "--large-child", kind,
                       "--large-mb", str(size_mb)]
            done = subprocess.run(command, capture_output=True, text=True, timeout=3600)
            if done.returncode != 0:
                raise RuntimeError(done.stderr)
            figures = json.loads(done.stdout.strip().splitlines()[-1])
            mine = best.setdefault(kind, {"in": 0.0, "out": 0.0, "rss": 0.0, "peak": 0.0})
            mine["in"] = max(mine["in"], figures["in"])
            mine["out"] = max(mine["out"], figures["out"])
            # Memory is not noise: report the worst run.
            mine["rss"] = max(mine["rss"], figures["rss"])
            mine["peak"] = max(mine["peak"], figures["peak"])
    ours, theirs = best["sqlite"], best["blobopen"]
    return {
        f"from_file {size_mb} MiB (MB/s)": (ours["in"], theirs["in"], "chunked blobopen write"),
        f"to_file {size_mb} MiB (MB/s)": (ours["out"], theirs["out"], "chunked blobopen read"),
        "peak RSS growth (MiB)": (ours["rss"], theirs["rss"], "chunked blobopen"),
        "peak RSS, whole process (MiB)": (ours["peak"], theirs["peak"], "chunked blobopen"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--large-mb", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--large-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.large_child:
        print(json.dumps(_large_child(args.large_child, args.large_mb)))
        return 0
    print(f"python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}, "
          f"{args.count} small values, best of {args.repeat} (interleaved)")
    root = tempfile.mkdtemp(prefix="bench-sqlite-")
    try:
        rows = small_rows(args.count, args.repeat, root)
        if not args.skip_large:
            rows.update(large_rows(args.large_mb, args.repeat))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    width = max(len(name) for name in rows)
    print(f"\n{'row':<{width}} {'SqliteStore':>12} {'yardstick':>12} {'ratio':>7}  yardstick")
    for name, (ours, theirs, what) in rows.items():
        ratio = ours / theirs if theirs else float("nan")
        print(f"{name:<{width}} {ours:>12,.1f} {theirs:>12,.1f} {ratio:>7.2f}  {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
