"""Builds the venue adapters the config names (`execution.mode` and `execution.venues`).

The simulation mode trades on the paper venue, named `simulation`. The direct and quantconnect
modes trade on `execution.venues`, each with its own guard (rate limits, timeout, retries,
circuit breaker) from its block; credentials come from the config, which takes them from
`${VAR}` only.
"""

from __future__ import annotations

from collections.abc import Callable

import ccxt  # type: ignore[import-untyped]
from trading_core.clock import Clock
from trading_core.config import SIMULATION_VENUE, ExchangeVenue, PlatformConfig

from execution_router.venues.base import ExecutionClient, ReportSink
from execution_router.venues.ccxt_client import CcxtBinanceSpotClient
from execution_router.venues.resilience import VenueGuard
from execution_router.venues.simulation import SimulationClient


def build_clients(
    config: PlatformConfig, sink_of: Callable[[str], ReportSink], clock: Clock
) -> dict[str, ExecutionClient]:
    """The adapters by venue name, in config order."""
    execution = config.execution
    if not execution.venues:
        simulation = SimulationClient(
            sink_of(SIMULATION_VENUE), execution.simulation, config.instruments, clock
        )
        return {SIMULATION_VENUE: simulation}
    clients: dict[str, ExecutionClient] = {}
    for name, venue in execution.venues.items():
        if not isinstance(venue, ExchangeVenue):
            raise NotImplementedError(f"execution.venues.{name}: kind {venue.kind} comes next")
        clients[name] = _exchange(name, venue, sink_of(name))
    return clients


def _exchange(name: str, venue: ExchangeVenue, sink: ReportSink) -> ExecutionClient:
    if venue.kind != "binance":
        raise NotImplementedError(f"execution.venues.{name}: kind {venue.kind} comes next")
    client = CcxtBinanceSpotClient(
        sink,
        api_key=venue.api_key,
        secret=venue.api_secret,
        symbols=venue.symbols,
        sandbox=venue.environment == "testnet",
        base_url=venue.base_url,
        timeout_s=venue.execution_timeout_ms / 1000,
        poll_interval_s=venue.poll_interval_ms / 1000,
        recv_window_ms=venue.recv_window_ms,
    )
    client.name = name
    client.symbols = dict(venue.symbols)
    client.guard = VenueGuard(name, venue, transient=(ccxt.NetworkError,))
    return client
