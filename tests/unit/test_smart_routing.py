"""Smart order routing (domain/smart_routing.py): shares on the best price net of fees."""

from __future__ import annotations

from decimal import Decimal

from execution_router.domain.smart_routing import VenueBook, allocate
from trading.v1 import types_pb2

T = types_pb2
STEP = Decimal("0.001")


def top(venue: str, price: str, size: str, fee_bps: str = "0") -> VenueBook:
    return book(venue, [(price, size)], fee_bps)


def book(venue: str, levels: list[tuple[str, str]], fee_bps: str = "0") -> VenueBook:
    return VenueBook(venue, tuple((Decimal(p), Decimal(s)) for p, s in levels), Decimal(fee_bps))


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


def test_an_order_deeper_than_the_best_level_takes_the_next_best_price_on_any_venue() -> None:
    a = book("a", [("100.0", "1"), ("100.3", "5")])
    b = book("b", [("100.1", "1"), ("100.2", "1")])
    # 100.0 (a), 100.1 (b), 100.2 (b), then 100.3 (a): a's second level is the worst
    assert allocate(T.SIDE_BUY, Decimal("3.5"), [a, b], ["a", "b"], STEP) == [
        ("a", Decimal("1.5")),
        ("b", Decimal("2")),
    ]


def test_a_sell_walks_the_bids_down_net_of_fees() -> None:
    a = book("a", [("100.0", "1"), ("99.0", "5")], fee_bps="0")
    b = book("b", [("100.2", "1"), ("99.95", "1")], fee_bps="10")  # 100.0998, 99.85005 net
    assert allocate(T.SIDE_SELL, Decimal("3"), [a, b], ["a", "b"], STEP) == [
        ("b", Decimal("2")),
        ("a", Decimal("1")),
    ]


def test_levels_of_one_venue_add_up_before_the_step_is_applied() -> None:
    a = book("a", [("100", "0.0006"), ("100.1", "0.0006")])  # 0.0012 shown: 0.001 on the step
    b = book("b", [("101", "5")])
    assert allocate(T.SIDE_BUY, Decimal("0.005"), [a, b], ["a", "b"], STEP) == [
        ("a", Decimal("0.001")),
        ("b", Decimal("0.004")),
    ]


def test_what_no_level_shows_goes_to_the_venue_of_the_best_level() -> None:
    a = book("a", [("100", "1"), ("100.5", "1")])
    b = book("b", [("100.2", "1")])
    assert allocate(T.SIDE_BUY, Decimal("5"), [a, b], ["b", "a"], STEP) == [
        ("a", Decimal("4")),
        ("b", Decimal("1")),
    ]
