"""Fixtures shared by all tests: the Pub/Sub emulator, started once per test session."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import free_port, wait_answering

EMULATOR = Path("/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator")
EMULATOR_START_TIMEOUT_S = 60.0
EMULATOR_STOP_TIMEOUT_S = 10.0


@pytest.fixture(scope="session")
def pubsub_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The Pub/Sub emulator's "host:port"; the emulator is stopped after the session."""
    process, host = start_emulator(tmp_path_factory.mktemp("pubsub-emulator") / "output.log")
    try:
        yield host
    finally:
        stop_emulator(process)


def start_emulator(output: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A Pub/Sub emulator of its own, serving; fails the test when it cannot start."""
    host = f"127.0.0.1:{free_port()}"
    with output.open("wb") as log:
        try:
            process = subprocess.Popen(
                [str(EMULATOR), "--host=127.0.0.1", f"--port={host.rsplit(':', 1)[1]}"],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: the script starts a JVM
            )
        except OSError as error:
            pytest.fail(f"cannot start the Pub/Sub emulator {EMULATOR}: {error}")
    try:
        wait_answering(
            process, f"http://{host}/", EMULATOR_START_TIMEOUT_S, "the Pub/Sub emulator", output
        )
    except BaseException:
        stop_emulator(process)
        raise
    return process, host


def stop_emulator(process: subprocess.Popen[bytes]) -> None:
    _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(EMULATOR_STOP_TIMEOUT_S)
            return
        except subprocess.TimeoutExpired:
            continue
