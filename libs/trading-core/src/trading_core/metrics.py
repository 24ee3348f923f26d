"""Metrics with OpenTelemetry, exported in Prometheus' format on `/metrics` of each process
(`telemetry.metrics.port`); Google Managed Prometheus scrapes them into Cloud Monitoring.

The services record through the functions below; what they record goes to the instruments of
the running platform (`start_metrics`), or to no-op instruments when metrics are off, which
cost next to nothing. The names, as Prometheus shows them (README "Observability"):

| metric | labels | what |
|---|---|---|
| trading_orders_total | status | orders reaching a status (a change of status counts once) |
| trading_order_denials_total | reason | orders denied by order-management, by reason code |
| trading_stage_duration_seconds | stage | the time each stage of an order takes |
| trading_journal_commit_duration_seconds | service | from a commit's request to durable |
| trading_consumer_lag_seconds | subscription | from an event's time to its consumer applying it |
| trading_dead_letters | service, subscription | messages parked in the dead-letter store now |
| trading_venue_errors_total | venue, error | failed venue calls, by the error's type |
| trading_venue_circuit_open | venue | 1 while the venue's circuit breaker is open |
| trading_state | scope | trading state: 0 ACTIVE, 1 REDUCING, 2 HALTED (platform or account) |
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import Meter, NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server

from trading_core.config import Metrics

log = logging.getLogger(__name__)

# Seconds: from a fraction of a millisecond (a risk check) to a minute (a stuck consumer).
_LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip


class Instruments:
    """The platform's instruments, made by one meter."""

    def __init__(self, meter: Meter) -> None:
        self.orders = meter.create_counter(
            "trading.orders", "{order}", "Orders reaching a status (a change counts once)"
        )
        self.denials = meter.create_counter(
            "trading.order.denials", "{order}", "Orders denied by order-management, by reason"
        )
        self.stage_duration = self._latency(meter, "trading.stage.duration", "Time per stage")
        self.commit_duration = self._latency(
            meter, "trading.journal.commit.duration", "From a commit's request to durable"
        )
        self.consumer_lag = self._latency(
            meter, "trading.consumer.lag", "From an event's time to its consumer applying it"
        )
        self.dead_letters = meter.create_up_down_counter(
            "trading.dead_letters", "{message}", "Messages parked in the dead-letter store"
        )
        self.venue_errors = meter.create_counter(
            "trading.venue.errors", "{call}", "Failed venue calls, by the error's type"
        )
        self.circuit_open = meter.create_gauge(
            "trading.venue.circuit_open", description="1 while the venue's circuit is open"
        )
        self.trading_state = meter.create_gauge(
            "trading.state", description="Trading state: 0 ACTIVE, 1 REDUCING, 2 HALTED"
        )

    @staticmethod
    def _latency(meter: Meter, name: str, description: str) -> Any:
        return meter.create_histogram(
            name, "s", description, explicit_bucket_boundaries_advisory=_LATENCY_BUCKETS
        )


_instruments = Instruments(NoOpMeterProvider().get_meter("trading_core"))
_on = False


def instruments() -> Instruments:
    return _instruments


def enabled() -> bool:
    return _on


def use(meter: Meter | None) -> None:
    """Records into `meter`'s instruments from now on; None: records nothing."""
    global _instruments, _on  # noqa: PLW0603 - the process's instruments, as its logging
    _on = meter is not None
    _instruments = Instruments(meter or NoOpMeterProvider().get_meter("trading_core"))


# What the services record ---------------------------------------------------------------------


def order_status(status: str) -> None:
    _instruments.orders.add(1, {"status": status})


def order_denied(reason: str) -> None:
    _instruments.denials.add(1, {"reason": reason})


def stage_took(stage: str, seconds: float) -> None:
    _instruments.stage_duration.record(seconds, {"stage": stage})


def commit_took(service: str, seconds: float) -> None:
    _instruments.commit_duration.record(seconds, {"service": service})


def consumed(subscription: str, lag_seconds: float) -> None:
    _instruments.consumer_lag.record(max(lag_seconds, 0.0), {"subscription": subscription})


def dead_letters_changed(service: str, subscription: str, by: int) -> None:
    _instruments.dead_letters.add(by, {"service": service, "subscription": subscription})


def venue_error(venue: str, error: BaseException) -> None:
    _instruments.venue_errors.add(1, {"venue": venue, "error": type(error).__name__})


def circuit(venue: str, is_open: bool) -> None:
    _instruments.circuit_open.set(int(is_open), {"venue": venue})


def trading_state(scope: str, strictness: int) -> None:
    _instruments.trading_state.set(strictness, {"scope": scope})


# The exporter ---------------------------------------------------------------------------------


@dataclass
class MetricsServer:
    """The process's meter provider and its `/metrics` HTTP server."""

    provider: MeterProvider
    server: Any
    thread: threading.Thread
    port: int

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
        self.provider.shutdown()
        use(None)


def start_metrics(
    settings: Metrics, service: str, reader: MetricReader | None = None
) -> MetricsServer | None:
    """Serves this process's metrics on `settings.port` (None: metrics off, then None);
    `reader` adds a reader of its own (tests)."""
    if settings.port is None:
        return None
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)  # CPU, memory, open files of the process
    # No otel_scope_* labels: one scope, and queries stay short.
    exporter = PrometheusMetricReader(registry=registry, scope_info_enabled=False)
    readers: list[MetricReader] = [exporter]
    if reader is not None:
        readers.append(reader)
    provider = MeterProvider(
        metric_readers=readers, resource=Resource.create({"service.name": service})
    )
    try:
        server, thread = start_http_server(settings.port, settings.host, registry=registry)
    except OSError as error:
        provider.shutdown()
        raise OSError(
            f"cannot serve metrics on {settings.host}:{settings.port} ({error.strerror}): "
            "is telemetry.metrics.port in use?"
        ) from None
    use(provider.get_meter("trading_core"))
    port = server.server_address[1]
    log.info("metrics on http://%s:%d/metrics", settings.host, port)
    return MetricsServer(provider, server, thread, port)
