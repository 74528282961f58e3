"""Tests for :mod:`encore.storage.file_lock`."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading

import pytest

from encore.storage import file_lock
from encore.storage.file_lock import FileLock, LockError, SharedFileLock

#: Bound for anything that waits on another thread or process.
WAIT = 30


def run_python(code: str, *args: str, timeout: float = WAIT) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter that can import encore."""
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.dirname(file_lock.__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        timeout=timeout,
        env=env,
        check=True,
    )


# -- exclusive lock basics --------------------------------------------------------


def test_paths(tmp_path):
    assert FileLock("a").full_path == "a.lock"
    assert FileLock("/x/a").full_path == "/x/a.lock"
    assert FileLock("/a", dir=str(tmp_path)).full_path == os.path.join(str(tmp_path), "a.lock")
    assert FileLock("\\a", dir="d").full_path == os.path.join("d", "a.lock")


def test_acquire_release(tmp_path):
    lock = FileLock("res", dir=str(tmp_path))
    assert not lock.locked()
    assert not lock.acquired()
    assert lock.get_data() is None
    assert lock.acquire() is True
    assert lock.locked()
    assert lock.acquired()
    assert lock.get_data() == lock.data
    lock.release()
    assert not lock.locked()
    assert not os.path.exists(lock.full_path)


def test_default_data_format(tmp_path):
    lock = FileLock("res", dir=str(tmp_path), uid=42)
    lines = lock.data.split(b"\n")
    assert lines[1] == str(os.getpid()).encode()
    assert lines[3] == b"42"
    assert lines[4] == b"LOCK"
    assert len(lines) == 5


def test_uid_defaults_to_id(tmp_path):
    lock = FileLock("res", dir=str(tmp_path))
    assert lock.uid == id(lock)


def test_string_uid(tmp_path):
    lock = FileLock("res", dir=str(tmp_path), uid="writer-1")
    with lock:
        assert lock.get_data().split(b"\n")[3] == b"writer-1"


def test_non_ascii_host_and_user(tmp_path, monkeypatch):
    monkeypatch.setattr(file_lock, "_hostname", lambda: "hôte-ß")
    monkeypatch.setattr(file_lock, "_username", lambda: "José")
    lock = FileLock("res", dir=str(tmp_path))
    with lock:
        assert lock.get_data().startswith("hôte-ß\n".encode())
    shared = SharedFileLock("res", dir=str(tmp_path))
    with shared:
        assert shared.acquired()
        (name,) = os.listdir(shared.dir_path)
        assert name.isascii()
    assert not shared.acquired()


def test_getuser_failure_falls_back(monkeypatch):
    def broken():
        raise KeyError("no passwd entry")

    monkeypatch.setattr(file_lock.getpass, "getuser", broken)
    assert file_lock._username.__wrapped__()


def test_custom_data_round_trip(tmp_path):
    data = f"{os.getpid()}\n".encode()
    lock = FileLock("res", dir=str(tmp_path), data=data)
    with lock:
        assert lock.get_data() == data
        assert lock.acquired()


def test_release_twice_raises(tmp_path):
    lock = FileLock("res", dir=str(tmp_path))
    lock.acquire()
    lock.release()
    with pytest.raises(LockError, match="unlocked"):
        lock.release()


def test_release_someone_elses_lock_raises(tmp_path):
    mine = FileLock("res", dir=str(tmp_path))
    theirs = FileLock("res", dir=str(tmp_path))
    theirs.acquire()
    with pytest.raises(LockError, match="unacquired"):
        mine.release()
    assert theirs.acquired()
    theirs.release()


def test_same_uid_shares_ownership(tmp_path):
    a = FileLock("res", dir=str(tmp_path), uid=7)
    b = FileLock("res", dir=str(tmp_path), uid=7)
    a.acquire()
    assert b.acquired()
    b.release()
    assert not a.locked()


def test_timeout_returns_false(tmp_path):
    holder = FileLock("res", dir=str(tmp_path))
    holder.acquire()
    other = FileLock("res", dir=str(tmp_path), timeout=0.05)
    assert other.acquire() is False
    assert holder.acquired()
    holder.release()


def test_not_reentrant(tmp_path):
    lock = FileLock("res", dir=str(tmp_path), timeout=0.05)
    assert lock.acquire()
    assert lock.acquire() is False
    lock.release()


def test_with_never_runs_unlocked(tmp_path):
    holder = FileLock("res", dir=str(tmp_path))
    holder.acquire()
    ran = []
    with pytest.raises(LockError, match="Timed out"), FileLock(
        "res", dir=str(tmp_path), timeout=0.05
    ):
        ran.append(True)
    assert ran == []
    assert holder.acquired()
    holder.release()


def test_with_releases_on_exception(tmp_path):
    lock = FileLock("res", dir=str(tmp_path))
    with pytest.raises(ValueError), lock:
        raise ValueError("boom")
    assert not lock.locked()


def test_force_timeout_steals(tmp_path):
    first = FileLock("res", dir=str(tmp_path))
    first.acquire()
    second = FileLock("res", dir=str(tmp_path), force_timeout=0.1)
    assert second.acquire()
    assert second.acquired()
    assert not first.acquired()
    with pytest.raises(LockError):
        first.release()
    second.release()


def test_force_break(tmp_path):
    lock = FileLock("res", dir=str(tmp_path))
    assert lock.force_break() is False
    lock.acquire()
    assert FileLock("res", dir=str(tmp_path)).force_break() is True
    assert not lock.locked()


def test_wait(tmp_path):
    lock = FileLock("res", dir=str(tmp_path), timeout=0.05)
    assert lock.wait() is True
    holder = FileLock("res", dir=str(tmp_path))
    holder.acquire()
    assert lock.wait() is False
    holder.release()
    assert lock.wait() is True


def test_wait_until_released_by_thread(tmp_path):
    holder = FileLock("res", dir=str(tmp_path))
    holder.acquire()
    timer = threading.Timer(0.05, holder.release)
    timer.start()
    try:
        assert FileLock("res", dir=str(tmp_path), timeout=WAIT).wait()
    finally:
        timer.join(WAIT)
    assert not holder.locked()


def test_acquire_in_missing_directory_raises(tmp_path):
    lock = FileLock("res", dir=str(tmp_path / "missing"), timeout=0.05)
    with pytest.raises(FileNotFoundError):
        lock.acquire()


# -- stale owners ---------------------------------------------------------------------


HOLD_AND_DIE = """
    import os, sys
    from encore.storage.file_lock import FileLock, SharedFileLock
    cls = SharedFileLock if sys.argv[2] == 'shared' else FileLock
    lock = cls('res', dir=sys.argv[1])
    assert lock.acquire()
    os._exit(0)  # dies holding the lock
"""


def test_stale_lock_of_dead_process_is_broken(tmp_path):
    run_python(HOLD_AND_DIE, str(tmp_path), "exclusive")
    lock = FileLock("res", dir=str(tmp_path), timeout=WAIT)
    assert lock.locked()
    # A dead owner is detected at once: no force_timeout needed.
    assert lock.acquire()
    assert lock.acquired()
    lock.release()


def test_stale_lock_blocks_shared_only_until_detected(tmp_path):
    run_python(HOLD_AND_DIE, str(tmp_path), "exclusive")
    shared = SharedFileLock("res", dir=str(tmp_path), timeout=WAIT)
    assert shared.acquire()
    shared.release()


def test_stale_shared_holder_is_cleared(tmp_path):
    run_python(HOLD_AND_DIE, str(tmp_path), "shared")
    assert os.listdir(tmp_path / "res.lock")
    lock = FileLock("res", dir=str(tmp_path), timeout=WAIT)
    assert lock.acquire()
    lock.release()


def test_wait_clears_stale_lock(tmp_path):
    run_python(HOLD_AND_DIE, str(tmp_path), "exclusive")
    assert FileLock("res", dir=str(tmp_path), timeout=WAIT).wait()


def test_live_other_process_is_not_stale(tmp_path):
    code = """
        import sys
        from encore.storage.file_lock import FileLock
        lock = FileLock('res', dir=sys.argv[1])
        assert lock.acquire()
        print('held', flush=True)
        sys.stdin.readline()
        lock.release()
    """
    root = os.path.dirname(os.path.dirname(os.path.dirname(file_lock.__file__)))
    env = dict(os.environ, PYTHONPATH=root)
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdout.readline() == b"held\n"
        assert FileLock("res", dir=str(tmp_path), timeout=0.1).acquire() is False
        proc.stdin.write(b"\n")
        proc.stdin.flush()
        assert proc.wait(WAIT) == 0
    finally:
        proc.kill()
        proc.wait(WAIT)
    assert not os.path.exists(tmp_path / "res.lock")


def test_other_host_is_not_stale(tmp_path):
    path = tmp_path / "res.lock"
    path.write_bytes(b"elsewhere.example\n1\nnobody\n1\nLOCK")
    assert FileLock("res", dir=str(tmp_path), timeout=0.05).acquire() is False


def test_custom_data_is_never_judged_stale(tmp_path):
    (tmp_path / "res.lock").write_bytes(b"999999999\n")
    assert FileLock("res", dir=str(tmp_path), timeout=0.05).acquire() is False


def test_crashed_break_guard_is_ignored(tmp_path):
    run_python(HOLD_AND_DIE, str(tmp_path), "exclusive")
    # A breaker that died inside the guard left it behind.
    guard = tmp_path / "res.lock.break"
    guard.write_bytes(b"%s\n999999999\nx\ny\nLOCK" % file_lock._hostname().encode())
    assert FileLock("res", dir=str(tmp_path), timeout=WAIT).acquire()
    assert not guard.exists()


# -- shared locks ---------------------------------------------------------------------


def test_shared_holders_coexist(tmp_path):
    a = SharedFileLock("res", dir=str(tmp_path))
    b = SharedFileLock("res", dir=str(tmp_path))
    assert a.acquire() and b.acquire()
    assert a.acquired() and b.acquired()
    assert not a.locked()
    assert len(os.listdir(a.dir_path)) == 2
    a.release()
    assert b.acquired()
    b.release()
    assert not os.path.exists(a.dir_path)  # the last holder out tidies up


def test_shared_blocks_exclusive(tmp_path):
    shared = SharedFileLock("res", dir=str(tmp_path))
    shared.acquire()
    exclusive = FileLock("res", dir=str(tmp_path), timeout=0.05)
    assert exclusive.locked()
    assert exclusive.acquire() is False
    shared.release()
    os.makedirs(shared.dir_path, exist_ok=True)
    # An empty directory is removed by the next exclusive acquirer.
    assert exclusive.acquire() is True
    assert os.path.isfile(exclusive.full_path)
    exclusive.release()


def test_exclusive_blocks_shared(tmp_path):
    exclusive = FileLock("res", dir=str(tmp_path))
    exclusive.acquire()
    shared = SharedFileLock("res", dir=str(tmp_path), timeout=0.05)
    assert shared.locked()
    assert shared.get_data() == exclusive.data
    assert shared.acquire() is False
    assert shared.wait() is False
    with pytest.raises(LockError, match="Timed out"), shared:
        pytest.fail("body ran without the lock")
    exclusive.release()
    assert shared.wait() is True
    assert shared.acquire() is True
    shared.release()


def test_shared_reentrant(tmp_path):
    shared = SharedFileLock("res", dir=str(tmp_path))
    shared.acquire()
    shared.acquire()
    shared.release()
    assert shared.acquired()
    shared.release()
    assert not shared.acquired()
    with pytest.raises(LockError, match="unlocked"):
        shared.release()


def test_shared_string_uid_with_separators(tmp_path):
    shared = SharedFileLock("res", dir=str(tmp_path), uid="a__b/c\\d")
    with shared:
        (name,) = os.listdir(shared.dir_path)
        assert name.count("__") == 3
    assert not shared.acquired()


def test_shared_force_break_only_breaks_exclusive(tmp_path):
    exclusive = FileLock("res", dir=str(tmp_path))
    exclusive.acquire()
    shared = SharedFileLock("res", dir=str(tmp_path), force_timeout=0.05)
    assert shared.acquire()
    assert not exclusive.acquired()
    other = SharedFileLock("res", dir=str(tmp_path))
    other.acquire()
    assert other.force_break() is False
    assert shared.acquired() and other.acquired()
    shared.release()
    other.release()


def test_exclusive_force_break_removes_shared_holders(tmp_path):
    shared = SharedFileLock("res", dir=str(tmp_path))
    shared.acquire()
    assert FileLock("res", dir=str(tmp_path)).force_break() is True
    assert not shared.acquired()
    with pytest.raises(LockError):
        shared.release()


# -- mutual exclusion under contention ----------------------------------------------


def _bump(counter_path: str) -> None:
    with open(counter_path) as f:
        value = int(f.read() or 0)
    with open(counter_path, "w") as f:
        f.write(str(value + 1))


def test_threads_mutually_exclude(tmp_path):
    counter = tmp_path / "counter"
    counter.write_text("0")
    errors: list[BaseException] = []

    def work():
        try:
            for _ in range(50):
                with FileLock("res", dir=str(tmp_path), poll_interval=0.001):
                    _bump(str(counter))
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
        assert not t.is_alive()
    assert errors == []
    assert counter.read_text() == "200"


def test_processes_mutually_exclude_readers_and_writers(tmp_path):
    counter = tmp_path / "counter"
    counter.write_text("0")
    code = """
        import sys
        from encore.storage.file_lock import FileLock, SharedFileLock
        d, path = sys.argv[1], sys.argv[2]
        for i in range(40):
            if i % 2:
                with SharedFileLock('res', dir=d, poll_interval=0.001):
                    int(open(path).read())  # never sees a half-written file
            else:
                with FileLock('res', dir=d, poll_interval=0.001):
                    value = int(open(path).read())
                    with open(path, 'w') as f:
                        f.write(str(value + 1))
    """
    root = os.path.dirname(os.path.dirname(os.path.dirname(file_lock.__file__)))
    env = dict(os.environ, PYTHONPATH=root)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code), str(tmp_path), str(counter)],
            env=env,
        )
        for _ in range(3)
    ]
    try:
        for p in procs:
            assert p.wait(WAIT * 2) == 0
    finally:
        for p in procs:
            p.kill()
            p.wait(WAIT)
    assert counter.read_text() == "60"
