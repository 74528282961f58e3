"""Small utilities that capture common patterns in threaded code.

At present this is the :func:`synchronized` decorator, which serialises calls
to a single function without the caller having to manage a lock.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import ParamSpec, TypeVar

__all__ = ["synchronized"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def synchronized(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """Decorator that prevents simultaneous execution of a function.

    Each decorated function gets its own private, anonymous
    :class:`threading.RLock`, created when the decorator is applied. Every
    call holds that lock, so at most one thread at a time runs the function.

    The lock is reentrant, so a synchronized function may call itself (or
    be re-entered through a callback) on the same thread. Two different
    decorated functions never share a lock. Applied to a method, the single
    lock is shared by *all* instances of the class: it is one lock per
    function, not one per object.

    Parameters
    ----------
    func : callable
        The function to protect.

    Returns
    -------
    callable
        A wrapper with the same name and docstring as ``func`` that passes
        its return value through and lets its exceptions propagate.
    """
    lock = threading.RLock()

    @functools.wraps(func)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with lock:
            return func(*args, **kwargs)

    return wrapper
