"""Exact money: decimal strings on the wire, `Decimal` in Python, never float.

The wire grammar, one for every decimal that arrives in a request or an execution report:

    -?[0-9]+(\\.[0-9]+)?([eE][+-]?[0-9]{1,3})?

ASCII digits only (no full-width or Arabic-Indic digits), no `+` sign on the number, no `_`,
no spaces, no NaN or Infinity. Bounded, so that no input can make a number, a message or a
stored order grow without limit:
- at most 40 characters of text (`MAX_TEXT_LENGTH`);
- at most 30 significant digits (`MAX_SIGNIFICANT_DIGITS`);
- below 10^21 (adjusted exponent at most 20) and no digit beyond the 20th decimal place, so the
  adjusted exponent of any accepted value lies within -20..20 (`MAX_ADJUSTED_EXPONENT`,
  `MAX_DECIMAL_PLACES`). The plain notation of an accepted value fits the 40 characters again.

Arithmetic that must not round (formatting, step and tick checks, order values, fees) never
uses the default context's 28 digits: `multiply`, `quantize`, `is_multiple`, `whole_multiples`
and `format_decimal` are exact whatever the digits of their operands. Divisions that cannot be
exact (average prices) are left to the caller and shown at a fixed `Precision` on the wire.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import MAX_EMAX, MIN_EMIN, ROUND_HALF_EVEN, Context, Decimal
from fractions import Fraction
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trading_core.config import Instrument

ZERO = Decimal(0)

MAX_TEXT_LENGTH = 40
MAX_SIGNIFICANT_DIGITS = 30
MAX_ADJUSTED_EXPONENT = 20
MAX_DECIMAL_PLACES = 20
# How much of a user's value an error message quotes.
EXCERPT_LENGTH = 32

# [0-9], not \d: \d also matches full-width and Arabic-Indic digits.
_GRAMMAR = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]{1,3})?")
_NOT_FINITE = re.compile(r"[+-]?(?:s?nan[0-9]*|inf|infinity)", re.IGNORECASE)
_GRAMMAR_HINT = (
    'a decimal string of ASCII digits such as "1.5", "-2" or "2.5e-3" '
    '(no "+" sign, spaces or "_"; an exponent of at most 3 digits)'
)


def shorten(text: str) -> str:
    """A user's value as an error message may quote it: cut after EXCERPT_LENGTH characters,
    so that a message never echoes a huge input."""
    if len(text) <= EXCERPT_LENGTH:
        return text
    return f"{text[:EXCERPT_LENGTH]}\N{HORIZONTAL ELLIPSIS}"


def parse_decimal(text: str, field: str, *, required: bool = True) -> Decimal | None:
    """Parses a wire decimal (see the module docstring); raises ValueError naming the field,
    the rule broken and (cut short) what was given. Blank text is missing: an error when
    `required`, else None."""
    if not text.strip():
        if required:
            raise ValueError(f'{field} is required (a decimal string such as "1.5")')
        return None
    given = f"got {shorten(text)!r}"
    if len(text) > MAX_TEXT_LENGTH:
        raise ValueError(f"{field} must be at most {MAX_TEXT_LENGTH} characters, {given}")
    if _NOT_FINITE.fullmatch(text):
        raise ValueError(f"{field} must be a finite number, {given}")
    if not _GRAMMAR.fullmatch(text):
        raise ValueError(f"{field} must be {_GRAMMAR_HINT}, {given}")
    value = Decimal(text)  # exact: construction never rounds
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite by the grammar
    if len(digits) > MAX_SIGNIFICANT_DIGITS:
        raise ValueError(
            f"{field} must have at most {MAX_SIGNIFICANT_DIGITS} significant digits, {given}"
        )
    if value.adjusted() > MAX_ADJUSTED_EXPONENT or exponent < -MAX_DECIMAL_PLACES:
        raise ValueError(
            f"{field} is out of range: at most {MAX_ADJUSTED_EXPONENT + 1} digits before the "
            f"decimal point and {MAX_DECIMAL_PLACES} after it, {given}"
        )
    return value


def format_decimal(value: Decimal | None) -> str:
    """Plain notation, every digit kept, no exponent or trailing zeros; empty for None."""
    if value is None:
        return ""
    if value == 0:
        return "0"  # also for -0 and 0E-5
    text = format(value, "f")  # exact: formatting ignores the context's precision
    return text.rstrip("0").rstrip(".") if "." in text else text


def multiply(a: Decimal, b: Decimal) -> Decimal:
    """The exact product: a context as wide as both coefficients together never rounds."""
    digits = len(a.as_tuple().digits) + len(b.as_tuple().digits)
    return _context(digits).multiply(a, b)


def quantize(value: Decimal, decimals: int, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    """`value` rounded to `decimals` places with `rounding`, whatever its size (the default
    context raises once the result needs more than 28 digits)."""
    digits = max(value.adjusted(), 0) + decimals + 2
    return value.quantize(Decimal(1).scaleb(-decimals), rounding=rounding, context=_context(digits))


def is_multiple(value: Decimal, step: Decimal) -> bool:
    """Whether `value` is a whole number of `step`s; exact for any digits (`%` in the default
    context raises once the quotient needs more than 28 digits)."""
    return (Fraction(value) / Fraction(step)).denominator == 1


def whole_multiples(value: Decimal, unit: Decimal) -> int:
    """How many whole `unit`s fit in `value` (rounded toward minus infinity), exactly."""
    return math.floor(Fraction(value) / Fraction(unit))


def _context(digits: int) -> Context:
    return Context(prec=max(digits, 1), Emax=MAX_EMAX, Emin=MIN_EMIN)


# --- precision of derived amounts ----------------------------------------------------------

# An average price shows this many decimals more than the instrument's tick.
AVERAGE_PRICE_EXTRA_DECIMALS = 4


@dataclass(frozen=True)
class Precision:
    """How an instrument's derived amounts are shown on the wire, always the same way.

    Amounts that are exact (quantities, prices, fees, their sums) are shown exactly. Averages
    are divisions, so they are rounded to `average_price_decimals` (the tick's decimals plus
    AVERAGE_PRICE_EXTRA_DECIMALS); P&L, which multiplies an average, is rounded to the quote
    currency's `quote_decimals`. Both round half to even.
    """

    average_price_decimals: int
    quote_decimals: int

    @classmethod
    def of(cls, instrument: Instrument) -> Precision:
        return cls(
            average_price_decimals=decimal_places(instrument.tick_size)
            + AVERAGE_PRICE_EXTRA_DECIMALS,
            quote_decimals=instrument.quote_decimals,
        )

    def average_price(self, value: Decimal | None) -> Decimal | None:
        return None if value is None else quantize(value, self.average_price_decimals)

    def money(self, value: Decimal) -> Decimal:
        return quantize(value, self.quote_decimals)


# For an instrument the caller has no config for: a 0.0001 tick and a 2-decimal currency.
DEFAULT_PRECISION = Precision(average_price_decimals=8, quote_decimals=2)


def decimal_places(value: Decimal) -> int:
    """Digits after the decimal point, trailing zeros ignored: 2 for 0.01 and for 0.010."""
    exponent = value.normalize(_context(len(value.as_tuple().digits))).as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)
