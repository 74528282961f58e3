"""A key-value store that lives entirely in memory.

:class:`DictMemoryStore` keeps every value in a dictionary.  It is the
reference implementation of the API: fast, complete, thread-safe and with real
transactions, and a good stand-in for any store in tests.  It is not optimised
to reduce memory use: each value's bytes are held once, as a ``bytes`` object.
"""

from __future__ import annotations

import io
import itertools
import os
import threading
from collections.abc import Iterable, Iterator
from time import time as _time
from typing import Any

from .abstract_store import (
    DEFAULT_BUFFER_SIZE,
    AbstractStore,
    check_key,
    check_metadata,
    copy_metadata,
    metadata_matches,
    select_metadata,
)
from .string_value import StringValue
from .utils import BufferIteratorIO, check_readable_stream

__all__ = ["DictMemoryStore"]

_MISSING = object()


class DictMemoryStore(AbstractStore):
    """Dictionary-based in-memory store.

    Data lives in ``_store``, a dict mapping each key to a tuple ``(bytes,
    metadata, created, modified)``.  ``get`` returns a
    :class:`~encore.storage.string_value.StringValue`; data streams are
    :class:`io.BytesIO` objects.

    Parameters
    ----------
    event_manager : BaseEventManager, optional
        The manager the store emits on; the global one by default.

    Notes
    -----
    Thread safety: every method may be called from any thread.  Writes take a
    lock; reads take none (entries are immutable tuples swapped atomically), so
    a read never blocks and sees either the old or the new value.

    Transactions are real: writes made inside a ``with store.transaction():``
    block that raises are rolled back, and the Set/Update/Delete events of the
    block are emitted only after it commits.  While one thread is inside a
    transaction, writes from other threads wait for it to finish, so a
    transaction is isolated from other writers (readers may see its
    uncommitted writes).

    Events: ``set``/``set_data``/``set_metadata``/``from_*`` emit
    :class:`~encore.storage.events.StoreSetEvent` for a new key and
    :class:`~encore.storage.events.StoreUpdateEvent` for an existing one;
    ``update_metadata`` emits an Update event with the merged metadata;
    ``delete`` emits :class:`~encore.storage.events.StoreDeleteEvent` with the
    deleted key's metadata.  Transfers longer than one buffer also emit
    progress events.
    """

    def __init__(self, event_manager: Any = None) -> None:
        super().__init__(event_manager)
        self._store: dict[str, tuple[bytes, dict[str, Any], float, float]] = {}
        # Re-entrant so a transaction's owner can keep writing while holding it.
        self._lock = threading.RLock()
        self._undo: dict[str, Any] | None = None

    # -- lifecycle ---------------------------------------------------------

    def connect(self, credentials: Any = None) -> None:
        """Connect to the store; it has no resources, so *credentials* are ignored."""
        self._connected = True

    def disconnect(self) -> None:
        """Disconnect from the store; the data stays in memory."""
        self._connected = False

    def info(self) -> dict[str, Any]:
        """Return ``{'readonly': False}``."""
        return {"readonly": False}

    # -- reading -----------------------------------------------------------

    def get(self, key: str) -> StringValue:
        """Return a :class:`~encore.storage.string_value.StringValue` for *key*."""
        entry = self._store.get(key, _MISSING) if type(key) is str else self._checked_get(key)
        if entry is _MISSING:
            raise KeyError(key)
        return StringValue._from_store(*entry)

    def _checked_get(self, key: Any) -> Any:
        check_key(key)
        return self._store.get(key, _MISSING)

    def exists(self, key: str) -> bool:
        """Test whether or not a key exists in the store."""
        check_key(key)
        return key in self._store

    def get_data(self, key: str) -> io.BytesIO:
        """Return the data of *key* as a new :class:`io.BytesIO`."""
        return io.BytesIO(self._entry(key)[0])

    def get_metadata(self, key: str, select: Iterable[str] | None = None) -> dict[str, Any]:
        """Return a copy of the metadata of *key*, projected by *select*."""
        return select_metadata(self._entry(key)[1], select)

    def query(
        self, select: Iterable[str] | None = None, **kwargs: Any
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield ``(key, metadata)`` for every key whose metadata matches *kwargs*."""
        if select is not None:
            select = list(select)
        for key, entry in self._matching_items(kwargs):
            yield key, select_metadata(entry[1], select)

    def query_keys(self, **kwargs: Any) -> Iterator[str]:
        """Yield every key whose metadata matches *kwargs*."""
        if not kwargs:
            return iter(list(self._store))
        return iter([key for key, _ in self._matching_items(kwargs)])

    def _matching_items(self, criteria: dict[str, Any]) -> list[tuple[str, Any]]:
        # A snapshot list: safe against concurrent writers, and the scan runs
        # as one comprehension rather than a Python call per key.
        items = list(self._store.items())
        if not criteria:
            return items
        if len(criteria) == 1:
            ((name, wanted),) = criteria.items()
            return [item for item in items if item[1][1].get(name, _MISSING) == wanted]
        return [item for item in items if metadata_matches(item[1][1], criteria)]

    def to_bytes(self, key: str, buffer_size: int = DEFAULT_BUFFER_SIZE) -> bytes:
        """Return the data of *key*; the bytes are already in memory, so no copy is made."""
        return self._entry(key)[0]

    # -- writing -----------------------------------------------------------

    def set(self, key: str, value: Any, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Store a Value or a ``(stream, metadata)`` tuple into *key*.

        The stream is read to its end but not closed; the metadata is copied.
        """
        check_key(key)
        data, metadata, size = self._unpack_value(value)
        payload = self._read_all(key, data, metadata, size, buffer_size)
        self._put(key, payload, metadata)

    def set_data(self, key: str, data: Any, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Replace the data of *key*, keeping its metadata (``{}`` for a new key)."""
        check_key(key)
        check_readable_stream(data)
        entry = self._store.get(key)
        payload = self._read_all(key, data, {} if entry is None else entry[1], None, buffer_size)
        # The stream is read outside the lock; the metadata is taken again
        # under it so a concurrent metadata write is not lost.
        with self._lock:
            entry = self._store.get(key)
            self._put(key, payload, {} if entry is None else entry[1])

    def set_metadata(self, key: str, metadata: dict[str, Any]) -> None:
        """Replace the metadata of *key*, keeping its data (empty for a new key)."""
        check_key(key)
        check_metadata(metadata)
        metadata = copy_metadata(metadata)
        with self._lock:
            entry = self._store.get(key)
            self._put(key, b"" if entry is None else entry[0], metadata)

    def update_metadata(self, key: str, metadata: dict[str, Any]) -> None:
        """Merge *metadata* into the metadata of *key*; ``KeyError`` if it is missing."""
        check_key(key)
        check_metadata(metadata)
        with self._lock:
            merged = dict(self._entry(key)[1])
            merged.update(copy_metadata(metadata))
            self._put(key, self._store[key][0], merged)

    def delete(self, key: str) -> None:
        """Delete *key*; ``KeyError`` if it is missing."""
        check_key(key)
        with self._lock:
            entry = self._store.get(key, _MISSING)
            if entry is _MISSING:
                raise KeyError(key)
            self._record_undo(key, entry)
            del self._store[key]
        self._notify_delete(key, copy_metadata(entry[1]))

    def from_bytes(self, key: str, data: bytes, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Store *data* as the data of *key*, keeping its metadata."""
        check_key(key)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be bytes, not {type(data).__name__}")
        with self._lock:
            entry = self._store.get(key)
            self._put(key, bytes(data), {} if entry is None else entry[1])

    def from_file(self, key: str, path: str | os.PathLike,
                  buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Read the file at *path* into the data of *key*, keeping its metadata."""
        check_key(key)
        with open(path, "rb") as stream:
            self.set_data(key, stream, buffer_size)

    def multiset(self, keys: Iterable[str], values: Iterable[Any],
                 buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Set many keys in one transaction (like :func:`zip`, extras are ignored)."""
        with self.transaction("Setting multiple keys"):
            set_ = self.set
            for key, value in zip(keys, values, strict=False):
                set_(key, value, buffer_size)

    # -- transactions ------------------------------------------------------

    def _begin_transaction(self) -> None:
        self._lock.acquire()
        self._undo = {}

    def _commit_transaction(self) -> None:
        self._undo = None
        self._lock.release()

    def _rollback_transaction(self) -> None:
        try:
            undo, self._undo = self._undo or {}, None
            for key, entry in undo.items():
                if entry is _MISSING:
                    self._store.pop(key, None)
                else:
                    self._store[key] = entry
        finally:
            self._lock.release()

    # -- internals ---------------------------------------------------------

    def _entry(self, key: str) -> tuple[bytes, dict[str, Any], float, float]:
        if type(key) is not str:
            check_key(key)
        entry = self._store.get(key, _MISSING)
        if entry is _MISSING:
            raise KeyError(key)
        return entry

    def _read_all(self, key: str, data: Any, metadata: dict[str, Any], size: int | None,
                  buffer_size: int) -> bytes:
        # Read the whole stream before touching the store, so a failing or
        # text stream leaves the key as it was.
        if type(data) is io.BytesIO and buffer_size and buffer_size > 0:
            # Fast path for the common small in-memory value: a BytesIO only
            # returns a short read at its end, so one short read is the whole
            # value (and, fitting in one buffer, emits no progress events).
            first = data.read(buffer_size)
            if len(first) < buffer_size:
                return first
            source = data
            rest = iter(lambda: source.read(buffer_size), b"")
            data = BufferIteratorIO(itertools.chain((first,), rest))
        chunks = self._iter_chunks(key, data, metadata, size, buffer_size,
                                   f"Storing key {key!r}")
        first = next(chunks, b"")
        second = next(chunks, None)
        if second is None:
            return first
        buffer = io.BytesIO()
        buffer.write(first)
        del first
        buffer.write(second)
        del second
        for chunk in chunks:
            buffer.write(chunk)
        # getvalue() hands over the buffer without a copy when nothing else
        # references it, so a large value is held once, not twice.
        return buffer.getvalue()

    def _record_undo(self, key: str, old: Any) -> None:
        # Only the transaction's owner can hold the lock while _undo is set:
        # every other writer waits for the lock until the transaction ends.
        undo = self._undo
        if undo is not None and key not in undo:
            undo[key] = old

    def _put(self, key: str, payload: bytes, metadata: dict[str, Any]) -> None:
        now = _time()
        store = self._store
        with self._lock:
            old = store.get(key, _MISSING)
            undo = self._undo
            if undo is not None and key not in undo:
                undo[key] = old
            if old is _MISSING:
                store[key] = (payload, metadata, now, now)
            else:
                store[key] = (payload, metadata, old[2], now)
        self._notify_set(key, copy_metadata(metadata), old is not _MISSING)
