"""The first-in, first-out work scheduler.

:class:`Serializer` runs every submission, in submission order, one at a
time, even on an executor with many workers. It suits work that must not
overlap or be reordered, such as writes to a file.
"""

from __future__ import annotations

import collections
import concurrent.futures
from collections.abc import Callable
from typing import Any

from encore.concurrent.futures.abc_work_scheduler import ABCWorkScheduler, Job

__all__ = ["Serializer"]


class Serializer(ABCWorkScheduler):
    """Run every submitted job, one at a time, in submission order.

    Parameters and thread safety are those of
    :class:`~encore.concurrent.futures.abc_work_scheduler.ABCWorkScheduler`.
    """

    def __init__(
        self,
        executor: concurrent.futures.Executor,
        name: str | None = None,
        callback: Callable[[concurrent.futures.Future], object] | None = None,
    ) -> None:
        super().__init__(executor, name=name, callback=callback)
        self._pending: collections.deque[Job] = collections.deque()

    def _add_pending_operation(
        self, operation: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self._pending.append((operation, args, kwargs))

    def _get_next_operation(self) -> Job | None:
        return self._pending.popleft() if self._pending else None
