"""Events as the platform makes them, for the warehouse's tests and benchmark: one order's
events across the services, and what each typed table should hold of them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal

from trading.v1 import events_pb2, market_data_pb2, orders_pb2, positions_pb2, types_pb2
from trading_core.events import new_id, timestamp
from trading_core.journal import Journal, Transaction
from trading_core.service import JournaledService

QUOTES_PER_ORDER = 1
QUOTE_TIME = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)


def _envelope(**fields: object) -> events_pb2.Event:
    event = events_pb2.Event(event_id=new_id(), **fields)  # type: ignore[arg-type]
    event.event_time.CopyFrom(timestamp(datetime.now(UTC)))
    return event


def one_order(number: int) -> list[events_pb2.Event]:
    order_id = new_id()
    ids = {"order_id": order_id, "account_id": "ACC-1", "instrument": "BTC-USD"}
    order = orders_pb2.Order(
        order_id=order_id,
        client_order_id=f"c-{number}",
        request_id=new_id(),
        account_id="ACC-1",
        strategy_id="mean-revert",
        instrument="BTC-USD",
        side=types_pb2.SIDE_BUY,
        order_type=types_pb2.ORDER_TYPE_LIMIT,
        time_in_force=types_pb2.TIME_IN_FORCE_GTC,
        quantity="0.015",
        limit_price="64123.5",
        status=types_pb2.ORDER_STATUS_SUBMITTED,
        filled_quantity="0",
        leaves_quantity="0.015",
    )
    report = {"order_id": order_id, "venue": "simulation", "side": types_pb2.SIDE_BUY}
    accepted = events_pb2.ExecutionReport(
        execution_type=types_pb2.EXECUTION_TYPE_ACCEPTED,
        venue_order_id=f"v-{number}",
        cumulative_quantity="0",
        leaves_quantity="0.015",
        arrival_price="64122.3",
        arrival_mid="64121.2",
        **report,  # type: ignore[arg-type]
    )
    accepted.arrival_quote_time.CopyFrom(timestamp(QUOTE_TIME))
    filled = events_pb2.ExecutionReport(
        execution_type=types_pb2.EXECUTION_TYPE_FILLED,
        trade_id=f"t-{number}",
        last_quantity="0.015",
        last_price="64121.7",
        fee="0.961825",
        cumulative_quantity="0.015",
        leaves_quantity="0",
        average_price="64121.7",
        **report,  # type: ignore[arg-type]
    )
    position = positions_pb2.Position(
        account_id="ACC-1",
        instrument="BTC-USD",
        quantity=str(Decimal("0.015") * number),
        average_price="64000.25",
        realized_pnl="12.5",
        unrealized_pnl="-3.25",
        mark_price="64121.7",
        fees="0.961825",
        sequence=number,
    )
    quote = market_data_pb2.Quote(
        instrument="BTC-USD",
        bid_price="64120.1",
        bid_size="1.5",
        ask_price="64122.3",
        ask_size="2.25",
        source="synthetic",
        last_price="64121.7",
    )
    quote.quote_time.CopyFrom(timestamp(datetime.now(UTC)))
    events = [
        _envelope(sequence=1, order_submitted=events_pb2.OrderSubmitted(order=order), **ids),
        _envelope(sequence=1, execution_report=accepted, **ids),
        _envelope(sequence=2, execution_report=filled, **ids),
        _envelope(
            sequence=number,
            account_id="ACC-1",
            instrument="BTC-USD",
            position_updated=events_pb2.PositionUpdated(position=position),
        ),
    ]
    events += [
        _envelope(instrument="BTC-USD", quote_updated=events_pb2.QuoteUpdated(quote=quote))
        for _ in range(QUOTES_PER_ORDER)
    ]
    return events


def keep(journal: Journal, events: Iterable[events_pb2.Event]) -> None:
    """Commits the events in one transaction, and waits until they are durable."""
    transaction = Transaction()
    for event in events:
        transaction.keep(JournaledService.event_record(event))
    journal.commit(transaction).wait()


_ORDER_KINDS = {
    "order_submitted", "order_denied", "order_held", "order_cancel_requested",
    "order_modify_requested", "order_amended", "order_triggered", "order_released",
    "order_withdrawn", "execution_report",
}  # fmt: skip


def expected_rows(events: Iterable[events_pb2.Event]) -> Counter[str]:
    """How many rows each typed table gets from the events, counted from their kinds."""
    counts: Counter[str] = Counter()
    for event in events:
        kind = event.WhichOneof("payload")
        counts["orders"] += kind in _ORDER_KINDS
        counts["executions"] += kind == "execution_report"
        counts["fills"] += kind == "execution_report" and bool(event.execution_report.trade_id)
        counts["positions"] += kind == "position_updated"
        counts["quotes"] += kind == "quote_updated"
        counts["denials"] += kind == "order_denied"
    return counts
