"""Tests for DelayedAsynchronizer: the post-job delay, shutdown during it, timer failures.

Most tests inject a manual timer (``timer_factory``) so the delay ends exactly
when the test says; the real-timer tests only check lower bounds that hold by
construction, or that shutdown does not wait out a long delay.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable

import pytest

from encore.concurrent.futures.asynchronizer import Asynchronizer
from encore.concurrent.futures.delayed_asynchronizer import DelayedAsynchronizer
from encore.concurrent.futures.synchronous import SynchronousExecutor
from encore.concurrent.tests.bounded import TIMEOUT, join, start_thread

pytestmark = pytest.mark.timeout(120)

DELAYED_LOGGER = "encore.concurrent.futures.delayed_asynchronizer"


class ManualTimer:
    """A timer that fires only when the test calls :meth:`fire`."""

    def __init__(self, interval: float, function: Callable[[], object]) -> None:
        self.interval = interval
        self.function = function
        self.started = False
        self.cancelled = False

    def start(self) -> None:
        self.started = True

    def cancel(self) -> None:
        self.cancelled = True

    def fire(self) -> None:
        assert self.started
        self.function()


class ManualTimers:
    """timer_factory that records every timer it makes."""

    def __init__(self) -> None:
        self.timers: list[ManualTimer] = []
        self._created = threading.Condition()

    def __call__(self, interval: float, function: Callable[[], object]) -> ManualTimer:
        timer = ManualTimer(interval, function)
        with self._created:
            self.timers.append(timer)
            self._created.notify_all()
        return timer

    def wait_for(self, count: int) -> ManualTimer:
        """Return the ``count``-th timer, waiting (bounded) for it to exist."""
        with self._created:
            assert self._created.wait_for(lambda: len(self.timers) >= count, TIMEOUT)
            return self.timers[count - 1]


def test_next_job_waits_for_the_delay(executor: concurrent.futures.Executor) -> None:
    timers = ManualTimers()
    calls: list[int] = []
    scheduler = DelayedAsynchronizer(executor, 2.5, timer_factory=timers)
    scheduler.submit(calls.append, 1)
    first = timers.wait_for(1)
    assert first.interval == 2.5
    assert calls == [1]
    assert scheduler.wait(0.01) is False  # busy until the delay ends

    for value in range(2, 6):
        scheduler.submit(calls.append, value)
    assert calls == [1]
    first.fire()
    timers.wait_for(2).fire()
    assert scheduler.wait(TIMEOUT)
    assert calls == [1, 5]


def test_shutdown_during_delay_returns_promptly_and_runs_pending(
    executor: concurrent.futures.Executor,
) -> None:
    calls: list[int] = []
    # A real, very long delay: shutdown must not wait it out.
    scheduler = DelayedAsynchronizer(executor, 3600)
    scheduler.submit(calls.append, 1)
    with scheduler._condition:
        assert scheduler._condition.wait_for(lambda: scheduler._timer is not None, TIMEOUT)
    scheduler.submit(calls.append, 2)
    scheduler.submit(calls.append, 3)
    results: list[bool] = []
    shutter = start_thread(lambda: results.append(scheduler.shutdown()))
    join(shutter)
    assert results == [True]
    assert calls == [1, 3]
    assert scheduler._timer is None


def test_shutdown_during_delay_without_pending_work(executor: concurrent.futures.Executor) -> None:
    timers = ManualTimers()
    scheduler = DelayedAsynchronizer(executor, 3600, timer_factory=timers)
    scheduler.submit(pow, 2, 2)
    timer = timers.wait_for(1)
    assert scheduler.shutdown(TIMEOUT) is True
    assert timer.cancelled
    # A cancelled timer that fires anyway (a race in a real timer) is ignored.
    timer.fire()
    assert scheduler.wait(0) is True
    assert scheduler.shutdown(TIMEOUT) is True
    with pytest.raises(RuntimeError, match="after shutdown"):
        scheduler.submit(pow, 2, 2)


def test_no_delay_is_started_after_shutdown(executor: concurrent.futures.Executor) -> None:
    timers = ManualTimers()
    scheduler = DelayedAsynchronizer(executor, 3600, timer_factory=timers)
    gate_started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def blocking(value: int) -> None:
        calls.append(value)
        gate_started.set()
        assert release.wait(TIMEOUT)

    submitter = start_thread(scheduler.submit, blocking, 1)
    assert gate_started.wait(TIMEOUT)
    scheduler.submit(calls.append, 2)
    results: list[bool] = []
    shutter = start_thread(lambda: results.append(scheduler.shutdown()))
    with scheduler._condition:
        assert scheduler._condition.wait_for(lambda: scheduler._shutdown, TIMEOUT)
    release.set()
    join(submitter)
    join(shutter)
    assert results == [True]
    assert calls == [1, 2]
    assert timers.timers == []


def test_failing_job_logs_on_delayed_logger_and_still_delays(
    executor: concurrent.futures.Executor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    timers = ManualTimers()
    scheduler = DelayedAsynchronizer(executor, 1, name="Slow", timer_factory=timers)

    def fail() -> None:
        raise OSError("disk")

    scheduler.submit(fail)
    timers.wait_for(1).fire()
    assert scheduler.wait(TIMEOUT)
    records = [r for r in caplog.records if r.name.startswith("encore.concurrent")]
    assert [r.name for r in records] == [DELAYED_LOGGER, DELAYED_LOGGER]
    assert records[0].exc_info[0] is OSError
    assert records[0].getMessage() == "OSError occurred in submitted Slow job."
    assert "OSError: disk" in records[1].getMessage()


def test_timer_that_cannot_start_is_logged_and_skipped(
    executor: concurrent.futures.Executor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=DELAYED_LOGGER)

    class BrokenTimer(ManualTimer):
        def start(self) -> None:
            raise RuntimeError("can't start new thread")

    calls: list[int] = []
    scheduler = DelayedAsynchronizer(executor, 3600, timer_factory=BrokenTimer)
    scheduler.submit(calls.append, 1)
    assert scheduler.wait(TIMEOUT)
    scheduler.submit(calls.append, 2)
    assert scheduler.wait(TIMEOUT)  # before shutdown, which skips the delay
    assert scheduler.shutdown(TIMEOUT)
    assert calls == [1, 2]
    records = [r for r in caplog.records if r.name == DELAYED_LOGGER]
    assert len(records) == 2
    assert all("delay timer" in r.getMessage() for r in records)


def test_timer_firing_synchronously_on_start(executor: concurrent.futures.Executor) -> None:
    class ImmediateTimer(ManualTimer):
        def start(self) -> None:
            self.started = True
            self.function()

    scheduler = DelayedAsynchronizer(executor, 1, timer_factory=ImmediateTimer)
    calls: list[int] = []
    for value in range(100):
        scheduler.submit(calls.append, value)
    assert scheduler.shutdown(TIMEOUT)
    assert calls[-1] == 99
    assert calls == sorted(set(calls))


def test_real_timer_keeps_job_starts_interval_apart() -> None:
    interval = 0.05
    starts: list[float] = []
    scheduler = DelayedAsynchronizer(SynchronousExecutor(), interval)
    for _ in range(4):
        scheduler.submit(lambda: starts.append(time.monotonic()))
        assert scheduler.wait(TIMEOUT)
    gaps = [later - earlier for earlier, later in zip(starts, starts[1:], strict=False)]
    assert len(gaps) == 3
    # The timer never fires early; the small slack only absorbs clock rounding.
    assert all(gap >= interval * 0.9 for gap in gaps), gaps


def test_default_timer_is_a_daemon_thread() -> None:
    scheduler = DelayedAsynchronizer(SynchronousExecutor(), 3600)
    scheduler.submit(pow, 1, 1)
    timer = scheduler._timer
    assert isinstance(timer, threading.Timer)
    assert timer.daemon
    assert scheduler.shutdown(TIMEOUT)
    timer.join(TIMEOUT)
    assert not timer.is_alive()


def test_is_a_latest_wins_scheduler() -> None:
    assert issubclass(DelayedAsynchronizer, Asynchronizer)


@pytest.mark.parametrize(
    ("interval", "error"),
    [(-1, ValueError), (float("nan"), ValueError), ("1", TypeError), (None, TypeError)],
)
def test_bad_interval_is_rejected(interval: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="interval"):
        DelayedAsynchronizer(SynchronousExecutor(), interval)  # type: ignore[arg-type]


def test_bad_timer_factory_is_rejected() -> None:
    with pytest.raises(TypeError, match="timer_factory"):
        DelayedAsynchronizer(SynchronousExecutor(), 1, timer_factory=3)  # type: ignore[arg-type]


def test_shutdown_from_another_thread_while_submitting_never_hangs() -> None:
    # Many rounds of the shutdown-versus-job-completion race on a real pool.
    for _ in range(50):
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as executor:
            scheduler = DelayedAsynchronizer(executor, 3600)
            scheduler.submit(pow, 2, 2)
            scheduler.submit(pow, 2, 3)
            shutter = start_thread(scheduler.shutdown)
            join(shutter)
            assert scheduler.wait(0)
