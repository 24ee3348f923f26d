"""Helpers shared by the tests."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

T = TypeVar("T")

_POLL_INTERVAL_S = 0.005


def wait_until(
    predicate: Callable[[], T | None], timeout: float = 10.0, message: str = "condition"
) -> T:
    """Returns the first truthy value of `predicate()`; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for: {message}")
        time.sleep(_POLL_INTERVAL_S)
    return value


def free_port() -> int:
    """A TCP port free on loopback now, for a server a test starts."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_answering(
    process: subprocess.Popen[bytes], url: str, timeout: float, name: str, output: Path
) -> None:
    """Until `url` answers 200 (a tool the tests started, serving); fails the test with the
    tool's `output` when it exits or does not answer within `timeout` seconds."""

    def answers() -> bool:
        if process.poll() is not None:
            pytest.fail(f"{name} exited with {process.returncode}:\n{output.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    try:
        wait_until(answers, timeout, f"{name} to answer on {url}")
    except AssertionError as error:
        pytest.fail(f"{error}; its output:\n{output.read_text()}")
