"""The paper-trading venue: a matching engine against the synthetic quote, no I/O.

Orders arrive in the router's venue form: MARKET, LIMIT or MARKET_TO_LIMIT (stops are held by
order-management and never reach the venue), time in force GTC, IOC, FOK, DAY or GTD.

Prices: a market order fills its whole quantity at once at the touch plus slippage, rounded to
the tick against the trader (or expires unfilled when that is beyond its protection price). A
limit order that crosses fills at the touch (price improvement, no slippage) up to the quote's
displayed size; what is left rests (GTC, DAY, GTD) or expires (IOC). Resting orders fill when a
later quote crosses them, at its touch, sharing its displayed size in time priority. An iceberg
(`display_quantity`) fills at most its display on one quote, keeping its place in time
priority; arriving, it fills as any limit order does. A market-to-limit order fills at the touch
(no slippage) for what the touch shows; its remainder rests as a limit order at that fill price,
or expires (IOC).

Fill-or-kill fills the whole quantity at once or expires with nothing filled: a limit order must
cross with displayed size for all of it, a market-to-limit order needs that size at the touch, a
market order fills as market orders do. A post-only limit order that would cross on arrival is
rejected; once resting it fills as resting orders do.

Expiry: DAY and GTD orders carry an expire time (order-management sets a DAY order's to its
session end). One arriving at or after it expires at once, nothing filled; a resting one expires
on the first quote (of any instrument) at or after it, before that quote matches.

Fees are money actually charged: fill notional * fee_bps / 10000, computed exactly, then rounded
up (ceiling) to the instrument's `quote_decimals`, against the trader as prices are. The average
price is the VWAP of the fills, computed at the decimal context's precision (28 significant
digits).

Terminal reports (FILLED, CANCELED, EXPIRED) carry leaves_quantity 0, as FIX does; an expiry's
or a cancel's message says how much was left unfilled.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import ROUND_CEILING, Decimal

from trading.v1 import types_pb2
from trading_core.config import Instrument, SimulationVenue
from trading_core.decimals import ZERO, format_decimal, multiply, quantize
from trading_core.events import new_id as random_id
from trading_core.prices import ceil_to_tick, floor_to_tick
from trading_core.quotes import Quote

from execution_router.domain.venue_types import Report, VenueOrder

VENUE_NAME = "simulation"

_BPS = Decimal(10_000)
_BUY = types_pb2.SIDE_BUY
_SELL = types_pb2.SIDE_SELL
_MARKET = types_pb2.ORDER_TYPE_MARKET
_LIMIT = types_pb2.ORDER_TYPE_LIMIT
_MARKET_TO_LIMIT = types_pb2.ORDER_TYPE_MARKET_TO_LIMIT
_GTC = types_pb2.TIME_IN_FORCE_GTC
_IOC = types_pb2.TIME_IN_FORCE_IOC
_FOK = types_pb2.TIME_IN_FORCE_FOK
_DAY = types_pb2.TIME_IN_FORCE_DAY
_GTD = types_pb2.TIME_IN_FORCE_GTD
_TIMES_IN_FORCE = frozenset({_GTC, _IOC, _FOK, _DAY, _GTD})
_DATED = frozenset({_DAY, _GTD})
_IMMEDIATE = frozenset({_IOC, _FOK})
_EXPIRED = types_pb2.EXECUTION_TYPE_EXPIRED
_SIDE_NAME = {_BUY: "buy", _SELL: "sell"}
_TOUCH_NAME = {_BUY: "ask", _SELL: "bid"}


@dataclass
class _WorkingOrder:
    """An accepted order and what has filled of it so far."""

    order: VenueOrder
    venue_order_id: str
    cumulative_quantity: Decimal = ZERO
    filled_notional: Decimal = ZERO
    # The price it works at in the book: a limit order's limit; a market-to-limit order's first
    # fill price (None until it trades).
    limit_price: Decimal | None = None
    # False for a restored order whose immediate part may not have run before the restart: it
    # arrives again on the next quote of its instrument.
    arrived: bool = True

    @property
    def leaves_quantity(self) -> Decimal:
        return self.order.quantity - self.cumulative_quantity

    @property
    def shown_quantity(self) -> Decimal:
        """The most of it one quote can fill: an iceberg shows only its display quantity."""
        display = self.order.display_quantity
        return self.leaves_quantity if display is None else min(display, self.leaves_quantity)

    @property
    def average_price(self) -> Decimal | None:
        if not self.cumulative_quantity:
            return None
        return self.filled_notional / self.cumulative_quantity

    def report(
        self, execution_type: types_pb2.ExecutionType.ValueType, message: str = ""
    ) -> Report:
        """A report without a fill; a finished order (canceled, expired) leaves nothing."""
        finished = execution_type in (
            types_pb2.EXECUTION_TYPE_CANCELED,
            types_pb2.EXECUTION_TYPE_EXPIRED,
        )
        return Report(
            execution_type=execution_type,
            order_id=self.order.order_id,
            venue_order_id=self.venue_order_id,
            side=self.order.side,
            cumulative_quantity=self.cumulative_quantity,
            leaves_quantity=ZERO if finished else self.leaves_quantity,
            average_price=self.average_price,
            message=message,
        )

    def fill(self, quantity: Decimal, price: Decimal, fee: Decimal, trade_id: str) -> Report:
        self.cumulative_quantity += quantity
        self.filled_notional += quantity * price
        done = self.leaves_quantity == 0
        return Report(
            execution_type=(
                types_pb2.EXECUTION_TYPE_FILLED
                if done
                else types_pb2.EXECUTION_TYPE_PARTIALLY_FILLED
            ),
            order_id=self.order.order_id,
            venue_order_id=self.venue_order_id,
            side=self.order.side,
            trade_id=trade_id,
            last_quantity=quantity,
            last_price=price,
            fee=fee,
            cumulative_quantity=self.cumulative_quantity,
            leaves_quantity=self.leaves_quantity,
            average_price=self.average_price,
        )


def _crosses(side: types_pb2.Side.ValueType, price: Decimal | None, quote: Quote) -> bool:
    """Whether a limit at `price` would trade against the quote."""
    assert price is not None
    return price >= quote.ask if side == _BUY else price <= quote.bid


def _touch(side: types_pb2.Side.ValueType, quote: Quote) -> Decimal:
    return quote.ask if side == _BUY else quote.bid


def _beyond_protection(order: VenueOrder, price: Decimal) -> bool:
    protection = order.protection_price
    if protection is None:
        return False
    return price > protection if order.side == _BUY else price < protection


def _displayed_size(side: types_pb2.Side.ValueType, quote: Quote) -> Decimal:
    return quote.ask_size if side == _BUY else quote.bid_size


def _expired(order: VenueOrder, now: datetime) -> bool:
    return order.expire_time is not None and now >= order.expire_time


def _dated_name(order: VenueOrder) -> str:
    return "day order" if order.time_in_force == _DAY else "good-till-date"


def _expiry_message(working: _WorkingOrder) -> str:
    assert working.order.expire_time is not None
    expire_time = working.order.expire_time.isoformat()
    unfilled = format_decimal(working.leaves_quantity)
    return f"{_dated_name(working.order)}: expired at {expire_time}; {unfilled} unfilled"


def _late_arrival_message(order: VenueOrder, now: datetime) -> str:
    assert order.expire_time is not None
    return (
        f"{_dated_name(order)}: its expire time {order.expire_time.isoformat()} had come when it "
        f"reached the venue at {now.isoformat()}; nothing filled"
    )


def _time_in_force_name(order: VenueOrder) -> str:
    return types_pb2.TimeInForce.Name(order.time_in_force).removeprefix("TIME_IN_FORCE_")


def _restored_limit_price(order: VenueOrder, average_price: Decimal | None) -> Decimal | None:
    """A market-to-limit order rests at its first fill's price, which the router puts in
    `limit_price`; failing that, the average price is the same while only that fill happened."""
    if order.order_type == _MARKET_TO_LIMIT and order.limit_price is None:
        return average_price
    return order.limit_price


def _type_problem(order: VenueOrder, quote: Quote | None) -> str:
    if order.order_type in (_MARKET, _MARKET_TO_LIMIT):
        if quote is None:
            kind = "market" if order.order_type == _MARKET else "market-to-limit"
            return (
                f"no quote for {order.instrument} yet; a {kind} order needs a price, "
                "retry once market data arrives or send a limit order"
            )
        return ""
    if order.order_type != _LIMIT:
        return (
            "order type must be MARKET, LIMIT or MARKET_TO_LIMIT "
            "(stop orders are held by order-management)"
        )
    if order.limit_price is None or order.limit_price <= 0:
        return "a limit order needs a positive limit price"
    return ""


def _time_in_force_problem(order: VenueOrder) -> str:
    if order.time_in_force not in _TIMES_IN_FORCE:
        return "time in force must be GTC, IOC, FOK, DAY or GTD"
    dated = order.time_in_force in _DATED
    if dated and order.expire_time is None:
        return f"a {_time_in_force_name(order)} order needs an expire time; none was given"
    if not dated and order.expire_time is not None:
        return f"an expire time is for DAY and GTD orders only, not {_time_in_force_name(order)}"
    return ""


def _display_problem(order: VenueOrder) -> str:
    display = order.display_quantity
    if display is None:
        return ""
    if order.order_type != _LIMIT:
        return "a display quantity (an iceberg) is for limit orders only"
    if not ZERO < display <= order.quantity:
        return (
            f"display quantity must be positive and at most the quantity "
            f"{format_decimal(order.quantity)}, got {format_decimal(display)}"
        )
    return ""


def _post_only_problem(order: VenueOrder, quote: Quote | None) -> str:
    if not order.post_only:
        return ""
    if order.order_type != _LIMIT:
        return "post-only is for limit orders only"
    if order.time_in_force in _IMMEDIATE:
        return "post-only: a post-only order must rest, so it cannot be IOC or FOK"
    if quote is not None and _crosses(order.side, order.limit_price, quote):
        side = order.side
        return (
            f"post-only: a {_SIDE_NAME[side]} limit at {format_decimal(order.limit_price)} "
            f"would take the {_TOUCH_NAME[side]} {format_decimal(_touch(side, quote))}"
        )
    return ""


class PaperVenue:
    """Matches orders against the latest synthetic quote; keeps resting orders."""

    name = VENUE_NAME

    def __init__(
        self,
        settings: SimulationVenue,
        instruments: Mapping[str, Instrument],
        new_id: Callable[[], str] = random_id,
    ) -> None:
        self._settings = settings
        self._instruments = dict(instruments)
        self._new_id = new_id
        self._seen_order_ids: set[str] = set()
        # Every open order: the book, and restored orders still to arrive. Insertion order is
        # time priority.
        self._open: dict[str, _WorkingOrder] = {}

    def submit(self, order: VenueOrder, quote: Quote | None, now: datetime) -> list[Report]:
        """Acknowledges and matches a new order; a repeated order id changes nothing."""
        if order.order_id in self._seen_order_ids:
            return []
        self._seen_order_ids.add(order.order_id)
        problem = self._problem(order, quote)
        if problem:
            return [self._rejection(order, problem)]
        working = _WorkingOrder(order, self._new_id(), limit_price=order.limit_price)
        accepted = working.report(types_pb2.EXECUTION_TYPE_ACCEPTED)
        if _expired(order, now):
            return [accepted, working.report(_EXPIRED, _late_arrival_message(order, now))]
        return [accepted, *self._arrive(working, quote)]

    def on_quote(self, quote: Quote, now: datetime) -> list[Report]:
        """Expires every order due by `now`, then matches the quote: restored orders still to
        arrive arrive, and the resting orders it crosses fill, sharing its displayed size in
        time priority."""
        reports = self._expire_due(now)
        available = {_BUY: quote.ask_size, _SELL: quote.bid_size}
        for working in list(self._open.values()):
            if working.order.instrument != quote.instrument:
                continue
            if not working.arrived:
                del self._open[working.order.order_id]
                reports.extend(self._arrive(working, quote))
                continue
            fill = self._match_resting(working, quote, available)
            if fill is not None:
                reports.append(fill)
        return reports

    def cancel(self, order_id: str, request_id: str, now: datetime) -> list[Report]:
        """Cancels an open order; an unknown or finished order gets a cancel rejection."""
        working = self._open.pop(order_id, None)
        if working is None:
            known = "has already finished" if order_id in self._seen_order_ids else "is not known"
            message = f"cannot cancel: the order {known} at the venue"
            rejected = types_pb2.EXECUTION_TYPE_CANCEL_REJECTED
            unknown_side = types_pb2.SIDE_UNSPECIFIED
            return [Report.nothing_filled(rejected, order_id, unknown_side, message, request_id)]
        remainder = format_decimal(working.leaves_quantity)
        canceled = working.report(
            types_pb2.EXECUTION_TYPE_CANCELED, f"canceled; {remainder} unfilled"
        )
        return [replace(canceled, request_id=request_id)]

    def restore(
        self,
        order: VenueOrder,
        *,
        venue_order_id: str,
        cumulative_quantity: Decimal,
        average_price: Decimal | None,
    ) -> None:
        """Puts back an open order after a restart, with what had filled of it.

        A limit order rests again, and so does a market-to-limit order that had traded: at
        `order.limit_price`, which the router sets to the price of its first fill (the average
        price would drift once the remainder fills at a better touch). An order whose immediate
        part may not have run (a market order, an IOC or FOK order, a market-to-limit order that
        had not traded) arrives again on the next quote of its instrument, for what is left."""
        self._seen_order_ids.add(order.order_id)
        traded = cumulative_quantity > 0
        rests = order.order_type == _LIMIT or (order.order_type == _MARKET_TO_LIMIT and traded)
        self._open[order.order_id] = _WorkingOrder(
            order,
            venue_order_id=venue_order_id,
            cumulative_quantity=cumulative_quantity,
            filled_notional=cumulative_quantity * (average_price or ZERO),
            limit_price=_restored_limit_price(order, average_price),
            arrived=rests and order.time_in_force not in _IMMEDIATE,
        )

    def open_orders(self) -> list[Report]:
        """Each open order as its latest state."""
        return [w.report(types_pb2.EXECUTION_TYPE_ACCEPTED) for w in self._open.values()]

    def _problem(self, order: VenueOrder, quote: Quote | None) -> str:
        """Why the venue refuses the order, or "" when it takes it."""
        if order.instrument not in self._instruments:
            known = ", ".join(sorted(self._instruments)) or "none"
            return f"instrument {order.instrument!r} is not traded here; tradable: {known}"
        if order.side not in (_BUY, _SELL):
            return "side must be BUY or SELL"
        if order.quantity <= 0:
            return f"quantity must be positive, got {format_decimal(order.quantity)}"
        return (
            _type_problem(order, quote)
            or _time_in_force_problem(order)
            or _display_problem(order)
            or _post_only_problem(order, quote)
        )

    def _rejection(self, order: VenueOrder, message: str) -> Report:
        rejected = types_pb2.EXECUTION_TYPE_REJECTED
        return Report.nothing_filled(rejected, order.order_id, order.side, message)

    def _arrive(self, working: _WorkingOrder, quote: Quote | None) -> list[Report]:
        """An order's immediate part: what it takes from the quote; then it rests or expires."""
        working.arrived = True
        order_type = working.order.order_type
        if order_type == _LIMIT:
            return self._match_arriving_limit(working, quote)
        assert quote is not None  # a market or market-to-limit order is refused without one
        if order_type == _MARKET_TO_LIMIT:
            return self._execute_market_to_limit(working, quote)
        return [self._execute_market(working, quote)]

    def _execute_market(self, working: _WorkingOrder, quote: Quote) -> Report:
        """A market order's fill of what is left of it, or its expiry beyond its protection."""
        order = working.order
        price = self._market_price(order, quote)
        if _beyond_protection(order, price):
            message = (
                f"price protection: the fill price {price} is beyond the protection price "
                f"{order.protection_price}; nothing filled"
            )
            return working.report(_EXPIRED, message)
        return self._fill(working, working.leaves_quantity, price)

    def _execute_market_to_limit(self, working: _WorkingOrder, quote: Quote) -> list[Report]:
        """Takes what the touch shows, at the touch; the rest works as a limit at that price."""
        side = working.order.side
        touch, shown = _touch(side, quote), _displayed_size(side, quote)
        if working.order.time_in_force == _FOK:
            return self._fill_or_kill(working, touch, shown)
        if shown <= 0:
            unfilled = format_decimal(working.leaves_quantity)
            message = (
                f"market-to-limit: nothing shown at the {_TOUCH_NAME[side]}; {unfilled} unfilled"
            )
            return [working.report(_EXPIRED, message)]
        working.limit_price = touch
        fill = self._fill(working, min(working.leaves_quantity, shown), touch)
        return [fill, *self._rest_or_expire(working)]

    def _match_arriving_limit(self, working: _WorkingOrder, quote: Quote | None) -> list[Report]:
        side = working.order.side
        if working.order.time_in_force == _FOK:
            return self._limit_fill_or_kill(working, quote)
        reports: list[Report] = []
        if quote is not None and _crosses(side, working.limit_price, quote):
            quantity = min(working.leaves_quantity, _displayed_size(side, quote))
            if quantity > 0:
                reports.append(self._fill(working, quantity, _touch(side, quote)))
        return [*reports, *self._rest_or_expire(working)]

    def _limit_fill_or_kill(self, working: _WorkingOrder, quote: Quote | None) -> list[Report]:
        """A FOK limit order trades only when it crosses a touch that shows all of it."""
        side = working.order.side
        if quote is None:
            return [
                working.report(_EXPIRED, "fill-or-kill: no quote to fill against; nothing filled")
            ]
        touch = _touch(side, quote)
        if not _crosses(side, working.limit_price, quote):
            message = (
                f"fill-or-kill: nothing available at {format_decimal(working.limit_price)} or "
                f"better, the {_TOUCH_NAME[side]} is {format_decimal(touch)}; nothing filled"
            )
            return [working.report(_EXPIRED, message)]
        return self._fill_or_kill(working, touch, _displayed_size(side, quote))

    def _fill_or_kill(self, working: _WorkingOrder, price: Decimal, shown: Decimal) -> list[Report]:
        """All of what is left at `price`, or an expiry with nothing filled."""
        wanted = working.leaves_quantity
        if shown < wanted:
            message = (
                f"fill-or-kill: {format_decimal(wanted)} wanted, only {format_decimal(shown)} "
                f"available at the {_TOUCH_NAME[working.order.side]} "
                f"{format_decimal(price)}; nothing filled"
            )
            return [working.report(_EXPIRED, message)]
        return [self._fill(working, wanted, price)]

    def _rest_or_expire(self, working: _WorkingOrder) -> list[Report]:
        """What is left after the arrival rests in the book, or expires for an IOC order."""
        if working.leaves_quantity == 0:
            return []
        if working.order.time_in_force == _IOC:
            remainder = format_decimal(working.leaves_quantity)
            message = f"immediate-or-cancel: unfilled remainder {remainder} expired"
            return [working.report(_EXPIRED, message)]
        self._open[working.order.order_id] = working
        return []

    def _match_resting(
        self,
        working: _WorkingOrder,
        quote: Quote,
        available: dict[types_pb2.Side.ValueType, Decimal],
    ) -> Report | None:
        """A resting order's fill from what the quote still shows on its side, if it crosses."""
        side = working.order.side
        if not _crosses(side, working.limit_price, quote):
            return None
        quantity = min(working.shown_quantity, available[side])
        if quantity <= 0:
            return None
        available[side] -= quantity
        fill = self._fill(working, quantity, _touch(side, quote))
        if working.leaves_quantity == 0:
            del self._open[working.order.order_id]
        return fill

    def _expire_due(self, now: datetime) -> list[Report]:
        """Takes every DAY or GTD order whose expire time has come out of the book."""
        due = [working for working in self._open.values() if _expired(working.order, now)]
        for working in due:
            del self._open[working.order.order_id]
        return [working.report(_EXPIRED, _expiry_message(working)) for working in due]

    def _market_price(self, order: VenueOrder, quote: Quote) -> Decimal:
        """The touch moved by slippage, rounded to the tick against the trader."""
        tick = self._instruments[order.instrument].tick_size
        slippage = self._settings.slippage_bps / _BPS
        if order.side == _BUY:
            return ceil_to_tick(quote.ask * (1 + slippage), tick)
        return max(floor_to_tick(quote.bid * (1 - slippage), tick), tick)

    def _fill(self, working: _WorkingOrder, quantity: Decimal, price: Decimal) -> Report:
        decimals = self._instruments[working.order.instrument].quote_decimals
        exact = multiply(multiply(quantity, price), self._settings.fee_bps / _BPS)
        fee = quantize(exact, decimals, ROUND_CEILING)
        return working.fill(quantity, price, fee, trade_id=self._new_id())
