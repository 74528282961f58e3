"""The "latest wins per callable, FIFO across callables" work scheduler.

:class:`SerializingAsynchronizer` combines the two simpler policies: for each
callable only the latest pending arguments are kept (as in
:class:`~encore.concurrent.futures.asynchronizer.Asynchronizer`), while
different callables run in the order they were first submitted (as in
:class:`~encore.concurrent.futures.serializer.Serializer`).
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from typing import Any

from encore.concurrent.futures.abc_work_scheduler import ABCWorkScheduler, Job

__all__ = ["SerializingAsynchronizer"]


class SerializingAsynchronizer(ABCWorkScheduler):
    """Run jobs one at a time: latest arguments per callable, callables in FIFO order.

    Pending submissions are keyed by the operation itself, so operations must
    be hashable; equal callables (for example two bound methods of the same
    object) share a key. Re-submitting a pending key replaces its arguments
    but keeps its place in the queue. For example, if C is running and A, B
    and A are submitted, the run order is C, A (with the second arguments), B.

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
        # Insertion-ordered: a re-assigned key keeps its original position.
        self._pending: dict[Callable[..., Any], Job] = {}

    def _add_pending_operation(
        self, operation: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        try:
            self._pending[operation] = (operation, args, kwargs)
        except TypeError as exc:
            raise TypeError(
                f"{type(self).__name__} needs hashable operations, got {operation!r}"
            ) from exc

    def _get_next_operation(self) -> Job | None:
        if not self._pending:
            return None
        key = next(iter(self._pending))
        return self._pending.pop(key)
