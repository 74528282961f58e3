"""The base class of the work schedulers: run at most one job at a time on an executor.

A work scheduler wraps any :class:`concurrent.futures.Executor` (an
:class:`~encore.concurrent.futures.enhanced_thread_pool_executor.EnhancedThreadPoolExecutor`,
the standard :class:`~concurrent.futures.ThreadPoolExecutor`, a
:class:`~encore.concurrent.futures.synchronous.SynchronousExecutor`, ...) and
runs **at most one of its own jobs at a time**, however many workers the
executor has. Submissions that arrive while a job runs are kept by a policy
that each subclass defines with two small methods:

* :meth:`ABCWorkScheduler._add_pending_operation` stores a submission;
* :meth:`ABCWorkScheduler._get_next_operation` hands out the next one to run.

The concrete policies live in :mod:`.asynchronizer` (latest wins),
:mod:`.serializer` (FIFO), :mod:`.serializing_asynchronizer` (latest wins per
callable, FIFO across callables) and :mod:`.delayed_asynchronizer` (latest
wins, with a minimum interval between jobs).

Failures never stall a scheduler: when a job or the user callback raises, two
records are logged on the scheduler's module logger (the
``logging.exception`` record, then ``"Actual error:"`` with the job's
traceback), and the next job is scheduled regardless.
"""

from __future__ import annotations

import abc
import concurrent.futures
import logging
import threading
import traceback
from collections.abc import Callable
from typing import Any

from encore.concurrent.futures.future import format_future_traceback

__all__ = ["ABCWorkScheduler", "Job"]

#: A pending submission: ``(operation, args, kwargs)``.
Job = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]

# Marks ``_future`` between choosing a job and the executor accepting it, so no
# other thread schedules a second job in that window.
_LAUNCHING = object()


class ABCWorkScheduler(abc.ABC):
    """Run submitted operations on an executor, one at a time.

    Parameters
    ----------
    executor : concurrent.futures.Executor
        Where the jobs run. The scheduler never shuts it down.
    name : str, optional
        Public :attr:`name`, used in log messages. Defaults to the class name.
    callback : callable, optional
        Called as ``callback(future)`` after each job finishes, on the thread
        that completes the future: usually an executor worker, or the
        submitting thread for a synchronous executor. If it raises, the error
        is logged and scheduling carries on.

    Notes
    -----
    All public methods are thread-safe. Do not call :meth:`wait` or
    :meth:`shutdown` from inside one of this scheduler's jobs: the job would
    wait for itself. (From inside the callback this is detected and raises
    :class:`RuntimeError`.)
    """

    #: Logger for job and callback failures. Subclasses that change how
    #: completion is handled set their own module logger.
    _logger = logging.getLogger(__name__)

    def __init__(
        self,
        executor: concurrent.futures.Executor,
        name: str | None = None,
        callback: Callable[[concurrent.futures.Future], object] | None = None,
    ) -> None:
        if not callable(getattr(executor, "submit", None)):
            raise TypeError(f"executor must have a submit() method, got {executor!r}")
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable, not {callback!r}")
        self.name: str = type(self).__name__ if name is None else str(name)
        self.callback = callback
        self._executor = executor
        self._condition = threading.Condition(threading.RLock())
        # The job running now (a future), _LAUNCHING, or None when idle.
        self._future: concurrent.futures.Future | object | None = None
        self._shutdown = False
        # Thread currently running the user callback (to detect self-waits).
        self._reporting_thread: int | None = None
        # Per-thread trampoline state: a job whose future completes
        # synchronously must not recurse into launching the next one.
        self._local = threading.local()

    # ------------------------------------------------------------------
    # Policy: implemented by subclasses, always called with the lock held.
    # ------------------------------------------------------------------

    @abc.abstractmethod
    def _add_pending_operation(
        self, operation: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        """Store a submitted operation according to the scheduling policy."""

    @abc.abstractmethod
    def _get_next_operation(self) -> Job | None:
        """Remove and return the next ``(operation, args, kwargs)``, or None."""

    # ------------------------------------------------------------------
    # Public API
    # ------------------------------------------------------------------

    def submit(self, operation: Callable[..., Any], /, *args: Any, **kwargs: Any) -> None:
        """Submit ``operation(*args, **kwargs)`` for execution under this policy.

        Nothing is returned: results reach the ``callback``. If no job is
        running, the next operation chosen by the policy is handed to the
        executor at once.

        Raises
        ------
        RuntimeError
            If the scheduler has been shut down, or the executor refuses the
            job (for instance because it has been shut down).
        TypeError
            If ``operation`` is not callable.
        """
        if not callable(operation):
            raise TypeError(f"operation must be callable, not {operation!r}")
        with self._condition:
            if self._shutdown:
                raise RuntimeError("Cannot submit new operations after shutdown.")
            self._add_pending_operation(operation, args, kwargs)
            job = self._take_next_job() if self._future is None else None
        if job is not None:
            self._launch(job, raise_errors=True)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no job is running or waiting to be scheduled.

        Parameters
        ----------
        timeout : float, optional
            Maximum number of seconds to wait; ``None`` waits indefinitely.

        Returns
        -------
        bool
            True if the scheduler is idle, False if the timeout expired first.

        Raises
        ------
        RuntimeError
            If called from this scheduler's callback, which would deadlock.
        """
        if self._reporting_thread == threading.get_ident():
            raise RuntimeError(
                f"{self.name}: wait() called from the scheduler's own callback would deadlock"
            )
        with self._condition:
            return self._condition.wait_for(lambda: self._future is None, timeout)

    def shutdown(self, timeout: float | None = None) -> bool:
        """Refuse new submissions, then wait for accepted work to finish.

        Operations that were already accepted still run. Calling this more
        than once is harmless. The executor is left running.

        Parameters
        ----------
        timeout : float, optional
            Maximum number of seconds to wait; ``None`` waits indefinitely.

        Returns
        -------
        bool
            True if all accepted work has finished, False on timeout.
        """
        with self._condition:
            self._shutdown = True
        return self.wait(timeout)

    # ------------------------------------------------------------------
    # Scheduling machinery
    # ------------------------------------------------------------------

    def _take_next_job(self) -> Job | None:
        """Claim the next job for launching; call with the lock held."""
        job = self._get_next_operation()
        if job is not None:
            self._future = _LAUNCHING
        return job

    def _launch(self, job: Job, raise_errors: bool) -> None:
        """Hand ``job`` (already claimed) and any jobs it unblocks to the executor."""
        local = self._local
        if getattr(local, "launching", False):
            # A synchronous completion inside the loop below; let the loop
            # launch this job instead of recursing.
            local.deferred = job
            return
        local.launching = True
        try:
            next_job: Job | None = job
            while next_job is not None:
                local.deferred = None
                operation, args, kwargs = next_job
                try:
                    future = self._executor.submit(operation, *args, **kwargs)
                except Exception:
                    self._abandon_pending()
                    if raise_errors:
                        raise
                    self._logger.exception(
                        "The executor refused a %s job; pending jobs were dropped.", self.name
                    )
                    return
                except BaseException:
                    self._abandon_pending()
                    raise
                raise_errors = False
                with self._condition:
                    self._future = future
                # May run _job_done right here if the job already finished.
                future.add_done_callback(self._job_done)
                next_job = local.deferred
        finally:
            local.launching = False
            unlaunched, local.deferred = local.deferred, None
            if unlaunched is not None:
                # Only reachable when a BaseException (e.g. KeyboardInterrupt
                # in a callback) escaped after the next job was claimed; do not
                # leave the scheduler looking busy forever.
                self._abandon_pending()

    def _abandon_pending(self) -> None:
        """Drop every pending job and become idle (the executor refused work)."""
        with self._condition:
            while self._get_next_operation() is not None:
                pass
            self._future = None
            self._condition.notify_all()

    def _job_done(self, future: concurrent.futures.Future) -> None:
        """Done-callback of every job: report it, then move on whatever happens."""
        try:
            self._report(future)
        finally:
            self._job_finished(future)

    def _job_finished(self, future: concurrent.futures.Future) -> None:
        """Called after a job has been reported; by default starts the next one."""
        self._start_next()

    def _start_next(self) -> None:
        """Become idle, or launch the next pending job."""
        with self._condition:
            self._future = None
            job = self._take_next_job()
            if job is None:
                self._condition.notify_all()
        if job is not None:
            self._launch(job, raise_errors=False)

    def _report(self, future: concurrent.futures.Future) -> None:
        """Run the user callback and log any failure of the callback or the job."""
        callback = self.callback
        if callback is not None:
            self._reporting_thread = threading.get_ident()
            try:
                callback(future)
            except Exception as exc:
                self._log_failure(exc, "".join(traceback.format_exception(exc)))
            finally:
                self._reporting_thread = None
        if future.cancelled():
            self._logger.warning("A submitted %s job was cancelled before it ran.", self.name)
            return
        exception = future.exception(timeout=0)
        if exception is not None:
            self._log_failure(exception, format_future_traceback(future) or "")

    def _log_failure(self, exception: BaseException, traceback_text: str) -> None:
        self._logger.error(
            f"{type(exception).__name__} occurred in submitted {self.name} job.",
            exc_info=(type(exception), exception, exception.__traceback__),
        )
        self._logger.error("Actual error:\n" + traceback_text)
