"""The paper-trading venue: a matching engine against a synthetic book behind each quote, no I/O.

Orders arrive in the router's venue form: MARKET, LIMIT or MARKET_TO_LIMIT (stops are held by
order-management and never reach the venue), time in force GTC, IOC, FOK, DAY or GTD.

The book, slippage and impact are `synthetic_book`'s: levels behind the (impact-moved) touch,
or the touch alone with the depth model off (`book_levels` 0, the default). Orders take from a
book level by level, best first, one fill report per level, each at that level's price; what
they take is gone until the next quote of the instrument brings a fresh book. With the depth
model off, each arriving order sees the whole touch again (resting orders still share it).

Prices: a market order walks the levels at each level's price moved by slippage, rounded to the
tick against the trader, up to its protection price; what the book cannot fill expires. With the
depth model off it fills its whole quantity at once at the touch plus slippage (as if the touch
had any size), or expires unfilled when that is beyond its protection price. A limit order that
crosses takes the levels at its limit or better (price improvement, no slippage); what is left
rests (GTC, DAY, GTD) or expires (IOC). Resting orders fill when a later quote's book crosses
them, in time priority, sharing its levels. An iceberg (`display_quantity`) fills at most its
display on one quote, keeping its place in time priority; arriving, it fills as any limit order
does. A market-to-limit order takes the best level showing size, at its price (no slippage);
its remainder rests as a limit order at that price, or expires (IOC). Our own orders never trade
with each other, only with the synthetic book.

Fill-or-kill fills the whole quantity at once or expires with nothing filled, saying what was
available: a limit order needs the levels at its limit or better to hold all of it, a
market-to-limit order needs it at the best level, a market order needs it within its protection
price (with the depth model off a market order fills as market orders do). A post-only limit
order that would cross on arrival is rejected; once resting it fills as resting orders do.

Randomness: a new order's latency (`arrival_time`) and the configured random rejection of a new
order on arrival (`reject_probability`, drawn only for an order the venue would otherwise take)
come from one `random.Random(seed)` owned by the venue, so a run replays exactly for a seed and
the same sequence of calls; the draws depend on the order of events (which order is sent or
arrives first). Ids are not random choices of the model: they stay unique across restarts.

Expiry: DAY and GTD orders carry an expire time (order-management sets a DAY order's to its
session end). One arriving at or after it expires at once, nothing filled; a resting one expires
on the first quote (of any instrument) at or after it, before that quote matches.

Fees are money actually charged: fill notional * fee / 10000, computed exactly, then rounded
up (ceiling) to the instrument's `quote_decimals`, against the trader as prices are. The fee is
`taker_fee_bps` for what an order takes on arrival (including a restored order arriving again)
and `maker_fee_bps` for what it fills while resting; both default to `fee_bps`. The average
price is the VWAP of the fills, computed at the decimal context's precision (28 significant
digits).

Terminal reports (FILLED, CANCELED, EXPIRED) carry leaves_quantity 0, as FIX does; an expiry's
or a cancel's message says how much was left unfilled.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import ROUND_CEILING, Decimal

from trading.v1 import types_pb2
from trading_core.config import SIMULATION_VENUE, Instrument, SimulationVenue
from trading_core.decimals import ZERO, format_decimal, multiply, quantize
from trading_core.events import new_id as random_id
from trading_core.quotes import Quote

from execution_router.domain.latency import draw_latency
from execution_router.domain.synthetic_book import (
    Book,
    Impact,
    Level,
    new_book,
    size_ratio,
    slippage_bps,
    slipped_price,
)
from execution_router.domain.venue_types import Report, VenueOrder

VENUE_NAME = SIMULATION_VENUE  # the one name the config and the router give it

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


def _beyond(side: types_pb2.Side.ValueType, price: Decimal, bound: Decimal | None) -> bool:
    """Whether a fill at `price` would be worse for the trader than `bound` (a limit or a
    protection price; None bounds nothing)."""
    if bound is None:
        return False
    return price > bound if side == _BUY else price < bound


def _at_level(price: Decimal) -> Decimal:
    """A limit order fills at the level's own price (no slippage)."""
    return price


def _available(
    levels: list[Level],
    side: types_pb2.Side.ValueType,
    bound: Decimal | None,
    price_of: Callable[[Decimal], Decimal],
) -> Decimal:
    """What the levels hold at prices within `bound`."""
    available = ZERO
    for level in levels:
        if _beyond(side, price_of(level.price), bound):
            break
        available += level.size
    return available


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


def _modify_problem(
    working: _WorkingOrder,
    quantity: Decimal | None,
    limit_price: Decimal | None,
    quote: Quote | None,
) -> str:
    if quantity is not None and quantity <= working.cumulative_quantity:
        return (
            f"the new quantity {format_decimal(quantity)} is not above what has filled "
            f"({format_decimal(working.cumulative_quantity)})"
        )
    if limit_price is not None and working.order.order_type != _LIMIT:
        return "only a limit order's price can change"
    if limit_price is not None:
        return _post_only_problem(replace(working.order, limit_price=limit_price), quote)
    return ""


class _OpenOrders:
    """The venue's open orders: by id; by instrument, in arrival order (time priority), so a
    quote visits only its instrument's; and the dated ones by expire time, so expiring costs
    nothing while none is due."""

    def __init__(self) -> None:
        self._by_id: dict[str, _WorkingOrder] = {}
        self._by_instrument: dict[str, dict[str, _WorkingOrder]] = {}
        self._expiries: list[tuple[datetime, int, str]] = []
        self._arrival: dict[str, int] = {}
        self._numbers = itertools.count()

    def add(self, working: _WorkingOrder) -> None:
        order = working.order
        self._by_id[order.order_id] = working
        self._by_instrument.setdefault(order.instrument, {})[order.order_id] = working
        number = self._arrival[order.order_id] = next(self._numbers)
        if order.expire_time is not None:
            heapq.heappush(self._expiries, (order.expire_time, number, order.order_id))

    def get(self, order_id: str) -> _WorkingOrder | None:
        return self._by_id.get(order_id)

    def pop(self, order_id: str) -> _WorkingOrder | None:
        working = self._by_id.pop(order_id, None)
        if working is not None:
            del self._by_instrument[working.order.instrument][order_id]
            del self._arrival[order_id]
        return working

    def values(self) -> list[_WorkingOrder]:
        return list(self._by_id.values())

    def of_instrument(self, instrument: str) -> list[_WorkingOrder]:
        return list(self._by_instrument.get(instrument, {}).values())

    def take_expired(self, now: datetime) -> list[_WorkingOrder]:
        """Removes and returns every open order expired by `now`, in arrival order."""
        due: list[tuple[int, _WorkingOrder]] = []
        while self._expiries and self._expiries[0][0] <= now:
            _, number, order_id = heapq.heappop(self._expiries)
            working = self._by_id.get(order_id)
            if working is not None and self._arrival[order_id] == number:
                due.append((number, working))
                self.pop(order_id)
        return [working for _, working in sorted(due, key=lambda pair: pair[0])]


class PaperVenue:
    """Matches orders against a synthetic book behind the latest quote; keeps resting orders."""

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
        # Every random choice (latency, rejects) comes from here, so one seed replays a run.
        self._random = random.Random(settings.seed)
        self._seen_order_ids: set[str] = set()
        # Every open order: the book, and restored orders still to arrive.
        self._open = _OpenOrders()
        # Each instrument's book behind its latest quote, less what orders took from it.
        self._books: dict[str, Book] = {}
        self._impacts: dict[str, Impact] = {}
        # When the last order sent for each instrument reaches the book.
        self._arrivals: dict[str, datetime] = {}

    def arrival_time(self, order: VenueOrder, now: datetime) -> datetime:
        """When an order sent at `now` reaches the book: after a latency drawn for it, and never
        before an order of its instrument sent earlier (arrival keeps the order of sending)."""
        latency = self._settings.order_latency
        if latency.distribution == "fixed" and latency.mean_ms == 0:
            return now  # no latency: nothing to draw, nothing can overtake
        arrival = now + draw_latency(latency, self._random)
        previous = self._arrivals.get(order.instrument)
        if previous is not None and previous > arrival:
            arrival = previous
        self._arrivals[order.instrument] = arrival
        return arrival

    def submit(self, order: VenueOrder, quote: Quote | None, now: datetime) -> list[Report]:
        """Acknowledges and matches a new order; a repeated order id changes nothing."""
        if order.order_id in self._seen_order_ids:
            return []
        self._seen_order_ids.add(order.order_id)
        book = self._book_for(order.instrument, quote, now)
        # The random rejection is drawn only for an order the venue would otherwise take.
        problem = self._problem(order, book) or self._random_rejection()
        if problem:
            return [self._rejection(order, problem)]
        working = _WorkingOrder(order, self._new_id(), limit_price=order.limit_price)
        accepted = working.report(types_pb2.EXECUTION_TYPE_ACCEPTED)
        if _expired(order, now):
            return [accepted, working.report(_EXPIRED, _late_arrival_message(order, now))]
        return [accepted, *self._arrive(working, book, now)]

    def on_quote(self, quote: Quote, now: datetime) -> list[Report]:
        """Expires every order due by `now`, then matches the book behind the quote in time
        priority: restored orders still to arrive arrive, and the resting orders it crosses
        fill, sharing its levels."""
        reports = self._expire_due(now)
        if quote.instrument not in self._instruments:
            return reports  # no order of it is open: the venue takes none
        book = self._new_book(quote, now)
        for working in self._open.of_instrument(quote.instrument):
            if self._open.get(working.order.order_id) is not working:
                continue  # filled by an order that arrived on this quote before it
            if not working.arrived:
                self._open.pop(working.order.order_id)
                arriving = self._book_for(quote.instrument, quote, now)
                reports.extend(self._arrive(working, arriving, now))
                continue
            reports.extend(self._match_resting(working, book))
        return reports

    def cancel(self, order_id: str, request_id: str, now: datetime) -> list[Report]:
        """Cancels an open order; an unknown or finished order gets a cancel rejection."""
        working = self._open.pop(order_id)
        if working is None:
            return [self._not_open(types_pb2.EXECUTION_TYPE_CANCEL_REJECTED, order_id, request_id)]
        remainder = format_decimal(working.leaves_quantity)
        canceled = working.report(
            types_pb2.EXECUTION_TYPE_CANCELED, f"canceled; {remainder} unfilled"
        )
        return [replace(canceled, request_id=request_id)]

    def modify(
        self,
        order_id: str,
        request_id: str,
        quantity: Decimal | None,
        limit_price: Decimal | None,
        quote_of: Callable[[str], Quote | None],
    ) -> list[Report]:
        """Changes an open order's total quantity or limit price (None keeps each); it keeps its
        place and matches at the new price from the next quote. Rejected when the order is not
        open, the quantity is not above what has filled, or a post-only price would take."""
        rejected = types_pb2.EXECUTION_TYPE_MODIFY_REJECTED
        working = self._open.get(order_id)
        if working is None:
            return [self._not_open(rejected, order_id, request_id)]
        quote = quote_of(working.order.instrument)
        problem = _modify_problem(working, quantity, limit_price, quote)
        if problem:
            message = f"cannot modify: {problem}"
            side = working.order.side
            return [Report.nothing_filled(rejected, order_id, side, message, request_id)]
        working.order = replace(
            working.order,
            quantity=quantity or working.order.quantity,
            limit_price=limit_price or working.order.limit_price,
        )
        working.limit_price = limit_price or working.limit_price
        modified = working.report(types_pb2.EXECUTION_TYPE_MODIFIED, "modified")
        return [replace(modified, request_id=request_id, limit_price=working.limit_price)]

    def _not_open(
        self, rejection: types_pb2.ExecutionType.ValueType, order_id: str, request_id: str
    ) -> Report:
        """The rejection of a cancel or modify of an order the venue does not have open."""
        known = "has already finished" if order_id in self._seen_order_ids else "is not known"
        action = "cancel" if rejection == types_pb2.EXECUTION_TYPE_CANCEL_REJECTED else "modify"
        message = f"cannot {action}: the order {known} at the venue"
        unknown_side = types_pb2.SIDE_UNSPECIFIED
        return Report.nothing_filled(rejection, order_id, unknown_side, message, request_id)

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
        had not traded) arrives again on the next quote of its instrument, for what is left.
        Only orders come back: the book's depletion, the impact and the random sequence start
        afresh."""
        self._seen_order_ids.add(order.order_id)
        traded = cumulative_quantity > 0
        rests = order.order_type == _LIMIT or (order.order_type == _MARKET_TO_LIMIT and traded)
        self._open.add(
            _WorkingOrder(
                order,
                venue_order_id=venue_order_id,
                cumulative_quantity=cumulative_quantity,
                filled_notional=cumulative_quantity * (average_price or ZERO),
                limit_price=_restored_limit_price(order, average_price),
                arrived=rests and order.time_in_force not in _IMMEDIATE,
            )
        )

    def open_orders(self) -> list[Report]:
        """Each open order as its latest state."""
        return [w.report(types_pb2.EXECUTION_TYPE_ACCEPTED) for w in self._open.values()]

    def _problem(self, order: VenueOrder, book: Book | None) -> str:
        """Why the venue refuses the order, or "" when it takes it."""
        if order.instrument not in self._instruments:
            known = ", ".join(sorted(self._instruments)) or "none"
            return f"instrument {order.instrument!r} is not traded here; tradable: {known}"
        if order.side not in (_BUY, _SELL):
            return "side must be BUY or SELL"
        if order.quantity <= 0:
            return f"quantity must be positive, got {format_decimal(order.quantity)}"
        quote = None if book is None else book.quote
        return (
            _type_problem(order, quote)
            or _time_in_force_problem(order)
            or _display_problem(order)
            or _post_only_problem(order, quote)
        )

    def _random_rejection(self) -> str:
        """The simulator's configured random rejection, drawn from the seeded source."""
        probability = self._settings.reject_probability
        if not probability or self._random.random() >= probability:
            return ""
        return (
            "rejected at random by the simulator, as configured: "
            f"execution.simulation.reject_probability is {probability}"
        )

    def _rejection(self, order: VenueOrder, message: str) -> Report:
        rejected = types_pb2.EXECUTION_TYPE_REJECTED
        return Report.nothing_filled(rejected, order.order_id, order.side, message)

    def _book_for(self, instrument: str, quote: Quote | None, now: datetime) -> Book | None:
        """The book an arriving order meets: the one behind `quote`, less what orders took from
        it since that quote came. With the depth model off each order sees the whole touch."""
        if quote is None or instrument not in self._instruments:
            return None
        book = self._books.get(instrument)
        if book is None or book.source != quote:
            book = self._new_book(quote, now)
        return book if self._settings.book_levels else book.refilled()

    def _new_book(self, quote: Quote, now: datetime) -> Book:
        """A fresh book behind the quote, moved by the impact left at `now`."""
        impact = self._impacts.get(quote.instrument, Impact())
        offset = impact.at(now, self._settings.impact_half_life_ms)
        book = new_book(quote, self._settings, self._instruments[quote.instrument], offset)
        self._books[quote.instrument] = book
        return book

    def _arrive(self, working: _WorkingOrder, book: Book | None, now: datetime) -> list[Report]:
        """An order's immediate part: what it takes from the book; then it rests or expires.
        What it took moves the market against it (impact)."""
        working.arrived = True
        before = working.cumulative_quantity
        reports = self._take_on_arrival(working, book)
        self._add_impact(working.order, book, working.cumulative_quantity - before, now)
        return reports

    def _take_on_arrival(self, working: _WorkingOrder, book: Book | None) -> list[Report]:
        order_type = working.order.order_type
        if order_type == _LIMIT:
            return self._match_arriving_limit(working, book)
        assert book is not None  # a market or market-to-limit order is refused without a quote
        if order_type == _MARKET_TO_LIMIT:
            return self._execute_market_to_limit(working, book)
        return self._execute_market(working, book)

    def _add_impact(
        self, order: VenueOrder, book: Book | None, taken: Decimal, now: datetime
    ) -> None:
        if not taken or not self._settings.impact_bps:
            return
        assert book is not None  # nothing is taken without a book
        move = self._settings.impact_bps * size_ratio(taken, book.displayed(order.side))
        impact = self._impacts.get(order.instrument, Impact())
        signed = move if order.side == _BUY else -move
        half_life = self._settings.impact_half_life_ms
        self._impacts[order.instrument] = impact.plus(signed, now, half_life)

    def _execute_market(self, working: _WorkingOrder, book: Book) -> list[Report]:
        """A market order walks the book's levels, each at its price moved by slippage, up to
        its protection price; what the book cannot fill there expires."""
        order = working.order
        bps = slippage_bps(self._settings, working.leaves_quantity, book.displayed(order.side))
        tick = self._instruments[order.instrument].tick_size

        def price_of(level_price: Decimal) -> Decimal:
            return slipped_price(level_price, order.side, bps, tick)

        if not self._settings.book_levels:
            return [self._fill_market_at_touch(working, price_of(book.touch(order.side)))]
        if order.time_in_force == _FOK:
            return self._fill_or_kill(working, book, order.protection_price, price_of)
        levels = book.levels(order.side)
        fills, stopped = self._sweep(
            working, levels, working.leaves_quantity, order.protection_price, price_of
        )
        if working.leaves_quantity == 0:
            return fills
        message = _market_remainder_message(working, len(levels), bool(fills), stopped)
        return [*fills, working.report(_EXPIRED, message)]

    def _fill_market_at_touch(self, working: _WorkingOrder, price: Decimal) -> Report:
        """With the depth model off a market order fills whole at one price, as if the touch
        had any size; or expires unfilled when that price is beyond its protection price."""
        order = working.order
        if _beyond(order.side, price, order.protection_price):
            message = (
                f"price protection: the fill price {price} is beyond the protection price "
                f"{order.protection_price}; nothing filled"
            )
            return working.report(_EXPIRED, message)
        return self._fill(working, working.leaves_quantity, price, maker=False)

    def _execute_market_to_limit(self, working: _WorkingOrder, book: Book) -> list[Report]:
        """Takes what the best level shows, at its price; the rest works as a limit there."""
        side = working.order.side
        touch = book.touch(side)
        if working.order.time_in_force == _FOK:
            return self._fill_or_kill(working, book, touch, _at_level)
        working.limit_price = touch
        fills, _ = self._sweep(working, book.levels(side), working.leaves_quantity, touch)
        if not fills:
            unfilled = format_decimal(working.leaves_quantity)
            message = (
                f"market-to-limit: nothing shown at the {_TOUCH_NAME[side]}; {unfilled} unfilled"
            )
            return [working.report(_EXPIRED, message)]
        return [*fills, *self._rest_or_expire(working)]

    def _match_arriving_limit(self, working: _WorkingOrder, book: Book | None) -> list[Report]:
        """A limit order takes the levels at its limit or better; the rest rests or expires."""
        if working.order.time_in_force == _FOK:
            return self._limit_fill_or_kill(working, book)
        fills: list[Report] = []
        if book is not None:
            levels = book.levels(working.order.side)
            fills, _ = self._sweep(working, levels, working.leaves_quantity, working.limit_price)
        return [*fills, *self._rest_or_expire(working)]

    def _limit_fill_or_kill(self, working: _WorkingOrder, book: Book | None) -> list[Report]:
        """A FOK limit order trades only when the levels at its limit or better hold all of it."""
        side, limit_price = working.order.side, working.limit_price
        if book is None:
            return [
                working.report(_EXPIRED, "fill-or-kill: no quote to fill against; nothing filled")
            ]
        touch = book.touch(side)
        if _beyond(side, touch, limit_price):
            message = (
                f"fill-or-kill: nothing available at {format_decimal(limit_price)} or "
                f"better, the {_TOUCH_NAME[side]} is {format_decimal(touch)}; nothing filled"
            )
            return [working.report(_EXPIRED, message)]
        return self._fill_or_kill(working, book, limit_price, _at_level)

    def _fill_or_kill(
        self,
        working: _WorkingOrder,
        book: Book,
        bound: Decimal | None,
        price_of: Callable[[Decimal], Decimal],
    ) -> list[Report]:
        """All of what is left from the levels within `bound`, or an expiry with nothing
        filled that says what was available."""
        side, wanted = working.order.side, working.leaves_quantity
        levels = book.levels(side)
        available = _available(levels, side, bound, price_of)
        if available < wanted:
            where = self._where(side, book, bound)
            message = (
                f"fill-or-kill: {format_decimal(wanted)} wanted, only "
                f"{format_decimal(available)} available {where}; nothing filled"
            )
            return [working.report(_EXPIRED, message)]
        fills, _ = self._sweep(working, levels, wanted, bound, price_of)
        return fills

    def _where(self, side: types_pb2.Side.ValueType, book: Book, bound: Decimal | None) -> str:
        """Where a fill-or-kill order looked for size, for its message."""
        touch = f"the {_TOUCH_NAME[side]} {format_decimal(book.touch(side))}"
        if not self._settings.book_levels or bound == book.touch(side):
            return f"at {touch}"
        if bound is None:
            return f"in the book's {len(book.levels(side))} levels from {touch}"
        return f"from {touch} to {format_decimal(bound)}"

    def _sweep(
        self,
        working: _WorkingOrder,
        levels: list[Level],
        most: Decimal,
        bound: Decimal | None,
        price_of: Callable[[Decimal], Decimal] = _at_level,
        *,
        maker: bool = False,
    ) -> tuple[list[Report], Decimal | None]:
        """Fills up to `most` from the levels, best first, one fill per level at
        `price_of(level price)`, taking what it fills from the level. Stops before a price
        beyond `bound`, which it returns with the fills (None when it did not stop there)."""
        side = working.order.side
        fills: list[Report] = []
        for level in levels:
            if most <= 0:
                break
            if level.size <= 0:
                continue
            price = price_of(level.price)
            if _beyond(side, price, bound):
                return fills, price
            quantity = min(most, level.size)
            level.size -= quantity
            most -= quantity
            fills.append(self._fill(working, quantity, price, maker=maker))
        return fills, None

    def _rest_or_expire(self, working: _WorkingOrder) -> list[Report]:
        """What is left after the arrival rests in the book, or expires for an IOC order."""
        if working.leaves_quantity == 0:
            return []
        if working.order.time_in_force == _IOC:
            remainder = format_decimal(working.leaves_quantity)
            message = f"immediate-or-cancel: unfilled remainder {remainder} expired"
            return [working.report(_EXPIRED, message)]
        self._open.add(working)
        return []

    def _match_resting(self, working: _WorkingOrder, book: Book) -> list[Report]:
        """A resting order's fills from what the book still shows at its limit or better, at
        most its shown quantity (an iceberg's display); it pays the maker fee."""
        levels = book.levels(working.order.side)
        most = working.shown_quantity
        fills, _ = self._sweep(working, levels, most, working.limit_price, maker=True)
        if working.leaves_quantity == 0:
            self._open.pop(working.order.order_id)
        return fills

    def _expire_due(self, now: datetime) -> list[Report]:
        """Takes every DAY or GTD order whose expire time has come out of the book."""
        due = self._open.take_expired(now)
        return [working.report(_EXPIRED, _expiry_message(working)) for working in due]

    def _fill(
        self, working: _WorkingOrder, quantity: Decimal, price: Decimal, *, maker: bool
    ) -> Report:
        """A fill, with its fee: the maker fee for a resting order, the taker fee for one
        arriving; exact, then rounded up to the quote currency's decimals."""
        decimals = self._instruments[working.order.instrument].quote_decimals
        fee_bps = self._settings.maker_fee if maker else self._settings.taker_fee
        exact = multiply(multiply(quantity, price), fee_bps / _BPS)
        fee = quantize(exact, decimals, ROUND_CEILING)
        return working.fill(quantity, price, fee, trade_id=self._new_id())


def _market_remainder_message(
    working: _WorkingOrder, levels: int, filled: bool, stopped: Decimal | None
) -> str:
    """Why a market order walking the book left some of it unfilled."""
    unfilled = f"{format_decimal(working.leaves_quantity)} unfilled" if filled else "nothing filled"
    if stopped is not None:
        order = working.order
        price = "the next fill price" if filled else "the fill price"
        return (
            f"price protection: {price} {format_decimal(stopped)} is beyond the protection "
            f"price {format_decimal(order.protection_price)}; {unfilled}"
        )
    return f"market order: the book's {levels} levels held no more; {unfilled}"
