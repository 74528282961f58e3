"""A key-value store kept in a table of a sqlite database.

:class:`SqliteStore` keeps each key in one row of a table: the key, its
metadata (as JSON), its creation and modification times, its size and its
data.  A value larger than one chunk (:data:`CHUNK_SIZE`, 1 MiB) keeps its
first chunk in the row and the rest in a companion table, one row per chunk,
so values of any size are written and read in bounded memory.

Metadata names can get *index columns*: one column per metadata name, holding
a normalised form of the value (see "Query semantics" in
:class:`SqliteStore`), with a partial index, so that ``query`` and
``query_keys`` on that name run in SQL instead of scanning.

Layout (``<table>`` is the ``table`` argument)::

    "<table>"         id, key, metadata, created, modified, size, etag, data,
                      and one column "m_<hex of the metadata name>" per index
    "<table>:chunks"  id, n, data      -- chunk n >= 1 of a large value
    index "<table>:m_<hex>"            -- per index column, on (column, key),
                                          for the rows that have the name
    index "<table>:nul-keys"           -- the (rare) keys holding a NUL

Column names are the hex encoding of the metadata name, so any name (quotes,
spaces, unicode, names differing only in case) maps to a distinct, harmless
identifier; the table name only ever reaches SQL double-quoted.

The module registers no sqlite3 adapters or converters and never unpickles:
opening an untrusted database file cannot execute code.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import random
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from fnmatch import translate as _fnmatch_translate
from typing import Any

from .abstract_store import (
    DEFAULT_BUFFER_SIZE,
    AbstractStore,
    StoreError,
    Value,
    _check_range,
    check_key,
    check_metadata,
    copy_metadata,
    metadata_matches,
    select_metadata,
)
from .string_value import StringValue
from .utils import check_readable_stream

__all__ = ["CHUNK_SIZE", "SqliteStore"]

logger = logging.getLogger(__name__)

#: The size of the pieces large values are stored in (1 MiB).  Part of the
#: database format: a database written with one chunk size cannot be read
#: with another.
CHUNK_SIZE = 1048576

#: How many rows a query fetches at a time (results are produced in pages so
#: that a query over a huge table does not hold every row in memory).
_PAGE = 4096

#: How many small values ``multiset`` inserts with one statement.
_BATCH = 500

_SYNCHRONOUS = {"normal": "NORMAL", "full": "FULL", "extra": "EXTRA"}

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1

#: Index values of containers longer than this are replaced by a digest, so
#: large metadata values do not bloat the indexes.
_MAX_INLINE_PROBE = 512

_FIXED_COLUMNS = ("id", "key", "metadata", "created", "modified", "size", "etag", "data")
_CHUNK_COLUMNS = ("id", "n", "data")
_COLUMN_RE = re.compile(r"m_((?:[0-9a-f]{2})*)\Z")


def _quote(identifier: str) -> str:
    """Quote an SQL identifier (doubling any embedded double quote)."""
    return '"' + identifier.replace('"', '""') + '"'


def _column_name(name: str) -> str:
    """The index column of a metadata name: unique, case-proof and harmless."""
    return "m_" + name.encode("utf-8", "surrogatepass").hex()


def _metadata_name(column: str) -> str | None:
    """The metadata name of an index column, or None for any other column."""
    match = _COLUMN_RE.match(column)
    if match is None:
        return None
    try:
        return bytes.fromhex(match.group(1)).decode("utf-8", "surrogatepass")
    except ValueError:
        return None


# ---------------------------------------------------------------------------
# Metadata encoding.
#
# Metadata is stored as JSON.  Every value must therefore be JSON data: str,
# int, float, bool, None, list, tuple (read back as a list) and dicts with str
# keys.  Anything else is rejected up front instead of being silently changed
# (json would turn the int key 1 into "1").

_SCALARS = (str, int, float, bool, type(None))
_json_encode = json.JSONEncoder().encode


def _check_json(value: Any, name: str) -> None:
    if isinstance(value, _SCALARS):
        return
    if isinstance(value, (list, tuple)):
        for item in value:
            _check_json(item, name)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(
                    f"metadata {name!r}: nested dict keys must be str to be stored as "
                    f"JSON, not {type(key).__name__} ({key!r})"
                )
            _check_json(item, name)
        return
    raise TypeError(
        f"metadata {name!r}: values of type {type(value).__name__} cannot be stored by "
        "SqliteStore (metadata is JSON: str, int, float, bool, None, list, tuple, dict)"
    )


def _encode_metadata(metadata: dict[str, Any]) -> str:
    """Validate *metadata* and return its JSON text."""
    for name, value in metadata.items():
        if type(name) is not str and not isinstance(name, str):
            raise TypeError(f"metadata names must be str, not {type(name).__name__} ({name!r})")
        if type(value) not in _SCALARS:
            _check_json(value, name)
    return _json_encode(metadata)


# ---------------------------------------------------------------------------
# Index values ("probes").
#
# An index column holds probe(value), chosen so that two values that are
# equal in Python (1 == 1.0 == True, [1] == [1.0], {'a': 1} == {'a': 1.0})
# always get equal probes.  A SQL equality test on the column is then never
# too strict; where it can be too loose (an int beyond 64 bits compared with a
# float, a NaN, a tuple in the query), the query also re-checks the candidate
# rows with Python ``==``, like DictMemoryStore does.  Type tags keep the
# kinds apart: str is TEXT; integral numbers within 64 bits are INTEGER and
# other finite floats REAL (both compare exactly in SQL); numbers beyond 64
# bits, NaN, None and containers are tagged BLOBs.

_NONE_PROBE = b"n"
_NAN_PROBE = b"f:nan"


def _canonical(value: Any) -> Any:
    """Normalise numbers so that Python-equal containers serialise equally."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        return float(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, (list, tuple)):
        return [_canonical(item) for item in value]
    if isinstance(value, dict):
        return {str.__str__(k): _canonical(v) for k, v in value.items()}
    return value


def _container_exact(value: Any) -> bool:
    """Whether canonical equality of *value* implies Python equality."""
    kind = type(value)
    if kind is list:
        return all(_container_exact(item) for item in value)
    if kind is dict:
        return all(type(k) is str and _container_exact(v) for k, v in value.items())
    if kind is float:
        return not math.isnan(value)
    return kind in (str, int, bool, type(None))


def _probe(value: Any) -> tuple[Any, bool]:
    """Return ``(probe, exact)`` for a metadata value.

    *probe* is None when the value has no index form (then SQL cannot help);
    *exact* says whether equal probes imply equal values.
    """
    kind = type(value)
    if kind is str:
        if value.isascii():
            return value, True
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return b"s:" + value.encode("utf-8", "surrogatepass"), True
        return value, True
    if kind is bool:
        return int(value), True
    if kind is int:
        if _INT64_MIN <= value <= _INT64_MAX:
            return value, True
        try:
            # Equal only to itself and to floats outside the int64 range,
            # which get the same (rounded) probe; the rounding makes it inexact.
            return b"F:" + repr(float(value)).encode("ascii"), False
        except OverflowError:
            # Beyond every float: only equal to the very same int.
            return b"i:" + str(value).encode("ascii"), True
    if kind is float:
        if value.is_integer():
            if _INT64_MIN <= value <= _INT64_MAX:
                return int(value), True
            return b"F:" + repr(value).encode("ascii"), False
        if math.isnan(value):
            return _NAN_PROBE, False
        # Not integral, so never equal to an int: an exact REAL.
        return value, True
    if value is None:
        return _NONE_PROBE, True
    if kind is list or kind is tuple or kind is dict:
        try:
            text = json.dumps(_canonical(value), sort_keys=True, separators=(",", ":"))
        except (TypeError, ValueError):
            # Not JSON data (a query for {1: 'a'}, say): nothing stored equals
            # it in SQL terms, so leave the decision to Python.
            return None, False
        exact = kind is not tuple and _container_exact(value)
        probe = b"j:" + text.encode("ascii")
        if len(probe) > _MAX_INLINE_PROBE:
            probe = b"h:" + hashlib.sha256(probe).digest()
            exact = False
        return probe, exact
    if isinstance(value, (str, int, float, list, tuple, dict)):
        # A subclass: index it as its JSON form, but let Python decide.
        return _probe(_canonical(value))[0], False
    return None, False


def _probes(metadata: dict[str, Any], names: tuple[str, ...]) -> list[Any]:
    """The index column values of *metadata* for the columns of metadata *names*."""
    values = []
    append = values.append
    for name in names:
        if name not in metadata:
            append(None)
            continue
        value = metadata[name]
        kind = type(value)
        # Inline the common exact cases of _probe.
        if (kind is str and value.isascii()) or (
                kind is int and _INT64_MIN <= value <= _INT64_MAX):
            append(value)
        elif kind is bool:
            append(int(value))
        else:
            append(_probe(value)[0])
    return values


def _stored_probe(metadata_json: str | None, name: str) -> Any:
    """SQL function: the probe of metadata *name* in a stored JSON text, or NULL."""
    if metadata_json is None:
        return None
    metadata = json.loads(metadata_json)
    if name not in metadata:
        return None
    return _probe(metadata[name])[0]


# ---------------------------------------------------------------------------
# Glob: a SQL GLOB pattern matching a superset of what fnmatch matches, so the
# key index does the bulk of the work and the exact fnmatch regex the rest.


def _sql_glob(pattern: str) -> str:
    out = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            if not out or out[-1] != "*":
                out.append("*")
        elif c == "?":
            out.append("?")
        elif c == "[":
            # Find the end of the set the way fnmatch.translate does.
            j = i
            if j < n and pattern[j] == "!":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:
                out.append("[[]")  # an unclosed '[' is a literal character
            else:
                out.append("?")  # a set matches exactly one character
                i = j + 1
        elif c == "]":
            out.append("]")
        else:
            out.append(c)
    return "".join(out)


def _glob_regex(pattern: str) -> Any:
    """The exact matcher for a glob pattern, as the abstract store's ``glob`` uses."""
    return re.compile(_fnmatch_translate(pattern), re.DOTALL).match


# ---------------------------------------------------------------------------
# Values and streams for large data.


class _ChunkReader(io.RawIOBase):
    """A read-only stream over bytes ``start <= i < end`` of a stored value.

    It fetches one chunk at a time from the store, each time checking in the
    same SQL statement that the value has not been replaced since the stream
    was opened; if it has, reading raises :class:`StoreError` rather than
    returning a mix of two values.
    """

    def __init__(self, store: SqliteStore, key: str, row_id: int, etag: int,
                 start: int, end: int, first: bytes | None = None) -> None:
        super().__init__()
        self._store = store
        self._key = key
        self._row_id = row_id
        self._etag = etag
        self._start = start
        self._end = max(start, end)
        self._pos = start
        self._chunk_index = 0 if first is not None else -1
        self._chunk = first if first is not None else b""

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos - self._start

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if self.closed:
            raise ValueError("I/O operation on closed file.")
        if whence == io.SEEK_SET:
            position = offset
        elif whence == io.SEEK_CUR:
            position = self.tell() + offset
        elif whence == io.SEEK_END:
            position = self._end - self._start + offset
        else:
            raise ValueError(f"invalid whence ({whence!r})")
        if position < 0:
            raise ValueError(f"negative seek position {position}")
        self._pos = self._start + position
        return position

    def _get_chunk(self, index: int) -> bytes:
        if index != self._chunk_index:
            self._chunk = self._store._read_chunk(self._key, self._row_id, self._etag, index)
            self._chunk_index = index
        return self._chunk

    def read(self, size: int | None = -1) -> bytes:
        if self.closed:
            raise ValueError("I/O operation on closed file.")
        remaining = self._end - self._pos
        if size is None or size < 0 or size > remaining:
            size = remaining
        if size <= 0:
            return b""
        parts = []
        while size > 0:
            index, offset = divmod(self._pos, CHUNK_SIZE)
            chunk = self._get_chunk(index)
            piece = chunk[offset : offset + size] if (offset or size < len(chunk)) else chunk
            if not piece:
                raise StoreError(f"the data of key {self._key!r} is shorter than its size")
            parts.append(piece)
            self._pos += len(piece)
            size -= len(piece)
        if self._pos >= self._end:
            self._chunk = b""  # release the last chunk early
            self._chunk_index = -1
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._chunk = b""
        super().close()


class _SqliteValue(Value):
    """A value larger than one chunk, read lazily from the store."""

    def __init__(self, store: SqliteStore, key: str, row_id: int, etag: int, size: int,
                 metadata: dict[str, Any], created: float, modified: float) -> None:
        self._store = store
        self._key = key
        self._row_id = row_id
        self._etag = etag
        self._metadata = metadata
        self._data: _ChunkReader | None = None
        self.size = size
        self.created = created
        self.modified = modified

    @property
    def data(self) -> _ChunkReader:
        """A stream of the data (the same stream on every access)."""
        if self._data is None:
            self._data = self.range()
        return self._data

    @property
    def metadata(self) -> dict[str, Any]:
        """A copy of the metadata dictionary."""
        return copy_metadata(self._metadata)

    def range(self, start: int | None = None, end: int | None = None) -> _ChunkReader:
        """Return a new stream of the bytes ``start <= i < end``."""
        _check_range(start, end)
        start = 0 if start is None else min(start, self.size)
        end = self.size if end is None else min(end, self.size)
        return _ChunkReader(self._store, self._key, self._row_id, self._etag, start, end)

    def __repr__(self) -> str:
        return f"<SqliteStore value of {self._key!r}: {self.size} bytes>"


# ---------------------------------------------------------------------------
# Checkpoints.


class _Checkpointer:
    """Copies the write-ahead log into the database file from a helper thread.

    In WAL mode every committed page is written twice: to the log, then (by a
    "checkpoint") into the database file.  sqlite normally checkpoints inside
    the ``COMMIT`` that makes the log long, so a writer of a large value
    waits for both copies.  The store turns that off and asks this helper to
    run a passive checkpoint (which never blocks readers or writers) on its
    own connection instead.  The thread stops after a few idle seconds and
    when the store disconnects; closing the last connection to a database
    checkpoints it anyway.
    """

    #: Checkpoint once the log holds more than this many bytes (sqlite's own
    #: default is 1000 pages, about 4 MiB).
    threshold = 4 * 1048576
    #: Seconds without work after which the thread exits.
    idle = 5.0

    def __init__(self, path: str, timeout: float) -> None:
        self.path = path
        self.wal = path + "-wal"
        self.timeout = timeout
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = False

    def maybe_checkpoint(self) -> None:
        """Ask for a checkpoint if the log has grown past the threshold."""
        try:
            if os.stat(self.wal).st_size <= self.threshold:
                return
        except OSError:
            return
        with self._lock:
            if self._stopping:
                return
            self._wake.set()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"SqliteStore checkpoints of {self.path}",
                    daemon=True)
                self._thread.start()

    def stop(self) -> None:
        """Stop the thread, waiting for a checkpoint in progress to finish."""
        with self._lock:
            self._stopping = True
            thread = self._thread
            self._wake.set()
        if thread is not None:
            thread.join(self.timeout + 30.0)

    def _run(self) -> None:
        conn = None
        try:
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None,
                                   check_same_thread=False)
            while True:
                if not self._wake.wait(self.idle):
                    with self._lock:
                        if not self._wake.is_set():
                            self._thread = None
                            return
                with self._lock:
                    self._wake.clear()
                    if self._stopping:
                        self._thread = None
                        return
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except Exception:
            # Nothing is lost: the log is checkpointed by a later attempt or
            # when the last connection closes.
            logger.warning("checkpoint of %s failed", self.path, exc_info=True)
            with self._lock:
                self._thread = None
        finally:
            if conn is not None:
                conn.close()


# ---------------------------------------------------------------------------
# The store.


class SqliteStore(AbstractStore):
    """Sqlite-based store.

    Parameters
    ----------
    location : str or path-like
        The database file, created if missing; ``':memory:'`` (the default)
        is a private in-memory database that lives as long as the connection.
    table : str
        The table holding the keys.  Any string without NUL characters is
        safe; like every sqlite identifier it is case-insensitive, and it
        must not start with ``sqlite_``.  Several stores may share one
        database with different tables.
    index : {'dynamic', 'static', None}
        Which metadata names get an index column.  ``'dynamic'``: every name
        ever written, plus ``index_columns``.  ``'static'``: exactly the names
        in ``index_columns`` get one.  None (or False): no new index columns.  Index
        columns already in the table are always kept up to date by every
        write, whatever the mode, so stores with different modes may share a
        table.
    index_columns : iterable of str, optional
        Metadata names to index.  Missing index columns are added, and
        filled from the existing rows, in one transaction on :meth:`connect`.
    event_manager : BaseEventManager, optional
        The manager the store emits on; the global one by default.
    synchronous : {'normal', 'full', 'extra'}
        The durability of a committed write (see Notes).
    timeout : float
        Seconds a writer waits for another process's write lock before
        failing with "database is locked" (30 by default).

    Attributes
    ----------
    location, table, index
        As given.
    index_columns : set of str
        The metadata names that have an index column (read from the table
        schema on connect, so it includes columns other stores added).

    Notes
    -----
    *Durability.*  Every write is a transaction: a reader, even in another
    process, sees the old value or the new one, never a mix, and a write
    that fails half-way (for example a stream that raises) leaves the key as
    it was.  File databases use write-ahead logging (WAL).  With
    ``synchronous='normal'`` (the default) a committed write survives a crash
    of the writing process, but a power failure or operating-system crash may
    lose the last few committed writes (never corrupting the database).
    ``'full'`` syncs the log to disk at every commit, so a committed write also
    survives a power failure, at the cost of a disk flush per write.
    ``'extra'`` is ``'full'`` plus a directory sync.  ``':memory:'`` stores
    keep nothing.  The log is copied into the database file (a
    "checkpoint") by a helper thread of the store rather than inside the
    writer's commit, so writing a large value costs its writer one copy, not
    two; the thread exits when idle and on :meth:`disconnect`.

    *Threads and processes.*  One store object may be used from any number
    of threads: they share one connection, taking turns.  While a thread is
    inside :meth:`transaction`, other threads' calls wait for it to end.
    Several processes may open the same file (each with its own store):
    writers wait up to ``timeout`` seconds for each other.  The store relies
    on sqlite's file locking, so keep the file on a local disk, not on a
    network file system such as NFS.

    *Streams.*  Values up to :data:`CHUNK_SIZE` come back as
    :class:`io.BytesIO`.  Larger values are streamed chunk by chunk; such a
    stream raises :class:`~encore.storage.abstract_store.StoreError` if the
    key is overwritten or deleted while it is being read, and reads from a
    thread wait while another thread holds a transaction.

    *Query semantics* are those of
    :class:`~encore.storage.dict_memory_store.DictMemoryStore`: a key
    matches when its metadata has every queried name with a value that is
    ``==`` the queried one (so ``1``, ``1.0`` and ``True`` match each other).
    Equality tests on indexed names run in SQL; what SQL cannot decide
    exactly is re-checked in Python.

    *Metadata* is stored as JSON: values must be str, int, float, bool, None,
    lists, tuples (read back as lists) or dicts with str keys; anything else
    raises :class:`TypeError` before anything is written.

    *Keys* are any str that is valid unicode (a lone surrogate raises
    :class:`ValueError`).

    Events: as documented for :class:`~encore.storage.abstract_store.AbstractStore`;
    every write path emits Set/Update/Delete after its commit (after the
    outermost commit inside :meth:`transaction`), and transfers longer than
    one buffer emit progress events.

    .. versionchanged:: 1.0
       Metadata is JSON, not pickle; identifiers are quoted; index columns
       work in every mode and survive reconnection; large values stream.
    """

    def __init__(
        self,
        location: str | os.PathLike = ":memory:",
        table: str = "store",
        index: str | None = "dynamic",
        index_columns: Iterable[str] | None = None,
        *,
        event_manager: Any = None,
        synchronous: str = "normal",
        timeout: float = 30.0,
    ) -> None:
        super().__init__(event_manager)
        if not isinstance(location, str):
            location = os.fspath(location)
            if isinstance(location, bytes):
                location = os.fsdecode(location)
        if not isinstance(table, str) or not table:
            raise TypeError(f"table must be a non-empty str, not {table!r}")
        if "\x00" in table:
            raise ValueError("table name must not contain NUL characters")
        try:
            table.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"table name {table!r} is not valid unicode") from None
        if table.lower().startswith("sqlite_"):
            raise ValueError(f"table names starting with 'sqlite_' are reserved: {table!r}")
        if index in (None, False, ""):
            index = None
        elif index not in ("dynamic", "static"):
            raise ValueError(f"index must be 'dynamic', 'static' or None, not {index!r}")
        if index_columns is None:
            requested: set[str] = set()
        elif isinstance(index_columns, str):
            raise TypeError("index_columns must be an iterable of metadata names, not a str")
        else:
            requested = set(index_columns)
            for name in requested:
                if not isinstance(name, str):
                    raise TypeError(f"index column names must be str, not {name!r}")
        if synchronous not in _SYNCHRONOUS:
            raise ValueError(
                f"synchronous must be one of {sorted(_SYNCHRONOUS)}, not {synchronous!r}"
            )
        self.location = location
        self.table = table
        self.index = index
        self.index_columns: set[str] = set(requested)
        self.synchronous = synchronous
        self.timeout = float(timeout)
        self._requested_columns = frozenset(requested)
        self._conn: sqlite3.Connection | None = None
        self._checkpointer: _Checkpointer | None = None
        self._commits = 0
        self._big_write = False
        # Re-entrant: a transaction's owner holds it from begin to commit.
        self._lock = threading.RLock()
        self._columns: dict[str, str] = {}  # metadata name -> column name
        self._column_order: tuple[str, ...] = ()  # metadata names, in SQL order
        self._schema_version = -1
        self._column_limit_reached = False
        self._sql: dict[str, str] = {}
        t = _quote(table)
        self._t = t
        self._c = _quote(table + ":chunks")

    # -- lifecycle ---------------------------------------------------------

    def connect(self, credentials: Any = None) -> None:
        """Connect to the database and create the tables if needed.

        Sqlite has no notion of authentication, so *credentials* are ignored.
        Connecting an already connected store does nothing.

        Raises
        ------
        StoreError
            If *location* is not a sqlite database (the file is left
            untouched), or the table exists but was not made by SqliteStore.
        """
        with self._lock:
            if self._conn is not None:
                return
            try:
                conn = sqlite3.connect(
                    self.location, timeout=self.timeout, isolation_level=None,
                    check_same_thread=False,
                )
            except sqlite3.Error as error:
                raise StoreError(
                    f"cannot open sqlite database {self.location!r}: {error}"
                ) from error
            try:
                self._setup(conn)
            except sqlite3.Error as error:
                conn.close()
                raise StoreError(
                    f"cannot use sqlite database {self.location!r}, table {self.table!r}: "
                    f"{error}"
                ) from error
            except BaseException:
                conn.close()
                raise
            self._conn = conn

    def disconnect(self) -> None:
        """Close the connection; the data stays in the file (an in-memory store is lost)."""
        with self._lock:
            conn, self._conn = self._conn, None
            checkpointer, self._checkpointer = self._checkpointer, None
            if checkpointer is not None:
                checkpointer.stop()
            if conn is not None:
                if conn.in_transaction:
                    conn.rollback()
                conn.close()

    def is_connected(self) -> bool:
        """Whether or not the store is currently connected."""
        return self._conn is not None

    def info(self) -> dict[str, Any]:
        """Return ``{'readonly': False, 'location': ..., 'table': ...}``."""
        return {"readonly": False, "location": self.location, "table": self.table}

    def _setup(self, conn: sqlite3.Connection) -> None:
        # Read before writing anything: a file that is not a database fails
        # here and is left exactly as it was.
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError as error:
            raise StoreError(
                f"{self.location!r} is not a usable sqlite database: {error}"
            ) from error
        conn.create_function("encore_probe", 2, _stored_probe, deterministic=True)
        self._checkpointer = None
        synchronous = _SYNCHRONOUS[self.synchronous]
        if self.location not in (":memory:", ""):
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() == "wal":
                conn.execute("PRAGMA wal_autocheckpoint=0")
                self._checkpointer = _Checkpointer(os.path.abspath(self.location),
                                                   self.timeout)
            elif synchronous == "NORMAL":
                # Without WAL, NORMAL can corrupt on power loss: be safe.
                synchronous = "FULL"
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute("BEGIN IMMEDIATE")
        try:
            self._create_tables(conn)
            self._load_schema(conn)
            # Keys holding a NUL character, which GLOB cannot see whole (see glob).
            conn.execute(
                f"CREATE INDEX IF NOT EXISTS {_quote(self.table + ':nul-keys')} "
                f"ON {self._t} (key) WHERE instr(key, char(0)) > 0"
            )
            wanted = set(self._requested_columns)
            if self.index is not None and wanted - set(self._columns):
                self._add_columns(conn, sorted(wanted - set(self._columns)))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.rollback()
            raise

    def _create_tables(self, conn: sqlite3.Connection) -> None:
        t, c = self._t, self._c
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {t} ("
            "id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, metadata TEXT NOT NULL, "
            "created REAL NOT NULL, modified REAL NOT NULL, size INTEGER NOT NULL, "
            "etag INTEGER NOT NULL, data BLOB NOT NULL)"
        )
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {c} ("
            "id INTEGER NOT NULL, n INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (id, n))"
        )

        columns = [row[0] for row in conn.execute(
            "SELECT name FROM pragma_table_info(?)", (self.table + ":chunks",))]
        if tuple(columns) != _CHUNK_COLUMNS:
            raise StoreError(
                f"table {self.table + ':chunks'!r} in {self.location!r} exists but was not "
                f"made by SqliteStore (columns {columns})"
            )

    def _load_schema(self, conn: sqlite3.Connection) -> None:
        """Read the index columns from the table schema."""
        version = conn.execute("PRAGMA schema_version").fetchone()[0]
        columns = [row[0] for row in conn.execute(
            "SELECT name FROM pragma_table_info(?) ORDER BY cid", (self.table,))]
        if tuple(columns[: len(_FIXED_COLUMNS)]) != _FIXED_COLUMNS:
            hint = ""
            if "metadata" in columns and "etag" not in columns:
                hint = " (a table written by the original EnCore, with pickled metadata, " \
                       "is not read for safety)"
            raise StoreError(
                f"table {self.table!r} in {self.location!r} exists but was not made by "
                f"SqliteStore{hint}: columns {columns}"
            )
        mapping: dict[str, str] = {}
        for column in columns[len(_FIXED_COLUMNS):]:
            name = _metadata_name(column)
            if name is not None:
                mapping[name] = column
        self._set_columns(mapping)
        self._schema_version = version

    def _set_columns(self, mapping: dict[str, str]) -> None:
        self._columns = mapping
        self._column_order = tuple(mapping)
        self.index_columns = set(mapping)
        self._sql = {}

    def _refresh_schema(self, conn: sqlite3.Connection) -> None:
        """Reload the index columns if another connection changed the schema."""
        version = conn.execute("PRAGMA schema_version").fetchone()[0]
        if version != self._schema_version:
            self._load_schema(conn)

    def _add_columns(self, conn: sqlite3.Connection, names: Iterable[str]) -> None:
        """Add, fill and index columns for metadata *names*, all or nothing.

        Must run inside a transaction; it uses a savepoint of its own, so a
        failure leaves neither a half-filled column nor a stale column list.
        """
        conn.execute("SAVEPOINT encore_columns")
        try:
            self._add_columns_unguarded(conn, names)
        except BaseException:
            conn.execute("ROLLBACK TO encore_columns")
            conn.execute("RELEASE encore_columns")
            self._schema_version = -1
            self._refresh_schema(conn)
            raise
        conn.execute("RELEASE encore_columns")

    def _add_columns_unguarded(self, conn: sqlite3.Connection, names: Iterable[str]) -> None:
        mapping = dict(self._columns)
        t = self._t
        for name in names:
            if name in mapping or self._column_limit_reached:
                continue
            column = _column_name(name)
            try:
                conn.execute(f"ALTER TABLE {t} ADD COLUMN {_quote(column)}")
            except sqlite3.OperationalError as error:
                if "too many columns" in str(error):
                    # sqlite allows ~2000 columns: further names are just not
                    # indexed (queries on them are answered by scanning).
                    self._column_limit_reached = True
                    continue
                raise
            # The index also holds the key, so query_keys reads only the index.
            # Rows written while the column did not exist (by a store with
            # another index mode) may hold the name: fill them in.  The instr()
            # test skips, in C, rows whose JSON cannot contain the name.
            conn.execute(
                f"UPDATE {t} SET {_quote(column)} = encore_probe(metadata, ?) "
                "WHERE instr(metadata, ?) > 0",
                (name, json.dumps(name) + ":"),
            )
            conn.execute(
                f"CREATE INDEX IF NOT EXISTS {_quote(self.table + ':' + column)} "
                f"ON {t} ({_quote(column)}, key) WHERE {_quote(column)} IS NOT NULL"
            )
            mapping[name] = column
        self._set_columns(mapping)
        self._schema_version = conn.execute("PRAGMA schema_version").fetchone()[0]

    def _connection(self) -> sqlite3.Connection:
        conn = self._conn
        if conn is None:
            raise StoreError(
                f"SqliteStore({self.location!r}, table={self.table!r}) is not connected; "
                "call connect() first"
            )
        return conn

    # -- transactions ------------------------------------------------------

    def _begin_transaction(self) -> None:
        self._lock.acquire()
        try:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                self._refresh_schema(conn)
            except BaseException:
                conn.rollback()
                raise
        except BaseException:
            self._lock.release()
            raise

    def _commit_transaction(self) -> None:
        # On failure the lock stays held: the transaction context then calls
        # _rollback_transaction, which rolls back and releases it.
        self._connection().execute("COMMIT")
        try:
            self._committed()
        finally:
            self._lock.release()

    def _committed(self) -> None:
        """Called after each commit (with the lock held)."""
        self._commits += 1
        if self._checkpointer is not None and (self._commits & 63 == 0 or self._big_write):
            self._big_write = False
            self._checkpointer.maybe_checkpoint()

    def _rollback_transaction(self) -> None:
        try:
            conn = self._conn
            if conn is not None and conn.in_transaction:
                conn.rollback()
            # Index columns added inside the transaction are gone again.
            self._schema_version = -1
            if conn is not None:
                self._refresh_schema(conn)
        finally:
            self._lock.release()

    def _write(self, single: bool = False) -> _WriteContext:
        """A context for one write operation: its own transaction or a savepoint.

        *single* says that the operation changes the store with one statement
        (followed at most by harmless cleanup), so inside a transaction it
        needs no savepoint of its own.
        """
        return _WriteContext(self, single)

    # -- reading -----------------------------------------------------------

    def _fetch(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._connection().execute(sql, params).fetchall()

    def _fetch_one(self, sql: str, params: tuple = ()) -> tuple | None:
        with self._lock:
            return self._connection().execute(sql, params).fetchone()

    def get(self, key: str) -> Value:
        """Return a Value for *key*: a StringValue, or a lazily read value if it is large."""
        _check_key(key)
        row = self._fetch_one(
            f"SELECT id, metadata, created, modified, size, etag, "
            f"CASE WHEN size <= ? THEN data END FROM {self._t} WHERE key = ?",
            (CHUNK_SIZE, key))
        if row is None:
            raise KeyError(key)
        row_id, metadata, created, modified, size, etag, data = row
        if data is not None:
            return StringValue._from_store(data, json.loads(metadata), created, modified)
        return _SqliteValue(self, key, row_id, etag, size, json.loads(metadata), created,
                            modified)

    def exists(self, key: str) -> bool:
        """Test whether or not a key exists in the store."""
        _check_key(key)
        return self._fetch_one(f"SELECT 1 FROM {self._t} WHERE key = ?", (key,)) is not None

    def get_data(self, key: str) -> Any:
        """Return the data of *key*: a BytesIO, or a chunk-by-chunk stream if it is large."""
        _check_key(key)
        row = self._fetch_one(
            f"SELECT id, size, etag, data FROM {self._t} WHERE key = ?", (key,))
        if row is None:
            raise KeyError(key)
        row_id, size, etag, data = row
        if size <= len(data):
            return io.BytesIO(data)
        return _ChunkReader(self, key, row_id, etag, 0, size, data)

    def get_data_range(self, key: str, start: int | None = None, end: int | None = None) -> Any:
        """Return the bytes ``start <= i < end`` of *key*, reading only the chunks needed."""
        _check_key(key)
        _check_range(start, end)
        row = self._fetch_one(
            f"SELECT id, size, etag, CASE WHEN size <= ? THEN data END FROM {self._t} "
            "WHERE key = ?", (CHUNK_SIZE, key))
        if row is None:
            raise KeyError(key)
        row_id, size, etag, data = row
        if data is not None:
            return io.BytesIO(data[start:end])
        start = 0 if start is None else min(start, size)
        end = size if end is None else min(end, size)
        return _ChunkReader(self, key, row_id, etag, start, end)

    def get_metadata(self, key: str, select: Iterable[str] | None = None) -> dict[str, Any]:
        """Return the metadata of *key*, projected by *select*."""
        _check_key(key)
        row = self._fetch_one(f"SELECT metadata FROM {self._t} WHERE key = ?", (key,))
        if row is None:
            raise KeyError(key)
        metadata = json.loads(row[0])
        if select is None:
            return metadata
        return _project(metadata, select)

    def _read_chunk(self, key: str, row_id: int, etag: int, index: int) -> bytes:
        """Return chunk *index* of a value, if the value is still the one opened."""
        if index == 0:
            row = self._fetch_one(
                f"SELECT data FROM {self._t} WHERE id = ? AND etag = ?", (row_id, etag))
        else:
            row = self._fetch_one(
                f"SELECT c.data FROM {self._c} AS c WHERE c.id = ? AND c.n = ? AND EXISTS "
                f"(SELECT 1 FROM {self._t} WHERE id = ? AND etag = ?)",
                (row_id, index, row_id, etag))
            if row is None and self._fetch_one(
                    f"SELECT 1 FROM {self._t} WHERE id = ? AND etag = ?", (row_id, etag)):
                raise StoreError(f"chunk {index} of key {key!r} is missing from the database")
        if row is None:
            raise StoreError(f"key {key!r} was changed or deleted while its data was being read")
        return row[0]

    # -- queries -----------------------------------------------------------

    def _plan(self, kwargs: dict[str, Any]) -> tuple[str, list[Any], dict[str, Any]]:
        """Split a query into SQL conditions and a residual checked in Python."""
        if self._conn is not None and kwargs:
            with self._lock:
                self._refresh_schema(self._connection())
        conditions: list[str] = []
        params: list[Any] = []
        residual: dict[str, Any] = {}
        columns = self._columns
        for name, value in kwargs.items():
            column = columns.get(name)
            if column is None:
                residual[name] = value
                continue
            probe, exact = _probe(value)
            if probe is None:
                residual[name] = value
                continue
            conditions.append(f"{_quote(column)} = ?")
            params.append(probe)
            if not exact:
                residual[name] = value
        return " AND ".join(conditions), params, residual

    def _pages(self, what: str, where: str, params: list[Any]) -> Iterator[tuple]:
        """Yield the rows of ``SELECT key[, <what>] ... WHERE <where>``, a page at a time.

        Pages follow key order, which every index column's index (on the
        column, then the key) and the key index provide directly.
        """
        columns = f"key, {what}" if what else "key"
        first = (f"SELECT {columns} FROM {self._t} {'WHERE ' + where if where else ''} "
                 f"ORDER BY key LIMIT {_PAGE}")
        following = (f"SELECT {columns} FROM {self._t} WHERE {where + ' AND ' if where else ''}"
                     f"key > ? ORDER BY key LIMIT {_PAGE}")
        rows = self._fetch(first, tuple(params))
        while True:
            yield from rows
            if len(rows) < _PAGE:
                return
            rows = self._fetch(following, (*params, rows[-1][0]))

    def query(
        self, select: Iterable[str] | None = None, **kwargs: Any
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield ``(key, metadata)`` for every key whose metadata matches *kwargs*."""
        if select is not None:
            if isinstance(select, str):
                raise TypeError("select must be an iterable of metadata names, not a str")
            select = list(select)
        self._connection()
        return self._query(select, kwargs)

    def _query(self, select: list[str] | None,
               kwargs: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
        where, params, residual = self._plan(kwargs)
        loads = json.loads
        for key, text in self._pages("metadata", where, params):
            metadata = loads(text)
            if residual and not metadata_matches(metadata, residual):
                continue
            yield key, (metadata if select is None else _project(metadata, select))

    def query_keys(self, **kwargs: Any) -> Iterator[str]:
        """Yield every key whose metadata matches *kwargs* (in SQL for indexed names)."""
        self._connection()
        return self._query_keys(kwargs)

    def _query_keys(self, kwargs: dict[str, Any]) -> Iterator[str]:
        where, params, residual = self._plan(kwargs)
        if residual:
            loads = json.loads
            for key, text in self._pages("metadata", where, params):
                if metadata_matches(loads(text), residual):
                    yield key
        else:
            for (key,) in self._pages("", where, params):
                yield key

    def glob(self, pattern: str) -> Iterator[str]:
        """Return the keys matching a glob-style pattern (case-sensitively), using the key index."""
        if not isinstance(pattern, str):
            raise TypeError(f"pattern must be a str, not {type(pattern).__name__}")
        self._connection()
        return self._glob(pattern)

    def _glob(self, pattern: str) -> Iterator[str]:
        # SQL GLOB does the work through the key index.  Without sets ("[...]")
        # it means exactly what fnmatch means; otherwise it is a superset and
        # the fnmatch regex decides.  GLOB reads text only up to a NUL, so keys
        # holding one are re-checked, and found through their partial index.
        exact = "[" not in pattern and "\x00" not in pattern
        match = None
        sql_pattern = _sql_glob(pattern)
        first_sql = f"SELECT key FROM {self._t} WHERE key GLOB ? ORDER BY key LIMIT {_PAGE}"
        next_sql = (f"SELECT key FROM {self._t} WHERE key GLOB ? AND key > ? "
                    f"ORDER BY key LIMIT {_PAGE}")
        yielded_with_nul = set()
        rows = self._fetch(first_sql, (sql_pattern,))
        while True:
            for (key,) in rows:
                if exact and "\x00" not in key:
                    yield key
                    continue
                if match is None:
                    match = _glob_regex(pattern)
                if match(key):
                    if "\x00" in key:
                        yielded_with_nul.add(key)
                    yield key
            if len(rows) < _PAGE:
                break
            rows = self._fetch(next_sql, (sql_pattern, rows[-1][0]))
        for (key,) in self._fetch(
                f"SELECT key FROM {self._t} WHERE instr(key, char(0)) > 0"):
            if key in yielded_with_nul:
                continue
            if match is None:
                match = _glob_regex(pattern)
            if match(key):
                yield key

    # -- writing -----------------------------------------------------------

    def set(self, key: str, value: Any, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Store a Value or a ``(stream, metadata)`` tuple into *key*, in one transaction."""
        _check_key(key)
        data, metadata, size = self._unpack_value(value)
        text = _encode_metadata(metadata)
        small = _small_bytes(data, buffer_size)
        if small is not None:
            with self._write(single=True) as conn:
                existed = self._put(conn, key, small, None, iter(()), text, metadata)
            self._notify_set(key, metadata, existed)
            return
        pieces = self._pieces(key, data, metadata, size, buffer_size)
        try:
            first = next(pieces)
            second = next(pieces, None)
            with self._write(single=second is None) as conn:
                existed = self._put(conn, key, first, second, pieces, text, metadata)
        finally:
            pieces.close()
        self._notify_set(key, metadata, existed)

    def set_data(self, key: str, data: Any, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Replace the data of *key*, keeping its metadata (``{}`` for a new key)."""
        _check_key(key)
        check_readable_stream(data)
        pieces = self._pieces(key, data, None, None, buffer_size)
        try:
            first = next(pieces)
            second = next(pieces, None)
            with self._write(single=second is None) as conn:
                row = conn.execute(
                    f"SELECT metadata FROM {self._t} WHERE key = ?", (key,)).fetchone()
                if row is None:
                    metadata: dict[str, Any] = {}
                    existed = self._put(conn, key, first, second, pieces, "{}", metadata)
                else:
                    metadata = json.loads(row[0])
                    existed = self._put(conn, key, first, second, pieces, None, None)
        finally:
            pieces.close()
        self._notify_set(key, metadata, existed)

    def from_bytes(self, key: str, data: bytes, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Store *data* as the data of *key*, keeping its metadata."""
        _check_key(key)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be bytes, not {type(data).__name__}")
        self.set_data(key, io.BytesIO(data), buffer_size)

    def set_metadata(self, key: str, metadata: dict[str, Any]) -> None:
        """Replace the metadata of *key*, keeping its data (empty for a new key)."""
        _check_key(key)
        check_metadata(metadata)
        metadata = copy_metadata(metadata)
        text = _encode_metadata(metadata)
        with self._write(single=True) as conn:
            existed = self._put_metadata(conn, key, text, metadata)
        self._notify_set(key, metadata, existed)

    def update_metadata(self, key: str, metadata: dict[str, Any]) -> None:
        """Merge *metadata* into the metadata of *key*; ``KeyError`` if it is missing."""
        _check_key(key)
        check_metadata(metadata)
        update = copy_metadata(metadata)
        _encode_metadata(update)
        with self._write(single=True) as conn:
            row = conn.execute(
                f"SELECT metadata FROM {self._t} WHERE key = ?", (key,)).fetchone()
            if row is None:
                raise KeyError(key)
            merged = json.loads(row[0])
            merged.update(update)
            self._put_metadata(conn, key, _json_encode(merged), merged)
        self._notify_set(key, merged, True)

    def delete(self, key: str) -> None:
        """Delete *key*; ``KeyError`` if it is missing."""
        _check_key(key)
        with self._write(single=True) as conn:
            row = conn.execute(
                f"SELECT id, size, metadata FROM {self._t} WHERE key = ?", (key,)).fetchone()
            if row is None:
                raise KeyError(key)
            row_id, size, text = row
            conn.execute(f"DELETE FROM {self._t} WHERE id = ?", (row_id,))
            if size > CHUNK_SIZE:
                conn.execute(f"DELETE FROM {self._c} WHERE id = ?", (row_id,))
        self._notify_delete(key, json.loads(text))

    def multiset(self, keys: Iterable[str], values: Iterable[Any],
                 buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Set many keys in one transaction, inserting small values in bulk.

        Like :func:`zip`, excess keys or values are ignored; both may be
        one-shot iterators.  If any value is invalid, nothing is written.
        """
        with self.transaction("Setting multiple keys"):
            batch: list[tuple[str, str, dict[str, Any], bytes]] = []
            for key, value in zip(keys, values, strict=False):
                _check_key(key)
                data, metadata, size = self._unpack_value(value)
                text = _encode_metadata(metadata)
                small = _small_bytes(data, buffer_size)
                if small is not None:
                    batch.append((key, text, metadata, small))
                    if len(batch) >= _BATCH:
                        self._put_batch(batch)
                        batch = []
                    continue
                pieces = self._pieces(key, data, metadata, size, buffer_size)
                try:
                    first = next(pieces)
                    second = next(pieces, None)
                    if second is None:
                        batch.append((key, text, metadata, first))
                        if len(batch) >= _BATCH:
                            self._put_batch(batch)
                            batch = []
                        continue
                    # A large value: write what is queued first, to keep the order.
                    self._put_batch(batch)
                    batch = []
                    with self._write() as conn:
                        existed = self._put(conn, key, first, second, pieces, text, metadata)
                finally:
                    pieces.close()
                self._notify_set(key, metadata, existed)
            self._put_batch(batch)

    # -- write internals ---------------------------------------------------

    def _pieces(self, key: str, data: Any, metadata: Any, size: int | None,
                buffer_size: int) -> Iterator[bytes]:
        """Yield the stream in CHUNK_SIZE pieces (the last may be shorter, or b'')."""
        small = _small_bytes(data, buffer_size)
        if small is not None:
            yield small
            return
        chunks = self._iter_chunks(key, data, metadata, size, buffer_size,
                                   f"Storing key {key!r}")
        try:
            pending: list[bytes] = []
            pending_size = 0
            produced = False
            for chunk in chunks:
                if not pending and len(chunk) == CHUNK_SIZE:
                    produced = True
                    yield chunk
                    continue
                pending.append(chunk)
                pending_size += len(chunk)
                if pending_size >= CHUNK_SIZE:
                    joined = b"".join(pending)
                    view = memoryview(joined)
                    offset = 0
                    while pending_size - offset >= CHUNK_SIZE:
                        produced = True
                        yield bytes(view[offset : offset + CHUNK_SIZE])
                        offset += CHUNK_SIZE
                    rest = bytes(view[offset:])
                    view.release()
                    del joined
                    pending = [rest] if rest else []
                    pending_size = len(rest)
            if pending or not produced:
                yield b"".join(pending)
        finally:
            chunks.close()

    def _index_values(self, conn: sqlite3.Connection, metadata: dict[str, Any]) -> list[Any]:
        """The index column values for *metadata*, adding dynamic columns first."""
        columns = self._columns
        if self.index == "dynamic":
            missing = [name for name in metadata if name not in columns]
            if missing and not self._column_limit_reached:
                self._add_columns(conn, missing)
        return _probes(metadata, self._column_order)

    def _statement(self, kind: str) -> str:
        sql = self._sql.get(kind)
        if sql is not None:
            return sql
        t = self._t
        columns = [_quote(self._columns[name]) for name in self._column_order]
        if kind == "insert":
            names = ["key", "metadata", "created", "modified", "size", "etag", "data", *columns]
            sql = (f"INSERT INTO {t} ({', '.join(names)}) "
                   f"VALUES ({', '.join('?' * len(names))})")
        elif kind == "update":
            names = ["metadata", "modified", "size", "etag", "data", *columns]
            sql = f"UPDATE {t} SET {', '.join(n + ' = ?' for n in names)} WHERE id = ?"
        elif kind == "upsert":
            names = ["key", "metadata", "created", "modified", "size", "etag", "data", *columns]
            updates = ", ".join(f"{n} = excluded.{n}" for n in names if n not in (
                "key", "created"))
            sql = (f"INSERT INTO {t} ({', '.join(names)}) "
                   f"VALUES ({', '.join('?' * len(names))}) "
                   f"ON CONFLICT (key) DO UPDATE SET {updates}")
        elif kind == "update_metadata":
            names = ["metadata", "modified", *columns]
            sql = f"UPDATE {t} SET {', '.join(n + ' = ?' for n in names)} WHERE id = ?"
        else:
            raise AssertionError(kind)
        self._sql[kind] = sql
        return sql

    def _put(self, conn: sqlite3.Connection, key: str, first: bytes, second: bytes | None,
             rest: Iterator[bytes], text: str | None,
             metadata: dict[str, Any] | None) -> bool:
        """Write a value (and metadata, unless *text* is None); return whether it existed."""
        t = self._t
        row = conn.execute(f"SELECT id, size FROM {t} WHERE key = ?", (key,)).fetchone()
        now = time.time()
        etag = random.getrandbits(63)
        size = len(first)
        if row is None:
            assert text is not None and metadata is not None
            values = self._index_values(conn, metadata)
            cursor = conn.execute(self._statement("insert"),
                                  (key, text, now, now, size, etag, first, *values))
            row_id = cursor.lastrowid
        else:
            row_id, old_size = row
            if text is None:
                conn.execute(
                    f"UPDATE {t} SET modified = ?, size = ?, etag = ?, data = ? WHERE id = ?",
                    (now, size, etag, first, row_id))
            else:
                assert metadata is not None
                values = self._index_values(conn, metadata)
                conn.execute(self._statement("update"),
                             (text, now, size, etag, first, *values, row_id))
            # After the row: if this fails in a write without a savepoint (see
            # _WriteContext), stale chunks of a small value are never read.
            if old_size > CHUNK_SIZE and second is None:
                conn.execute(f"DELETE FROM {self._c} WHERE id = ?", (row_id,))
        if second is not None:
            # Also clears chunks left by an earlier row with the same id.
            conn.execute(f"DELETE FROM {self._c} WHERE id = ?", (row_id,))
            insert = f"INSERT INTO {self._c} (id, n, data) VALUES (?, ?, ?)"
            conn.execute(insert, (row_id, 1, second))
            size += len(second)
            del second
            n = 1
            for piece in rest:
                if not piece:
                    continue
                n += 1
                conn.execute(insert, (row_id, n, piece))
                size += len(piece)
            conn.execute(f"UPDATE {t} SET size = ? WHERE id = ?", (size, row_id))
            self._big_write = True
        return row is not None

    def _put_batch(self, batch: list[tuple[str, str, dict[str, Any], bytes]]) -> None:
        """Upsert small values (one chunk each) with one statement, then report them."""
        if not batch:
            return
        t = self._t
        with self._write() as conn:
            keys = list({key: None for key, _, _, _ in batch})
            existing = dict(conn.execute(
                f"SELECT key, size FROM {t} WHERE key IN ({', '.join('?' * len(keys))})",
                keys).fetchall())
            if self.index == "dynamic":
                names = {name: None for _, _, metadata, _ in batch for name in metadata}
                missing = [name for name in names if name not in self._columns]
                if missing and not self._column_limit_reached:
                    self._add_columns(conn, missing)
            large = [key for key, size in existing.items() if size > CHUNK_SIZE]
            if large:
                conn.execute(
                    f"DELETE FROM {self._c} WHERE id IN (SELECT id FROM {t} WHERE key IN "
                    f"({', '.join('?' * len(large))}))", large)
            now = time.time()
            getrandbits = random.getrandbits
            order = self._column_order
            conn.executemany(self._statement("upsert"), [
                (key, text, now, now, len(data), getrandbits(63), data, *_probes(metadata, order))
                for key, text, metadata, data in batch
            ])
        seen = set(existing)
        for key, _, metadata, _ in batch:
            self._notify_set(key, metadata, key in seen)
            seen.add(key)

    def _put_metadata(self, conn: sqlite3.Connection, key: str, text: str,
                      metadata: dict[str, Any]) -> bool:
        """Write the metadata of *key* (creating it with empty data); return whether it existed."""
        row = conn.execute(f"SELECT id FROM {self._t} WHERE key = ?", (key,)).fetchone()
        now = time.time()
        values = self._index_values(conn, metadata)
        if row is None:
            conn.execute(self._statement("insert"),
                         (key, text, now, now, 0, random.getrandbits(63), b"", *values))
            return False
        conn.execute(self._statement("update_metadata"), (text, now, *values, row[0]))
        return True


class _WriteContext:
    """Runs one write operation atomically.

    Outside a transaction it is a transaction of its own (``BEGIN
    IMMEDIATE``, so writers in other processes queue up instead of
    deadlocking); inside the calling thread's transaction it is a savepoint,
    so a failed operation is undone without aborting the enclosing
    transaction.
    """

    __slots__ = ("store", "conn", "nested", "single")

    def __init__(self, store: SqliteStore, single: bool = False) -> None:
        self.store = store
        self.single = single

    def __enter__(self) -> sqlite3.Connection:
        store = self.store
        store._lock.acquire()
        try:
            conn = self.conn = store._connection()
            self.nested = conn.in_transaction
            if self.nested:
                if not self.single:
                    conn.execute("SAVEPOINT encore_write")
            else:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    store._refresh_schema(conn)
                except BaseException:
                    conn.rollback()
                    raise
        except BaseException:
            store._lock.release()
            raise
        return conn

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        conn = self.conn
        try:
            if exc_type is None:
                if self.nested and self.single:
                    return False
                try:
                    conn.execute("RELEASE encore_write" if self.nested else "COMMIT")
                except BaseException:
                    self._undo(conn)
                    raise
                if not self.nested:
                    self.store._committed()
            else:
                self._undo(conn)
        finally:
            self.store._lock.release()
        return False

    def _undo(self, conn: sqlite3.Connection) -> None:
        if not conn.in_transaction:
            return
        if self.nested and self.single:
            # The one statement failed as a whole; the transaction goes on.
            return
        if self.nested:
            conn.execute("ROLLBACK TO encore_write")
            conn.execute("RELEASE encore_write")
        else:
            conn.rollback()
        # A rolled-back schema change (a new index column) must be forgotten.
        self.store._schema_version = -1
        self.store._refresh_schema(conn)


def _small_bytes(data: Any, buffer_size: int | None) -> bytes | None:
    """The rest of *data* if it is a BytesIO holding at most one buffer, else None.

    The fast path for the common small in-memory value: a transfer that fits
    in one buffer emits no progress events, so reading it directly is
    exactly what the generic path would do.
    """
    if type(data) is not io.BytesIO:
        return None
    limit = buffer_size if buffer_size and buffer_size > 0 else DEFAULT_BUFFER_SIZE
    if limit > CHUNK_SIZE:
        limit = CHUNK_SIZE
    with data.getbuffer() as view:
        remaining = view.nbytes - data.tell()
    if remaining > limit:
        return None
    return data.read()


def _check_key(key: Any) -> None:
    if type(key) is not str:
        check_key(key)
    if not key.isascii():
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(
                f"key {key!r} is not valid unicode (it contains a lone surrogate) and "
                "cannot be stored in sqlite"
            ) from None


def _project(metadata: dict[str, Any], select: Iterable[str]) -> dict[str, Any]:
    # *metadata* is freshly decoded JSON that nobody else holds: no copy needed.
    if isinstance(select, str):
        return select_metadata(metadata, select)  # raises the documented TypeError
    return {name: metadata[name] for name in select if name in metadata}

