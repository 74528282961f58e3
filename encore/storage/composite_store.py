"""The base class of stores built out of child stores, and the machinery they share.

:class:`CompositeStore` is the base class of every store built out of child
stores (:class:`~encore.storage.joined_store.JoinedStore` and
:class:`~encore.storage.mounted_store.MountedStore`).  It implements once what
they share:

* reads resolve a key through an ordered list of *layers* (child store, child
  key); the first layer that has the key answers, and ``query``/``query_keys``
  shadow by existence: a key present in a higher layer never shows a lower
  copy, whatever the metadata of either copy;
* ``connect`` connects the children that are not connected yet, and
  ``disconnect`` disconnects them and keeps them, so the composite can connect
  again;
* ``transaction`` enters the transaction of every writable child, so a block
  commits or rolls back in every child (atomic per child, not across children:
  there is no two-phase commit);
* the event relay described below.

Events
------
A composite store emits no events of its own making: it *relays* the events
of its children.  It listens on each child's event manager and re-emits, on
its own ``event_manager`` and with itself as ``source``:

* modification events (:class:`~encore.storage.events.StoreSetEvent`,
  :class:`~encore.storage.events.StoreUpdateEvent`,
  :class:`~encore.storage.events.StoreDeleteEvent`), with the key translated
  into the composite's key space and the class adjusted to what a reader of
  the composite sees: a change to a copy that is shadowed by a higher layer is
  not relayed; a Set in a layer that hides an existing lower copy becomes an
  Update; a Delete that uncovers a lower copy becomes an Update carrying the
  lower copy's metadata;
* progress events, with the translated key and otherwise unchanged;
* :class:`~encore.storage.events.StoreTransactionStartEvent` and
  :class:`~encore.storage.events.StoreTransactionEndEvent` are emitted by the
  composite itself for its own ``transaction()`` blocks, and the relayed
  modification events of a block are delivered after its End event, grouped
  by child store (highest priority first), each child's in its own order.

The children still emit their own events with themselves as ``source``.  When
children and composite share an event manager (the default: all use the
global one) a listener that does not filter on ``source`` sees both; filter
with ``filter={'source': store}`` to follow one of them.  The classification
is made when the child reports the change, so changes made concurrently to
several layers may be classified from a slightly later state.
"""

from __future__ import annotations

import copy
import threading
from abc import abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from typing import Any

from .abstract_store import (
    AbstractStore,
    Value,
    check_key,
)
from .events import (
    StoreDeleteEvent,
    StoreKeyEvent,
    StoreModificationEvent,
    StoreProgressEvent,
    StoreSetEvent,
    StoreTransactionEndEvent,
    StoreTransactionStartEvent,
    StoreUpdateEvent,
)

__all__ = ["CompositeStore"]


def _check_store(store: Any) -> None:
    for name in ("get", "query", "exists"):
        if not callable(getattr(store, name, None)):
            raise TypeError(f"{store!r} is not a key-value store: it has no {name}()")


class _CompositeTransaction:
    """Transaction context of a :class:`CompositeStore`.

    The outermost block enters the transaction of every writable child,
    emits StoreTransactionStartEvent and holds the
    relayed modification events; on exit the children commit (or roll back
    if the block raised), StoreTransactionEndEvent is emitted, then the held
    events.  Inner blocks of the same thread only nest.  Serialisation
    between threads comes from the children's own transactions.
    """

    def __init__(self, store: CompositeStore, notes: str | None) -> None:
        self.store = store
        self.notes = notes

    def __enter__(self) -> None:
        state = self.store._tx_state
        depth = getattr(state, "depth", 0)
        if depth:
            state.depth = depth + 1
            return None
        stack = ExitStack()
        try:
            # Entered lowest first, so they exit (commit and release their
            # events) highest first.
            for child in reversed(self.store.stores):
                transaction = getattr(child, "transaction", None)
                if transaction is not None:
                    stack.enter_context(transaction(self.notes))
        except BaseException:
            stack.close()
            raise
        state.stack = stack
        state.queue = []
        state.depth = 1
        self.store.event_manager.emit(StoreTransactionStartEvent(self.store, notes=self.notes))
        return None

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        state = self.store._tx_state
        state.depth -= 1
        if state.depth:
            return False
        stack, state.stack = state.stack, None
        manager = self.store.event_manager
        try:
            try:
                # The children commit (or roll back) and release their held
                # events, which the relay queues until our End event is out.
                stack.__exit__(exc_type, exc, tb)
            except BaseException:
                manager.emit(StoreTransactionEndEvent(self.store, state="failed"))
                raise
            outcome = "done" if exc_type is None else "failed"
            manager.emit(StoreTransactionEndEvent(self.store, state=outcome))
        finally:
            # Only events of children that committed (or cannot roll back)
            # reached the queue, so everything queued did happen.
            queue, state.queue = state.queue, None
            for event in queue:
                manager.emit(event)
        return False


class CompositeStore(AbstractStore):
    """Base class for stores made of child stores.

    A subclass sets ``self.stores`` (the children, highest priority first)
    and then calls ``self._start_relay()`` in its constructor, and defines
    :meth:`_layers` and :meth:`_composite_key`.  It gets reading, ``exists``,
    ``query``/``query_keys``, the lifecycle methods, transactions and the
    event relay described in the module documentation; it implements the
    writing methods, whose semantics differ between composites.

    Parameters
    ----------
    event_manager : BaseEventManager, optional
        The manager the composite emits on; the global one by default.

    Attributes
    ----------
    stores : list of stores
        The children, highest priority first.

    Notes
    -----
    Thread safety: a composite is as thread-safe as its children; it keeps no
    shared mutable state besides the connection flag (transaction state is
    per thread).  Operations that touch several children (copy-on-write, a
    delete of several copies, ``push``) are not isolated from concurrent
    writers unless they run inside ``transaction()``.
    """

    stores: list[Any]

    def __init__(self, event_manager: Any = None) -> None:
        super().__init__(event_manager)
        self._tx_state = threading.local()
        self._relay_managers: list[Any] = []

    # -- hooks for subclasses ------------------------------------------------

    @abstractmethod
    def _layers(self, key: str) -> list[tuple[Any, str]]:
        """Return the ``(child, child_key)`` pairs that may hold *key*, highest first."""

    @abstractmethod
    def _composite_key(self, child: Any, child_key: str) -> str | None:
        """Return the composite key of *child_key* in *child*, or None if it has none."""

    # -- lifecycle ---------------------------------------------------------

    def connect(self, credentials: Any = None) -> None:
        """Connect every child that is not connected yet, passing *credentials* on.

        If a child fails to connect, the children this call connected are
        disconnected again and the error propagates.
        """
        connected_now = []
        try:
            for child in self.stores:
                if not child.is_connected():
                    child.connect(credentials)
                    connected_now.append(child)
        except BaseException:
            for child in reversed(connected_now):
                child.disconnect()
            raise
        self._connected = True
        self._start_relay()

    def disconnect(self) -> None:
        """Disconnect every connected child; the children are kept for a later ``connect``.

        Every child is disconnected even if one fails; the first error is
        then raised.
        """
        self._connected = False
        error: BaseException | None = None
        for child in self.stores:
            try:
                if child.is_connected():
                    child.disconnect()
            except Exception as exc:  # re-raised below, after the other children
                if error is None:
                    error = exc
        if error is not None:
            raise error

    def is_connected(self) -> bool:
        """Whether the composite and all its children are connected."""
        return self._connected and all(child.is_connected() for child in self.stores)

    def info(self) -> dict[str, Any]:
        """Return ``{'readonly': False}``."""
        return {"readonly": False}

    def transaction(self, notes: str | None = None) -> _CompositeTransaction:
        """Provide a transaction spanning the transactions of every writable child.

        The block commits or rolls back in each child (atomic per child, not
        across children).  It is re-entrant within a thread.

        Events
        ------
        StoreTransactionStartEvent, StoreTransactionEndEvent
            With the composite as ``source``, around the outermost block.
        StoreSetEvent, StoreUpdateEvent, StoreDeleteEvent
            The relayed changes of the block, after the End event.
        """
        return _CompositeTransaction(self, notes)

    # -- reading -----------------------------------------------------------

    def _holder(self, key: str) -> tuple[Any, str]:
        """Return the highest ``(child, child_key)`` layer that has *key*, or raise KeyError."""
        for child, child_key in self._layers(key):
            if child.exists(child_key):
                return child, child_key
        raise KeyError(key)

    def _first_layer(self, key: str, method: str, *args: Any) -> Any:
        # Ask each layer in turn: one call per layer instead of exists() + get.
        for child, child_key in self._layers(key):
            try:
                return getattr(child, method)(child_key, *args)
            except KeyError:
                continue
        raise KeyError(key)

    def get(self, key: str) -> Value:
        """Retrieve the value of *key* from the highest layer that has it."""
        check_key(key)
        return self._first_layer(key, "get")

    def get_data(self, key: str) -> Any:
        """Retrieve the data of *key* from the highest layer that has it."""
        check_key(key)
        return self._first_layer(key, "get_data")

    def get_data_range(self, key: str, start: int | None = None, end: int | None = None) -> Any:
        """Retrieve bytes ``start <= i < end`` of *key* from the highest layer that has it."""
        check_key(key)
        return self._first_layer(key, "get_data_range", start, end)

    def get_metadata(self, key: str, select: Iterable[str] | None = None) -> dict[str, Any]:
        """Retrieve the metadata of *key* from the highest layer that has it."""
        check_key(key)
        if select is not None:
            select = list(select)
        return self._first_layer(key, "get_metadata", select)

    def exists(self, key: str) -> bool:
        """Whether any layer has *key*."""
        check_key(key)
        return any(child.exists(child_key) for child, child_key in self._layers(key))

    def _shadowed_query(self, method: str, *args: Any, **kwargs: Any) -> Iterator[Any]:
        # Keys present in a higher child (matching or not) hide lower copies.
        # Each child but the last is listed once in full to know what it
        # hides, so memory grows with the number of keys of those children.
        hidden: set[str] = set()
        last = len(self.stores) - 1
        for index, child in enumerate(self.stores):
            collect_from_results = not kwargs and index < last
            for item in getattr(child, method)(*args, **kwargs):
                child_key = item if method == "query_keys" else item[0]
                key = self._composite_key(child, child_key)
                if key is None or key in hidden:
                    continue
                if collect_from_results:
                    hidden.add(key)
                yield key if method == "query_keys" else (key, item[1])
            if index < last and not collect_from_results:
                for child_key in child.query_keys():
                    key = self._composite_key(child, child_key)
                    if key is not None:
                        hidden.add(key)

    def query(
        self, select: Iterable[str] | None = None, **kwargs: Any
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield ``(key, metadata)`` for every visible key whose metadata matches *kwargs*.

        A key is answered by the highest layer that has it: a lower copy never
        appears, even when only the lower copy's metadata matches.
        """
        if select is not None:
            select = list(select)
        return self._shadowed_query("query", select, **kwargs)

    def query_keys(self, **kwargs: Any) -> Iterator[str]:
        """Yield every visible key whose metadata matches *kwargs* (shadowing as ``query``)."""
        return self._shadowed_query("query_keys", **kwargs)

    # -- event relay -------------------------------------------------------

    def _start_relay(self) -> None:
        """Listen for the events of every child, on each distinct manager once.

        The listener is a bound method, held weakly by the managers, so the
        relay never keeps the composite alive.
        """
        managers: list[Any] = []
        for child in self.stores:
            manager = getattr(child, "event_manager", None)
            if manager is not None and not any(manager is seen for seen in managers):
                managers.append(manager)
        for manager in self._relay_managers:
            if not any(manager is current for current in managers):
                try:
                    manager.disconnect(StoreKeyEvent, self._relay_child_event)
                except KeyError:
                    pass
        for manager in managers:
            manager.connect(StoreKeyEvent, self._relay_child_event)
        self._relay_managers = managers

    def _relay_child_event(self, event: Any) -> None:
        source = event.source
        child = next((store for store in self.stores if store is source), None)
        child_key = getattr(event, "key", None)
        if child is None or type(child_key) is not str:
            return
        key = self._composite_key(child, child_key)
        if key is None:
            return
        if isinstance(event, StoreModificationEvent):
            self._relay_modification(event, child, child_key, key)
        elif isinstance(event, StoreProgressEvent):
            relayed = copy.copy(event)
            relayed.source = self
            relayed.key = key
            relayed._handled = False
            self.event_manager.emit(relayed)

    def _relay_modification(self, event: Any, child: Any, child_key: str, key: str) -> None:
        layers = self._layers(key)
        position = next(
            (i for i, (store, ckey) in enumerate(layers) if store is child and ckey == child_key),
            None,
        )
        if position is None:
            return
        if any(store.exists(ckey) for store, ckey in layers[:position]):
            return  # the change is hidden by a higher layer
        below = any(store.exists(ckey) for store, ckey in layers[position + 1:])
        metadata = event.metadata
        if isinstance(event, StoreDeleteEvent):
            event_class: type = StoreDeleteEvent
            if below:
                try:
                    metadata = self.get_metadata(key)
                    event_class = StoreUpdateEvent
                except KeyError:
                    pass
        elif isinstance(event, StoreSetEvent) and below:
            event_class = StoreUpdateEvent
        else:
            event_class = type(event)
        self._emit_modification(event_class(self, key=key, metadata=metadata))

    def _emit_modification(self, event: Any) -> None:
        """Emit a modification event, or hold it while this thread is in a transaction."""
        queue = getattr(self._tx_state, "queue", None)
        if queue is not None:
            queue.append(event)
        else:
            self.event_manager.emit(event)
