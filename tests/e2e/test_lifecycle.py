"""Health, reflection, restart from the stores, and a clean stop."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
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

from tests.e2e.conftest import (
    SERVICE_MODULES,
    Clients,
    ServiceProcesses,
    embedded_overrides,
    order_management,
    running_embedded,
    start_embedded,
    write_config,
)
from tests.e2e.test_trading_flow import order_status, position_quantity, ready_for_market_orders
from tests.support import wait_until

# The API of each service; every one also serves the admin API.
SERVICE_NAMES = {
    "order-management": ("trading.v1.OrderService", "trading.v1.AdminService"),
    "execution-router": ("trading.v1.ExecutionService", "trading.v1.AdminService"),
    "position-management": (
        "trading.v1.PositionService",
        "trading.v1.AnalyticsService",
        "trading.v1.AdminService",
    ),
    "market-data": ("trading.v1.AdminService",),
}


def test_every_service_reports_serving_and_lists_its_api_through_reflection(
    embedded: tuple[Clients, Platform],
) -> None:
    clients, _ = embedded
    for service, full_names in SERVICE_NAMES.items():
        channel = clients.channel(service)
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", *full_names):
            answer = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        [answer] = list(reflection.ServerReflectionInfo(iter([request]), timeout=5))
        listed = {s.name for s in answer.list_services_response.service}
        assert {*full_names, "grpc.health.v1.Health"} <= listed


def test_stopped_platform_reports_not_serving_before_it_closes(tmp_path: Path) -> None:
    platform = start_embedded(write_config(tmp_path, embedded_overrides(tmp_path / "data")))
    address = platform.servers["order-management"].address
    with grpc.insecure_channel(address) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(), timeout=30
        )
        seen = [next(watch).status]  # SERVING, and now watching
        stopping = threading.Thread(target=platform.stop)
        stopping.start()
        # Until the server closes; its going away ends the watch with an error.
        with contextlib.suppress(grpc.RpcError):
            seen.extend(answer.status for answer in watch)
        stopping.join(30)
    assert seen[0] == health_pb2.HealthCheckResponse.SERVING
    assert health_pb2.HealthCheckResponse.NOT_SERVING in seen[1:]


def test_restarted_platform_rebuilds_orders_and_positions_from_its_stores(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, embedded_overrides(tmp_path / "data"))
    with running_embedded(config) as clients:
        ready_for_market_orders(clients)
        filled = _submit(clients, "acct-restart", types_pb2.ORDER_TYPE_MARKET, "0.3")
        order_status(clients, filled, types_pb2.ORDER_STATUS_FILLED)
        resting = _submit(clients, "acct-restart", types_pb2.ORDER_TYPE_LIMIT, "0.1", "1000")
        order_status(clients, resting, types_pb2.ORDER_STATUS_ACCEPTED)
        before = position_quantity(clients, "acct-restart", "0.3")

    with running_embedded(config) as clients:
        get = clients.orders.GetOrder
        again = get(
            orders_pb2.GetOrderRequest(order_id=filled.order_id, account_id=filled.account_id)
        ).order
        assert again.status == types_pb2.ORDER_STATUS_FILLED
        still_resting = get(
            orders_pb2.GetOrderRequest(order_id=resting.order_id, account_id=resting.account_id)
        ).order
        assert still_resting.status == types_pb2.ORDER_STATUS_ACCEPTED
        request = positions_pb2.GetPositionRequest(account_id="acct-restart", instrument="BTC-USD")
        after = clients.positions.GetPosition(request).position
        assert Decimal(after.quantity) == Decimal(before.quantity)
        assert after.average_price == before.average_price
        # The router restored the resting order: it can still be canceled at the venue.
        clients.orders.CancelOrder(
            orders_pb2.CancelOrderRequest(
                order_id=resting.order_id,
                account_id=resting.account_id,
                request_id=str(uuid.uuid4()),
            )
        )
        order_status(clients, resting, types_pb2.ORDER_STATUS_CANCELED)
        # And the same request id still answers with the original order.
        repeat = _submit(
            clients,
            "acct-restart",
            types_pb2.ORDER_TYPE_MARKET,
            "0.3",
            request_id=filled.request_id,
            client_order_id=filled.client_order_id,
        )
        assert repeat.order_id == filled.order_id


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
    client_order_id: str = "",
) -> orders_pb2.Order:
    request = orders_pb2.SubmitOrderRequest(
        request_id=request_id or str(uuid.uuid4()),
        client_order_id=client_order_id or str(uuid.uuid4()),
        account_id=account,
        instrument="BTC-USD",
        side=types_pb2.SIDE_BUY,
        order_type=order_type,
        quantity=quantity,
        limit_price=limit_price,
    )
    return clients.orders.SubmitOrder(request, timeout=20).order


def warehouse_events(path: Path, table: str, order_id: str) -> list[events_pb2.Event]:
    with duckdb.connect(str(path), read_only=True) as connection:
        rows = connection.execute(
            f"SELECT payload FROM {table} WHERE order_id = ? ORDER BY store_sequence",
            [order_id],
        ).fetchall()
    return [events_pb2.Event.FromString(payload) for (payload,) in rows]


def test_each_producer_numbers_an_orders_events_consecutively_from_one(tmp_path: Path) -> None:
    platform = start_embedded(write_config(tmp_path, embedded_overrides(tmp_path / "data")))
    clients = Clients({name: platform.address(name) for name in SERVICE_MODULES})
    try:
        ready_for_market_orders(clients)
        order = _submit(clients, "acct-sequence", types_pb2.ORDER_TYPE_MARKET, "0.01")
        filled = order_status(clients, order, types_pb2.ORDER_STATUS_FILLED)
    finally:
        clients.close()
        platform.stop()  # feeds the warehouses what is left
    data = tmp_path / "data"
    own = warehouse_events(
        data / "order-management.duckdb", "order_management_events", order.order_id
    )
    reports = warehouse_events(
        data / "execution-router.duckdb", "execution_router_events", order.order_id
    )
    assert [e.sequence for e in own] == [1]  # order-management's: OrderSubmitted
    assert [e.sequence for e in reports] == [1, 2]  # the router's: accepted, filled
    assert filled.version == 3  # the order counts every change applied to it


def test_an_order_reaches_the_typed_tables_with_the_mid_of_the_quote_it_arrived_at(
    tmp_path: Path,
) -> None:
    platform = start_embedded(write_config(tmp_path, embedded_overrides(tmp_path / "data")))
    clients = Clients({name: platform.address(name) for name in SERVICE_MODULES})
    try:
        ready_for_market_orders(clients)
        order = _submit(clients, "acct-typed", types_pb2.ORDER_TYPE_MARKET, "0.01")
        order_status(clients, order, types_pb2.ORDER_STATUS_FILLED)
    finally:
        clients.close()
        platform.stop()  # feeds the warehouses what is left
    data = tmp_path / "data"
    with duckdb.connect() as analyst:
        for service in SERVICE_MODULES:
            name = service.replace("-", "_")
            analyst.execute(f"ATTACH '{data / service}.duckdb' AS {name} (READ_ONLY)")
        statuses = analyst.execute(
            "SELECT service, status FROM (SELECT * FROM order_management.orders"
            " UNION ALL SELECT * FROM execution_router.orders) WHERE order_id = ?"
            " ORDER BY event_time",
            [order.order_id],
        ).fetchall()
        arrival = analyst.execute(
            "SELECT e.arrival_mid, q.mid FROM execution_router.executions e"
            " JOIN market_data.quotes q ON q.instrument = e.instrument"
            " AND q.quote_time = e.arrival_quote_time WHERE e.order_id = ? AND e.sequence = 1",
            [order.order_id],
        ).fetchall()
        fills = analyst.execute(
            "SELECT quantity, price, notional FROM execution_router.fills WHERE order_id = ?",
            [order.order_id],
        ).fetchall()
        positions = analyst.execute(
            "SELECT quantity FROM position_management.positions WHERE order_id = ?",
            [order.order_id],
        ).fetchall()
    assert statuses == [
        ("order-management", "SUBMITTED"),
        ("execution-router", "ACCEPTED"),
        ("execution-router", "FILLED"),
    ]
    ((arrival_mid, quote_mid),) = arrival  # the router's quote, as market-data kept it
    assert arrival_mid == quote_mid is not None
    ((quantity, price, notional),) = fills
    assert (quantity, notional) == (Decimal("0.01"), quantity * price)
    assert positions == [(Decimal("0.01"),)]


def test_order_management_counts_its_fills_in_its_risk_view(
    embedded: tuple[Clients, Platform],
) -> None:
    clients, platform = embedded
    oms = order_management(platform)
    ready_for_market_orders(clients)
    order = _submit(clients, "acct-risk", types_pb2.ORDER_TYPE_MARKET, "0.02")
    order_status(clients, order, types_pb2.ORDER_STATUS_FILLED)
    for scope in (("acct-risk",), ("acct-risk", order.strategy_id)):
        holding = oms.exposure.exposure(scope).holding("BTC-USD")
        assert (holding.position, holding.open_buys) == (Decimal("0.02"), Decimal(0))


def test_an_analyst_can_read_the_warehouse_while_the_platform_runs(tmp_path: Path) -> None:
    overrides = embedded_overrides(tmp_path / "data")
    overrides["database"] = {**overrides["database"], "flush_interval_ms": 20}  # type: ignore[dict-item]
    platform = start_embedded(write_config(tmp_path, overrides))
    clients = Clients({name: platform.address(name) for name in SERVICE_MODULES})
    warehouse = tmp_path / "data" / "execution-router.duckdb"
    try:
        ready_for_market_orders(clients)
        order = _submit(clients, "acct-analyst", types_pb2.ORDER_TYPE_MARKET, "0.01")
        order_status(clients, order, types_pb2.ORDER_STATUS_FILLED)

        def reports_seen_by_an_analyst() -> int:
            try:
                with duckdb.connect(str(warehouse), read_only=True) as analyst:
                    ((count,),) = analyst.execute(
                        "SELECT count(*) FROM execution_router_events WHERE order_id = ?",
                        [order.order_id],
                    ).fetchall()
            except duckdb.Error:  # the feeder is writing this very moment
                return 0
            return int(count)

        wait_until(lambda: reports_seen_by_an_analyst() == 2, 20, "the analyst to see the fill")
        # And the platform went on trading while the analyst looked.
        second = _submit(clients, "acct-analyst", types_pb2.ORDER_TYPE_MARKET, "0.01")
        order_status(clients, second, types_pb2.ORDER_STATUS_FILLED)
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
