"""The public facade of :mod:`encore.events`: import event names from here."""

from encore.events.abstract_event_manager import BaseEvent, BaseEventManager
from encore.events.event_manager import EventManager
from encore.events.heartbeat import Heartbeat, HeartbeatEvent
from encore.events.package_globals import get_event_manager, set_event_manager
from encore.events.progress_events import (
    ProgressEndEvent,
    ProgressEvent,
    ProgressManager,
    ProgressStartEvent,
    ProgressStepEvent,
)

__all__ = [
    "BaseEvent",
    "BaseEventManager",
    "EventManager",
    "Heartbeat",
    "HeartbeatEvent",
    "ProgressEndEvent",
    "ProgressEvent",
    "ProgressManager",
    "ProgressStartEvent",
    "ProgressStepEvent",
    "get_event_manager",
    "set_event_manager",
]
