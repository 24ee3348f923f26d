"""What the router and a venue exchange: an order as the venue sees it, and its reports."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from trading.v1 import events_pb2, orders_pb2, types_pb2
from trading_core.decimals import ZERO, format_decimal

# What a venue that holds stops natively gets as it is (a released stop comes as the market or
# limit order it became, its trigger kept in the message only for the record).
_STOPS = (types_pb2.ORDER_TYPE_STOP_MARKET, types_pb2.ORDER_TYPE_STOP_LIMIT)


@dataclass(frozen=True)
class VenueOrder:
    """An order as the venue sees it."""

    order_id: str
    account_id: str
    instrument: str
    side: types_pb2.Side.ValueType
    order_type: types_pb2.OrderType.ValueType
    time_in_force: types_pb2.TimeInForce.ValueType
    quantity: Decimal
    # A limit order's limit. A market-to-limit order arrives without one; on a restart the
    # router gives it the price of its first fill, where its remainder rests.
    limit_price: Decimal | None
    # A market order's worst acceptable price: beyond it the order expires unfilled.
    protection_price: Decimal | None = None
    # DAY and GTD orders: when the order expires (tz-aware, UTC); None for the others.
    expire_time: datetime | None = None
    # A limit order that must only rest: refused when it would trade on arrival.
    post_only: bool = False
    # An iceberg: the most of a resting order that fills on one quote; None for the whole.
    display_quantity: Decimal | None = None
    # A stop the venue holds natively (a venue whose config says it does): its trigger.
    trigger_price: Decimal | None = None

    @classmethod
    def from_proto(cls, order: orders_pb2.Order) -> VenueOrder:
        """The order as the venue sees it: order-management sends it in venue form (market,
        limit or market-to-limit, or a stop to a venue that holds stops natively; a DAY order
        with its expire time already set)."""
        return cls(
            order_id=order.order_id,
            account_id=order.account_id,
            instrument=order.instrument,
            side=order.side,
            order_type=order.order_type,
            time_in_force=order.time_in_force,
            quantity=Decimal(order.quantity),
            limit_price=Decimal(order.limit_price) if order.limit_price else None,
            expire_time=(
                order.expire_time.ToDatetime(tzinfo=UTC) if order.HasField("expire_time") else None
            ),
            post_only=order.post_only,
            display_quantity=Decimal(order.display_quantity) if order.display_quantity else None,
            trigger_price=Decimal(order.trigger_price)
            if order.trigger_price and order.order_type in _STOPS
            else None,
        )


@dataclass(frozen=True, kw_only=True)
class Report:
    """One thing the venue did with an order (an execution report)."""

    execution_type: types_pb2.ExecutionType.ValueType
    order_id: str
    venue_order_id: str
    side: types_pb2.Side.ValueType
    trade_id: str = ""
    last_quantity: Decimal | None = None
    last_price: Decimal | None = None
    fee: Decimal = ZERO
    cumulative_quantity: Decimal
    leaves_quantity: Decimal
    average_price: Decimal | None
    message: str = ""
    request_id: str = ""
    time: datetime | None = None
    # MODIFIED: the limit price the venue now holds the order at.
    limit_price: Decimal | None = None

    @classmethod
    def nothing_filled(
        cls,
        execution_type: types_pb2.ExecutionType.ValueType,
        order_id: str,
        side: types_pb2.Side.ValueType,
        message: str,
        request_id: str = "",
    ) -> Report:
        """A report of an order of which nothing filled and nothing is left (a rejection, a
        cancel before it reached the book, a rejected cancel)."""
        return cls(
            execution_type=execution_type,
            order_id=order_id,
            venue_order_id="",
            side=side,
            cumulative_quantity=ZERO,
            leaves_quantity=ZERO,
            average_price=None,
            message=message,
            request_id=request_id,
        )

    @classmethod
    def restored(cls, last: events_pb2.ExecutionReport) -> Report:
        """An order's last journaled report, as a simulated venue takes it back on a restart."""
        return cls(
            execution_type=last.execution_type,
            order_id=last.order_id,
            venue_order_id=last.venue_order_id,
            side=last.side,
            cumulative_quantity=Decimal(last.cumulative_quantity or "0"),
            leaves_quantity=Decimal(last.leaves_quantity or "0"),
            average_price=Decimal(last.average_price) if last.average_price else None,
        )

    def to_proto(self, venue: str) -> events_pb2.ExecutionReport:
        return events_pb2.ExecutionReport(
            execution_type=self.execution_type,
            order_id=self.order_id,
            venue=venue,
            venue_order_id=self.venue_order_id,
            side=self.side,
            trade_id=self.trade_id,
            last_quantity=format_decimal(self.last_quantity),
            last_price=format_decimal(self.last_price),
            fee=format_decimal(self.fee),
            cumulative_quantity=format_decimal(self.cumulative_quantity),
            leaves_quantity=format_decimal(self.leaves_quantity),
            average_price=format_decimal(self.average_price),
            message=self.message,
            request_id=self.request_id,
            limit_price=format_decimal(self.limit_price),
        )
