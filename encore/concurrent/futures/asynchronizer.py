"""The "latest wins" work scheduler.

:class:`Asynchronizer` suits work where only the most recent request matters,
such as redrawing a view or recomputing a preview: while a job runs, each new
submission replaces the previous pending one.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from typing import Any

from encore.concurrent.futures.abc_work_scheduler import ABCWorkScheduler, Job

__all__ = ["Asynchronizer"]


class Asynchronizer(ABCWorkScheduler):
    """Run jobs one at a time, keeping only the latest pending submission.

    There is a single pending slot. A submission made while a job is running
    overwrites the slot; when the job finishes, the slot's operation (if any)
    runs. So the first submission runs at once, the last one is guaranteed to
    run, and those in between may be dropped.

    Parameters and thread safety are those of
    :class:`~encore.concurrent.futures.abc_work_scheduler.ABCWorkScheduler`.

    Examples
    --------
    >>> from encore.concurrent.futures.synchronous import SynchronousExecutor
    >>> drawn = []
    >>> redraw = Asynchronizer(SynchronousExecutor(), name="redraw")
    >>> redraw.submit(drawn.append, "frame 1")
    >>> redraw.shutdown()
    True
    >>> drawn
    ['frame 1']
    """

    def __init__(
        self,
        executor: concurrent.futures.Executor,
        name: str | None = None,
        callback: Callable[[concurrent.futures.Future], object] | None = None,
    ) -> None:
        super().__init__(executor, name=name, callback=callback)
        self._pending: Job | None = None

    def _add_pending_operation(
        self, operation: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self._pending = (operation, args, kwargs)

    def _get_next_operation(self) -> Job | None:
        job, self._pending = self._pending, None
        return job
