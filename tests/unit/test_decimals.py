"""The wire decimal: one strict, bounded grammar; exact formatting and arithmetic."""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal

import pytest
from trading_core.config import Instrument
from trading_core.decimals import (
    Precision,
    decimal_places,
    format_decimal,
    is_multiple,
    multiply,
    parse_decimal,
    quantize,
    shorten,
    whole_multiples,
)


def parse(text: str) -> Decimal:
    value = parse_decimal(text, "quantity")
    assert value is not None
    return value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", "1"),
        ("-2.50", "-2.50"),
        ("0.0001", "0.0001"),
        ("1e3", "1E+3"),
        ("2.5E-3", "0.0025"),
        ("1e+2", "1E+2"),
        ("007", "7"),
        ("123456789012345678901.123456789", "123456789012345678901.123456789"),
        ("0.00000000000000000001", "1E-20"),
        ("100000000000000000000", "1E+20"),
    ],
)
def test_text_in_the_grammar_parses_to_its_exact_value(text: str, expected: str) -> None:
    assert parse(text) == Decimal(expected)


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("1_0", "ASCII digits"),
        ("+1", "ASCII digits"),
        ("1 0", "ASCII digits"),
        (" 1", "ASCII digits"),
        ("1.", "ASCII digits"),
        (".5", "ASCII digits"),
        ("1,5", "ASCII digits"),
        ("\uff11\uff10", "ASCII digits"),  # full-width 10
        ("\u0661\u0660", "ASCII digits"),  # Arabic-Indic 10
        ("1e1000", "ASCII digits"),  # a 4-digit exponent
        ("1e-999999", "ASCII digits"),
        ("1e-10000000", "ASCII digits"),
        ("NaN", "finite"),
        ("-Infinity", "finite"),
        ("inf", "finite"),
        ("1" * 41, "at most 40 characters"),
        ("1234567890123456789012345678901", "at most 30 significant digits"),
        ("1e21", "out of range"),
        ("1e-999", "out of range"),
        ("0.0000000000000000000000000001", "out of range"),
        ("0e-999", "out of range"),
        ("1.000000000000000000000", "out of range"),  # 21 decimal places, even of zeros
    ],
)
def test_text_outside_the_grammar_is_a_value_error_naming_the_field_and_the_rule(
    text: str, rule: str
) -> None:
    with pytest.raises(ValueError, match=rule) as refused:
        parse_decimal(text, "quantity")
    assert str(refused.value).startswith("quantity ")


@pytest.mark.parametrize("text", ["", "   "])
def test_blank_text_is_required_or_none(text: str) -> None:
    with pytest.raises(ValueError, match="quantity is required"):
        parse_decimal(text, "quantity")
    assert parse_decimal(text, "limit_price", required=False) is None


def test_error_quotes_at_most_32_characters_of_a_huge_input() -> None:
    huge = "9" * 10_000
    with pytest.raises(ValueError, match="at most 40 characters") as refused:
        parse_decimal(huge, "quantity")
    message = str(refused.value)
    assert len(message) < 150
    assert "9" * 32 + "\N{HORIZONTAL ELLIPSIS}" in message
    assert "9" * 33 not in message


def test_shorten_keeps_short_text_and_cuts_long_text_with_an_ellipsis() -> None:
    assert shorten("acct-1") == "acct-1"
    assert shorten("x" * 32) == "x" * 32
    assert shorten("x" * 33) == "x" * 32 + "\N{HORIZONTAL ELLIPSIS}"


@pytest.mark.parametrize(
    ("text", "formatted"),
    [
        ("1.2300", "1.23"),
        ("1E+3", "1000"),
        ("2.5E-3", "0.0025"),
        ("-0", "0"),
        ("0E-5", "0"),
        ("10", "10"),
        ("123456789012345678901234567890", "123456789012345678901234567890"),
        ("1.23456789012345678901234567891E-20", "0." + "0" * 19 + "123456789012345678901234567891"),
    ],
)
def test_format_decimal_keeps_every_digit_without_exponent_or_trailing_zeros(
    text: str, formatted: str
) -> None:
    assert format_decimal(Decimal(text)) == formatted


def test_a_33_digit_value_is_formatted_with_all_its_digits_not_rounded_to_28() -> None:
    value = Decimal("123456789012345678901234567890123")
    assert format_decimal(value) == "123456789012345678901234567890123"


def test_every_accepted_value_formats_to_text_that_parses_back_to_it() -> None:
    for text in ("1.234567891e-11", "-123456789012345678901.123456789", "9.99e20"):
        value = parse(text)
        assert parse(format_decimal(value)) == value


def test_is_multiple_is_exact_where_the_quotient_needs_more_than_28_digits() -> None:
    step = Decimal("0.00000000000000000001")
    assert is_multiple(Decimal("123456789012345678901234567890"), step)
    assert not is_multiple(Decimal("1234567890123456.78901234567891"), Decimal("0.0000000000002"))
    assert is_multiple(Decimal(0), Decimal("0.01"))
    assert not is_multiple(Decimal("0.015"), Decimal("0.01"))


def test_whole_multiples_rounds_toward_minus_infinity_exactly() -> None:
    assert whole_multiples(Decimal(1000), Decimal("6.0001")) == 166
    assert whole_multiples(Decimal(1000), Decimal("1e-40")) == 10**43
    assert whole_multiples(Decimal(-1), Decimal(3)) == -1


def test_multiply_keeps_every_digit_of_the_product() -> None:
    a = Decimal("123456789012345678901234567890")
    product = multiply(a, a)
    assert product == Decimal(int(a) ** 2)
    assert len(product.as_tuple().digits) == 59


def test_quantize_rounds_half_even_by_default_and_works_past_28_digits() -> None:
    assert quantize(Decimal("65.4370000000000000000000003"), 2) == Decimal("65.44")
    assert quantize(Decimal("0.125"), 2) == Decimal("0.12")
    assert quantize(Decimal("30.000005"), 2, ROUND_CEILING) == Decimal("30.01")
    assert quantize(Decimal("1e30") + Decimal("0.005"), 2) == Decimal("1e30")


def test_decimal_places_ignore_trailing_zeros() -> None:
    assert [decimal_places(Decimal(t)) for t in ("0.01", "0.010", "1", "1E+2", "0.001")] == [
        2,
        2,
        0,
        0,
        3,
    ]


def test_precision_of_an_instrument_is_its_tick_decimals_plus_four_and_its_quote_decimals() -> None:
    sol = Instrument(
        symbol="SOL-USD",
        tick_size=Decimal("0.001"),
        step_size=Decimal("0.01"),
        initial_price=Decimal(150),
    )
    eth_btc = sol.model_copy(update={"symbol": "ETH-BTC", "quote_decimals": 8})
    assert Precision.of(sol) == Precision(average_price_decimals=7, quote_decimals=2)
    assert Precision.of(eth_btc).quote_decimals == 8


def test_precision_rounds_averages_and_money_half_even_to_fixed_decimals() -> None:
    precision = Precision(average_price_decimals=6, quote_decimals=2)
    assert precision.average_price(Decimal("59307.07571428571428571428571")) == Decimal(
        "59307.075714"
    )
    assert precision.average_price(None) is None
    assert precision.money(Decimal("65.4370000000000000000000003")) == Decimal("65.44")
