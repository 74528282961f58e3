"""A store that joins several stores into one key space.

:class:`JoinedStore` presents the union of the keys of a list of stores; when
several stores hold a key, the first one in the list wins.  It is the usual way
to put a fast local store in front of a slower or read-only one.

Its reads, queries, transactions and event relay come from
:class:`~encore.storage.composite_store.CompositeStore`, whose module docstring
describes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .abstract_store import (
    DEFAULT_BUFFER_SIZE,
    AbstractAuthorizingStore,
    AuthorizationError,
    check_key,
    check_metadata,
)
from .composite_store import CompositeStore, _check_store
from .utils import check_readable_stream

__all__ = ["JoinedStore"]


class JoinedStore(CompositeStore, AbstractAuthorizingStore):
    """A key-value store that joins together several other key-value stores.

    The keys of a joined store are the union of the keys of its stores.  When
    several stores hold a key, the store which comes first in the list has
    priority: it answers reads, and ``query``/``query_keys`` never show the
    copies of lower stores, whatever their metadata.

    Writes go to the first store that accepts the key (a store refuses a key
    by raising :class:`KeyError`, as a
    :class:`~encore.storage.mounted_store.MountedStore` does outside its mount
    point; read-only stores are skipped).  Ordinary stores accept every key,
    so writes land in ``stores[0]``.  A write never goes below the store that
    currently holds the key, where it would be hidden: if no store from the
    first one down to the holder accepts it, :class:`KeyError` is raised.

    ``set_data``, ``set_metadata`` and ``update_metadata`` of a key held by a
    lower store are copy-on-write: the untouched half (metadata or data) is
    copied from the lower store, in one ``set`` into the write target.

    ``delete`` removes the key from *every* store that holds it, lowest
    first, so a lower copy never reappears and ``exists`` is False afterwards.
    If a store cannot delete its copy (for example it is read-only), the
    error propagates; as lower copies go first, the visible value is then
    unchanged.

    See :mod:`encore.storage.joined_store` for events and transactions.

    Parameters
    ----------
    stores : list of stores
        The stores that are joined together, highest priority first.
    event_manager : BaseEventManager, optional
        The manager the joined store emits on; the global one by default.

    Attributes
    ----------
    stores : list of stores
        The joined stores, highest priority first.
    """

    def __init__(self, stores: Sequence[Any], event_manager: Any = None) -> None:
        super().__init__(event_manager)
        stores = list(stores)
        for store in stores:
            _check_store(store)
        self.stores = stores
        self._start_relay()

    def _layers(self, key: str) -> list[tuple[Any, str]]:
        return [(store, key) for store in self.stores]

    def _composite_key(self, child: Any, child_key: str) -> str | None:
        return child_key

    # -- permissions ---------------------------------------------------------

    @property
    def user_tag(self) -> Any:
        """The user tag of ``stores[0]``, or None if it has none."""
        if not self.stores:
            return None
        tag = getattr(self.stores[0], "user_tag", None)
        # Some stores (e.g. DynamicURLStore upstream) expose it as a method.
        return tag() if callable(tag) else tag

    def _permissions_method(self, key: str, name: str) -> Any:
        child, child_key = self._holder(key)
        method = getattr(child, name, None)
        if method is None:
            raise AuthorizationError(
                f"{type(child).__name__} holding key {key!r} does not support permissions"
            )
        return method

    def get_permissions(self, key: str) -> dict[str, set[str]]:
        """Return the permissions of *key* from the highest store that holds it.

        Raises
        ------
        KeyError
            If no store holds the key.
        AuthorizationError
            If the user is not an owner, or that store has no permissions.
        """
        check_key(key)
        return self._permissions_method(key, "get_permissions")(key)

    def set_permissions(self, key: str, permissions: dict[str, set[str]]) -> None:
        """Set the permissions of *key* in the highest store that holds it.

        Raises
        ------
        KeyError
            If no store holds the key.
        AuthorizationError
            If the user is not an owner, or that store has no permissions.
        """
        check_key(key)
        self._permissions_method(key, "set_permissions")(key, permissions)

    # -- writing -----------------------------------------------------------

    def _holder_index(self, key: str) -> int | None:
        for index, store in enumerate(self.stores):
            if store.exists(key):
                return index
        return None

    def _write(self, key: str, in_place: Any, copy_up: Any) -> None:
        """Apply a write to the first store, down to the holder, that accepts *key*.

        ``in_place(store)`` writes into a store that holds the key (or into
        any store for a new key); ``copy_up(store, holder)`` writes the
        combined value into a store above the holder.
        """
        holder = self._holder_index(key)
        for index, store in enumerate(self.stores):
            if holder is not None and index > holder:
                break
            if getattr(store, "set", None) is None:
                continue  # read-only
            try:
                if holder is None or index == holder:
                    in_place(store)
                else:
                    copy_up(store, self.stores[holder])
            except KeyError:
                continue  # this store refuses the key
            return
        raise KeyError(key)

    def set(self, key: str, value: Any, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Store a value into the first store that accepts *key*."""
        check_key(key)

        def write(store: Any, holder: Any = None) -> None:
            store.set(key, value, buffer_size)

        self._write(key, write, write)

    def set_data(self, key: str, data: Any, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Replace the data of *key*, keeping its metadata (copy-on-write from a lower store)."""
        check_key(key)
        check_readable_stream(data)

        def copy_up(store: Any, holder: Any) -> None:
            store.set(key, (data, holder.get_metadata(key)), buffer_size)

        self._write(key, lambda store: store.set_data(key, data, buffer_size), copy_up)

    def set_metadata(self, key: str, metadata: dict[str, Any]) -> None:
        """Replace the metadata of *key*, keeping its data (copy-on-write from a lower store)."""
        check_key(key)
        check_metadata(metadata)

        def copy_up(store: Any, holder: Any) -> None:
            with holder.get_data(key) as data:
                store.set(key, (data, metadata))

        self._write(key, lambda store: store.set_metadata(key, metadata), copy_up)

    def update_metadata(self, key: str, metadata: dict[str, Any]) -> None:
        """Merge *metadata* into the metadata of *key* (copy-on-write from a lower store).

        Raises
        ------
        KeyError
            If no store holds the key.
        """
        check_key(key)
        check_metadata(metadata)
        if not self.exists(key):
            raise KeyError(key)

        def in_place(store: Any) -> None:
            store.update_metadata(key, metadata)

        def copy_up(store: Any, holder: Any) -> None:
            merged = holder.get_metadata(key)
            merged.update(metadata)
            with holder.get_data(key) as data:
                store.set(key, (data, merged))

        self._write(key, in_place, copy_up)

    def delete(self, key: str) -> None:
        """Delete *key* from every store that holds it, lowest first.

        Raises
        ------
        KeyError
            If no store holds the key.
        """
        check_key(key)
        holders = [store for store in self.stores if store.exists(key)]
        if not holders:
            raise KeyError(key)
        for store in reversed(holders):
            store.delete(key)
