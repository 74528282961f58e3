"""Tests for encore.concurrent.threadtools.synchronized.

Threads are coordinated with events; the only sleep gives a broken lock a
chance to show itself, and cannot make a correct implementation fail.
"""

from __future__ import annotations

import threading
import time

import pytest

from encore.concurrent.tests.bounded import TIMEOUT, join, start_thread
from encore.concurrent.threadtools import synchronized

pytestmark = pytest.mark.timeout(60)


def test_returns_value_and_preserves_metadata() -> None:
    @synchronized
    def identity(value: object) -> object:
        """Return value."""
        return value

    sentinel = object()
    assert identity(sentinel) is sentinel
    assert identity.__name__ == "identity"
    assert identity.__doc__ == "Return value."


def test_calls_do_not_overlap() -> None:
    log: list[str] = []
    entered = threading.Event()
    release = threading.Event()

    @synchronized
    def critical(tag: str) -> None:
        log.append(f"start{tag}")
        if tag == "1":
            entered.set()
            assert release.wait(TIMEOUT)
        log.append(f"finish{tag}")

    first = start_thread(critical, "1")
    assert entered.wait(TIMEOUT)
    second = start_thread(critical, "2")
    time.sleep(0.05)  # a broken lock would let thread 2 in now
    assert log == ["start1"]
    release.set()
    join(first)
    join(second)
    assert log == ["start1", "finish1", "start2", "finish2"]


def test_lock_is_reentrant() -> None:
    @synchronized
    def factorial(n: int) -> int:
        return 1 if n <= 1 else n * factorial(n - 1)

    assert factorial(10) == 3628800


def test_each_function_has_its_own_lock() -> None:
    inside_a = threading.Event()
    release_a = threading.Event()

    @synchronized
    def a() -> None:
        inside_a.set()
        assert release_a.wait(TIMEOUT)

    @synchronized
    def b() -> str:
        return "b ran"

    holder = start_thread(a)
    try:
        assert inside_a.wait(TIMEOUT)
        result: list[str] = []
        other = start_thread(lambda: result.append(b()))
        join(other)  # would time out if b waited for a's lock
        assert result == ["b ran"]
    finally:
        release_a.set()
        join(holder)


def test_lock_is_shared_by_all_instances() -> None:
    entered = threading.Event()
    release = threading.Event()
    log: list[str] = []

    class Thing:
        def __init__(self, tag: str) -> None:
            self.tag = tag

        @synchronized
        def work(self) -> None:
            log.append(f"start{self.tag}")
            if self.tag == "1":
                entered.set()
                assert release.wait(TIMEOUT)
            log.append(f"finish{self.tag}")

    first = start_thread(Thing("1").work)
    assert entered.wait(TIMEOUT)
    second = start_thread(Thing("2").work)
    time.sleep(0.05)
    assert log == ["start1"]
    release.set()
    join(first)
    join(second)
    assert log == ["start1", "finish1", "start2", "finish2"]


def test_exception_propagates_and_releases_lock() -> None:
    @synchronized
    def explode() -> None:
        raise KeyError("boom")

    with pytest.raises(KeyError):
        explode()
    done: list[bool] = []
    other = start_thread(lambda: done.append(pytest.raises(KeyError, explode) is not None))
    join(other)
    assert done == [True]
