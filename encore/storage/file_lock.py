"""Advisory file locks that work between threads, processes and hosts.

:class:`FileLock` is an exclusive lock: the lock is held while the file
``<name>.lock`` exists, and it is taken by creating that file atomically
(``os.open`` with ``O_CREAT | O_EXCL``).  :class:`SharedFileLock` is the
matching shared (reader) lock: every holder creates its own file inside the
*directory* ``<name>.lock``, so shared holders and an exclusive holder can
never coexist -- the exclusive lock can only be created once the directory has
been removed, which only succeeds while it is empty, and a shared holder
cannot create its file while a plain file sits at that path.

The locks are *advisory*: nothing stops code that ignores them.  They work on
local file systems and on NFS (Linux >= 2.6.5 creates files exclusively over
NFS).  A lock is **not** released when its object is garbage-collected; use
``with lock:`` or call :meth:`FileLock.release`.

Ownership is judged by the content of the lock file: a :class:`FileLock`
owns the lock when the file holds exactly its :attr:`FileLock.data`.  The
default data names the host, process id, user and ``uid`` of the holder, so
two lock objects in the same process with the same ``uid`` share ownership
(this is deliberate; the locking file system store relies on it).

Stale locks
-----------
A lock whose holder died leaves its file behind.  When the default data shows
that the holder ran on *this* host and its process no longer exists, a waiter
removes the lock at once instead of waiting for ``force_timeout``.  Holders on
other hosts cannot be checked; ``force_timeout`` is the only remedy for them.
Stale locks are removed under a short-lived guard file (``<lock>.break``) so
that two waiters breaking the same stale lock cannot remove a fresh lock taken
in between.  ``force_timeout`` on the other hand breaks a *live* lock if it is
held for longer than that: choose it well above the longest critical section.

Thread safety: a lock object may be shared between threads, but the lock is
held by the *object* (by its data), not by a thread, exactly like the files
it manages.
"""

from __future__ import annotations

import contextlib
import functools
import getpass
import os
import shutil
import socket
import sys
import threading
import time
import uuid
from types import TracebackType

__all__ = ["FileLock", "LockError", "SharedFileLock"]

#: Seconds after which a ``.break`` guard file left by a crashed breaker is
#: ignored.  Holding the guard takes microseconds, so this is generous.
_GUARD_MAX_AGE = 10.0

_O_BINARY = getattr(os, "O_BINARY", 0)


class LockError(Exception):
    """Raised when a lock is released without being held, or cannot be taken."""


def _hostname() -> str:
    return socket.gethostname()


@functools.lru_cache(maxsize=1)
def _username() -> str:
    # getpass.getuser() raises in containers whose uid has no passwd entry;
    # fall back to the numeric uid so that lock data can always be built.
    try:
        return getpass.getuser()
    except Exception:
        getuid = getattr(os, "getuid", None)
        return str(getuid()) if getuid is not None else "unknown"


def _lock_path(name: str, dir: str | None) -> str:
    if dir is None:
        return name + ".lock"
    return os.path.join(dir, name.lstrip("/").lstrip("\\") + ".lock")


def _pid_alive(pid: int) -> bool:
    """Return False only when process ``pid`` certainly does not exist."""
    if pid <= 0:
        return True
    if pid == os.getpid():
        return True
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        return _pid_alive_windows(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        # EPERM: it exists but belongs to someone else.
        return True
    return True


def _pid_alive_windows(pid: int) -> bool:  # pragma: no cover - Windows only
    # os.kill(pid, 0) would *terminate* the process on Windows.
    import ctypes

    process_query_limited_information = 0x1000
    still_active = 259
    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    handle = kernel32.OpenProcess(process_query_limited_information, False, pid)
    if not handle:
        # Access denied means it exists; anything else means it is gone.
        return ctypes.get_last_error() == 5
    try:
        code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True
        return code.value == still_active
    finally:
        kernel32.CloseHandle(handle)


def _holder_is_dead(host: str, pid_text: str) -> bool:
    """True when ``host``/``pid_text`` name a process of this host that is gone."""
    if host != _hostname():
        return False
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    return not _pid_alive(pid)


def _stale_owner(content: bytes | None) -> bool:
    """True when lock-file ``content`` (default format) names a dead local process."""
    if not content or not content.endswith(b"\nLOCK"):
        # Custom data, or a file caught between creation and its write:
        # we cannot tell, so it is not stale.
        return False
    lines = content.split(b"\n")
    if len(lines) < 5:
        return False
    try:
        host = lines[0].decode("utf-8")
        pid_text = lines[1].decode("ascii")
    except UnicodeDecodeError:
        return False
    return _holder_is_dead(host, pid_text)


def _read(path: str) -> bytes | None:
    """The content of a (small) lock file, or None if it cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY | _O_BINARY)
    except OSError:
        return None
    try:
        parts = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                return b"".join(parts)
            parts.append(chunk)
    except OSError:
        return None  # e.g. EISDIR: shared holders, not a lock file
    finally:
        os.close(fd)


def _create_exclusive(path: str, data: bytes) -> None:
    """Create ``path`` with ``data``, failing with ``FileExistsError`` if it exists."""
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR | _O_BINARY, 0o644)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    os.close(fd)


def _unlink_retrying(path: str) -> None:
    """Remove ``path``; on Windows a reader may hold it open briefly (EACCES)."""
    for _ in range(100):
        try:
            os.unlink(path)
            return
        except PermissionError:
            if sys.platform != "win32":
                raise
            time.sleep(0.01)
    os.unlink(path)


class _BreakGuard:
    """A tiny exclusive section used only to remove stale locks safely.

    Every stale-lock breaker re-reads the lock under this guard, so the file
    it removes is the one it judged stale and not a fresh lock created after
    another breaker removed the stale one.
    """

    def __init__(self, lock_path: str) -> None:
        self.path = lock_path + ".break"
        # Same layout as FileLock's default data, so staleness is judged alike.
        self.data = (
            f"{_hostname()}\n{os.getpid()}\n{_username()}\n{uuid.uuid4().hex}\nLOCK".encode()
        )

    def __enter__(self) -> bool:
        try:
            _create_exclusive(self.path, self.data)
            return True
        except FileExistsError:
            self._clear_if_stale()
            return False
        except OSError:
            return False

    def __exit__(self, *exc_info: object) -> None:
        if _read(self.path) == self.data:
            with contextlib.suppress(OSError):
                _unlink_retrying(self.path)

    def _clear_if_stale(self) -> None:
        content = _read(self.path)
        stale = _stale_owner(content)
        if not stale:
            try:
                stale = time.time() - os.stat(self.path).st_mtime > _GUARD_MAX_AGE
            except OSError:
                return
        if stale and _read(self.path) == content:
            with contextlib.suppress(OSError):
                os.unlink(self.path)


class FileLock:
    """An exclusive advisory lock held by the existence of a file.

    Parameters
    ----------
    name : str
        The name of the lock; the lock file is ``name + '.lock'``.
    dir : str, optional
        Directory the lock file lives in.  Leading path separators are
        stripped from ``name`` when a directory is given.  Without it the
        path is relative to the current directory (or absolute).
    poll_interval : float
        Seconds to sleep between attempts while waiting.
    timeout : float
        Give up waiting after this many seconds (``acquire`` then returns
        False); 0 waits for ever.
    force_timeout : float
        After waiting this many seconds, break the lock held by someone else
        and try again; 0 never forces.
    uid : object, optional
        Identifies the owner inside the lock data (default ``id(self)``);
        any value with a ``str()``, e.g. an int or a string.
    data : bytes, optional
        Content written into the lock file, replacing the default
        ``b"<host>\\n<pid>\\n<user>\\n<uid>\\nLOCK"`` (UTF-8).  Custom data
        disables stale-owner detection for this lock.
    """

    def __init__(
        self,
        name: str,
        dir: str | None = None,
        poll_interval: float = 0.01,
        timeout: float = 0,
        force_timeout: float = 0,
        uid: object = None,
        data: bytes | None = None,
    ) -> None:
        self.name = name
        self.dir = dir
        self.full_path = _lock_path(name, dir)
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.force_timeout = force_timeout
        self.uid = id(self) if uid is None else uid
        self._custom_data = data
        self._data_pid = -1
        self._default_data = b""

    @property
    def data(self) -> bytes:
        """The bytes this lock writes into its lock file and judges ownership by."""
        if self._custom_data is not None:
            return self._custom_data
        pid = os.getpid()
        if pid != self._data_pid:
            # Rebuilt after a fork, so a child never passes for its parent.
            self._default_data = (
                f"{_hostname()}\n{pid}\n{_username()}\n{self.uid}\nLOCK".encode()
            )
            self._data_pid = pid
        return self._default_data

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.full_path!r}, uid={self.uid!r})"

    # -- taking and releasing ---------------------------------------------

    def _try_acquire(self) -> bool:
        """One attempt to take the lock; clears stale or empty obstacles."""
        path = self.full_path
        for _ in range(2):
            try:
                _create_exclusive(path, self.data)
                return True
            except FileExistsError:
                pass
            if os.path.isdir(path):
                # Shared holders, or an empty directory they left behind.
                _clear_dead_holders(path)
                try:
                    os.rmdir(path)
                except OSError:
                    return False  # still held
            elif not self._break_if_stale():
                return False
            # The obstacle is gone: try again at once rather than after a poll.
        return False

    def _break_if_stale(self) -> bool:
        """Remove the exclusive lock file if its owner is a dead local process."""
        path = self.full_path
        content = _read(path)
        if not _stale_owner(content):
            return False
        with _BreakGuard(path) as guarded:
            if guarded and _read(path) == content:
                try:
                    _unlink_retrying(path)
                    return True
                except OSError:
                    return False
        return False

    def _wait_for(self, attempt) -> bool:
        """Call ``attempt()`` until it succeeds, honouring the timeouts."""
        start = force_start = time.monotonic()
        while True:
            if attempt():
                return True
            now = time.monotonic()
            if self.timeout > 0 and now - start >= self.timeout:
                return False
            if self.force_timeout > 0 and now - force_start >= self.force_timeout:
                self.force_break()
                # Restart the force clock so that whoever takes the lock next
                # gets a full force_timeout before being broken in turn.
                force_start = now
                continue
            time.sleep(self.poll_interval)

    def acquire(self) -> bool:
        """Wait for and take the lock.

        Returns
        -------
        bool
            True once the lock is held; False when ``timeout`` elapsed first.
            The lock is not reentrant: acquiring again while holding it waits
            (or times out).
        """
        return self._wait_for(self._try_acquire)

    def release(self) -> None:
        """Release the lock.

        Raises
        ------
        LockError
            ``'Releasing an unlocked lock'`` if there is no lock file, and
            ``'Releasing an unacquired lock'`` if it is held by someone else.
        """
        content = _read(self.full_path)
        if content is None:
            raise LockError(f"Releasing an unlocked lock: {self.full_path}")
        if content != self.data:
            raise LockError(f"Releasing an unacquired lock: {self.full_path}")
        _unlink_retrying(self.full_path)

    # -- inspection ------------------------------------------------------------

    def locked(self) -> bool:
        """True if the lock is held by anyone, exclusively or by shared holders."""
        path = self.full_path
        if os.path.isdir(path):
            try:
                return any(True for _ in os.scandir(path))
            except OSError:
                return False
        return os.path.lexists(path)

    def acquired(self) -> bool:
        """True if this object owns the lock (the file holds :attr:`data`)."""
        return _read(self.full_path) == self.data

    def get_data(self) -> bytes | None:
        """Return the content of the lock file, or None if there is none."""
        return _read(self.full_path)

    def force_break(self) -> bool:
        """Remove the lock whoever holds it, shared holders included.

        Returns False only if there was nothing to remove.
        """
        path = self.full_path
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                _unlink_retrying(path)
        except FileNotFoundError:
            return False
        return True

    def wait(self) -> bool:
        """Wait until nobody holds the lock, without taking it.

        Honours ``timeout`` (returning False) and ``force_timeout``; a stale
        lock of a dead local process is removed.
        """

        def free() -> bool:
            if not self.locked():
                return True
            if os.path.isdir(self.full_path):
                _clear_dead_holders(self.full_path)
            else:
                self._break_if_stale()
            return not self.locked()

        return self._wait_for(free)

    def __enter__(self) -> FileLock:
        if not self.acquire():
            raise LockError(
                f"Timed out after {self.timeout} s waiting for lock {self.full_path}"
            )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _quote(component: str) -> str:
    """Percent-encode a holder-name component so ``__`` stays a separator."""
    out = []
    for ch in component:
        if ch.isascii() and (ch.isalnum() or ch in ".-"):
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
    return "".join(out)


def _unquote(component: str) -> str:
    from urllib.parse import unquote

    return unquote(component)


def _clear_dead_holders(dir_path: str) -> None:
    """Remove shared-holder files whose (local) process no longer exists."""
    try:
        entries = os.listdir(dir_path)
    except OSError:
        return
    for entry in entries:
        parts = entry[: -len(".lock")].split("__") if entry.endswith(".lock") else []
        if len(parts) != 4:
            continue
        if _holder_is_dead(_unquote(parts[0]), _unquote(parts[1])):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(dir_path, entry))


class SharedFileLock(FileLock):
    """A shared (reader) lock, compatible with :class:`FileLock` of the same name.

    Any number of shared holders may hold it at once; an exclusive
    :class:`FileLock` with the same ``name`` and ``dir`` excludes them all.
    Each holder creates ``<dir_path>/<host>__<pid>__<user>__<uid>.lock``
    (components percent-encoded).  The lock is reentrant per object: every
    ``acquire`` must be matched by a ``release``.  Two objects with the same
    ``uid`` in the same process share one holder file.

    Parameters are those of :class:`FileLock` (without ``data``).
    """

    def __init__(
        self,
        name: str,
        dir: str | None = None,
        poll_interval: float = 0.01,
        timeout: float = 0,
        force_timeout: float = 0,
        uid: object = None,
    ) -> None:
        super().__init__(name, dir, poll_interval, timeout, force_timeout, uid)
        self.dir_path = self.full_path
        self._level = 0
        self._level_lock = threading.Lock()
        self._acquiring = threading.Lock()

    @property
    def holder_path(self) -> str:
        """Path of this holder's file inside :attr:`dir_path`."""
        name = "__".join(
            _quote(part) for part in (_hostname(), str(os.getpid()), _username(), str(self.uid))
        )
        return os.path.join(self.dir_path, name + ".lock")

    def _try_acquire(self) -> bool:
        holder = self.holder_path
        try:
            fd = os.open(holder, os.O_CREAT | os.O_WRONLY | _O_BINARY, 0o644)
        except FileNotFoundError:
            # No directory yet: make it and try again at once.
            with contextlib.suppress(FileExistsError):
                os.mkdir(self.dir_path)
            return self._try_once_more(holder)
        except NotADirectoryError:
            self._break_if_stale()
            return False
        os.close(fd)
        return True

    def _try_once_more(self, holder: str) -> bool:
        try:
            fd = os.open(holder, os.O_CREAT | os.O_WRONLY | _O_BINARY, 0o644)
        except (FileNotFoundError, NotADirectoryError):
            # An exclusive holder won the race for the path; wait for it.
            return False
        os.close(fd)
        return True

    def acquire(self) -> bool:
        """Take a shared hold (reentrant); False if ``timeout`` elapsed first."""
        with self._level_lock:
            if self._level > 0:
                self._level += 1
                return True
        # Threads taking the first level are serialised, so the holder file
        # can only be removed (by release at level 0) while no one is
        # creating it.
        if not self._acquiring.acquire(timeout=self.timeout if self.timeout > 0 else -1):
            return False
        try:
            with self._level_lock:
                if self._level > 0:
                    self._level += 1
                    return True
            if not self._wait_for(self._try_acquire):
                return False
            with self._level_lock:
                self._level += 1
            return True
        finally:
            self._acquiring.release()

    def release(self) -> None:
        """Drop one level of hold; the holder file goes at level 0.

        Raises
        ------
        LockError
            ``'Releasing an unlocked lock'`` if this object holds nothing.
        """
        with self._level_lock:
            if self._level <= 0:
                raise LockError(f"Releasing an unlocked lock: {self.dir_path}")
            self._level -= 1
            if self._level:
                return
            try:
                os.unlink(self.holder_path)
            except FileNotFoundError as e:
                raise LockError(
                    f"Releasing an unlocked lock (was it broken?): {self.dir_path}"
                ) from e
            # The last holder out removes the directory (it fails harmlessly
            # while others hold it), so idle locks leave nothing behind.
            with contextlib.suppress(OSError):
                os.rmdir(self.dir_path)

    def locked(self) -> bool:
        """True only if an *exclusive* lock (a file at :attr:`dir_path`) exists."""
        return os.path.lexists(self.dir_path) and not os.path.isdir(self.dir_path)

    def acquired(self) -> bool:
        """True if this object's holder file exists."""
        return os.path.exists(self.holder_path)

    def get_data(self) -> bytes | None:
        """Return the content of an exclusive lock file blocking us, or None."""
        if os.path.isdir(self.dir_path):
            return None
        return _read(self.dir_path)

    def force_break(self) -> bool:
        """Remove an exclusive lock file that blocks shared holders.

        Other shared holders are left alone (they do not block us).  Returns
        False if there was no exclusive lock to remove.
        """
        if not self.locked():
            return False
        try:
            _unlink_retrying(self.dir_path)
        except (FileNotFoundError, IsADirectoryError, PermissionError):
            return False
        return True

    def wait(self) -> bool:
        """Wait until no exclusive lock is held, honouring the timeouts."""

        def free() -> bool:
            if not self.locked():
                return True
            self._break_if_stale()
            return not self.locked()

        return self._wait_for(free)

    def __enter__(self) -> SharedFileLock:
        if not self.acquire():
            raise LockError(
                f"Timed out after {self.timeout} s waiting for shared lock {self.dir_path}"
            )
        return self
