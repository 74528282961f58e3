"""A key-value store kept as files in a directory, safe to share between processes.

:class:`FileSystemStore` keeps each key in one flat directory as a *record*
(the key, its metadata and the name of its data file, as a line of JSON) and
a *data file* holding the raw bytes; values of up to 32 KiB are kept inside
the record instead, so a small key is a single file.  The directory is marked as a store
by a magic file (``.FSStore`` by default) written by
:func:`init_shared_store`.

Guarantees
----------
Crash safety
    Data files are immutable: every write puts the data into a fresh data
    file, then publishes a new record pointing to it with :func:`os.replace`.
    Publishing the record is the commit, so a reader, or a process started
    after a crash, sees the complete old value or the complete new one, with
    matching metadata -- never a mix or a torn value.  With ``durable=True``
    files and the directory are also fsynced before the commit returns.
    Files left by a crashed writer (temporary files, unreferenced data files)
    are never listed as keys and are removed by a later full scan once they
    are an hour old.
Keys
    Keys are arbitrary strings.  They are mapped to file names by a reversible
    escaping (see :func:`encode_key`) that keeps case distinct, escapes
    separators, dots, control and non-ASCII characters and Windows device
    names, and hashes over-long keys; a key can never name a file outside the
    store directory.
Concurrency
    Any number of threads and processes may read and write at once; each
    write is atomic and the last one published wins.  Read-modify-write
    operations (``set_data``, ``update_metadata``) are not isolated from
    concurrent writers of the same key in *other processes*; use
    :class:`~encore.storage.locking_filesystem_store.LockingFileSystemStore`
    for that.
Queries
    :meth:`FileSystemStore.query` answers from an in-memory cache of the
    records.  Every write appends the changed record's name to a change
    journal (``.changes.log``), so a query re-reads only what changed, also
    when the change came from another process.  Records changed by other
    programs (not through this class) are picked up by a full rescan at most
    :attr:`FileSystemStore.full_rescan_interval` seconds later.

Stores created by the original EnCore (magic file ``__version__ = 0``)
keep their original layout -- ``<key>.data`` and ``<key>.metadata`` -- and
remain readable and writable; keys that layout cannot hold safely (path
separators, control characters, ...) are refused with a :class:`ValueError`,
writes are atomic per file but not across the two files, and queries re-read
every record.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import re
import shutil
import sys
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

from .abstract_store import (
    DEFAULT_BUFFER_SIZE,
    AbstractStore,
    Value,
    _check_range,
    check_key,
    check_metadata,
    copy_metadata,
    metadata_matches,
    select_metadata,
)
from .file_value import FileValue
from .utils import check_readable_stream

__all__ = [
    "FileSystemStore",
    "FileSystemStoreError",
    "FileSystemValue",
    "decode_name",
    "encode_key",
    "init_shared_store",
]

#: The naming scheme written by :func:`init_shared_store` (0 is EnCore's verbatim one).
SCHEME_VERSION = 1

RECORD_SUFFIX = ".metadata"
DATA_SUFFIX = ".data"
JOURNAL_NAME = ".changes.log"
_TMP_PREFIX = ".tmp-"
_TMP_SUFFIX = ".tmp"

#: Encoded names longer than this are shortened and made unique with a hash.
_MAX_NAME = 150
#: Values up to this size are kept inside their record: one file per key.
INLINE_MAX = 32768
#: Leftovers of crashed writers older than this (seconds) are removed.
_GARBAGE_AGE = 3600.0
#: How often a concurrent reader re-opens a record whose data file vanished.
_READ_RETRIES = 50
#: Bytes per kernel copy step (and progress event) for file-to-file copies.
_FAST_CHUNK = 8 * 1048576

#: JSON-encodes a str as ASCII (the C function behind json.dumps).
_json_string = json.encoder.encode_basestring_ascii
_O_BINARY = getattr(os, "O_BINARY", 0)
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY
_READ_FLAGS = os.O_RDONLY | _O_BINARY

_UNSAFE = re.compile(r"[^a-z0-9_\-]")
_WINDOWS_DEVICES = frozenset(
    ["con", "prn", "aux", "nul"]
    + [f"com{i}" for i in range(10)]
    + [f"lpt{i}" for i in range(10)]
)
_LEGACY_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f/\\]")
_VERSION_LINE = re.compile(rb"^\s*__version__\s*=\s*(\d+)\s*$", re.MULTILINE)


class FileSystemStoreError(Exception):
    """Raised when a directory is not usable as a file system store."""


def _escape(match: re.Match[str]) -> str:
    return "".join(f"%{b:02X}" for b in match.group().encode("utf-8", "surrogatepass"))


def encode_key(key: str) -> str:
    """Return the file-name stem a key is stored under (naming scheme 1).

    Lowercase ASCII letters, digits, ``-`` and ``_`` are kept; every other
    character, including uppercase letters and ``.``, becomes ``%XX`` escapes
    of its UTF-8 bytes.  So the name is a single path component that is
    unique even on case-insensitive file systems, never starts or ends with
    a dot or space, and holds no separator or control character.  Windows
    device names (``con``, ``aux``, ...) get their first letter escaped, the
    empty key is ``%``, and names longer than 150 characters are cut and
    suffixed with ``~`` and a SHA-256 of the key (such names do not decode;
    the record keeps the key).
    """
    if not key:
        return "%"
    name = _UNSAFE.sub(_escape, key)
    if name in _WINDOWS_DEVICES:
        name = f"%{ord(name[0]):02X}{name[1:]}"
    if len(name) > _MAX_NAME:
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:40]
        name = name[:100].rstrip("%0123456789ABCDEF") + "~" + digest
    return name


def decode_name(name: str) -> str | None:
    """Invert :func:`encode_key`; None for hashed (over-long) names."""
    if name == "%":
        return ""
    if "~" in name:
        return None
    raw = bytearray()
    i = 0
    while i < len(name):
        ch = name[i]
        if ch == "%":
            raw.append(int(name[i + 1 : i + 3], 16))
            i += 3
        else:
            raw.extend(ch.encode("ascii"))
            i += 1
    return raw.decode("utf-8", "surrogatepass")


def _legacy_name(key: str) -> str:
    """The verbatim name of EnCore's layout, refusing keys it cannot hold safely."""
    if not key or key in (".", "..") or _LEGACY_FORBIDDEN.search(key):
        raise ValueError(
            f"key {key!r} cannot be stored safely in a version 0 (legacy EnCore) file "
            "system store: it is empty, '.' or '..', or holds a path separator or "
            "control character"
        )
    if sys.platform == "win32" and (
        ":" in key or key.rstrip(". ") != key or key.split(".")[0].lower() in _WINDOWS_DEVICES
    ):  # pragma: no cover - Windows only
        raise ValueError(f"key {key!r} is not a valid Windows file name (legacy store)")
    if len((key + RECORD_SUFFIX).encode("utf-8", "surrogatepass")) > 240:
        raise ValueError(f"key {key!r} is too long for a version 0 (legacy) store")
    return key


def init_shared_store(path: str | os.PathLike, magic_fname: str = ".FSStore") -> None:
    """Create the magic file for the shared store.

    Useful to initialize the store for the first time.  The directory must
    exist; an existing magic file is replaced.

    Parameters
    ----------
    path : str or path-like
        The directory that will be used for the file store.
    magic_fname : str
        The name of the magic file in that directory.

    Notes
    -----
    Raises :class:`FileNotFoundError` if *path* is not a directory.  The
    magic file reads ``__version__ = 1``: the escaped naming scheme of
    this implementation.  Directories marked ``__version__ = 0`` by the
    original EnCore keep their verbatim layout.
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(errno.ENOENT, "Unable to find store directory", path)
    _write_atomic(
        os.path.join(path, magic_fname), f"__version__ = {SCHEME_VERSION}\n".encode(), path
    )


def _tmp_path(directory: str) -> str:
    return f"{directory}{os.sep}{_TMP_PREFIX}{os.urandom(12).hex()}{_TMP_SUFFIX}"


def _fsync_dir(directory: str) -> None:
    if sys.platform == "win32":  # pragma: no cover - directories cannot be fsynced there
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: str, content: bytes, directory: str, durable: bool = False) -> None:
    """Replace *path* by *content* atomically (temporary file, then :func:`os.replace`)."""
    tmp = _tmp_path(directory)
    # Raw descriptors: this is the hot path of every small write.
    fd = os.open(tmp, _CREATE_FLAGS, 0o666)
    try:
        try:
            view = memoryview(content)
            while view:
                view = view[os.write(fd, view):]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        _fsync_dir(directory)


class FileSystemValue(Value):
    """The value of a key of a :class:`FileSystemStore`.

    The data file is opened when the value is made, so the value is a
    consistent snapshot: later writes to the key do not change it.
    """

    def __init__(
        self,
        stream: Any,
        path: str | None,
        metadata: dict[str, Any],
        size: int,
        created: float | None,
        modified: float | None,
        inline: bytes | None = None,
    ) -> None:
        self._stream = stream
        self._path = path
        self._inline = inline
        self._metadata = metadata
        self.size = size
        self.created = created
        self.modified = modified

    @property
    def data(self) -> Any:
        """An open binary file on the data (the same one on every access)."""
        return self._stream

    @property
    def metadata(self) -> dict[str, Any]:
        """A copy of the metadata dictionary."""
        return copy_metadata(self._metadata)

    def range(self, start: int | None = None, end: int | None = None) -> Any:
        """Return a stream of the bytes ``start <= i < end`` of the data."""
        _check_range(start, end)
        if self._path is None:
            return io.BytesIO((self._inline or b"")[start:end])
        # Data files are immutable, so a fresh handle sees the same bytes.
        return FileValue(self._path).range(start, end)

    def __repr__(self) -> str:
        return f"FileSystemValue({self._path!r}, size={self.size})"


def _read_fd(fd: int, first_line_only: bool) -> bytes:
    """Read a whole file from a descriptor, or only up to its first newline."""
    chunk = os.read(fd, 65536)
    if len(chunk) < 65536 or (first_line_only and b"\n" in chunk):
        return chunk
    parts = [chunk]
    while chunk and not (first_line_only and b"\n" in chunk):
        chunk = os.read(fd, 1048576)
        parts.append(chunk)
    return b"".join(parts)


def _fd_at_position(stream: Any) -> bool:
    """Whether *stream* is a real file whose descriptor sits at its logical position.

    Then its remaining bytes can be copied straight from the descriptor.
    """
    if not isinstance(stream, (io.BufferedReader, io.FileIO)):
        return False
    try:
        return stream.tell() == os.lseek(stream.fileno(), 0, os.SEEK_CUR)
    except (OSError, ValueError):
        return False


def _close_quietly(f: Any) -> None:
    with contextlib.suppress(OSError):
        f.close()


class FileSystemStore(AbstractStore):
    """A store that uses a (possibly shared) file system directory to store data and metadata.

    Parameters
    ----------
    path : str or path-like
        A path to the root of the file system store.
    magic_fname : str
        The name of the magic file in that directory, created by
        :func:`init_shared_store`.
    durable : bool
        Keyword-only.  If True, every write fsyncs the data, the record and
        the directory before it returns, so it survives a power loss, not just
        a process crash.  Default False.

    Raises
    ------
    FileSystemStoreError
        If *path* does not exist, or holds no magic file.

    Notes
    -----
    Thread safety: every method may be called from any thread.  See the
    module documentation for what is guaranteed across processes and crashes.

    Events: ``set``, ``set_data``, ``set_metadata``, ``from_file`` and
    ``from_bytes`` emit :class:`~encore.storage.events.StoreSetEvent` for a
    new key and :class:`~encore.storage.events.StoreUpdateEvent` otherwise;
    ``update_metadata`` emits an Update with the merged metadata; ``delete``
    emits :class:`~encore.storage.events.StoreDeleteEvent`.  Transfers longer
    than one buffer emit progress events.

    Transactions: ``with store.transaction():`` serialises the transactions
    of this store object, holds their events until the end and, if the block
    raises, restores every key it changed.  They are *not* isolated (other
    threads and processes see the writes as they happen) and not crash-atomic
    (a process killed inside a block leaves the writes made so far).

    Metadata must be JSON-serialisable: tuples come back as lists and
    non-string dictionary keys as strings.
    """

    #: Seconds after which a query re-reads every record, to notice changes
    #: made by programs that do not write the change journal.
    full_rescan_interval = 60.0

    def __init__(
        self, path: str | os.PathLike, magic_fname: str = ".FSStore", *, durable: bool = False
    ) -> None:
        super().__init__()
        root = os.path.abspath(os.fspath(path))
        if not os.path.isdir(root):
            raise FileSystemStoreError(f"Unable to find path {root!r}")
        magic = os.path.join(root, magic_fname)
        if not os.path.isfile(magic):
            raise FileSystemStoreError(f"Path {root!r} is not a valid store")
        with open(magic, "rb") as f:
            match = _VERSION_LINE.search(f.read(4096))
        version = int(match.group(1)) if match else 0
        if version > SCHEME_VERSION:
            raise FileSystemStoreError(
                f"Store {root!r} uses naming scheme {version}; this version of encore "
                f"reads schemes 0 to {SCHEME_VERSION}"
            )
        self.path = root
        self.magic_fname = magic_fname
        self.version = version
        self.durable = durable
        self._legacy = version == 0
        self._journal_path = os.path.join(root, JOURNAL_NAME)
        self._journal_file: Any = None
        self._journal_lock = threading.Lock()
        self._cache_lock = threading.Lock()
        self._cache: dict[str, tuple[str, dict[str, Any]]] | None = None
        self._journal_pos = 0
        self._journal_ino: int | None = None
        self._scanned_at = 0.0
        # Transaction state (the owning thread's undo information), see
        # _begin_transaction.
        self._undo: dict[str, tuple[bytes | None, str | None]] | None = None
        self._created_files: list[str] = []
        self._retired_files: list[str] = []

    # -- naming ------------------------------------------------------------

    def _name(self, key: str) -> str:
        """The file-name stem of *key* (raises ValueError for unsafe legacy keys)."""
        return _legacy_name(key) if self._legacy else encode_key(key)

    def _record_path(self, name: str) -> str:
        return f"{self.path}{os.sep}{name}{RECORD_SUFFIX}"

    # -- records -------------------------------------------------------------

    def _read_record(
        self, name: str, key: str | None = None, header_only: bool = False
    ) -> dict[str, Any] | None:
        """Return the record of *name* (None if absent) as a dict.

        A record file is a one-line JSON header holding ``key``, ``metadata``,
        ``data`` (the data file name, or None for a small value kept inline),
        ``size``, ``created`` and ``modified``; an inline value's bytes follow
        the newline and are returned as ``record['inline']`` unless
        *header_only*.
        """
        try:
            fd = os.open(self._record_path(name), _READ_FLAGS)
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            raw = _read_fd(fd, header_only and not self._legacy)
        finally:
            os.close(fd)
        if self._legacy:
            return {"key": name, "metadata": json.loads(raw), "data": name + DATA_SUFFIX,
                    "size": None, "created": None, "modified": None}
        newline = raw.find(b"\n")
        record = json.loads(raw if newline < 0 else raw[:newline])
        if record["data"] is None and not header_only:
            record["inline"] = raw[newline + 1 :]
        if key is not None and record.get("key") != key:
            # Only possible for a hashed long name: a different key owns it.
            return None
        return record

    def _open_value(self, key: str) -> tuple[dict[str, Any], Any, str | None]:
        """Return ``(record, open data file, data path)`` for *key*, consistently.

        Raises KeyError if the key does not exist.
        """
        check_key(key)
        try:
            name = self._name(key)
        except ValueError:
            raise KeyError(key) from None
        for _ in range(_READ_RETRIES):
            record = self._read_record(name, key)
            if record is None:
                raise KeyError(key)
            if record["data"] is None:
                return record, io.BytesIO(record["inline"]), None
            data_path = os.path.join(self.path, record["data"])
            try:
                stream = open(data_path, "rb")  # noqa: SIM115 -- handed to the caller
            except FileNotFoundError:
                if not self._legacy:
                    # A writer replaced the value and removed this data file
                    # after we read the record: read the new record.
                    continue
                # EnCore wrote the metadata first: its data is not there yet.
                stream = io.BytesIO(b"")
            return record, stream, data_path
        raise FileSystemStoreError(f"key {key!r} kept changing while being read")

    # -- reading -----------------------------------------------------------

    def get(self, key: str) -> FileSystemValue:
        """Retrieve the data and metadata of a key as a consistent snapshot."""
        record, stream, data_path = self._open_value(key)
        size, created, modified = record["size"], record["created"], record["modified"]
        if self._legacy:
            try:
                st = os.fstat(stream.fileno())
                size, modified = st.st_size, st.st_mtime
            except (OSError, io.UnsupportedOperation):
                size = 0
        return FileSystemValue(stream, data_path, record["metadata"], size, created, modified,
                               record.get("inline"))

    def get_data(self, key: str) -> Any:
        """Retrieve an open binary stream on the data of a key."""
        return self._open_value(key)[1]

    def get_metadata(self, key: str, select: Iterable[str] | None = None) -> dict[str, Any]:
        """Retrieve (a fresh copy of) the metadata of a key, projected by *select*."""
        check_key(key)
        try:
            name = self._name(key)
        except ValueError:
            raise KeyError(key) from None
        record = self._read_record(name, key, header_only=True)
        if record is None:
            raise KeyError(key)
        metadata = record["metadata"]
        return metadata if select is None else select_metadata(metadata, select)

    def exists(self, key: str) -> bool:
        """Test whether or not a key exists in the store."""
        check_key(key)
        try:
            name = self._name(key)
        except ValueError:
            return False
        if self._legacy or "~" not in name:
            return os.path.isfile(self._record_path(name))
        return self._read_record(name, key, header_only=True) is not None

    def query(
        self, select: Iterable[str] | None = None, **kwargs: Any
    ) -> Iterator[tuple[str, dict]]:
        """Yield ``(key, metadata)`` for every key whose metadata matches *kwargs*."""
        if select is not None:
            select = list(select)
        entries = self._snapshot()
        return self._matches(entries, select, kwargs)

    @staticmethod
    def _matches(entries: list, select: Any, criteria: dict) -> Iterator[tuple[str, dict]]:
        for key, metadata in entries:
            if metadata_matches(metadata, criteria):
                yield key, select_metadata(metadata, select)

    def query_keys(self, **kwargs: Any) -> Iterator[str]:
        """Yield the keys whose metadata matches *kwargs*."""
        entries = self._snapshot()
        if not kwargs:
            return iter([key for key, _ in entries])
        return (key for key, metadata in entries if metadata_matches(metadata, kwargs))

    def to_file(
        self, key: str, path: str | os.PathLike, buffer_size: int = DEFAULT_BUFFER_SIZE
    ) -> None:
        """Copy the data of a key into a file (written beside it, then renamed into place)."""
        check_key(key)
        path = os.fspath(path)
        record, stream, _ = self._open_value(key)
        with stream:
            directory = os.path.dirname(os.path.abspath(path))
            tmp = _tmp_path(directory)
            try:
                with open(tmp, "xb") as out:
                    self._copy_stream(key, stream, out, record["size"], buffer_size,
                                      f"Saving key {key!r} to file {path!r}")
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise

    # -- the query cache ------------------------------------------------------

    def _snapshot(self) -> list[tuple[str, dict[str, Any]]]:
        """Return ``[(key, metadata)]`` for every key, from the up-to-date cache."""
        if self._legacy:
            return list(self._scan().values())
        with self._cache_lock:
            try:
                st = os.stat(self._journal_path)
                size, ino = st.st_size, st.st_ino
            except FileNotFoundError:
                size, ino = 0, None
            now = time.monotonic()
            if (
                self._cache is None
                or ino != self._journal_ino
                or size < self._journal_pos
                or now - self._scanned_at > self.full_rescan_interval
            ):
                # The journal size is read *before* scanning, so any change
                # journaled after this point is replayed by the next query.
                self._cache = self._scan(collect_garbage=True)
                self._journal_pos, self._journal_ino, self._scanned_at = size, ino, now
            elif size > self._journal_pos:
                self._replay_journal(size)
            return list(self._cache.values())

    def _replay_journal(self, size: int) -> None:
        with open(self._journal_path, "rb") as f:
            f.seek(self._journal_pos)
            chunk = f.read(size - self._journal_pos)
        end = chunk.rfind(b"\n") + 1  # a line being written is left for later
        self._journal_pos += end
        cache = self._cache
        assert cache is not None
        for raw in set(chunk[:end].split(b"\n")):
            if not raw:
                continue
            name = raw.decode("ascii", "replace")
            try:
                record = self._read_record(name, header_only=True)
            except (ValueError, OSError, KeyError):
                record = None
            if record is None:
                cache.pop(name, None)
            else:
                cache[name] = (record["key"], record["metadata"])

    def _scan(self, collect_garbage: bool = False) -> dict[str, tuple[str, dict[str, Any]]]:
        """Read every record; optionally remove old leftovers of crashed writers."""
        entries: dict[str, tuple[str, dict[str, Any]]] = {}
        data_files: list[str] = []
        referenced: set[str] = set()
        with os.scandir(self.path) as it:
            for entry in it:
                filename = entry.name
                if filename.endswith(RECORD_SUFFIX):
                    name = filename[: -len(RECORD_SUFFIX)]
                    try:
                        record = self._read_record(name, header_only=True)
                    except (ValueError, OSError, KeyError):
                        continue  # not a record of ours (or unreadable): not a key
                    if record is not None:
                        entries[name] = (record["key"], record["metadata"])
                        if record["data"]:
                            referenced.add(record["data"])
                elif collect_garbage and (
                    filename.startswith(_TMP_PREFIX) and filename.endswith(_TMP_SUFFIX)
                    or filename.endswith(DATA_SUFFIX)
                ):
                    data_files.append(filename)
        if collect_garbage and not self._legacy:
            self._collect_garbage(data_files, referenced)
        return entries

    def _collect_garbage(self, candidates: list[str], referenced: set[str]) -> None:
        cutoff = time.time() - _GARBAGE_AGE
        for filename in candidates:
            if filename in referenced:
                continue
            path = os.path.join(self.path, filename)
            try:
                if os.stat(path).st_mtime < cutoff:
                    os.unlink(path)
            except OSError:
                continue

    def _journal(self, name: str) -> None:
        """Append *name* to the change journal, so other processes' caches see it."""
        if self._legacy:
            return
        line = (name + "\n").encode("ascii")
        with self._journal_lock:
            f = self._journal_file
            if f is None:
                f = open(self._journal_path, "ab", buffering=0)  # noqa: SIM115 -- kept open
                self._journal_file = f
                weakref.finalize(self, _close_quietly, f)
            # One write of a short O_APPEND line is atomic between processes.
            f.write(line)

    # -- writing -----------------------------------------------------------

    def _copy_stream(self, key: str, source: Any, out: Any, size: int | None,
                     buffer_size: int, message: str | None = None) -> int:
        """Copy *source* into the open file *out* with progress events; return the size."""
        if size is not None and size > INLINE_MAX and _fd_at_position(source):
            copied = self._copy_fd(key, source, out, size, buffer_size, message)
            if copied is not None:
                return copied
        written = 0
        for chunk in self._iter_chunks(key, source, None, size, buffer_size, message):
            out.write(chunk)
            written += len(chunk)
        return written

    def _copy_fd(self, key: str, source: Any, out: Any, size: int, buffer_size: int,
                 message: str | None) -> int | None:
        """Copy between two real files in the kernel (``os.sendfile``), with progress.

        Returns None, having copied nothing, where the platform cannot.
        Progress events follow :meth:`_iter_chunks`: none for one chunk, else
        Start, a Step per chunk and End.
        """
        sendfile = getattr(os, "sendfile", None)
        if sendfile is None:
            return None
        out.flush()
        in_fd, out_fd = source.fileno(), out.fileno()
        chunk = max(buffer_size or 0, _FAST_CHUNK)
        try:
            first = sendfile(out_fd, in_fd, None, chunk)
        except OSError as error:
            if error.errno in (errno.EINVAL, errno.ENOSYS, errno.ENOTSOCK, errno.EOPNOTSUPP):
                return None  # e.g. macOS: sendfile only writes to sockets
            raise
        total = first
        n = sendfile(out_fd, in_fd, None, chunk) if first else 0
        if n == 0:
            source.seek(os.lseek(in_fd, 0, os.SEEK_CUR))
            return total
        if message is None:
            message = f"Transferring key {key!r}"
        try:
            with self._progress(message, key=key, steps=size) as progress:
                progress(message=f"{message} ({total} bytes)", step=total)
                while n:
                    total += n
                    progress(message=f"{message} ({total} bytes)", step=total)
                    n = sendfile(out_fd, in_fd, None, chunk)
        finally:
            # Keep the caller's file object in step with its descriptor.
            source.seek(os.lseek(in_fd, 0, os.SEEK_CUR))
        return total

    def _new_data_path(self, name: str) -> tuple[str, str]:
        if self._legacy:
            # EnCore's layout has one data file per key: stage it, rename later.
            return "", _tmp_path(self.path)
        filename = f"{name}.{os.urandom(8).hex()}{DATA_SUFFIX}"
        return filename, f"{self.path}{os.sep}{filename}"

    @staticmethod
    def _encode_metadata(metadata: dict[str, Any]) -> str:
        """Return *metadata* as (ASCII) JSON; TypeError if it cannot be."""
        try:
            return json.dumps(metadata)
        except (TypeError, ValueError) as e:
            raise TypeError(
                f"metadata must be JSON-serialisable for a file system store: {e}"
            ) from e

    def _publish(self, key: str, name: str, metadata_json: str, data_filename: str | None,
                 data_path: str | None, size: int, old: dict[str, Any] | None,
                 inline: bytes = b"") -> None:
        """Commit a new record for *name*, then retire the old data file.

        *metadata_json* is the metadata as made by :meth:`_encode_metadata`;
        *data_filename* None means the value is *inline*.
        """
        now = time.time()
        record_path = self._record_path(name)
        self._remember(name)
        if self._legacy:
            assert data_path is not None
            os.replace(data_path, os.path.join(self.path, name + DATA_SUFFIX))
            _write_atomic(record_path, metadata_json.encode("ascii"), self.path, self.durable)
            return
        created = old["created"] if old is not None and old.get("created") else now
        # The record header, composed around the already encoded metadata.
        data_json = "null" if data_filename is None else f'"{data_filename}"'  # ASCII-safe
        header = (
            f'{{"key": {_json_string(key)}, "data": {data_json}, '
            f'"size": {size:d}, "created": {created!r}, "modified": {now!r}, '
            f'"metadata": {metadata_json}}}\n'
        )
        _write_atomic(record_path, header.encode("ascii") + inline, self.path, self.durable)
        self._journal(name)
        if old is not None and old["data"] and old["data"] != data_filename:
            self._retire(old["data"])

    def set(self, key: str, value: Any, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Store a stream of data and its metadata into a key, atomically."""
        check_key(key)
        data, metadata, size = self._unpack_value(value)
        name = self._name(key)
        self._write(key, name, data, metadata, size, buffer_size)

    def _open_data_file(self, name: str) -> tuple[str | None, str, Any]:
        """Create the file a new value's data goes to: ``(filename, path, file)``.

        *filename* is what the record refers to (None in the legacy layout,
        where the staged file is renamed to ``<key>.data`` at the commit).
        """
        filename, path = self._new_data_path(name)
        out = open(path, "xb")  # noqa: SIM115 -- closed by _stage_data
        if filename:
            self._created(path)
        return filename or None, path, out

    def _stage_data(self, key: str, name: str, data: Any, size: int | None,
                    buffer_size: int, message: str | None
                    ) -> tuple[str | None, str | None, int, bytes]:
        """Read *data* to its end; return ``(filename, path, size, inline bytes)``.

        Small values are collected in memory, to be kept inside the record;
        a value that outgrows ``INLINE_MAX`` spills into a new data file
        (flushed and fsynced if the store is durable).  Nothing is left
        behind if reading fails.
        """
        inline_max = -1 if self._legacy or (size is not None and size > INLINE_MAX) else INLINE_MAX
        buffered: list[bytes] = []
        written = 0
        out = None
        filename: str | None = None
        path: str | None = None
        try:
            if inline_max < 0 and _fd_at_position(data):
                filename, path, out = self._open_data_file(name)
                written = self._copy_stream(key, data, out, size, buffer_size, message)
            else:
                for chunk in self._iter_chunks(key, data, None, size, buffer_size, message):
                    written += len(chunk)
                    if out is None:
                        if written <= inline_max:
                            buffered.append(chunk)
                            continue
                        filename, path, out = self._open_data_file(name)
                        out.writelines(buffered)
                        buffered = []
                    out.write(chunk)
            if out is None and inline_max < 0:
                # An empty value in the legacy layout still needs its file.
                filename, path, out = self._open_data_file(name)
            if out is not None:
                if self.durable:
                    out.flush()
                    os.fsync(out.fileno())
                out.close()
        except BaseException:
            if out is not None:
                out.close()
            if path is not None:
                with contextlib.suppress(OSError):
                    os.unlink(path)
            raise
        return filename, path, written, b"".join(buffered)

    def _write(self, key: str, name: str, data: Any, metadata: dict[str, Any],
               size: int | None, buffer_size: int, message: str | None = None) -> None:
        """Stage the data, then publish it with *metadata*: the body of every write."""
        metadata_json = self._encode_metadata(metadata)  # fails before anything is written
        filename, path, written, inline = self._stage_data(
            key, name, data, size, buffer_size, message
        )
        try:
            old = self._read_record(name, key, header_only=True)
            self._publish(key, name, metadata_json, filename, path, written, old, inline)
        except BaseException:
            if path is not None:
                with contextlib.suppress(OSError):
                    os.unlink(path)
            raise
        self._notify_set(key, metadata, old is not None)

    def set_data(self, key: str, data: Any, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Replace the data of a key, keeping its metadata (``{}`` for a new key)."""
        check_key(key)
        check_readable_stream(data)
        name = self._name(key)
        record = self._read_record(name, key, header_only=True)
        metadata = {} if record is None else record["metadata"]
        self._write(key, name, data, metadata, None, buffer_size)

    def from_file(self, key: str, path: str | os.PathLike,
                  buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Copy a file into the data of a key, keeping its metadata."""
        check_key(key)
        with open(path, "rb") as data:
            size = os.fstat(data.fileno()).st_size
            name = self._name(key)
            record = self._read_record(name, key, header_only=True)
            metadata = {} if record is None else record["metadata"]
            self._write(key, name, data, metadata, size, max(buffer_size, DEFAULT_BUFFER_SIZE),
                        f"Loading key {key!r} from file {os.fspath(path)!r}")

    def set_metadata(self, key: str, metadata: dict[str, Any]) -> None:
        """Replace the metadata of a key, keeping its data (empty for a new key).

        The data file is shared with the new record through a hard link, so
        large data is not copied.
        """
        check_key(key)
        check_metadata(metadata)
        metadata = copy_metadata(metadata)
        self._encode_metadata(metadata)
        self._relink(key, lambda old: metadata, create=True)

    def update_metadata(self, key: str, metadata: dict[str, Any]) -> None:
        """Merge *metadata* into the metadata of an existing key.

        Raises
        ------
        KeyError
            If the key is not present in the store.
        """
        check_key(key)
        check_metadata(metadata)
        update = copy_metadata(metadata)
        self._encode_metadata(update)

        def merge(old: dict[str, Any] | None) -> dict[str, Any]:
            if old is None:
                raise KeyError(key)
            merged = old["metadata"]
            merged.update(update)
            return merged

        try:
            self._name(key)
        except ValueError:
            raise KeyError(key) from None
        self._relink(key, merge, create=False)

    def _relink(self, key: str, make_metadata: Any, create: bool) -> None:
        """Publish new metadata for *key* over its current data."""
        name = self._name(key)
        for _ in range(_READ_RETRIES):
            old = self._read_record(name, key)
            metadata = make_metadata(old)
            if old is None or self._legacy:
                if old is None:
                    self._write(key, name, io.BytesIO(b""), metadata, 0, DEFAULT_BUFFER_SIZE)
                    return
                content = self._encode_metadata(metadata).encode("ascii")
                self._remember(name)
                _write_atomic(self._record_path(name), content, self.path, self.durable)
                data_path = os.path.join(self.path, name + DATA_SUFFIX)
                if not os.path.exists(data_path):
                    open(data_path, "ab").close()
                self._notify_set(key, metadata, True)
                return
            if old["data"] is None:
                self._publish(key, name, self._encode_metadata(metadata), None, None,
                              old["size"], old, old["inline"])
                self._notify_set(key, metadata, True)
                return
            data_filename, data_path = self._new_data_path(name)
            source = os.path.join(self.path, old["data"])
            self._created(data_path)
            try:
                os.link(source, data_path)
            except FileNotFoundError:
                continue  # replaced meanwhile: start again from the new record
            except OSError:
                # No hard links here (e.g. FAT): copy instead.
                try:
                    shutil.copyfile(source, data_path)
                except FileNotFoundError:
                    continue
            try:
                self._publish(key, name, self._encode_metadata(metadata), data_filename,
                              data_path, old["size"], old)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(data_path)
                raise
            self._notify_set(key, metadata, True)
            return
        raise FileSystemStoreError(f"key {key!r} kept changing while its metadata was set")

    def delete(self, key: str) -> None:
        """Delete a key; raises KeyError if it is missing."""
        check_key(key)
        try:
            name = self._name(key)
        except ValueError:
            raise KeyError(key) from None
        record = self._read_record(name, key, header_only=True)
        if record is None:
            raise KeyError(key)
        self._remember(name)
        try:
            os.unlink(self._record_path(name))  # the commit: the key is gone
        except FileNotFoundError:
            raise KeyError(key) from None
        if self.durable:
            _fsync_dir(self.path)
        self._journal(name)
        if self._legacy:
            # A rollback restores the data from the copy _remember made.
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self.path, record["data"]))
        elif record["data"]:
            self._retire(record["data"])
        self._notify_delete(key, record["metadata"])

    # -- transactions ------------------------------------------------------
    #
    # A transaction is made undoable, not isolated: writes happen at once (so
    # the transaction reads its own writes), the first change of each key
    # saves the key's record (legacy layout: and data), and data files the
    # writes replace are only removed at the commit.  A rollback restores the
    # saved records.  Only the thread owning the transaction records undo
    # information.

    def _in_transaction(self) -> bool:
        transaction = self._transaction
        return (
            self._undo is not None
            and transaction is not None
            and getattr(transaction, "active", False)
        )

    def _remember(self, name: str) -> None:
        """Save what a rollback needs to restore *name*, once per transaction."""
        if not self._in_transaction():
            return
        undo = self._undo
        assert undo is not None
        if name in undo:
            return
        try:
            with open(self._record_path(name), "rb") as f:
                record_bytes: bytes | None = f.read()
        except FileNotFoundError:
            record_bytes = None
        stash = None
        if self._legacy:
            data_path = os.path.join(self.path, name + DATA_SUFFIX)
            if os.path.exists(data_path):
                stash = _tmp_path(self.path)
                try:
                    os.link(data_path, stash)
                except OSError:
                    shutil.copyfile(data_path, stash)
        undo[name] = (record_bytes, stash)

    def _created(self, path: str) -> None:
        if self._in_transaction():
            self._created_files.append(path)

    def _retire(self, data_filename: str) -> None:
        """Remove a replaced data file now, or at the commit inside a transaction."""
        path = os.path.join(self.path, data_filename)
        if self._in_transaction():
            self._retired_files.append(path)
            return
        with contextlib.suppress(OSError):
            os.unlink(path)

    def _begin_transaction(self) -> None:
        self._undo = {}
        self._created_files = []
        self._retired_files = []

    def _end_transaction(self) -> tuple[dict[str, tuple[bytes | None, str | None]], list, list]:
        state = (self._undo or {}, self._created_files, self._retired_files)
        self._undo, self._created_files, self._retired_files = None, [], []
        return state

    def _commit_transaction(self) -> None:
        undo, _, retired = self._end_transaction()
        for path in retired + [stash for _, stash in undo.values() if stash]:
            with contextlib.suppress(OSError):
                os.unlink(path)

    def _rollback_transaction(self) -> None:
        undo, created, _ = self._end_transaction()
        for name, (record_bytes, stash) in undo.items():
            record_path = self._record_path(name)
            if self._legacy:
                data_path = os.path.join(self.path, name + DATA_SUFFIX)
                if stash is not None:
                    os.replace(stash, data_path)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(data_path)
            if record_bytes is None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(record_path)
            else:
                _write_atomic(record_path, record_bytes, self.path, self.durable)
            self._journal(name)
        for path in created:
            with contextlib.suppress(OSError):
                os.unlink(path)

    # -- lifecycle ---------------------------------------------------------

    def connect(self, credentials: Any = None) -> None:
        """Connect to the store (nothing to open; *credentials* are ignored)."""
        self._connected = True

    def disconnect(self) -> None:
        """Disconnect from the store and close the change journal."""
        self._connected = False
        with self._journal_lock:
            if self._journal_file is not None:
                self._journal_file.close()
                self._journal_file = None

    def info(self) -> dict[str, Any]:
        """Return information about the store: type, naming scheme version and path."""
        return {"type": "FileSystemStore", "version": self.version, "readonly": False,
                "path": self.path}
