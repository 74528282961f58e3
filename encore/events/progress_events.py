"""Events and helpers for managing progress indicators.

An operation reports progress as one :class:`ProgressStartEvent`, any number of
:class:`ProgressStepEvent` and one :class:`ProgressEndEvent`, all carrying the
same ``operation_id``.  :class:`ProgressManager` emits them for you and
guarantees the end event, even when the work raises.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any
from uuid import uuid4

from encore.events.abstract_event_manager import BaseEvent, BaseEventManager
from encore.events.package_globals import get_event_manager

__all__ = [
    "ProgressEndEvent",
    "ProgressEvent",
    "ProgressManager",
    "ProgressStartEvent",
    "ProgressStepEvent",
]


class ProgressEvent(BaseEvent):
    """Abstract base class for all progress events.

    Listen to this class to receive every kind of progress event.

    Attributes
    ----------
    operation_id : object
        A unique identifier for the operation being performed.
    message : str
        A human-readable description of the operation being performed.
    """

    operation_id: Any = None
    message: str | None = None


class ProgressStartEvent(ProgressEvent):
    """Event emitted at the start of an operation.

    Attributes
    ----------
    steps : int
        The number of steps in the operation; -1 if unknown or variable.
    """

    steps: int = -1


class ProgressStepEvent(ProgressEvent):
    """Event emitted periodically during an operation.

    Attributes
    ----------
    step : int
        The count of the step; -1 if unknown.
    """

    step: int = -1


class ProgressEndEvent(ProgressEvent):
    """Event emitted at the end of an operation.

    Attributes
    ----------
    exit_state : str
        How the operation ended: one of ``'normal'``, ``'warning'``,
        ``'error'`` or ``'exception'``.
    """

    exit_state: str = "normal"


class ProgressManager:
    """Utility class for managing progress events.

    The usual way to use it is as a context manager, which guarantees that
    the start and end events are always emitted, even if there is an
    exception::

        with ProgressManager(event_manager, source, op_id, "Working", steps) as progress:
            for step in range(steps):
                ...  # do work
                progress(step=step + 1)

    For finer-grained reporting, call :meth:`start`, :meth:`step` and
    :meth:`end` yourself, e.g. ``progress.end(message=str(exc),
    exit_state='exception')`` in an exception handler.

    Parameters
    ----------
    event_manager : BaseEventManager, optional
        The event manager to emit on; the global one by default.
    source : object, optional
        The source of the events; the progress manager itself by default.
    operation_id : object, optional
        The unique identifier of the operation; a fresh ``uuid4()`` by default.
    message : str, optional
        The default message of the events.
    steps : int, optional
        The number of steps; -1 if not known.
    **kwargs
        Extra attributes set on every event emitted.

    Attributes
    ----------
    StartEventType, StepEventType, EndEventType : class
        The event classes emitted; subclasses may override them.
    """

    StartEventType: type[ProgressStartEvent] = ProgressStartEvent
    StepEventType: type[ProgressStepEvent] = ProgressStepEvent
    EndEventType: type[ProgressEndEvent] = ProgressEndEvent

    def __init__(
        self,
        event_manager: BaseEventManager | None = None,
        source: Any = None,
        operation_id: Any = None,
        message: str = "Performing operation",
        steps: int = -1,
        **kwargs: Any,
    ) -> None:
        self.event_manager = get_event_manager() if event_manager is None else event_manager
        self.source = self if source is None else source
        self.operation_id = uuid4() if operation_id is None else operation_id
        self.message = message
        self.steps = steps
        self.extra_kwargs = kwargs
        self._step_count = 0
        self._running = False

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`end`."""
        return self._running

    def _emit(self, event_type: type[ProgressEvent], message: str | None, **attrs: Any) -> None:
        kwargs = {**self.extra_kwargs, **attrs}
        event = event_type(
            source=self.source,
            operation_id=self.operation_id,
            message=self.message if message is None else message,
            **kwargs,
        )
        self.event_manager.emit(event)

    def start(self, **extra_kwargs: Any) -> None:
        """Emit a start event (an instance of :attr:`StartEventType`).

        Parameters
        ----------
        **extra_kwargs
            Additional arguments passed through to the event's constructor.

        Raises
        ------
        RuntimeError
            If the operation has already been started and not ended.
        """
        if self._running:
            raise RuntimeError(f"progress operation {self.operation_id!r} already started")
        self._running = True
        self._step_count = 0
        self._emit(self.StartEventType, None, steps=self.steps, **extra_kwargs)

    def step(
        self, message: str | None = None, step: int | None = None, **extra_kwargs: Any
    ) -> None:
        """Emit a step event (an instance of :attr:`StepEventType`).

        Parameters
        ----------
        message : str, optional
            The event's message; :attr:`message` by default.
        step : int, optional
            The step number.  By default an internal count is used, which
            starts at 0 and is incremented each time this method is called.
        **extra_kwargs
            Additional arguments passed through to the event's constructor.

        Raises
        ------
        RuntimeError
            If :meth:`start` has not been called.
        """
        if not self._running:
            raise RuntimeError(f"progress operation {self.operation_id!r} stepped before start()")
        if step is None:
            step = self._step_count
        self._emit(self.StepEventType, message, step=step, **extra_kwargs)
        self._step_count += 1

    def end(
        self, message: str | None = None, exit_state: str = "normal", **extra_kwargs: Any
    ) -> None:
        """Emit an end event (an instance of :attr:`EndEventType`).

        Parameters
        ----------
        message : str, optional
            The event's message; :attr:`message` by default.
        exit_state : str, optional
            One of ``'normal'``, ``'warning'``, ``'error'`` or ``'exception'``.
            ``end_state`` is accepted as an alias, as the original documentation
            spelled it.
        **extra_kwargs
            Additional arguments passed through to the event's constructor.

        Raises
        ------
        RuntimeError
            If the operation is not running.
        TypeError
            If both ``exit_state`` and ``end_state`` are given.
        """
        if "end_state" in extra_kwargs:
            # The EnCore documentation's own example spells it end_state.
            if exit_state != "normal":
                raise TypeError("pass exit_state or its alias end_state, not both")
            exit_state = extra_kwargs.pop("end_state")
        if not self._running:
            raise RuntimeError(f"progress operation {self.operation_id!r} ended while not running")
        self._running = False
        self._emit(self.EndEventType, message, exit_state=exit_state, **extra_kwargs)

    def __call__(
        self, message: str | None = None, step: int | None = None, **extra_kwargs: Any
    ) -> None:
        """Start the operation if needed, then emit a step event."""
        if not self._running:
            self.start()
        self.step(message, step, **extra_kwargs)

    def __enter__(self) -> ProgressManager:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # The body may already have called end() itself; do not raise over it.
        if not self._running:
            return
        if exc_type is None:
            self.end()
        else:
            self.end(str(exc_value), "exception")
