"""The default, thread-safe event manager: registry, dispatch and filtering.

:class:`EventManager` dispatches an event to the listeners connected to its
class and to every superclass, in one global order: higher priority first, and
among equal priorities the earlier connection first.

**How dispatch stays fast.**  For every event class the manager caches a
*dispatch plan*: the merged, ordered listeners of the whole class hierarchy.
``emit`` only looks the plan up; any ``connect``, ``disconnect``, ``enable``,
``disable`` or the death of a weakly held listener drops the cached plans,
which are rebuilt lazily under the lock.

A listener whose filter is an equality on hashable values is stored in an
*index* (filter paths -> filter values -> listeners) instead of the list that is
scanned on every emit, so emitting to 1 of 10,000 filtered listeners costs a
dictionary lookup, not 10,000 comparisons.  Ordering, reconnection and
``mark_as_handled`` behave identically with and without the index
(``EventManager(use_index=False)`` turns it off; the tests compare both).

**Thread safety.**  ``connect``, ``disconnect``, ``enable``, ``disable``, ``emit`` and
``get_listeners`` may be called concurrently from any thread.  Registry changes
happen under one lock; ``emit`` reads an immutable plan without locking and
calls the listeners outside any lock, so listeners may connect, disconnect and
emit re-entrantly.  A bound-method listener is held through a weak reference to
its object, re-checked immediately before the call: a listener whose object has
died is never called.  Filters are evaluated once per emit, before
``pre_emit``; a listener disconnected while an emit is running is still called
by that emit (it was part of the snapshot).
"""

from __future__ import annotations

import itertools
import logging
import threading
import traceback
import weakref
from collections.abc import Callable, Iterator, Mapping
from operator import itemgetter
from types import MethodType
from typing import Any

from encore.events.abstract_event_manager import BaseEvent, BaseEventManager

__all__ = [
    "BaseEvent",
    "CallableNotifier",
    "EventInfo",
    "EventManager",
    "LoggingTracer",
    "MethodNotifier",
]

logger = logging.getLogger(__name__)

#: Trace callback signature: ``trace(name, method, args)``; a truthy result vetoes.
TraceFunc = Callable[[str, Callable[..., Any], tuple], Any]

# A plan entry is the tuple (func, ref, filter_items, order):
#   func          the callable; for a bound method, its underlying function
#   ref           None for a strongly held callable, else a weakref to the instance
#   filter_items  None, or a tuple of (path, parts, expected) sorted by path
#   order         (-priority, connection counter): the global sort key
_ORDER = itemgetter(3)


class LoggingTracer:
    """A ready-made trace function which logs every traced call.

    Install it with ``event_manager.set_trace(LoggingTracer())``.  It never
    vetoes anything.

    Parameters
    ----------
    logger : logging.Logger, optional
        Where to log; by default the ``encore.events.event_manager`` logger.
    level : int, optional
        The logging level, ``logging.INFO`` by default.
    """

    def __init__(self, logger: logging.Logger = logger, level: int = logging.INFO) -> None:
        self.logger = logger
        self.level = level

    def __call__(
        self,
        name: str,
        method: Callable[..., Any],
        args: tuple,
        kwds: Mapping[str, Any] | None = None,
    ) -> None:
        """Log the traced call and return None (no veto)."""
        self.logger.log(
            self.level,
            "event_log: %s, function: %s,\nargs=%s,\nkwds=%s",
            name,
            method,
            args,
            {} if kwds is None else kwds,
        )


class CallableNotifier:
    """The registration of one listener that is held strongly.

    Used for plain functions, lambdas and any callable object other than a
    bound method.  Listeners are identified by equality (so ``log.append``
    disconnects an earlier ``log.append``); unhashable callables are
    identified by identity, so they can be connected too.
    """

    __slots__ = ("cls", "filter", "func", "index_key", "key", "order", "priority", "entry")

    ref: weakref.ref | None = None

    def __init__(
        self,
        cls: type,
        func: Callable[..., Any],
        key: Any,
        filter_items: tuple | None,
        priority: int,
        counter: int,
        ref: weakref.ref | None = None,
    ) -> None:
        self.cls = cls
        self.func = func
        self.key = key
        self.filter = filter_items
        self.priority = priority
        self.order = (-priority, counter)
        self.index_key: tuple | None = None
        self.entry = (func, ref, filter_items, self.order)

    def resolve(self) -> Callable[..., Any] | None:
        """Return the callable to invoke, or None if it no longer exists."""
        return self.func

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.func!r} on {self.cls.__name__}>"


class MethodNotifier(CallableNotifier):
    """The registration of a bound-method listener, held weakly.

    Only a weak reference to the instance is kept, so connecting a bound
    method never keeps its object alive; when the object dies the listener is
    disconnected automatically.  The instance need not be hashable.
    """

    __slots__ = ("ref",)

    def __init__(
        self,
        cls: type,
        func: Callable[..., Any],
        key: Any,
        filter_items: tuple | None,
        priority: int,
        counter: int,
        ref: weakref.ref | None = None,
    ) -> None:
        super().__init__(cls, func, key, filter_items, priority, counter, ref)
        self.ref = ref

    def resolve(self) -> Callable[..., Any] | None:
        """Return the bound method, or None if its instance has been collected."""
        obj = self.ref()
        return None if obj is None else MethodType(self.func, obj)


class EventInfo:
    """The registry record of one event class.

    Attributes
    ----------
    cls : class
        The event class.
    enabled : bool
        Whether this class itself is enabled (superclasses are not considered;
        see :meth:`EventManager.is_enabled`).
    listeners : dict
        Every notifier connected to this class, by identity key.
    """

    __slots__ = ("cls", "enabled", "index", "listeners", "scan")

    def __init__(self, cls: type) -> None:
        self.cls = cls
        self.enabled = True
        self.listeners: dict[Any, CallableNotifier] = {}
        # Listeners checked on every emit: unfiltered, or filters the index
        # cannot serve.
        self.scan: dict[Any, CallableNotifier] = {}
        # paths signature -> lookup value -> {key: notifier}
        self.index: dict[tuple, dict[Any, dict[Any, CallableNotifier]]] = {}

    def __repr__(self) -> str:
        return (
            f"<EventInfo {self.cls.__name__} enabled={self.enabled} "
            f"listeners={len(self.listeners)}>"
        )


def _normalize_filter(filter: Mapping[str, Any] | None) -> tuple | None:
    """Validate a filter dict and freeze it as sorted (path, parts, value) items."""
    if filter is None:
        return None
    if not isinstance(filter, Mapping):
        raise TypeError(f"filter must be a dict of attribute paths to values, not {filter!r}")
    items = []
    for path, expected in filter.items():
        if not isinstance(path, str):
            raise TypeError(f"filter keys must be attribute path strings, not {path!r}")
        parts = tuple(path.split("."))
        if not all(part.isidentifier() for part in parts):
            raise ValueError(f"invalid attribute path {path!r} in filter")
        items.append((path, parts, expected))
    if not items:
        return None
    items.sort(key=itemgetter(0))
    return tuple(items)


def _index_key(filter_items: tuple) -> tuple[tuple, Any] | None:
    """Return (paths signature, lookup value) if the filter can be indexed.

    A filter is indexable when every expected value is hashable and equal to
    itself (so NaN-like values, which never match under ``!=``, stay on the
    scanned path and behave exactly as without the index).
    """
    values = []
    for _path, _parts, expected in filter_items:
        try:
            hash(expected)
            if expected != expected:
                return None
        except Exception:
            return None
        values.append(expected)
    signature = tuple(parts for _path, parts, _expected in filter_items)
    lookup = values[0] if len(values) == 1 else tuple(values)
    return signature, lookup


def _resolve(event: Any, parts: tuple) -> Any:
    """Follow a dotted attribute path; raises AttributeError if it is missing."""
    obj = event
    for part in parts:
        obj = getattr(obj, part)
    return obj


def _matches(event: Any, filter_items: tuple) -> bool:
    """Scan-path filter check: every path must resolve and compare equal."""
    for path, parts, expected in filter_items:
        try:
            value = _resolve(event, parts)
        except AttributeError:
            _log_missing(path, event)
            return False
        if value != expected:
            return False
    return True


def _log_missing(path: Any, event: Any) -> None:
    # repr() now, so a stored log record never keeps the event alive.
    if logger.isEnabledFor(logging.INFO):
        logger.info("Filter attribute %r not found on event %s: no match", path, repr(event))


def _describe(func: Callable[..., Any], ref: weakref.ref | None) -> str:
    """A readable name of a listener, for log messages."""
    if ref is None:
        return repr(func)
    obj = ref()
    return repr(func) if obj is None else repr(MethodType(func, obj))


class EventManager(BaseEventManager):
    """A single registry point for all application events.

    Parameters
    ----------
    use_index : bool, optional
        Serve equality filters on hashable values from an index (the default).
        With False every filtered listener is checked on every emit, as in the
        original EnCore; dispatch results are identical either way.

    Notes
    -----
    All public methods are thread-safe.  Listeners run on the emitting thread
    (or on a new thread with ``emit(event, block=False)``), outside any lock.
    """

    def __init__(self, *, use_index: bool = True) -> None:
        self.use_index = use_index
        self._lock = threading.Lock()
        self._registry: dict[type, EventInfo] = {}
        self._disabled: set[type] = set()
        self._counter = itertools.count()
        # event class -> plan tuple; read without the lock, written under it.
        self._plans: dict[type, tuple] = {}
        # Weakref deaths seen while the lock was held, applied at the next
        # locked operation (see _on_dead).
        self._pending_dead: list[tuple[type, Any, weakref.ref]] = []
        self._trace: TraceFunc | None = None
        self_ref = weakref.ref(self)

        def on_dead(wr: weakref.ref, cls: type, key: Any) -> None:
            manager = self_ref()
            if manager is not None:
                manager._on_dead(wr, cls, key)

        self._on_dead_callback = on_dead

    # ------------------------------------------------------------------ registry

    def register(self, cls: type) -> EventInfo:
        """Register an event class; optional, as connect/enable/disable do it.

        Raises
        ------
        ValueError
            If the class is already registered.
        """
        _check_class(cls)
        with self._lock:
            if self._pending_dead:
                self._drain_dead()
            if cls in self._registry:
                raise ValueError(f"Event {cls} already registered")
            return self._register(cls)

    def _register(self, cls: type) -> EventInfo:
        info = self._registry.get(cls)
        if info is None:
            info = self._registry[cls] = EventInfo(cls)
        return info

    def get_event(self, cls: type | None = None) -> EventInfo | dict[type, EventInfo]:
        """Return the registry record of ``cls``, or a dict of all records.

        Raises
        ------
        KeyError
            If ``cls`` is given and was never registered.
        """
        with self._lock:
            if cls is None:
                return dict(self._registry)
            return self._registry[cls]

    def get_event_hierarchy(self, cls: type) -> tuple[type, ...]:
        """Return the classes whose listeners receive events of ``cls``.

        This is ``cls.__mro__`` without ``object``, most derived first.
        """
        _check_class(cls)
        return cls.__mro__[:-1]

    # ---------------------------------------------------------------- connecting

    def connect(
        self,
        cls: type,
        func: Callable[[Any], Any],
        filter: Mapping[str, Any] | None = None,
        priority: int = 0,
    ) -> None:
        """Add a listener for the event class ``cls`` and its subclasses.

        Reconnecting an already connected listener replaces the old
        connection, with the new filter and priority, and places it after the
        existing listeners of the same priority.  A bound method is held
        weakly and disconnected automatically when its object dies; every
        other callable is held strongly.  The filter dict is copied.

        See :meth:`BaseEventManager.connect` for the parameters.

        Raises
        ------
        TypeError
            If ``cls`` is not a class, ``func`` is not callable, the filter is
            not a dict of strings, or the object of a bound method does not
            support weak references.
        ValueError
            If a filter key is not a valid dotted attribute path.
        """
        _check_class(cls)
        if not callable(func):
            raise TypeError(f"listener {func!r} is not callable")
        if not isinstance(priority, int):
            raise TypeError(f"priority must be an int, not {priority!r}")
        filter_items = _normalize_filter(filter)
        trace = self._trace
        if trace is not None and trace("connect", self.connect, (cls, func, filter, priority)):
            return
        obj = getattr(func, "__self__", None) if isinstance(func, MethodType) else None
        # Everything that can fail is done before the registry is touched.
        if obj is None:
            target, key, ref = func, _strong_key(func), None
        else:
            target, key = func.__func__, (id(func.__func__), id(obj))
            on_dead = self._on_dead_callback
            try:
                # The callback must not reference self strongly, or every
                # bound-method listener would keep the manager alive.
                ref = weakref.ref(obj, lambda wr: on_dead(wr, cls, key))
            except TypeError:
                raise TypeError(
                    f"cannot connect bound method {func!r}: its object "
                    f"{type(obj).__name__} does not support weak references"
                ) from None
        index_key = _index_key(filter_items) if self.use_index and filter_items else None
        notifier_type = CallableNotifier if ref is None else MethodNotifier
        with self._lock:
            if self._pending_dead:
                self._drain_dead()
            info = self._registry.get(cls) or self._register(cls)
            notifier = notifier_type(
                cls, target, key, filter_items, priority, next(self._counter), ref
            )
            notifier.index_key = index_key
            old = info.listeners.get(key)
            if old is not None:
                self._remove(info, old)
            self._add(info, notifier)
            self._plans.clear()

    def disconnect(self, cls: type, func: Callable[[Any], Any]) -> None:
        """Disconnect a listener from the event class ``cls``.

        Raises
        ------
        KeyError
            If ``cls`` was never registered or ``func`` is not connected to it.
        """
        trace = self._trace
        if trace is not None and trace("disconnect", self.disconnect, (cls, func)):
            return
        obj = getattr(func, "__self__", None) if isinstance(func, MethodType) else None
        with self._lock:
            if self._pending_dead:
                self._drain_dead()
            info = self._registry.get(cls)
            if info is None:
                raise KeyError(f"event class {cls!r} has no listeners registered")
            if obj is None:
                notifier = info.listeners.get(_strong_key(func))
                found = notifier is not None and notifier.ref is None
            else:
                notifier = info.listeners.get((id(func.__func__), id(obj)))
                found = notifier is not None and notifier.ref is not None
                if found and notifier.ref() is not obj:
                    # A dead record whose object id has been reused: drop it.
                    self._remove(info, notifier)
                    self._plans.clear()
                    found = False
            if not found:
                raise KeyError(f"listener {func!r} is not connected to {cls!r}")
            self._remove(info, notifier)
            self._plans.clear()

    def _add(self, info: EventInfo, notifier: CallableNotifier) -> None:
        info.listeners[notifier.key] = notifier
        if notifier.index_key is None:
            info.scan[notifier.key] = notifier
            return
        signature, lookup = notifier.index_key
        info.index.setdefault(signature, {}).setdefault(lookup, {})[notifier.key] = notifier

    def _remove(self, info: EventInfo, notifier: CallableNotifier) -> None:
        del info.listeners[notifier.key]
        if notifier.index_key is None:
            del info.scan[notifier.key]
            return
        signature, lookup = notifier.index_key
        by_value = info.index[signature]
        bucket = by_value[lookup]
        del bucket[notifier.key]
        if not bucket:
            del by_value[lookup]
            if not by_value:
                del info.index[signature]

    def _on_dead(self, wr: weakref.ref, cls: type, key: Any) -> None:
        # Called by the garbage collector, possibly on a thread that already
        # holds the lock (the lock is not re-entrant): never block here.
        if self._lock.acquire(blocking=False):
            try:
                self._pending_dead.append((cls, key, wr))
                self._drain_dead()
            finally:
                self._lock.release()
        else:
            self._pending_dead.append((cls, key, wr))

    def _drain_dead(self) -> None:
        """Remove listeners whose objects died; caller holds the lock."""
        while self._pending_dead:
            cls, key, wr = self._pending_dead.pop()
            info = self._registry.get(cls)
            notifier = None if info is None else info.listeners.get(key)
            if notifier is not None and notifier.ref is wr:
                self._remove(info, notifier)
                self._plans.clear()

    # ------------------------------------------------------------ enable/disable

    def disable(self, cls: type) -> None:
        """Disable the event class ``cls`` and all its subclasses."""
        _check_class(cls)
        with self._lock:
            if self._pending_dead:
                self._drain_dead()
            self._register(cls).enabled = False
            self._disabled.add(cls)
            self._plans.clear()

    def enable(self, cls: type) -> None:
        """Enable the event class ``cls`` again.

        Subclasses or superclasses that were disabled separately stay disabled.
        """
        _check_class(cls)
        with self._lock:
            if self._pending_dead:
                self._drain_dead()
            self._register(cls).enabled = True
            self._disabled.discard(cls)
            self._plans.clear()

    def is_enabled(self, cls: type) -> bool:
        """Return False if ``cls`` or any of its superclasses is disabled."""
        _check_class(cls)
        disabled = self._disabled
        return not any(c in disabled for c in cls.__mro__)

    # ------------------------------------------------------------------ tracing

    def set_trace(self, func: TraceFunc | None) -> None:
        """Install a trace function, or remove it with None.

        ``func(name, method, args)`` is called for ``'connect'`` (args
        ``(cls, func, filter, priority)``), ``'disconnect'`` (``(cls, func)``),
        ``'emit'`` (``(event,)``) and ``'listen'`` (method is the listener,
        args ``(event,)``).  A truthy return value vetoes that operation; for
        ``'listen'`` only that one listener is skipped.
        """
        if func is not None and not callable(func):
            raise TypeError(f"trace function {func!r} is not callable")
        self._trace = func

    # ------------------------------------------------------------------ plans

    def _plan(self, cls: type) -> tuple:
        """Return the dispatch plan of ``cls``, building it if needed.

        A plan is ``(disabled, calls, scan, scan_filtered, groups)``: ``calls``
        is the ready entry tuple when nothing needs evaluating per event (no
        filters), else None; ``groups`` is a tuple of (signature, single-path
        parts or None, value -> sorted entries) for the indexed listeners.
        """
        plan = self._plans.get(cls)
        if plan is not None:
            return plan
        _check_class(cls)
        with self._lock:
            if self._pending_dead:
                self._drain_dead()
            plan = self._plans.get(cls)
            if plan is None:
                plan = self._plans[cls] = self._build_plan(cls)
            return plan

    def _build_plan(self, cls: type) -> tuple:
        hierarchy = cls.__mro__
        disabled = any(c in self._disabled for c in hierarchy)
        scan: list[tuple] = []
        merged: dict[tuple, dict[Any, list[tuple]]] = {}
        for klass in hierarchy:
            info = self._registry.get(klass)
            if info is None:
                continue
            scan.extend(n.entry for n in info.scan.values())
            for signature, by_value in info.index.items():
                target = merged.setdefault(signature, {})
                for lookup, bucket in by_value.items():
                    target.setdefault(lookup, []).extend(n.entry for n in bucket.values())
        scan.sort(key=_ORDER)
        scan_filtered = any(entry[2] is not None for entry in scan)
        groups = []
        for signature, by_value in merged.items():
            table = {}
            for lookup, entries in by_value.items():
                entries.sort(key=_ORDER)
                table[lookup] = tuple(entries)
            single = signature[0] if len(signature) == 1 else None
            groups.append((signature, single, table))
        calls = tuple(scan) if not groups and not scan_filtered else None
        return (disabled, calls, tuple(scan), scan_filtered, tuple(groups))

    def _select(self, plan: tuple, event: Any) -> list[tuple] | tuple:
        """Evaluate the filters of a plan against ``event``; return entries in order."""
        _disabled, _calls, scan, scan_filtered, groups = plan
        if scan_filtered:
            selected = [e for e in scan if e[2] is None or _matches(event, e[2])]
        else:
            selected = scan
        need_sort = False
        for signature, single, table in groups:
            try:
                if single is not None:
                    lookup = _resolve(event, single)
                else:
                    lookup = tuple(_resolve(event, parts) for parts in signature)
                hits = table.get(lookup)
            except AttributeError:
                # Every filter of the group needs every one of these paths.
                _log_missing(
                    ".".join(single) if single else [".".join(p) for p in signature], event
                )
                continue
            except Exception:
                # An unhashable event value, a comparison or a property that
                # raised: use the exact scan semantics for this group.
                hits = sorted(
                    (e for entries in table.values() for e in entries if _matches(event, e[2])),
                    key=_ORDER,
                )
            if not hits:
                continue
            if not selected:
                selected = hits
            else:
                selected = [*selected, *hits]
                need_sort = True
        if need_sort:
            selected.sort(key=_ORDER)
        return selected

    # ------------------------------------------------------------------ emitting

    def emit(self, event: BaseEvent, block: bool = True) -> threading.Thread | None:
        """Notify all listeners of the event's class hierarchy about ``event``.

        Steps: the ``'emit'`` trace (may veto); return at once if any class of
        the hierarchy is disabled; evaluate filters; ``event.pre_emit()``; call
        each listener in order until one marks the event handled; then
        ``event.post_emit()``.  An ``Exception`` raised by a listener is
        logged with its traceback on the ``encore.events.event_manager``
        logger and the remaining listeners still run; a ``BaseException``
        (e.g. KeyboardInterrupt) propagates.  So does an exception other than
        ``AttributeError`` raised while evaluating a filter (e.g. by a property
        of the event): it comes out of ``emit`` before any listener has run.

        See :meth:`BaseEventManager.emit` for the parameters.
        """
        if not block:
            thread = threading.Thread(target=self.emit, args=(event,), name=f"Event emit: {event}")
            thread.start()
            return thread
        trace = self._trace
        if trace is not None and trace("emit", self.emit, (event,)):
            return None
        plan = self._plans.get(type(event))
        if plan is None:
            plan = self._plan(type(event))
        if plan[0]:
            return None
        calls = plan[1]
        if calls is None:
            calls = self._select(plan, event)
        event.pre_emit()
        if trace is None:
            for func, ref, _filter, _order in calls:
                try:
                    if ref is None:
                        func(event)
                    else:
                        obj = ref()
                        if obj is None:
                            continue
                        func(obj, event)
                except Exception:
                    _log_listener_error(func, ref, event)
                if event._handled:
                    break
        else:
            self._dispatch_traced(trace, calls, event)
        event.post_emit()
        return None

    def _dispatch_traced(self, trace: TraceFunc, calls: Any, event: BaseEvent) -> None:
        for func, ref, _filter, _order in calls:
            if ref is None:
                listener = func
            else:
                obj = ref()
                if obj is None:
                    continue
                listener = MethodType(func, obj)
            if trace("listen", listener, (event,)):
                continue
            try:
                listener(event)
            except Exception:
                _log_listener_error(func, ref, event)
            if event._handled:
                break

    def get_listeners(
        self, event: BaseEvent | type, cls: type | None = None
    ) -> Iterator[Callable[[Any], Any]]:
        """Return a lazy iterator over the listeners ``event`` would reach, in call order.

        Parameters
        ----------
        event : BaseEvent or class
            With an event instance, filters are applied; with a class, every
            listener of the class and its superclasses is returned unfiltered.
        cls : class, optional
            The class whose hierarchy is used for an event instance; by
            default the event's own class.

        Notes
        -----
        Bound methods are rebuilt from their weak references, so they compare
        equal to ``obj.method``; listeners whose objects died are skipped.
        """
        if isinstance(event, type):
            plan = self._plan(event)
            _disabled, _calls, scan, _filtered, groups = plan
            entries = list(scan)
            for _signature, _single, table in groups:
                for group_entries in table.values():
                    entries.extend(group_entries)
            entries.sort(key=_ORDER)
        else:
            plan = self._plan(type(event) if cls is None else cls)
            entries = plan[1] if plan[1] is not None else self._select(plan, event)
        return _resolve_entries(entries)


def _resolve_entries(entries: Any) -> Iterator[Callable[[Any], Any]]:
    for func, ref, _filter, _order in entries:
        if ref is None:
            yield func
        else:
            obj = ref()
            if obj is not None:
                yield MethodType(func, obj)


def _log_listener_error(func: Callable[..., Any], ref: weakref.ref | None, event: Any) -> None:
    # Format everything now so the log record keeps no reference to the event.
    logger.warning(
        "Exception raised by listener %s for event %s:\n%s",
        _describe(func, ref),
        repr(event),
        traceback.format_exc(),
    )


# Marks identity keys, so they can never equal a callable used as its own key.
_BY_ID = object()


def _strong_key(func: Callable[..., Any]) -> Any:
    """The identity of a strongly held listener.

    Like the original EnCore, a listener is identified by equality, so a
    fresh ``log.append`` (equal, not identical, to the connected one)
    disconnects it.  Unhashable callables fall back to object identity.
    """
    try:
        hash(func)
    except TypeError:
        return (_BY_ID, id(func))
    return func


def _check_class(cls: Any) -> None:
    if not isinstance(cls, type):
        raise TypeError(f"expected an event class, not {cls!r}")
