"""The filter index and the plan cache must not change what emit does.

Every scenario here runs on two managers, one with the index and one without
(``use_index=False`` scans every filter), and asserts identical deliveries.
"""

from __future__ import annotations

import gc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from encore.events.abstract_event_manager import BaseEvent
from encore.events.event_manager import EventManager


class Root(BaseEvent):
    pass


class Mid(Root):
    pass


class Leaf(Mid):
    pass


class Other(Root):
    pass


CLASSES = [BaseEvent, Root, Mid, Leaf, Other]
# Values chosen to include cross-type equalities (1 == 1.0 == True) and an
# unhashable filter value, which must fall back to the scanned path.
VALUES = st.sampled_from([0, 1, 1.0, True, "a", "b", None, (1, 2), ("x",), [1, 2]])
PATHS = st.sampled_from(["k", "j", "sub.k"])

filters = st.one_of(
    st.none(),
    st.dictionaries(PATHS, VALUES, min_size=1, max_size=2),
)

connect_op = st.tuples(
    st.just("connect"),
    st.integers(0, 7),  # listener id
    st.integers(0, len(CLASSES) - 1),
    filters,
    st.integers(-2, 2),  # priority
    st.booleans(),  # marks the event handled
)
disconnect_op = st.tuples(
    st.just("disconnect"), st.integers(0, 7), st.integers(0, len(CLASSES) - 1)
)
toggle_op = st.tuples(st.just("toggle"), st.integers(0, len(CLASSES) - 1))


class Sub:
    def __init__(self, k):
        self.k = k


event_specs = st.tuples(
    st.integers(0, len(CLASSES) - 1),
    st.dictionaries(st.sampled_from(["k", "j"]), VALUES, max_size=2),
    st.one_of(st.none(), VALUES),  # sub.k, or no sub at all
)

scenario = st.lists(
    st.one_of(connect_op, disconnect_op, toggle_op, st.tuples(st.just("emit"), event_specs)),
    max_size=40,
)


class Harness:
    """One manager plus its listeners, recording deliveries."""

    def __init__(self, use_index):
        self.em = EventManager(use_index=use_index)
        self.log = []
        self.handles = {}
        self.disabled = set()
        self.listeners = {}

    def listener(self, ident, handles):
        if ident not in self.listeners:

            def listener(event, ident=ident):
                self.log.append(ident)
                if self.handles.get(ident):
                    event.mark_as_handled()

            self.listeners[ident] = listener
        self.handles[ident] = handles
        return self.listeners[ident]

    def run(self, op):
        kind = op[0]
        if kind == "connect":
            _, ident, cls_i, flt, priority, handles = op
            self.em.connect(CLASSES[cls_i], self.listener(ident, handles), flt, priority)
            return None
        if kind == "disconnect":
            _, ident, cls_i = op
            try:
                self.em.disconnect(CLASSES[cls_i], self.listeners.get(ident, print))
            except KeyError:
                return "KeyError"
            return None
        if kind == "toggle":
            cls = CLASSES[op[1]]
            if cls in self.disabled:
                self.disabled.discard(cls)
                self.em.enable(cls)
            else:
                self.disabled.add(cls)
                self.em.disable(cls)
            return None
        cls_i, attrs, sub = op[1]
        if sub is not None:
            attrs = {**attrs, "sub": Sub(sub)}
        event = CLASSES[cls_i](**attrs)
        self.log.append("emit")
        self.em.emit(event)
        listed = [self.inverse(f) for f in self.em.get_listeners(CLASSES[cls_i](**attrs))]
        every = [self.inverse(f) for f in self.em.get_listeners(CLASSES[cls_i])]
        return listed, every

    def inverse(self, func):
        for ident, listener in self.listeners.items():
            if listener is func:
                return ident
        raise AssertionError(f"unknown listener {func!r}")


@settings(max_examples=300, deadline=None)
@given(scenario)
def test_indexed_and_scanned_dispatch_agree(ops):
    indexed, scanned = Harness(True), Harness(False)
    for op in ops:
        assert indexed.run(op) == scanned.run(op), op
    assert indexed.log == scanned.log


def test_index_is_used_for_hashable_equality_filters():
    em = EventManager()
    for i in range(100):
        em.connect(Root, lambda e: None, filter={"k": i})
    em.connect(Root, lambda e: None, filter={"k": [1]})
    info = em.get_event(Root)
    assert len(info.scan) == 1
    assert sum(len(b) for by_value in info.index.values() for b in by_value.values()) == 100


def test_one_of_ten_thousand():
    em = EventManager()
    log = []
    for i in range(10_000):
        em.connect(Root, (lambda e, i=i: log.append(i)), filter={"k": i})
    em.emit(Root(k=4321))
    em.emit(Leaf(k=17))
    em.emit(Root(k=-1))
    assert log == [4321, 17]


def test_plan_is_cached_and_invalidated():
    em = EventManager()
    log = []
    em.connect(Root, lambda e: log.append("a"))
    em.emit(Leaf())
    plan = em._plans[Leaf]
    em.emit(Leaf())
    assert em._plans[Leaf] is plan  # reused, not rebuilt
    em.connect(Mid, lambda e: log.append("b"))
    assert Leaf not in em._plans  # connect invalidated it
    em.emit(Leaf())
    assert log == ["a", "a", "a", "b"]
    em.disable(Mid)
    em.emit(Leaf())
    assert log == ["a", "a", "a", "b"]


def test_plan_invalidated_when_weak_listener_dies():
    em = EventManager()
    log = []

    class Obj:
        def cb(self, event):
            log.append(1)

    obj = Obj()
    em.connect(Root, obj.cb, filter={"k": 1})
    em.emit(Root(k=1))
    assert Root in em._plans
    del obj
    gc.collect()
    assert Root not in em._plans
    em.emit(Root(k=1))
    assert log == [1]


@pytest.mark.parametrize("use_index", [True, False])
def test_multi_key_filter_with_dotted_paths(use_index):
    em = EventManager(use_index=use_index)
    log = []
    em.connect(Root, lambda e: log.append("hit"), filter={"k": 1, "sub.k": "x"})
    em.emit(Root(k=1, sub=Sub("x")))
    em.emit(Root(k=1, sub=Sub("y")))
    em.emit(Root(k=1))
    em.emit(Root(sub=Sub("x")))
    assert log == ["hit"]


@pytest.mark.parametrize("use_index", [True, False])
def test_raising_property_behaves_like_the_scan(use_index):
    class Prop(Root):
        @property
        def bad(self):
            raise ValueError("broken property")

    em = EventManager(use_index=use_index)
    log = []
    em.connect(Prop, lambda e: log.append(e.a), filter={"a": 1, "bad": 2})
    em.emit(Prop(a=0))  # "a" mismatches first: "bad" is never evaluated
    assert log == []
    with pytest.raises(ValueError, match="broken property"):
        em.emit(Prop(a=1))
    assert log == []
