"""Fixtures for the concurrent tests."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator

import pytest

from encore.concurrent.tests.bounded import EXECUTOR_FACTORIES, close_executor


@pytest.fixture(params=sorted(EXECUTOR_FACTORIES))
def executor(request: pytest.FixtureRequest) -> Iterator[concurrent.futures.Executor]:
    """An executor of each supported kind, shut down after the test."""
    executor = EXECUTOR_FACTORIES[request.param]()
    try:
        yield executor
    finally:
        close_executor(executor)
