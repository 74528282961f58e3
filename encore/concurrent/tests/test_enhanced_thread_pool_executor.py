"""Tests for EnhancedThreadPoolExecutor.

Besides the standard executor contract (submit, map, wait, as_completed,
shutdown), these pin what the class adds: worker naming, per-worker
initializer and uninitializer, wait_at_exit, idle-worker reuse, the future
factory hook and collection of an abandoned executor. Interpreter-exit
behaviour is checked in subprocesses with a timeout.
"""

from __future__ import annotations

import concurrent.futures
import gc
import logging
import subprocess
import sys
import textwrap
import threading
import time
import weakref

import pytest

from encore.concurrent.futures.enhanced_thread_pool_executor import EnhancedThreadPoolExecutor
from encore.concurrent.futures.future import Future
from encore.concurrent.tests.bounded import TIMEOUT, close_executor

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def pool() -> EnhancedThreadPoolExecutor:
    executor = EnhancedThreadPoolExecutor(max_workers=5)
    yield executor
    close_executor(executor)


def start_all_workers(executor: EnhancedThreadPoolExecutor, count: int) -> list[str]:
    """Force ``count`` workers to exist by making each block on a barrier."""
    barrier = threading.Barrier(count, timeout=TIMEOUT)

    def meet() -> str:
        barrier.wait()
        return threading.current_thread().name

    futures = [executor.submit(meet) for _ in range(count)]
    return [future.result(TIMEOUT) for future in futures]


def wait_until(predicate, timeout: float = TIMEOUT) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


# ----------------------------------------------------------------------
# submit and futures
# ----------------------------------------------------------------------


def test_submit_returns_result(pool: EnhancedThreadPoolExecutor) -> None:
    assert pool.submit(pow, 2, 8).result(TIMEOUT) == 256
    assert pool.submit(int, "ff", base=16).result(TIMEOUT) == 255


def test_submit_returns_encore_future_with_traceback(pool: EnhancedThreadPoolExecutor) -> None:
    future = pool.submit(divmod, 1, 0)
    assert isinstance(future, Future)
    with pytest.raises(ZeroDivisionError):
        future.result(TIMEOUT)
    text = future.traceback()
    assert "ZeroDivisionError" in text
    assert "return self.__get_result()" not in text


def test_future_factory_can_be_overridden() -> None:
    class CustomFuture(Future):
        pass

    class CustomThreadPoolExecutor(EnhancedThreadPoolExecutor):
        _future_factory = CustomFuture

    executor = CustomThreadPoolExecutor(max_workers=1)
    try:
        future = executor.submit(pow, 3, 2)
        assert isinstance(future, CustomFuture)
        assert future.result(TIMEOUT) == 9
    finally:
        close_executor(executor)


def test_submit_after_shutdown_raises(pool: EnhancedThreadPoolExecutor) -> None:
    pool.shutdown()
    with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
        pool.submit(pow, 2, 2)


def test_job_raising_base_exception_is_stored(pool: EnhancedThreadPoolExecutor) -> None:
    def bail() -> None:
        raise SystemExit(4)

    future = pool.submit(bail)
    assert isinstance(future.exception(TIMEOUT), SystemExit)
    assert pool.submit(pow, 2, 2).result(TIMEOUT) == 4  # the worker survived


# ----------------------------------------------------------------------
# Threads: naming, reuse, limits
# ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "prefix"),
    [({}, "EnhancedThreadPoolExecutorWorker-"), ({"name": "DeadParrotExecutioner"},
                                                 "DeadParrotExecutionerWorker-")],
)
def test_worker_names(kwargs: dict[str, str], prefix: str) -> None:
    executor = EnhancedThreadPoolExecutor(max_workers=3, **kwargs)
    try:
        names = start_all_workers(executor, 3)
        assert sorted(names) == [f"{prefix}{n}" for n in (1, 2, 3)]
        assert executor.name == prefix[: -len("Worker-")]
        assert sorted(t.name for t in executor._threads) == sorted(names)
    finally:
        close_executor(executor)


def test_subclass_gets_its_own_default_name() -> None:
    class Parrot(EnhancedThreadPoolExecutor):
        pass

    executor = Parrot(max_workers=1)
    try:
        assert executor.name == "Parrot"
        assert executor.submit(lambda: threading.current_thread().name).result(TIMEOUT) == (
            "ParrotWorker-1"
        )
    finally:
        close_executor(executor)


def test_workers_are_daemon_threads(pool: EnhancedThreadPoolExecutor) -> None:
    start_all_workers(pool, 2)
    assert all(thread.daemon for thread in pool._threads)


def test_busy_workers_get_new_threads_up_to_the_maximum(
    pool: EnhancedThreadPoolExecutor,
) -> None:
    start_all_workers(pool, 3)
    assert len(pool._threads) == 3
    start_all_workers(pool, 5)
    assert len(pool._threads) == 5


def test_idle_workers_are_reused(pool: EnhancedThreadPoolExecutor) -> None:
    for value in range(20):
        assert pool.submit(pow, value, 2).result(TIMEOUT) == value**2
        # The worker advertises itself idle just after finishing the job.
        assert wait_until(lambda: pool._idle_semaphore._value > 0)
    assert len(pool._threads) == 1


def test_never_more_than_max_workers() -> None:
    executor = EnhancedThreadPoolExecutor(max_workers=2)
    try:
        futures = [executor.submit(pow, n, 2) for n in range(200)]
        assert [f.result(TIMEOUT) for f in futures] == [n**2 for n in range(200)]
        assert len(executor._threads) <= 2
    finally:
        close_executor(executor)


def test_max_workers_defaults_like_the_stdlib() -> None:
    executor = EnhancedThreadPoolExecutor()
    try:
        assert executor._max_workers == concurrent.futures.ThreadPoolExecutor()._max_workers
    finally:
        close_executor(executor)


@pytest.mark.parametrize("bad", [0, -3])
def test_bad_max_workers_rejected(bad: int) -> None:
    with pytest.raises(ValueError, match="max_workers"):
        EnhancedThreadPoolExecutor(max_workers=bad)


@pytest.mark.parametrize("argument", ["initializer", "uninitializer"])
def test_non_callable_initializers_rejected(argument: str) -> None:
    with pytest.raises(TypeError, match=argument):
        EnhancedThreadPoolExecutor(max_workers=1, **{argument: "nope"})


# ----------------------------------------------------------------------
# initializer / uninitializer
# ----------------------------------------------------------------------


class Counter:
    def __init__(self) -> None:
        self.count = 0
        self.threads: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            self.count += 1
            self.threads.add(threading.current_thread().name)


def test_initializer_and_uninitializer_run_once_per_worker() -> None:
    init, uninit = Counter(), Counter()
    executor = EnhancedThreadPoolExecutor(max_workers=4, initializer=init, uninitializer=uninit)
    names = start_all_workers(executor, 4)
    for _ in range(20):
        executor.submit(pow, 2, 2).result(TIMEOUT)
    assert init.count == 4
    assert init.threads == set(names)
    assert uninit.count == 0
    close_executor(executor)
    assert uninit.count == 4
    assert uninit.threads == set(names)


def test_failing_initializer_is_logged_and_worker_still_serves(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="concurrent.futures")

    def broken() -> None:
        raise OSError("no GPU")

    executor = EnhancedThreadPoolExecutor(max_workers=1, initializer=broken)
    try:
        assert executor.submit(pow, 2, 5).result(TIMEOUT) == 32
    finally:
        close_executor(executor)
    records = [r for r in caplog.records if r.name == "concurrent.futures"]
    assert len(records) == 1
    assert records[0].levelno == logging.CRITICAL
    assert records[0].getMessage() == "Initialize exception in worker"
    assert records[0].exc_info[0] is OSError


def test_failing_uninitializer_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="concurrent.futures")

    def broken() -> None:
        raise OSError("already closed")

    executor = EnhancedThreadPoolExecutor(max_workers=1, uninitializer=broken)
    assert executor.submit(pow, 2, 5).result(TIMEOUT) == 32
    close_executor(executor)
    records = [r for r in caplog.records if r.name == "concurrent.futures"]
    assert [r.getMessage() for r in records] == ["Uninitialize exception in worker"]
    assert records[0].levelno == logging.CRITICAL


def test_uninitializer_runs_when_executor_is_collected() -> None:
    uninit = Counter()
    executor = EnhancedThreadPoolExecutor(max_workers=3, uninitializer=uninit)
    start_all_workers(executor, 3)
    threads = list(executor._threads)
    executor_ref = weakref.ref(executor)
    del executor
    gc.collect()
    assert executor_ref() is None
    for thread in threads:
        thread.join(TIMEOUT)
        assert not thread.is_alive()
    assert uninit.count == 3


# ----------------------------------------------------------------------
# shutdown
# ----------------------------------------------------------------------


def test_shutdown_runs_queued_work_first() -> None:
    executor = EnhancedThreadPoolExecutor(max_workers=2)
    done: list[int] = []
    futures = [executor.submit(done.append, n) for n in range(50)]
    executor.shutdown(wait=True)
    assert all(f.done() for f in futures)
    assert sorted(done) == list(range(50))
    assert not any(t.is_alive() for t in executor._threads)


def test_shutdown_cancel_futures_cancels_queued_work() -> None:
    executor = EnhancedThreadPoolExecutor(max_workers=1)
    started, release = threading.Event(), threading.Event()

    def block() -> str:
        started.set()
        assert release.wait(TIMEOUT)
        return "ran"

    running = executor.submit(block)
    assert started.wait(TIMEOUT)
    queued = [executor.submit(pow, 2, n) for n in range(5)]
    executor.shutdown(wait=False, cancel_futures=True)
    assert all(f.cancelled() for f in queued)
    release.set()
    assert running.result(TIMEOUT) == "ran"
    close_executor(executor)


def test_shutdown_is_idempotent(pool: EnhancedThreadPoolExecutor) -> None:
    pool.submit(pow, 2, 2).result(TIMEOUT)
    pool.shutdown()
    pool.shutdown()
    pool.shutdown(wait=False, cancel_futures=True)


def test_context_manager_shuts_down() -> None:
    with EnhancedThreadPoolExecutor(max_workers=2) as executor:
        future = executor.submit(pow, 2, 3)
    assert future.result(0) == 8
    assert executor._shutdown
    assert not any(t.is_alive() for t in executor._threads)
    with pytest.raises(RuntimeError):
        executor.submit(pow, 2, 2)


def test_abandoned_executor_releases_its_workers() -> None:
    executor = EnhancedThreadPoolExecutor(max_workers=3)
    start_all_workers(executor, 3)
    threads = list(executor._threads)
    del executor
    gc.collect()
    for thread in threads:
        thread.join(TIMEOUT)
        assert not thread.is_alive()


def test_worker_drops_the_work_item_after_running_it(pool: EnhancedThreadPoolExecutor) -> None:
    class Target:
        def method(self) -> None:
            pass

    target = Target()
    collected = threading.Event()
    weakref.finalize(target, collected.set)
    pool.submit(target.method)  # the future is discarded on purpose
    del target
    assert wait_until(lambda: (gc.collect(), collected.is_set())[1])


# ----------------------------------------------------------------------
# map, wait, as_completed
# ----------------------------------------------------------------------


def test_map_matches_builtin_map(pool: EnhancedThreadPoolExecutor) -> None:
    assert list(pool.map(pow, range(10), range(10))) == list(map(pow, range(10), range(10)))


def test_map_submits_eagerly(pool: EnhancedThreadPoolExecutor) -> None:
    seen: list[int] = []
    lock = threading.Lock()

    def record(value: int) -> None:
        with lock:
            seen.append(value)

    pool.map(record, range(10))  # the iterator is never consumed
    assert wait_until(lambda: len(seen) == 10)
    assert sorted(seen) == list(range(10))


def test_map_reraises_at_the_failing_position(pool: EnhancedThreadPoolExecutor) -> None:
    results = pool.map(divmod, [2, 3, 0, 5], [1, 1, 0, 1])
    assert next(results) == (2, 0)
    assert next(results) == (3, 0)
    with pytest.raises(ZeroDivisionError):
        next(results)


def test_map_timeout_is_an_overall_deadline(pool: EnhancedThreadPoolExecutor) -> None:
    release = threading.Event()

    def maybe_block(value: int) -> None:
        if value:
            release.wait(TIMEOUT)

    results = pool.map(maybe_block, [0, 0, 1], timeout=0.2)
    try:
        assert next(results) is None
        assert next(results) is None
        with pytest.raises(concurrent.futures.TimeoutError):
            next(results)
    finally:
        release.set()


def test_wait_and_as_completed(pool: EnhancedThreadPoolExecutor) -> None:
    release = threading.Event()
    blocked = pool.submit(release.wait, TIMEOUT)
    failed = pool.submit(divmod, 1, 0)
    finished = pool.submit(pow, 2, 2)
    try:
        done, not_done = concurrent.futures.wait(
            [blocked, failed], timeout=TIMEOUT, return_when=concurrent.futures.FIRST_EXCEPTION
        )
        assert done == {failed}
        assert not_done == {blocked}
        done, not_done = concurrent.futures.wait([blocked, finished], timeout=0)
        assert blocked in not_done
        first = next(concurrent.futures.as_completed([blocked, finished], timeout=TIMEOUT))
        assert first is finished
    finally:
        release.set()
    done, not_done = concurrent.futures.wait(
        [blocked, failed, finished], timeout=TIMEOUT, return_when=concurrent.futures.ALL_COMPLETED
    )
    assert not not_done


# ----------------------------------------------------------------------
# Interpreter exit (subprocesses)
# ----------------------------------------------------------------------


def run_script(source: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source)],
        capture_output=True,
        timeout=60,
        check=False,
    )


def test_queued_work_finishes_at_interpreter_exit() -> None:
    result = run_script(
        """
        import time
        from encore.concurrent.futures.enhanced_thread_pool_executor import (
            EnhancedThreadPoolExecutor,
        )

        def sleep_and_print():
            time.sleep(0.3)
            print("apple", flush=True)

        executor = EnhancedThreadPoolExecutor(max_workers=1)
        executor.submit(sleep_and_print)
        """
    )
    assert result.stderr == b""
    assert result.stdout.strip() == b"apple"


@pytest.mark.parametrize(("wait_at_exit", "expected"), [(True, b"FINISHED"), (False, b"")])
def test_wait_at_exit(wait_at_exit: bool, expected: bytes) -> None:
    result = run_script(
        f"""
        import threading
        from encore.concurrent.futures.enhanced_thread_pool_executor import (
            EnhancedThreadPoolExecutor,
        )

        started = threading.Event()

        def job():
            started.set()
            threading.Event().wait(0.5)
            print("FINISHED", end="", flush=True)

        executor = EnhancedThreadPoolExecutor(max_workers=1, wait_at_exit={wait_at_exit})
        executor.submit(job)
        started.wait()
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected


def test_uninitializer_runs_at_interpreter_exit() -> None:
    result = run_script(
        """
        from encore.concurrent.futures.enhanced_thread_pool_executor import (
            EnhancedThreadPoolExecutor,
        )

        executor = EnhancedThreadPoolExecutor(
            max_workers=1, uninitializer=lambda: print("bye", flush=True)
        )
        executor.submit(print, "hello", flush=True).result()
        """
    )
    assert result.stderr == b""
    assert result.stdout.split() == [b"hello", b"bye"]
