"""Conformance tests for the work schedulers, run against every executor kind.

Each test takes the ``executor`` fixture, so it runs with our thread pool
(one and four workers), the standard library's pool and the synchronous
executor. Coordination uses events, never sleeps; every wait is bounded.

To make a scheduler busy, the first job blocks on an event. It is submitted
from a helper thread because a synchronous executor runs it inside
``submit``; later submissions from the test thread then find the scheduler
busy with every executor kind.
"""

from __future__ import annotations

import concurrent.futures
import doctest
import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest

from encore.concurrent.futures import asynchronizer as asynchronizer_module
from encore.concurrent.futures.abc_work_scheduler import ABCWorkScheduler
from encore.concurrent.futures.asynchronizer import Asynchronizer
from encore.concurrent.futures.delayed_asynchronizer import DelayedAsynchronizer
from encore.concurrent.futures.enhanced_thread_pool_executor import EnhancedThreadPoolExecutor
from encore.concurrent.futures.serializer import Serializer
from encore.concurrent.futures.serializing_asynchronizer import SerializingAsynchronizer
from encore.concurrent.futures.synchronous import SynchronousExecutor
from encore.concurrent.tests.bounded import TIMEOUT, join, start_thread

pytestmark = pytest.mark.timeout(120)

ABC_LOGGER = "encore.concurrent.futures.abc_work_scheduler"
DELAYED_LOGGER = "encore.concurrent.futures.delayed_asynchronizer"

#: name -> (factory(executor, **kwargs), logger used for failures)
SCHEDULERS: dict[str, tuple[Callable[..., ABCWorkScheduler], str]] = {
    "Asynchronizer": (Asynchronizer, ABC_LOGGER),
    "Serializer": (Serializer, ABC_LOGGER),
    "SerializingAsynchronizer": (SerializingAsynchronizer, ABC_LOGGER),
    "DelayedAsynchronizer": (
        lambda executor, **kwargs: DelayedAsynchronizer(executor, 0.0, **kwargs),
        DELAYED_LOGGER,
    ),
}


@pytest.fixture(params=sorted(SCHEDULERS))
def scheduler_kind(request: pytest.FixtureRequest) -> tuple[Callable[..., ABCWorkScheduler], str]:
    return SCHEDULERS[request.param]


class Gate:
    """A job that records its arguments; the call with ``blocking_value`` blocks.

    ``started`` is set when the blocking call begins, ``release`` lets it
    finish. ``max_active`` records the highest number of concurrent calls.
    """

    def __init__(self, blocking_value: Any = 1) -> None:
        self.blocking_value = blocking_value
        self.started = threading.Event()
        self.release = threading.Event()
        self.calls: list[Any] = []
        self.threads: list[int] = []
        self._lock = threading.Lock()
        self._active = 0
        self.max_active = 0

    def __call__(self, value: Any) -> Any:
        with self._lock:
            self.calls.append(value)
            self.threads.append(threading.get_ident())
            self._active += 1
            self.max_active = max(self.max_active, self._active)
        try:
            if value == self.blocking_value:
                self.started.set()
                assert self.release.wait(TIMEOUT), "gate was never released"
            return value
        finally:
            with self._lock:
                self._active -= 1


class Recorder:
    """Callback that records each finished future's result (or exception)."""

    def __init__(self) -> None:
        self.results: list[Any] = []
        self.threads: list[int] = []
        self._lock = threading.Lock()

    def __call__(self, future: concurrent.futures.Future) -> None:
        exception = future.exception(timeout=0)
        with self._lock:
            self.results.append(exception if exception is not None else future.result())
            self.threads.append(threading.get_ident())


def run_while_busy(
    scheduler: ABCWorkScheduler,
    gate: Gate,
    first: Any,
    submissions: list[tuple[Callable[..., Any], tuple[Any, ...]]],
) -> None:
    """Submit ``gate(first)``, make ``submissions`` while it blocks, then drain."""
    submitter = start_thread(scheduler.submit, gate, first)
    assert gate.started.wait(TIMEOUT), "first job never started"
    for operation, args in submissions:
        scheduler.submit(operation, *args)
    gate.release.set()
    join(submitter)
    assert scheduler.wait(TIMEOUT), "scheduler never became idle"


def records_of(caplog: pytest.LogCaptureFixture, logger_name: str) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == logger_name]


# ----------------------------------------------------------------------
# Policies
# ----------------------------------------------------------------------


def test_asynchronizer_runs_first_and_last(executor: concurrent.futures.Executor) -> None:
    recorder = Recorder()
    scheduler = Asynchronizer(executor, callback=recorder)
    gate = Gate()
    run_while_busy(scheduler, gate, 1, [(gate, (value,)) for value in range(2, 11)])
    assert gate.calls == [1, 10]
    assert recorder.results == [1, 10]


def test_serializer_runs_all_in_order(executor: concurrent.futures.Executor) -> None:
    recorder = Recorder()
    scheduler = Serializer(executor, callback=recorder)
    gate = Gate()
    run_while_busy(scheduler, gate, 1, [(gate, (value,)) for value in range(2, 11)])
    assert gate.calls == list(range(1, 11))
    assert recorder.results == list(range(1, 11))
    assert gate.max_active == 1


class Worker:
    """Hashable owner of a bound-method job, as the upstream tests use."""

    def __init__(self, gate: Gate) -> None:
        self.gate = gate
        self.calls: list[int] = []

    def work(self, value: int) -> int:
        self.calls.append(value)
        return self.gate(value)


def test_serializing_asynchronizer_latest_per_callable(
    executor: concurrent.futures.Executor,
) -> None:
    recorder = Recorder()
    scheduler = SerializingAsynchronizer(executor, callback=recorder)
    gate = Gate()
    worker1, worker2 = Worker(gate), Worker(gate)
    submissions = [(worker1.work, (value,)) for value in range(2, 11)]
    submissions += [(worker2.work, (value,)) for value in range(11, 21)]
    submitter = start_thread(scheduler.submit, worker1.work, 1)
    assert gate.started.wait(TIMEOUT)
    for operation, args in submissions:
        scheduler.submit(operation, *args)
    gate.release.set()
    join(submitter)
    assert scheduler.wait(TIMEOUT)
    assert worker1.calls == [1, 10]
    assert worker2.calls == [20]
    assert recorder.results == [1, 10, 20]


def test_serializing_asynchronizer_keeps_first_position(
    executor: concurrent.futures.Executor,
) -> None:
    scheduler = SerializingAsynchronizer(executor)
    gate = Gate(blocking_value="C")
    order: list[tuple[str, Any]] = []

    def a(value: Any) -> None:
        order.append(("A", value))

    def b(value: Any) -> None:
        order.append(("B", value))

    run_while_busy(scheduler, gate, "C", [(a, (1,)), (b, (2,)), (a, (3,))])
    assert gate.calls == ["C"]
    assert order == [("A", 3), ("B", 2)]


def test_serializing_asynchronizer_rejects_unhashable_operation(
    executor: concurrent.futures.Executor,
) -> None:
    class Unhashable:
        __hash__ = None  # type: ignore[assignment]

        def __call__(self) -> None:
            raise AssertionError("must never run")

    scheduler = SerializingAsynchronizer(executor)
    with pytest.raises(TypeError, match="hashable"):
        scheduler.submit(Unhashable())
    results: list[int] = []
    scheduler.submit(results.append, 5)
    assert scheduler.shutdown(TIMEOUT)
    assert results == [5]


def test_schedulers_run_one_job_at_a_time_on_a_wide_pool() -> None:
    with EnhancedThreadPoolExecutor(max_workers=4) as executor:
        for factory, _ in SCHEDULERS.values():
            gate = Gate()
            scheduler = factory(executor)
            run_while_busy(scheduler, gate, 1, [(gate, (value,)) for value in range(2, 30)])
            assert gate.max_active == 1


# ----------------------------------------------------------------------
# Stress: 10,000 rapid submissions
# ----------------------------------------------------------------------

STRESS = 10_000


def test_asynchronizer_stress_runs_first_and_last_while_busy(
    executor: concurrent.futures.Executor,
) -> None:
    scheduler = Asynchronizer(executor)
    gate = Gate(blocking_value=0)
    run_while_busy(scheduler, gate, 0, [(gate, (value,)) for value in range(1, STRESS)])
    assert gate.calls == [0, STRESS - 1]


def test_asynchronizer_stress_always_runs_the_last_submission(
    executor: concurrent.futures.Executor,
) -> None:
    recorder = Recorder()
    scheduler = Asynchronizer(executor, callback=recorder)
    calls: list[int] = []
    for value in range(STRESS):
        scheduler.submit(calls.append, value)
    assert scheduler.wait(TIMEOUT)
    assert calls[0] == 0
    assert calls[-1] == STRESS - 1
    # Later submissions replace earlier ones, so what runs is increasing.
    assert calls == sorted(set(calls))
    assert len(recorder.results) == len(calls)


def test_serializer_stress_runs_everything_in_order(
    executor: concurrent.futures.Executor,
) -> None:
    scheduler = Serializer(executor)
    calls: list[int] = []
    for value in range(STRESS):
        scheduler.submit(calls.append, value)
    assert scheduler.shutdown(TIMEOUT)
    assert calls == list(range(STRESS))


def test_serializer_drains_a_long_queue_without_recursion() -> None:
    # With a synchronous executor the whole backlog is drained on one thread
    # when the blocking job ends; it must not recurse once per job.
    scheduler = Serializer(SynchronousExecutor())
    gate = Gate(blocking_value=-1)
    run_while_busy(scheduler, gate, -1, [(gate, (value,)) for value in range(5000)])
    assert gate.calls == [-1, *range(5000)]


# ----------------------------------------------------------------------
# Failures are reported and never stall the scheduler
# ----------------------------------------------------------------------


def fail(exception: BaseException) -> None:
    raise exception


def test_failing_job_is_logged_twice_and_does_not_stall(
    executor: concurrent.futures.Executor,
    scheduler_kind: tuple[Callable[..., ABCWorkScheduler], str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    factory, logger_name = scheduler_kind
    caplog.set_level(logging.DEBUG, logger=logger_name)
    recorder = Recorder()
    scheduler = factory(executor, name="Doomed", callback=recorder)

    scheduler.submit(fail, ZeroDivisionError("no"))
    assert scheduler.wait(TIMEOUT)
    scheduler.submit(pow, 2, 8)
    assert scheduler.shutdown(TIMEOUT)

    records = records_of(caplog, logger_name)
    assert len(records) == 2
    assert records[0].levelno == logging.ERROR
    assert records[0].exc_info is not None
    assert records[0].exc_info[0] is ZeroDivisionError
    assert records[0].getMessage() == "ZeroDivisionError occurred in submitted Doomed job."
    message = records[1].getMessage()
    assert message.startswith("Actual error:\n")
    assert "ZeroDivisionError: no" in message
    assert "in fail" in message
    assert isinstance(recorder.results[0], ZeroDivisionError)
    assert recorder.results[1] == 256


def test_failing_callback_is_logged_and_does_not_stall(
    executor: concurrent.futures.Executor,
    scheduler_kind: tuple[Callable[..., ABCWorkScheduler], str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    factory, logger_name = scheduler_kind
    caplog.set_level(logging.DEBUG, logger=logger_name)
    calls: list[int] = []

    def bad_callback(future: concurrent.futures.Future) -> None:
        raise KeyError("callback")

    scheduler = factory(executor, callback=bad_callback)
    scheduler.submit(calls.append, 1)
    assert scheduler.wait(TIMEOUT)
    scheduler.submit(calls.append, 2)
    assert scheduler.shutdown(TIMEOUT)

    assert calls == [1, 2]
    records = records_of(caplog, logger_name)
    assert len(records) == 4
    assert [r.exc_info[0] for r in records[::2] if r.exc_info] == [KeyError, KeyError]
    assert "KeyError: 'callback'" in records[1].getMessage()


def test_failing_job_and_callback_are_both_reported(
    executor: concurrent.futures.Executor,
    scheduler_kind: tuple[Callable[..., ABCWorkScheduler], str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    factory, logger_name = scheduler_kind
    caplog.set_level(logging.DEBUG, logger=logger_name)

    def bad_callback(future: concurrent.futures.Future) -> None:
        raise KeyError("callback")

    scheduler = factory(executor, callback=bad_callback)
    scheduler.submit(fail, ValueError("job"))
    assert scheduler.shutdown(TIMEOUT)

    records = records_of(caplog, logger_name)
    assert len(records) == 4
    assert records[0].exc_info[0] is KeyError
    assert records[2].exc_info[0] is ValueError
    assert "ValueError: job" in records[3].getMessage()


def test_job_failing_with_base_exception_is_reported(
    executor: concurrent.futures.Executor,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=ABC_LOGGER)
    scheduler = Serializer(executor)
    calls: list[int] = []
    scheduler.submit(fail, SystemExit(3))
    scheduler.submit(calls.append, 1)
    assert scheduler.shutdown(TIMEOUT)
    assert calls == [1]
    records = records_of(caplog, ABC_LOGGER)
    assert records[0].exc_info[0] is SystemExit


def test_wait_from_callback_is_refused_not_deadlocked(
    executor: concurrent.futures.Executor,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=ABC_LOGGER)
    errors: list[BaseException] = []
    scheduler: Serializer

    def waiting_callback(future: concurrent.futures.Future) -> None:
        try:
            scheduler.wait()
        except RuntimeError as exc:
            errors.append(exc)
            raise

    scheduler = Serializer(executor, callback=waiting_callback)
    scheduler.submit(pow, 2, 3)
    assert scheduler.shutdown(TIMEOUT)
    assert len(errors) == 1
    assert "deadlock" in str(errors[0])


# ----------------------------------------------------------------------
# wait / shutdown / submit contract
# ----------------------------------------------------------------------


def test_submit_returns_none_and_wait_reports_idle(
    executor: concurrent.futures.Executor,
    scheduler_kind: tuple[Callable[..., ABCWorkScheduler], str],
) -> None:
    factory, _ = scheduler_kind
    scheduler = factory(executor)
    assert scheduler.wait(0) is True
    assert scheduler.submit(pow, 2, 2) is None
    assert scheduler.wait(TIMEOUT) is True


def test_wait_times_out_while_busy(executor: concurrent.futures.Executor) -> None:
    scheduler = Serializer(executor)
    gate = Gate()
    submitter = start_thread(scheduler.submit, gate, 1)
    assert gate.started.wait(TIMEOUT)
    assert scheduler.wait(0.01) is False
    gate.release.set()
    join(submitter)
    assert scheduler.wait(TIMEOUT) is True


def test_shutdown_runs_accepted_work_and_refuses_new(
    executor: concurrent.futures.Executor,
    scheduler_kind: tuple[Callable[..., ABCWorkScheduler], str],
) -> None:
    factory, _ = scheduler_kind
    scheduler = factory(executor)
    gate = Gate()
    submitter = start_thread(scheduler.submit, gate, 1)
    assert gate.started.wait(TIMEOUT)
    scheduler.submit(gate, 2)
    shutdown_results: list[bool] = []
    shutter = start_thread(lambda: shutdown_results.append(scheduler.shutdown()))
    # Once shutdown has begun, new work is refused even though a job runs.
    with scheduler._condition:
        assert scheduler._condition.wait_for(lambda: scheduler._shutdown, TIMEOUT)
    with pytest.raises(RuntimeError, match="Cannot submit new operations after shutdown"):
        scheduler.submit(gate, 3)
    gate.release.set()
    join(submitter)
    join(shutter)
    assert shutdown_results == [True]
    assert gate.calls == [1, 2]


def test_shutdown_is_idempotent(
    executor: concurrent.futures.Executor,
    scheduler_kind: tuple[Callable[..., ABCWorkScheduler], str],
) -> None:
    factory, _ = scheduler_kind
    scheduler = factory(executor)
    scheduler.submit(pow, 2, 2)
    assert scheduler.shutdown(TIMEOUT) is True
    assert scheduler.shutdown(TIMEOUT) is True
    assert scheduler.wait(TIMEOUT) is True
    with pytest.raises(RuntimeError):
        scheduler.submit(pow, 2, 2)


def test_executor_refusing_work_raises_and_leaves_scheduler_idle(
    executor: concurrent.futures.Executor,
    scheduler_kind: tuple[Callable[..., ABCWorkScheduler], str],
) -> None:
    factory, _ = scheduler_kind
    scheduler = factory(executor)
    executor.shutdown(wait=False)
    with pytest.raises(RuntimeError, match="cannot schedule new futures"):
        scheduler.submit(pow, 2, 2)
    assert scheduler.wait(TIMEOUT) is True
    assert scheduler.shutdown(TIMEOUT) is True


def test_executor_refusing_pending_work_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=ABC_LOGGER)
    executor = SynchronousExecutor()
    scheduler = Serializer(executor, name="Orphan")
    gate = Gate()
    submitter = start_thread(scheduler.submit, gate, 1)
    assert gate.started.wait(TIMEOUT)
    scheduler.submit(gate, 2)
    scheduler.submit(gate, 3)
    executor.shutdown()
    gate.release.set()
    join(submitter)
    assert scheduler.wait(TIMEOUT)
    assert gate.calls == [1]
    records = records_of(caplog, ABC_LOGGER)
    assert len(records) == 1
    assert "refused a Orphan job" in records[0].getMessage()


def test_jobs_may_submit_to_their_own_scheduler(executor: concurrent.futures.Executor) -> None:
    scheduler = Serializer(executor)
    calls: list[int] = []

    def countdown(n: int) -> None:
        calls.append(n)
        if n:
            scheduler.submit(countdown, n - 1)

    scheduler.submit(countdown, 50)
    assert scheduler.wait(TIMEOUT)
    assert calls == list(range(50, -1, -1))


def test_callback_runs_on_submitting_thread_with_synchronous_executor() -> None:
    recorder = Recorder()
    scheduler = Asynchronizer(SynchronousExecutor(), callback=recorder)
    scheduler.submit(pow, 2, 5)
    assert recorder.results == [32]
    assert recorder.threads == [threading.get_ident()]


def test_callback_has_run_when_wait_returns(executor: concurrent.futures.Executor) -> None:
    recorder = Recorder()
    scheduler = Serializer(executor, callback=recorder)
    for value in range(20):
        scheduler.submit(pow, value, 2)
    assert scheduler.wait(TIMEOUT)
    assert recorder.results == [value**2 for value in range(20)]


def test_keyword_arguments_are_forwarded(executor: concurrent.futures.Executor) -> None:
    recorder = Recorder()
    scheduler = Serializer(executor, callback=recorder)
    scheduler.submit(int, "ff", base=16)
    assert scheduler.shutdown(TIMEOUT)
    assert recorder.results == [255]


def test_cancelled_job_is_reported_and_does_not_stall(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=ABC_LOGGER)
    executor = EnhancedThreadPoolExecutor(max_workers=1)
    blocker = threading.Event()
    started = threading.Event()

    def block() -> None:
        started.set()
        blocker.wait(TIMEOUT)

    try:
        executor.submit(block)
        assert started.wait(TIMEOUT)
        scheduler = Serializer(executor, name="Cancelled")
        scheduler.submit(pow, 2, 2)  # queued behind block() in the executor
        executor.shutdown(wait=False, cancel_futures=True)
        assert scheduler.wait(TIMEOUT)
    finally:
        blocker.set()
        executor.shutdown(wait=True)
    records = records_of(caplog, ABC_LOGGER)
    assert len(records) == 1
    assert "cancelled" in records[0].getMessage()


# ----------------------------------------------------------------------
# Construction
# ----------------------------------------------------------------------


def test_name_defaults_to_class_name_and_executor_is_kept() -> None:
    executor = SynchronousExecutor()
    for cls in (Asynchronizer, Serializer, SerializingAsynchronizer):
        scheduler = cls(executor)
        assert scheduler.name == cls.__name__
        assert scheduler._executor is executor
        assert cls(executor, name="Custom").name == "Custom"
    assert DelayedAsynchronizer(executor, 1).name == "DelayedAsynchronizer"


def test_abc_work_scheduler_is_abstract() -> None:
    with pytest.raises(TypeError):
        ABCWorkScheduler(SynchronousExecutor())  # type: ignore[abstract]


def test_bad_constructor_arguments_are_rejected() -> None:
    with pytest.raises(TypeError, match="submit"):
        Serializer(object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callback"):
        Serializer(SynchronousExecutor(), callback=42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callable"):
        Serializer(SynchronousExecutor()).submit(42)  # type: ignore[arg-type]


def test_asynchronizer_doctest() -> None:
    failures, tried = doctest.testmod(asynchronizer_module)
    assert tried > 0
    assert failures == 0


def test_keyboard_interrupt_in_callback_does_not_leave_scheduler_busy() -> None:
    interrupts: list[BaseException] = []

    def interrupting_callback(future: concurrent.futures.Future) -> None:
        raise KeyboardInterrupt

    def submit_catching(scheduler: ABCWorkScheduler, *args: Any) -> None:
        try:
            scheduler.submit(*args)
        except KeyboardInterrupt as exc:
            interrupts.append(exc)

    scheduler = Serializer(SynchronousExecutor(), callback=interrupting_callback)
    gate = Gate()
    submitter = start_thread(submit_catching, scheduler, gate, 1)
    assert gate.started.wait(TIMEOUT)
    scheduler.submit(gate, 2)
    gate.release.set()
    join(submitter)
    assert len(interrupts) == 1
    assert scheduler.wait(0) is True
    submit_catching(scheduler, gate, 3)
    assert gate.calls == [1, 3]
    assert scheduler.wait(0) is True
