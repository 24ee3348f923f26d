"""Smart order routing: a quantity shared across venues on the best price net of fees.

Plain data. Each venue shows the levels of its book on the side an order takes from (asks for a
buy, bids for a sell; its top alone when its feed reads no depth) and charges a taker fee. All
venues' levels are ranked together by what a unit costs there (a buy: price plus fee) or yields
(a sell: price minus fee), ties kept in route order, and each level in turn gets as much as it
shows (on the step), until the quantity is placed: an order larger than one venue's best level
takes the next best price anywhere, not the same venue's worse one. What no level shows goes to
the venue of the best level.
A venue without a quote gets nothing while another has one; with no quote anywhere, everything
goes to the first venue of the route.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from trading.v1 import types_pb2

_BPS = Decimal(10_000)
ZERO = Decimal(0)


@dataclass(frozen=True)
class VenueBook:
    """What a venue shows on the side an order takes from: (price, size) levels, best first."""

    venue: str
    levels: tuple[tuple[Decimal, Decimal], ...]
    taker_fee_bps: Decimal

    def net_price(self, price: Decimal, side: types_pb2.Side.ValueType) -> Decimal:
        fee = price * self.taker_fee_bps / _BPS
        return price + fee if side == types_pb2.SIDE_BUY else price - fee


def allocate(
    side: types_pb2.Side.ValueType,
    quantity: Decimal,
    books: Sequence[VenueBook],
    route: Sequence[str],
    step: Decimal,
) -> list[tuple[str, Decimal]]:
    """The quantity per venue, best venue first; every part on the step, summing to `quantity`."""
    levels = _ranked_levels(side, books, route)
    if not levels:
        return [(route[0], quantity)]
    shares: dict[str, Decimal] = {}  # in the order venues first got a level: best first
    shown: dict[str, Decimal] = {}  # what each venue shows up to the level reached
    left = quantity
    for _, venue, size in levels:
        if left <= 0:
            break
        shown[venue] = shown.get(venue, ZERO) + size
        # On the step: what the venue shows so far, floored, less what it already has.
        take = min(left, _floor(shown[venue], step) - shares.get(venue, ZERO))
        if take > 0:
            shares[venue] = shares.get(venue, ZERO) + take
            left -= take
    if left > 0:
        best = levels[0][1]
        shares[best] = shares.get(best, ZERO) + left
    return list(shares.items())


def _ranked_levels(
    side: types_pb2.Side.ValueType, books: Sequence[VenueBook], route: Sequence[str]
) -> list[tuple[Decimal, str, Decimal]]:
    """Every venue's shown levels as (cost or yield key, venue, size), the best first."""
    buying = side == types_pb2.SIDE_BUY
    place = {name: index for index, name in enumerate(route)}
    ranked = [
        (net if buying else -net, place.get(book.venue, len(place)), book.venue, size)
        for book in books
        for price, size in book.levels
        if price > 0 and size > 0
        for net in (book.net_price(price, side),)
    ]
    ranked.sort(key=lambda level: (level[0], level[1]))
    return [(key, venue, size) for key, _, venue, size in ranked]


def _floor(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).to_integral_value(ROUND_DOWN) * step
