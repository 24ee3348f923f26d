"""The paper-trading matching engine: every path an order can take, with prices worked by hand.

Setting: BTC-USD on a 0.01 tick, slippage 1 bp, fee 10 bp; the quote is 59994 / 60006, 5 each side.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from execution_router.domain.paper_venue import PaperVenue
from execution_router.domain.venue_types import Report, VenueOrder
from hypothesis import given, settings
from hypothesis import strategies as st
from trading.v1 import types_pb2
from trading_core.config import Instrument, SimulationVenue
from trading_core.quotes import Quote

T0 = datetime(2024, 1, 2, 9, 30, tzinfo=UTC)
BTC = Instrument(
    symbol="BTC-USD",
    tick_size=Decimal("0.01"),
    step_size=Decimal("0.0001"),
    initial_price=Decimal("60000"),
)
SETTINGS = SimulationVenue(slippage_bps=Decimal("1"), fill_delay_ms=0, fee_bps=Decimal("10"))
BUY, SELL = types_pb2.SIDE_BUY, types_pb2.SIDE_SELL
GTC, IOC = types_pb2.TIME_IN_FORCE_GTC, types_pb2.TIME_IN_FORCE_IOC
ACCEPTED = types_pb2.EXECUTION_TYPE_ACCEPTED
PARTIALLY_FILLED = types_pb2.EXECUTION_TYPE_PARTIALLY_FILLED
FILLED = types_pb2.EXECUTION_TYPE_FILLED
REJECTED = types_pb2.EXECUTION_TYPE_REJECTED
CANCELED = types_pb2.EXECUTION_TYPE_CANCELED
EXPIRED = types_pb2.EXECUTION_TYPE_EXPIRED
CANCEL_REJECTED = types_pb2.EXECUTION_TYPE_CANCEL_REJECTED


def quote(
    bid: str = "59994", ask: str = "60006", size: str = "5", instrument: str = "BTC-USD"
) -> Quote:
    return Quote(instrument, Decimal(bid), Decimal(ask), Decimal(size), Decimal(size), T0)


def market(
    order_id: str, side: types_pb2.Side.ValueType, quantity: str, instrument: str = "BTC-USD"
) -> VenueOrder:
    return VenueOrder(
        order_id,
        "acct-1",
        instrument,
        side,
        types_pb2.ORDER_TYPE_MARKET,
        GTC,
        Decimal(quantity),
        None,
    )


def limit(
    order_id: str,
    side: types_pb2.Side.ValueType,
    quantity: str,
    price: str,
    time_in_force: types_pb2.TimeInForce.ValueType = GTC,
) -> VenueOrder:
    return VenueOrder(
        order_id,
        "acct-1",
        "BTC-USD",
        side,
        types_pb2.ORDER_TYPE_LIMIT,
        time_in_force,
        Decimal(quantity),
        Decimal(price),
    )


def new_venue() -> PaperVenue:
    counter = itertools.count(1)
    return PaperVenue(SETTINGS, {"BTC-USD": BTC}, new_id=lambda: f"id-{next(counter)}")


@pytest.fixture
def venue() -> PaperVenue:
    return new_venue()


def kinds(reports: list[Report]) -> list[int]:
    return [r.execution_type for r in reports]


def test_market_buy_fills_fully_at_ask_plus_slippage_rounded_up_with_fee_rounded_up_to_cents(
    venue: PaperVenue,
) -> None:
    reports = venue.submit(market("o-1", BUY, "0.5"), quote(), T0)

    # 60006 * 1.0001 = 60012.0006 -> up to 60012.01; fee 0.5 * 60012.01 * 10 / 10000 = 30.006005
    # -> up to the cent, 30.01.
    assert reports == [
        Report(
            execution_type=ACCEPTED,
            order_id="o-1",
            venue_order_id="id-1",
            side=BUY,
            cumulative_quantity=Decimal(0),
            leaves_quantity=Decimal("0.5"),
            average_price=None,
        ),
        Report(
            execution_type=FILLED,
            order_id="o-1",
            venue_order_id="id-1",
            side=BUY,
            trade_id="id-2",
            last_quantity=Decimal("0.5"),
            last_price=Decimal("60012.01"),
            fee=Decimal("30.01"),
            cumulative_quantity=Decimal("0.5"),
            leaves_quantity=Decimal(0),
            average_price=Decimal("60012.01"),
        ),
    ]
    assert venue.open_orders() == []


def test_market_sell_fills_beyond_displayed_size_at_bid_minus_slippage_rounded_down(
    venue: PaperVenue,
) -> None:
    _, fill = venue.submit(market("o-1", SELL, "7"), quote(), T0)

    # 59994 * 0.9999 = 59988.0006 -> down to 59988.00; fee 7 * 59988 * 0.001 = 419.916 -> 419.92.
    assert fill.execution_type == FILLED
    assert (fill.last_quantity, fill.last_price) == (Decimal(7), Decimal("59988.00"))
    assert fill.fee == Decimal("419.92")
    assert (fill.cumulative_quantity, fill.leaves_quantity) == (Decimal(7), Decimal(0))


def test_market_order_with_no_quote_is_rejected_with_a_reason(venue: PaperVenue) -> None:
    (report,) = venue.submit(market("o-1", BUY, "1"), None, T0)

    assert report.execution_type == REJECTED
    assert "no quote for BTC-USD" in report.message
    assert report.venue_order_id == ""


def test_order_for_an_unknown_instrument_is_rejected_naming_the_tradable_ones(
    venue: PaperVenue,
) -> None:
    (report,) = venue.submit(market("o-1", BUY, "1", instrument="DOGE-USD"), quote(), T0)

    assert report.execution_type == REJECTED
    assert "'DOGE-USD'" in report.message
    assert "BTC-USD" in report.message


def test_order_with_non_positive_quantity_is_rejected(venue: PaperVenue) -> None:
    (report,) = venue.submit(market("o-1", BUY, "0"), quote(), T0)

    assert report.execution_type == REJECTED
    assert "quantity must be positive" in report.message


def test_crossing_limit_buy_fills_at_the_ask_not_its_limit(venue: PaperVenue) -> None:
    reports = venue.submit(limit("o-1", BUY, "3", "60010"), quote(), T0)

    assert kinds(reports) == [ACCEPTED, FILLED]
    # Price improvement, no slippage: 3 at 60006; fee 3 * 60006 * 0.001 = 180.018 -> 180.02.
    assert (reports[1].last_price, reports[1].fee) == (Decimal("60006"), Decimal("180.02"))
    assert venue.open_orders() == []


def test_crossing_limit_sell_fills_at_the_bid(venue: PaperVenue) -> None:
    reports = venue.submit(limit("o-1", SELL, "2", "59990"), quote(), T0)

    assert kinds(reports) == [ACCEPTED, FILLED]
    assert (reports[1].last_quantity, reports[1].last_price) == (Decimal(2), Decimal("59994"))


def test_crossing_gtc_limit_larger_than_displayed_size_partially_fills_and_rests(
    venue: PaperVenue,
) -> None:
    order = limit("o-1", BUY, "8", "60010")

    reports = venue.submit(order, quote(), T0)

    assert kinds(reports) == [ACCEPTED, PARTIALLY_FILLED]
    assert (reports[1].last_quantity, reports[1].leaves_quantity) == (Decimal(5), Decimal(3))
    assert [r.order_id for r in venue.open_orders()] == [order.order_id]


def test_crossing_ioc_limit_larger_than_displayed_size_fills_what_is_shown_and_expires_the_rest(
    venue: PaperVenue,
) -> None:
    reports = venue.submit(limit("o-1", BUY, "8", "60010", IOC), quote(), T0)

    assert kinds(reports) == [ACCEPTED, PARTIALLY_FILLED, EXPIRED]
    expired = reports[2]
    assert "unfilled remainder 3 expired" in expired.message
    assert (expired.cumulative_quantity, expired.leaves_quantity) == (Decimal(5), Decimal(0))
    assert expired.average_price == Decimal("60006")
    assert venue.open_orders() == []


def test_non_crossing_ioc_limit_expires_without_a_fill(venue: PaperVenue) -> None:
    reports = venue.submit(limit("o-1", BUY, "1", "60000", IOC), quote(), T0)

    assert kinds(reports) == [ACCEPTED, EXPIRED]
    assert reports[1].cumulative_quantity == Decimal(0)
    assert venue.open_orders() == []


def test_non_crossing_gtc_limit_is_only_accepted_and_rests(venue: PaperVenue) -> None:
    order = limit("o-1", SELL, "1", "60100")

    reports = venue.submit(order, quote(), T0)

    assert kinds(reports) == [ACCEPTED]
    assert [r.order_id for r in venue.open_orders()] == [order.order_id]


def test_gtc_limit_with_no_quote_rests(venue: PaperVenue) -> None:
    reports = venue.submit(limit("o-1", BUY, "1", "60000"), None, T0)

    assert kinds(reports) == [ACCEPTED]
    assert len(venue.open_orders()) == 1


def test_resting_limit_fills_at_the_touch_when_a_later_quote_crosses_it(venue: PaperVenue) -> None:
    venue.submit(limit("o-1", BUY, "2", "60000"), quote(), T0)

    (fill,) = venue.on_quote(quote(bid="59990", ask="59999"), T0)

    assert fill.execution_type == FILLED
    assert (fill.last_quantity, fill.last_price) == (Decimal(2), Decimal("59999"))
    assert fill.fee == Decimal("120.00")  # 2 * 59999 * 0.001 = 119.998, up to the cent
    assert venue.open_orders() == []


def test_resting_limit_is_untouched_by_a_quote_that_does_not_cross_or_is_for_another_instrument(
    venue: PaperVenue,
) -> None:
    venue.submit(limit("o-1", BUY, "2", "60000"), quote(), T0)

    assert venue.on_quote(quote(bid="59995", ask="60001"), T0) == []
    assert venue.on_quote(quote(bid="1", ask="2", instrument="ETH-USD"), T0) == []
    assert len(venue.open_orders()) == 1


def test_partial_fill_then_resting_fill_reports_the_vwap(venue: PaperVenue) -> None:
    venue.submit(limit("o-1", BUY, "8", "60010"), quote(), T0)  # 5 at 60006

    (fill,) = venue.on_quote(quote(bid="59990", ask="59999"), T0)  # 3 at 59999

    # (5 * 60006 + 3 * 59999) / 8 = 480027 / 8 = 60003.375
    assert fill.execution_type == FILLED
    assert (fill.cumulative_quantity, fill.leaves_quantity) == (Decimal(8), Decimal(0))
    assert fill.average_price == Decimal("60003.375")


def test_resting_orders_share_the_displayed_size_in_time_priority(venue: PaperVenue) -> None:
    venue.submit(limit("first", BUY, "4", "60000"), quote(), T0)
    venue.submit(limit("second", BUY, "4", "60000"), quote(), T0)
    venue.submit(limit("seller", SELL, "1", "60100"), quote(), T0)

    first, second = venue.on_quote(quote(bid="59990", ask="59999"), T0)

    assert (first.order_id, first.execution_type, first.last_quantity) == (
        "first",
        FILLED,
        Decimal(4),
    )
    assert (second.order_id, second.execution_type, second.last_quantity) == (
        "second",
        PARTIALLY_FILLED,
        Decimal(1),
    )
    assert second.leaves_quantity == Decimal(3)
    assert [o.order_id for o in venue.open_orders()] == ["second", "seller"]


def test_every_fill_has_its_own_trade_id(venue: PaperVenue) -> None:
    venue.submit(limit("o-1", BUY, "12", "60000"), quote(), T0)

    fills = [*venue.on_quote(quote(ask="59999"), T0), *venue.on_quote(quote(ask="59998"), T0)]

    assert len(fills) == 2
    assert len({f.trade_id for f in fills}) == 2


def test_cancel_of_a_resting_order_reports_canceled_and_removes_it(venue: PaperVenue) -> None:
    venue.submit(limit("o-1", BUY, "8", "60010"), quote(), T0)  # 5 filled, 3 resting

    (report,) = venue.cancel("o-1", "cancel-1", T0)

    assert report.execution_type == CANCELED
    assert (report.cumulative_quantity, report.leaves_quantity) == (Decimal(5), Decimal(0))
    assert "3 unfilled" in report.message
    assert venue.open_orders() == []
    (again,) = venue.cancel("o-1", "cancel-1", T0)
    assert again.execution_type == CANCEL_REJECTED


def test_cancel_of_an_unknown_or_filled_order_is_rejected_with_its_request_id(
    venue: PaperVenue,
) -> None:
    venue.submit(market("filled", BUY, "1"), quote(), T0)

    for order_id in ("filled", "never-seen"):
        (report,) = venue.cancel(order_id, "cancel-2", T0)
        assert report.execution_type == CANCEL_REJECTED
        assert report.request_id == "cancel-2"


def test_duplicate_submit_returns_nothing_and_creates_nothing(venue: PaperVenue) -> None:
    order = limit("o-1", BUY, "1", "60000")
    venue.submit(order, quote(), T0)

    assert venue.submit(order, quote(), T0) == []
    assert [r.order_id for r in venue.open_orders()] == [order.order_id]


def test_duplicate_of_a_rejected_order_returns_nothing(venue: PaperVenue) -> None:
    venue.submit(market("o-1", BUY, "1"), None, T0)

    assert venue.submit(market("o-1", BUY, "1"), quote(), T0) == []


def test_fill_report_converts_to_proto_with_decimal_strings(venue: PaperVenue) -> None:
    _, fill = venue.submit(market("o-1", BUY, "0.5"), quote(), T0)

    proto = fill.to_proto("simulation")

    assert proto.venue == "simulation"
    assert proto.execution_type == FILLED
    assert (proto.order_id, proto.venue_order_id, proto.trade_id) == ("o-1", "id-1", "id-2")
    assert (proto.last_quantity, proto.last_price, proto.fee) == ("0.5", "60012.01", "30.01")
    assert (proto.cumulative_quantity, proto.leaves_quantity) == ("0.5", "0")
    assert proto.average_price == "60012.01"
    assert proto.side == BUY


def test_restored_resting_order_fills_its_remainder_on_a_crossing_quote(
    venue: PaperVenue,
) -> None:
    order = limit("buy-1", BUY, "3", "60010")
    venue.restore(
        order,
        venue_order_id="v-1",
        cumulative_quantity=Decimal("1"),
        average_price=Decimal("60000"),
    )
    assert [r.order_id for r in venue.open_orders()] == [order.order_id]
    assert venue.submit(order, None, T0) == []  # already known: a replayed submit is a no-op
    [fill] = venue.on_quote(quote(ask="60006"), T0)
    assert fill.execution_type == FILLED
    assert fill.last_quantity == Decimal("2")
    assert fill.cumulative_quantity == Decimal("3")
    assert fill.average_price == (Decimal("60000") + 2 * Decimal("60006")) / 3


def test_restored_market_order_accepted_before_a_restart_fills_on_the_next_quote(
    venue: PaperVenue,
) -> None:
    order = market("buy-1", BUY, "1")
    venue.restore(order, venue_order_id="v-1", cumulative_quantity=Decimal(0), average_price=None)
    [fill] = venue.on_quote(quote(ask="60006"), T0)
    assert fill.execution_type == FILLED
    assert fill.last_quantity == Decimal("1")
    assert fill.last_price == Decimal("60012.01")  # the ask, 1 bp of slippage, rounded up
    assert venue.open_orders() == []


def test_market_buy_beyond_its_protection_price_expires_unfilled(venue: PaperVenue) -> None:
    # ask 60006 + 1 bp slippage = 60012.0006, rounded up to 60012.01: beyond 60010.
    order = replace(market("buy-1", BUY, "1"), protection_price=Decimal("60010"))
    reports = venue.submit(order, quote(), T0)
    assert kinds(reports) == [ACCEPTED, EXPIRED]
    assert "price protection" in reports[-1].message
    assert "60012.01" in reports[-1].message
    assert reports[-1].cumulative_quantity == 0


def test_market_sell_within_its_protection_price_fills(venue: PaperVenue) -> None:
    # bid 59994 - 1 bp = 59988.0006, rounded down to 59988.00: not below 59980.
    order = replace(market("sell-1", SELL, "1"), protection_price=Decimal("59980"))
    reports = venue.submit(order, quote(), T0)
    assert kinds(reports) == [ACCEPTED, FILLED]
    assert reports[-1].last_price == Decimal("59988.00")


@pytest.mark.parametrize(
    ("quote_decimals", "expected"), [(2, "0.01"), (6, "0.006001"), (8, "0.0060006"), (0, "1")]
)
def test_fee_is_rounded_up_to_the_quote_currencys_decimals(
    quote_decimals: int, expected: str
) -> None:
    instrument = BTC.model_copy(update={"quote_decimals": quote_decimals})
    venue = PaperVenue(SETTINGS, {"BTC-USD": instrument}, new_id=lambda: "id")
    _, fill = venue.submit(limit("o-1", BUY, "0.0001", "60010"), quote(), T0)
    # 0.0001 * 60006 * 0.001 = 0.0060006
    assert fill.fee == Decimal(expected)


# Venue form: FOK, DAY/GTD expiry, post-only, market-to-limit, icebergs -----------------------

FOK = types_pb2.TIME_IN_FORCE_FOK
DAY, GTD = types_pb2.TIME_IN_FORCE_DAY, types_pb2.TIME_IN_FORCE_GTD
EXPIRES = T0 + timedelta(hours=1)


def market_to_limit(
    order_id: str,
    side: types_pb2.Side.ValueType,
    quantity: str,
    time_in_force: types_pb2.TimeInForce.ValueType = GTC,
) -> VenueOrder:
    return replace(
        market(order_id, side, quantity),
        order_type=types_pb2.ORDER_TYPE_MARKET_TO_LIMIT,
        time_in_force=time_in_force,
    )


def dated(order: VenueOrder, time_in_force: types_pb2.TimeInForce.ValueType = GTD) -> VenueOrder:
    return replace(order, time_in_force=time_in_force, expire_time=EXPIRES)


def fills(reports: list[Report]) -> list[tuple[Decimal | None, Decimal | None]]:
    return [(r.last_quantity, r.last_price) for r in reports if r.trade_id]


def test_fok_limit_that_crosses_a_touch_showing_all_of_it_fills_at_the_touch(
    venue: PaperVenue,
) -> None:
    reports = venue.submit(limit("o-1", BUY, "5", "60010", FOK), quote(), T0)

    assert kinds(reports) == [ACCEPTED, FILLED]
    assert fills(reports) == [(Decimal(5), Decimal("60006"))]


def test_fok_limit_larger_than_the_displayed_size_expires_naming_what_was_available(
    venue: PaperVenue,
) -> None:
    reports = venue.submit(limit("o-1", BUY, "6", "60010", FOK), quote(), T0)

    assert kinds(reports) == [ACCEPTED, EXPIRED]
    expired = reports[1]
    assert expired.message == (
        "fill-or-kill: 6 wanted, only 5 available at the ask 60006; nothing filled"
    )
    assert (expired.cumulative_quantity, expired.leaves_quantity) == (Decimal(0), Decimal(0))
    assert venue.open_orders() == []


def test_fok_limit_that_does_not_cross_expires_naming_the_touch(venue: PaperVenue) -> None:
    reports = venue.submit(limit("o-1", SELL, "1", "60000", FOK), quote(), T0)

    assert kinds(reports) == [ACCEPTED, EXPIRED]
    assert reports[1].message == (
        "fill-or-kill: nothing available at 60000 or better, the bid is 59994; nothing filled"
    )


def test_fok_limit_with_no_quote_expires_unfilled(venue: PaperVenue) -> None:
    reports = venue.submit(limit("o-1", BUY, "1", "60000", FOK), None, T0)

    assert kinds(reports) == [ACCEPTED, EXPIRED]
    assert "fill-or-kill" in reports[1].message
    assert venue.open_orders() == []


def test_fok_market_order_fills_beyond_the_displayed_size_as_market_orders_do(
    venue: PaperVenue,
) -> None:
    order = replace(market("o-1", SELL, "7"), time_in_force=FOK)

    reports = venue.submit(order, quote(), T0)

    assert kinds(reports) == [ACCEPTED, FILLED]
    assert fills(reports) == [(Decimal(7), Decimal("59988.00"))]


def test_fok_market_to_limit_fills_all_at_the_touch_or_nothing(venue: PaperVenue) -> None:
    whole = venue.submit(market_to_limit("o-1", BUY, "5", FOK), quote(), T0)
    killed = venue.submit(market_to_limit("o-2", BUY, "5.0001", FOK), quote(), T0)

    assert kinds(whole) == [ACCEPTED, FILLED]
    assert fills(whole) == [(Decimal(5), Decimal("60006"))]  # the touch, no slippage
    assert kinds(killed) == [ACCEPTED, EXPIRED]
    assert killed[1].message == (
        "fill-or-kill: 5.0001 wanted, only 5 available at the ask 60006; nothing filled"
    )
    assert venue.open_orders() == []


prices = st.integers(min_value=599_800, max_value=600_200).map(lambda n: Decimal(n) / 10)
sizes = st.integers(min_value=1, max_value=100).map(lambda n: Decimal(n) / 10)


@settings(max_examples=300, derandomize=True)
@given(
    quantity=sizes,
    limit_price=prices,
    bid=prices,
    spread=st.integers(min_value=1, max_value=200).map(lambda n: Decimal(n) / 100),
    shown=sizes,
    side=st.sampled_from([BUY, SELL]),
    market_to_limit_order=st.booleans(),
)
def test_fok_never_partially_fills(
    quantity: Decimal,
    limit_price: Decimal,
    bid: Decimal,
    spread: Decimal,
    shown: Decimal,
    side: types_pb2.Side.ValueType,
    market_to_limit_order: bool,
) -> None:
    venue = new_venue()
    touch = Quote("BTC-USD", bid, bid + spread, shown, shown, T0)
    order = (
        market_to_limit("o-1", side, str(quantity), FOK)
        if market_to_limit_order
        else limit("o-1", side, str(quantity), str(limit_price), FOK)
    )

    reports = venue.submit(order, touch, T0)

    assert kinds(reports) in ([ACCEPTED, FILLED], [ACCEPTED, EXPIRED])
    final = reports[-1]
    if final.execution_type == FILLED:
        assert final.last_quantity == quantity
        assert shown >= quantity
    else:
        assert final.cumulative_quantity == 0
    assert venue.open_orders() == []
    assert venue.on_quote(replace(touch, ask_size=Decimal(1000), bid_size=Decimal(1000)), T0) == []


def test_post_only_buy_limit_that_would_take_the_ask_is_rejected_naming_both_prices(
    venue: PaperVenue,
) -> None:
    order = replace(limit("o-1", BUY, "1", "60010"), post_only=True)

    (report,) = venue.submit(order, quote(), T0)

    assert report.execution_type == REJECTED
    assert report.message == "post-only: a buy limit at 60010 would take the ask 60006"
    assert venue.open_orders() == []


def test_post_only_sell_limit_at_the_bid_is_rejected(venue: PaperVenue) -> None:
    order = replace(limit("o-1", SELL, "1", "59994"), post_only=True)

    (report,) = venue.submit(order, quote(), T0)

    assert report.message == "post-only: a sell limit at 59994 would take the bid 59994"


def test_post_only_limit_rests_and_fills_at_the_touch_when_a_later_quote_crosses_it(
    venue: PaperVenue,
) -> None:
    order = replace(limit("o-1", BUY, "2", "60000"), post_only=True)

    assert kinds(venue.submit(order, quote(), T0)) == [ACCEPTED]
    (fill,) = venue.on_quote(quote(bid="59990", ask="59999"), T0)

    assert fill.execution_type == FILLED
    assert (fill.last_quantity, fill.last_price) == (Decimal(2), Decimal("59999"))


def test_post_only_limit_with_no_quote_rests(venue: PaperVenue) -> None:
    order = replace(limit("o-1", BUY, "2", "60010"), post_only=True)

    assert kinds(venue.submit(order, None, T0)) == [ACCEPTED]
    assert len(venue.open_orders()) == 1


@pytest.mark.parametrize(
    ("order", "message"),
    [
        (replace(market("o-1", BUY, "1"), post_only=True), "post-only is for limit orders only"),
        (
            replace(limit("o-1", BUY, "1", "60000", IOC), post_only=True),
            "post-only: a post-only order must rest, so it cannot be IOC or FOK",
        ),
    ],
)
def test_post_only_on_a_market_or_immediate_order_is_rejected(
    venue: PaperVenue, order: VenueOrder, message: str
) -> None:
    (report,) = venue.submit(order, quote(), T0)

    assert (report.execution_type, report.message) == (REJECTED, message)


@settings(max_examples=300, derandomize=True)
@given(
    limit_price=prices,
    bid=prices,
    spread=st.integers(min_value=1, max_value=200).map(lambda n: Decimal(n) / 100),
    side=st.sampled_from([BUY, SELL]),
    time_in_force=st.sampled_from([GTC, DAY, GTD]),
)
def test_post_only_never_takes_on_arrival(
    limit_price: Decimal,
    bid: Decimal,
    spread: Decimal,
    side: types_pb2.Side.ValueType,
    time_in_force: types_pb2.TimeInForce.ValueType,
) -> None:
    venue = new_venue()
    order = replace(limit("o-1", side, "1", str(limit_price)), post_only=True)
    if time_in_force != GTC:
        order = dated(order, time_in_force)

    reports = venue.submit(order, quote(str(bid), str(bid + spread)), T0)

    assert kinds(reports) in ([ACCEPTED], [REJECTED])
    assert not any(r.trade_id for r in reports)
    assert (len(venue.open_orders()) == 1) == (reports[0].execution_type == ACCEPTED)


def test_market_to_limit_fills_what_the_touch_shows_at_the_touch_and_rests_the_rest(
    venue: PaperVenue,
) -> None:
    reports = venue.submit(market_to_limit("o-1", BUY, "8"), quote(), T0)

    # No slippage: 5 at the ask, 60006; fee 5 * 60006 * 0.001 = 300.03.
    assert kinds(reports) == [ACCEPTED, PARTIALLY_FILLED]
    assert fills(reports) == [(Decimal(5), Decimal("60006"))]
    assert reports[1].fee == Decimal("300.03")
    assert [r.leaves_quantity for r in venue.open_orders()] == [Decimal(3)]


def test_market_to_limit_remainder_rests_at_its_fill_price_and_fills_when_crossed(
    venue: PaperVenue,
) -> None:
    venue.submit(market_to_limit("o-1", BUY, "8"), quote(), T0)  # 5 at 60006, 3 resting

    assert venue.on_quote(quote(bid="59998", ask="60007"), T0) == []  # above its limit
    (partial,) = venue.on_quote(quote(bid="59990", ask="60006", size="1"), T0)
    (filled,) = venue.on_quote(quote(bid="59990", ask="60001"), T0)

    assert (partial.last_quantity, partial.last_price) == (Decimal(1), Decimal("60006"))
    assert filled.execution_type == FILLED
    assert (filled.last_quantity, filled.last_price) == (Decimal(2), Decimal("60001"))
    assert venue.open_orders() == []


def test_market_to_limit_sell_fills_within_the_shown_size_completely(venue: PaperVenue) -> None:
    reports = venue.submit(market_to_limit("o-1", SELL, "2"), quote(), T0)

    assert kinds(reports) == [ACCEPTED, FILLED]
    assert fills(reports) == [(Decimal(2), Decimal("59994"))]
    assert venue.open_orders() == []


def test_market_to_limit_ioc_expires_its_remainder(venue: PaperVenue) -> None:
    reports = venue.submit(market_to_limit("o-1", BUY, "8", IOC), quote(), T0)

    assert kinds(reports) == [ACCEPTED, PARTIALLY_FILLED, EXPIRED]
    assert "unfilled remainder 3 expired" in reports[2].message
    assert venue.open_orders() == []


def test_market_to_limit_with_no_quote_is_rejected_as_a_market_order_is(
    venue: PaperVenue,
) -> None:
    (report,) = venue.submit(market_to_limit("o-1", BUY, "1"), None, T0)

    assert report.execution_type == REJECTED
    assert "no quote for BTC-USD yet; a market-to-limit order needs a price" in report.message


def test_market_to_limit_with_nothing_shown_at_the_touch_expires_unfilled(
    venue: PaperVenue,
) -> None:
    reports = venue.submit(market_to_limit("o-1", BUY, "1"), quote(size="0"), T0)

    assert kinds(reports) == [ACCEPTED, EXPIRED]
    assert reports[1].message == "market-to-limit: nothing shown at the ask; 1 unfilled"


def test_restored_market_to_limit_rests_at_its_first_fill_price_not_its_average(
    venue: PaperVenue,
) -> None:
    # Filled 5 at 60006, then 1 at 59990 (average 60003.33…); the router gives its first fill.
    order = replace(market_to_limit("o-1", BUY, "8"), limit_price=Decimal("60006"))
    average = (5 * Decimal("60006") + Decimal("59990")) / 6
    venue.restore(
        order, venue_order_id="v-1", cumulative_quantity=Decimal(6), average_price=average
    )

    (fill,) = venue.on_quote(quote(ask="60005"), T0)

    assert fill.execution_type == FILLED
    assert (fill.last_quantity, fill.last_price) == (Decimal(2), Decimal("60005"))


def test_restored_market_to_limit_without_a_limit_rests_at_its_average_price(
    venue: PaperVenue,
) -> None:
    venue.restore(
        market_to_limit("o-1", SELL, "8"),
        venue_order_id="v-1",
        cumulative_quantity=Decimal(5),
        average_price=Decimal("59994"),
    )

    assert venue.on_quote(quote(bid="59993", ask="60000"), T0) == []
    (fill,) = venue.on_quote(quote(bid="59994", ask="60000"), T0)
    assert (fill.last_quantity, fill.last_price) == (Decimal(3), Decimal("59994"))


def test_restored_market_to_limit_that_had_not_traded_arrives_on_the_next_quote(
    venue: PaperVenue,
) -> None:
    venue.restore(
        market_to_limit("o-1", BUY, "8"),
        venue_order_id="v-1",
        cumulative_quantity=Decimal(0),
        average_price=None,
    )

    (fill,) = venue.on_quote(quote(ask="60001"), T0)
    assert (fill.last_quantity, fill.last_price) == (Decimal(5), Decimal("60001"))
    (rest,) = venue.on_quote(quote(ask="60001"), T0)  # its remainder now rests at 60001
    assert (rest.execution_type, rest.last_quantity) == (FILLED, Decimal(3))


def test_restored_fok_order_still_fills_all_or_nothing(venue: PaperVenue) -> None:
    order = limit("o-1", BUY, "6", "60010", FOK)
    venue.restore(order, venue_order_id="v-1", cumulative_quantity=Decimal(0), average_price=None)

    (killed,) = venue.on_quote(quote(), T0)  # 5 shown: not all of it

    assert killed.execution_type == EXPIRED
    assert killed.cumulative_quantity == 0
    assert venue.open_orders() == []


def test_resting_iceberg_fills_at_most_its_display_on_each_quote(venue: PaperVenue) -> None:
    order = replace(limit("o-1", BUY, "5", "60000"), display_quantity=Decimal(2))
    venue.submit(order, quote(), T0)

    reports = [venue.on_quote(quote(ask="59999"), T0) for _ in range(3)]

    assert [[(r.execution_type, r.last_quantity) for r in batch] for batch in reports] == [
        [(PARTIALLY_FILLED, Decimal(2))],
        [(PARTIALLY_FILLED, Decimal(2))],
        [(FILLED, Decimal(1))],
    ]


def test_iceberg_and_a_later_order_share_the_displayed_size_in_time_priority(
    venue: PaperVenue,
) -> None:
    venue.submit(replace(limit("ice", BUY, "5", "60000"), display_quantity=Decimal(2)), None, T0)
    venue.submit(limit("plain", BUY, "4", "60000"), None, T0)

    ice, plain = venue.on_quote(quote(ask="59999"), T0)  # 5 shown

    assert (ice.order_id, ice.last_quantity) == ("ice", Decimal(2))
    assert (plain.order_id, plain.last_quantity) == ("plain", Decimal(3))


def test_arriving_marketable_iceberg_fills_up_to_the_displayed_size_as_any_limit(
    venue: PaperVenue,
) -> None:
    order = replace(limit("o-1", BUY, "4", "60010"), display_quantity=Decimal(1))

    reports = venue.submit(order, quote(), T0)

    assert kinds(reports) == [ACCEPTED, FILLED]
    assert fills(reports) == [(Decimal(4), Decimal("60006"))]


@pytest.mark.parametrize(
    ("order", "message"),
    [
        (
            replace(limit("o-1", BUY, "1", "60000"), display_quantity=Decimal(2)),
            "display quantity must be positive and at most the quantity 1, got 2",
        ),
        (
            replace(limit("o-1", BUY, "1", "60000"), display_quantity=Decimal(0)),
            "display quantity must be positive and at most the quantity 1, got 0",
        ),
        (
            replace(market("o-1", BUY, "1"), display_quantity=Decimal(1)),
            "a display quantity (an iceberg) is for limit orders only",
        ),
    ],
)
def test_malformed_iceberg_is_rejected(venue: PaperVenue, order: VenueOrder, message: str) -> None:
    (report,) = venue.submit(order, quote(), T0)

    assert (report.execution_type, report.message) == (REJECTED, message)


def test_gtd_order_expires_on_the_first_quote_at_its_expire_time_not_before(
    venue: PaperVenue,
) -> None:
    venue.submit(dated(limit("o-1", BUY, "2", "60000")), quote(), T0)

    assert venue.on_quote(quote(), EXPIRES - timedelta(microseconds=1)) == []
    (expired,) = venue.on_quote(quote(), EXPIRES)

    assert expired.execution_type == EXPIRED
    assert expired.message == "good-till-date: expired at 2024-01-02T10:30:00+00:00; 2 unfilled"
    assert (expired.cumulative_quantity, expired.leaves_quantity) == (Decimal(0), Decimal(0))
    assert venue.open_orders() == []
    assert venue.on_quote(quote(ask="59000"), EXPIRES) == []


def test_day_order_expires_on_a_quote_after_its_expire_time_for_any_instrument(
    venue: PaperVenue,
) -> None:
    venue.submit(dated(limit("o-1", BUY, "8", "60010"), DAY), quote(), T0)  # 5 filled, 3 resting

    (expired,) = venue.on_quote(quote(instrument="ETH-USD"), EXPIRES + timedelta(seconds=1))

    assert expired.execution_type == EXPIRED
    assert expired.message == "day order: expired at 2024-01-02T10:30:00+00:00; 3 unfilled"
    assert (expired.cumulative_quantity, expired.leaves_quantity) == (Decimal(5), Decimal(0))
    assert expired.average_price == Decimal("60006")


def test_order_due_to_expire_does_not_fill_on_the_quote_that_expires_it(
    venue: PaperVenue,
) -> None:
    venue.submit(dated(limit("o-1", BUY, "2", "60000")), quote(), T0)

    reports = venue.on_quote(quote(bid="59990", ask="59999"), EXPIRES)

    assert kinds(reports) == [EXPIRED]


@pytest.mark.parametrize(("time_in_force", "name"), [(GTD, "good-till-date"), (DAY, "day order")])
def test_order_arriving_at_its_expire_time_expires_at_once_with_nothing_filled(
    venue: PaperVenue, time_in_force: types_pb2.TimeInForce.ValueType, name: str
) -> None:
    order = dated(limit("o-1", BUY, "2", "60010"), time_in_force)

    reports = venue.submit(order, quote(), EXPIRES)

    assert kinds(reports) == [ACCEPTED, EXPIRED]
    assert reports[1].message == (
        f"{name}: its expire time 2024-01-02T10:30:00+00:00 had come when it reached the venue "
        "at 2024-01-02T10:30:00+00:00; nothing filled"
    )
    assert reports[1].cumulative_quantity == 0
    assert venue.open_orders() == []


def test_dated_order_before_its_expire_time_matches_as_any_order(venue: PaperVenue) -> None:
    reports = venue.submit(dated(limit("o-1", BUY, "8", "60010")), quote(), T0)

    assert kinds(reports) == [ACCEPTED, PARTIALLY_FILLED]
    assert len(venue.open_orders()) == 1


@pytest.mark.parametrize(("time_in_force", "name"), [(GTD, "GTD"), (DAY, "DAY")])
def test_dated_order_without_an_expire_time_is_rejected(
    venue: PaperVenue, time_in_force: types_pb2.TimeInForce.ValueType, name: str
) -> None:
    (report,) = venue.submit(limit("o-1", BUY, "1", "60000", time_in_force), quote(), T0)

    assert report.execution_type == REJECTED
    assert report.message == f"a {name} order needs an expire time; none was given"


def test_gtc_order_with_an_expire_time_is_rejected(venue: PaperVenue) -> None:
    order = replace(limit("o-1", BUY, "1", "60000"), expire_time=EXPIRES)

    (report,) = venue.submit(order, quote(), T0)

    assert report.message == "an expire time is for DAY and GTD orders only, not GTC"


def test_unspecified_time_in_force_and_stop_orders_are_rejected(venue: PaperVenue) -> None:
    unspecified = limit("o-1", BUY, "1", "60000", types_pb2.TIME_IN_FORCE_UNSPECIFIED)
    stop = replace(market("o-2", BUY, "1"), order_type=types_pb2.ORDER_TYPE_STOP_MARKET)

    (first,) = venue.submit(unspecified, quote(), T0)
    (second,) = venue.submit(stop, quote(), T0)

    assert first.message == "time in force must be GTC, IOC, FOK, DAY or GTD"
    assert second.message.startswith("order type must be MARKET, LIMIT or MARKET_TO_LIMIT")


def test_restored_gtd_iceberg_keeps_its_expire_time_and_display(venue: PaperVenue) -> None:
    order = replace(dated(limit("o-1", BUY, "5", "60000")), display_quantity=Decimal(2))
    venue.restore(order, venue_order_id="v-1", cumulative_quantity=Decimal(0), average_price=None)

    (fill,) = venue.on_quote(quote(ask="59999"), T0)
    (expired,) = venue.on_quote(quote(), EXPIRES)

    assert fill.last_quantity == Decimal(2)
    assert expired.message == "good-till-date: expired at 2024-01-02T10:30:00+00:00; 3 unfilled"
