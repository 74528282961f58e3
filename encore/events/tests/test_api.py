"""The public facade and BaseEvent/BaseEventManager basics."""

from __future__ import annotations

import pytest

from encore.events import api
from encore.events.abstract_event_manager import BaseEvent, BaseEventManager

EXPORTS = {
    "BaseEvent",
    "BaseEventManager",
    "EventManager",
    "ProgressEvent",
    "ProgressStartEvent",
    "ProgressStepEvent",
    "ProgressEndEvent",
    "ProgressManager",
    "Heartbeat",
    "HeartbeatEvent",
    "get_event_manager",
    "set_event_manager",
}


def test_api_exports_exactly():
    assert set(api.__all__) == EXPORTS
    for name in EXPORTS:
        assert getattr(api, name) is not None
    public = {n for n in vars(api) if not n.startswith("_")}
    assert public == EXPORTS


def test_event_manager_module_reexports():
    from encore.events import event_manager

    assert event_manager.BaseEvent is BaseEvent
    for name in ("LoggingTracer", "EventInfo", "CallableNotifier", "MethodNotifier"):
        assert hasattr(event_manager, name)


def test_base_event_attributes():
    source = object()
    event = BaseEvent(source=source, directory="foo/bar", filename="baz.txt")
    assert event.source is source
    assert (event.directory, event.filename) == ("foo/bar", "baz.txt")
    assert event._handled is False
    event.mark_as_handled()
    assert event._handled is True
    assert event.pre_emit() is None and event.post_emit() is None


def test_base_event_default_source_is_fresh_list():
    a, b = BaseEvent(), BaseEvent(source=None)
    assert a.source == [] and b.source == []
    assert a.source is not b.source


def test_base_event_repr():
    text = repr(BaseEvent(source="src", name="x" * 500))
    assert text.startswith("BaseEvent(source='src', name=")
    assert len(text) < 200


def test_base_event_manager_is_abstract():
    with pytest.raises(TypeError):
        BaseEventManager()

    class Incomplete(BaseEventManager):
        def connect(self, cls, func, filter=None, priority=0):
            return None

    with pytest.raises(TypeError):
        Incomplete()
