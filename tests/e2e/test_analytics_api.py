"""The AnalyticsService as the platform serves it (position-management's server): with API keys
on (test_security's embedded platform), a call without a key is UNAUTHENTICATED, a reader or a
trader reads its own account's figures, another account, or every account with a key for one,
is PERMISSION_DENIED; embedded and distributed, a filled order shows in both answers once the
feeder has written it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import grpc
import pytest
from trading.v1 import analytics_pb2, analytics_pb2_grpc, types_pb2

from tests.e2e import test_security
from tests.e2e.conftest import Clients
from tests.e2e.test_security import READER_A, TRADER_A, UNKNOWN, Secured, refusal
from tests.e2e.test_trading_flow import TIMEOUT, order_status, ready_for_market_orders, submit
from tests.support import wait_until

secured = test_security.secured  # the fixture: the embedded platform with API keys on
TODAY = analytics_pb2.DateRange(start_date=datetime.now(UTC).date().isoformat())


def analytics(secured: Secured, key: str | None) -> analytics_pb2_grpc.AnalyticsServiceStub:
    channel = secured.as_key(key).channel("position-management")
    return analytics_pb2_grpc.AnalyticsServiceStub(channel)


def calls(stub: analytics_pb2_grpc.AnalyticsServiceStub, account: str) -> list[Callable[[], Any]]:
    """Both RPCs on `account` ("" for every account) over today."""
    performance = analytics_pb2.GetPerformanceRequest(date_range=TODAY, account_id=account)
    quality = analytics_pb2.GetExecutionQualityRequest(date_range=TODAY, account_id=account)
    return [
        lambda: stub.GetPerformance(performance, timeout=TIMEOUT),
        lambda: stub.GetExecutionQuality(quality, timeout=TIMEOUT),
    ]


@pytest.mark.parametrize("key", [None, UNKNOWN], ids=["no-key", "unknown-key"])
def test_analytics_without_a_known_key_are_unauthenticated(
    secured: Secured, key: str | None
) -> None:
    for call in calls(analytics(secured, key), "acct-a"):
        error = refusal(call)
        assert error.code() is grpc.StatusCode.UNAUTHENTICATED


def test_a_reader_gets_its_own_accounts_analytics_and_no_other_accounts(
    secured: Secured,
) -> None:
    for key in (READER_A, TRADER_A):  # a trader reads too
        performance, quality = (call() for call in calls(analytics(secured, key), "acct-a"))
        assert isinstance(performance, analytics_pb2.GetPerformanceResponse)
        assert isinstance(quality, analytics_pb2.GetExecutionQualityResponse)
    reader = analytics(secured, READER_A)
    for call in calls(reader, "acct-b"):
        error = refusal(call)
        assert error.code() is grpc.StatusCode.PERMISSION_DENIED
        assert "does not hold account acct-b" in (error.details() or "")
    for call in calls(reader, ""):  # every account: needs a key for every account
        error = refusal(call)
        assert error.code() is grpc.StatusCode.PERMISSION_DENIED
        assert "covers every account" in (error.details() or "")


def test_a_filled_order_shows_in_its_accounts_analytics_embedded_and_distributed(
    platform_clients: Clients,
) -> None:
    """position-management serves the API in both modes; in distributed mode it reads the
    other processes' DuckDB files between their feeds."""
    clients = platform_clients
    ready_for_market_orders(clients)
    order = submit(clients, account_id="acct-analytics", strategy_id="analytics-e2e")
    order_status(clients, order, types_pb2.ORDER_STATUS_FILLED)
    stub = analytics_pb2_grpc.AnalyticsServiceStub(clients.channel("position-management"))
    quality = analytics_pb2.GetExecutionQualityRequest(
        date_range=TODAY, account_id="acct-analytics", venue="simulation"
    )

    def fed() -> analytics_pb2.VenueExecution | None:
        venues = stub.GetExecutionQuality(quality, timeout=TIMEOUT).venues
        return venues[0] if venues and venues[0].fills else None

    venue = wait_until(fed, 30, "the fill in the warehouse, through GetExecutionQuality")
    assert (venue.venue, venue.orders, venue.filled_orders, venue.fill_rate) == (
        "simulation", 1, 1, 1.0,
    )  # fmt: skip
    assert venue.accept_latency.HasField("p50_ms") and Decimal(venue.notional) > 0
    performance = stub.GetPerformance(
        analytics_pb2.GetPerformanceRequest(date_range=TODAY, account_id="acct-analytics"),
        timeout=TIMEOUT,
    )
    assert [(p.account_id, p.strategy_id) for p in performance.performances] == [
        ("acct-analytics", ""), ("acct-analytics", "analytics-e2e"),
    ]  # fmt: skip
    [day] = performance.daily_pnls
    assert (day.fills, day.date, day.strategy_id) == (1, TODAY.start_date, "analytics-e2e")
