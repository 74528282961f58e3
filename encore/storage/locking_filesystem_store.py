"""A file system store whose clients lock keys and share a commit log.

:class:`LockingFileSystemStore` is a :class:`~encore.storage.filesystem_store.FileSystemStore`
(same directory layout, same magic file) for several processes -- possibly on
several hosts sharing the directory -- that read and write the same keys:

* Every write takes the key's exclusive :class:`~encore.storage.file_lock.FileLock`
  (``<root>/<name>.lock``), so read-modify-write operations such as
  ``update_metadata`` and ``set_data`` are isolated from other clients of
  this class, and a write waits while clients hold the key's
  :class:`~encore.storage.file_lock.SharedFileLock`.  Reads (``get``,
  ``get_data``, ``get_metadata``) wait while another client holds the key
  exclusively; since values are published atomically they need no lock of
  their own, except inside a transaction, where they take the shared lock
  and keep it until the end.  ``exists`` and ``query`` read published
  records without waiting.
* Every write appends one line ``"<id> <action> <UTC time> <key>"`` to the
  commit log ``<root>/__log__.txt`` (``w`` for set, set_data, set_metadata
  and from_file/from_bytes, ``u`` for update_metadata, ``d`` for delete);
  ids increase by one.  :meth:`LockingFileSystemStore.get_modified_keys`
  reads it back, and every 10 000 entries its older half is moved to
  ``__log__.txt.<first id>`` (the 5 newest such files are kept).
* A daemon thread polls the log every ``remote_event_poll_interval``
  seconds and announces the writes of *other* clients as
  :class:`~encore.storage.events.StoreSetEvent`,
  :class:`~encore.storage.events.StoreUpdateEvent` or
  :class:`~encore.storage.events.StoreDeleteEvent` with ``source`` the store,
  the key, its current metadata, ``timestamp`` (a UTC datetime) and
  ``remote=True``.  It stops on :meth:`~LockingFileSystemStore.disconnect`
  (and when the store is garbage-collected).

Caveats
-------
Locks are advisory: plain :class:`FileSystemStore` clients ignore them.  A
lock held for longer than ``force_lock_timeout`` is broken by the next waiter
(a lock left by a dead process on the same host is broken at once), so an
operation that takes longer than that loses its exclusion.  Inside a
transaction the locks of the keys touched are held until it ends: two clients
touching the same keys in opposite orders wait for each other until one
breaks the other's lock.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import re
import threading
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

from .abstract_store import DEFAULT_BUFFER_SIZE, check_key
from .events import StoreDeleteEvent, StoreKeyEvent, StoreSetEvent, StoreUpdateEvent
from .file_lock import FileLock, SharedFileLock
from .filesystem_store import FileSystemStore, _write_atomic

__all__ = ["LockingFileSystemStore"]

logger = logging.getLogger(__name__)

LOG_NAME = "__log__.txt"
#: The log is rotated when an id is a multiple of this.
LOG_ROTATE_EVERY = 10_000
#: Rotated log files kept.
LOG_KEEP = 5
_TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
_EVENT_CLASSES = {"w": StoreSetEvent, "u": StoreUpdateEvent, "d": StoreDeleteEvent}
#: Characters escaped in keys written to the log, so a line stays one line.
_LOG_ESCAPE = re.compile(r"[%\r\n]")
#: Poll interval for lock waits: the locks are held for a short write.
_LOCK_POLL = 0.002


def _escape_log_key(key: str) -> str:
    return _LOG_ESCAPE.sub(lambda m: f"%{ord(m.group()):02X}", key)


def _unescape_log_key(text: str) -> str:
    return re.sub(r"%(25|0D|0A)", lambda m: chr(int(m.group(1), 16)), text)


def _parse_time(text: str) -> datetime.datetime:
    # EnCore wrote str(datetime.utcnow()), which drops ".ffffff" at 0 microseconds.
    try:
        return datetime.datetime.strptime(text, _TIME_FORMAT)
    except ValueError:
        return datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S")


def _parse_line(line: bytes) -> tuple[int, str, datetime.datetime, str] | None:
    """Parse one log line into ``(id, action, time, key)``; None if malformed."""
    try:
        text = line.decode("utf-8", "surrogatepass")
        ident, action, day, clock, key = text.split(" ", 4)
        return int(ident), action, _parse_time(f"{day} {clock}"), _unescape_log_key(key)
    except ValueError:
        return None


def _last_id(path: str) -> int | None:
    """The id of the last entry of a log file (None if it has none)."""
    ident = _last_line(path).split(b" ", 1)[0]
    return int(ident) if ident.isdigit() else None


def _last_line(path: str) -> bytes:
    """Return the last complete line of a file (without its newline), or b''."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        end = os.fstat(fd).st_size
        block = 4096
        tail = b""
        pos = end
        while pos > 0:
            step = min(block, pos)
            pos -= step
            os.lseek(fd, pos, os.SEEK_SET)  # (os.pread does not exist on Windows)
            tail = os.read(fd, step) + tail
            stripped = tail.rstrip(b"\n")
            cut = stripped.rfind(b"\n")
            if cut >= 0:
                return stripped[cut + 1 :]
            block *= 2
        return tail.rstrip(b"\n")
    finally:
        os.close(fd)


def _poll_loop(store_ref: Any, stop: threading.Event, interval: float) -> None:
    """Body of the remote-event thread; holds the store only weakly."""
    while not stop.wait(interval):
        store = store_ref()
        if store is None:
            return
        try:
            store._poll_log()
        except OSError:
            # The store directory went away: nothing left to watch.
            logger.debug("stopping remote event polling of %s", store.path, exc_info=True)
            return
        except Exception:
            logger.exception("error while polling the commit log of %s", store.path)
        del store


class LockingFileSystemStore(FileSystemStore):
    """A file system store that locks keys and logs every change (see the module docs).

    Parameters
    ----------
    path : str or path-like
        A path to the root of the file system store.
    force_lock_timeout : float
        Seconds after which a waiter breaks a lock held by another client.
    magic_fname : str
        The name of the magic file in that directory.
    remote_event_poll_interval : float
        Seconds between two polls of the commit log for remote changes; 0 or
        a negative number disables the polling thread.
    max_time_delta : datetime.timedelta
        Slack subtracted from the time given to :meth:`get_modified_keys`, to
        allow for clock differences between hosts.
    durable : bool
        Keyword-only; as for :class:`FileSystemStore`.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        force_lock_timeout: float = 10.0,
        magic_fname: str = ".FSStore",
        remote_event_poll_interval: float = 5.0,
        max_time_delta: datetime.timedelta = datetime.timedelta(minutes=1),
        *,
        durable: bool = False,
    ) -> None:
        super().__init__(path, magic_fname, durable=durable)
        self.force_lock_timeout = force_lock_timeout
        self.remote_event_poll_interval = remote_event_poll_interval
        self.max_time_delta = max_time_delta
        self.log_path = os.path.join(self.path, LOG_NAME)
        with contextlib.suppress(FileExistsError):
            open(self.log_path, "xb").close()
        self._local = threading.local()
        self._own_ids: set[int] = set()
        self._own_ids_lock = threading.Lock()
        self._pending_log: list[tuple[str, str]] = []
        # Remote polling starts from the current end of the log.
        st = os.stat(self.log_path)
        self._poll_ino = st.st_ino
        self._poll_pos = st.st_size
        self._poll_last_id = _last_id(self.log_path) or 0
        self._poll_lock = threading.Lock()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._start_poller()

    # -- the poller --------------------------------------------------------

    def _start_poller(self) -> None:
        if self.remote_event_poll_interval <= 0:
            return
        if self._poller is not None and self._poller.is_alive():
            return
        self._stop = threading.Event()
        self._poller = threading.Thread(
            target=_poll_loop,
            args=(weakref.ref(self), self._stop, self.remote_event_poll_interval),
            name=f"LockingFileSystemStore poller ({self.path})",
            daemon=True,
        )
        weakref.finalize(self, self._stop.set)
        self._poller.start()

    def connect(self, credentials: Any = None) -> None:
        """Connect to the store and (re)start the remote-event poller."""
        super().connect(credentials)
        self._start_poller()

    def disconnect(self) -> None:
        """Stop the remote-event poller (waiting for it briefly) and disconnect."""
        self._stop.set()
        poller = self._poller
        if poller is not None and poller is not threading.current_thread():
            poller.join(10.0)
        self._poller = None
        super().disconnect()

    def _poll_log(self) -> None:
        """Emit events for log entries written by other clients since the last poll."""
        with self._poll_lock:
            st = os.stat(self.log_path)
            if st.st_ino != self._poll_ino or st.st_size < self._poll_pos:
                # Rotated: read the new file from the start, skipping seen ids.
                self._poll_ino, self._poll_pos = st.st_ino, 0
            if st.st_size == self._poll_pos:
                return
            with open(self.log_path, "rb") as f:
                f.seek(self._poll_pos)
                chunk = f.read(st.st_size - self._poll_pos)
            end = chunk.rfind(b"\n") + 1
            self._poll_pos += end
            entries = []
            for line in chunk[:end].splitlines():
                parsed = _parse_line(line)
                if parsed is None or parsed[0] <= self._poll_last_id:
                    continue
                self._poll_last_id = parsed[0]
                entries.append(parsed)
        for ident, action, when, key in entries:
            with self._own_ids_lock:
                if ident in self._own_ids:
                    self._own_ids.discard(ident)
                    continue
            metadata = None
            if action != "d":
                try:
                    metadata = FileSystemStore.get_metadata(self, key)
                except (KeyError, ValueError):
                    metadata = None
            cls = _EVENT_CLASSES.get(action, StoreKeyEvent)
            self.event_manager.emit(
                cls(self, key=key, metadata=metadata, timestamp=when, remote=True)
            )

    # -- locks ---------------------------------------------------------------

    def _held(self) -> dict[str, tuple[Any, str]]:
        """The locks this thread holds: name -> (lock object, 'r' or 'w')."""
        held = getattr(self._local, "held", None)
        if held is None:
            held = self._local.held = {}
        return held

    def _lock_uid(self) -> str:
        return f"{id(self):x}.{threading.get_ident():x}"

    @contextlib.contextmanager
    def _reading(self, key: str) -> Iterator[None]:
        """Let a read proceed once no other client holds *key* exclusively.

        Records are published atomically and data files never change, so a
        read needs no lock of its own to be consistent: it only waits for a
        writer (or a transaction) holding the key, exactly as a shared lock
        would, but with one ``stat`` instead of four file operations.  Inside
        a transaction it takes and keeps a real shared lock instead, so the
        keys read stay unchanged until the transaction ends.
        """
        if self._in_transaction():
            with self._locked(key, "r"):
                yield
            return
        check_key(key)
        try:
            name = self._name(key)
        except ValueError:
            yield
            return
        if name not in self._held() and os.path.isfile(
            os.path.join(self.path, name + ".lock")
        ):
            SharedFileLock(name, dir=self.path, poll_interval=_LOCK_POLL,
                           force_timeout=self.force_lock_timeout).wait()
        yield

    @contextlib.contextmanager
    def _locked(self, key: str, mode: str) -> Iterator[None]:
        """Hold *key*'s lock (``'r'`` shared, ``'w'`` exclusive) for the block.

        Re-entrant per thread; inside a transaction locks are kept until it ends.
        """
        check_key(key)
        try:
            name = self._name(key)
        except ValueError:
            # Not a storable key: the store raises the proper error itself.
            yield
            return
        held = self._held()
        current = held.get(name)
        if current is not None and (current[1] == "w" or mode == "r"):
            yield
            return
        if current is not None:
            # Upgrade a read lock taken earlier in a transaction.
            current[0].release()
            del held[name]
        cls = FileLock if mode == "w" else SharedFileLock
        lock = cls(name, dir=self.path, poll_interval=_LOCK_POLL,
                   force_timeout=self.force_lock_timeout, uid=self._lock_uid())
        lock.acquire()  # timeout 0: waits, breaking stale or over-long locks
        held[name] = (lock, mode)
        try:
            yield
        finally:
            if not self._in_transaction():
                del held[name]
                lock.release()

    def _release_all(self) -> None:
        held = self._held()
        while held:
            _, (lock, _) = held.popitem()
            with contextlib.suppress(Exception):
                lock.release()

    @contextlib.contextmanager
    def _write_op(self, key: str, action: str) -> Iterator[None]:
        """Lock *key* exclusively and log the write once, for the outermost call."""
        depth = getattr(self._local, "depth", 0)
        self._local.depth = depth + 1
        try:
            with self._locked(key, "w"):
                yield
                if depth == 0:
                    if self._in_transaction():
                        self._pending_log.append((action, key))
                    else:
                        self._append_log([(action, key)])
        finally:
            self._local.depth = depth

    # -- the commit log ------------------------------------------------------

    def _append_log(self, entries: list[tuple[str, str]]) -> None:
        if not entries:
            return
        log_lock = FileLock(LOG_NAME, dir=self.path, poll_interval=_LOCK_POLL,
                            force_timeout=self.force_lock_timeout, uid=self._lock_uid())
        with log_lock:
            last = _last_id(self.log_path)
            if last is None:
                last = self._last_rotated_id()
            lines = []
            ids = []
            for action, key in entries:
                last += 1
                ids.append(last)
                now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
                lines.append(f"{last} {action} {now.strftime(_TIME_FORMAT)} "
                             f"{_escape_log_key(key)}\n")
            if self._poller is not None:
                # Remembered so the poller does not announce them as remote.
                with self._own_ids_lock:
                    self._own_ids.update(ids)
            with open(self.log_path, "ab") as f:
                f.write("".join(lines).encode("utf-8", "surrogatepass"))
                if self.durable:
                    f.flush()
                    os.fsync(f.fileno())
            if any(ident % LOG_ROTATE_EVERY == 0 for ident in ids):
                self._rotate_log()

    def _rotated_logs(self) -> list[tuple[int, str]]:
        found = []
        prefix = LOG_NAME + "."
        for filename in os.listdir(self.path):
            if filename.startswith(prefix) and filename[len(prefix):].isdigit():
                found.append((int(filename[len(prefix):]), os.path.join(self.path, filename)))
        return sorted(found)

    def _last_rotated_id(self) -> int:
        """The last id of the newest rotated log (the current log may be empty)."""
        rotated = self._rotated_logs()
        if not rotated:
            return 0
        return _last_id(rotated[-1][1]) or 0

    def _rotate_log(self) -> None:
        """Move the older half of the log to ``__log__.txt.<first id>`` (log lock held)."""
        with open(self.log_path, "rb") as f:
            lines = f.read().splitlines(keepends=True)
        half = len(lines) // 2
        older, newer = lines[:half], lines[half:]
        first = _parse_line(older[0].rstrip(b"\n")) if older else None
        if first is None:
            return
        _write_atomic(f"{self.log_path}.{first[0]}", b"".join(older), self.path, self.durable)
        _write_atomic(self.log_path, b"".join(newer), self.path, self.durable)
        for _, path in self._rotated_logs()[:-LOG_KEEP]:
            with contextlib.suppress(OSError):
                os.unlink(path)

    def get_modified_keys(self, since: datetime.datetime | str) -> list[str]:
        """Return the keys written since a time, in log order, duplicates included.

        Parameters
        ----------
        since : datetime or str
            A UTC time (naive datetimes are taken as UTC), or a string in
            ``'%Y-%m-%d %H:%M:%S.%f'`` format.  ``max_time_delta`` is
            subtracted to allow for clock skew between hosts.

        Returns
        -------
        keys : list of str
            Keys of the current log from its first entry after that time on
            (rotated logs are not read).
        """
        if isinstance(since, str):
            since = _parse_time(since)
        elif since.tzinfo is not None:
            since = since.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        threshold = since - self.max_time_delta
        keys: list[str] = []
        found = False
        with open(self.log_path, "rb") as f:
            for line in f:
                parsed = _parse_line(line.rstrip(b"\n"))
                if parsed is None:
                    continue
                if not found and parsed[2] > threshold:
                    found = True
                if found:
                    keys.append(parsed[3])
        return keys

    # -- transactions --------------------------------------------------------

    def _begin_transaction(self) -> None:
        super()._begin_transaction()
        self._pending_log = []

    def _commit_transaction(self) -> None:
        try:
            super()._commit_transaction()
            entries, self._pending_log = self._pending_log, []
            self._append_log(entries)
        finally:
            self._release_all()

    def _rollback_transaction(self) -> None:
        try:
            self._pending_log = []
            super()._rollback_transaction()
        finally:
            self._release_all()

    # -- locked operations ---------------------------------------------------

    def get(self, key: str) -> Any:
        """Retrieve the value of a key once no other client is writing it."""
        with self._reading(key):
            return super().get(key)

    def get_data(self, key: str) -> Any:
        """Retrieve the data stream of a key once no other client is writing it."""
        with self._reading(key):
            return super().get_data(key)

    def get_metadata(self, key: str, select: Iterable[str] | None = None) -> dict[str, Any]:
        """Retrieve the metadata of a key once no other client is writing it."""
        with self._reading(key):
            return super().get_metadata(key, select)

    def set(self, key: str, value: Any, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Store a value into a key under its exclusive lock, and log it."""
        with self._write_op(key, "w"):
            super().set(key, value, buffer_size)

    def set_data(self, key: str, data: Any, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Replace the data of a key under its exclusive lock, and log it."""
        with self._write_op(key, "w"):
            super().set_data(key, data, buffer_size)

    def from_file(self, key: str, path: str | os.PathLike,
                  buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Copy a file into a key under its exclusive lock, and log it."""
        with self._write_op(key, "w"):
            super().from_file(key, path, buffer_size)

    def set_metadata(self, key: str, metadata: dict[str, Any]) -> None:
        """Replace the metadata of a key under its exclusive lock, and log it."""
        with self._write_op(key, "w"):
            super().set_metadata(key, metadata)

    def update_metadata(self, key: str, metadata: dict[str, Any]) -> None:
        """Merge metadata into a key under its exclusive lock, and log it."""
        with self._write_op(key, "u"):
            super().update_metadata(key, metadata)

    def delete(self, key: str) -> None:
        """Delete a key under its exclusive lock, and log it."""
        with self._write_op(key, "d"):
            super().delete(key)

    def info(self) -> dict[str, Any]:
        """Return information about the store."""
        info = super().info()
        info["type"] = "LockingFileSystemStore"
        return info
