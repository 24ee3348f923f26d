"""What the platform records in its metrics, read back through an in-memory reader beside the
Prometheus exporter; and that with metrics and tracing off nothing is recorded at all."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from execution_router.venues.resilience import VenueGuard
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from trading_core import metrics, tracing
from trading_core.config import Metrics, Tracing, VenueResilience
from trading_core.telemetry import stage


@pytest.fixture
def reader() -> Iterator[InMemoryMetricReader]:
    memory = InMemoryMetricReader()
    server = metrics.start_metrics(Metrics(port=0), "test", memory)
    assert server is not None
    yield memory
    server.stop()


def points(reader: InMemoryMetricReader, name: str) -> list[tuple[dict[str, Any], Any]]:
    """(attributes, point) of each data point of the metric `name`."""
    data = reader.get_metrics_data()
    assert data is not None
    return [
        (dict(point.attributes or {}), point)
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == name
        for point in metric.data.data_points
    ]


def values(reader: InMemoryMetricReader, name: str, label: str) -> dict[str, Any]:
    return {attributes[label]: point.value for attributes, point in points(reader, name)}


def test_order_statuses_and_denials_are_counted_by_label(reader: InMemoryMetricReader) -> None:
    for status in ("SUBMITTED", "ACCEPTED", "FILLED", "SUBMITTED", "DENIED"):
        metrics.order_status(status)
    metrics.order_denied("RATE_LIMIT_EXCEEDED")
    assert values(reader, "trading.orders", "status") == {
        "SUBMITTED": 2,
        "ACCEPTED": 1,
        "FILLED": 1,
        "DENIED": 1,
    }
    assert values(reader, "trading.order.denials", "reason") == {"RATE_LIMIT_EXCEEDED": 1}


def test_a_stage_records_its_time_and_is_a_span_when_tracing_is_on(
    reader: InMemoryMetricReader,
) -> None:
    spans = InMemorySpanExporter()
    tracing.configure_tracing(Tracing(), "test", spans)
    try:
        with stage("validate"), stage("route"):
            pass
    finally:
        tracing.shutdown_tracing()
    durations = {a["stage"]: p for a, p in points(reader, "trading.stage.duration")}
    assert {stage: point.count for stage, point in durations.items()} == {"validate": 1, "route": 1}
    assert durations["validate"].sum >= durations["route"].sum >= 0
    route, validate = spans.get_finished_spans()
    assert (route.name, validate.name) == ("route", "validate")
    assert route.parent is not None and validate.context is not None
    assert route.parent.span_id == validate.context.span_id


def test_dead_letters_go_up_when_parked_and_down_when_replayed(
    reader: InMemoryMetricReader,
) -> None:
    metrics.dead_letters_changed("order-management", "executions.order-management", 2)
    metrics.dead_letters_changed("order-management", "executions.order-management", -1)
    assert values(reader, "trading.dead_letters", "subscription") == {
        "executions.order-management": 1
    }


def test_a_venues_errors_are_counted_and_its_open_circuit_shows(
    reader: InMemoryMetricReader,
) -> None:
    settings = VenueResilience(failure_threshold=2, reset_timeout_ms=60_000, retry_attempts=0)
    venue = VenueGuard("binance", settings, (TimeoutError,))
    assert values(reader, "trading.venue.circuit_open", "venue") == {"binance": 0}

    def down() -> None:
        raise TimeoutError("connection reset")

    for _ in range(2):
        with pytest.raises(TimeoutError):
            venue.call(down)
    assert values(reader, "trading.venue.circuit_open", "venue") == {"binance": 1}
    errors = {(a["venue"], a["error"]): p.value for a, p in points(reader, "trading.venue.errors")}
    assert errors == {("binance", "TimeoutError"): 2}


def test_latencies_of_commits_and_consumers_and_the_trading_state_are_recorded(
    reader: InMemoryMetricReader,
) -> None:
    metrics.commit_took("order-management", 0.002)
    metrics.consumed("orders.execution-router", 0.5)
    metrics.consumed("orders.execution-router", -0.1)  # clocks apart: never negative
    metrics.trading_state("platform", 2)
    (commit,) = points(reader, "trading.journal.commit.duration")
    assert commit[0] == {"service": "order-management"} and commit[1].count == 1
    ((_, lag),) = points(reader, "trading.consumer.lag")
    assert (lag.count, lag.sum, lag.min) == (2, 0.5, 0.0)
    assert values(reader, "trading.state", "scope") == {"platform": 2}


def test_with_metrics_and_tracing_off_a_stage_is_the_one_shared_no_op() -> None:
    assert not metrics.enabled() and not tracing.enabled()
    assert stage("validate") is stage("route")
    with stage("validate"):
        metrics.order_status("FILLED")  # into no-op instruments: nothing to read, no error
