"""The BigQuery emulator for the tests: bqemulator, started once per test session (per xdist
worker) through tests/bqemulator_launcher.py by .venv-bqemulator's Python, on free loopback
ports, and stopped after it. When it cannot start, the tests that need it fail, saying why.

A test module uses it by importing the fixture `bqemulator` (or asking for it by name with
`request.getfixturevalue`, so that only the tests that need it start it)."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from trading_core.config import BigQueryDatabase
from trading_core.store.bigquery import bigquery_client

from tests.support import free_port, wait_answering

ROOT = Path(__file__).parents[1]
PYTHON = ROOT / ".venv-bqemulator" / "bin" / "python"
LAUNCHER = ROOT / "tests" / "bqemulator_launcher.py"
PROJECT = "contract-tests"
START_TIMEOUT_S = 60.0  # it starts in ~5 s on an idle machine
STOP_TIMEOUT_S = 10.0
_INSTALL = "UV_PROJECT_ENVIRONMENT=.venv-bqemulator uv sync --frozen --only-group bqemulator"


@dataclass(frozen=True)
class BQEmulator:
    rest_endpoint: str  # http://127.0.0.1:port: the tables and jobs API
    write_endpoint: str  # 127.0.0.1:port: the Storage Write API (gRPC)

    def database(self, state_path: Path) -> BigQueryDatabase:
        """The `database` config of a fresh dataset of its own, state kept in `state_path`."""
        return BigQueryDatabase(
            backend="bigquery",
            project=PROJECT,
            dataset=f"contract_{uuid.uuid4().hex}",
            state_path=state_path,
            endpoint=self.rest_endpoint,
            write_endpoint=self.write_endpoint,
        )

    def client(self) -> Any:
        """A google-cloud-bigquery client of the emulator (bigquery.Client: untyped)."""
        return bigquery_client(PROJECT, "US", self.rest_endpoint)


@pytest.fixture(scope="session")
def bqemulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BQEmulator]:
    """A running bqemulator (in memory: each test makes a dataset of its own)."""
    output = tmp_path_factory.mktemp("bqemulator") / "output.log"
    rest_port, grpc_port = free_port(), free_port()
    command = [
        str(PYTHON), str(LAUNCHER), "start", "--rest-host=127.0.0.1", f"--rest-port={rest_port}",
        "--grpc-host=127.0.0.1", f"--grpc-port={grpc_port}", f"--project={PROJECT}",
        "--log-level=warning",
    ]  # fmt: skip
    if not PYTHON.exists():
        pytest.fail(f"bqemulator is not installed: {PYTHON} is missing; run `{_INSTALL}`")
    with output.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        emulator = BQEmulator(f"http://127.0.0.1:{rest_port}", f"127.0.0.1:{grpc_port}")
        readiness = f"{emulator.rest_endpoint}/readyz"
        wait_answering(process, readiness, START_TIMEOUT_S, "bqemulator", output)
        yield emulator
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
