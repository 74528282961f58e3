"""Behaviour of EventManager: ordering, filters, weak references, tracing, errors."""

from __future__ import annotations

import gc
import logging
import threading
import weakref
from dataclasses import dataclass
from unittest import mock

import pytest

from encore.events.abstract_event_manager import BaseEvent, BaseEventManager
from encore.events.event_manager import EventInfo, EventManager, LoggingTracer

LOGGER = "encore.events.event_manager"


class MyEvt(BaseEvent):
    def __init__(self, name=None, **kwargs):
        super().__init__(**kwargs)
        self.name = name


class MyEvt2(MyEvt):
    pass


class MyEvt3(MyEvt):
    pass


class MyEvt4(MyEvt2, MyEvt3):
    pass


class Recorder:
    """A listener object whose bound methods append to a shared log."""

    def __init__(self, log, tag):
        self.log = log
        self.tag = tag

    def callback(self, event):
        self.log.append(self.tag)

    def other(self, event):
        self.log.append(self.tag + "-other")


@pytest.fixture(params=[True, False], ids=["indexed", "scan"])
def em(request):
    return EventManager(use_index=request.param)


def appender(log, tag):
    return lambda event: log.append(tag)


# ---------------------------------------------------------------- registry


def test_is_a_base_event_manager(em):
    assert isinstance(em, BaseEventManager)


def test_register_twice_raises(em):
    em.register(MyEvt)
    with pytest.raises(ValueError, match="already registered"):
        em.register(MyEvt)


def test_get_event(em):
    em.register(BaseEvent)
    assert BaseEvent in em.get_event()
    info = em.get_event(BaseEvent)
    assert isinstance(info, EventInfo)
    assert info.cls is BaseEvent
    with pytest.raises(KeyError):
        em.get_event(MyEvt)


def test_get_event_hierarchy(em):
    assert em.get_event_hierarchy(MyEvt4) == (MyEvt4, MyEvt2, MyEvt3, MyEvt, BaseEvent)
    assert em.get_event_hierarchy(BaseEvent) == (BaseEvent,)


def test_connect_rejects_bad_input(em):
    with pytest.raises(TypeError, match="event class"):
        em.connect("MyEvt", print)
    with pytest.raises(TypeError, match="not callable"):
        em.connect(MyEvt, 42)
    with pytest.raises(TypeError, match="filter"):
        em.connect(MyEvt, print, filter=[("name", 1)])
    with pytest.raises(TypeError, match="path strings"):
        em.connect(MyEvt, print, filter={1: 1})
    with pytest.raises(ValueError, match="invalid attribute path"):
        em.connect(MyEvt, print, filter={"a..b": 1})
    with pytest.raises(TypeError, match="priority"):
        em.connect(MyEvt, print, priority="high")
    # Nothing was half-registered by the failed calls.
    assert em.get_event() == {}


# ---------------------------------------------------------------- ordering


def test_order_is_global_across_hierarchy(em):
    class A(BaseEvent):
        pass

    class B(A):
        pass

    log = []
    em.connect(B, appender(log, "B0"))
    em.connect(A, appender(log, "A0"))
    em.connect(A, appender(log, "A5"), priority=5)
    em.connect(BaseEvent, appender(log, "Base0"))
    em.connect(B, appender(log, "B-1"), priority=-1)
    em.emit(B())
    assert log == ["A5", "B0", "A0", "Base0", "B-1"]
    log.clear()
    em.emit(A())
    assert log == ["A5", "A0", "Base0"]


def test_same_priority_in_connect_order(em):
    log = []
    for i in range(5):
        em.connect(MyEvt, appender(log, i))
    em.emit(MyEvt())
    assert log == [0, 1, 2, 3, 4]


def test_superclass_listener_sees_subclass_events(em):
    log = []
    em.connect(MyEvt, lambda e: log.append(type(e)))
    em.emit(MyEvt4())
    em.emit(BaseEvent())
    assert log == [MyEvt4]


# --------------------------------------------------------------- reconnect


def test_reconnect_gives_one_call(em):
    log = []

    def cb(event):
        log.append(1)

    em.connect(MyEvt, cb)
    em.connect(MyEvt, cb)
    em.emit(MyEvt())
    assert log == [1]


def test_reconnect_moves_to_end(em):
    log = []

    def cb1(event):
        log.append(1)

    def cb2(event):
        log.append(2)

    em.connect(MyEvt, cb1)
    em.connect(MyEvt, cb2)
    em.connect(MyEvt, cb1)
    em.emit(MyEvt())
    assert log == [2, 1]


def test_reconnect_replaces_filter_and_priority(em):
    log = []

    def cb(event):
        log.append("cb")

    em.connect(MyEvt, appender(log, "other"), priority=1)
    em.connect(MyEvt, cb, filter={"name": "x"})
    em.emit(MyEvt("y"))
    assert log == ["other"]
    log.clear()
    em.connect(MyEvt, cb, priority=5)  # no filter: the old one is dropped
    em.emit(MyEvt("y"))
    assert log == ["cb", "other"]


def test_same_function_on_two_classes_is_two_connections(em):
    log = []

    def cb(event):
        log.append(type(event).__name__)

    em.connect(MyEvt, cb)
    em.connect(MyEvt2, cb)
    em.emit(MyEvt2())
    assert log == ["MyEvt2", "MyEvt2"]
    em.disconnect(MyEvt, cb)
    log.clear()
    em.emit(MyEvt2())
    assert log == ["MyEvt2"]


# -------------------------------------------------------------- disconnect


def test_disconnect(em):
    log = []

    def cb(event):
        log.append(1)

    em.connect(MyEvt, cb)
    em.disconnect(MyEvt, cb)
    em.emit(MyEvt())
    assert log == []


def test_disconnect_unknown_raises_keyerror(em):
    obj = Recorder([], "r")
    with pytest.raises(KeyError):
        em.disconnect(MyEvt, obj.callback)  # class never registered
    em.connect(MyEvt, obj.callback)
    with pytest.raises(KeyError):
        em.disconnect(MyEvt, obj.other)  # another method of the same object
    with pytest.raises(KeyError):
        em.disconnect(MyEvt, print)
    with pytest.raises(KeyError):
        em.disconnect(MyEvt2, obj.callback)  # connected to a superclass only
    em.emit(MyEvt())
    assert obj.log == ["r"]  # the existing connection is unaffected


def test_disconnect_bound_method_by_fresh_bound_method(em):
    obj = Recorder([], "r")
    em.connect(MyEvt, obj.callback)
    em.disconnect(MyEvt, obj.callback)  # a new but equal bound method object
    em.emit(MyEvt())
    assert obj.log == []


# ---------------------------------------------------------------- filters


def test_filter_equality(em):
    log = []
    em.connect(MyEvt, lambda e: log.append(e.name), filter={"name": 0})
    for name in (0, 1, 0.0, "0", None):
        em.emit(MyEvt(name))
    assert log == [0, 0.0]


def test_filter_on_missing_attribute_is_no_match_and_logged(em, caplog):
    log = []
    em.connect(BaseEvent, lambda e: log.append(e), filter={"missing": 1})
    with caplog.at_level(logging.INFO, logger=LOGGER):
        em.emit(BaseEvent())
    assert log == []
    assert any("missing" in r.getMessage() for r in caplog.records)


def test_dotted_filter(em):
    log = []
    em.connect(MyEvt, lambda e: log.append(e.prop1), filter={"prop1.real": 0})
    em.emit(MyEvt(prop1=1j))
    em.emit(MyEvt(prop1=1))
    em.emit(MyEvt(prop1="f2"))  # str has no .real: no match, no error
    assert log == [1j]


def test_dotted_filter_five_levels(em):
    class Node:
        def __init__(self, a):
            self.a = a

    def chain(depth, leaf):
        value = leaf
        for _ in range(depth):
            value = Node(value)
        return value

    log = []
    em.connect(MyEvt, lambda e: log.append(e.name), filter={"prop1.a.a.a.a.a": "leaf"})
    em.emit(MyEvt("hit", prop1=chain(5, "leaf")))
    em.emit(MyEvt("wrong-leaf", prop1=chain(5, "other")))
    em.emit(MyEvt("too-short", prop1=chain(4, "leaf")))
    em.emit(MyEvt("no-attr", prop1=None))
    assert log == ["hit"]


def test_filter_with_several_keys(em):
    log = []
    em.connect(MyEvt, lambda e: log.append((e.name, e.b)), filter={"name": 1, "b": 2})
    em.emit(MyEvt(1, b=2))
    em.emit(MyEvt(1, b=3))
    em.emit(MyEvt(2, b=2))
    em.emit(MyEvt(1))
    assert log == [(1, 2)]


def test_filter_with_unhashable_value(em):
    log = []
    em.connect(MyEvt, lambda e: log.append(e.name), filter={"name": [1, 2]})
    em.emit(MyEvt([1, 2]))
    em.emit(MyEvt([1]))
    em.emit(MyEvt((1, 2)))
    assert log == [[1, 2]]


def test_filter_matches_unhashable_event_value_equal_to_hashable_filter(em):
    log = []
    em.connect(MyEvt, lambda e: log.append(e.name), filter={"name": frozenset({1})})
    em.emit(MyEvt({1}))  # a set: unhashable, but equal to the frozenset
    em.emit(MyEvt({2}))
    assert log == [{1}]


def test_nan_filter_never_matches(em):
    nan = float("nan")
    log = []
    em.connect(MyEvt, lambda e: log.append(1), filter={"name": nan})
    em.emit(MyEvt(nan))
    assert log == []


def test_filter_dict_is_copied(em):
    log = []
    flt = {"name": 1}
    em.connect(MyEvt, lambda e: log.append(e.name), filter=flt)
    flt["name"] = 2
    em.emit(MyEvt(1))
    em.emit(MyEvt(2))
    assert log == [1]


def test_filtered_and_unfiltered_keep_global_order(em):
    log = []
    em.connect(MyEvt, appender(log, "f-low"), filter={"name": 1}, priority=-1)
    em.connect(MyEvt, appender(log, "plain"))
    em.connect(MyEvt2, appender(log, "f-sub"), filter={"name": 1})
    em.connect(BaseEvent, appender(log, "f-high"), filter={"name": 1}, priority=3)
    em.emit(MyEvt2(1))
    assert log == ["f-high", "plain", "f-sub", "f-low"]


# --------------------------------------------------------- weak references


def test_bound_method_does_not_keep_object_alive(em):
    obj = Recorder([], "r")
    ref = weakref.ref(obj)
    em.connect(MyEvt, obj.callback)
    del obj
    gc.collect()
    assert ref() is None


def test_dead_bound_method_is_disconnected(em):
    log = []
    obj = Recorder(log, "r")
    em.connect(MyEvt, obj.callback, filter={"name": 1})
    em.connect(MyEvt, Recorder(log, "plain").callback)  # dies at once
    del obj
    gc.collect()
    assert list(em.get_listeners(MyEvt)) == []
    assert em.get_event(MyEvt).listeners == {}
    em.emit(MyEvt(1))
    assert log == []


def test_unreferenced_lambda_still_fires(em):
    log = []
    em.connect(MyEvt, lambda e: log.append(1))
    gc.collect()
    em.emit(MyEvt())
    assert log == [1]


def test_callable_object_is_held_strongly(em):
    log = []

    class Callback:
        def __call__(self, event):
            log.append(1)

    em.connect(MyEvt, Callback())
    gc.collect()
    em.emit(MyEvt())
    assert log == [1]


def test_bound_method_of_unhashable_object(em):
    @dataclass
    class Listener:
        hits: int = 0

        def callback(self, event):
            self.hits += 1

    a, b = Listener(), Listener()
    assert a == b  # equal but distinct: each connection is its own
    em.connect(MyEvt, a.callback)
    em.connect(MyEvt, b.callback)
    em.emit(MyEvt())
    assert (a.hits, b.hits) == (1, 1)
    em.disconnect(MyEvt, a.callback)
    em.emit(MyEvt())
    assert (a.hits, b.hits) == (1, 2)


def test_builtin_bound_method_disconnects_by_equality(em):
    log = []
    em.connect(MyEvt, log.append)
    em.connect(MyEvt, log.append)  # an equal callable: a reconnect
    em.emit(MyEvt())
    assert len(log) == 1
    em.disconnect(MyEvt, log.append)  # a fresh but equal builtin method
    em.emit(MyEvt())
    assert len(log) == 1


def test_unhashable_callable_object(em):
    @dataclass
    class CallMe:
        hits: int = 0

        def __call__(self, event):
            self.hits += 1

    a, b = CallMe(), CallMe()
    em.connect(MyEvt, a)
    em.connect(MyEvt, b)
    em.emit(MyEvt())
    assert (a.hits, b.hits) == (1, 1)
    em.disconnect(MyEvt, a)
    with pytest.raises(KeyError):
        em.disconnect(MyEvt, a)
    em.emit(MyEvt())
    assert (a.hits, b.hits) == (1, 2)


def test_bound_method_of_non_weakrefable_object_is_rejected(em):
    class Slotted:
        __slots__ = ()

        def callback(self, event):
            pass

    with pytest.raises(TypeError, match="weak references"):
        em.connect(MyEvt, Slotted().callback)
    assert MyEvt not in em.get_event()  # nothing was half-registered


def test_classmethod_and_unbound_function(em):
    log = []

    class Holder:
        @classmethod
        def cm(cls, event):
            log.append("cm")

        def plain(self):
            log.append("plain")

    em.connect(MyEvt, Holder.cm)
    em.connect(MyEvt, Holder.plain)  # a plain function in Python 3
    em.emit(MyEvt())
    assert log == ["cm", "plain"]


def test_no_reference_to_event_after_emit(em):
    em.connect(MyEvt, lambda e: None)
    em.connect(MyEvt, lambda e: 1 / 0)  # the error path too
    em.connect(MyEvt, lambda e: None, filter={"name": 1})
    event = MyEvt(1)
    ref = weakref.ref(event)
    logging.getLogger(LOGGER).disabled = True
    try:
        em.emit(event)
    finally:
        logging.getLogger(LOGGER).disabled = False
    del event
    gc.collect()
    assert ref() is None


def test_dead_listener_never_called_even_if_still_in_plan(em):
    log = []
    obj = Recorder(log, "r")
    em.connect(MyEvt, obj.callback)
    em.emit(MyEvt())  # builds and caches the plan
    assert log == ["r"]
    log.clear()
    # Hold the manager's lock so the weakref callback has to defer its cleanup.
    with em._lock:
        del obj
        gc.collect()
    assert len(em._pending_dead) == 1
    assert MyEvt in em._plans  # the stale plan still lists the dead listener
    em.emit(MyEvt())
    assert log == []
    assert list(em.get_listeners(MyEvt)) == []
    em.connect(MyEvt, print)  # next locked operation drains the dead entry
    assert len(em.get_event(MyEvt).listeners) == 1


# --------------------------------------------------------------- handled


def test_mark_as_handled_stops_lower_priority(em):
    log = []

    def stopper(event):
        log.append("stopper")
        event.mark_as_handled()

    em.connect(MyEvt, appender(log, "high"), priority=10)
    em.connect(MyEvt2, stopper, priority=5)
    em.connect(MyEvt, appender(log, "low"), priority=1)
    em.connect(BaseEvent, appender(log, "base"))
    em.emit(MyEvt2())
    assert log == ["high", "stopper"]


def test_pre_and_post_emit(em):
    log = []

    class Hooked(BaseEvent):
        def pre_emit(self):
            log.append("pre")

        def post_emit(self):
            log.append("post")

    em.emit(Hooked())  # hooks run even without listeners
    assert log == ["pre", "post"]
    log.clear()

    def handler(event):
        log.append("listener")
        event.mark_as_handled()

    em.connect(Hooked, handler)
    em.connect(Hooked, appender(log, "never"))
    em.emit(Hooked())
    assert log == ["pre", "listener", "post"]


def test_filters_are_evaluated_before_pre_emit(em):
    log = []

    class Mutating(MyEvt):
        def pre_emit(self):
            self.name = "changed"

    em.connect(Mutating, lambda e: log.append(e.name), filter={"name": "orig"})
    em.emit(Mutating("orig"))
    assert log == ["changed"]


# ----------------------------------------------------------- reentrancy


def test_reentrant_emit_nests_depth_first(em):
    log = []

    def outer(event):
        log.append(type(event).__name__)
        if type(event) is MyEvt:
            em.emit(MyEvt2())
            log.append("MyEvt")

    em.connect(MyEvt, outer)
    em.emit(MyEvt())
    assert log == ["MyEvt", "MyEvt2", "MyEvt"]


def test_reentrant_emit_order_with_two_listeners(em):
    log = []

    def first(event):
        log.append(type(event).__name__)
        if type(event) is MyEvt:
            em.emit(MyEvt2())

    def second(event):
        log.append(type(event).__name__)

    em.connect(MyEvt, first)
    em.connect(MyEvt, second)
    em.emit(MyEvt())
    assert log == ["MyEvt", "MyEvt2", "MyEvt2", "MyEvt"]


def test_disconnect_during_emit_still_calls_snapshot(em):
    log = []

    def second(event):
        log.append("second")

    def first(event):
        log.append("first")
        em.disconnect(MyEvt, second)

    em.connect(MyEvt, first)
    em.connect(MyEvt, second)
    em.emit(MyEvt())
    assert log == ["first", "second"]
    log.clear()
    em.emit(MyEvt())
    assert log == ["first"]


def test_connect_during_emit_applies_to_next_emit(em):
    log = []

    def late(event):
        log.append("late")

    def first(event):
        log.append("first")
        em.connect(MyEvt, late)

    em.connect(MyEvt, first)
    em.emit(MyEvt())
    assert log == ["first"]
    em.emit(MyEvt())
    assert log == ["first", "first", "late"]


# ------------------------------------------------------------- exceptions


def test_listener_exception_is_logged_and_others_run(em, caplog):
    log = []

    def bad(event):
        raise RuntimeError("boom in listener")

    obj = Recorder(log, "bound")

    def bad_bound(event):
        raise ValueError("bound boom")

    obj.bad = bad_bound
    em.connect(MyEvt, appender(log, "before"), priority=1)
    em.connect(MyEvt, bad)
    em.connect(MyEvt, appender(log, "after"), priority=-1)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        em.emit(MyEvt("evt-name"))
    assert log == ["before", "after"]
    [record] = [r for r in caplog.records if r.name == LOGGER]
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert "boom in listener" in message
    assert "Traceback" in message
    assert "bad" in message
    assert "MyEvt" in message


def test_bound_listener_exception_is_logged(em, caplog):
    class Bad:
        def callback(self, event):
            raise KeyError("bound failure")

    obj = Bad()
    em.connect(MyEvt, obj.callback)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        em.emit(MyEvt())
    assert "bound failure" in caplog.text
    assert "Bad.callback" in caplog.text


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_base_exception_propagates(em, exc_type):
    log = []

    class Hooked(BaseEvent):
        def post_emit(self):
            log.append("post")

    def bad(event):
        raise exc_type()

    em.connect(Hooked, bad)
    em.connect(Hooked, appender(log, "after"), priority=-1)
    with pytest.raises(exc_type):
        em.emit(Hooked())
    assert log == []


def test_pre_emit_exception_propagates(em):
    log = []

    class Broken(BaseEvent):
        def pre_emit(self):
            raise RuntimeError("pre failed")

    em.connect(Broken, appender(log, "listener"))
    with pytest.raises(RuntimeError, match="pre failed"):
        em.emit(Broken())
    assert log == []


# ------------------------------------------------------- enable / disable


def test_disable_base_class_silences_subclasses(em):
    log = []
    em.connect(MyEvt, appender(log, "my"))
    em.connect(BaseEvent, appender(log, "base"))
    em.disable(BaseEvent)
    em.emit(MyEvt())
    em.emit(BaseEvent())
    assert log == []
    assert not em.is_enabled(MyEvt)
    em.enable(BaseEvent)
    em.emit(MyEvt())
    assert log == ["my", "base"]


def test_disable_subclass_keeps_base_enabled(em):
    log = []
    em.connect(BaseEvent, appender(log, "base"))
    em.disable(MyEvt)
    em.emit(MyEvt())
    em.emit(MyEvt2())
    em.emit(BaseEvent())
    assert log == ["base"]
    assert em.is_enabled(BaseEvent)
    assert not em.is_enabled(MyEvt2)


def test_disable_before_any_listener(em):
    log = []
    em.disable(MyEvt)
    em.connect(MyEvt, appender(log, "my"))
    em.emit(MyEvt())
    assert log == []


def test_disable_state_is_per_class(em):
    log = []
    em.connect(MyEvt2, appender(log, "my2"))
    em.disable(MyEvt2)
    em.disable(MyEvt)
    em.enable(MyEvt)
    em.emit(MyEvt2())
    assert log == []
    assert not em.is_enabled(MyEvt2)
    assert em.is_enabled(MyEvt)


def test_disabled_emit_skips_hooks(em):
    log = []

    class Hooked(BaseEvent):
        def pre_emit(self):
            log.append("pre")

    em.disable(Hooked)
    em.emit(Hooked())
    assert log == []


# ---------------------------------------------------------------- block=False


def test_non_blocking_emit_returns_thread(em):
    started = threading.Event()
    release = threading.Event()
    seen = []

    def slow(event):
        started.set()
        release.wait(10)
        seen.append(threading.current_thread().name)

    em.connect(MyEvt, slow)
    thread = em.emit(MyEvt("x"), block=False)
    assert isinstance(thread, threading.Thread)
    assert started.wait(10)
    assert seen == []  # the caller got control back while the listener runs
    release.set()
    thread.join(10)
    assert not thread.is_alive()
    assert seen == [thread.name]
    assert thread.name.startswith("Event emit: ")


def test_blocking_emit_returns_none(em):
    assert em.emit(MyEvt()) is None


# ---------------------------------------------------------------- tracing


def test_trace_counts(em):
    calls = []

    def trace(name, method, args):
        calls.append((name, args))

    def cb(event):
        pass

    em.set_trace(trace)
    em.connect(MyEvt, cb, {"name": 1}, 3)
    em.connect(MyEvt, print)
    event = MyEvt(1)
    em.emit(event)
    em.disconnect(MyEvt, cb)
    names = [name for name, _ in calls]
    assert names == ["connect", "connect", "emit", "listen", "listen", "disconnect"]
    assert calls[0][1] == (MyEvt, cb, {"name": 1}, 3)
    assert calls[2][1] == (event,)
    assert calls[-1][1] == (MyEvt, cb)


def test_trace_veto_connect(em):
    log = []
    em.set_trace(lambda name, method, args: name == "connect")
    em.connect(MyEvt, appender(log, 1))
    em.set_trace(None)
    em.emit(MyEvt())
    assert log == []
    assert list(em.get_listeners(MyEvt)) == []


def test_trace_veto_disconnect_and_emit(em):
    log = []
    cb = appender(log, 1)
    em.connect(MyEvt, cb)
    em.set_trace(lambda name, method, args: name in ("disconnect", "emit"))
    em.disconnect(MyEvt, cb)
    em.emit(MyEvt())
    assert log == []
    em.set_trace(None)
    em.emit(MyEvt())
    assert log == [1]


def test_trace_selective_listen_veto(em):
    log = []
    obj = Recorder(log, "bound")
    vetoed = appender(log, "vetoed")
    em.connect(MyEvt, vetoed)
    em.connect(MyEvt, obj.callback)
    seen = []

    def trace(name, method, args):
        if name == "listen":
            seen.append(method)
            return method is vetoed
        return None

    em.set_trace(trace)
    em.emit(MyEvt())
    assert log == ["bound"]
    assert seen == [vetoed, obj.callback]  # bound methods are rebuilt, equal
    em.set_trace(None)
    em.emit(MyEvt())
    assert log == ["bound", "vetoed", "bound"]


def test_trace_respects_handled_and_errors(em, caplog):
    log = []

    def stopper(event):
        event.mark_as_handled()

    em.connect(MyEvt, lambda e: 1 / 0, priority=2)
    em.connect(MyEvt, stopper, priority=1)
    em.connect(MyEvt, appender(log, "low"))
    em.set_trace(lambda name, method, args: None)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        em.emit(MyEvt())
    assert log == []
    assert "ZeroDivisionError" in caplog.text


def test_logging_tracer(em, caplog):
    em.set_trace(LoggingTracer())
    with caplog.at_level(logging.INFO, logger=LOGGER):
        em.connect(MyEvt, print)
        em.emit(MyEvt())
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("event_log: connect, function: ") for m in messages)
    assert any(m.startswith("event_log: emit") for m in messages)
    assert any("kwds={}" in m for m in messages)


def test_logging_tracer_custom_logger_and_level(caplog):
    custom = logging.getLogger("encore.tests.tracer")
    tracer = LoggingTracer(custom, logging.DEBUG)
    with caplog.at_level(logging.DEBUG, logger="encore.tests.tracer"):
        assert tracer("emit", print, (1,)) is None
    [record] = caplog.records
    assert record.levelno == logging.DEBUG
    assert record.name == "encore.tests.tracer"


def test_set_trace_rejects_non_callable(em):
    with pytest.raises(TypeError):
        em.set_trace("log")


# ------------------------------------------------------------- get_listeners


def test_get_listeners(em):
    class Holder:
        def callback_unbound(event):  # a plain function on purpose
            pass

        def callback_bound(self, event):
            pass

    def callback(event):
        pass

    obj = Holder()
    em.connect(MyEvt, callback)
    em.connect(MyEvt, Holder.callback_unbound)
    em.connect(MyEvt, obj.callback_bound)
    assert list(em.get_listeners(MyEvt)) == [callback, Holder.callback_unbound, obj.callback_bound]
    assert list(em.get_listeners(MyEvt(0))) == [
        callback,
        Holder.callback_unbound,
        obj.callback_bound,
    ]
    filtered = mock.Mock()
    em.connect(MyEvt, filtered, filter={"name": 0})
    assert filtered in list(em.get_listeners(MyEvt(0)))
    assert filtered not in list(em.get_listeners(MyEvt(1)))
    assert filtered in list(em.get_listeners(MyEvt))


def test_get_listeners_includes_superclass_listeners_in_order(em):
    a, b = mock.Mock(), mock.Mock()
    em.connect(BaseEvent, a, priority=1)
    em.connect(MyEvt2, b)
    assert list(em.get_listeners(MyEvt2)) == [a, b]
    assert list(em.get_listeners(MyEvt)) == [a]
    assert list(em.get_listeners(MyEvt2(), cls=MyEvt)) == [a]


def test_get_listeners_is_lazy_and_skips_dead(em):
    obj = Recorder([], "r")
    em.connect(MyEvt, obj.callback)
    listeners = em.get_listeners(MyEvt)
    assert not isinstance(listeners, list)
    del obj
    gc.collect()
    assert list(listeners) == []


def test_mock_listener(em):
    listener = mock.Mock()
    em.connect(MyEvt, listener)
    event = MyEvt()
    em.emit(event)
    listener.assert_called_once_with(event)


def test_manager_is_freed_without_cycle_collection():
    obj = Recorder([], "r")
    gc.disable()
    try:
        em = EventManager()
        em.connect(MyEvt, obj.callback)
        em.connect(MyEvt, print, filter={"name": 1})
        em.emit(MyEvt(1))
        ref = weakref.ref(em)
        del em
        assert ref() is None
    finally:
        gc.enable()
    del obj  # the weakref callback must cope with the manager being gone
    gc.collect()


def test_missing_attribute_log_keeps_no_event_reference(em, caplog):
    em.connect(MyEvt, print, filter={"nope": 1})
    event = MyEvt()
    ref = weakref.ref(event)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        em.emit(event)
    assert "nope" in caplog.text
    del event
    gc.collect()
    assert ref() is None


def test_non_blocking_emit_is_traced_in_worker(em):
    names = []
    em.set_trace(lambda name, method, args: names.append((name, threading.current_thread().name)))
    em.connect(MyEvt, lambda e: None)
    thread = em.emit(MyEvt(), block=False)
    thread.join(10)
    assert [n for n, _ in names] == ["connect", "emit", "listen"]
    assert names[1][1] == thread.name
