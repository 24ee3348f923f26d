"""Helpers shared by the tests."""

from __future__ import annotations

import time
from collections.abc import Callable

_POLL_INTERVAL_S = 0.005


def wait_until(
    predicate: Callable[[], object], timeout: float = 10.0, message: str = "condition"
) -> None:
    """Returns as soon as `predicate()` is true; fails the test if it is not within `timeout`."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for: {message}")
        time.sleep(_POLL_INTERVAL_S)
