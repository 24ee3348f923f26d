"""Reconciliation on an embedded platform: position-management's check of positions against
fills finds nothing while fills are applied and reports a position its fills do not give;
the router's answer to a reconciliation query gives an order it never received one fate, and
applies a pending cancel it never had."""

from __future__ import annotations

import threading
import uuid
from decimal import Decimal

from position_management.service import PositionManagement
from trading.v1 import events_pb2, execution_pb2, orders_pb2, types_pb2
from trading_core.journal import Transaction
from trading_core.runtime import Platform

from tests.e2e.conftest import Clients
from tests.e2e.test_duplicate_deliveries import command, resting, router_is_past, unresolved
from tests.e2e.test_trading_flow import order_status, submit, wait_for_quote
from tests.support import wait_until

ORDERS = 60


def position_management(platform: Platform) -> PositionManagement:
    service = platform.service("position-management")
    assert isinstance(service, PositionManagement)
    return service


def fill_count(service: PositionManagement) -> int:
    ((count,),) = service.journal.query("SELECT count(*) FROM fills")
    return int(count)


def test_checks_while_fills_are_applied_find_every_position_agreeing_with_its_fills(
    embedded: tuple[Clients, Platform],
) -> None:
    clients, platform = embedded
    service = position_management(platform)
    done = threading.Event()

    def trade() -> None:
        try:
            for _ in range(ORDERS):
                submit(clients, quantity="0.001")
        finally:
            done.set()

    trader = threading.Thread(target=trade)
    trader.start()
    problems: list[str] = []
    checks = 0
    while not done.is_set() or checks < 3:
        problems += service.check_positions()
        checks += 1
    trader.join()
    wait_until(lambda: fill_count(service) >= ORDERS, 30, "every fill applied")
    problems += service.check_positions()
    assert problems == []
    assert unresolved(clients, "position-management") == []


def test_a_durable_position_its_fills_do_not_give_is_reported_unresolved(
    embedded: tuple[Clients, Platform],
) -> None:
    clients, platform = embedded
    service = position_management(platform)
    submit(clients, quantity="0.001")
    wait_until(lambda: fill_count(service) == 1, 30, "the fill applied")
    tampered = Transaction()
    tampered.execute("UPDATE positions SET quantity = '0.002' WHERE account_id = 'acct-e2e'")
    service.journal.commit(tampered).wait()

    assert service.check_positions() == ["acct-e2e|BTC-USD"]
    (issue,) = unresolved(clients, "position-management")
    assert issue.subject == "acct-e2e|BTC-USD"
    assert "0.002" in issue.detail


def test_a_late_submit_of_an_order_reconciliation_rejected_is_never_routed(
    embedded: tuple[Clients, Platform],
) -> None:
    clients, platform = embedded
    wait_for_quote(clients)
    order = orders_pb2.Order(
        order_id=str(uuid.uuid4()),
        account_id="acct-e2e",
        instrument="BTC-USD",
        side=types_pb2.SIDE_BUY,
        order_type=types_pb2.ORDER_TYPE_MARKET,
        quantity="0.001",
    )
    query = execution_pb2.QueryOrderRequest(
        order_id=order.order_id, account_id=order.account_id, instrument=order.instrument
    )
    (rejected,) = clients.router.QueryOrder(query, timeout=10).reports

    late = command(order, submit_order=events_pb2.SubmitOrder(order=order))
    platform.bus.publish("orders", late, ordering_key=order.order_id)
    router_is_past(platform)
    assert [r.execution_report for r in clients.router.QueryOrder(query).reports] == [
        rejected.execution_report
    ]
    assert rejected.execution_report.execution_type == types_pb2.EXECUTION_TYPE_REJECTED


def test_a_pending_cancel_the_router_never_had_is_applied_when_asked_about(
    embedded: tuple[Clients, Platform],
) -> None:
    clients, _ = embedded
    held = resting(clients)
    query = execution_pb2.QueryOrderRequest(
        order_id=held.order_id,
        account_id=held.account_id,
        instrument=held.instrument,
        cancel_request_id=str(uuid.uuid4()),
    )
    clients.router.QueryOrder(query, timeout=10)

    canceled = order_status(clients, held, types_pb2.ORDER_STATUS_CANCELED)
    assert Decimal(canceled.filled_quantity) == 0
