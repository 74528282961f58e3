"""Concurrency: connect, disconnect, emit, enable/disable from many threads."""

from __future__ import annotations

import gc
import threading

from encore.events.abstract_event_manager import BaseEvent
from encore.events.event_manager import EventManager

JOIN_TIMEOUT = 60


class StressEvent(BaseEvent):
    pass


class SubStressEvent(StressEvent):
    pass


class ToggledEvent(StressEvent):
    pass


def run_threads(targets):
    """Start one thread per target, join with a bound; return raised errors."""
    errors = []
    barrier = threading.Barrier(len(targets))

    def wrap(target):
        def run():
            try:
                barrier.wait(JOIN_TIMEOUT)
                target()
            except BaseException as exc:  # report every failure to the test
                errors.append(exc)

        return run

    threads = [threading.Thread(target=wrap(t), daemon=True) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT)
    assert not any(t.is_alive() for t in threads), "deadlock: a thread did not finish"
    return errors


class Counter:
    """A thread-safe listener counting its calls."""

    def __init__(self):
        self._lock = threading.Lock()
        self.count = 0

    def __call__(self, event):
        with self._lock:
            self.count += 1

    def total(self):
        with self._lock:
            return self.count


def test_stress_eight_threads_exact_counts():
    em = EventManager()
    stable_plain = Counter()
    stable_filtered = Counter()
    em.connect(StressEvent, stable_plain)
    em.connect(StressEvent, stable_filtered, filter={"key": "stable"})
    emits_per_thread = 300
    churn_iterations = 300

    def emitter(key):
        def run():
            for _ in range(emits_per_thread):
                em.emit(SubStressEvent(key=key))
                em.emit(StressEvent(key="other"))

        return run

    def churner(n):
        def run():
            for i in range(churn_iterations):
                def transient(event):
                    pass

                cls = StressEvent if i % 2 else SubStressEvent
                em.connect(cls, transient, filter={"key": i % 3} if i % 4 else None, priority=n)
                em.emit(StressEvent(key="churn"))
                em.disconnect(cls, transient)

        return run

    def toggler():
        for _ in range(churn_iterations):
            # Same thread, so deterministic: dropped while disabled, delivered after.
            em.disable(ToggledEvent)
            em.emit(ToggledEvent(key="stable"))
            em.enable(ToggledEvent)
            em.emit(ToggledEvent(key="toggled"))
            em.register(type("Fresh", (StressEvent,), {}))  # never-seen classes

    def bound_churner():
        class Obj:
            def cb(self, event):
                pass

        for i in range(churn_iterations):
            obj = Obj()
            em.connect(StressEvent, obj.cb, filter={"key": "stable"})
            del obj  # dies while connected: weakref cleanup under contention
            if i % 50 == 0:
                gc.collect()

    def stable_emitter():
        for _ in range(emits_per_thread):
            em.emit(StressEvent(key="stable"))

    targets = [
        stable_emitter,
        stable_emitter,
        stable_emitter,
        emitter("x"),
        churner(1),
        churner(-1),
        toggler,
        bound_churner,
    ]
    errors = run_threads(targets)
    assert errors == []
    stable_emits = 3 * emits_per_thread
    # Filtered listener: exactly the "stable" events that were enabled.
    assert stable_filtered.total() == stable_emits
    # Unfiltered: stable, x and other, churn (2 churners), and enabled toggled events.
    assert stable_plain.total() == stable_emits + 2 * emits_per_thread + 3 * churn_iterations
    # No transient listeners are left behind once the dead ones are drained.
    gc.collect()
    em.connect(StressEvent, print)
    em.disconnect(StressEvent, print)
    assert len(em.get_event(StressEvent).listeners) == 2
    assert len(em.get_event(SubStressEvent).listeners) == 0


def test_concurrent_first_connect_of_new_class():
    for _ in range(20):
        em = EventManager()

        class Fresh(BaseEvent):
            pass

        counters = [Counter() for _ in range(8)]
        errors = run_threads([lambda c=c, em=em, cls=Fresh: em.connect(cls, c) for c in counters])
        assert errors == []
        em.emit(Fresh())
        assert [c.total() for c in counters] == [1] * 8


def test_emit_from_many_threads_counts_exactly():
    em = EventManager()
    counters = [Counter() for _ in range(3)]
    for i, counter in enumerate(counters):
        em.connect(StressEvent, counter, filter={"key": i} if i else None)
    per_thread = 500

    def run():
        for i in range(per_thread):
            em.emit(StressEvent(key=i % 3))

    assert run_threads([run] * 8) == []
    assert counters[0].total() == 8 * per_thread
    expected = [sum(1 for i in range(per_thread) if i % 3 == key) * 8 for key in (1, 2)]
    assert [counters[1].total(), counters[2].total()] == expected
