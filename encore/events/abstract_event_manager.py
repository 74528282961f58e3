"""The abstract event manager API and the base class of every event.

:class:`BaseEventManager` is the interface every event manager implements; the
concrete, thread-safe implementation is
:class:`encore.events.event_manager.EventManager`.  :class:`BaseEvent` is the
base class of all events: subclass it to define your own event types, because
listeners are selected by event class (including superclasses).
"""

from __future__ import annotations

import abc
import reprlib
import threading
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["BaseEvent", "BaseEventManager"]

_repr = reprlib.Repr()
_repr.maxstring = 60
_repr.maxother = 60


class BaseEvent:
    """Base class for all events.

    Parameters
    ----------
    source : object, optional
        The object which generated the event.  When omitted (or None) it is a
        new empty list, as in the original EnCore.
    **kwargs
        Additional event attributes which are set on the event object.

    Notes
    -----
    A listener stops the dispatch to all lower-priority listeners by calling
    :meth:`mark_as_handled`.  :meth:`pre_emit` and :meth:`post_emit` are hooks
    called immediately before and after the listeners run.
    """

    def __init__(self, source: Any = None, **kwargs: Any) -> None:
        # A fresh list per event (never a shared default) keeps compatibility
        # with code that tests ``event.source == []``.
        self.source = [] if source is None else source
        self._handled = False
        for name, value in kwargs.items():
            setattr(self, name, value)

    def mark_as_handled(self) -> None:
        """Mark the event as handled so subsequent listeners are not notified."""
        self._handled = True

    def pre_emit(self) -> None:
        """Called before emitting an event.

        Can be used for any event specific functionality, validation etc.
        """

    def post_emit(self) -> None:
        """Called after emitting an event.

        Can be used for any event specific functionality, post event
        validation etc.
        """

    def __repr__(self) -> str:
        attrs = ", ".join(
            f"{name}={_repr.repr(value)}"
            for name, value in vars(self).items()
            if not name.startswith("_")
        )
        return f"{type(self).__name__}({attrs})"


class BaseEventManager(abc.ABC):
    """This abstract class defines the API for Event Managers.

    Event managers are expected to implement the interface specified here; a
    concrete implementation is :class:`encore.events.event_manager.EventManager`.
    """

    @abc.abstractmethod
    def connect(
        self,
        cls: type,
        func: Callable[[Any], Any],
        filter: Mapping[str, Any] | None = None,
        priority: int = 0,
    ) -> None:
        """Add a listener for the event.

        Parameters
        ----------
        cls : class
            The class of events for which the listener is registered.
        func : callable
            A callable to be called when the event is emitted.  The function
            should expect one argument which is the event instance which was
            emitted.
        filter : dict, optional
            Filters to match before calling the listener.  The listener is
            called only when the event matches all of the filter.  Each key is
            the (possibly ``.``-separated) name of an attribute of the event
            instance, and each value is the value that attribute must equal.
            If the attribute does not exist then the filter is considered
            failed and the listener is not called.
        priority : int, optional
            The priority of the listener.  Higher priority listeners are called
            before lower priority listeners.

        Notes
        -----
        The filtering exists so that specific events with a large number of
        handlers can be dispatched quickly: key events are matched to their
        listeners without iterating through all listeners.
        """

    @abc.abstractmethod
    def disconnect(self, cls: type, func: Callable[[Any], Any]) -> None:
        """Disconnect a listener from being notified about the event.

        Parameters
        ----------
        cls : class
            The class of events for which the listener is registered.
        func : callable
            The callable which was registered for that class.

        Raises
        ------
        KeyError
            If ``func`` is not connected to ``cls``.
        """

    @abc.abstractmethod
    def emit(self, event: BaseEvent, block: bool = True) -> threading.Thread | None:
        """Notify all listeners about the event.

        Parameters
        ----------
        event : BaseEvent
            The event instance to emit.
        block : bool, optional
            Whether to block the call until the event handling is finished.
            If False, the event is emitted in a separate thread and the thread
            is returned, so you can later query its status or ``join()`` it.

        Returns
        -------
        threading.Thread or None
            The worker thread when ``block`` is False, otherwise None.

        Notes
        -----
        Listeners of superclasses of the event are also called, e.g. a
        :class:`BaseEvent` listener is notified about every event.
        """

    @abc.abstractmethod
    def disable(self, cls: type) -> None:
        """Disable the event class (and its subclasses) from generating notifications.

        Parameters
        ----------
        cls : class
            The class of events which we want to disable.
        """

    @abc.abstractmethod
    def enable(self, cls: type) -> None:
        """Enable the event class again to generate notifications.

        Parameters
        ----------
        cls : class
            The class of events which we want to enable.
        """

    @abc.abstractmethod
    def is_enabled(self, cls: type) -> bool:
        """Check if the event class is enabled.

        Parameters
        ----------
        cls : class
            The class of events which we want to check the status of.

        Returns
        -------
        bool
            False if ``cls`` or any of its superclasses is disabled.
        """
