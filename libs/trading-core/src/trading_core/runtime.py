"""Starting and stopping services: one process may host one service or all three.

Start: each service replays its store and subscribes, then its gRPC server starts and health
turns SERVING. Stop (Ctrl-C or SIGTERM): health turns NOT_SERVING, background producers stop
and streams end, the servers refuse new calls while running ones finish (intake stopped), the
bus delivers what it holds (drain), the stores write what they buffer (flush), and the process
exits 0.
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Protocol

import grpc

from trading_core.bus import create_bus
from trading_core.bus.base import EventBus
from trading_core.clock import Clock, SystemClock
from trading_core.config import (
    ConfigError,
    PlatformConfig,
    ServiceEndpoint,
    load_config,
    require_available_adapters,
)
from trading_core.grpc_server import GrpcServer
from trading_core.store import create_store
from trading_core.store.base import EventStore
from trading_core.telemetry import configure_logging

log = logging.getLogger(__name__)

# How often health follows the services' readiness (store writing, bus delivering, feed).
HEALTH_INTERVAL_S = 0.5


class Service(Protocol):
    """What the runtime needs of a service."""

    name: str

    def register(self, server: grpc.Server) -> Sequence[str]:
        """Adds the gRPC servicers; returns their full service names."""

    def start(self) -> None:
        """Rebuilds state from the store, subscribes to the bus, starts background work."""

    def stop(self) -> None:
        """Stops background producers (feeds, timers); the bus may still deliver."""

    def close(self) -> None:
        """Flushes and releases the store; called after the bus has drained."""

    def ready(self) -> bool:
        """Whether its dependencies work; health reports NOT_SERVING while they do not."""


@dataclass
class Hosted:
    service: Service
    endpoint: ServiceEndpoint


class Platform:
    """A set of services sharing one bus, each on its own gRPC port."""

    def __init__(
        self,
        hosted: Sequence[Hosted],
        bus: EventBus,
        *,
        max_workers: int = 32,
        shutdown_grace_s: float = 5.0,
    ) -> None:
        self._hosted = list(hosted)
        self._bus = bus
        self._max_workers = max_workers
        self._grace = shutdown_grace_s
        self.servers: dict[str, GrpcServer] = {}
        self._stopped = False
        self._stopping = threading.Event()
        self._serving: dict[str, bool] = {}
        self._watchdog = threading.Thread(target=self._watch_health, name="health", daemon=True)

    def start(self) -> None:
        for item in self._hosted:
            name = item.service.name
            server = GrpcServer(name, item.endpoint, self._max_workers, item.service.register)
            item.service.start()
            server.start()
            self._serving[name] = item.service.ready()
            server.set_serving(self._serving[name])
            self.servers[name] = server
        self._watchdog.start()

    def address(self, service: str) -> str:
        return self.servers[service].address

    def service(self, name: str) -> Service:
        return next(item.service for item in self._hosted if item.service.name == name)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._stopping.set()
        if self._watchdog.is_alive():
            self._watchdog.join()
        log.info("stopping: refusing new calls, draining")
        for server in self.servers.values():
            server.set_serving(False)
        # Producers stop and streams end first, so open streams do not hold the grace period.
        for item in self._hosted:
            item.service.stop()
        for server in self.servers.values():
            server.stop(self._grace)
        self._bus.close()
        for item in self._hosted:
            item.service.close()
        log.info("stopped cleanly")

    def _watch_health(self) -> None:
        """Keeps each server's health equal to its service's readiness."""
        while not self._stopping.wait(HEALTH_INTERVAL_S):
            for item in self._hosted:
                name = item.service.name
                ready = item.service.ready()
                if ready != self._serving[name]:
                    log.warning("%s is %s", name, "ready again" if ready else "NOT ready")
                    self.servers[name].set_serving(ready)
                    self._serving[name] = ready


def run_until_signalled(platform: Platform) -> None:
    """Starts the platform, waits for SIGINT or SIGTERM, then stops it gracefully."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    # `kill -USR1 <pid>` prints every thread's stack: for a process that seems stuck.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        try:
            platform.start()
        except OSError as error:  # a port in use, a data folder that cannot be written
            log.error("cannot start: %s", error)
            raise SystemExit(1) from None
        log.info("ready: %s", ", ".join(f"{n} on {s.address}" for n, s in platform.servers.items()))
        # A signal delivered to another thread only runs its Python handler when the main
        # thread next runs bytecode: wake up regularly rather than block for good.
        while not stop.wait(timeout=0.5):
            pass
    finally:
        platform.stop()


ServiceFactory = Callable[[PlatformConfig, EventBus, EventStore, Clock], Service]


def endpoint_of(config: PlatformConfig, service: str) -> ServiceEndpoint:
    endpoint: ServiceEndpoint = getattr(config.services, service.replace("-", "_"))
    return endpoint


def build_platform(
    config: PlatformConfig,
    factories: Mapping[str, ServiceFactory],
    clock: Clock | None = None,
) -> Platform:
    """The services named in `factories`, each with its own store, sharing one bus."""
    require_available_adapters(config)
    bus = create_bus(config.messaging)
    hosted = [
        Hosted(
            factory(config, bus, create_store(config.database, name), clock or SystemClock()),
            endpoint_of(config, name),
        )
        for name, factory in factories.items()
    ]
    return Platform(
        hosted,
        bus,
        max_workers=config.services.max_workers,
        shutdown_grace_s=config.services.shutdown_grace_s,
    )


def load_or_exit(path: Path, service: str) -> PlatformConfig:
    """Loads the config and sets up logging; a bad config exits with status 2."""
    try:
        config = load_config(path)
        require_available_adapters(config)
    except ConfigError as error:
        print(f"{service}: cannot start: {error}", file=sys.stderr)  # noqa: T201
        raise SystemExit(2) from None
    configure_logging(service, config.logging.level, config.logging.json_format)
    return config


def service_main(name: str, factory: ServiceFactory, argv: Sequence[str] | None = None) -> None:
    """The entry point of a service that runs as its own process."""
    parser = argparse.ArgumentParser(prog=name, description=f"Runs the {name} service.")
    parser.add_argument("--config", type=Path, default=Path("config/local.yaml"))
    args = parser.parse_args(argv)
    config = load_or_exit(args.config, name)
    run_until_signalled(build_platform(config, {name: factory}))
