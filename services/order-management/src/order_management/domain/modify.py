"""ModifyOrder's request, read against the order it changes: what may change, and how.

A quantity is the new total (the filled part included) and must stay above what has filled; a
limit price changes an order that has one from the client (a limit or stop-limit order); a
trigger price changes a stop before it is triggered (a trailing stop's trigger trails, and is
not set by hand). A change to what the order already is, is not a change.
"""

from __future__ import annotations

from decimal import Decimal

from trading.v1 import orders_pb2, types_pb2
from trading_core.decimals import format_decimal

from order_management.domain.orders import Order, OrderChange
from order_management.domain.validation import InvalidRequest, amount, type_name

_LIMITED = frozenset({types_pb2.ORDER_TYPE_LIMIT, types_pb2.ORDER_TYPE_STOP_LIMIT})
_FIXED_STOPS = frozenset({types_pb2.ORDER_TYPE_STOP_MARKET, types_pb2.ORDER_TYPE_STOP_LIMIT})


def parse_modify_order(request: orders_pb2.ModifyOrderRequest, order: Order) -> OrderChange:
    """The change `request` asks of `order`; raises InvalidRequest naming the field."""
    change = OrderChange(
        request_id=request.request_id,
        quantity=_positive(request.quantity, "quantity"),
        limit_price=_positive(request.limit_price, "limit_price"),
        trigger_price=_positive(request.trigger_price, "trigger_price"),
    )
    if (change.quantity, change.limit_price, change.trigger_price) == (None, None, None):
        raise InvalidRequest(
            "quantity", "nothing to change: give a quantity, a limit_price or a trigger_price"
        )
    _check_quantity(change.quantity, order)
    _check_limit_price(change.limit_price, order)
    _check_trigger_price(change.trigger_price, order)
    if _unchanged(change, order):
        raise InvalidRequest("quantity", f"nothing to change: order {order.order_id} is so already")
    return change


def _positive(text: str, field: str) -> Decimal | None:
    if not text:
        return None
    value = amount(text, field)
    if value <= 0:
        raise InvalidRequest(field, f"{field} must be greater than zero, got {text!r}")
    return value


def _check_quantity(quantity: Decimal | None, order: Order) -> None:
    if quantity is not None and quantity <= order.filled_quantity:
        raise InvalidRequest(
            "quantity",
            f"quantity is the new total and must be above what has filled "
            f"({format_decimal(order.filled_quantity)}), got {format_decimal(quantity)}",
        )


def _check_limit_price(limit_price: Decimal | None, order: Order) -> None:
    if limit_price is not None and order.order_type not in _LIMITED:
        raise InvalidRequest(
            "limit_price",
            f"limit_price cannot change: order {order.order_id} is a "
            f"{type_name(order.order_type)} order, with no limit price of its own",
        )


def _check_trigger_price(trigger_price: Decimal | None, order: Order) -> None:
    if trigger_price is None:
        return
    if order.order_type not in _FIXED_STOPS:
        raise InvalidRequest(
            "trigger_price",
            f"trigger_price cannot change: order {order.order_id} is a "
            f"{type_name(order.order_type)} order; only a stop or stop-limit order has one to "
            "change (a trailing stop's trails)",
        )
    if not order.is_held or order.trigger_time is not None:
        raise InvalidRequest(
            "trigger_price",
            f"trigger_price cannot change: order {order.order_id} was triggered already",
        )


def _unchanged(change: OrderChange, order: Order) -> bool:
    return all(
        new is None or new == now
        for new, now in (
            (change.quantity, order.quantity),
            (change.limit_price, order.limit_price),
            (change.trigger_price, order.trigger_price),
        )
    )
