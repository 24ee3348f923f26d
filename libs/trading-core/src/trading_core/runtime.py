"""Starting and stopping services: one process may host one service or all three.

Start: the warehouse feed (`trading_core.store.feeding`, a process of its own by default) starts
and opens the warehouse (waited for 10 s at most); each service opens its journal, loads its
state and subscribes, then its gRPC server starts; health turns SERVING once the service is
ready (journal, bus, market data). Stop (Ctrl-C or SIGTERM): health turns NOT_SERVING,
background producers stop and streams end, the servers refuse new calls while running ones
finish (intake stopped), the bus delivers what it holds (drain), the journals commit what is
queued, the feed feeds the rest, and the process exits 0.

This module is the one place that wires services to transports: a `ServiceSpec` names a
service's class, its journal tables and its gRPC servicers; a service never registers itself.
Every server also serves the admin API (`trading_core.admin`) of its service. Telemetry is the
process's: tracing (`trading_core.tracing`) and the metrics server (`trading_core.metrics`) start
before the services and stop after them.
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

import grpc

from trading_core import sharding, tracing
from trading_core.admin import Administered, add_admin_servicer
from trading_core.auth import AuthInterceptor, Caller, Keyring, key_sha256
from trading_core.bus import create_bus
from trading_core.bus.base import EventBus
from trading_core.clock import Clock, SystemClock
from trading_core.config import (
    DEVELOPMENT_KEY,
    EVERY_ACCOUNT,
    ConfigError,
    PlatformConfig,
    ServiceEndpoint,
    Sharding,
    Telemetry,
    load_config,
    require_available_adapters,
)
from trading_core.grpc_server import GrpcServer
from trading_core.journal import Journal
from trading_core.metrics import MetricsServer, start_metrics
from trading_core.peers import CALLS, Peers
from trading_core.service import ServiceContext
from trading_core.store import Feed, FeedSpec, create_feed
from trading_core.telemetry import configure_logging

log = logging.getLogger(__name__)

# How often health follows the services' readiness (store writing, bus delivering, feed).
HEALTH_INTERVAL_S = 0.5
# How long start waits for the warehouse feed to open the warehouse before the services start:
# their first events are then not fed behind its start-up. Bounded: the warehouse is never on
# the order path.
FEED_READY_TIMEOUT_S = 10.0


class Service(Administered, Protocol):
    """What the runtime needs of a service (and its admin API, see `Administered`)."""

    name: str
    journal: Journal

    def start(self) -> None:
        """Loads state from the journal, subscribes to the bus, starts background work."""

    def stop(self) -> None:
        """Stops background producers (feeds, timers); the bus may still deliver."""

    def close(self) -> None:
        """Stops publishing; called after the bus has drained."""

    def ready(self) -> bool:
        """Whether its dependencies work; health reports NOT_SERVING while they do not."""

    def health_details(self) -> dict[str, bool]:
        """The health of its parts, each served under its own name (the router's venues)."""


ServiceFactory = Callable[[ServiceContext], Any]
# Adds a service's gRPC servicers to a server; returns their full service names.
ServicerWiring = Callable[[Any, grpc.Server], Sequence[str]]


@dataclass(frozen=True)
class ServiceSpec:
    """How to build one service: its class, its journal's tables, its gRPC servicers."""

    name: str
    factory: ServiceFactory
    schema: Sequence[str] = ()
    servicers: ServicerWiring | None = None


@dataclass
class Hosted:
    service: Service
    endpoint: ServiceEndpoint
    servicers: ServicerWiring | None


class Platform:
    """A set of services sharing one bus, each on its own gRPC port."""

    def __init__(
        self,
        hosted: Sequence[Hosted],
        bus: EventBus,
        peers: Peers,
        *,
        keyring: Keyring | None = None,
        max_workers: int = 32,
        shutdown_grace_s: float = 5.0,
        telemetry: Telemetry | None = None,
        process: str = "trading-platform",
        shards: Sharding | None = None,
        feed: Feed,
    ) -> None:
        """`process`: this process's name in traces and metrics (the service it hosts, alone);
        `shards`: the accounts its services own (README "Sharding by account"); `feed`: what
        feeds the services' warehouse from their journals."""
        self._hosted = list(hosted)
        self.feed = feed
        self._bus = bus
        self._peers = peers
        self._auth = [AuthInterceptor(keyring)] if keyring and keyring.enabled else []
        self._telemetry = telemetry or Telemetry()
        self._shards = shards or Sharding()
        self._process = process
        self.metrics: MetricsServer | None = None
        self._max_workers = max_workers
        self._grace = shutdown_grace_s
        self.servers: dict[str, GrpcServer] = {}
        self._stopped = False
        self._stopping = threading.Event()
        self._serving: dict[str, bool] = {}
        self._watchdog = threading.Thread(target=self._watch_health, name="health", daemon=True)

    def start(self) -> None:
        self.metrics = start_metrics(self._telemetry.metrics, self._process)
        tracing.configure_tracing(self._telemetry.tracing, self._process)
        self.feed.start()  # first: the services' first events are fed at once
        self.feed.wait_ready(FEED_READY_TIMEOUT_S)
        # Tracing first: a call refused by authentication is traced too.
        interceptors = [*tracing.server_interceptors(), *self._auth]
        for item in self._hosted:
            name = item.service.name
            wiring = item.servicers
            service = item.service
            server = GrpcServer(
                name,
                item.endpoint,
                self._max_workers,
                lambda srv, w=wiring, svc=service: [  # type: ignore[misc]
                    *(w(svc, srv) if w else ()),
                    *add_admin_servicer(svc, srv),
                ],
                [*interceptors, *sharding.interceptors(self._shards, name)],
            )
            self.servers[name] = server
            sharding.refuse_foreign_accounts(service.journal, self._shards, name)
            service.start()
            server.start()
            self._peers.bind(name, server.address)
            self._serving[name] = False
        self._update_health()
        self._watchdog.start()

    @property
    def bus(self) -> EventBus:
        """The bus the hosted services share (an operator's or a test's way to publish)."""
        return self._bus

    def address(self, service: str) -> str:
        return self.servers[service].address

    def service(self, name: str) -> Service:
        return next(item.service for item in self._hosted if item.service.name == name)

    def wait_ready(self, timeout: float) -> bool:
        """Waits until every service is ready (as health will say), up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not all(item.service.ready() for item in self._hosted):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        self._update_health()
        return True

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
            item.service.journal.close()
        self.feed.stop()  # after the journals' last commits: it feeds them all
        tracing.shutdown_tracing()
        if self.metrics is not None:
            self.metrics.stop()
        log.info("stopped cleanly")

    def _watch_health(self) -> None:
        """Keeps each server's health equal to its service's readiness."""
        while not self._stopping.wait(HEALTH_INTERVAL_S):
            self._update_health()
            self.feed.watch()

    def _update_health(self) -> None:
        for item in self._hosted:
            name = item.service.name
            ready = item.service.ready()
            if ready != self._serving.get(name):
                if self._serving.get(name):
                    log.warning("%s is NOT ready", name)
                self.servers[name].set_serving(ready)
                self._serving[name] = ready
            for part, healthy in item.service.health_details().items():
                key = f"{name}/{part}"
                if healthy != self._serving.get(key):
                    if self._serving.get(key) is not None:
                        log.warning("%s %s is %s", name, part, "up" if healthy else "DOWN")
                    self.servers[name].set_part_serving(part, healthy)
                    self._serving[key] = healthy


# How long a thread may keep the GIL while another waits for it. Python's 5 ms default starves
# the threads that wait on I/O (journal commits, gRPC): each SQLite call gives the GIL up and
# waits up to that long to get it back. Measured here: a 7-row commit beside one busy thread
# took 46 ms at 5 ms, 1.2 ms at 0.1 ms; the platform's throughput doubled.
GIL_SWITCH_INTERVAL_S = 0.0001


def run_until_signalled(build: Callable[[], Platform]) -> None:
    """Builds and starts the platform, waits for SIGINT or SIGTERM, then stops it gracefully.
    A platform that cannot start (a port in use, a journal in use) exits 1 with one line; one
    whose config a venue refutes (an instrument it does not list) exits 2, as a bad config."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    # `kill -USR1 <pid>` prints every thread's stack: for a process that seems stuck. A fatal
    # error (an abort in a C extension) prints them too, into the log.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    faulthandler.enable(all_threads=True)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    try:
        platform = build()
    except OSError as error:  # a journal in use, a data folder that cannot be written
        log.error("cannot start: %s", error)
        raise SystemExit(1) from None
    try:
        try:
            platform.start()
        except OSError as error:  # a port in use
            log.error("cannot start: %s", error)
            raise SystemExit(1) from None
        except ConfigError as error:  # what a venue says of the config
            names = ", ".join(platform.servers)
            print(f"{names}: cannot start: {error}", file=sys.stderr)  # noqa: T201
            raise SystemExit(2) from None
        log.info("ready: %s", ", ".join(f"{n} on {s.address}" for n, s in platform.servers.items()))
        # A signal delivered to another thread only runs its Python handler when the main
        # thread next runs bytecode: wake up regularly rather than block for good.
        while not stop.wait(timeout=0.5):
            pass
    finally:
        platform.stop()


def endpoint_of(config: PlatformConfig, service: str) -> ServiceEndpoint:
    endpoint: ServiceEndpoint = getattr(config.services, service.replace("-", "_"))
    return endpoint


def build_platform(
    config: PlatformConfig, specs: Sequence[ServiceSpec], clock: Clock | None = None
) -> Platform:
    """The services of `specs`, each with its own journal and warehouse, sharing one bus."""
    require_available_adapters(config)
    service_key, in_process = _service_key(config, [spec.name for spec in specs])
    keyring = Keyring(config.security, in_process)
    bus = create_bus(config.messaging, config.sharding.subscription_shard)
    peers = Peers(config, service_key)
    hosted = []
    try:
        for spec in specs:
            journal = Journal(config.journal.path / f"{spec.name}.journal", spec.schema)
            context = ServiceContext(config, bus, journal, clock or SystemClock(), peers)
            service = spec.factory(context)
            hosted.append(Hosted(service, endpoint_of(config, spec.name), spec.servicers))
    except BaseException:
        for item in hosted:
            item.service.journal.close()
        bus.close(timeout=1.0)
        raise
    return Platform(
        hosted,
        bus,
        peers,
        keyring=keyring,
        max_workers=config.services.max_workers,
        shutdown_grace_s=config.services.shutdown_grace_s,
        telemetry=config.telemetry,
        process=specs[0].name if len(specs) == 1 else "trading-platform",
        shards=config.sharding,
        feed=create_feed(
            FeedSpec(
                database=config.database,
                journals={item.service.name: item.service.journal.path for item in hosted},
                logging=config.logging,
                project=config.telemetry.project,
            )
        ),
    )


def _service_key(
    config: PlatformConfig, hosted: Sequence[str]
) -> tuple[str | None, list[tuple[str, Caller]]]:
    """The key this process's services present to their peers, and the callers it adds: a key
    made at start for a process that hosts every peer its services call; else
    `security.service_key` (in environment local, the development key when none is set)."""
    security = config.security
    if security.authentication != "api_keys":
        return None, []
    if security.service_key is not None:
        return security.service_key, []
    if all(peer in hosted for name in hosted for peer in CALLS.get(name, ())):
        key = secrets.token_urlsafe(32)
        return key, [
            (
                key_sha256(key),
                Caller("in-process", frozenset({"service"}), frozenset({EVERY_ACCOUNT})),
            )
        ]
    if config.environment == "local":
        return DEVELOPMENT_KEY, []
    calling = sorted({peer for name in hosted for peer in CALLS.get(name, ())} - set(hosted))
    raise ConfigError(
        f"security.service_key: {', '.join(hosted)} call {', '.join(calling)} in another "
        "process: set it to ${VARIABLE} holding a key with the service role"
    )


def load_or_exit(path: Path, service: str) -> PlatformConfig:
    """Loads the config and sets up logging; a bad config exits with status 2."""
    try:
        config = load_config(path)
        require_available_adapters(config)
    except ConfigError as error:
        print(f"{service}: cannot start: {error}", file=sys.stderr)  # noqa: T201
        raise SystemExit(2) from None
    configure_logging(
        service, config.logging.level, config.logging.json_format, config.telemetry.project
    )
    return config


def service_main(spec: ServiceSpec, argv: Sequence[str] | None = None) -> None:
    """The entry point of a service that runs as its own process."""
    parser = argparse.ArgumentParser(prog=spec.name, description=f"Runs the {spec.name} service.")
    parser.add_argument("--config", type=Path, default=Path("config/local.yaml"))
    args = parser.parse_args(argv)
    config = load_or_exit(args.config, spec.name)
    run_until_signalled(lambda: build_platform(config, [spec]))
