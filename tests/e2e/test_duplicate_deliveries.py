"""At-least-once delivery changes nothing: a stream of orders (market, limit, cancels) runs while
about one consumed message in ten, on every topic, is delivered a second time, at once or late.
Orders, positions and fills must be exactly what the router's reports say, each counted once.
"""

from __future__ import annotations

import functools
import random
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal

from trading.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    events_pb2,
    execution_pb2,
    market_data_pb2,
    orders_pb2,
    positions_pb2,
    types_pb2,
)
from trading_core.bus.base import TOPICS, EventBus, Message
from trading_core.runtime import Platform

from tests.e2e.conftest import (
    Clients,
)
from tests.e2e.test_trading_flow import submit
from tests.support import wait_until

SEED = 20261122
DUPLICATE_SHARE = 0.10
ORDERS = 48
ACCOUNTS = ("acct-dup-1", "acct-dup-2")
# Quantities on each instrument's step, above its minimum notional.
QUANTITIES = {"BTC-USD": "0.001", "ETH-USD": "0.01", "SOL-USD": "0.1"}
TIMEOUT = 30

_FINAL_STATUS = {
    types_pb2.EXECUTION_TYPE_FILLED: types_pb2.ORDER_STATUS_FILLED,
    types_pb2.EXECUTION_TYPE_CANCELED: types_pb2.ORDER_STATUS_CANCELED,
    types_pb2.EXECUTION_TYPE_EXPIRED: types_pb2.ORDER_STATUS_EXPIRED,
    types_pb2.EXECUTION_TYPE_REJECTED: types_pb2.ORDER_STATUS_REJECTED,
}


@dataclass
class Duplicator:
    """Taps every topic with a subscription of its own and publishes about one message in ten
    again: at once (right behind the original) or held back and published late. It also keeps
    the router's reports as first seen: what the platform must end up with."""

    bus: EventBus
    rng: random.Random = field(default_factory=lambda: random.Random(SEED))
    duplicating: bool = True
    seen: set[bytes] = field(default_factory=set)
    held: list[tuple[str, Message]] = field(default_factory=list)
    duplicated: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    reports: dict[str, events_pb2.Event] = field(default_factory=dict)  # by event id
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        for topic in TOPICS:
            self.bus.subscribe(topic, f"{topic}.duplicator", self._handler(topic))

    def _handler(self, topic: str) -> Callable[[Message], None]:
        def handle(message: Message) -> None:
            with self.lock:
                if message.data in self.seen:
                    return None  # a duplicate (ours, or a producer's resend)
                self.seen.add(message.data)
                if topic == "executions":
                    event = events_pb2.Event.FromString(message.data)
                    self.reports[event.event_id] = event
                if not self.duplicating or self.rng.random() >= DUPLICATE_SHARE:
                    return None
                self.duplicated[topic] += 1
                if self.rng.random() < 0.5:
                    self.held.append((topic, message))
                    return None
            self._publish(topic, message)
            return None

        return handle

    def _publish(self, topic: str, message: Message) -> None:
        self.bus.publish(
            topic, message.data, ordering_key=message.ordering_key, attributes=message.attributes
        )

    def stop(self) -> int:
        """Stops duplicating and publishes what was held back; returns how many."""
        with self.lock:
            self.duplicating = False
            held, self.held = self.held, []
        for topic, message in held:
            self._publish(topic, message)
        return len(held)

    def fills(self) -> list[events_pb2.Event]:
        with self.lock:
            return [e for e in self.reports.values() if e.execution_report.trade_id]

    def last_report(self, order_id: str) -> events_pb2.Event | None:
        with self.lock:
            mine = [e for e in self.reports.values() if e.order_id == order_id]
        return max(mine, key=lambda e: e.sequence, default=None)


def touch(clients: Clients, instrument: str) -> market_data_pb2.Quote:
    request = execution_pb2.GetQuoteRequest(instrument=instrument)
    return clients.router.GetQuote(request, timeout=5).quote


def place_orders(clients: Clients, rng: random.Random) -> list[orders_pb2.Order]:
    """Market orders, marketable and resting limit orders, an IOC that expires; the resting
    ones are canceled once the venue holds them."""
    placed: list[orders_pb2.Order] = []
    resting: list[orders_pb2.Order] = []
    for _ in range(ORDERS):
        instrument = rng.choice(sorted(QUANTITIES))
        side = rng.choice((types_pb2.SIDE_BUY, types_pb2.SIDE_SELL))
        fields: dict[str, object] = {
            "account_id": rng.choice(ACCOUNTS),
            "instrument": instrument,
            "side": side,
            "quantity": QUANTITIES[instrument],
        }
        kind = rng.random()
        if kind >= 0.5:
            quote = touch(clients, instrument)
            mid = (Decimal(quote.bid_price) + Decimal(quote.ask_price)) / 2
            buying = side == types_pb2.SIDE_BUY
            if kind < 0.75:  # crosses: fills at the touch
                price, tif = (
                    mid * Decimal("1.01" if buying else "0.99"),
                    types_pb2.TIME_IN_FORCE_GTC,
                )
            elif kind < 0.8:  # never crosses, IOC: expires
                price, tif = mid * Decimal("0.9" if buying else "1.1"), types_pb2.TIME_IN_FORCE_IOC
            else:  # rests, canceled below
                price, tif = mid * Decimal("0.8" if buying else "1.2"), types_pb2.TIME_IN_FORCE_GTC
            tick = Decimal("0.001") if instrument == "SOL-USD" else Decimal("0.01")
            fields.update(
                order_type=types_pb2.ORDER_TYPE_LIMIT,
                limit_price=str(price.quantize(tick)),
                time_in_force=tif,
            )
        order = submit(clients, **fields)
        assert order.status == types_pb2.ORDER_STATUS_SUBMITTED, order.status_message
        placed.append(order)
        if kind >= 0.8:
            resting.append(order)
    for order in resting:
        held_by_venue = functools.partial(accepted, clients, order)
        wait_until(held_by_venue, TIMEOUT, f"the venue to hold {order.order_id}")
        clients.orders.CancelOrder(
            orders_pb2.CancelOrderRequest(
                order_id=order.order_id, account_id=order.account_id, request_id=str(uuid.uuid4())
            ),
            timeout=5,
        )
    assert resting, "the seed placed no resting order to cancel"
    return placed


def get(clients: Clients, order: orders_pb2.Order) -> orders_pb2.Order:
    request = orders_pb2.GetOrderRequest(order_id=order.order_id, account_id=order.account_id)
    return clients.orders.GetOrder(request, timeout=5).order


def status(clients: Clients, order: orders_pb2.Order) -> int:
    return get(clients, order).status


def accepted(clients: Clients, order: orders_pb2.Order) -> bool:
    return status(clients, order) == types_pb2.ORDER_STATUS_ACCEPTED


def finished(clients: Clients, orders: list[orders_pb2.Order]) -> bool:
    return all(status(clients, order) in _FINAL_STATUS.values() for order in orders)


def unresolved(clients: Clients, service: str) -> list[admin_pb2.UnresolvedIssue]:
    stub = admin_pb2_grpc.AdminServiceStub(clients.channel(service))
    return list(stub.ListUnresolved(admin_pb2.ListUnresolvedRequest(), timeout=5).issues)


def signed(report: events_pb2.ExecutionReport) -> Decimal:
    quantity = Decimal(report.last_quantity)
    return quantity if report.side == types_pb2.SIDE_BUY else -quantity


def positions(clients: Clients) -> Mapping[tuple[str, str], positions_pb2.Position]:
    shown = {}
    for account in ACCOUNTS:
        request = positions_pb2.ListPositionsRequest(account_id=account)
        for position in clients.positions.ListPositions(request, timeout=5).positions:
            shown[(position.account_id, position.instrument)] = position
    return shown


def test_orders_positions_and_fills_are_unchanged_when_a_tenth_of_deliveries_repeat(
    embedded: tuple[Clients, Platform],
) -> None:
    clients, platform = embedded
    duplicator = Duplicator(platform.bus)
    duplicator.start()
    placed = place_orders(clients, random.Random(SEED))
    wait_until(lambda: finished(clients, placed), TIMEOUT, "every order to finish")

    # Late duplicates go out, then one more order per account: each subscription delivers in
    # publish order, so once its fill is applied everywhere, every duplicate was delivered.
    late = duplicator.stop()
    last = [submit(clients, account_id=account, quantity="0.001") for account in ACCOUNTS]
    wait_until(lambda: finished(clients, last), TIMEOUT, "the last orders to fill")
    orders = placed + last
    position_management = platform.service("position-management")
    last_ids = {order.order_id for order in last}

    def fills_applied() -> bool:
        kept = {row[0] for row in position_management.journal.query("SELECT trade_id FROM fills")}
        wanted = {e.execution_report.trade_id for e in duplicator.fills() if e.order_id in last_ids}
        return bool(wanted) and wanted <= kept

    wait_until(fills_applied, TIMEOUT, "position-management to apply the last fills")

    assert duplicator.duplicated["executions"] > 0 and duplicator.duplicated["orders"] > 0
    assert late > 0
    fills = duplicator.fills()
    assert len({e.execution_report.trade_id for e in fills}) == len(fills)

    # Orders: what the router's last report says, filled by each fill once.
    for order in orders:
        shown = get(clients, order)
        last_report = duplicator.last_report(order.order_id)
        assert last_report is not None
        report = last_report.execution_report
        mine = [e.execution_report for e in fills if e.order_id == order.order_id]
        assert shown.status == _FINAL_STATUS[report.execution_type], order.order_id
        assert Decimal(shown.filled_quantity or "0") == sum(
            (Decimal(r.last_quantity) for r in mine), Decimal(0)
        )
        assert Decimal(shown.filled_quantity or "0") == Decimal(report.cumulative_quantity or "0")
        assert Decimal(shown.fees or "0") == sum((Decimal(r.fee) for r in mine), Decimal(0))

    # Positions: each fill counted once.
    expected_quantity: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    expected_fees: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for event in fills:
        key = (event.account_id, event.instrument)
        expected_quantity[key] += signed(event.execution_report)
        expected_fees[key] += Decimal(event.execution_report.fee)
    shown_positions = positions(clients)
    assert set(shown_positions) == set(expected_quantity)
    for key, position in shown_positions.items():
        assert Decimal(position.quantity) == expected_quantity[key], key
        assert Decimal(position.fees) == expected_fees[key], key

    # Fills: position-management kept each trade once, and nothing looked wrong to anyone.
    kept = position_management.journal.query("SELECT trade_id FROM fills")
    assert sorted(row[0] for row in kept) == sorted(e.execution_report.trade_id for e in fills)
    for service in ("order-management", "position-management", "execution-router"):
        assert unresolved(clients, service) == [], service


def command(order: orders_pb2.Order, **kind: object) -> bytes:
    """A command of order-management to the router, as it publishes it on `orders`."""
    sent = events_pb2.Command(
        command_id=str(uuid.uuid4()),
        order_id=order.order_id,
        account_id=order.account_id,
        instrument=order.instrument,
        **kind,  # type: ignore[arg-type]
    )
    sent.command_time.GetCurrentTime()
    return sent.SerializeToString()


def reports(platform: Platform, order_id: str) -> list[events_pb2.ExecutionReport]:
    """The execution reports the router made for an order, from its journal."""
    router = platform.service("execution-router")
    kept = router.journal.records_of_order(order_id, "ExecutionReport")
    return [events_pb2.Event.FromString(k.record.payload).execution_report for k in kept]


def router_is_past(platform: Platform) -> None:
    """Waits until the router has handled every command published so far: it handles them in
    publish order, so once it has answered a cancel of an order it never received (rejecting
    the order), published last, it handled the others."""
    never_sent = orders_pb2.Order(order_id=str(uuid.uuid4()), account_id="acct-fence")
    fence = command(never_sent, cancel_order=events_pb2.CancelOrder(request_id=str(uuid.uuid4())))
    platform.bus.publish("orders", fence, ordering_key=never_sent.order_id)
    wait_until(lambda: reports(platform, never_sent.order_id), TIMEOUT, "the router's answer")


def resting(clients: Clients) -> orders_pb2.Order:
    quote = touch(clients, "BTC-USD")
    order = submit(
        clients,
        order_type=types_pb2.ORDER_TYPE_LIMIT,
        limit_price=str((Decimal(quote.bid_price) / 2).quantize(Decimal("0.01"))),
    )
    wait_until(functools.partial(accepted, clients, order), TIMEOUT, "the venue to hold it")
    return order


def test_a_cancel_delivered_twice_before_its_first_copy_is_durable_cancels_once(
    embedded: tuple[Clients, Platform],
) -> None:
    clients, platform = embedded
    order = resting(clients)
    cancel = command(order, cancel_order=events_pb2.CancelOrder(request_id=str(uuid.uuid4())))
    for _ in range(2):  # back to back: the second arrives before the first is committed
        platform.bus.publish("orders", cancel, ordering_key=order.order_id)

    wait_until(lambda: status(clients, order) == types_pb2.ORDER_STATUS_CANCELED, TIMEOUT)
    router_is_past(platform)
    assert [r.execution_type for r in reports(platform, order.order_id)] == [
        types_pb2.EXECUTION_TYPE_ACCEPTED,
        types_pb2.EXECUTION_TYPE_CANCELED,
    ]
    assert unresolved(clients, "execution-router") == []


def test_two_queries_at_once_for_an_order_the_router_never_received_reject_it_once(
    embedded: tuple[Clients, Platform],
) -> None:
    clients, platform = embedded
    request = execution_pb2.QueryOrderRequest(
        order_id=str(uuid.uuid4()), account_id="acct-dup-1", instrument="BTC-USD"
    )
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: clients.router.QueryOrder(request, timeout=10), [1, 2]))

    (rejection,) = reports(platform, request.order_id)
    assert rejection.execution_type == types_pb2.EXECUTION_TYPE_REJECTED
    assert "never received" in rejection.message
    for answer in answers:
        assert [r.execution_report for r in answer.reports] == [rejection]


def test_a_cancel_of_a_filled_order_is_rejected_and_the_order_stays_finished_at_the_router(
    embedded: tuple[Clients, Platform],
) -> None:
    clients, platform = embedded
    touch(clients, "BTC-USD")
    order = submit(clients)
    wait_until(lambda: status(clients, order) == types_pb2.ORDER_STATUS_FILLED, TIMEOUT)
    cancel = command(order, cancel_order=events_pb2.CancelOrder(request_id=str(uuid.uuid4())))
    platform.bus.publish("orders", cancel, ordering_key=order.order_id)

    router_is_past(platform)
    assert [r.execution_type for r in reports(platform, order.order_id)] == [
        types_pb2.EXECUTION_TYPE_ACCEPTED,
        types_pb2.EXECUTION_TYPE_FILLED,
        types_pb2.EXECUTION_TYPE_CANCEL_REJECTED,
    ]
    router = platform.service("execution-router")
    router.journal.sync_point().wait()
    # Still finished: a restart must never put a filled order back on the venue's book.
    assert router.journal.query(
        "SELECT is_open FROM routed_orders WHERE order_id = ?", (order.order_id,)
    ) == [(0,)]
    assert status(clients, order) == types_pb2.ORDER_STATUS_FILLED
