"""The paper venue's market model: the depth behind a quote, slippage and market impact.

Plain data and functions over Decimal; no I/O, the clock is passed in.

Depth: behind each quote the book shows `book_levels` price levels per side, the touch first,
each `level_spacing_ticks` ticks further from it than the one before. Level i (the touch is 0)
shows the touch's displayed size times `level_size_growth` ** i, rounded down to the
instrument's step (the touch keeps the quote's size as it is); bid levels stop above zero. With
`book_levels` 0 the depth model is off: the book is the touch alone, with its displayed size.

Slippage: a market order's fill prices move against the trader by `slippage_bps` (`fixed`),
`slippage_bps * q / D` (`linear`) or `slippage_bps * sqrt(q / D)` (`sqrt`), where q is the
quantity the order still wants and D the size displayed at the touch it takes; then each price is
rounded to the tick against the trader. When the touch shows no size, q / D is taken as 1.

Impact: each taking order moves its instrument's market against itself (up for a buy, down for a
sell) by `impact_bps * q / D`, q being what it took. The move is a signed offset in basis points
that halves every `impact_half_life_ms` of the clock; the venue shows every quote with both its
bid and its ask moved by the offset in force when the quote arrives, rounded to the nearest tick.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from trading.v1 import types_pb2
from trading_core.config import Instrument, SimulationVenue
from trading_core.decimals import ZERO, whole_multiples
from trading_core.prices import ceil_to_tick, floor_to_tick
from trading_core.quotes import Quote

_BPS = Decimal(10_000)
_ONE = Decimal(1)
_HALF = Decimal("0.5")
_BUY = types_pb2.SIDE_BUY
# An offset this small no longer moves any price: it is dropped, so that decay ends.
_NEGLIGIBLE_BPS = Decimal("1e-9")


@dataclass
class Level:
    """One price level of the synthetic book: `shown` is its size on the quote, `size` what is
    left of it."""

    price: Decimal
    shown: Decimal
    size: Decimal = field(init=False)

    def __post_init__(self) -> None:
        self.size = self.shown


@dataclass
class Book:
    """The synthetic book behind one quote: `quote` is the quote as the venue shows it (moved by
    impact), `source` the one it was built from. A buy takes the asks, a sell the bids."""

    source: Quote
    quote: Quote
    asks: list[Level]
    bids: list[Level]

    def levels(self, side: types_pb2.Side.ValueType) -> list[Level]:
        """The levels an order on `side` takes from, best first."""
        return self.asks if side == _BUY else self.bids

    def displayed(self, side: types_pb2.Side.ValueType) -> Decimal:
        """The size the quote displays at the touch an order on `side` takes."""
        return self.quote.ask_size if side == _BUY else self.quote.bid_size

    def touch(self, side: types_pb2.Side.ValueType) -> Decimal:
        """The best price still showing size for an order on `side`; the quote's touch when
        nothing is left."""
        levels = self.levels(side)
        return next((level.price for level in levels if level.size > 0), levels[0].price)

    def refilled(self) -> Book:
        """The same book with every level's whole size again."""
        return replace(
            self,
            asks=[Level(level.price, level.shown) for level in self.asks],
            bids=[Level(level.price, level.shown) for level in self.bids],
        )


def new_book(
    source: Quote, settings: SimulationVenue, instrument: Instrument, offset_bps: Decimal
) -> Book:
    """The book behind `source`, its prices moved by an impact of `offset_bps`."""
    shown = shift_quote(source, offset_bps, instrument.tick_size)
    spacing = instrument.tick_size * settings.level_spacing_ticks
    levels = range(max(settings.book_levels, 1))

    def size(top: Decimal, index: int) -> Decimal:
        if index == 0 or settings.level_size_growth == 1:
            return top
        grown = top * settings.level_size_growth**index
        return whole_multiples(grown, instrument.step_size) * instrument.step_size

    asks = [Level(shown.ask + i * spacing, size(shown.ask_size, i)) for i in levels]
    bids = [
        Level(shown.bid - i * spacing, size(shown.bid_size, i))
        for i in levels
        if i == 0 or shown.bid - i * spacing > 0
    ]
    return Book(source=source, quote=shown, asks=asks, bids=bids)


def size_ratio(quantity: Decimal, displayed: Decimal) -> Decimal:
    """Size over displayed size; 1 when nothing is displayed, which leaves nothing to scale by."""
    return quantity / displayed if displayed > 0 else _ONE


def slippage_bps(settings: SimulationVenue, quantity: Decimal, displayed: Decimal) -> Decimal:
    """How far, in basis points, a market order of `quantity` fills beyond each level's price."""
    if settings.slippage_model == "fixed":
        return settings.slippage_bps
    ratio = size_ratio(quantity, displayed)
    if settings.slippage_model == "linear":
        return settings.slippage_bps * ratio
    return settings.slippage_bps * ratio.sqrt()


def slipped_price(
    price: Decimal, side: types_pb2.Side.ValueType, bps: Decimal, tick: Decimal
) -> Decimal:
    """`price` moved `bps` against the trader, rounded to the tick against the trader; a sell
    never below one tick."""
    move = bps / _BPS
    if side == _BUY:
        return ceil_to_tick(price * (1 + move), tick)
    return max(floor_to_tick(price * (1 - move), tick), tick)


def shift_quote(quote: Quote, offset_bps: Decimal, tick: Decimal) -> Quote:
    """The quote with its bid and ask moved by `offset_bps`, to the nearest tick (a market
    move, not a trader's price, so neither way is against anyone); the bid stays positive."""
    if not offset_bps:
        return quote
    factor = 1 + offset_bps / _BPS
    bid = max(_nearest_tick(quote.bid * factor, tick), tick)
    return replace(quote, bid=bid, ask=_nearest_tick(quote.ask * factor, tick))


def _nearest_tick(price: Decimal, tick: Decimal) -> Decimal:
    return (price / tick).to_integral_value(rounding=ROUND_HALF_EVEN) * tick


@dataclass(frozen=True)
class Impact:
    """An instrument's market impact: `offset_bps` at `as_of`, halving every half-life."""

    offset_bps: Decimal = ZERO
    as_of: datetime | None = None

    def at(self, now: datetime, half_life_ms: int) -> Decimal:
        """The offset left at `now` (a clock that went back decays nothing)."""
        if not self.offset_bps or self.as_of is None or now <= self.as_of:
            return self.offset_bps
        elapsed_ms = Decimal((now - self.as_of) // timedelta(microseconds=1)) / 1000
        left = self.offset_bps * _HALF ** (elapsed_ms / half_life_ms)
        return left if abs(left) >= _NEGLIGIBLE_BPS else ZERO

    def plus(self, bps: Decimal, now: datetime, half_life_ms: int) -> Impact:
        """This impact with a move of `bps` added at `now`."""
        return Impact(self.at(now, half_life_ms) + bps, now)
