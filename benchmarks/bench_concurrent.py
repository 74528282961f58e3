"""Benchmark encore.concurrent against the standard library's thread pool.

Measures, in one run and on the same machine:

* submit -> result latency (one job in flight at a time);
* throughput (submit many trivial jobs, then wait for all of them);
* work-scheduler overhead per submit, against a bare ``executor.submit``:
  the cost of ``submit`` while the scheduler is busy (pure policy cost), and
  end-to-end time for a Serializer to run every job.

Each figure is the best of several interleaved repeats, which filters out
noise from other processes. Ratios are encore / yardstick (lower is better).

Usage::

    python benchmarks/bench_concurrent.py [--quick]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import threading
import time
from collections.abc import Callable

from encore.concurrent.futures.asynchronizer import Asynchronizer
from encore.concurrent.futures.delayed_asynchronizer import DelayedAsynchronizer
from encore.concurrent.futures.enhanced_thread_pool_executor import EnhancedThreadPoolExecutor
from encore.concurrent.futures.serializer import Serializer
from encore.concurrent.futures.serializing_asynchronizer import SerializingAsynchronizer


def noop() -> None:
    return None


def best_of(repeats: int, measure: Callable[[], float]) -> float:
    return min(measure() for _ in range(repeats))


def latency(executor: concurrent.futures.Executor, n: int) -> float:
    """Seconds per submit -> result round trip."""
    submit = executor.submit
    start = time.perf_counter()
    for _ in range(n):
        submit(noop).result()
    return (time.perf_counter() - start) / n


def throughput(executor: concurrent.futures.Executor, n: int) -> float:
    """Seconds per job when n jobs are submitted back to back."""
    submit = executor.submit
    start = time.perf_counter()
    futures = [submit(noop) for _ in range(n)]
    concurrent.futures.wait(futures)
    return (time.perf_counter() - start) / n


def pool_rows(workers: int, n: int, repeats: int) -> list[tuple[str, float, float]]:
    rows = []
    for label, measure in (("latency", latency), ("throughput", throughput)):
        ours: list[float] = []
        theirs: list[float] = []
        with (
            EnhancedThreadPoolExecutor(max_workers=workers) as enhanced,
            concurrent.futures.ThreadPoolExecutor(max_workers=workers) as stdlib,
        ):
            measure(enhanced, n // 10)  # warm up: start the workers
            measure(stdlib, n // 10)
            for _ in range(repeats):  # interleaved, so drift hits both alike
                ours.append(measure(enhanced, n))
                theirs.append(measure(stdlib, n))
        rows.append((f"{label}, {workers} worker(s)", min(ours), min(theirs)))
    return rows


def busy_submit_cost(factory: Callable[..., object], n: int) -> float:
    """Seconds per scheduler.submit while its one job is blocked (policy cost only)."""
    release = threading.Event()
    started = threading.Event()

    def block() -> None:
        started.set()
        release.wait()

    with EnhancedThreadPoolExecutor(max_workers=1) as executor:
        scheduler = factory(executor)
        scheduler.submit(block)
        started.wait()
        submit = scheduler.submit
        start = time.perf_counter()
        for value in range(n):
            submit(noop_with, value)
        elapsed = time.perf_counter() - start
        release.set()
        scheduler.shutdown()
    return elapsed / n


def noop_with(value: int) -> int:
    return value


def bare_submit_cost(n: int) -> float:
    """Seconds per bare executor.submit onto a blocked single-worker pool."""
    release = threading.Event()
    with EnhancedThreadPoolExecutor(max_workers=1) as executor:
        executor.submit(release.wait)
        submit = executor.submit
        start = time.perf_counter()
        for value in range(n):
            submit(noop_with, value)
        elapsed = time.perf_counter() - start
        release.set()
    return elapsed / n


def serializer_end_to_end(n: int) -> float:
    with EnhancedThreadPoolExecutor(max_workers=1) as executor:
        scheduler = Serializer(executor)
        start = time.perf_counter()
        for value in range(n):
            scheduler.submit(noop_with, value)
        scheduler.wait()
        return (time.perf_counter() - start) / n


def executor_end_to_end(n: int) -> float:
    with EnhancedThreadPoolExecutor(max_workers=1) as executor:
        start = time.perf_counter()
        futures = [executor.submit(noop_with, value) for value in range(n)]
        concurrent.futures.wait(futures)
        return (time.perf_counter() - start) / n


def scheduler_rows(n: int, repeats: int) -> list[tuple[str, float, float]]:
    bare = best_of(repeats, lambda: bare_submit_cost(n))
    factories: dict[str, Callable[..., object]] = {
        "Asynchronizer": Asynchronizer,
        "Serializer": Serializer,
        "SerializingAsynchronizer": SerializingAsynchronizer,
        "DelayedAsynchronizer": lambda executor: DelayedAsynchronizer(executor, 0.0),
    }
    rows = [
        (f"{name}.submit while busy", best_of(repeats, lambda f=f: busy_submit_cost(f, n)), bare)
        for name, f in factories.items()
    ]
    rows.append(
        (
            "Serializer end to end",
            best_of(repeats, lambda: serializer_end_to_end(n)),
            best_of(repeats, lambda: executor_end_to_end(n)),
        )
    )
    return rows


def print_table(title: str, yardstick: str, rows: list[tuple[str, float, float]]) -> None:
    print(f"\n{title}")
    header = f"{'case':<44} {'encore (us)':>12} {yardstick + ' (us)':>18} {'ratio':>7}"
    print(header)
    print("-" * len(header))
    for label, ours, theirs in rows:
        print(f"{label:<44} {ours * 1e6:>12.2f} {theirs * 1e6:>18.2f} {ours / theirs:>7.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations (smoke run)")
    args = parser.parse_args()
    n, repeats = (2_000, 3) if args.quick else (20_000, 7)

    rows = pool_rows(1, n, repeats) + pool_rows(4, n, repeats)
    print_table(
        "EnhancedThreadPoolExecutor vs concurrent.futures.ThreadPoolExecutor (per job)",
        "stdlib",
        rows,
    )
    print_table(
        "Work scheduler overhead (per submit; yardstick: bare executor.submit / executor run)",
        "bare",
        scheduler_rows(n, repeats),
    )


if __name__ == "__main__":
    main()
