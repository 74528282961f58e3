"""The global event manager: lazy creation, set once, temporary override."""

from __future__ import annotations

import threading

import pytest

from encore.events import package_globals
from encore.events.abstract_event_manager import BaseEventManager
from encore.events.event_manager import EventManager
from encore.events.package_globals import (
    get_event_manager,
    set_event_manager,
    use_event_manager,
)


@pytest.fixture(autouse=True)
def fresh_global():
    saved = package_globals._event_manager
    package_globals._event_manager = None
    yield
    package_globals._event_manager = saved


def test_lazy_creation_returns_same_manager():
    em = get_event_manager()
    assert isinstance(em, BaseEventManager)
    assert get_event_manager() is em


def test_set_then_get():
    em = EventManager()
    set_event_manager(em)
    assert get_event_manager() is em
    with pytest.raises(ValueError, match="already been set"):
        set_event_manager(EventManager())
    assert get_event_manager() is em


def test_set_after_lazy_get_raises():
    get_event_manager()
    with pytest.raises(ValueError, match="already been set"):
        set_event_manager(EventManager())


def test_use_event_manager_restores_previous():
    outer = get_event_manager()
    mine = EventManager()
    with use_event_manager(mine) as em:
        assert em is mine
        assert get_event_manager() is mine
    assert get_event_manager() is outer


def test_use_event_manager_default_and_exception():
    with pytest.raises(RuntimeError), use_event_manager() as em:
        assert isinstance(em, EventManager)
        assert get_event_manager() is em
        raise RuntimeError("inside")
    # The global was never created before, so it is "unset" again.
    assert package_globals._event_manager is None
    set_event_manager(EventManager())


def test_lazy_creation_is_thread_safe():
    results = []
    barrier = threading.Barrier(8)

    def worker():
        barrier.wait(10)
        results.append(get_event_manager())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(results) == 8
    assert all(em is results[0] for em in results)
