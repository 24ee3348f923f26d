"""Prices on an instrument's tick."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal


def floor_to_tick(price: Decimal, tick: Decimal) -> Decimal:
    """The largest multiple of `tick` at or below `price`."""
    return (price / tick).to_integral_value(rounding=ROUND_FLOOR) * tick


def ceil_to_tick(price: Decimal, tick: Decimal) -> Decimal:
    """The smallest multiple of `tick` at or above `price`."""
    return (price / tick).to_integral_value(rounding=ROUND_CEILING) * tick
