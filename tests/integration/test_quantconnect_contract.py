"""The execution-client contract suite (test_execution_client_contract.py), run against the
QuantConnect adapter and its fake API with a live algorithm: the suite's tests are imported here,
with a `venue` fixture of this module's own. Every test applies: ACCEPTED comes from the live
orders (the fake shows an order at once), and a modify is answered MODIFY_REJECTED, as the
suite allows."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from execution_router.domain.venue_types import Report
from execution_router.venues.quantconnect import QuantConnectClient

from tests.fakes.quantconnect import FakeQuantConnect
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

USER_ID = "424242"
API_TOKEN = "contract-api-token"
PROJECT_ID = 23456789


@pytest.fixture
def venue() -> Iterator[Venue]:
    fake = FakeQuantConnect(USER_ID, API_TOKEN, PROJECT_ID, ["BTCUSD"]).start()
    reports: list[Report] = []
    client = QuantConnectClient(
        reports.append,
        user_id=USER_ID,
        api_token=API_TOKEN,
        project_id=PROJECT_ID,
        symbols={"BTC-USD": "BTCUSD"},
        base_url=fake.url,
        poll_interval_s=0.05,
        read_timeout_s=2.0,
    )
    client.start()
    # A resting buy fills when the algorithm's market trades at its limit; "calm" needs nothing.
    made = Venue(client, reports, cross=fake.cross, calm=lambda price: None)
    made.closers += [client.stop, fake.stop]
    yield made
    for close in made.closers:
        close()
