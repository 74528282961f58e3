"""An executor that runs each job immediately on the thread that submits it.

:class:`SynchronousExecutor` is a drop-in :class:`concurrent.futures.Executor`
for code paths (tests, scripts, debugging) where background threads are not
wanted: the job has finished by the time :meth:`~SynchronousExecutor.submit`
returns.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any

from encore.concurrent.futures.future import Future

__all__ = ["SynchronousExecutor"]


class SynchronousExecutor(concurrent.futures.Executor):
    """Executor that runs every submitted call synchronously.

    ``submit`` calls the function on the calling thread and returns an
    already finished :class:`encore.concurrent.futures.future.Future`. Any
    :class:`BaseException` raised by the call (including
    :class:`KeyboardInterrupt` and :class:`SystemExit`) is stored in the future
    rather than propagated, just as a thread pool would. The future can never
    be cancelled, because it is finished before the caller sees it.

    Thread safety: ``submit`` may be called from several threads at once;
    each call runs on its own caller's thread.
    """

    def __init__(self) -> None:
        self._shutdown = False
        self._shutdown_lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        """Run ``fn(*args, **kwargs)`` now and return its finished future.

        Raises
        ------
        RuntimeError
            If the executor has been shut down.
        """
        with self._shutdown_lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
        future = Future()
        future.set_running_or_notify_cancel()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            future.set_exception(exc)
            # Break the frame -> exc -> traceback -> frame reference cycle.
            del exc
        else:
            future.set_result(result)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Refuse further submissions.

        There is never any pending work, so ``wait`` and ``cancel_futures``
        have nothing to act on; they are accepted for compatibility with
        :meth:`concurrent.futures.Executor.shutdown`. Calling this more than
        once is harmless.
        """
        with self._shutdown_lock:
            self._shutdown = True
