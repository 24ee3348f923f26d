"""The paper venue's modify: a resting order changes quantity or price in place and matches at
the new price from the next quote; a modify it cannot apply is rejected naming why."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from execution_router.domain.paper_venue import PaperVenue
from trading.v1 import types_pb2
from trading_core.quotes import Quote

from tests.unit.test_paper_venue import BUY, T0, kinds, limit, market, new_venue, quote

MODIFIED = types_pb2.EXECUTION_TYPE_MODIFIED
MODIFY_REJECTED = types_pb2.EXECUTION_TYPE_MODIFY_REJECTED
QUOTE = quote()


def quote_of(_instrument: str) -> Quote:
    return QUOTE


def resting(
    venue: PaperVenue, quantity: str = "1", price: str = "59000", *, post_only: bool = False
) -> None:
    order = replace(limit("o-1", BUY, quantity, price), post_only=post_only)
    venue.submit(order, QUOTE, T0)
    assert [r.order_id for r in venue.open_orders()] == ["o-1"]


def test_a_modify_changes_quantity_and_price_in_place_and_says_so() -> None:
    venue = new_venue()
    resting(venue)
    [report] = venue.modify("o-1", "m-1", Decimal("2"), Decimal("59500"), quote_of)
    assert report.execution_type == MODIFIED
    assert (report.request_id, report.limit_price) == ("m-1", Decimal("59500"))
    assert (report.cumulative_quantity, report.leaves_quantity) == (Decimal(0), Decimal(2))
    [open_order] = venue.open_orders()
    assert open_order.leaves_quantity == 2


def test_a_price_moved_across_the_market_fills_on_the_next_quote_at_the_touch() -> None:
    venue = new_venue()
    resting(venue)
    venue.modify("o-1", "m-1", None, Decimal("60100"), quote_of)
    fills = venue.on_quote(QUOTE, T0)
    assert kinds(fills) == [types_pb2.EXECUTION_TYPE_FILLED]
    assert fills[0].last_price is not None
    assert fills[0].last_price <= Decimal("60100")


def test_a_quantity_not_above_what_filled_is_rejected_and_the_order_unchanged() -> None:
    venue = new_venue()
    resting(venue, quantity="8", price="60006")  # 5 of 8 fill at once (the ask shows 5)
    [report] = venue.modify("o-1", "m-1", Decimal("5"), None, quote_of)
    assert report.execution_type == MODIFY_REJECTED
    assert "not above what has filled (5)" in report.message
    assert venue.open_orders()[0].leaves_quantity == 3


def test_a_post_only_price_that_would_take_is_rejected() -> None:
    venue = new_venue()
    resting(venue, post_only=True)
    [report] = venue.modify("o-1", "m-1", None, Decimal("60010"), quote_of)
    assert report.execution_type == MODIFY_REJECTED
    assert report.message.startswith("cannot modify: post-only")


def test_a_finished_or_unknown_order_cannot_be_modified() -> None:
    venue = new_venue()
    venue.submit(market("o-1", BUY, "0.1"), QUOTE, T0)
    finished = venue.modify("o-1", "m-1", Decimal("1"), None, quote_of)
    unknown = venue.modify("o-9", "m-2", Decimal("1"), None, quote_of)
    assert kinds(finished + unknown) == [MODIFY_REJECTED, MODIFY_REJECTED]
    assert "has already finished" in finished[0].message
    assert "is not known" in unknown[0].message
