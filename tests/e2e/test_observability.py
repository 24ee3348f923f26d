"""Observability for real: one order's spans across the three service processes (distributed
mode, the Pub/Sub emulator), exported over OTLP to a small collector in this test; and the
order counters on an embedded platform's /metrics."""

from __future__ import annotations

import urllib.request
import uuid
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from threading import Lock

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2
from trading.v1 import control_pb2, orders_pb2, types_pb2

from tests.e2e.conftest import (
    Clients,
    embedded_overrides,
    running_distributed,
    running_embedded,
    write_config,
)
from tests.support import free_port, wait_until

TIMEOUT = 10


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_id: str


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP trace receiver over gRPC that keeps every span it is sent."""

    def __init__(self) -> None:
        self._lock = Lock()
        self._spans: list[Span] = []

    def Export(  # noqa: N802 - the OTLP service's method name
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        received = [
            Span(
                _service(resource_spans),
                span.name,
                span.kind,
                span.trace_id.hex(),
                span.span_id.hex(),
                span.parent_span_id.hex(),
            )
            for resource_spans in request.resource_spans
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        ]
        with self._lock:
            self._spans.extend(received)
        return trace_service_pb2.ExportTraceServiceResponse()

    def spans(self) -> list[Span]:
        with self._lock:
            return list(self._spans)


def _service(resource_spans: trace_pb2.ResourceSpans) -> str:
    for attribute in resource_spans.resource.attributes:
        if attribute.key == "service.name":
            return attribute.value.string_value
    return ""


@pytest.fixture
def collector() -> Iterator[tuple[Collector, int]]:
    receiver = Collector()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    add_servicer = trace_service_pb2_grpc.add_TraceServiceServicer_to_server
    add_servicer(receiver, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield receiver, port
    server.stop(0)


def market_order(clients: Clients, account: str) -> orders_pb2.Order:
    request = orders_pb2.SubmitOrderRequest(
        request_id=str(uuid.uuid4()),
        client_order_id=str(uuid.uuid4()),
        account_id=account,
        strategy_id="observed",
        instrument="BTC-USD",
        side=types_pb2.SIDE_BUY,
        order_type=types_pb2.ORDER_TYPE_MARKET,
        quantity="0.01",
    )
    return clients.orders.SubmitOrder(request, timeout=TIMEOUT).order


def wait_filled(clients: Clients, order: orders_pb2.Order) -> None:
    def filled() -> bool:
        request = orders_pb2.GetOrderRequest(account_id=order.account_id, order_id=order.order_id)
        answer = clients.orders.GetOrder(request, timeout=TIMEOUT)
        return answer.order.status == types_pb2.ORDER_STATUS_FILLED

    wait_until(filled, 30, f"order {order.order_id} to be filled")


@pytest.mark.emulator
def test_one_orders_spans_across_the_three_services_share_its_trace_in_distributed_mode(
    tmp_path: Path, pubsub_emulator: str, collector: tuple[Collector, int]
) -> None:
    receiver, port = collector
    tracing = {"tracing": {"exporter": "otlp", "endpoint": f"http://127.0.0.1:{port}"}}
    with running_distributed(tmp_path, pubsub_emulator, {"telemetry": tracing}) as (clients, _):
        order = market_order(clients, "acct-traced")
        wait_filled(clients, order)

        def whole_trace() -> list[Span] | None:
            spans = receiver.spans()
            submits = [s for s in spans if s.name.endswith("OrderService/SubmitOrder")]
            if not submits:
                return None
            trace = [s for s in spans if s.trace_id == submits[0].trace_id]
            names = {(s.service, s.name) for s in trace}
            wanted = {
                ("execution-router", "venue.submit"),
                ("position-management", "apply_fill"),
                ("order-management", "executions process"),
            }
            # Whole: each process exports its spans in batches of its own, so a child's span
            # may arrive before its parent's.
            ids = {s.span_id for s in trace}
            parents_in = all(s.parent_id in ids for s in trace if s.parent_id)
            return trace if wanted <= names and parents_in else None

        trace = wait_until(whole_trace, 20, "the order's spans from every service")

    by_id = {span.span_id: span for span in trace}
    listing = "\n".join(f"{s.service} {s.name} {s.span_id} <- {s.parent_id}" for s in trace)

    def named(service: str, name: str) -> list[Span]:
        found = [s for s in trace if (s.service, s.name) == (service, name)]
        assert found, f"no {name} of {service} in:\n{listing}"
        return found

    def parents(spans: list[Span]) -> set[Span]:
        return {by_id[span.parent_id] for span in spans}

    # order-management: the call (the trace's root), its checks, its commit, its publish. (A
    # message delivered twice, as Pub/Sub may, adds a span: no count is asserted beyond one.)
    (submit,) = named("order-management", "/trading.v1.OrderService/SubmitOrder")
    assert submit.parent_id == "", listing
    assert submit.kind == trace_pb2.Span.SPAN_KIND_SERVER
    assert parents(named("order-management", "validate")) == {submit}, listing
    assert submit in parents(named("order-management", "journal.commit")), listing
    publishes = named("order-management", "orders publish")
    assert {s.kind for s in publishes} == {trace_pb2.Span.SPAN_KIND_PRODUCER}
    assert parents(publishes) == {submit}, listing
    # execution-router: consumes the command the message's attributes link to, routes it, calls
    # the venue, and publishes its reports in the same trace.
    routed = named("execution-router", "orders process")
    assert {s.kind for s in routed} == {trace_pb2.Span.SPAN_KIND_CONSUMER}
    assert parents(routed) <= set(publishes), listing
    assert parents(named("execution-router", "route")) <= set(routed), listing
    assert parents(named("execution-router", "venue.submit")) <= set(routed), listing
    reports = named("execution-router", "executions publish")
    # position-management and order-management apply the fill, each under a report's publish.
    applied = named("position-management", "apply_fill")
    consumed = parents(applied)
    assert {s.service for s in consumed} == {"position-management"}, listing
    assert parents(list(consumed)) <= set(reports), listing
    assert parents(named("order-management", "executions process")) <= set(reports), listing
    assert {s.service for s in trace} == {
        "order-management",
        "execution-router",
        "position-management",
    }


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=TIMEOUT) as answer:
        return str(answer.read().decode())


def test_metrics_count_an_embedded_platforms_orders_by_status_on_its_metrics_port(
    tmp_path: Path,
) -> None:
    port = free_port()
    overrides = embedded_overrides(tmp_path / "data")
    overrides["telemetry"] = {"metrics": {"port": port}}
    with running_embedded(write_config(tmp_path, overrides)) as clients:
        wait_filled(clients, market_order(clients, "acct-counted"))
        unlisted = orders_pb2.SubmitOrderRequest(
            request_id=str(uuid.uuid4()),
            client_order_id=str(uuid.uuid4()),
            account_id="acct-counted",
            instrument="NOT-LISTED",
            side=types_pb2.SIDE_BUY,
            order_type=types_pb2.ORDER_TYPE_MARKET,
            quantity="1",
        )
        clients.orders.SubmitOrder(unlisted, timeout=TIMEOUT)
        halt = control_pb2.SetTradingStateRequest(
            request_id=str(uuid.uuid4()), state=types_pb2.TRADING_STATE_HALTED, reason="observed"
        )
        clients.control.SetTradingState(halt, timeout=TIMEOUT)

        def counted() -> str | None:
            text = scrape(port)
            return text if 'trading_orders_total{status="FILLED"' in text else None

        lines = wait_until(counted, 10, "the filled order in /metrics").splitlines()

    def value(prefix: str) -> float:
        (line,) = [line for line in lines if line.startswith(prefix)]
        return float(line.rsplit(" ", 1)[1])

    assert value('trading_orders_total{status="SUBMITTED"') == 1
    assert value('trading_orders_total{status="FILLED"') == 1
    assert value('trading_orders_total{status="DENIED"') == 1
    assert value('trading_order_denials_total{reason="INSTRUMENT_NOT_CONFIGURED"') == 1
    assert value('trading_stage_duration_seconds_count{stage="validate"') == 2
    assert value('trading_stage_duration_seconds_count{stage="route"') == 1
    assert value('trading_journal_commit_duration_seconds_count{service="order-management"') > 0
    assert any(line.startswith("trading_consumer_lag_seconds_bucket{") for line in lines)
    assert value('trading_state{scope="platform"') == 2  # HALTED
    assert any(line.startswith("process_cpu_seconds_total") for line in lines)
    # Stopped with the platform: the port is free again.
    with pytest.raises(OSError):
        scrape(port)
