"""A :class:`concurrent.futures.Future` that remembers where its exception came from.

When a job fails on a worker thread, the caller usually learns about it much
later, when the traceback attached to the exception has been extended (each
re-raise in :meth:`~concurrent.futures.Future.result` prepends the caller's
frames). :class:`Future` keeps the traceback as it was when the worker
recorded the exception, and :meth:`Future.traceback` formats it on demand.
"""

from __future__ import annotations

import concurrent.futures
import traceback as _traceback

__all__ = ["Future", "format_future_traceback"]


class Future(concurrent.futures.Future):
    """A future whose failure can be reported with the worker's traceback.

    It behaves exactly like :class:`concurrent.futures.Future` (including
    raising :class:`~concurrent.futures.InvalidStateError` when a result or
    exception is set twice) and adds :meth:`traceback`.
    """

    # (exception, traceback) as they were when the exception was set. The
    # exception is kept alongside so a racing, rejected set_exception can never
    # attach its traceback to the winning exception. A class-level default
    # keeps construction as cheap as the stdlib future's.
    _exception_capture: tuple[BaseException, object] | None = None

    def set_exception(self, exception: BaseException | None) -> None:
        """Finish the future with ``exception`` and remember its traceback.

        Unlike upstream EnCore, this may be called anywhere, not only inside
        the ``except`` block that caught the exception: the traceback is taken
        from ``exception.__traceback__``.
        """
        with self._condition:
            if self.done():
                raise concurrent.futures.InvalidStateError(f"future is already done: {self!r}")
            if exception is not None:
                self._exception_capture = (exception, exception.__traceback__)
        super().set_exception(exception)

    def traceback(self) -> str | None:
        """Return the formatted traceback of the job's exception.

        Returns
        -------
        str or None
            The traceback text as it was when the worker recorded the
            exception (it does not include the frames of whoever later called
            :meth:`result`), or ``None`` if the future has not finished with an
            exception. This method never blocks.
        """
        with self._condition:
            if not self.done() or self.cancelled():
                return None
            exception = self.exception(timeout=0)
            capture = self._exception_capture
        if exception is None:
            return None
        tb = capture[1] if capture is not None and capture[0] is exception else None
        if tb is None:
            tb = exception.__traceback__
        return "".join(_traceback.format_exception(type(exception), exception, tb))


def format_future_traceback(future: concurrent.futures.Future) -> str | None:
    """Return the traceback text of a finished future's exception, if any.

    Works with any :class:`concurrent.futures.Future`: an encore
    :class:`Future` reports the traceback captured by the worker, a plain
    future the traceback currently attached to its exception.

    Parameters
    ----------
    future : concurrent.futures.Future
        A future that is done.

    Returns
    -------
    str or None
        The formatted traceback, or ``None`` if the future was cancelled,
        is not done, or finished with a result.
    """
    if not future.done() or future.cancelled():
        return None
    if isinstance(future, Future):
        return future.traceback()
    exception = future.exception(timeout=0)
    if exception is None:
        return None
    return "".join(
        _traceback.format_exception(type(exception), exception, exception.__traceback__)
    )
