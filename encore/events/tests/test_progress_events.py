"""ProgressManager and the progress event classes."""

from __future__ import annotations

import uuid

import pytest

from encore.events import package_globals
from encore.events.event_manager import EventManager
from encore.events.progress_events import (
    ProgressEndEvent,
    ProgressEvent,
    ProgressManager,
    ProgressStartEvent,
    ProgressStepEvent,
)


@pytest.fixture
def em():
    return EventManager()


@pytest.fixture
def events(em):
    log = []
    em.connect(ProgressEvent, log.append)
    return log


def summary(events):
    out = []
    for e in events:
        if isinstance(e, ProgressStartEvent):
            out.append(("start", e.message, e.steps))
        elif isinstance(e, ProgressStepEvent):
            out.append(("step", e.message, e.step))
        else:
            out.append(("end", e.message, e.exit_state))
    return out


def test_context_manager(em, events):
    source = object()
    with ProgressManager(em, source, "op", "Working", 3) as progress:
        for i in range(3):
            progress(f"step {i}", step=i + 1)
    assert summary(events) == [
        ("start", "Working", 3),
        ("step", "step 0", 1),
        ("step", "step 1", 2),
        ("step", "step 2", 3),
        ("end", "Working", "normal"),
    ]
    assert all(e.source is source and e.operation_id == "op" for e in events)


def test_context_manager_exit_on_exception(em, events):
    with pytest.raises(ValueError, match="disk full"), ProgressManager(em, steps=2) as progress:
        progress.step()
        raise ValueError("disk full")
    assert summary(events)[-1] == ("end", "disk full", "exception")
    assert not progress.running


def test_explicit_start_step_end(em, events):
    progress = ProgressManager(em, message="Copying", steps=-1, user="alice")
    progress.start(extra=1)
    progress.step()
    progress.step("half", extra=2)
    progress.step(step=10)
    progress.end("failed badly", "error")
    assert summary(events) == [
        ("start", "Copying", -1),
        ("step", "Copying", 0),
        ("step", "half", 1),
        ("step", "Copying", 10),
        ("end", "failed badly", "error"),
    ]
    assert all(e.user == "alice" for e in events)
    assert events[0].extra == 1 and events[2].extra == 2
    assert not hasattr(events[1], "extra")


def test_defaults(em, events):
    progress = ProgressManager(em)
    assert progress.source is progress
    assert isinstance(progress.operation_id, uuid.UUID)
    assert progress.message == "Performing operation"
    assert progress.steps == -1
    assert ProgressManager(em).operation_id != progress.operation_id


def test_step_or_end_before_start_raises(em, events):
    progress = ProgressManager(em)
    with pytest.raises(RuntimeError, match="before start"):
        progress.step()
    with pytest.raises(RuntimeError, match="not running"):
        progress.end()
    assert events == []


def test_start_twice_raises_and_restart_after_end(em, events):
    progress = ProgressManager(em)
    progress.start()
    with pytest.raises(RuntimeError, match="already started"):
        progress.start()
    progress.end()
    progress.start()
    progress.step()
    assert summary(events)[-1] == ("step", "Performing operation", 0)


def test_call_starts_if_needed(em, events):
    progress = ProgressManager(em)
    progress("first")
    progress("second")
    progress.end()
    assert [kind for kind, _, _ in summary(events)] == ["start", "step", "step", "end"]


def test_end_inside_with_block_is_not_repeated(em, events):
    with ProgressManager(em) as progress:
        progress.end("done early", "warning")
    assert [kind for kind, _, _ in summary(events)] == ["start", "end"]


def test_custom_event_types(em):
    class MyStart(ProgressStartEvent):
        pass

    class MyStep(ProgressStepEvent):
        pass

    class MyEnd(ProgressEndEvent):
        pass

    class MyProgress(ProgressManager):
        StartEventType = MyStart
        StepEventType = MyStep
        EndEventType = MyEnd

    log = []
    em.connect(ProgressEvent, lambda e: log.append(type(e)))
    with MyProgress(em) as progress:
        progress()
    assert log == [MyStart, MyStep, MyEnd]


def test_uses_global_event_manager():
    saved = package_globals._event_manager
    package_globals._event_manager = None
    try:
        em = EventManager()
        package_globals.set_event_manager(em)
        log = []
        em.connect(ProgressStartEvent, log.append)
        progress = ProgressManager()
        assert progress.event_manager is em
        progress.start()
        assert len(log) == 1
    finally:
        package_globals._event_manager = saved


def test_filter_by_operation_id(em):
    log = []
    em.connect(ProgressStepEvent, lambda e: log.append(e.step), filter={"operation_id": "b"})
    a, b = ProgressManager(em, operation_id="a"), ProgressManager(em, operation_id="b")
    for progress in (a, b):
        progress.start()
    a.step(step=1)
    b.step(step=2)
    assert log == [2]


def test_event_class_defaults():
    assert ProgressStartEvent().steps == -1
    assert ProgressStepEvent().step == -1
    assert ProgressEndEvent().exit_state == "normal"
    assert ProgressEvent().operation_id is None


def test_end_state_alias(em, events):
    progress = ProgressManager(em)
    progress.start()
    progress.end(message="Failure mode 1", end_state="warning")
    assert summary(events)[-1] == ("end", "Failure mode 1", "warning")
    assert not hasattr(events[-1], "end_state")
    progress.start()
    with pytest.raises(TypeError, match="not both"):
        progress.end(exit_state="error", end_state="warning")
    assert progress.running
