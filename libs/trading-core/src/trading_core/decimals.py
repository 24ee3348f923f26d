"""Exact money: decimal strings on the wire, `Decimal` in Python, never float."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

ZERO = Decimal(0)


def parse_decimal(text: str, field: str, *, required: bool = True) -> Decimal | None:
    """Parses a decimal string; raises ValueError naming the field when it is not one."""
    text = text.strip()
    if not text:
        if required:
            raise ValueError(f'{field} is required (a decimal string such as "1.5")')
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f'{field} must be a decimal string such as "1.5", got {text!r}') from None
    if not value.is_finite():
        raise ValueError(f"{field} must be a finite number, got {text!r}")
    return value


def format_decimal(value: Decimal | None) -> str:
    """Plain notation without exponent or trailing zeros; empty for None."""
    if value is None:
        return ""
    if value == 0:
        return "0"
    text = format(value.normalize(), "f")
    return text


def is_multiple(value: Decimal, step: Decimal) -> bool:
    return value % step == 0
