"""Shadow simulation and venue calls for the seeded week of trading (tests/analytics_support.py):
for each order sent to a network venue (binance, bybit) the paper venue model's would-be fills
(ShadowExecution) and the router's calls (VenueCalled), as the router journals them; and the
same as plain Python records, from which the tests work out what the queries should answer.

Deterministic (its own random.Random(seed), so the week's trading is unchanged): the model fills
an order whole (most), half then ends CANCELED, or not at all (CANCELED), at the arrival touch
moved by a few basis points, a few milliseconds after the send.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from trading.v1 import events_pb2, types_pb2
from trading_core.events import new_id, timestamp

from tests.analytics_support import CENT, Order, Trading, _envelope

NETWORK_VENUES = ("binance", "bybit")
OUTCOMES = ("ANSWERED", "REFUSED", "TIMED_OUT", "RATE_LIMITED")


@dataclass
class ModelFill:
    time: datetime
    quantity: Decimal
    price: Decimal


@dataclass
class Shadowed:
    order: Order
    send_time: datetime
    arrival_price: Decimal
    fills: list[ModelFill] = field(default_factory=list)


@dataclass
class Call:
    venue: str
    operation: str
    order_id: str
    start: datetime
    latency_us: int
    outcome: str


def shadowed_orders(trading: Trading) -> list[Order]:
    return [o for o in trading.submitted() if o.venue in NETWORK_VENUES and not o.rejected]


def generate(trading: Trading, seed: int = 11) -> tuple[list[Shadowed], list[Call]]:
    pick = random.Random(seed)
    shadows, calls = [], []
    for order in shadowed_orders(trading):
        assert order.arrival_mid is not None
        send = order.submit_time + timedelta(microseconds=pick.randint(500, 3000))
        touch = order.arrival_mid + order.sign * Decimal("0.5")
        shadow = Shadowed(order, send, touch)
        share = pick.choice((Decimal(1), Decimal(1), Decimal(1), Decimal("0.5"), Decimal(0)))
        if share:
            slip = Decimal(pick.randint(0, 8)) / 10_000 * order.sign
            price = (touch * (1 + slip)).quantize(CENT, ROUND_HALF_UP)
            when = send + timedelta(milliseconds=pick.randint(5, 50))
            shadow.fills.append(ModelFill(when, order.quantity * share, price))
        shadows.append(shadow)
        outcome = pick.choices(OUTCOMES, (85, 5, 5, 5))[0]
        latency = pick.randint(1_000, 80_000)
        calls.append(Call(order.venue, "SUBMIT", order.order_id, send, latency, outcome))
    return shadows, calls


def _ids(order: Order) -> dict[str, str]:
    return {"order_id": order.order_id, "account_id": order.account, "instrument": order.instrument}


def shadow_events(shadow: Shadowed) -> list[events_pb2.Event]:
    order = shadow.order
    side = types_pb2.SIDE_BUY if order.side == "BUY" else types_pb2.SIDE_SELL
    common = {
        "venue": order.venue,
        "side": side,
        "order_type": types_pb2.ORDER_TYPE_MARKET,
        "order_quantity": str(order.quantity),
        "arrival_price": str(shadow.arrival_price),
        "arrival_mid": str(order.arrival_mid),
    }
    events, filled = [], Decimal(0)
    for fill in shadow.fills:
        filled += fill.quantity
        done = filled == order.quantity
        payload = events_pb2.ShadowExecution(
            execution_type=types_pb2.EXECUTION_TYPE_FILLED
            if done
            else types_pb2.EXECUTION_TYPE_PARTIALLY_FILLED,
            last_quantity=str(fill.quantity),
            last_price=str(fill.price),
            fee="0",
            cumulative_quantity=str(filled),
            trade_id=new_id(),
            **common,  # type: ignore[arg-type]
        )
        events.append(_timed(payload, shadow.send_time, fill.time, order))
    if filled < order.quantity:
        assert order.last_report_time is not None
        payload = events_pb2.ShadowExecution(
            execution_type=types_pb2.EXECUTION_TYPE_CANCELED,
            cumulative_quantity=str(filled),
            message="the real order finished first",
            **common,  # type: ignore[arg-type]
        )
        events.append(_timed(payload, shadow.send_time, order.last_report_time, order))
    return events


def _timed(
    payload: events_pb2.ShadowExecution, send: datetime, moment: datetime, order: Order
) -> events_pb2.Event:
    payload.send_time.CopyFrom(timestamp(send))
    payload.model_time.CopyFrom(timestamp(moment))
    return _envelope(moment, shadow_execution=payload, **_ids(order))


def call_event(call: Call, order: Order) -> events_pb2.Event:
    called = events_pb2.VenueCalled(
        venue=call.venue,
        operation=events_pb2.VenueOperation.Value(f"VENUE_OPERATION_{call.operation}"),
        latency_us=call.latency_us,
        outcome=events_pb2.VenueCallOutcome.Value(f"VENUE_CALL_OUTCOME_{call.outcome}"),
        attempts=1,
    )
    called.start_time.CopyFrom(timestamp(call.start))
    end = call.start + timedelta(microseconds=call.latency_us)
    return _envelope(end, venue_called=called, **_ids(order))
