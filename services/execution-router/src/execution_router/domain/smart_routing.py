"""Smart order routing: a quantity shared across venues on the best price net of fees.

Plain data. Each venue shows a price and a size on the side the order takes from (its best ask
for a buy, best bid for a sell) and charges a taker fee. The venues are ranked by what a unit
costs (a buy: ask plus fee) or yields (a sell: bid minus fee), ties kept in route order; each in
turn gets as much as it displays, on the step; what no venue displays goes to the best one.
A venue without a quote gets nothing while another has one; with no quote anywhere, everything
goes to the first venue of the route.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from trading.v1 import types_pb2

_BPS = Decimal(10_000)


@dataclass(frozen=True)
class VenueTop:
    """What a venue shows on the side an order takes from."""

    venue: str
    price: Decimal
    size: Decimal
    taker_fee_bps: Decimal

    def net_price(self, side: types_pb2.Side.ValueType) -> Decimal:
        fee = self.price * self.taker_fee_bps / _BPS
        return self.price + fee if side == types_pb2.SIDE_BUY else self.price - fee


def allocate(
    side: types_pb2.Side.ValueType,
    quantity: Decimal,
    tops: Sequence[VenueTop],
    route: Sequence[str],
    step: Decimal,
) -> list[tuple[str, Decimal]]:
    """The quantity per venue, best venue first; every part on the step, summing to `quantity`."""
    if not tops:
        return [(route[0], quantity)]
    buying = side == types_pb2.SIDE_BUY
    order = {name: index for index, name in enumerate(route)}
    ranked = sorted(
        tops,
        key=lambda top: (
            top.net_price(side) if buying else -top.net_price(side),
            order.get(top.venue, len(order)),
        ),
    )
    shares: dict[str, Decimal] = {}
    left = quantity
    for top in ranked:
        take = min(left, _floor(top.size, step))
        if take > 0:
            shares[top.venue] = take
            left -= take
    if left > 0:
        best = ranked[0].venue
        shares[best] = shares.get(best, Decimal(0)) + left
    return [(top.venue, shares[top.venue]) for top in ranked if top.venue in shares]


def _floor(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).to_integral_value(ROUND_DOWN) * step
