"""Tests for SynchronousExecutor."""

from __future__ import annotations

import concurrent.futures
import threading

import pytest

from encore.concurrent.futures import SynchronousExecutor
from encore.concurrent.futures.future import Future


def test_package_reexports_only_synchronous_executor() -> None:
    import encore.concurrent.futures as futures

    assert futures.__all__ == ["SynchronousExecutor"]
    assert issubclass(SynchronousExecutor, concurrent.futures.Executor)


def test_submit_runs_now_on_calling_thread() -> None:
    executor = SynchronousExecutor()
    future = executor.submit(threading.get_ident)
    assert future.done()
    assert future.result(0) == threading.get_ident()
    assert executor.submit(pow, 2, 8).result(0) == 256


def test_keyword_arguments_forwarded() -> None:
    assert SynchronousExecutor().submit(int, "11", base=2).result(0) == 3


def test_exceptions_are_stored_with_traceback() -> None:
    future = SynchronousExecutor().submit(divmod, 1, 0)
    assert isinstance(future, Future)
    assert isinstance(future.exception(0), ZeroDivisionError)
    assert "ZeroDivisionError" in future.traceback()


@pytest.mark.parametrize("exception", [KeyboardInterrupt(), SystemExit(2)])
def test_base_exceptions_are_stored(exception: BaseException) -> None:
    def bail() -> None:
        raise exception

    future = SynchronousExecutor().submit(bail)
    assert future.exception(0) is exception


def test_future_cannot_be_cancelled() -> None:
    future = SynchronousExecutor().submit(pow, 2, 2)
    assert not future.cancel()
    assert future.result(0) == 4


def test_map_matches_builtin_map() -> None:
    executor = SynchronousExecutor()
    assert list(executor.map(pow, range(10), range(10))) == list(map(pow, range(10), range(10)))


def test_shutdown_refuses_new_work_and_is_idempotent() -> None:
    executor = SynchronousExecutor()
    executor.shutdown()
    executor.shutdown(wait=False, cancel_futures=True)
    with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
        executor.submit(pow, 2, 2)


def test_context_manager_shuts_down() -> None:
    with SynchronousExecutor() as executor:
        assert executor.submit(pow, 3, 2).result(0) == 9
    with pytest.raises(RuntimeError):
        executor.submit(pow, 2, 2)
