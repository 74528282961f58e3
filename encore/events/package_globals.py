"""The process-wide default event manager.

Library code that is not handed an event manager explicitly (stores,
:class:`~encore.events.progress_events.ProgressManager`, the terminal progress
display, :class:`~encore.events.heartbeat.Heartbeat`) uses the one returned by
:func:`get_event_manager`.  An application that wants its own manager installs
it with :func:`set_event_manager` before anything asks for the default; tests
and applications that need to swap it temporarily use
:func:`use_event_manager`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from encore.events.abstract_event_manager import BaseEventManager

__all__ = ["get_event_manager", "set_event_manager", "use_event_manager"]

#: The global manager, created lazily.  Tests may reset it by assigning None.
_event_manager: BaseEventManager | None = None

# Guards creation and replacement, so that two threads making the first
# get_event_manager() call at once get the same manager.
_lock = threading.Lock()


def get_event_manager() -> BaseEventManager:
    """Return the global event manager, creating an ``EventManager`` on first use."""
    global _event_manager
    manager = _event_manager
    if manager is not None:
        return manager
    from encore.events.event_manager import EventManager

    with _lock:
        if _event_manager is None:
            _event_manager = EventManager()
        return _event_manager


def set_event_manager(event_manager: BaseEventManager) -> None:
    """Install ``event_manager`` as the global event manager.

    Raises
    ------
    ValueError
        If a global event manager already exists, including one created
        lazily by an earlier :func:`get_event_manager` call.  Use
        :func:`use_event_manager` to replace it temporarily.
    """
    global _event_manager
    with _lock:
        if _event_manager is not None:
            raise ValueError("Event manager has already been set.")
        _event_manager = event_manager


@contextmanager
def use_event_manager(
    event_manager: BaseEventManager | None = None,
) -> Iterator[BaseEventManager]:
    """Replace the global event manager for the duration of a ``with`` block.

    Parameters
    ----------
    event_manager : BaseEventManager, optional
        The manager to install; a fresh ``EventManager`` if omitted.

    Yields
    ------
    BaseEventManager
        The installed manager.  On exit the previous global (possibly None,
        i.e. "not yet created") is restored, even if the block raised.

    Notes
    -----
    The swap is process-wide, not per thread: objects created inside the block
    that look up the global manager at construction keep the installed one.
    """
    global _event_manager
    if event_manager is None:
        from encore.events.event_manager import EventManager

        event_manager = EventManager()
    with _lock:
        previous = _event_manager
        _event_manager = event_manager
    try:
        yield event_manager
    finally:
        with _lock:
            _event_manager = previous
