"""A store that mounts one store at a key prefix of another, like mounting a filesystem.

The primary use is a local, writable cache of a subsection of a remote or
read-only store (a :class:`~encore.storage.static_url_store.StaticURLStore`
or :class:`~encore.storage.dynamic_url_store.DynamicURLStore`): reads of keys
under the mount point come from the mounted store when it has them and fall
through to the backing store otherwise; writes only ever touch the mounted
store; :meth:`MountedStore.push` moves a finished key to the backing store.

Lifecycle, transactions and events come from
:class:`~encore.storage.composite_store.CompositeStore`: the modification and
progress events of both children are relayed with the mounted store as
``source`` and keys translated to full keys.
"""

from __future__ import annotations

from typing import Any

from .abstract_store import DEFAULT_BUFFER_SIZE, check_key, check_metadata
from .composite_store import CompositeStore, _check_store
from .utils import check_readable_stream

__all__ = ["MountedStore"]


class MountedStore(CompositeStore):
    """A key-value store that mounts another store at a particular key prefix.

    A full key ``K`` that starts with ``mount_point`` is the key
    ``K[len(mount_point):]`` of the mount store; the backing store always
    sees full keys.

    * Reads: a key under the mount point is answered by the mount store if it
      has the short key, otherwise by the backing store.  ``query`` and
      ``query_keys`` list the mount store's keys (with the prefix) and the
      backing store's keys that no mount-store key shadows -- by existence:
      a key overridden in the mount store never shows its backing copy, even
      when only the backing copy's metadata matches.
    * Writes go only to the mount store, and only for keys under the mount
      point; any other key raises :class:`KeyError`.  The backing store is
      treated as read-only.  ``set_data``, ``set_metadata`` and
      ``update_metadata`` of a key that only the backing store has are
      copy-on-write: the backing value's other half is copied into the mount
      store, in one ``set``.
    * ``delete`` removes the key from the mount store only, and raises
      :class:`KeyError` if the mount store does not have it, even when the
      backing store does; afterwards a backing copy is visible again.
    * :meth:`push` moves a key from the mount store to the backing store.

    Parameters
    ----------
    mount_point : str
        Key prefix for the mounted store (``''`` mounts it over every key).
    mount_store : AbstractStore
        The store to be mounted.
    backing_store : AbstractReadOnlyStore
        The store that we are mounting against.
    event_manager : BaseEventManager, optional
        The manager the mounted store emits on; the global one by default.

    Attributes
    ----------
    mount_point, mount_store, backing_store
        As given.
    stores : list of stores
        ``[mount_store, backing_store]``.
    """

    def __init__(
        self, mount_point: str, mount_store: Any, backing_store: Any, event_manager: Any = None
    ) -> None:
        super().__init__(event_manager)
        if not isinstance(mount_point, str):
            raise TypeError(f"mount_point must be a str, not {type(mount_point).__name__}")
        _check_store(mount_store)
        _check_store(backing_store)
        if mount_store is backing_store:
            raise ValueError("the mount store and the backing store must be different stores")
        self.mount_point = mount_point
        self.mount_store = mount_store
        self.backing_store = backing_store
        self.stores = [mount_store, backing_store]
        self._start_relay()

    def _short_key(self, key: str) -> str:
        """Return the mount-store key of *key*, or raise KeyError if it is not under the mount."""
        if not key.startswith(self.mount_point):
            raise KeyError(key)
        return key[len(self.mount_point):]

    def _layers(self, key: str) -> list[tuple[Any, str]]:
        if key.startswith(self.mount_point):
            return [(self.mount_store, key[len(self.mount_point):]), (self.backing_store, key)]
        return [(self.backing_store, key)]

    def _composite_key(self, child: Any, child_key: str) -> str | None:
        if child is self.mount_store:
            return self.mount_point + child_key
        return child_key

    # -- writing -----------------------------------------------------------

    def set(self, key: str, value: Any, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Store a value into the mount store.

        Raises
        ------
        KeyError
            If *key* is not under the mount point.
        """
        check_key(key)
        self.mount_store.set(self._short_key(key), value, buffer_size)

    def set_data(self, key: str, data: Any, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Replace the data of *key* in the mount store, keeping its (possibly backing) metadata.

        Raises
        ------
        KeyError
            If *key* is not under the mount point.
        """
        check_key(key)
        check_readable_stream(data)
        short = self._short_key(key)
        if not self.mount_store.exists(short) and self.backing_store.exists(key):
            metadata = self.backing_store.get_metadata(key)
            self.mount_store.set(short, (data, metadata), buffer_size)
        else:
            self.mount_store.set_data(short, data, buffer_size)

    def set_metadata(self, key: str, metadata: dict[str, Any]) -> None:
        """Replace the metadata of *key* in the mount store, keeping its (possibly backing) data.

        Raises
        ------
        KeyError
            If *key* is not under the mount point.
        """
        check_key(key)
        check_metadata(metadata)
        short = self._short_key(key)
        if not self.mount_store.exists(short) and self.backing_store.exists(key):
            with self.backing_store.get_data(key) as data:
                self.mount_store.set(short, (data, metadata))
        else:
            self.mount_store.set_metadata(short, metadata)

    def update_metadata(self, key: str, metadata: dict[str, Any]) -> None:
        """Merge *metadata* into the metadata of *key*, copying a backing-only key up first.

        Raises
        ------
        KeyError
            If *key* is not under the mount point, or neither store has it.
        """
        check_key(key)
        check_metadata(metadata)
        short = self._short_key(key)
        if self.mount_store.exists(short):
            try:
                self.mount_store.update_metadata(short, metadata)
            except KeyError:
                raise KeyError(key) from None
        elif self.backing_store.exists(key):
            merged = self.backing_store.get_metadata(key)
            merged.update(metadata)
            with self.backing_store.get_data(key) as data:
                self.mount_store.set(short, (data, merged))
        else:
            raise KeyError(key)

    def delete(self, key: str) -> None:
        """Delete *key* from the mount store; a backing copy becomes visible again.

        Raises
        ------
        KeyError
            If *key* is not under the mount point or the mount store does not
            have it (even if the backing store does).
        """
        check_key(key)
        short = self._short_key(key)
        try:
            self.mount_store.delete(short)
        except KeyError:
            raise KeyError(key) from None

    def push(self, key: str) -> None:
        """Move a key from the mount store to the backing store.

        The value is written to the backing store under the full key, then
        deleted from the mount store; if writing fails, the mount store keeps
        it.

        Raises
        ------
        KeyError
            If *key* is not under the mount point or the mount store does not
            have it.
        """
        check_key(key)
        short = self._short_key(key)
        try:
            value = self.mount_store.get(short)
        except KeyError:
            raise KeyError(key) from None
        with value.data as data:
            self.backing_store.set(key, (data, value.metadata))
        self.mount_store.delete(short)
