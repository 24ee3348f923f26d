"""Reconciliation on an embedded platform: position-management's check of positions against
fills finds nothing while fills are applied and reports a position its fills do not give;
order-management's asks about an order go on a key of their own once the order's key went
unanswered."""

from __future__ import annotations

import threading
from decimal import Decimal

from order_management.service import ASKS_ON_THE_ORDER_KEY
from position_management.service import PositionManagement
from trading.v1 import events_pb2, types_pb2
from trading_core.bus.base import Message
from trading_core.journal import Transaction
from trading_core.runtime import Platform

from tests.e2e.conftest import Clients, order_management
from tests.e2e.test_duplicate_deliveries import unresolved
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


def test_an_order_unanswered_after_three_asks_is_asked_about_on_a_key_of_its_own(
    embedded: tuple[Clients, Platform],
) -> None:
    clients, platform = embedded
    far_below = (Decimal(wait_for_quote(clients).bid_price) / 2).quantize(Decimal("0.01"))
    resting = submit(
        clients,
        order_type=types_pb2.ORDER_TYPE_LIMIT,
        time_in_force=types_pb2.TIME_IN_FORCE_GTC,
        limit_price=str(far_below),
    )
    order_status(clients, resting, types_pb2.ORDER_STATUS_ACCEPTED)
    asks: list[str] = []

    def observe(message: Message) -> None:
        command = events_pb2.Command.FromString(message.data)
        if command.order_id == resting.order_id and command.HasField("query_order"):
            asks.append(message.ordering_key)

    platform.bus.subscribe("orders", "orders.observer", observe)
    service = order_management(platform)
    for _ in range(ASKS_ON_THE_ORDER_KEY + 1):
        service.reconcile(everything=True)  # the router answers with nothing new each time
    wait_until(lambda: len(asks) == ASKS_ON_THE_ORDER_KEY + 1, 10, "every ask published")

    assert asks[:-1] == [resting.order_id] * ASKS_ON_THE_ORDER_KEY
    assert asks[-1] == f"{resting.order_id}/ask-{ASKS_ON_THE_ORDER_KEY + 1}"
    assert order_status(clients, resting, types_pb2.ORDER_STATUS_ACCEPTED)
