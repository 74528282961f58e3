"""Benchmark the file system stores against file-based yardsticks in the same run.

Usage::

    python benchmarks/bench_filesystem.py
    python benchmarks/bench_filesystem.py --count 2000 --repeat 1 --dir /var/tmp

``benchmarks/bench_storage.py`` compares every store with in-memory and
database yardsticks; this script adds the rows that only make sense for
stores kept in a directory, all in one directory tree (``--dir``, default
the system temporary directory -- its file system dominates the figures):

* ``set`` one by one and ``get`` (data and metadata) of ``--count`` small
  values, for :class:`~encore.storage.filesystem_store.FileSystemStore`,
  :class:`~encore.storage.locking_filesystem_store.LockingFileSystemStore`
  and a ``legacy`` FileSystemStore (a directory marked ``__version__ = 0``:
  the original EnCore layout, one ``.data`` and one ``.metadata`` file per
  key), against minimalkv's ``FilesystemStore`` (one file per key, written in
  place: not atomic);
* ``query`` on one metadata field over all the (unchanged) keys.  The legacy
  store re-reads every metadata file per query, which is what the original
  EnCore did, so it is the yardstick for the query cache;
* the ``from_file``/``to_file`` round trip of a ``--large-mb`` file (512 MiB)
  with peak RSS growth, run by ``bench_storage.bench_large`` in a subprocess.
  The dirty pages one run leaves behind slow down the next, so every run
  starts with :func:`os.sync` and ``shutil.copyfile`` runs between the stores
  (its best figure is the yardstick).

Ratios are printed against the yardsticks of the same run.  On a shared or
busy disk, file creation time dominates and swings by 10x between rounds;
``--dir /dev/shm`` (a tmpfs) compares the software overhead alone.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from io import BytesIO
from typing import Any

from encore.storage.filesystem_store import FileSystemStore, init_shared_store
from encore.storage.locking_filesystem_store import LockingFileSystemStore

PAYLOAD = b"x" * 100


def items(count: int) -> list[tuple[str, dict[str, Any]]]:
    return [(f"item{i:05d}", {"group": i % 10, "name": f"item{i}", "flag": i % 2 == 0})
            for i in range(count)]


def make(kind: str, directory: str) -> Any:
    os.makedirs(directory)
    if kind == "legacy":
        with open(os.path.join(directory, ".FSStore"), "wb") as f:
            f.write(b"__version__ = 0\n")
    else:
        init_shared_store(directory)
    if kind == "locking":
        return LockingFileSystemStore(directory, remote_event_poll_interval=0)
    return FileSystemStore(directory)


def timed(run: Callable[[], int]) -> float:
    gc.collect()
    start = time.perf_counter()
    n = run()
    return n / (time.perf_counter() - start)


def make_existing(kind: str, directory: str) -> Any:
    if kind == "locking":
        return LockingFileSystemStore(directory, remote_event_poll_interval=0)
    return FileSystemStore(directory)


class EncoreSubject:
    """One encore store kind, measured a round at a time."""

    def __init__(self, kind: str, data: list[tuple[str, dict[str, Any]]], root: str) -> None:
        self.kind, self.data, self.root = kind, data, root
        self.store: Any = None
        self.rounds = 0

    def set(self) -> int:
        self.store = make(self.kind, os.path.join(self.root, f"{self.kind}{self.rounds}"))
        self.rounds += 1
        for key, metadata in self.data:
            self.store.set(key, (BytesIO(PAYLOAD), metadata))
        return len(self.data)

    def get(self) -> int:
        for key, _ in self.data:
            value = self.store.get(key)
            with value.data as stream:
                stream.read()
            value.metadata  # noqa: B018 - the read is what is measured
        return len(self.data)

    def first_query(self) -> int:
        # A fresh store object: its first query reads every record.
        self.store = make_existing(self.kind, self.store.path)
        list(self.store.query_keys(group=0))
        return 1

    def query(self) -> int:
        queries = max(3, min(50, 200_000 // len(self.data)))
        for i in range(queries):
            hits = list(self.store.query(group=i % 10))
            assert len(hits) == len(self.data) // 10, len(hits)
        return queries


class MinimalkvSubject:
    """minimalkv's FilesystemStore: one file per key, written in place."""

    def __init__(self, data: list[tuple[str, dict[str, Any]]], root: str) -> None:
        from minimalkv.fs import FilesystemStore

        self.factory = FilesystemStore
        self.data, self.root = data, root
        self.kv: Any = None
        self.rounds = 0

    def set(self) -> int:
        directory = os.path.join(self.root, f"minimalkv{self.rounds}")
        self.rounds += 1
        os.makedirs(directory)
        self.kv = self.factory(directory)
        for key, _ in self.data:
            self.kv.put(key, PAYLOAD)
        return len(self.data)

    def get(self) -> int:
        for key, _ in self.data:
            self.kv.get(key)
        return len(self.data)


def bench_small(count: int, repeat: int, root: str) -> dict[str, dict[str, float]]:
    """Best of *repeat* rounds; in each round every subject runs a row in turn."""
    data = items(count)
    subjects: dict[str, Any] = {
        kind: EncoreSubject(kind, data, root) for kind in ("filesystem", "locking", "legacy")
    }
    try:
        subjects["minimalkv fs"] = MinimalkvSubject(data, root)
    except ImportError:
        pass
    out: dict[str, dict[str, float]] = {name: {} for name in subjects}
    for _ in range(repeat):
        for row in ("set", "get", "first_query", "query"):
            for name, subject in subjects.items():
                if hasattr(subject, row):
                    label = "first query (cold)" if row == "first_query" else row
                    figure = timed(getattr(subject, row))
                    out[name][label] = max(out[name].get(label, 0.0), figure)
    return out


def bench_large_round_trips(size_mb: int) -> dict[str, dict[str, float]]:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_storage import bench_large

    out: dict[str, dict[str, float]] = {}
    for name in ("copyfile", "filesystem", "copyfile", "locking-filesystem", "copyfile"):
        os.sync()
        result = bench_large(name, size_mb)
        if isinstance(result, str):
            print(f"{name}: {result}")
            continue
        best = out.setdefault(name, result)
        for row in ("from_file (MB/s)", "to_file (MB/s)"):
            best[row] = max(best[row], result[row])
    return out


def fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.2f}"


def table(title: str, columns: dict[str, dict[str, float]]) -> None:
    rows: list[str] = []
    for figures in columns.values():
        rows.extend(row for row in figures if row not in rows)
    print(f"\n{title}")
    print(f"{'':<22}" + "".join(f"{name:>22}" for name in columns))
    for row in rows:
        cells = "".join(
            f"{fmt(figures[row]) if row in figures else '-':>22}" for figures in columns.values()
        )
        print(f"{row:<22}{cells}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000, help="small values (10000)")
    parser.add_argument("--repeat", type=int, default=3, help="best of N (3)")
    parser.add_argument("--dir", default=None, help="where to make the stores")
    parser.add_argument("--large-mb", type=int, default=512, help="large value MiB (512)")
    parser.add_argument("--skip-large", action="store_true", help="skip the large round trip")
    args = parser.parse_args(argv)
    if args.dir:
        # bench_large's subprocess makes its files with tempfile too.
        os.environ["TMPDIR"] = args.dir
        tempfile.tempdir = None
    root = tempfile.mkdtemp(prefix="bench-filesystem-", dir=args.dir)
    print(f"python {sys.version.split()[0]}, {args.count} keys, best of {args.repeat}, in {root}")
    try:
        columns = bench_small(args.count, args.repeat, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    figures = {kind: columns[kind] for kind in ("filesystem", "locking", "legacy")}
    yardstick = columns.get("minimalkv fs")
    table("ops/s (query rows: queries/s)", columns)
    ratios: dict[str, dict[str, float]] = {}
    for kind in ("filesystem", "locking"):
        rows = figures[kind]
        column = {"query": rows["query"] / figures["legacy"]["query"]}
        column["set"] = rows["set"] / figures["legacy"]["set"]
        column["get"] = rows["get"] / figures["legacy"]["get"]
        ratios[f"{kind}/legacy"] = column
        if yardstick is not None:
            ratios[f"{kind}/minimalkv"] = {"set": rows["set"] / yardstick["set"],
                                           "get": rows["get"] / yardstick["get"]}
    if not args.skip_large:
        large = bench_large_round_trips(args.large_mb)
        table(f"large value round trip ({args.large_mb} MiB)", large)
        if "copyfile" in large:
            table("ratios to shutil.copyfile (same run)", {
                f"{name}/copyfile": {row: large[name][row] / large["copyfile"][row]
                                     for row in ("from_file (MB/s)", "to_file (MB/s)")}
                for name in large if name != "copyfile"
            })
    table("ratios (same run; higher is better)", ratios)
    return 0


if __name__ == "__main__":
    sys.exit(main())
