"""A seeded week of trading for the analytics' tests: orders, venue reports, fills and quotes as
the platform's events, written through each service's journal and the real warehouse feeder into
the four DuckDB files; and the same trading as plain Python records, from which the tests work
out what every query should answer.

Deterministic (random.Random(seed)): accounts ACC-1 (strategies mean-revert, momentum) and ACC-2
(carry) trade BTC-USD and ETH-USD on three venues; some orders are DENIED by the platform, some
REJECTED by the venue, some fill in part and are canceled. DENIED-ONLY only ever has denials.
Quotes: one every ten minutes per instrument, plus a few seconds after each fill (markouts).
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from trading.v1 import events_pb2, market_data_pb2, orders_pb2, types_pb2
from trading_core.events import new_id, timestamp
from trading_core.journal import Journal
from trading_core.store import DuckDBWarehouse, WarehouseFeeder

from tests.warehouse_support import keep

FIRST_DAY = datetime(2026, 1, 5, tzinfo=UTC)
DAYS = 6
VENUES = ("binance", "bybit", "simulation")
INSTRUMENTS = {"BTC-USD": Decimal("64000"), "ETH-USD": Decimal("3100")}
BOOKS = (("ACC-1", "mean-revert"), ("ACC-1", "momentum"), ("ACC-2", "carry"))
DENIED_ONLY = "DENIED-ONLY"
FEE_RATE = Decimal("0.001")
CENT = Decimal("0.01")
QUOTE_EVERY_MINUTES = 10


@dataclass
class Fill:
    trade_id: str
    time: datetime
    quantity: Decimal
    price: Decimal
    fee: Decimal

    @property
    def notional(self) -> Decimal:
        return self.quantity * self.price


@dataclass
class Order:
    order_id: str
    account: str
    strategy: str
    instrument: str
    side: str  # BUY or SELL
    quantity: Decimal
    venue: str
    submit_time: datetime
    denied: bool = False
    rejected: bool = False
    arrival_mid: Decimal | None = None
    accept_time: datetime | None = None
    last_report_time: datetime | None = None
    fills: list[Fill] = field(default_factory=list)

    @property
    def sign(self) -> int:
        return 1 if self.side == "BUY" else -1


@dataclass
class Trading:
    """What was generated: the orders, and each instrument's quotes as (time, mid) in order."""

    orders: list[Order]
    quotes: dict[str, list[tuple[datetime, Decimal]]]

    def mid_at(self, instrument: str, moment: datetime) -> Decimal | None:
        """The mid of the last quote at or before `moment`."""
        quotes = self.quotes[instrument]
        index = bisect.bisect_right(quotes, moment, key=lambda quote: quote[0])
        return quotes[index - 1][1] if index else None

    def submitted(self) -> list[Order]:
        return [o for o in self.orders if not o.denied]


def _envelope(moment: datetime, **fields: object) -> events_pb2.Event:
    event = events_pb2.Event(event_id=new_id(), **fields)  # type: ignore[arg-type]
    event.event_time.CopyFrom(timestamp(moment))
    return event


def _quote_event(instrument: str, moment: datetime, mid: Decimal) -> events_pb2.Event:
    quote = market_data_pb2.Quote(
        instrument=instrument,
        bid_price=str(mid - Decimal("0.5")),
        ask_price=str(mid + Decimal("0.5")),
        bid_size="2",
        ask_size="2",
        source="synthetic",
    )
    quote.quote_time.CopyFrom(timestamp(moment))
    return _envelope(
        moment, instrument=instrument, quote_updated=events_pb2.QuoteUpdated(quote=quote)
    )


class _Generator:
    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        self.mids = dict(INSTRUMENTS)
        self.quotes: dict[str, list[tuple[datetime, Decimal]]] = {i: [] for i in INSTRUMENTS}

    def step(self, instrument: str) -> Decimal:
        bps = Decimal(self.random.randint(-30, 30)) / 10_000
        self.mids[instrument] = (self.mids[instrument] * (1 + bps)).quantize(CENT)
        return self.mids[instrument]

    def trading(self) -> Trading:
        """Quotes every minute and the orders; quotes after fills are added as they happen."""
        for instrument in INSTRUMENTS:
            for minute in range(0, DAYS * 24 * 60, QUOTE_EVERY_MINUTES):
                moment = FIRST_DAY + timedelta(minutes=minute)
                self.quotes[instrument].append((moment, self.step(instrument)))
        base = Trading([], self.quotes)
        orders = []
        for day in range(DAYS):
            for number in range(8):
                submit = FIRST_DAY + timedelta(
                    days=day, minutes=30 + number * 170 + self.random.randint(0, 100),
                    microseconds=self.random.randint(0, 999_999),
                )  # fmt: skip
                orders.append(self.order(base, submit))
            orders.append(self.denied(FIRST_DAY + timedelta(days=day, hours=23), DENIED_ONLY))
        extra: list[tuple[datetime, Decimal, str]] = []
        for order in orders:
            for fill in order.fills:
                for after_ms in (400, 3000, 30_000):
                    moment = fill.time + timedelta(milliseconds=after_ms)
                    mid = base.mid_at(order.instrument, moment)
                    assert mid is not None
                    shift = Decimal(self.random.randint(-20, 20)) / 10_000
                    extra.append((moment, (mid * (1 + shift)).quantize(CENT), order.instrument))
        for moment, mid, instrument in extra:
            bisect.insort(self.quotes[instrument], (moment, mid), key=lambda quote: quote[0])
        return Trading(orders, self.quotes)

    def denied(self, moment: datetime, account: str) -> Order:
        return Order(new_id(), account, "carry", "ETH-USD", "BUY", Decimal("1"), "", moment,
                     denied=True)  # fmt: skip

    def order(self, base: Trading, submit: datetime) -> Order:
        pick = self.random
        account, strategy = pick.choice(BOOKS)
        instrument = pick.choice(sorted(INSTRUMENTS))
        quantity = Decimal(pick.randint(1, 400)) / (1000 if instrument == "BTC-USD" else 100)
        order = Order(new_id(), account, strategy, instrument, pick.choice(["BUY", "SELL"]),
                      quantity, pick.choice(VENUES), submit)  # fmt: skip
        outcome = pick.random()
        if outcome < 0.1:
            order.denied, order.venue = True, ""
            return order
        order.arrival_mid = base.mid_at(instrument, submit)
        report_time = submit + timedelta(microseconds=pick.randint(3_000, 60_000))
        order.last_report_time = report_time
        if outcome < 0.2:
            order.rejected = True
            return order
        order.accept_time = report_time
        parts = pick.randint(1, 3)
        to_fill = quantity if outcome > 0.4 else (quantity / 2).quantize(Decimal("0.0001"))
        moment = report_time
        for part in range(parts):
            moment += timedelta(microseconds=pick.randint(1_000, 900_000))
            size = to_fill - sum((f.quantity for f in order.fills), Decimal(0))
            if part < parts - 1:
                size = (size / 2).quantize(Decimal("0.0001"))
            if size <= 0:
                continue
            assert order.arrival_mid is not None
            slip = Decimal(pick.randint(-5, 15)) / 10_000 * order.sign
            price = (order.arrival_mid * (1 + slip)).quantize(CENT)
            fee = (size * price * FEE_RATE).quantize(Decimal("0.00000001"), ROUND_HALF_UP)
            order.fills.append(Fill(new_id(), moment, size, price, fee))
        canceled = to_fill < quantity  # the rest is canceled a millisecond after the last fill
        order.last_report_time = moment + timedelta(milliseconds=1) if canceled else moment
        return order


def generate(seed: int = 7) -> Trading:
    return _Generator(seed).trading()


# The events each service journals ------------------------------------------------------------


def _order_message(order: Order) -> orders_pb2.Order:
    return orders_pb2.Order(
        order_id=order.order_id,
        client_order_id=f"c-{order.order_id}",
        request_id=new_id(),
        account_id=order.account,
        strategy_id=order.strategy,
        instrument=order.instrument,
        side=types_pb2.SIDE_BUY if order.side == "BUY" else types_pb2.SIDE_SELL,
        order_type=types_pb2.ORDER_TYPE_MARKET,
        quantity=str(order.quantity),
        status=types_pb2.ORDER_STATUS_DENIED if order.denied else types_pb2.ORDER_STATUS_SUBMITTED,
    )


def order_management_events(order: Order) -> list[events_pb2.Event]:
    ids = {"order_id": order.order_id, "account_id": order.account, "instrument": order.instrument}
    message = _order_message(order)
    if order.denied:
        denied = events_pb2.OrderDenied(
            order=message, reason=types_pb2.DENIAL_REASON_QUOTE_STALE, message="quote is stale"
        )
        return [_envelope(order.submit_time, sequence=1, order_denied=denied, **ids)]
    submitted = events_pb2.OrderSubmitted(order=message)
    return [_envelope(order.submit_time, sequence=1, order_submitted=submitted, **ids)]


def router_events(order: Order) -> list[events_pb2.Event]:
    if order.denied or order.last_report_time is None:
        return []
    ids = {"order_id": order.order_id, "account_id": order.account, "instrument": order.instrument}
    side = types_pb2.SIDE_BUY if order.side == "BUY" else types_pb2.SIDE_SELL
    common = {"order_id": order.order_id, "venue": order.venue, "side": side}
    first = events_pb2.ExecutionReport(
        execution_type=types_pb2.EXECUTION_TYPE_REJECTED
        if order.rejected
        else types_pb2.EXECUTION_TYPE_ACCEPTED,
        venue_order_id=f"v-{order.order_id}",
        arrival_mid=str(order.arrival_mid),
        cumulative_quantity="0",
        leaves_quantity="0" if order.rejected else str(order.quantity),
        message="insufficient balance" if order.rejected else "",
        **common,  # type: ignore[arg-type]
    )
    moment = order.accept_time or order.last_report_time
    reports = [(moment, first)]
    filled = Decimal(0)
    for fill in order.fills:
        filled += fill.quantity
        done = filled == order.quantity
        reports.append((fill.time, events_pb2.ExecutionReport(
            execution_type=types_pb2.EXECUTION_TYPE_FILLED
            if done else types_pb2.EXECUTION_TYPE_PARTIALLY_FILLED,
            trade_id=fill.trade_id, last_quantity=str(fill.quantity), last_price=str(fill.price),
            fee=str(fill.fee), cumulative_quantity=str(filled),
            leaves_quantity=str(order.quantity - filled), **common,  # type: ignore[arg-type]
        )))  # fmt: skip
    if order.fills and filled < order.quantity:
        reports.append((order.last_report_time, events_pb2.ExecutionReport(
            execution_type=types_pb2.EXECUTION_TYPE_CANCELED, cumulative_quantity=str(filled),
            leaves_quantity="0", **common,  # type: ignore[arg-type]
        )))  # fmt: skip
    return [
        _envelope(when, sequence=number, execution_report=report, **ids)
        for number, (when, report) in enumerate(reports, start=1)
    ]


def market_data_events(trading: Trading) -> list[events_pb2.Event]:
    return [
        _quote_event(instrument, moment, mid)
        for instrument, quotes in trading.quotes.items()
        for moment, mid in quotes
    ]


def feed(folder: Path, service: str, events: Iterable[events_pb2.Event]) -> None:
    """Journals the events as the service would, then the real feeder writes its DuckDB file."""
    journal = Journal(folder / "journals" / f"{service}.journal")
    try:
        batch: list[events_pb2.Event] = []
        for event in events:
            batch.append(event)
            if len(batch) == 2000:
                keep(journal, batch)
                batch = []
        if batch:
            keep(journal, batch)
        warehouse = DuckDBWarehouse(folder / f"{service}.duckdb", service)
        WarehouseFeeder(journal, warehouse, interval_s=3600, batch_size=5000).stop()
    finally:
        journal.close()


def write_warehouse(folder: Path, trading: Trading) -> None:
    orders = sorted(trading.orders, key=lambda o: o.submit_time)
    feed(folder, "order-management", (e for o in orders for e in order_management_events(o)))
    feed(folder, "execution-router", (e for o in orders for e in router_events(o)))
    feed(folder, "market-data", market_data_events(trading))
