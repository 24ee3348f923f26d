"""The execution-client contract suite (test_execution_client_contract.py), run against the
CCXT Bybit v5 spot adapter and its fake exchange: the suite's tests are imported here, with a
`venue` fixture of this module's own."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from execution_router.domain.venue_types import Report
from execution_router.venues.bybit import CcxtBybitSpotClient

from tests.fakes.bybit_v5 import FakeBybitSpot, SpotRules
from tests.integration.test_execution_client_contract import (
    Venue,
    test_a_cancel_is_answered_with_its_request_id_and_a_second_one_is_rejected,
    test_a_crossed_order_fills_with_a_trade_id_exact_decimals_and_a_fee,
    test_a_modify_is_answered_with_its_request_id_as_applied_or_rejected,
    test_a_new_order_is_accepted_under_its_own_id_and_rests,
    test_a_second_submit_of_an_order_id_makes_no_second_order,
)

__all__ = [
    "test_a_cancel_is_answered_with_its_request_id_and_a_second_one_is_rejected",
    "test_a_crossed_order_fills_with_a_trade_id_exact_decimals_and_a_fee",
    "test_a_modify_is_answered_with_its_request_id_as_applied_or_rejected",
    "test_a_new_order_is_accepted_under_its_own_id_and_rests",
    "test_a_second_submit_of_an_order_id_makes_no_second_order",
]

API_KEY = "contract-api-key"
SECRET = "contract-secret"
BTCUSDT = SpotRules(
    symbol="BTCUSDT",
    base="BTC",
    quote="USDT",
    tick_size=Decimal("0.01"),
    base_precision=Decimal("0.0001"),
    quote_precision=Decimal("0.00000001"),
    min_qty=Decimal("0.0001"),
    max_qty=Decimal("100"),
    min_amount=Decimal("10"),
)


@pytest.fixture
def venue() -> Iterator[Venue]:
    # The market trades above the suite's 60000 limit, so its buys rest until crossed.
    fake = FakeBybitSpot(API_KEY, SECRET, [BTCUSDT], market_price=Decimal("60100")).start()
    reports: list[Report] = []
    client = CcxtBybitSpotClient(
        reports.append,
        api_key=API_KEY,
        secret=SECRET,
        symbols={"BTC-USD": "BTC/USDT"},
        base_url=fake.url,
        timeout_s=2.0,
        poll_interval_s=0.05,
    )
    client.start()
    made = Venue(client, reports, cross=fake.cross, calm=lambda price: None)
    made.closers += [client.stop, fake.stop]
    yield made
    for close in made.closers:
        close()
