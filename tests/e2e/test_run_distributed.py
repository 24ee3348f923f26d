"""`scripts/run_distributed.sh` (`make run-distributed`), run for real: the Pub/Sub emulator and
the service processes; Ctrl-C stops every one of them and the script exits 0."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import ROOT, SERVICE_MODULES, serving
from tests.support import free_port, wait_until

SCRIPT = ROOT / "scripts" / "run_distributed.sh"

pytestmark = pytest.mark.emulator


@dataclass
class Run:
    """One run of the script in its own process group, as a terminal runs a foreground job."""

    process: subprocess.Popen[bytes]
    output: Path
    config: Path
    emulator_port: int
    addresses: dict[str, str]

    def text(self) -> str:
        return self.output.read_text(errors="replace")


def started_processes(run: Run) -> dict[int, str]:
    """pid → command line of every live process this run started: the emulator (by its port)
    and the services (by the run's own config file)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == run.process.pid:
            continue
        with contextlib.suppress(OSError):
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            stat = (entry / "stat").read_text()
            if stat.rsplit(")", 1)[1].split()[0] == "Z":
                continue  # exited, waiting to be reaped
            if f"--port={run.emulator_port}" in command or str(run.config) in command:
                found[int(entry.name)] = command
    return found


def start(tmp_path: Path, emulator_port: int, service_ports: dict[str, int] | None = None) -> Run:
    ports = service_ports or {name: free_port() for name in SERVICE_MODULES}
    config = tmp_path / "distributed.yaml"
    document = {
        "extends": str(ROOT / "config" / "local-pubsub.yaml"),
        "services": {name.replace("-", "_"): {"port": port} for name, port in ports.items()},
        "database": {"backend": "duckdb", "path": str(tmp_path / "data")},
        "journal": {"path": str(tmp_path / "data")},
        "logging": {"level": "WARNING", "json": False},
    }
    config.write_text(yaml.safe_dump(document), encoding="utf-8")
    output = tmp_path / "run.log"
    with output.open("wb") as log:
        process = subprocess.Popen(
            [str(SCRIPT), str(config)],
            cwd=ROOT,
            env={
                **os.environ,
                "PUBSUB_EMULATOR_PORT": str(emulator_port),
                "LOG_DIR": str(tmp_path),
            },
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    addresses = {name: f"127.0.0.1:{port}" for name, port in ports.items()}
    return Run(process, output, config, emulator_port, addresses)


@pytest.fixture
def runs() -> Iterator[list[Run]]:
    """The runs of a test; whatever a failed test leaves running is killed."""
    started: list[Run] = []
    yield started
    for run in started:
        for pid in [run.process.pid, *started_processes(run)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        run.process.wait()


def wait_all_serving(run: Run) -> None:
    def ready() -> bool:
        assert run.process.poll() is None, f"the script exited early:\n{run.text()}"
        return all(serving(address) for address in run.addresses.values())

    wait_until(ready, 120, "the emulator and every service to serve")


def test_ctrl_c_stops_the_emulator_and_every_service_and_exits_0(
    tmp_path: Path, runs: list[Run]
) -> None:
    run = start(tmp_path, free_port())
    runs.append(run)
    wait_all_serving(run)
    before = started_processes(run)
    assert any(f"--port={run.emulator_port}" in command for command in before.values())
    assert sum(str(run.config) in command for command in before.values()) == len(SERVICE_MODULES)

    os.killpg(run.process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does

    assert run.process.wait(timeout=90) == 0, run.text()
    assert started_processes(run) == {}
    assert "stopped on SIGINT" in run.text()
    assert "Traceback" not in run.text()
    with socket.socket() as probe:  # the emulator's port is free for the next run
        probe.bind(("127.0.0.1", run.emulator_port))


def test_a_taken_emulator_port_is_refused_in_one_line_and_nothing_starts(
    tmp_path: Path, runs: list[Run]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = start(tmp_path, port)
        runs.append(run)
        assert run.process.wait(timeout=30) == 1
    [line] = run.text().splitlines()
    assert f"port {port} is already in use" in line
    assert f"ss -ltnp 'sport = :{port}'" in line
    assert "PUBSUB_EMULATOR_PORT" in line
    assert started_processes(run) == {}


def test_a_service_that_cannot_start_stops_the_others_and_the_emulator_and_exits_1(
    tmp_path: Path, runs: list[Run]
) -> None:
    ports = {name: free_port() for name in SERVICE_MODULES}
    with socket.socket() as taken:  # order-management's port is in use
        taken.bind(("127.0.0.1", ports["order-management"]))
        taken.listen()
        run = start(tmp_path, free_port(), ports)
        runs.append(run)
        assert run.process.wait(timeout=120) == 1, run.text()
    assert "order-management exited with 1; stopping the others" in run.text()
    assert started_processes(run) == {}
