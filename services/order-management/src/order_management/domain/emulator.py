"""The order emulator's rules: plain functions of an order, a quote and the clock, no I/O.

Order-management holds every stop and trailing stop (status HELD) and releases it, as the market
or limit order it becomes, when the market reaches its trigger; the venue holds only market,
limit and market-to-limit orders. The same holding serves contingent orders: a bracket's or an
OTO's exits wait for their entry to finish, and of an OCO pair at most one order is at a venue
at a time (a triggered stop-loss is released only once its take-profit is canceled), so that
the two can never both fill.

Triggers:
- The trigger source price is the last trade (LAST), the mid (MID), or the side the order
  trades at (BID_ASK, the default): the ask for a buy stop, the bid for a sell stop.
- A buy stop triggers when the source is at or above its trigger, a sell stop at or below.
- A trailing stop's trigger follows the source at the trailing offset (a price, basis points
  of the source, or ticks), rounded to the tick away from the market, and only ever tightens:
  up for a sell stop, down for a buy stop. A trailing stop-limit's limit sits the limit offset
  beyond its trigger (lower for a sell), in the same unit.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

from trading.v1 import types_pb2
from trading_core.decimals import format_decimal
from trading_core.prices import ceil_to_tick, floor_to_tick
from trading_core.quotes import Quote

from order_management.domain.orders import Order
from order_management.domain.validation import (
    Denial,
    OffsetType,
    OrderRequest,
    OrderRole,
    Side,
    TriggerType,
)

_BPS = Decimal(10_000)
_BUY = types_pb2.SIDE_BUY
_SELL = types_pb2.SIDE_SELL
_STOP_MARKET = types_pb2.ORDER_TYPE_STOP_MARKET
_STOP_LIMIT = types_pb2.ORDER_TYPE_STOP_LIMIT


def trigger_source(side: Side, trigger_type: TriggerType, quote: Quote) -> Decimal | None:
    """The price a stop on `side` compares with its trigger; None when the quote has none."""
    if trigger_type == types_pb2.TRIGGER_TYPE_LAST:
        return quote.last
    if trigger_type == types_pb2.TRIGGER_TYPE_MID:
        return quote.mid if quote.bid > 0 and quote.ask > 0 else None
    price = quote.ask if side == _BUY else quote.bid
    return price if price > 0 else None


def reached(side: Side, trigger: Decimal, price: Decimal) -> bool:
    """Whether a stop on `side` with this trigger triggers at `price`."""
    return price >= trigger if side == _BUY else price <= trigger


def offset_distance(
    offset: Decimal, offset_type: OffsetType, price: Decimal, tick: Decimal
) -> Decimal:
    """A trailing offset as an amount of price."""
    if offset_type == types_pb2.TRAILING_OFFSET_TYPE_BASIS_POINTS:
        return price * offset / _BPS
    if offset_type == types_pb2.TRAILING_OFFSET_TYPE_TICKS:
        return offset * tick
    return offset


def trailed(order: Order, price: Decimal, tick: Decimal) -> tuple[Decimal, Decimal | None] | None:
    """A trailing stop's new (trigger, limit) at source `price`, when its trigger tightens;
    None when it stays. A trigger is never below one tick."""
    assert order.trailing_offset is not None
    distance = offset_distance(order.trailing_offset, order.trailing_offset_type, price, tick)
    current = order.trigger_price
    if order.side == _SELL:
        trigger = max(floor_to_tick(price - distance, tick), tick)
        tighter = current is None or trigger > current
    else:
        trigger = ceil_to_tick(price + distance, tick)
        tighter = current is None or trigger < current
    if not tighter:
        return None
    return trigger, _trailing_limit(order, trigger, tick)


def _trailing_limit(order: Order, trigger: Decimal, tick: Decimal) -> Decimal | None:
    if order.limit_offset is None:
        return None
    offset_type = order.trailing_offset_type
    distance = offset_distance(order.limit_offset, offset_type, trigger, tick)
    if order.side == _SELL:
        return max(floor_to_tick(trigger - distance, tick), tick)
    return ceil_to_tick(trigger + distance, tick)


def expired(order: Order, now: datetime) -> bool:
    return order.expire_time is not None and now >= order.expire_time


def session_end(now: datetime, end: time) -> datetime:
    """The next end of a trading day at `end` (UTC) after `now`: when a DAY order expires."""
    today = datetime.combine(now.astimezone(UTC).date(), end, tzinfo=UTC)
    return today if today > now else today + timedelta(days=1)


def exit_requests(entry: OrderRequest) -> list[tuple[OrderRole, OrderRequest]]:
    """The held exits of a bracket, OTO or OCO, each with its role: reduce-only, on the other
    side, GTC, for the entry's quantity (set later to what the entry filled). An OCO's order is
    the take-profit itself, so its only exit is the stop-loss. Ids are the caller's to set."""
    exits = entry.exits
    assert exits is not None
    exit_side = _SELL if entry.side == _BUY else _BUY
    base = replace(
        entry,
        side=entry.side if entry.order_class == types_pb2.ORDER_CLASS_OCO else exit_side,
        time_in_force=types_pb2.TIME_IN_FORCE_GTC,
        reduce_only=True,
        signal_id="",
        limit_price=None,
        trigger_price=None,
        trailing_offset=None,
        limit_offset=None,
        display_quantity=None,
        expire_time=None,
        post_only=False,
        exits=None,
    )
    legs: list[tuple[OrderRole, OrderRequest]] = []
    if exits.take_profit is not None and entry.order_class != types_pb2.ORDER_CLASS_OCO:
        take_profit = replace(
            base, order_type=types_pb2.ORDER_TYPE_LIMIT, limit_price=exits.take_profit
        )
        legs.append((types_pb2.ORDER_ROLE_TAKE_PROFIT, take_profit))
    if exits.stop_loss_trigger is not None:
        limited = exits.stop_loss_limit is not None
        stop_loss = replace(
            base,
            order_type=_STOP_LIMIT if limited else _STOP_MARKET,
            limit_price=exits.stop_loss_limit,
            trigger_price=exits.stop_loss_trigger,
            trigger_type=exits.stop_loss_trigger_type,
        )
        legs.append((types_pb2.ORDER_ROLE_STOP_LOSS, stop_loss))
    return legs


def exit_price_problem(entry: OrderRequest, quote: Quote | None) -> Denial | None:
    """Exits that would trade at once: a take-profit not beyond the entry's price, a stop-loss
    not short of it, a stop-limit's limit beyond its trigger. The entry's price is its limit,
    else the touch it trades at; an OCO's, the touch its orders trade at. None when there is
    no price to judge by (the validator denies a market order then)."""
    exits = entry.exits
    assert exits is not None
    oco = entry.order_class == types_pb2.ORDER_CLASS_OCO
    reference = _reference_price(entry, quote)
    if reference is None:
        return None
    exit_sells = (entry.side == _SELL) if oco else (entry.side == _BUY)
    take_profit = entry.limit_price if oco else exits.take_profit
    trigger, limit = exits.stop_loss_trigger, exits.stop_loss_limit
    problems = []
    if take_profit is not None and not _beyond(take_profit, reference, above=exit_sells):
        problems.append(f"take-profit {format_decimal(take_profit)}")
    if trigger is not None and not _beyond(trigger, reference, above=not exit_sells):
        problems.append(f"stop-loss trigger {format_decimal(trigger)}")
    wrong_limit = limit is not None and trigger is not None and limit != trigger
    if wrong_limit and not _beyond(limit, trigger, above=not exit_sells):  # type: ignore[arg-type]
        problems.append(f"stop-loss limit {format_decimal(limit)}")
    if not problems:
        return None
    side, profit, loss = ("sell", "above", "below") if exit_sells else ("buy", "below", "above")
    return Denial(
        types_pb2.DENIAL_REASON_EXIT_PRICE_WRONG_SIDE,
        f"{' and '.join(problems)} on the wrong side: a {side} exit's take-profit must be "
        f"{profit} {format_decimal(reference)} and its stop-loss {loss} it (a stop-limit's limit "
        f"{loss} its trigger, or equal), or it would trade at once",
    )


def _reference_price(entry: OrderRequest, quote: Quote | None) -> Decimal | None:
    if entry.order_class != types_pb2.ORDER_CLASS_OCO and entry.limit_price is not None:
        return entry.limit_price
    if quote is None:
        return None
    price = quote.ask if entry.side == _BUY else quote.bid
    return price if price > 0 else None


def _beyond(price: Decimal, reference: Decimal, *, above: bool) -> bool:
    return price > reference if above else price < reference
