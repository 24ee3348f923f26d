"""Positions and P&L built from fills, with every amount worked out by hand."""

from __future__ import annotations

import copy
import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from position_management.domain.positions import (
    RECENT_TRADE_IDS,
    Fill,
    Position,
    PositionBook,
)
from trading.v1 import types_pb2
from trading_core.config import Instrument
from trading_core.quotes import Quote

T0 = datetime(2024, 1, 2, 9, 30, tzinfo=UTC)
BUY, SELL = types_pb2.SIDE_BUY, types_pb2.SIDE_SELL
_trade_numbers = itertools.count(1)


def fill(
    side: types_pb2.Side.ValueType,
    quantity: str,
    price: str,
    fee: str = "0",
    *,
    account: str = "acct-1",
    instrument: str = "BTC-USD",
    trade_id: str | None = None,
) -> Fill:
    return Fill(
        trade_id=trade_id or f"t-{next(_trade_numbers)}",
        order_id="o-1",
        account_id=account,
        instrument=instrument,
        side=side,
        quantity=Decimal(quantity),
        price=Decimal(price),
        fee=Decimal(fee),
        time=T0,
    )


def position_after(*fills: Fill) -> Position:
    position = Position("acct-1", "BTC-USD")
    for each in fills:
        assert position.apply_fill(each)
    return position


def quote(mid: str, instrument: str = "BTC-USD") -> Quote:
    price = Decimal(mid)
    return Quote(
        instrument, price - 1, price + 1, Decimal(5), Decimal(5), T0 + timedelta(seconds=1)
    )


def test_opening_buy_makes_a_long_at_the_fill_price() -> None:
    position = position_after(fill(BUY, "2", "100"))

    assert (position.quantity, position.average_price) == (Decimal(2), Decimal(100))
    assert position.realized_pnl == Decimal(0)
    assert (position.sequence, position.update_time) == (1, T0)


def test_adding_to_a_long_keeps_the_vwap_average() -> None:
    position = position_after(fill(BUY, "2", "100"), fill(BUY, "1", "103"))

    # (2 * 100 + 1 * 103) / 3 = 101
    assert (position.quantity, position.average_price) == (Decimal(3), Decimal(101))
    assert position.sequence == 2


def test_partial_close_realizes_on_the_closed_quantity_and_keeps_the_average() -> None:
    position = position_after(fill(BUY, "2", "100"), fill(BUY, "1", "103"), fill(SELL, "1", "105"))

    # (105 - 101) * 1 = 4
    assert position.realized_pnl == Decimal(4)
    assert (position.quantity, position.average_price) == (Decimal(2), Decimal(101))


def test_full_close_goes_flat_with_no_average_price() -> None:
    position = position_after(
        fill(BUY, "2", "100"), fill(BUY, "1", "103"), fill(SELL, "1", "105"), fill(SELL, "2", "98")
    )

    # 4 + (98 - 101) * 2 = -2
    assert position.realized_pnl == Decimal(-2)
    assert (position.quantity, position.average_price) == (Decimal(0), None)


def test_sell_through_zero_closes_the_long_and_opens_a_short_at_the_fill_price() -> None:
    position = position_after(fill(BUY, "2", "100"), fill(SELL, "5", "110"))

    # Closes 2 for (110 - 100) * 2 = 20, then is short 3 from 110.
    assert position.realized_pnl == Decimal(20)
    assert (position.quantity, position.average_price) == (Decimal(-3), Decimal(110))


def test_short_gains_when_bought_back_lower_and_averages_when_added_to() -> None:
    position = position_after(fill(SELL, "4", "50"), fill(BUY, "1", "45"))

    # Short 4 from 50, cover 1 at 45: (45 - 50) * 1 * -1 = 5
    assert position.realized_pnl == Decimal(5)
    assert (position.quantity, position.average_price) == (Decimal(-3), Decimal(50))

    position.apply_fill(fill(SELL, "1", "58"))

    # (3 * 50 + 1 * 58) / 4 = 52
    assert (position.quantity, position.average_price) == (Decimal(-4), Decimal(52))


def test_buy_through_zero_closes_the_short_and_opens_a_long() -> None:
    position = position_after(fill(SELL, "1", "50"), fill(BUY, "3", "60"))

    # (60 - 50) * 1 * -1 = -10; long 2 from 60.
    assert position.realized_pnl == Decimal(-10)
    assert (position.quantity, position.average_price) == (Decimal(2), Decimal(60))


def test_a_fill_with_an_applied_trade_id_is_refused_and_changes_nothing() -> None:
    position = position_after(fill(BUY, "2", "100", "0.2", trade_id="t-same"))
    before = copy.deepcopy(position)

    assert position.apply_fill(fill(BUY, "2", "100", "0.2", trade_id="t-same")) is False
    assert position == before


def test_a_fill_for_another_account_is_an_error() -> None:
    position = Position("acct-1", "BTC-USD")

    with pytest.raises(ValueError, match="acct-2/BTC-USD"):
        position.apply_fill(fill(BUY, "1", "100", account="acct-2"))


def test_fees_accumulate_apart_from_realized_pnl_and_net_realized_subtracts_them() -> None:
    position = position_after(fill(BUY, "2", "100", "0.2"), fill(SELL, "2", "101", "0.202"))

    assert position.realized_pnl == Decimal(2)
    assert position.fees == Decimal("0.402")
    assert position.net_realized_pnl == Decimal("1.598")


def test_unrealized_pnl_is_mark_minus_average_times_signed_quantity() -> None:
    long = position_after(fill(BUY, "2", "100"))
    short = position_after(fill(SELL, "3", "50"))

    long.mark(Decimal("101.5"), T0)
    short.mark(Decimal("48"), T0)

    assert long.unrealized_pnl == Decimal("3.0")
    assert short.unrealized_pnl == Decimal(6)  # (48 - 50) * -3


def test_unrealized_pnl_is_zero_when_unmarked_or_flat() -> None:
    unmarked = position_after(fill(BUY, "2", "100"))
    flat = position_after(fill(BUY, "2", "100"), fill(SELL, "2", "100"))
    flat.mark(Decimal(120), T0)

    assert unmarked.unrealized_pnl == Decimal(0)
    assert flat.unrealized_pnl == Decimal(0)


def test_marking_changes_the_mark_and_time_but_never_the_sequence() -> None:
    position = position_after(fill(BUY, "1", "100"))
    later = T0 + timedelta(seconds=5)

    assert position.mark(Decimal(101), later) is True
    assert position.mark(Decimal(101), later) is False
    assert (position.mark_price, position.sequence, position.update_time) == (
        Decimal(101),
        1,
        later,
    )


def test_update_time_never_goes_backwards_when_a_fill_is_older_than_the_last_mark() -> None:
    position = position_after(fill(BUY, "1", "100"))
    later = T0 + timedelta(seconds=5)
    position.mark(Decimal(101), later)

    position.apply_fill(fill(BUY, "1", "100", trade_id="late"))

    assert (position.sequence, position.update_time) == (2, later)


def test_position_converts_to_proto_with_decimal_strings() -> None:
    position = position_after(fill(BUY, "2", "100", "0.2"))
    position.mark(Decimal("100.25"), T0)

    proto = position.to_proto()

    assert (proto.account_id, proto.instrument) == ("acct-1", "BTC-USD")
    assert (proto.quantity, proto.average_price, proto.mark_price) == ("2", "100", "100.25")
    assert (proto.realized_pnl, proto.unrealized_pnl, proto.fees) == ("0", "0.5", "0.2")
    assert proto.sequence == 1
    assert proto.update_time.ToDatetime(tzinfo=UTC) == T0


def test_flat_unmarked_position_proto_leaves_prices_empty() -> None:
    proto = position_after(fill(BUY, "1", "100"), fill(SELL, "1", "100")).to_proto()

    assert (proto.quantity, proto.average_price, proto.mark_price) == ("0", "", "")


def test_book_applies_a_fill_once_and_returns_none_for_the_repeat() -> None:
    book = PositionBook()
    first = fill(BUY, "1", "100")

    position = book.apply_fill(first)

    assert position is not None
    assert position.quantity == Decimal(1)
    assert book.apply_fill(first) is None
    assert book.get("acct-1", "BTC-USD") is position
    assert book.get("acct-1", "ETH-USD") is None


def test_book_marks_every_position_of_the_instrument_at_the_mid_and_returns_the_changed_ones() -> (
    None
):
    book = PositionBook()
    book.apply_fill(fill(BUY, "1", "100", account="acct-1"))
    book.apply_fill(fill(SELL, "2", "100", account="acct-2"))
    book.apply_fill(fill(BUY, "1", "10", account="acct-1", instrument="ETH-USD"))

    marked = book.mark(quote("103"))

    assert [(p.account_id, p.instrument) for p in marked] == [
        ("acct-1", "BTC-USD"),
        ("acct-2", "BTC-USD"),
    ]
    assert [p.unrealized_pnl for p in marked] == [Decimal(3), Decimal(-6)]
    assert book.mark(quote("103")) == []
    assert book.mark(quote("1", instrument="SOL-USD")) == []


def test_book_lists_positions_sorted_by_account_then_instrument_and_filters_by_account() -> None:
    book = PositionBook()
    for account, instrument in [
        ("b", "ETH-USD"),
        ("a", "SOL-USD"),
        ("b", "BTC-USD"),
        ("a", "BTC-USD"),
    ]:
        book.apply_fill(fill(BUY, "1", "10", account=account, instrument=instrument))

    everything = [(p.account_id, p.instrument) for p in book.positions()]
    only_b = [(p.account_id, p.instrument) for p in book.positions("b")]

    assert everything == [("a", "BTC-USD"), ("a", "SOL-USD"), ("b", "BTC-USD"), ("b", "ETH-USD")]
    assert only_b == [("b", "BTC-USD"), ("b", "ETH-USD")]


# --- fixed precision on the wire (B7) -------------------------------------------------------

BTC_USD = Instrument(
    symbol="BTC-USD",
    tick_size=Decimal("0.01"),
    step_size=Decimal("0.0001"),
    initial_price=Decimal(60000),
)
ETH_BTC = Instrument(
    symbol="ETH-BTC",
    tick_size=Decimal("0.00001"),
    step_size=Decimal("0.001"),
    initial_price=Decimal("0.05"),
    quote_decimals=8,
)


def test_average_and_pnl_are_rounded_on_the_wire_to_the_instruments_precision() -> None:
    book = PositionBook([BTC_USD])
    book.apply_fill(fill(BUY, "1", "100"))
    book.apply_fill(fill(BUY, "2", "100.01"))
    position = book.apply_fill(fill(SELL, "1", "101"))
    assert position is not None
    position.mark(Decimal(102), T0)

    proto = position.to_proto()

    # Average 100.00666..., realized 0.99333..., unrealized 3.98666...: tick decimals + 4 for
    # the average, the quote currency's 2 for P&L, half-even.
    assert (proto.average_price, proto.realized_pnl, proto.unrealized_pnl) == (
        "100.006667",
        "0.99",
        "3.99",
    )


def test_pnl_keeps_full_precision_internally_so_rounding_never_compounds() -> None:
    position = position_after(fill(BUY, "1", "100"), fill(BUY, "2", "100.01"))
    for _ in range(3):
        position.apply_fill(fill(SELL, "0.5", "101"))
    average = Decimal("300.02") / 3
    assert position.realized_pnl == (Decimal(101) - average) * Decimal("1.5")
    assert position.to_proto().realized_pnl == "1.49"  # not 1.50, three fills rounded to 0.50


def test_noise_of_a_28_digit_division_is_not_shown() -> None:
    position = Position("acct-1", "BTC-USD", realized_pnl=Decimal("65.4370000000000000000000003"))
    position.average_price = Decimal("59307.07571428571428571428571")
    position.quantity = Decimal(1)
    proto = position.to_proto()
    assert (proto.average_price, proto.realized_pnl) == ("59307.07571429", "65.44")


def test_quote_currency_with_eight_decimals_shows_pnl_to_eight_decimals() -> None:
    book = PositionBook([ETH_BTC])
    book.apply_fill(fill(BUY, "1", "0.05", instrument="ETH-BTC"))
    book.apply_fill(fill(BUY, "2", "0.05001", instrument="ETH-BTC"))
    position = book.apply_fill(fill(SELL, "1", "0.051", instrument="ETH-BTC"))
    assert position is not None
    proto = position.to_proto()
    # Average 0.0500066666...: 5 tick decimals + 4.
    assert (proto.average_price, proto.realized_pnl) == ("0.050006667", "0.00099333")


def test_position_in_an_instrument_the_book_was_not_given_uses_the_default_precision() -> None:
    position = PositionBook([ETH_BTC]).apply_fill(fill(BUY, "3", "1"))
    assert position is not None
    position.apply_fill(fill(BUY, "4", "1.0001"))
    assert position.to_proto().average_price == "1.00005714"  # 8 decimals


def test_a_position_remembers_only_its_latest_trade_ids_and_still_refuses_their_repeats() -> None:
    position = position_after(fill(BUY, "1", "100", trade_id="t-first"))
    for number in range(RECENT_TRADE_IDS):
        position.apply_fill(fill(BUY, "1", "100", trade_id=f"t-later-{number}"))

    assert len(position.recent_trade_ids) == RECENT_TRADE_IDS
    assert "t-first" not in position.recent_trade_ids  # refused by the journal's fills instead
    last = f"t-later-{RECENT_TRADE_IDS - 1}"
    assert position.apply_fill(fill(BUY, "1", "100", trade_id=last)) is False
