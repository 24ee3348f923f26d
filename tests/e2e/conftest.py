"""The platform under test, for real: gRPC servers on loopback, DuckDB files, and either the
in-memory bus in this process (embedded) or three service processes over the Pub/Sub emulator
(distributed)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc
from order_management.service import OrderManagement
from tradectl.credentials import DEVELOPMENT_KEY, authorized
from tradectl.serve import service_specs
from trading.v1 import (
    control_pb2_grpc,
    execution_pb2_grpc,
    orders_pb2_grpc,
    portfolio_pb2_grpc,
    positions_pb2_grpc,
)
from trading_core.config import load_config
from trading_core.runtime import Platform, build_platform

from tests.support import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
SERVICE_MODULES = {
    "order-management": "order_management",
    "execution-router": "execution_router",
    "position-management": "position_management",
    "market-data": "market_data",
}


@dataclass
class Clients:
    """Stubs for the services of one running platform, presenting `key` (the development key
    that config/local.yaml accepts; None: no key at all)."""

    addresses: dict[str, str]
    channels: list[grpc.Channel] = field(default_factory=list)
    key: str | None = DEVELOPMENT_KEY

    def channel(self, service: str) -> grpc.Channel:
        channel = grpc.insecure_channel(self.addresses[service])
        self.channels.append(channel)
        return authorized(channel, self.key) if self.key else channel

    @property
    def orders(self) -> orders_pb2_grpc.OrderServiceStub:
        return orders_pb2_grpc.OrderServiceStub(self.channel("order-management"))

    @property
    def control(self) -> control_pb2_grpc.TradingControlServiceStub:
        return control_pb2_grpc.TradingControlServiceStub(self.channel("order-management"))

    @property
    def portfolio(self) -> portfolio_pb2_grpc.PortfolioServiceStub:
        return portfolio_pb2_grpc.PortfolioServiceStub(self.channel("order-management"))

    @property
    def positions(self) -> positions_pb2_grpc.PositionServiceStub:
        return positions_pb2_grpc.PositionServiceStub(self.channel("position-management"))

    @property
    def router(self) -> execution_pb2_grpc.ExecutionServiceStub:
        return execution_pb2_grpc.ExecutionServiceStub(self.channel("execution-router"))

    def close(self) -> None:
        for channel in self.channels:
            channel.close()


def write_config(directory: Path, overrides: dict[str, object]) -> Path:
    """A config that extends config/local.yaml with the test's overrides."""
    path = directory / "config.yaml"
    document = {"extends": str(ROOT / "config" / "local.yaml"), **overrides}
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def embedded_overrides(data: Path, feed: str = "thread") -> dict[str, object]:
    """`feed`: the trading scenarios feed the warehouse on a thread (`database.feed: thread`):
    the feed process's start-up (a second of CPU per platform) would add two minutes to `make
    test`. The feed process, the default, is tested in test_warehouse_feed.py and the crash
    suite, and measured by `make bench`."""
    return {
        "services": {name.replace("-", "_"): {"port": 0} for name in SERVICE_MODULES},
        "database": {"backend": "duckdb", "path": str(data), "feed": feed},
        "journal": {"path": str(data)},
        "market_data": {"interval_ms": 20},
        "logging": {"level": "WARNING", "json": False},
    }


def order_management(platform: Platform) -> OrderManagement:
    """The order-management service object of an embedded platform, to look at its state."""
    service = platform.service("order-management")
    assert isinstance(service, OrderManagement)
    return service


def start_embedded(config_path: Path) -> Platform:
    platform = build_platform(load_config(config_path), service_specs())
    platform.start()
    assert platform.wait_ready(30), "the embedded platform did not become ready"
    return platform


@contextlib.contextmanager
def running_embedded(config_path: Path) -> Iterator[Clients]:
    """The embedded platform of a config, running until the block ends: for a test that
    restarts it on the same data."""
    platform = start_embedded(config_path)
    clients = Clients({name: platform.address(name) for name in SERVICE_MODULES})
    try:
        yield clients
    finally:
        clients.close()
        platform.stop()


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[tuple[Clients, Platform]]:
    platform = start_embedded(write_config(tmp_path, embedded_overrides(tmp_path / "data")))
    clients = Clients({name: platform.address(name) for name in SERVICE_MODULES})
    yield clients, platform
    clients.close()
    platform.stop()


@dataclass
class ServiceProcesses:
    config_path: Path
    processes: dict[str, subprocess.Popen[bytes]]
    logs: Path
    stuck: dict[str, str] = field(default_factory=dict)

    def stop(self) -> dict[str, int]:
        """SIGTERM to every service; their exit codes."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        codes = {}
        for name, process in self.processes.items():
            try:
                codes[name] = process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                codes[name] = self._dump_and_kill(name, process)
        return codes

    def _dump_and_kill(self, name: str, process: subprocess.Popen[bytes]) -> int:
        """A service that does not stop on SIGTERM: its thread dump, then SIGKILL."""
        process.send_signal(signal.SIGUSR1)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=2)
        process.kill()
        process.wait()
        self.stuck[name] = (self.logs / f"{name}.log").read_text()[-6000:]
        return -signal.SIGKILL


def start_processes(config_path: Path, logs: Path, emulator: str) -> ServiceProcesses:
    env = {**os.environ, "PUBSUB_EMULATOR_HOST": emulator}
    processes = {}
    for name, module in SERVICE_MODULES.items():
        log = (logs / f"{name}.log").open("ab")
        processes[name] = subprocess.Popen(
            [sys.executable, "-m", module, "--config", str(config_path)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return ServiceProcesses(config_path, processes, logs)


def wait_serving(addresses: dict[str, str], services: ServiceProcesses, timeout: float) -> None:
    wait_serving_at(addresses, services.processes, timeout, services.logs)


def wait_serving_at(
    addresses: dict[str, str],
    processes: dict[str, subprocess.Popen[bytes]],
    timeout: float,
    logs: Path | None = None,
) -> None:
    """Waits until every address reports SERVING; fails at once when a process exits, and
    after `timeout` names the services still not serving, with the end of their logs."""

    def log_tail(name: str) -> str:
        log = logs / f"{name}.log" if logs else None
        return log.read_text(errors="replace")[-3000:] if log and log.exists() else ""

    def all_serving() -> bool:
        for name, process in processes.items():
            if process.poll() is not None:
                pytest.fail(f"{name} exited with {process.returncode}:\n{log_tail(name)}")
        return all(serving(address) for address in addresses.values())

    try:
        wait_until(all_serving, timeout, "the service processes to report SERVING")
    except AssertionError:
        idle = [name for name, address in addresses.items() if not serving(address)]
        for name in idle:  # each thread's stack into its log (faulthandler on SIGUSR1)
            if name in processes and logs is not None:
                _dump_stacks(processes[name], logs / f"{name}.log")
        tails = "\n".join(f"--- {name}:\n{log_tail(name)}" for name in idle)
        pytest.fail(f"not SERVING after {timeout}s: {', '.join(idle)}\n{tails}")


def _dump_stacks(process: subprocess.Popen[bytes], log: Path) -> None:
    size = log.stat().st_size
    process.send_signal(signal.SIGUSR1)
    with contextlib.suppress(AssertionError):
        wait_until(lambda: log.stat().st_size > size, 5, "the stacks in the log")


def serving(address: str) -> bool:
    """Whether the server at `address` reports SERVING."""
    with grpc.insecure_channel(address) as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=1
            )
        except grpc.RpcError:
            return False
    return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)


@contextlib.contextmanager
def running_distributed(
    tmp_path: Path, pubsub_emulator: str, extra: dict[str, object] | None = None
) -> Iterator[tuple[Clients, ServiceProcesses]]:
    """One process per service over the emulator (a project of their own), with `extra`
    overrides of the config, running until the block ends."""
    ports = {name: free_port() for name in SERVICE_MODULES}
    overrides = embedded_overrides(tmp_path / "data")
    overrides["services"] = {n.replace("-", "_"): {"port": p} for n, p in ports.items()}
    overrides["messaging"] = {
        "backend": "pubsub",
        "project": f"e2e-{uuid.uuid4().hex[:8]}",
        "topic_prefix": "trading-",
        "emulator_host": pubsub_emulator,
    }
    config_path = write_config(tmp_path, {**overrides, **(extra or {})})
    services = start_processes(config_path, tmp_path, pubsub_emulator)
    addresses = {name: f"127.0.0.1:{port}" for name, port in ports.items()}
    clients = Clients(addresses)
    try:
        wait_serving(addresses, services, timeout=60)
        yield clients, services
    finally:
        clients.close()
        services.stop()
    if services.stuck:
        pytest.fail(f"services did not stop on SIGTERM: {services.stuck}")


@pytest.fixture
def distributed(tmp_path: Path, pubsub_emulator: str) -> Iterator[tuple[Clients, ServiceProcesses]]:
    with running_distributed(tmp_path, pubsub_emulator) as running:
        yield running


@pytest.fixture(params=["embedded", "distributed"])
def platform_clients(request: pytest.FixtureRequest) -> Clients:
    """The same scenarios against both ways of running the platform: for what crosses the
    services (routing, fills, positions, cancels, control), which the bus can change."""
    clients, _ = request.getfixturevalue(request.param)
    return clients  # type: ignore[no-any-return]


@pytest.fixture
def embedded_clients(embedded: tuple[Clients, Platform]) -> Clients:
    """The embedded platform alone: for what one service decides by itself (checks, ids)."""
    return embedded[0]
