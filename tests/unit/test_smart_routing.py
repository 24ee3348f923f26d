"""Smart order routing (domain/smart_routing.py): shares on the best price net of fees."""

from __future__ import annotations

from decimal import Decimal

from execution_router.domain.smart_routing import VenueTop, allocate
from trading.v1 import types_pb2

T = types_pb2
STEP = Decimal("0.001")


def top(venue: str, price: str, size: str, fee_bps: str = "0") -> VenueTop:
    return VenueTop(venue, Decimal(price), Decimal(size), Decimal(fee_bps))


def test_a_buy_takes_the_cheapest_net_of_fees_first_and_the_rest_goes_to_the_best() -> None:
    tops = [top("a", "100.00", "1", "10"), top("b", "100.05", "1", "0")]  # a: 100.10 net
    shares = allocate(T.SIDE_BUY, Decimal("2.5"), tops, ["a", "b"], STEP)
    assert shares == [("b", Decimal("1.5")), ("a", Decimal("1"))]


def test_a_sell_takes_the_highest_bid_net_of_fees_first() -> None:
    tops = [top("a", "100.00", "5", "0"), top("b", "100.20", "5", "10")]  # b: 100.0998 net
    assert allocate(T.SIDE_SELL, Decimal("1"), tops, ["a", "b"], STEP) == [("b", Decimal("1"))]


def test_equal_net_prices_keep_the_route_order() -> None:
    tops = [top("a", "100", "0.5"), top("b", "100", "0.5")]
    assert allocate(T.SIDE_BUY, Decimal("1"), tops, ["b", "a"], STEP) == [
        ("b", Decimal("0.5")),
        ("a", Decimal("0.5")),
    ]


def test_displayed_sizes_are_taken_on_the_step() -> None:
    tops = [top("a", "100", "0.0015"), top("b", "101", "5")]
    assert allocate(T.SIDE_BUY, Decimal("0.01"), tops, ["a", "b"], STEP) == [
        ("a", Decimal("0.001")),
        ("b", Decimal("0.009")),
    ]


def test_without_any_quote_everything_goes_to_the_first_venue_of_the_route() -> None:
    assert allocate(T.SIDE_BUY, Decimal("1"), [], ["b", "a"], STEP) == [("b", Decimal("1"))]
