"""A net position's quantity and average price, fill by fill: the one rule for realized P&L,
shared by position-management's positions and order-management's risk (cooldowns after a loss).

The average price is the VWAP of the fills that opened the current position; a reduction leaves
it unchanged and realizes (price - average) * closed quantity, sign-aware (a short gains when
the price falls). A fill through zero closes the position, then opens the remainder at the
fill's price. Flat means no average price. Averages are divisions at the decimal context's
precision; everything else is exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from trading_core.decimals import ZERO


def sign(value: Decimal) -> int:
    return (value > 0) - (value < 0)


@dataclass(frozen=True)
class Lot:
    """A signed quantity (short below zero) and the average price it was opened at."""

    quantity: Decimal = ZERO
    average_price: Decimal | None = None

    def fill(self, change: Decimal, price: Decimal) -> tuple[Lot, Decimal]:
        """The lot after a fill of `change` (signed) at `price`, and the P&L it realized."""
        if not change:
            return self, ZERO
        if not self.quantity or sign(change) == sign(self.quantity):
            cost = (self.average_price or ZERO) * abs(self.quantity) + price * abs(change)
            quantity = self.quantity + change
            return Lot(quantity, cost / abs(quantity)), ZERO
        assert self.average_price is not None  # an open lot has one
        closed = min(abs(change), abs(self.quantity))
        realized = (price - self.average_price) * closed * sign(self.quantity)
        quantity = self.quantity + change
        if not quantity:
            return Lot(), realized
        through_zero = sign(quantity) != sign(self.quantity)
        return Lot(quantity, price if through_zero else self.average_price), realized
