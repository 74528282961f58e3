"""Bounded-wait helpers and executor factories shared by the concurrent tests.

Every wait here has a timeout, so a regression fails a test instead of
hanging CI. :data:`EXECUTOR_FACTORIES` lists one executor of every supported
kind; the ``executor`` fixture in ``conftest.py`` runs a test once per kind.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any

from encore.concurrent.futures.enhanced_thread_pool_executor import EnhancedThreadPoolExecutor
from encore.concurrent.futures.synchronous import SynchronousExecutor

#: Seconds a test waits for something that should happen almost at once.
#: Generous, because the CI machine is shared; only a bug takes this long.
TIMEOUT = 10.0

EXECUTOR_FACTORIES: dict[str, Callable[[], concurrent.futures.Executor]] = {
    "enhanced-1": lambda: EnhancedThreadPoolExecutor(max_workers=1),
    "enhanced-4": lambda: EnhancedThreadPoolExecutor(max_workers=4),
    "stdlib-4": lambda: concurrent.futures.ThreadPoolExecutor(max_workers=4),
    "synchronous": SynchronousExecutor,
}


def close_executor(executor: concurrent.futures.Executor) -> None:
    """Shut ``executor`` down and join its workers with a bounded wait."""
    executor.shutdown(wait=False, cancel_futures=True)
    for thread in list(getattr(executor, "_threads", ())):
        thread.join(TIMEOUT)
        assert not thread.is_alive(), f"worker {thread.name} did not stop"


def start_thread(target: Callable[..., Any], *args: Any) -> threading.Thread:
    """Run ``target(*args)`` on a new daemon thread and return the thread."""
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def join(thread: threading.Thread) -> None:
    """Join ``thread`` with a bounded wait, failing the test if it is stuck."""
    thread.join(TIMEOUT)
    assert not thread.is_alive(), f"thread {thread.name} is stuck"
