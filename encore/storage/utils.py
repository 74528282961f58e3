"""Utilities for key-value stores: streams, transactions and progress events.

Streaming
    :func:`buffer_iterator` turns a readable binary stream into an iterator of
    ``bytes`` chunks, reporting progress as it goes; :class:`BufferIteratorIO`
    turns an iterator of chunks back into a readable stream; :func:`tee` clones
    a stream.  Together they let a store move a value of any size while holding
    only one buffer of it in memory.

Transactions
    :class:`SimpleTransactionContext` is the complete, re-entrant transaction
    manager used by :meth:`encore.storage.abstract_store.AbstractStore.transaction`:
    it serialises transactions between threads, calls a store's
    ``_begin_transaction``/``_commit_transaction``/``_rollback_transaction`` hooks
    and holds back modification events until the outermost transaction commits.
    :class:`DummyTransactionContext` is for stores that want none of that.

Progress
    :class:`StoreProgressManager` is a
    :class:`~encore.events.progress_events.ProgressManager` that emits the
    storage progress events of :mod:`encore.storage.events`.
"""

from __future__ import annotations

import io
import itertools
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from encore.events.api import ProgressManager

from .events import (
    StoreModificationEvent,
    StoreProgressEndEvent,
    StoreProgressStartEvent,
    StoreProgressStepEvent,
    StoreTransactionEndEvent,
    StoreTransactionStartEvent,
)

__all__ = [
    "DEFAULT_BUFFER_SIZE",
    "BufferIteratorIO",
    "buffer_iterator",
    "tee",
    "add_context_manager_support",
    "hashing_file",
    "DummyTransactionContext",
    "SimpleTransactionContext",
    "StoreProgressManager",
]

#: The default number of bytes moved at a time (1 MiB), as documented.
DEFAULT_BUFFER_SIZE = 1048576

_BYTES_TYPES = (bytes, bytearray, memoryview)


def check_readable_stream(data: Any, what: str = "data") -> None:
    """Raise :class:`TypeError` unless *data* looks like a readable binary stream.

    Parameters
    ----------
    data : object
        The candidate stream.
    what : str
        How to name the argument in the error message.
    """
    if isinstance(data, _BYTES_TYPES + (str,)):
        raise TypeError(
            f"{what} must be a readable binary file-like object, not {type(data).__name__} "
            "(use from_bytes() to store a bytes object)"
        )
    if isinstance(data, io.TextIOBase):
        raise TypeError(f"{what} must be opened in binary mode, got a text stream")
    if not callable(getattr(data, "read", None)):
        raise TypeError(
            f"{what} must be a readable binary file-like object with a read() method, "
            f"not {type(data).__name__}"
        )


def buffer_iterator(
    filelike: Any,
    buffer_size: int = DEFAULT_BUFFER_SIZE,
    progress: Callable[..., Any] | None = None,
    max_bytes: int | None = None,
) -> Iterator[bytes]:
    """Return an iterator of byte buffers read from a file-like object.

    Parameters
    ----------
    filelike : file-like
        An object which implements ``read(buffer_size)`` returning bytes.
    buffer_size : int
        The number of bytes to read at a time.
    progress : callable, optional
        Called as ``progress(step=n)`` after every read, including the final
        empty one, where ``n`` is the total number of bytes read so far.  A
        :class:`StoreProgressManager` inside a ``with`` block is appropriate.
    max_bytes : int, optional
        The maximum number of bytes to return.  Bytes read past the limit are
        lost from the source stream.

    Yields
    ------
    chunk : bytes
        Successive non-empty chunks of the stream.

    Raises
    ------
    TypeError
        If ``read`` returns something other than bytes (e.g. a text stream).
    """
    if buffer_size is None or buffer_size <= 0:
        buffer_size = DEFAULT_BUFFER_SIZE
    read = filelike.read
    total = 0
    while True:
        size = buffer_size
        if max_bytes is not None:
            size = min(size, max_bytes - total)
            if size <= 0:
                break
        chunk = read(size)
        if not chunk:
            if chunk is None:
                # Non-blocking streams return None when no data is ready yet;
                # stores need the whole value, so treat it as a protocol error.
                raise TypeError("read() returned None: non-blocking streams are not supported")
            if not isinstance(chunk, _BYTES_TYPES):
                raise TypeError(f"read() must return bytes, not {type(chunk).__name__}")
            if progress is not None:
                progress(step=total)
            break
        if type(chunk) is not bytes:
            if not isinstance(chunk, _BYTES_TYPES):
                raise TypeError(
                    f"read() must return bytes, not {type(chunk).__name__}; "
                    "open files in binary mode"
                )
            chunk = bytes(chunk)
        if max_bytes is not None and total + len(chunk) > max_bytes:
            chunk = chunk[: max_bytes - total]
        total += len(chunk)
        if progress is not None:
            progress(step=total)
        yield chunk


class BufferIteratorIO(io.BufferedIOBase):
    """A read-only file-like object over an iterable of bytes buffers.

    This takes an iterator of bytes objects, such as produced by
    :func:`buffer_iterator`, and wraps it in a file-like interface usable with
    the store API.  It holds at most one buffer of the underlying iterator in
    memory, so it uses less memory than a :class:`io.BytesIO`.

    Parameters
    ----------
    iterator : iterable of bytes
        Produces one bytes object per iteration.
    """

    def __init__(self, iterator: Iterable[bytes]) -> None:
        super().__init__()
        self.iterator: Iterator[bytes] | None = iter(iterator)
        self._chunk = b""
        self._offset = 0

    def readable(self) -> bool:
        """Return True: the stream can be read."""
        return True

    def read(self, buffer_size: int | None = -1) -> bytes:
        """Read at most *buffer_size* bytes; no argument, None or -1 reads everything.

        Returns ``b''`` at the end of the stream.

        .. versionchanged:: 1.0
           ``read()`` and ``read(-1)`` read to the end, as for any Python stream
           (the original returned at most 1 MiB, and nothing for -1).
        """
        if self.closed:
            raise ValueError("I/O operation on closed file.")
        read_all = buffer_size is None or buffer_size < 0
        parts = []
        wanted = 0 if read_all else buffer_size
        while read_all or wanted > 0:
            available = len(self._chunk) - self._offset
            if available == 0:
                chunk = next(self.iterator, None) if self.iterator is not None else None
                if chunk is None:
                    self.iterator = None
                    break
                self._chunk = chunk
                self._offset = 0
                continue
            if read_all or available <= wanted:
                piece = self._chunk[self._offset :] if self._offset else self._chunk
                self._chunk = b""
                self._offset = 0
                if not read_all:
                    wanted -= len(piece)
            else:
                piece = self._chunk[self._offset : self._offset + wanted]
                self._offset += wanted
                wanted = 0
            parts.append(piece)
        if len(parts) == 1:
            return bytes(parts[0])
        return b"".join(parts)

    def read1(self, buffer_size: int = -1) -> bytes:
        """Read up to *buffer_size* bytes with at most one pull from the iterator."""
        if self.closed:
            raise ValueError("I/O operation on closed file.")
        if len(self._chunk) - self._offset == 0:
            chunk = next(self.iterator, None) if self.iterator is not None else None
            if chunk is None:
                self.iterator = None
                return b""
            self._chunk, self._offset = chunk, 0
        if buffer_size is None or buffer_size < 0:
            buffer_size = len(self._chunk) - self._offset
        piece = self._chunk[self._offset : self._offset + buffer_size]
        self._offset += len(piece)
        return bytes(piece)

    def readinto(self, buffer: Any) -> int:
        """Read bytes into a pre-allocated writable buffer; return the count."""
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        """Close the stream and drop the iterator (closing it if it is a generator)."""
        iterator, self.iterator = self.iterator, None
        self._chunk = b""
        close = getattr(iterator, "close", None)
        if close is not None:
            close()
        super().close()


def tee(
    filelike: Any, n: int = 2, buffer_size: int = DEFAULT_BUFFER_SIZE
) -> list[BufferIteratorIO]:
    """Clone a file-like stream into *n* parallel streams.

    This uses :func:`itertools.tee` over a :func:`buffer_iterator`, so chunks
    read by one clone are kept until every clone has read them: reading the
    clones in lock-step uses one buffer, reading one to the end first holds the
    whole stream.

    Parameters
    ----------
    filelike : file-like
        An object which implements ``read(buffer_size)``.
    n : int
        The number of streams to produce.
    buffer_size : int
        The number of bytes to read at a time.

    Returns
    -------
    streams : list of BufferIteratorIO
    """
    return [BufferIteratorIO(it) for it in itertools.tee(buffer_iterator(filelike, buffer_size), n)]


class _ContextManagerProxy:
    """Wrap an object lacking ``__enter__``/``__exit__`` so ``with`` works on Python 3.

    Attribute access is forwarded to the wrapped object.  Like the original
    helper, leaving the block does not close the object.
    """

    __slots__ = ("_wrapped",)

    def __init__(self, wrapped: Any) -> None:
        object.__setattr__(self, "_wrapped", wrapped)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wrapped, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._wrapped, name, value)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._wrapped)

    def __enter__(self) -> Any:
        return self._wrapped

    def __exit__(self, *exc_info: Any) -> bool:
        return False


def add_context_manager_support(obj: Any) -> Any:
    """Return *obj*, or a thin proxy of it, usable in a ``with`` statement.

    Objects whose type already supports the context manager protocol (files,
    :class:`io.BytesIO`, HTTP responses) are returned unchanged, and ``with``
    closes them as usual.  Anything else is wrapped in a proxy that forwards
    attribute access to *obj*, returns *obj* from ``__enter__`` and does not
    close it on exit.

    .. versionchanged:: 1.0
       Works on Python 3, where ``with`` looks special methods up on the type.
    """
    cls = type(obj)
    if hasattr(cls, "__enter__") and hasattr(cls, "__exit__"):
        return obj
    return _ContextManagerProxy(obj)


class hashing_file:  # lower-case: the original public name
    """A reading wrapper that feeds every byte read into a hash object.

    Parameters
    ----------
    filelike : file-like
        The binary stream to read from; closed when this wrapper is closed.
    hash : hashlib hash object
        Updated with every chunk read, e.g. ``hashlib.sha256()``.

    Attributes
    ----------
    len : int
        The number of bytes read so far.
    """

    def __init__(self, filelike: Any, hash: Any) -> None:
        self.filelike = filelike
        self.hash = hash
        self.len = 0

    def read(self, buffer_size: int | None = -1) -> bytes:
        """Read up to *buffer_size* bytes (all if omitted), updating the hash."""
        data = self.filelike.read(buffer_size)
        self.hash.update(data)
        self.len += len(data)
        return data

    def close(self) -> None:
        """Close the wrapped stream."""
        self.filelike.close()

    def __enter__(self) -> hashing_file:
        return self

    def __exit__(self, *exc_info: Any) -> bool:
        self.close()
        return False


class StoreProgressManager(ProgressManager):
    """A :class:`~encore.events.progress_events.ProgressManager` emitting store events.

    Stores pass ``event_manager=self.event_manager, source=self`` and the
    ``key=``/``metadata=`` of the transfer, which every event carries.
    """

    StartEventType = StoreProgressStartEvent
    StepEventType = StoreProgressStepEvent
    EndEventType = StoreProgressEndEvent


class DummyTransactionContext:
    """A transaction context for stores which have no notion of transactions.

    It is a per-store singleton kept in ``store._transaction``: constructing it
    again for the same store returns the same object.  Entering it returns the
    context itself, exiting it never suppresses exceptions, and it emits no
    events.

    Parameters
    ----------
    store : key-value store instance
        The store that this transaction context is associated with.
    """

    def __new__(cls, store: Any) -> DummyTransactionContext:
        existing = getattr(store, "_transaction", None)
        if type(existing) is cls:
            return existing
        self = super().__new__(cls)
        self.store = store
        store._transaction = self
        return self

    def __init__(self, store: Any) -> None:
        self.store = store

    def __enter__(self) -> DummyTransactionContext:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        return False


_SINGLETON_LOCK = threading.Lock()


class SimpleTransactionContext:
    """A re-entrant transaction manager with begin/commit/rollback semantics.

    Each store has precisely one context object (kept in ``store._transaction``;
    constructing it again returns the same object).  Entering it again from the
    thread that owns the transaction only increases a nesting depth; the
    transaction is committed once, when the outermost block exits.  Another
    thread entering it waits until the owner's outermost block has exited, so
    transactions of one store are serialised.

    On the outermost enter it calls :meth:`begin` and emits
    :class:`~encore.storage.events.StoreTransactionStartEvent`.  While the
    transaction is open, modification events for the store are held back:
    events a store reports through
    :meth:`~encore.storage.abstract_store.AbstractReadOnlyStore._emit_modification`
    are queued directly, and events emitted straight on the event manager are
    captured by a highest-priority listener.  On the outermost exit it calls
    :meth:`commit` (or :meth:`rollback` if the block raised), emits
    :class:`~encore.storage.events.StoreTransactionEndEvent` with
    ``state='done'`` or ``'failed'``, then re-emits the held events in their
    original order.  After a rollback they are dropped, unless the store has no
    ``_rollback_transaction`` hook: then its writes were not undone, so the
    events are still delivered.  Exceptions are never suppressed; entering
    returns None, as in the original.

    Parameters
    ----------
    store : key-value store instance
        The store that this transaction context is associated with.
    """

    def __new__(cls, store: Any) -> SimpleTransactionContext:
        with _SINGLETON_LOCK:
            existing = getattr(store, "_transaction", None)
            if isinstance(existing, cls):
                return existing
            self = super().__new__(cls)
            self.store = store
            self._lock = threading.RLock()
            self._owner: int | None = None
            self._depth = 0
            self._events: list[Any] = []
            self._pending_notes: dict[int, str | None] = {}
            self.notes: str | None = None
            store._transaction = self
            return self

    def __init__(self, store: Any) -> None:
        # All state is set once in __new__; re-construction returns the singleton.
        pass

    @property
    def active(self) -> bool:
        """Whether the calling thread is inside this transaction."""
        return self._owner == threading.get_ident()

    def begin(self) -> None:
        """Begin a transaction by calling the store's ``_begin_transaction``, if any."""
        hook = getattr(self.store, "_begin_transaction", None)
        if hook is not None:
            hook()

    def commit(self) -> None:
        """Commit a transaction by calling the store's ``_commit_transaction``, if any."""
        hook = getattr(self.store, "_commit_transaction", None)
        if hook is not None:
            hook()

    def rollback(self) -> None:
        """Roll back a transaction by calling the store's ``_rollback_transaction``, if any."""
        hook = getattr(self.store, "_rollback_transaction", None)
        if hook is not None:
            hook()

    def set_notes(self, notes: str | None) -> None:
        """Record the notes for the calling thread's next outermost transaction."""
        if not self.active:
            self._pending_notes[threading.get_ident()] = notes

    def queue_event(self, event: Any) -> None:
        """Hold a modification event until the outermost transaction commits."""
        self._events.append(event)

    def _capture(self, event: Any) -> None:
        # Listener for events emitted straight on the manager by the store.
        if self.active:
            self._events.append(event)
            event.mark_as_handled()

    def __enter__(self) -> None:
        self._lock.acquire()
        self._depth += 1
        if self._depth > 1:
            return None
        try:
            self._owner = threading.get_ident()
            self.notes = self._pending_notes.pop(self._owner, None)
            self._events = []
            self.begin()
        except BaseException:
            self._owner = None
            self._depth -= 1
            self._lock.release()
            raise
        manager = self.store.event_manager
        manager.emit(StoreTransactionStartEvent(self.store, notes=self.notes))
        manager.connect(
            StoreModificationEvent, self._capture, filter={"source": self.store},
            priority=sys.maxsize,
        )
        return None

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        self._depth -= 1
        if self._depth > 0:
            self._lock.release()
            return False
        manager = self.store.event_manager
        events, self._events = self._events, []
        try:
            try:
                if exc_type is None:
                    self.commit()
                    state = "done"
                else:
                    self.rollback()
                    state = "failed"
            except BaseException:
                state = "failed"
                try:
                    self.rollback()
                finally:
                    manager.emit(StoreTransactionEndEvent(self.store, state=state))
                raise
            manager.emit(StoreTransactionEndEvent(self.store, state=state))
        finally:
            try:
                manager.disconnect(StoreModificationEvent, self._capture)
            except KeyError:
                pass
            self._owner = None
            self.notes = None
            self._lock.release()
        if state == "done" or not hasattr(self.store, "_rollback_transaction"):
            for event in events:
                event._handled = False
                manager.emit(event)
        return False
