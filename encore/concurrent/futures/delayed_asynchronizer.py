"""The "latest wins" work scheduler with a minimum interval between jobs.

:class:`DelayedAsynchronizer` rate-limits work such as autosaving or polling:
it keeps only the latest pending submission (like
:class:`~encore.concurrent.futures.asynchronizer.Asynchronizer`) and, after
each job, waits ``interval`` seconds before starting the next one.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

from encore.concurrent.futures.asynchronizer import Asynchronizer

__all__ = ["DelayedAsynchronizer", "TimerLike"]


class TimerLike(Protocol):
    """What ``timer_factory(interval, function)`` must return."""

    def start(self) -> None:
        """Arrange for the function to be called after the interval."""

    def cancel(self) -> None:
        """Stop the function from being called, if it has not been yet."""


def _daemon_timer(interval: float, function: Callable[[], object]) -> threading.Timer:
    # A daemon timer, so a pending delay never holds up interpreter exit.
    timer = threading.Timer(interval, function)
    timer.daemon = True
    return timer


class DelayedAsynchronizer(Asynchronizer):
    """Latest-wins scheduler that leaves ``interval`` seconds between jobs.

    After each job completes (and its callback and failure logging have run,
    on the ``encore.concurrent.futures.delayed_asynchronizer`` logger), a
    timer of ``interval`` seconds starts; the scheduler counts as busy until
    it fires. So consecutive job *starts* are at least ``interval`` apart,
    even across calls to :meth:`wait`, and :meth:`wait` returns only after
    the delay.

    Parameters
    ----------
    executor : concurrent.futures.Executor
        Where the jobs run.
    interval : float
        Minimum delay in seconds between the end of one job and the start of
        the next.
    name : str, optional
        Public name, defaulting to the class name.
    callback : callable, optional
        ``callback(future)`` after each job, as for
        :class:`~encore.concurrent.futures.abc_work_scheduler.ABCWorkScheduler`.
    timer_factory : callable, optional
        ``timer_factory(interval, function)`` returning an object with
        ``start()`` and ``cancel()`` that calls ``function()`` once the
        interval has passed. Defaults to a daemon :class:`threading.Timer`.
        Tests inject a manual timer here.

    Notes
    -----
    :meth:`shutdown` cuts a running delay short: the pending submission, if
    any, starts immediately and shutdown waits only for it.
    """

    _logger = logging.getLogger(__name__)

    def __init__(
        self,
        executor: Any,
        interval: float,
        name: str | None = None,
        callback: Callable[[Any], object] | None = None,
        timer_factory: Callable[[float, Callable[[], object]], TimerLike] | None = None,
    ) -> None:
        if isinstance(interval, bool) or not isinstance(interval, (int, float)):
            raise TypeError(f"interval must be a number of seconds, not {interval!r}")
        if not interval >= 0:
            raise ValueError(f"interval must be >= 0 seconds, got {interval!r}")
        if timer_factory is not None and not callable(timer_factory):
            raise TypeError(f"timer_factory must be callable, not {timer_factory!r}")
        super().__init__(executor, name=name, callback=callback)
        self.interval = float(interval)
        self._timer_factory = _daemon_timer if timer_factory is None else timer_factory
        self._timer: TimerLike | None = None
        # Identifies the current delay, so a timer that fires after being
        # cancelled (or replaced) is ignored.
        self._delay_generation = 0

    def shutdown(self, timeout: float | None = None) -> bool:
        """Refuse new submissions, end any delay early and wait for the last job.

        Returns
        -------
        bool
            True if all accepted work has finished, False on timeout.
        """
        with self._condition:
            self._shutdown = True
            timer = self._timer
            if timer is not None:
                self._timer = None
                self._delay_generation += 1
        if timer is not None:
            try:
                timer.cancel()
            finally:
                self._start_next()
        return self.wait(timeout)

    def _job_finished(self, future: Any) -> None:
        with self._condition:
            if self._shutdown:
                # No delay after shutdown: it only postpones the last job.
                generation = None
            else:
                self._delay_generation += 1
                generation = self._delay_generation
        if generation is None:
            self._start_next()
            return
        delay = functools.partial(self._delay_elapsed, generation)
        try:
            timer = self._timer_factory(self.interval, delay)
            with self._condition:
                # shutdown() may have begun since we looked; it only cancels
                # timers it can see, so do not start one behind its back.
                start = not self._shutdown
                if start:
                    self._timer = timer
            if start:
                timer.start()
        except Exception:
            self._logger.exception(
                "Could not start the delay timer of %s; starting the next job now.", self.name
            )
            start = False
        if not start:
            delay()

    def _delay_elapsed(self, generation: int) -> None:
        with self._condition:
            if generation != self._delay_generation:
                return
            # Invalidate this delay so a second call (e.g. a timer that fails
            # to start after firing) cannot schedule twice.
            self._delay_generation += 1
            self._timer = None
        self._start_next()
