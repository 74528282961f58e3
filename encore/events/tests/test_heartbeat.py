"""Heartbeat: ticks, pause/resume, stop."""

from __future__ import annotations

import threading

import pytest

from encore.events.event_manager import EventManager
from encore.events.heartbeat import Heartbeat, HeartbeatEvent

TIMEOUT = 10


def collect(em, count):
    """Connect a listener recording events; returns (events, done-after-count)."""
    events = []
    done = threading.Event()

    def listener(event):
        events.append(event)
        if len(events) >= count:
            done.set()

    em.connect(HeartbeatEvent, listener)
    return events, done, listener


def test_initial_state():
    em = EventManager()
    beat = Heartbeat(0.5, em)
    assert (beat.state, beat.interval, beat.frame_count) == ("waiting", 0.5, 0)
    assert beat.event_manager is em


def test_bad_interval():
    with pytest.raises(ValueError, match="interval"):
        Heartbeat(0, EventManager())


def test_serve_and_stop():
    em = EventManager()
    events, done, _listener = collect(em, 3)
    beat = Heartbeat(0.001, em)
    thread = beat.serve()
    assert isinstance(thread, threading.Thread)
    assert thread.daemon
    assert done.wait(TIMEOUT)
    assert beat.stop(TIMEOUT)
    assert not thread.is_alive()
    assert beat.state == "stopped"
    frames = [e.frame for e in events]
    assert frames == list(range(len(frames)))
    assert beat.frame_count == len(events)
    first = events[0]
    assert first.source is beat and first.interval == 0.001
    assert all(b.time >= a.time for a, b in zip(events, events[1:], strict=False))


def test_stop_is_prompt_with_long_interval():
    em = EventManager()
    events, done, _listener = collect(em, 1)
    beat = Heartbeat(3600, em)
    thread = beat.serve()
    assert done.wait(TIMEOUT)
    assert beat.stop(TIMEOUT)  # does not wait out the hour-long sleep
    assert not thread.is_alive()
    assert len(events) == 1


def test_stop_from_listener():
    em = EventManager()
    beat = Heartbeat(0.001, em)
    em.connect(HeartbeatEvent, lambda e: e.frame == 2 and beat.stop())
    thread = beat.serve()
    thread.join(TIMEOUT)
    assert not thread.is_alive()
    assert beat.frame_count == 3


def test_run_blocks_until_state_changes():
    em = EventManager()
    beat = Heartbeat(0.001, em)

    def listener(event):
        if event.frame == 4:
            beat.state = "done"  # the original EnCore way to stop

    em.connect(HeartbeatEvent, listener)
    beat.run()
    assert beat.state == "stopped"
    assert beat.frame_count == 5


def test_pause_and_resume():
    em = EventManager()
    beat = Heartbeat(0.001, em)
    paused = threading.Event()
    frames = []

    def listener(event):
        frames.append(event.frame)
        if event.frame == 1:
            beat.pause()
            paused.set()

    em.connect(HeartbeatEvent, listener)
    thread = beat.serve()
    assert paused.wait(TIMEOUT)
    assert beat.state == "paused"
    assert frames == [0, 1]
    resumed = threading.Event()
    em.connect(HeartbeatEvent, lambda e: resumed.set())
    beat.resume()
    assert resumed.wait(TIMEOUT)
    assert beat.stop(TIMEOUT)
    assert not thread.is_alive()
    assert frames[:3] == [0, 1, 2]


def test_serve_twice_raises():
    em = EventManager()
    beat = Heartbeat(0.01, em)
    beat.serve()
    try:
        with pytest.raises(RuntimeError, match="already running"):
            beat.serve()
    finally:
        assert beat.stop(TIMEOUT)


def test_stop_before_thread_runs():
    em = EventManager()
    beat = Heartbeat(0.01, em)
    thread = beat.serve()
    assert beat.stop(TIMEOUT)
    assert not thread.is_alive()
    assert beat.state == "stopped"


def test_uses_global_event_manager_at_construction():
    from encore.events.package_globals import use_event_manager

    with use_event_manager() as em:
        beat = Heartbeat(0.001)
    assert beat.event_manager is em
