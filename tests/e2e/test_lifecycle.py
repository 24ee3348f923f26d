"""Health, reflection, restart from the stores, and a clean stop."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

import duckdb
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from trading.v1 import events_pb2, orders_pb2, positions_pb2, types_pb2
from trading_core.runtime import Platform
from trading_core.store import DuckDBEventStore

from tests.e2e.conftest import (
    SERVICE_MODULES,
    Clients,
    ServiceProcesses,
    embedded_overrides,
    order_management,
    start_embedded,
    write_config,
)
from tests.e2e.test_trading_flow import order_status, position_quantity, ready_for_market_orders
from tests.support import wait_until

SERVICE_NAMES = {
    "order-management": "trading.v1.OrderService",
    "execution-router": "trading.v1.ExecutionService",
    "position-management": "trading.v1.PositionService",
}


def test_every_service_reports_serving_and_lists_its_api_through_reflection(
    embedded: tuple[Clients, Platform],
) -> None:
    clients, _ = embedded
    for service, full_name in SERVICE_NAMES.items():
        channel = clients.channel(service)
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", full_name):
            answer = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        [answer] = list(reflection.ServerReflectionInfo(iter([request]), timeout=5))
        listed = {s.name for s in answer.list_services_response.service}
        assert {full_name, "grpc.health.v1.Health"} <= listed


def test_stopped_platform_reports_not_serving_before_it_closes(tmp_path: Path) -> None:
    platform = start_embedded(write_config(tmp_path, embedded_overrides(tmp_path / "data")))
    server = platform.servers["order-management"]
    with grpc.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        serving = health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        server.set_serving(False)
        draining = health.Check(health_pb2.HealthCheckRequest(), timeout=5)
    platform.stop()
    assert serving.status == health_pb2.HealthCheckResponse.SERVING
    assert draining.status == health_pb2.HealthCheckResponse.NOT_SERVING


def test_restarted_platform_rebuilds_orders_and_positions_from_its_stores(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, embedded_overrides(tmp_path / "data"))
    platform = start_embedded(config)
    clients = Clients({name: platform.address(name) for name in SERVICE_MODULES})
    try:
        ready_for_market_orders(clients)
        filled = _submit(clients, "acct-restart", types_pb2.ORDER_TYPE_MARKET, "0.3")
        order_status(clients, filled.order_id, types_pb2.ORDER_STATUS_FILLED)
        resting = _submit(clients, "acct-restart", types_pb2.ORDER_TYPE_LIMIT, "0.1", "1000")
        order_status(clients, resting.order_id, types_pb2.ORDER_STATUS_ACCEPTED)
        before = position_quantity(clients, "acct-restart", "0.3")
    finally:
        clients.close()
        platform.stop()

    platform = start_embedded(config)
    clients = Clients({name: platform.address(name) for name in SERVICE_MODULES})
    try:
        get = clients.orders.GetOrder
        again = get(orders_pb2.GetOrderRequest(order_id=filled.order_id)).order
        assert again.status == types_pb2.ORDER_STATUS_FILLED
        still_resting = get(orders_pb2.GetOrderRequest(order_id=resting.order_id)).order
        assert still_resting.status == types_pb2.ORDER_STATUS_ACCEPTED
        request = positions_pb2.GetPositionRequest(account_id="acct-restart", instrument="BTC-USD")
        after = clients.positions.GetPosition(request).position
        assert Decimal(after.quantity) == Decimal(before.quantity)
        assert after.average_price == before.average_price
        # The router restored the resting order: it can still be canceled at the venue.
        clients.orders.CancelOrder(orders_pb2.CancelOrderRequest(order_id=resting.order_id))
        order_status(clients, resting.order_id, types_pb2.ORDER_STATUS_CANCELED)
        # And the same request id still answers with the original order.
        repeat = _submit(
            clients,
            "acct-restart",
            types_pb2.ORDER_TYPE_MARKET,
            "0.3",
            request_id=filled.request_id,
        )
        assert repeat.order_id == filled.order_id
    finally:
        clients.close()
        platform.stop()


def test_service_processes_exit_zero_on_sigterm(
    distributed: tuple[Clients, ServiceProcesses],
) -> None:
    clients, services = distributed
    ready_for_market_orders(clients)
    assert services.stop() == dict.fromkeys(SERVICE_MODULES, 0)


def _submit(
    clients: Clients,
    account: str,
    order_type: types_pb2.OrderType.ValueType,
    quantity: str,
    limit_price: str = "",
    request_id: str = "",
) -> orders_pb2.Order:
    request = orders_pb2.SubmitOrderRequest(
        request_id=request_id or str(uuid.uuid4()),
        client_order_id=str(uuid.uuid4()),
        account_id=account,
        instrument="BTC-USD",
        side=types_pb2.SIDE_BUY,
        order_type=order_type,
        quantity=quantity,
        limit_price=limit_price,
    )
    return clients.orders.SubmitOrder(request, timeout=20).order


def test_each_producer_numbers_an_orders_events_consecutively_from_one(tmp_path: Path) -> None:
    platform = start_embedded(write_config(tmp_path, embedded_overrides(tmp_path / "data")))
    clients = Clients({name: platform.address(name) for name in SERVICE_MODULES})
    try:
        ready_for_market_orders(clients)
        order = _submit(clients, "acct-sequence", types_pb2.ORDER_TYPE_MARKET, "0.01")
        filled = order_status(clients, order.order_id, types_pb2.ORDER_STATUS_FILLED)
    finally:
        clients.close()
        platform.stop()  # writes what the stores buffer
    store = DuckDBEventStore(
        tmp_path / "data" / "order-management.duckdb", "order_management_events"
    )
    events = [e for e in store.replay() if e.order_id == order.order_id]
    store.close()
    reports = [e.sequence for e in events if e.HasField("execution_report")]
    own = [e.sequence for e in events if not e.HasField("execution_report")]
    assert own == [1]  # order-management's: OrderSubmitted
    assert reports == [1, 2]  # the router's: acknowledged, filled
    assert filled.version == len(events)  # the order counts every event applied to it


def test_order_management_keeps_the_positions_it_is_told_of_for_pre_trade_risk(
    embedded: tuple[Clients, Platform],
) -> None:
    clients, platform = embedded
    oms = order_management(platform)
    ready_for_market_orders(clients)
    order = _submit(clients, "acct-risk", types_pb2.ORDER_TYPE_MARKET, "0.02")
    order_status(clients, order.order_id, types_pb2.ORDER_STATUS_FILLED)
    position = wait_until(
        lambda: oms.positions.get(("acct-risk", "BTC-USD")), 10, "the position to reach the OMS"
    )
    assert Decimal(position.quantity) == Decimal("0.02")


def test_health_turns_not_serving_while_the_store_cannot_write_and_back_when_it_can(
    tmp_path: Path,
) -> None:
    platform = start_embedded(write_config(tmp_path, embedded_overrides(tmp_path / "data")))
    clients = Clients({name: platform.address(name) for name in SERVICE_MODULES})
    database = duckdb.connect(str(tmp_path / "data" / "order-management.duckdb"))
    try:
        health = health_pb2_grpc.HealthStub(clients.channel("order-management"))

        def status() -> int:
            return int(health.Check(health_pb2.HealthCheckRequest(), timeout=5).status)

        assert status() == health_pb2.HealthCheckResponse.SERVING
        # A real write failure: the table the store appends to is gone.
        database.execute("ALTER TABLE order_management_events RENAME TO moved_away")
        denied = _submit(clients, "acct-health", types_pb2.ORDER_TYPE_MARKET, "0.00015")
        wait_until(
            lambda: status() == health_pb2.HealthCheckResponse.NOT_SERVING,
            10,
            "health to report the failing store",
        )
        database.execute("ALTER TABLE moved_away RENAME TO order_management_events")
        wait_until(
            lambda: status() == health_pb2.HealthCheckResponse.SERVING,
            20,
            "health to recover once the store writes again",
        )
    finally:
        database.close()
        clients.close()
        platform.stop()
    store = DuckDBEventStore(
        tmp_path / "data" / "order-management.duckdb", "order_management_events"
    )
    stored = [e.event_id for e in store.replay() if e.order_id == denied.order_id]
    store.close()
    assert len(stored) == 1  # the event waited in the buffer and was written once


def _accepted(order_id: str, account: str) -> events_pb2.Event:
    """An OrderSubmitted event as order-management writes it."""
    order = orders_pb2.Order(
        order_id=order_id,
        client_order_id=f"coid-{order_id}",
        request_id=f"req-{order_id}",
        account_id=account,
        instrument="BTC-USD",
        side=types_pb2.SIDE_BUY,
        order_type=types_pb2.ORDER_TYPE_MARKET,
        time_in_force=types_pb2.TIME_IN_FORCE_GTC,
        quantity="0.01",
        status=types_pb2.ORDER_STATUS_SUBMITTED,
        filled_quantity="0",
        fees="0",
        version=1,
    )
    order.create_time.GetCurrentTime()
    order.update_time.CopyFrom(order.create_time)
    return _event(
        f"accepted-{order_id}", 1, order, order_submitted=events_pb2.OrderSubmitted(order=order)
    )


def _report(order: orders_pb2.Order, sequence: int, **report: object) -> events_pb2.Event:
    """An execution report event as the router writes it."""
    payload = events_pb2.ExecutionReport(
        order_id=order.order_id, venue="simulation", venue_order_id="v-1", side=order.side,
        **report,  # type: ignore[arg-type]
    )  # fmt: skip
    return _event(f"report-{sequence}-{order.order_id}", sequence, order, execution_report=payload)


def _event(
    event_id: str, sequence: int, order: orders_pb2.Order, **payload: object
) -> events_pb2.Event:
    event = events_pb2.Event(
        event_id=event_id,
        sequence=sequence,
        order_id=order.order_id,
        account_id=order.account_id,
        instrument=order.instrument,
        **payload,  # type: ignore[arg-type]
    )
    event.event_time.GetCurrentTime()
    return event


def _write(path: Path, table: str, *events: events_pb2.Event) -> None:
    store = DuckDBEventStore(path, table)
    for event in events:
        store.append(event)
    store.close()


def test_an_accepted_order_the_router_never_received_is_routed_after_a_restart(
    tmp_path: Path,
) -> None:
    # As a crash leaves it: order-management stored its OrderSubmitted, the in-memory bus lost
    # the message, the router never heard of the order.
    accepted = _accepted("lost-on-the-way-out", "acct-lost")
    data = tmp_path / "data"
    _write(data / "order-management.duckdb", "order_management_events", accepted)

    platform = start_embedded(write_config(tmp_path, embedded_overrides(data)))
    clients = Clients({name: platform.address(name) for name in SERVICE_MODULES})
    try:
        filled = order_status(clients, accepted.order_id, types_pb2.ORDER_STATUS_FILLED)
        assert Decimal(filled.filled_quantity) == Decimal("0.01")
        position_quantity(clients, "acct-lost", "0.01")
    finally:
        clients.close()
        platform.stop()


def test_fills_the_consumers_never_received_are_applied_after_a_restart(tmp_path: Path) -> None:
    # As a crash leaves it: the router filled the order and stored its reports, the in-memory
    # bus lost them, order-management and position-management never heard of the fill.
    accepted = _accepted("fill-lost-on-the-way-back", "acct-lost-fill")
    order = accepted.order_submitted.order
    acknowledged = _report(
        order, 1, execution_type=types_pb2.EXECUTION_TYPE_ACCEPTED,
        cumulative_quantity="0", leaves_quantity="0.01",
    )  # fmt: skip
    filled = _report(
        order, 2, execution_type=types_pb2.EXECUTION_TYPE_FILLED, trade_id="trade-1",
        last_quantity="0.01", last_price="60000", fee="0.6", cumulative_quantity="0.01",
        leaves_quantity="0", average_price="60000",
    )  # fmt: skip
    data = tmp_path / "data"
    _write(data / "order-management.duckdb", "order_management_events", accepted)
    _write(
        data / "execution-router.duckdb", "execution_router_events", accepted, acknowledged, filled
    )

    platform = start_embedded(write_config(tmp_path, embedded_overrides(data)))
    clients = Clients({name: platform.address(name) for name in SERVICE_MODULES})
    try:
        shown = order_status(clients, order.order_id, types_pb2.ORDER_STATUS_FILLED)
        assert Decimal(shown.average_fill_price) == Decimal("60000")
        position = position_quantity(clients, "acct-lost-fill", "0.01")
        assert Decimal(position.fees) == Decimal("0.6")
    finally:
        clients.close()
        platform.stop()


def test_serve_on_a_port_in_use_exits_1_naming_the_address(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        overrides = embedded_overrides(tmp_path / "data")
        overrides["services"] = {"order_management": {"port": port}}
        config = write_config(tmp_path, overrides)
        done = subprocess.run(
            [sys.executable, "-m", "tradectl", "serve", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr


def test_stop_ends_open_streams_without_waiting_out_the_grace_period(tmp_path: Path) -> None:
    overrides = embedded_overrides(tmp_path / "data")
    overrides["services"] = {**overrides["services"], "shutdown_grace_s": 30}  # type: ignore[dict-item]
    platform = start_embedded(write_config(tmp_path, overrides))
    clients = Clients({name: platform.address(name) for name in SERVICE_MODULES})
    try:
        stream = clients.orders.StreamOrderEvents(orders_pb2.StreamOrderEventsRequest())
        stream.initial_metadata()  # subscribed
        started = time.monotonic()
        platform.stop()
        assert list(stream) == []  # the stream ended cleanly, with no event
        assert time.monotonic() - started < 10
    finally:
        clients.close()
        platform.stop()
