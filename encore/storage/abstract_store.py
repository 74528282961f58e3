"""The key-value store API: abstract base classes every store derives from.

A store maps string keys to values made of a binary data stream and a
metadata dictionary.  :class:`AbstractReadOnlyStore` is the reading half of
the API, :class:`AbstractStore` adds writing, and
:class:`AbstractAuthorizingStore` adds per-key permissions.  :class:`Value` is
what :meth:`~AbstractReadOnlyStore.get` returns.

Writing a store
---------------
The base classes are real :class:`abc.ABC` classes.  A concrete store
implements only the primitives marked ``@abstractmethod``; every other method
of the API is a template method implemented here once, on top of those
primitives, and a store overrides one only when it can do the same job faster
(for example a SQL store answering :meth:`~AbstractReadOnlyStore.query_keys`
with ``SELECT``).  An override keeps the documented signature, behaviour,
exceptions and events, and may use a one-line docstring.

A read-only store (subclass :class:`AbstractReadOnlyStore`) must implement:

``get(key) -> Value``
    Return a :class:`Value` (often a :class:`~encore.storage.string_value.StringValue`
    or :class:`~encore.storage.file_value.FileValue`); raise ``KeyError(key)``
    if the key is missing.  Start with ``check_key(key)``.
``query(select=None, **kwargs) -> iterator of (key, metadata)``
    Yield every key whose metadata matches all of ``kwargs`` (exact
    equality), with its metadata projected by ``select``.  With no ``kwargs``
    it yields every key.  The helpers :func:`metadata_matches` and
    :func:`select_metadata` do the matching and the projection.

A writable store (subclass :class:`AbstractStore`) must also implement:

``set(key, value, buffer_size=DEFAULT_BUFFER_SIZE)``
    Store a value given as a :class:`Value` or a ``(stream, metadata)`` tuple.
    Start with ``check_key(key)`` and ``data, metadata, size =
    self._unpack_value(value)`` (validates both, copies the metadata), read
    the stream with ``self._iter_chunks(key, data, metadata, size,
    buffer_size)`` (emits progress events), publish the value so a failure
    leaves the old value intact, then call ``self._notify_set(key, metadata,
    existed)``.  Do not close the caller's stream.
``delete(key)``
    Remove the key; raise ``KeyError(key)`` if it is missing; then call
    ``self._notify_delete(key, old_metadata)``.

Everything else has a working default here:

* reading: ``exists`` (from ``get``), ``get_data``/``get_metadata``/
  ``get_data_range`` (from ``get`` and :meth:`Value.range`), the ``multiget*``
  methods, ``query_keys`` (from ``query``), ``glob`` (from ``query_keys``,
  case-sensitive), ``to_file`` (streams into a temporary file in the target
  directory and renames it into place) and ``to_bytes``;
* writing: ``set_data`` (keeps the existing metadata, ``{}`` for a new key),
  ``set_metadata`` (keeps the existing data, empty for a new key),
  ``update_metadata`` (merge, then ``set_metadata``), the ``multiset*`` and
  ``multiupdate_metadata`` methods (each one transaction), ``from_file`` and
  ``from_bytes`` (through ``set_data``; they leave metadata alone);
* lifecycle: ``connect``/``disconnect``/``is_connected`` track a flag, and
  ``info()`` reports ``{'readonly': ...}``;
* ``transaction(notes)`` returns the store's
  :class:`~encore.storage.utils.SimpleTransactionContext`.

Overriding for speed is typical for ``get_data``, ``get_metadata``,
``exists``, ``query_keys``, ``set_data``, ``set_metadata``,
``update_metadata``, ``multiset`` (a bulk insert), ``from_file``/``to_file``
(a file copy) and ``to_bytes``.

Events
    Every store has an ``event_manager`` attribute: the one passed to
    ``AbstractReadOnlyStore.__init__(event_manager=None)``, else the global
    manager from :func:`encore.events.api.get_event_manager`.  All events go
    to ``self.event_manager``, with the store as ``source``.  Report a change
    with ``self._notify_set(key, metadata, existed)`` (emits
    :class:`~encore.storage.events.StoreSetEvent` for a new key,
    :class:`~encore.storage.events.StoreUpdateEvent` for an existing one) or
    ``self._notify_delete(key, metadata)``; these go through
    ``self._emit_modification(event)``, which holds events back while the
    calling thread is inside a transaction and delivers them after it commits.
    Call them only once the change is visible to readers.  Progress events
    come from ``self._progress(message, key=..., metadata=..., steps=...)``, a
    :class:`~encore.storage.utils.StoreProgressManager` bound to the store's
    manager; ``_iter_chunks`` uses it for you.  A transfer that fits in one
    buffer emits no progress events; a longer one emits Start, a Step per
    buffer (``step`` = bytes so far) and End.

Transactions
    ``transaction(notes)`` returns ``SimpleTransactionContext(self)``: it is
    re-entrant, serialises transactions between threads, emits
    :class:`~encore.storage.events.StoreTransactionStartEvent` and
    :class:`~encore.storage.events.StoreTransactionEndEvent`, and releases held
    modification events after a commit.  To make transactions atomic, a store
    defines the hooks ``_begin_transaction()``, ``_commit_transaction()`` and
    ``_rollback_transaction()`` (called once, for the outermost block, by the
    owning thread) -- the context finds them by name.  A store without a
    ``_rollback_transaction`` hook cannot undo writes, so its events are
    delivered even when the block fails.  A store that wants no transaction
    semantics at all may return
    :class:`~encore.storage.utils.DummyTransactionContext` instead.

Bad input
    A non-``str`` key raises :class:`TypeError` (:func:`check_key`); metadata
    that is not a dict raises :class:`TypeError` (:func:`check_metadata`); data
    that is not a readable binary stream raises :class:`TypeError` before
    anything is written.  Read-only stores raise :class:`ReadOnlyStoreError`
    when a write method is looked up.

Testing
    Subclass the mixins in :mod:`encore.storage.tests.abstract_test`.
"""

from __future__ import annotations

import copy
import fnmatch
import io
import os
import re
import tempfile
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from .events import StoreDeleteEvent, StoreSetEvent, StoreUpdateEvent
from .utils import (
    DEFAULT_BUFFER_SIZE,
    SimpleTransactionContext,
    StoreProgressManager,
    buffer_iterator,
    check_readable_stream,
)

__all__ = [
    "StoreError",
    "AuthorizationError",
    "ReadOnlyStoreError",
    "Value",
    "AbstractReadOnlyStore",
    "AbstractStore",
    "AbstractAuthorizingStore",
    "DEFAULT_BUFFER_SIZE",
    "check_key",
    "check_metadata",
    "copy_metadata",
    "metadata_matches",
    "select_metadata",
]


class StoreError(RuntimeError):
    """Base class for errors raised by key-value stores."""


class AuthorizationError(StoreError):
    """Raised when the user is not allowed to perform an operation."""


class ReadOnlyStoreError(StoreError, AttributeError):
    """Raised when a write method is looked up on a read-only store.

    It is also an :class:`AttributeError`, so ``hasattr(store, 'set')`` stays
    False for read-only stores, as in the original API.

    .. versionadded:: 1.0
    """


# ---------------------------------------------------------------------------
# Validation and metadata helpers shared by every store.

_IMMUTABLE_SCALARS = frozenset({str, int, float, bool, type(None), bytes})
_KNOWN_BINARY_STREAMS = frozenset({io.BytesIO, io.BufferedReader, io.BufferedRandom})


def check_key(key: Any) -> None:
    """Raise :class:`TypeError` unless *key* is a ``str``."""
    if type(key) is not str and not isinstance(key, str):
        raise TypeError(f"store keys must be str, not {type(key).__name__}: {key!r}")


def check_metadata(metadata: Any) -> None:
    """Raise :class:`TypeError` unless *metadata* is a dict (a :class:`Mapping`)."""
    if type(metadata) is not dict and not isinstance(metadata, Mapping):
        raise TypeError(f"metadata must be a dict, not {type(metadata).__name__}")


def copy_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Return an independent copy of a metadata dictionary.

    Scalar values are shared (they are immutable); any container value makes
    the copy deep, so a caller mutating a nested list cannot change a store.
    """
    for value in metadata.values():
        if type(value) not in _IMMUTABLE_SCALARS:
            return copy.deepcopy(dict(metadata))
    return dict(metadata)


def metadata_matches(metadata: Mapping[str, Any], criteria: Mapping[str, Any]) -> bool:
    """Whether *metadata* has every key of *criteria* with an equal value."""
    for name, wanted in criteria.items():
        if name not in metadata or metadata[name] != wanted:
            return False
    return True


def select_metadata(metadata: Mapping[str, Any], select: Iterable[str] | None) -> dict[str, Any]:
    """Project a metadata dict onto the names in *select* (all of it if None).

    Names missing from *metadata* are silently left out.  The result is a
    copy.
    """
    if select is None:
        return copy_metadata(metadata)
    if isinstance(select, str):
        raise TypeError("select must be an iterable of metadata names, not a str")
    return copy_metadata({name: metadata[name] for name in select if name in metadata})


def _check_range(start: int | None, end: int | None) -> None:
    for name, bound in (("start", start), ("end", end)):
        if bound is None:
            continue
        if not isinstance(bound, int) or isinstance(bound, bool):
            raise TypeError(f"{name} must be an int or None, not {type(bound).__name__}")
        if bound < 0:
            raise ValueError(f"{name} must not be negative, got {bound}")


# ---------------------------------------------------------------------------
# Values


class Value(ABC):
    """Abstract base class for the values returned by key-value stores.

    A value holds a binary data stream and a metadata dictionary, and does not
    have to open either until asked.

    Attributes
    ----------
    size : int or None
        The size of the data in bytes, or None if a continuous stream or unknown.
    created : float or None
        The creation time of the key, as a UTC timestamp in seconds after the
        Unix Epoch.
    modified : float or None
        The modification time of the key, as a UTC timestamp in seconds after
        the Unix Epoch.

    Notes
    -----
    For backwards compatibility a value also behaves as the 2-tuple
    ``(data, metadata)``: ``data, metadata = store.get(key)`` works, with a
    :class:`DeprecationWarning`.  Use ``value.data`` and ``value.metadata``.
    """

    # A slot (not a dict entry) so subclasses may use __slots__ for speed.
    __slots__ = ("_entered_data",)

    size: int | None = None
    created: float | None = None
    modified: float | None = None

    @property
    @abstractmethod
    def data(self) -> Any:
        """The byte stream of data contained in the value (a readable file-like object)."""

    @property
    @abstractmethod
    def metadata(self) -> dict[str, Any]:
        """The metadata dictionary of the value (a copy the caller may mutate)."""

    @property
    def permissions(self) -> dict[str, set[str]]:
        """The permissions dictionary of the value.

        This is only available if the user has ownership privileges for the
        key; the default raises :class:`AuthorizationError`.
        """
        raise AuthorizationError("key not owned by user")

    @abstractmethod
    def range(self, start: int | None = None, end: int | None = None) -> Any:
        """Return a stream of the bytes ``start <= i < end`` of the data.

        ``start`` is inclusive and ``end`` exclusive, counted from 0; None
        means the beginning or the end of the data.
        """

    def iterdata(
        self, buffer_size: int = DEFAULT_BUFFER_SIZE, progress: Any = None
    ) -> Iterator[bytes]:
        """Return an iterator over the data stream, *buffer_size* bytes at a time."""
        return buffer_iterator(self.data, buffer_size, progress)

    def __enter__(self) -> Any:
        """Return the data stream; leaving the block closes it."""
        self._entered_data = self.data
        return self._entered_data

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        data = getattr(self, "_entered_data", None)
        if data is not None:
            del self._entered_data
            data.close()
        return False

    # The deprecated 2-tuple protocol: (data, metadata).
    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> Any:
        warnings.warn(
            "Treating a Value as a (data, metadata) tuple is deprecated; "
            "use value.data and value.metadata",
            DeprecationWarning,
            stacklevel=2,
        )
        if index == 0 or index == -2:
            return self.data
        if index == 1 or index == -1:
            return self.metadata
        raise IndexError("Value index out of range")

    def __iter__(self) -> Iterator[Any]:
        warnings.warn(
            "Unpacking a Value as a (data, metadata) tuple is deprecated; "
            "use value.data and value.metadata",
            DeprecationWarning,
            stacklevel=2,
        )
        yield self.data
        yield self.metadata


# ---------------------------------------------------------------------------
# Stores

_WRITE_METHODS = frozenset(
    {
        "set", "set_data", "set_metadata", "update_metadata", "delete",
        "multiset", "multiset_data", "multiset_metadata", "multiupdate_metadata",
        "from_file", "from_bytes", "transaction",
    }
)


class AbstractReadOnlyStore(ABC):
    """Abstract base class for the read-only key-value store API.

    See the module documentation, "Writing a store", for what a subclass
    implements.  Instances are safe to share between threads as far as the
    concrete store says so; the defaults here keep no state of their own
    besides the connection flag.

    Parameters
    ----------
    event_manager : BaseEventManager, optional
        The event manager the store emits on; the global one by default.

    Attributes
    ----------
    event_manager : BaseEventManager
        Every store has one; assign another to redirect all its events.
    """

    #: Class-level defaults so subclasses that skip ``__init__`` still work.
    _connected = False
    _transaction: Any = None

    def __init__(self, event_manager: Any = None) -> None:
        if event_manager is None:
            from encore.events.api import get_event_manager

            event_manager = get_event_manager()
        self.event_manager = event_manager
        self._connected = False
        self._transaction = None

    def __getattr__(self, name: str) -> Any:
        # Only reached for missing attributes: a clear error for writes on a
        # read-only store, a normal AttributeError otherwise.
        if name in _WRITE_METHODS and not isinstance(self, AbstractStore):
            raise ReadOnlyStoreError(f"{type(self).__name__} is read-only: it has no {name}()")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # -- lifecycle ---------------------------------------------------------

    def connect(self, credentials: Any = None) -> None:
        """Connect to the key-value store, optionally with authentication.

        This creates or connects to any long-lived resources the store needs.

        Parameters
        ----------
        credentials : object, optional
            Implementation-specific credentials, e.g. a ``(username,
            password)`` tuple.  The default implementation ignores them.

        Raises
        ------
        AuthorizationError
            If the credentials are not valid.
        """
        self._connected = True

    def disconnect(self) -> None:
        """Disconnect from the key-value store and release long-lived resources."""
        self._connected = False

    def is_connected(self) -> bool:
        """Whether or not the store is currently connected."""
        return self._connected

    def info(self) -> dict[str, Any]:
        """Return a dictionary of information about the store (``readonly`` at least)."""
        return {"readonly": not isinstance(self, AbstractStore)}

    # -- primitives --------------------------------------------------------

    @abstractmethod
    def get(self, key: str) -> Value:
        """Retrieve a stream of data and metadata from a given key in the store.

        Parameters
        ----------
        key : str
            The key for the resource in the key-value store.

        Returns
        -------
        value : Value
            Holds references to the data, metadata and other information
            about the key.

        Raises
        ------
        KeyError
            If the key is not found in the store.
        TypeError
            If the key is not a str.
        """

    @abstractmethod
    def query(
        self, select: Iterable[str] | None = None, **kwargs: Any
    ) -> Iterator[tuple[str, dict]]:
        """Query for keys and metadata matching metadata provided as keyword arguments.

        This returns precise matches with the metadata.  With no keyword
        arguments it returns every key of the store.

        Parameters
        ----------
        select : iterable of str, optional
            If given, the metadata dictionaries only have values for these
            names (names missing from a key's metadata are left out).
        **kwargs
            Metadata names and the values they must equal.

        Returns
        -------
        result : iterable of tuple
            ``(key, metadata)`` pairs.
        """

    # -- derived reading operations ---------------------------------------

    def exists(self, key: str) -> bool:
        """Test whether or not a key exists in the key-value store."""
        check_key(key)
        try:
            self.get(key)
        except KeyError:
            return False
        return True

    def get_data(self, key: str) -> Any:
        """Retrieve a stream from a given key in the key-value store.

        Returns
        -------
        data : file-like
            A readable, closable file-like object, usable with ``with``.

        Raises
        ------
        KeyError
            If the key is not present in the store.
        """
        check_key(key)
        return self.get(key).data

    def get_data_range(self, key: str, start: int | None = None, end: int | None = None) -> Any:
        """Retrieve a partial stream from a given key in the key-value store.

        Parameters
        ----------
        key : str
            The key for the resource in the key-value store.
        start : int or None
            The first byte to return (inclusive); None is the beginning.
        end : int or None
            The byte to stop before (exclusive); None is the end of the data.

        Returns
        -------
        data : file-like
            A readable file-like object of the bytes ``start <= i < end``.

        Raises
        ------
        KeyError
            If the key is not present in the store.
        """
        check_key(key)
        _check_range(start, end)
        return self.get(key).range(start, end)

    def get_metadata(self, key: str, select: Iterable[str] | None = None) -> dict[str, Any]:
        """Retrieve the metadata for a given key in the key-value store.

        Parameters
        ----------
        key : str
            The key for the resource in the key-value store.
        select : iterable of str, optional
            Which metadata names to return; all of them if None.  Names not
            present in the metadata are left out of the result.

        Returns
        -------
        metadata : dict
            A copy the caller may mutate.

        Raises
        ------
        KeyError
            If the key is not present in the store.
        """
        check_key(key)
        metadata = self.get(key).metadata
        if select is None:
            return metadata
        return select_metadata(metadata, select)

    def multiget(self, keys: Iterable[str]) -> Iterator[Value]:
        """Retrieve the data and metadata for a collection of keys.

        Returns
        -------
        result : iterator of Value
            In the order of *keys*; each value unpacks as ``(data, metadata)``.

        Raises
        ------
        KeyError
            While iterating, if a key is not present in the store.
        """
        for key in keys:
            yield self.get(key)

    def multiget_data(self, keys: Iterable[str]) -> Iterator[Any]:
        """Retrieve the data streams for a collection of keys, in order."""
        for key in keys:
            yield self.get_data(key)

    def multiget_metadata(
        self, keys: Iterable[str], select: Iterable[str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Retrieve the metadata for a collection of keys, in order, projected by *select*."""
        if select is not None:
            select = list(select)
        for key in keys:
            yield self.get_metadata(key, select)

    def query_keys(self, **kwargs: Any) -> Iterator[str]:
        """Query for keys whose metadata matches the keyword arguments.

        Equivalent to the keys of ``self.query(**kwargs)``; with no arguments
        it returns every key of the store.
        """
        for key, _ in self.query(**kwargs):
            yield key

    def glob(self, pattern: str) -> Iterator[str]:
        """Return the keys which match a glob-style pattern (case-sensitively).

        ``*`` matches any run of characters, including ``/``; ``?`` one
        character; ``[seq]`` one character of a set.
        """
        if not isinstance(pattern, str):
            raise TypeError(f"pattern must be a str, not {type(pattern).__name__}")
        match = re.compile(fnmatch.translate(pattern), re.DOTALL).match
        for key in self.query_keys():
            if match(key):
                yield key

    def to_file(
        self, key: str, path: str | os.PathLike, buffer_size: int = DEFAULT_BUFFER_SIZE
    ) -> None:
        """Efficiently store the data associated with a key into a file.

        The data is streamed, *buffer_size* bytes at a time, into a temporary
        file next to *path*, which then replaces *path*: a missing key or a
        failure leaves *path* untouched.

        Parameters
        ----------
        key : str
            The key for the resource in the key-value store.
        path : str or path-like
            A file system path to store the data to.
        buffer_size : int
            The number of bytes to move at a time (1 MiB by default).

        Events
        ------
        StoreProgressStartEvent, StoreProgressStepEvent, StoreProgressEndEvent
            For transfers longer than one buffer.
        """
        check_key(key)
        path = os.fspath(path)
        value = self.get(key)
        directory = os.path.dirname(os.path.abspath(path))
        fd, tmp_path = tempfile.mkstemp(prefix=".encore-", suffix=".part", dir=directory)
        try:
            with value.data as data, open(fd, "wb") as out:
                message = f"Saving key {key!r} to file {path!r}"
                for chunk in self._iter_chunks(key, data, None, value.size, buffer_size, message):
                    out.write(chunk)
            os.replace(tmp_path, path)
        except BaseException:
            try:
                os.unlink(tmp_path)
            except FileNotFoundError:
                pass
            raise

    def to_bytes(self, key: str, buffer_size: int = DEFAULT_BUFFER_SIZE) -> bytes:
        """Efficiently store the data associated with a key into a bytes object.

        Events
        ------
        StoreProgressStartEvent, StoreProgressStepEvent, StoreProgressEndEvent
            For transfers longer than one buffer.
        """
        check_key(key)
        value = self.get(key)
        with value.data as data:
            message = f"Reading key {key!r}"
            return b"".join(self._iter_chunks(key, data, None, value.size, buffer_size, message))

    # -- helpers for concrete stores --------------------------------------

    def _progress(self, message: str, key: str | None = None, metadata: Any = None,
                  steps: int = -1) -> StoreProgressManager:
        """Return a progress manager emitting on this store's event manager."""
        return StoreProgressManager(
            event_manager=self.event_manager, source=self, message=message,
            steps=steps, key=key, metadata=metadata,
        )

    def _iter_chunks(self, key: str, data: Any, metadata: Any, size: int | None,
                     buffer_size: int = DEFAULT_BUFFER_SIZE,
                     message: str | None = None) -> Iterator[bytes]:
        """Yield *data* in chunks of *buffer_size* bytes, emitting progress events.

        A stream that fits in one chunk emits no progress events; a longer one
        emits Start (``steps`` = *size* or -1), a Step after each chunk with
        the number of bytes so far, and End (``exit_state='exception'`` if the
        consumer fails).  Raises :class:`TypeError` if the stream yields text.
        """
        if buffer_size is None or buffer_size <= 0:
            buffer_size = DEFAULT_BUFFER_SIZE
        chunks = buffer_iterator(data, buffer_size)
        first = next(chunks, None)
        if first is None:
            return
        # Read one chunk ahead: a value that fits in one buffer (the common,
        # small case) is moved without the cost of four progress events.
        second = next(chunks, None)
        if second is None:
            yield first
            return
        if message is None:
            message = f"Transferring key {key!r}"
        steps = -1 if size is None else size
        with self._progress(message, key=key, metadata=metadata, steps=steps) as progress:
            total = len(first)
            progress.step(message=f"{message} ({total} bytes)", step=total)
            yield first
            chunk = second
            while chunk is not None:
                total += len(chunk)
                progress.step(message=f"{message} ({total} bytes)", step=total)
                yield chunk
                chunk = next(chunks, None)

    def _emit_modification(self, event: Any) -> None:
        """Emit a modification event, or hold it if this thread is in a transaction."""
        transaction = self._transaction
        if transaction is not None and getattr(transaction, "active", False):
            transaction.queue_event(event)
        else:
            self.event_manager.emit(event)

    def _notify_set(self, key: str, metadata: dict[str, Any], existed: bool) -> None:
        """Report that *key* was written: StoreUpdateEvent if it *existed*, else StoreSetEvent."""
        event_class = StoreUpdateEvent if existed else StoreSetEvent
        self._emit_modification(event_class(self, key=key, metadata=metadata))

    def _notify_delete(self, key: str, metadata: dict[str, Any] | None) -> None:
        """Report that *key* was deleted; *metadata* is its last metadata."""
        self._emit_modification(StoreDeleteEvent(self, key=key, metadata=metadata))


class AbstractStore(AbstractReadOnlyStore):
    """Abstract base class for the writable key-value store API.

    See the module documentation, "Writing a store", for what a subclass
    implements: ``get``, ``query``, ``set`` and ``delete``.
    """

    # -- primitives --------------------------------------------------------

    @abstractmethod
    def set(self, key: str, value: Any, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Store a stream of data and its metadata into a given key.

        Parameters
        ----------
        key : str
            The key for the resource in the key-value store.
        value : Value or tuple
            The data stream and the metadata to store, as a :class:`Value` or
            a ``(file-like, dict)`` pair.  The stream is read
            to its end and not closed; the metadata is copied.
        buffer_size : int
            The number of bytes to read at a time (1 MiB by default);
            implementations may ignore this hint.

        Raises
        ------
        TypeError
            If the key is not a str, the metadata not a dict, or the data not
            a readable binary stream; nothing is written.

        Events
        ------
        StoreProgressStartEvent, StoreProgressStepEvent, StoreProgressEndEvent
            For transfers longer than one buffer.
        StoreSetEvent or StoreUpdateEvent
            After the value is stored (after the commit, inside a transaction),
            with the key and metadata; Update when the key existed.
        """

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete a key from the store.

        Raises
        ------
        KeyError
            If the key is not present in the store.

        Events
        ------
        StoreDeleteEvent
            After the key is deleted, with the key and its last metadata.
        """

    # -- derived writing operations ---------------------------------------

    def set_data(self, key: str, data: Any, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Replace the data for a given key, keeping its metadata.

        A missing key is created with empty metadata.

        Parameters
        ----------
        key : str
            The key for the resource in the key-value store.
        data : file-like
            A readable binary stream providing the new data.
        buffer_size : int
            The number of bytes to read at a time.

        Events
        ------
        StoreProgressStartEvent, StoreProgressStepEvent, StoreProgressEndEvent
            For transfers longer than one buffer.
        StoreSetEvent or StoreUpdateEvent
            With the key and its metadata.
        """
        check_key(key)
        check_readable_stream(data)
        try:
            metadata = self.get_metadata(key)
        except KeyError:
            metadata = {}
        self.set(key, (data, metadata), buffer_size)

    def set_metadata(self, key: str, metadata: dict[str, Any]) -> None:
        """Replace the metadata for a given key, keeping its data.

        A missing key is created with empty data.

        Events
        ------
        StoreSetEvent or StoreUpdateEvent
            With the key and the new metadata.
        """
        check_key(key)
        check_metadata(metadata)
        try:
            data = self.get_data(key)
        except KeyError:
            data = io.BytesIO(b"")
        with data:
            self.set(key, (data, metadata))

    def update_metadata(self, key: str, metadata: dict[str, Any]) -> None:
        """Update the metadata for a given key, like :meth:`dict.update`.

        Raises
        ------
        KeyError
            If the key is not present in the store.

        Events
        ------
        StoreUpdateEvent
            With the key and the merged metadata.
        """
        check_key(key)
        check_metadata(metadata)
        merged = self.get_metadata(key)
        merged.update(metadata)
        self.set_metadata(key, merged)

    def multiset(self, keys: Iterable[str], values: Iterable[Any],
                 buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Set the data and metadata for a collection of keys, in one transaction.

        Like :func:`zip`, excess keys or values are ignored.  *keys* and
        *values* may be one-shot iterators.
        """
        with self.transaction("Setting multiple keys"):
            for key, value in zip(keys, values, strict=False):
                self.set(key, value, buffer_size)

    def multiset_data(self, keys: Iterable[str], datas: Iterable[Any],
                      buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Set the data for a collection of keys, in one transaction."""
        with self.transaction("Setting data of multiple keys"):
            for key, data in zip(keys, datas, strict=False):
                self.set_data(key, data, buffer_size)

    def multiset_metadata(self, keys: Iterable[str], metadatas: Iterable[dict[str, Any]]) -> None:
        """Set the metadata for a collection of keys, in one transaction."""
        with self.transaction("Setting metadata of multiple keys"):
            for key, metadata in zip(keys, metadatas, strict=False):
                self.set_metadata(key, metadata)

    def multiupdate_metadata(self, keys: Iterable[str],
                             metadatas: Iterable[dict[str, Any]]) -> None:
        """Update the metadata for a collection of keys, in one transaction."""
        with self.transaction("Updating metadata of multiple keys"):
            for key, metadata in zip(keys, metadatas, strict=False):
                self.update_metadata(key, metadata)

    def from_file(self, key: str, path: str | os.PathLike,
                  buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Efficiently read data from a file into a key; metadata is left alone.

        Raises
        ------
        OSError
            If the file cannot be read; the key is unchanged.
        """
        check_key(key)
        with open(path, "rb") as data:
            self.set_data(key, data, buffer_size)

    def from_bytes(self, key: str, data: bytes, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Efficiently store a bytes object as the data of a key; metadata is left alone.

        Raises
        ------
        TypeError
            If *data* is not bytes-like (e.g. a str).
        """
        check_key(key)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be bytes, not {type(data).__name__}")
        self.set_data(key, io.BytesIO(data), buffer_size)

    def transaction(self, notes: str | None = None) -> SimpleTransactionContext:
        """Provide a re-entrant transaction context manager.

        ``with store.transaction("notes"):`` commits when the block exits
        normally and rolls back if it raises (for stores with rollback
        hooks).  Nested blocks join the outermost one.

        Events
        ------
        StoreTransactionStartEvent
            On entry into the outermost block.
        StoreTransactionEndEvent
            When the outermost block ends, before any Set or Delete events.
        StoreSetEvent, StoreUpdateEvent, StoreDeleteEvent
            After a successful commit, for every change made in the block.
        """
        context = SimpleTransactionContext(self)
        context.set_notes(notes)
        return context

    # -- helpers for concrete stores --------------------------------------

    @staticmethod
    def _unpack_value(value: Any) -> tuple[Any, dict[str, Any], int | None]:
        """Validate a ``set`` argument; return ``(stream, metadata copy, size or None)``.

        Raises
        ------
        TypeError
            If *value* is neither a Value nor a ``(stream, dict)`` pair, or if
            its parts have the wrong types.
        """
        # Exact-type checks first: ABC isinstance checks are slow, and this
        # runs on every set.
        if type(value) is tuple and len(value) == 2:
            data, metadata = value
            size = None
        elif isinstance(value, Value):
            data = value.data
            metadata = value.metadata
            size = value.size
        elif isinstance(value, tuple) and len(value) == 2:
            data, metadata = value
            size = None
        else:
            raise TypeError(
                "value must be a Value or a (data stream, metadata dict) tuple, "
                f"not {type(value).__name__}"
            )
        if type(data) not in _KNOWN_BINARY_STREAMS:
            check_readable_stream(data)
        if type(metadata) is not dict:
            check_metadata(metadata)
        return data, copy_metadata(metadata), size


class AbstractAuthorizingStore(AbstractStore):
    """Abstract base class for writable stores with per-key permissions.

    Permission information is available only to authenticated users who own
    a key.  Permissions are strings naming a right the store allows (``owned``
    is the only required one); each maps to the set of tags (users, groups or
    roles) granted it.  Subclasses implement :attr:`user_tag`,
    :meth:`get_permissions` and :meth:`set_permissions` besides the
    :class:`AbstractStore` primitives.
    """

    @property
    @abstractmethod
    def user_tag(self) -> str:
        """A tag that represents the user."""

    @abstractmethod
    def get_permissions(self, key: str) -> dict[str, set[str]]:
        """Return the permissions of a key the user owns.

        Raises
        ------
        KeyError
            If the key does not exist or the user is not authorized to see it.
        AuthorizationError
            If the user may see the key but is not an owner.
        """

    @abstractmethod
    def set_permissions(self, key: str, permissions: dict[str, set[str]]) -> None:
        """Set the permissions on a key the user owns (``owned`` needs a tag).

        Raises
        ------
        KeyError
            If the key does not exist or the user is not authorized to see it.
        AuthorizationError
            If the user may see the key but is not an owner.
        """

    def update_permissions(self, key: str, permissions: dict[str, set[str]]) -> None:
        """Add tags to the permissions of a key the user owns.

        Raises
        ------
        KeyError
            If the key does not exist or the user is not authorized to see it.
        AuthorizationError
            If the user may see the key but is not an owner.
        """
        check_key(key)
        current = {name: set(tags) for name, tags in self.get_permissions(key).items()}
        for name, tags in permissions.items():
            current.setdefault(name, set()).update(tags)
        self.set_permissions(key, current)
