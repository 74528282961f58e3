"""Tests for the encore Future and format_future_traceback."""

from __future__ import annotations

import concurrent.futures
import threading

import pytest

from encore.concurrent.futures.future import Future, format_future_traceback


def raise_value_error() -> None:
    raise ValueError("bad value")


def failed_future(cls: type[concurrent.futures.Future] = Future) -> concurrent.futures.Future:
    future = cls()
    future.set_running_or_notify_cancel()
    try:
        raise_value_error()
    except ValueError as exc:
        future.set_exception(exc)
    return future


def test_is_a_stdlib_future() -> None:
    assert issubclass(Future, concurrent.futures.Future)


def test_traceback_of_failed_future() -> None:
    future = failed_future()
    text = future.traceback()
    assert text.startswith("Traceback (most recent call last):")
    assert "in raise_value_error" in text
    assert text.rstrip().endswith("ValueError: bad value")


def test_traceback_excludes_frames_of_later_result_calls() -> None:
    future = failed_future()
    before = future.traceback()
    for _ in range(3):
        with pytest.raises(ValueError):
            future.result()
    assert future.traceback() == before
    assert "return self.__get_result()" not in before


def test_traceback_is_none_without_an_exception() -> None:
    pending = Future()
    assert pending.traceback() is None
    succeeded = Future()
    succeeded.set_result(3)
    assert succeeded.traceback() is None
    cancelled = Future()
    assert cancelled.cancel()
    assert cancelled.traceback() is None


def test_set_exception_outside_except_block_still_has_traceback() -> None:
    try:
        raise_value_error()
    except ValueError as exc:
        error = exc
    future = Future()
    future.set_exception(error)
    assert "in raise_value_error" in future.traceback()


def test_set_exception_twice_is_an_invalid_state() -> None:
    future = failed_future()
    original = future.traceback()
    with pytest.raises(concurrent.futures.InvalidStateError):
        future.set_exception(KeyError("late"))
    with pytest.raises(concurrent.futures.InvalidStateError):
        future.set_result(1)
    assert future.traceback() == original
    assert isinstance(future.exception(), ValueError)


def test_set_exception_after_cancel_is_an_invalid_state() -> None:
    future = Future()
    future.cancel()
    with pytest.raises(concurrent.futures.InvalidStateError):
        future.set_exception(KeyError("late"))


def test_done_callbacks_can_read_the_traceback() -> None:
    seen: list[str | None] = []
    future = Future()
    future.add_done_callback(lambda f: seen.append(f.traceback()))
    try:
        raise_value_error()
    except ValueError as exc:
        future.set_exception(exc)
    assert seen and "ValueError: bad value" in seen[0]


def test_waiters_are_woken_by_set_exception() -> None:
    future = Future()
    waiter = threading.Thread(target=lambda: future.exception(10), daemon=True)
    waiter.start()
    future.set_exception(KeyError("x"))
    waiter.join(10)
    assert not waiter.is_alive()


def test_format_future_traceback_with_stdlib_future() -> None:
    future = failed_future(concurrent.futures.Future)
    assert "ValueError: bad value" in format_future_traceback(future)
    assert format_future_traceback(concurrent.futures.Future()) is None
    ok = concurrent.futures.Future()
    ok.set_result(1)
    assert format_future_traceback(ok) is None
    cancelled = concurrent.futures.Future()
    cancelled.cancel()
    assert format_future_traceback(cancelled) is None


def test_format_future_traceback_prefers_captured_traceback() -> None:
    future = failed_future()
    with pytest.raises(ValueError):
        future.result()
    assert format_future_traceback(future) == future.traceback()
