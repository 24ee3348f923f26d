"""Builds the venue adapters the config names (`execution.mode` and `execution.venues`).

The simulation mode trades on the paper venue, named `simulation`. The direct and quantconnect
modes trade on `execution.venues`, each with its own guard (rate limits, timeout, retries,
circuit breaker) from its block; credentials come from the config, which takes them from
`${VAR}` only.
"""

from __future__ import annotations

from collections.abc import Callable

from trading_core.clock import Clock
from trading_core.config import (
    SIMULATION_VENUE,
    ExchangeVenue,
    PlatformConfig,
    QuantConnectVenue,
)

from execution_router.venues.base import ExecutionClient, ReportSink
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
        if isinstance(venue, QuantConnectVenue):
            client = _quantconnect(name, venue, sink_of(name))
        else:
            client = _exchange(name, venue, sink_of(name))
        client.name = name
        clients[name] = client
    return clients


def _exchange(name: str, venue: ExchangeVenue, sink: ReportSink) -> ExecutionClient:
    # The network adapters are imported only when configured: CCXT takes seconds to import,
    # which every paper-trading start would pay for nothing.
    from execution_router.venues.binance import CcxtBinanceSpotClient
    from execution_router.venues.bybit import CcxtBybitSpotClient
    from execution_router.venues.ccxt_client import CcxtSpotClient, transport_failure

    exchanges: dict[str, type[CcxtSpotClient]] = {
        "binance": CcxtBinanceSpotClient,
        "bybit": CcxtBybitSpotClient,
    }
    adapter = exchanges[venue.kind]
    return adapter(
        sink,
        api_key=venue.api_key,
        secret=venue.api_secret,
        symbols=venue.symbols,
        sandbox=venue.environment == "testnet",
        base_url=venue.base_url,
        stream=venue.user_data_stream,
        stream_url=venue.stream_url,
        timeout_s=venue.execution_timeout_ms / 1000,
        poll_interval_s=venue.poll_interval_ms / 1000,
        stream_poll_interval_s=venue.stream_poll_interval_ms / 1000,
        recv_window_ms=venue.recv_window_ms,
        native_stops=venue.native_stops,
        guard=VenueGuard(name, _with_limits(venue, adapter), transient=transport_failure),
    )


def _with_limits(venue: ExchangeVenue, adapter: type[ExecutionClient]) -> ExchangeVenue:
    """The venue's block with its adapter's published rate limits where the config sets none."""
    unset = {
        key: list(getattr(adapter, f"default_{key}"))
        for key in ("rate_limits", "order_rate_limits")
        if key not in venue.model_fields_set
    }
    return venue.model_copy(update=unset)


def _quantconnect(name: str, venue: QuantConnectVenue, sink: ReportSink) -> ExecutionClient:
    from execution_router.venues import quantconnect

    timeout_s = venue.execution_timeout_ms / 1000
    return quantconnect.QuantConnectClient(
        sink,
        user_id=venue.user_id,
        api_token=venue.api_token,
        project_id=venue.project_id,
        symbols=venue.symbols,
        market=venue.market,
        security_type=venue.security_type,
        base_url=venue.base_url,
        poll_interval_s=venue.poll_interval_ms / 1000,
        connect_timeout_s=min(timeout_s, 5.0),
        read_timeout_s=timeout_s,
        lost_submit_window_s=venue.lost_submit_window_ms / 1000,
        guard=VenueGuard(name, venue, transient=quantconnect.TRANSIENT),
    )
