"""A thread pool that adds per-worker set-up/tear-down and naming to the stdlib pool.

:class:`EnhancedThreadPoolExecutor` is a :class:`concurrent.futures.ThreadPoolExecutor`
(so ``shutdown(cancel_futures=...)``, ``map`` and the context-manager protocol
are the standard library's own) with what the standard pool lacks:

* an ``uninitializer`` that runs once as each worker thread exits, whatever
  the reason (shutdown, the executor being garbage collected, interpreter
  exit);
* an ``initializer`` whose failure is logged and ignored instead of breaking
  the pool;
* worker threads named ``"{name}Worker-{n}"`` with ``n`` counting from 1;
* ``wait_at_exit``: whether interpreter exit waits for queued work;
* futures that remember the worker-side traceback (see
  :class:`encore.concurrent.futures.future.Future`), with a class-level
  ``_future_factory`` hook for subclasses.

Idle workers are reused, as in the standard pool: a new thread is started only
when no worker is free and fewer than ``max_workers`` exist.

Implementation note: the worker loop is our own (it must wrap the uninitializer
around the loop, and the standard library changes its private worker
signature between releases), but interpreter-exit handling deliberately hooks
into the standard library's own registry of pool threads, so both kinds of pool
are drained by the same exit hook.
"""

from __future__ import annotations

import concurrent.futures
import concurrent.futures.thread as _stdlib_thread
import itertools
import logging
import queue
import threading
import weakref
from collections.abc import Callable
from typing import Any

from encore.concurrent.futures.future import Future

__all__ = ["EnhancedThreadPoolExecutor"]

# The standard library's executor logger; worker set-up/tear-down failures are
# reported where the stdlib reports its own worker failures.
_LOGGER = logging.getLogger("concurrent.futures")


def _interpreter_shutting_down() -> bool:
    # Set by the stdlib's exit hook, which also drains our registered queues.
    return bool(getattr(_stdlib_thread, "_shutdown", False))


class _WorkItem:
    """One submitted call and the future that receives its outcome."""

    __slots__ = ("future", "fn", "args", "kwargs")

    def __init__(
        self,
        future: concurrent.futures.Future,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        self.future = future
        self.fn = fn
        self.args = args
        self.kwargs = kwargs

    def run(self) -> None:
        if not self.future.set_running_or_notify_cancel():
            return
        try:
            result = self.fn(*self.args, **self.kwargs)
        except BaseException as exc:
            self.future.set_exception(exc)
            # Break the reference cycle exc -> traceback -> frame -> self -> future -> exc.
            self = None
        else:
            self.future.set_result(result)


def _worker(
    executor_ref: weakref.ReferenceType[EnhancedThreadPoolExecutor],
    work_queue: queue.SimpleQueue[_WorkItem | None],
    initializer: Callable[[], object] | None,
    uninitializer: Callable[[], object] | None,
) -> None:
    """Body of one worker thread.

    Holds only a weak reference to the executor, so an abandoned executor can
    be collected; its weakref callback then wakes the workers with ``None``.
    """
    try:
        if initializer is not None:
            try:
                initializer()
            except BaseException:
                _LOGGER.critical("Initialize exception in worker", exc_info=True)
        while True:
            if work_queue.empty():
                # Only advertise this worker as idle when there is nothing to do,
                # so submit() starts a new thread rather than waiting behind us.
                executor = executor_ref()
                if executor is not None:
                    executor._idle_semaphore.release()
                del executor
            work_item = work_queue.get(block=True)

            if work_item is not None:
                work_item.run()
                # Drop the item now: the submitted callable may be the last
                # reference to objects the caller expects to be collected.
                del work_item
                continue

            executor = executor_ref()
            if _interpreter_shutting_down() or executor is None or executor._shutdown:
                if executor is not None:
                    executor._shutdown = True
                # Pass the wake-up on to the next worker.
                work_queue.put(None)
                return
            del executor
    except BaseException:
        _LOGGER.critical("Exception in worker", exc_info=True)
    finally:
        if uninitializer is not None:
            try:
                uninitializer()
            except BaseException:
                _LOGGER.critical("Uninitialize exception in worker", exc_info=True)


class EnhancedThreadPoolExecutor(concurrent.futures.ThreadPoolExecutor):
    """Thread pool with per-worker initializer/uninitializer and named workers.

    Parameters
    ----------
    max_workers : int, optional
        Maximum number of worker threads. ``None`` uses the standard library's
        default (``min(32, cpu_count + 4)``).
    initializer : callable, optional
        Called with no arguments once at the start of each worker thread. If it
        raises, the error is logged at CRITICAL on the ``concurrent.futures``
        logger ("Initialize exception in worker") and the worker serves jobs
        anyway.
    uninitializer : callable, optional
        Called with no arguments once as each worker thread exits, for any
        reason. Failures are logged like the initializer's ("Uninitialize
        exception in worker").
    name : str, optional
        Public :attr:`name` of the executor, used to name worker threads
        ``"{name}Worker-{n}"``. Defaults to the class name.
    wait_at_exit : bool, optional
        If true (the default), interpreter exit waits for the queued work of
        this executor to finish. If false, the (daemon) workers are abandoned
        at exit and queued work may never run.

    Notes
    -----
    Workers are daemon threads. ``submit`` and ``shutdown`` are thread-safe.
    """

    #: Zero-argument factory for the futures returned by :meth:`submit`.
    #: Subclasses may replace it with a :class:`Future` subclass.
    _future_factory: Callable[[], concurrent.futures.Future] = Future

    def __init__(
        self,
        max_workers: int | None = None,
        initializer: Callable[[], object] | None = None,
        uninitializer: Callable[[], object] | None = None,
        name: str | None = None,
        wait_at_exit: bool = True,
    ) -> None:
        if initializer is not None and not callable(initializer):
            raise TypeError(f"initializer must be callable, not {initializer!r}")
        if uninitializer is not None and not callable(uninitializer):
            raise TypeError(f"uninitializer must be callable, not {uninitializer!r}")
        self.name: str = type(self).__name__ if name is None else str(name)
        # The stdlib initializer is not used: its failure breaks the pool, and
        # ours must not.
        super().__init__(max_workers=max_workers, thread_name_prefix=self.name)
        self._worker_initializer = initializer
        self._worker_uninitializer = uninitializer
        self._wait_at_exit = bool(wait_at_exit)
        self._thread_numbers = itertools.count(1)

    def submit(
        self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future:
        """Schedule ``fn(*args, **kwargs)`` and return a future for its outcome.

        The future is made by :attr:`_future_factory` (by default an encore
        :class:`~encore.concurrent.futures.future.Future`).

        Raises
        ------
        RuntimeError
            If the executor, or the interpreter, is shutting down.
        """
        with self._shutdown_lock, _stdlib_thread._global_shutdown_lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if _interpreter_shutting_down():
                raise RuntimeError("cannot schedule new futures after interpreter shutdown")
            future = self._future_factory()
            self._work_queue.put(_WorkItem(future, fn, args, kwargs))
            self._adjust_thread_count()
            return future

    def _adjust_thread_count(self) -> None:
        # Reuse an idle worker if there is one.
        if self._idle_semaphore.acquire(timeout=0):
            return
        if len(self._threads) >= self._max_workers:
            return

        def wake_workers(_: object, q: queue.SimpleQueue[Any] = self._work_queue) -> None:
            q.put(None)

        thread = threading.Thread(
            name=f"{self.name}Worker-{next(self._thread_numbers)}",
            target=_worker,
            args=(
                weakref.ref(self, wake_workers),
                self._work_queue,
                self._worker_initializer,
                self._worker_uninitializer,
            ),
            daemon=True,
        )
        thread.start()
        self._threads.add(thread)
        if self._wait_at_exit:
            # The stdlib exit hook sends each registered queue a sentinel and
            # joins the thread; the FIFO queue runs pending work first.
            _stdlib_thread._threads_queues[thread] = self._work_queue
