"""The QuantConnect adapter against a fake QuantConnect REST API v2 on loopback with a simulated
live algorithm: the wire format (OrderCommand with our order id as its tag, signed quantities,
exact decimals), fills in parts, cancels, the emergency path (liquidate, stop), the timestamped
token authentication, and the faults that make an answer lost or garbage: none may place an
order twice or lose one, and garbage is counted, never a crash or a guessed state."""

from __future__ import annotations

import base64
import hashlib
import itertools
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import pytest
import requests
from execution_router.domain.venue_types import Report, VenueOrder
from execution_router.venues.quantconnect import TRANSIENT, QuantConnectClient, QuantConnectError
from execution_router.venues.resilience import VenueGuard
from trading.v1 import types_pb2
from trading_core.config import VenueResilience

from tests.fakes.quantconnect import FakeQuantConnect
from tests.integration.reports_seen import ReportsSeen
from tests.support import wait_until

T = types_pb2
R = TypeVar("R")
USER_ID = "31337"
API_TOKEN = "qc-test-token-0123456789abcdef-do-not-log"
PROJECT_ID = 23456789
_ids = (f"qc-{n}" for n in itertools.count(1))


@dataclass
class Setup(ReportsSeen):
    fake: FakeQuantConnect
    client: QuantConnectClient
    reports: list[Report]

    def made(self, tag: str) -> int:
        """How many orders the algorithm holds under `tag`."""
        with self.fake._lock:
            return sum(1 for o in self.fake.orders if o.tag == tag)


def _client(fake: FakeQuantConnect, reports: list[Report], **overrides: Any) -> QuantConnectClient:
    settings: dict[str, Any] = {
        "user_id": USER_ID,
        "api_token": API_TOKEN,
        "project_id": PROJECT_ID,
        "symbols": {"BTC-USD": "BTCUSD", "ETH-USD": "ETHUSD"},
        "base_url": fake.url,
        "poll_interval_s": 0.05,
        "read_timeout_s": 0.5,
        "lost_submit_window_s": 0.5,
        "max_retry_after_s": 2.0,
    }
    settings.update(overrides)
    return QuantConnectClient(reports.append, **settings)


@pytest.fixture
def fake() -> Iterator[FakeQuantConnect]:
    # The algorithm trades BTCUSD only: an ETHUSD order is invalid there.
    server = FakeQuantConnect(USER_ID, API_TOKEN, PROJECT_ID, ["BTCUSD"])
    server.start()
    yield server
    server.stop()


@pytest.fixture
def setup(fake: FakeQuantConnect) -> Iterator[Setup]:
    reports: list[Report] = []
    client = _client(fake, reports)
    client.start()
    yield Setup(fake, client, reports)
    client.stop()


def order(
    kind: int = T.ORDER_TYPE_LIMIT,
    side: int = T.SIDE_BUY,
    quantity: str = "0.01",
    price: str | None = "59000.00",
    instrument: str = "BTC-USD",
    **extra: Any,
) -> VenueOrder:
    return VenueOrder(
        next(_ids),
        "acct-qc",
        instrument,
        T.Side.ValueType(side),
        T.OrderType.ValueType(kind),
        T.TIME_IN_FORCE_GTC,
        Decimal(quantity),
        Decimal(price) if price is not None else None,
        **extra,
    )


# -- orders and fills -----------------------------------------------------------------------


def test_a_limit_order_goes_as_a_tagged_order_command_and_fills_in_parts_exactly(
    setup: Setup,
) -> None:
    before = datetime.now(UTC) - timedelta(seconds=2)
    new = order()
    setup.client.submit_order(new)
    [accepted] = setup.wait_for(new.order_id, T.EXECUTION_TYPE_ACCEPTED)
    placed = setup.fake.order(new.order_id)
    assert (placed.ticker, placed.quantity, placed.limit_price) == (
        "BTCUSD",
        Decimal("0.01"),
        Decimal("59000"),
    )
    assert accepted.venue_order_id == str(placed.id)
    assert (accepted.cumulative_quantity, accepted.leaves_quantity) == (Decimal(0), Decimal("0.01"))
    [shown] = [r for r in setup.client.open_orders() if r.order_id == new.order_id]
    assert (shown.leaves_quantity, shown.limit_price) == (Decimal("0.01"), Decimal("59000"))

    setup.fake.fill(new.order_id, Decimal("0.004"), Decimal("58999.99"))
    [partial] = setup.wait_for(new.order_id, T.EXECUTION_TYPE_PARTIALLY_FILLED)
    setup.fake.fill(new.order_id, Decimal("0.006"), Decimal("59000.01"))
    [filled] = setup.wait_for(new.order_id, T.EXECUTION_TYPE_FILLED)

    assert (partial.last_quantity, partial.last_price) == (Decimal("0.004"), Decimal("58999.99"))
    assert isinstance(partial.last_price, Decimal)
    assert partial.fee == Decimal("0.004") * Decimal("58999.99") * Decimal("0.001")
    assert partial.trade_id == f"{placed.id}-2" and filled.trade_id == f"{placed.id}-3"
    assert (filled.cumulative_quantity, filled.leaves_quantity) == (Decimal("0.01"), Decimal(0))
    notional = Decimal("0.004") * Decimal("58999.99") + Decimal("0.006") * Decimal("59000.01")
    assert filled.average_price == notional / Decimal("0.01")
    assert not [r for r in setup.client.open_orders() if r.order_id == new.order_id]
    fills = [f for f in setup.client.fills_since(before) if f.order_id == new.order_id]
    assert [f.trade_id for f in fills] == [partial.trade_id, filled.trade_id]
    assert fills[-1].cumulative_quantity == Decimal("0.01")
    # Each fill once, however many polls saw it (a resting order keeps the poller reading).
    setup.client.submit_order(order())
    reads = setup.fake.requests.count("/live/orders/read")
    wait_until(lambda: setup.fake.requests.count("/live/orders/read") > reads + 5, 10, "more polls")
    assert setup.kinds(new.order_id) == [
        T.EXECUTION_TYPE_ACCEPTED,
        T.EXECUTION_TYPE_PARTIALLY_FILLED,
        T.EXECUTION_TYPE_FILLED,
    ]


def test_a_market_sell_goes_with_a_negative_quantity_and_fills_at_once(setup: Setup) -> None:
    new = order(T.ORDER_TYPE_MARKET, T.SIDE_SELL, "0.002", None)
    setup.client.submit_order(new)
    [filled] = setup.wait_for(new.order_id, T.EXECUTION_TYPE_FILLED)
    assert setup.fake.order(new.order_id).quantity == Decimal("-0.002")
    assert (filled.last_quantity, filled.last_price) == (Decimal("0.002"), Decimal("60000"))
    assert filled.side == T.SIDE_SELL
    assert setup.kinds(new.order_id) == [T.EXECUTION_TYPE_ACCEPTED, T.EXECUTION_TYPE_FILLED]


def test_a_second_submit_of_an_order_id_is_not_sent(setup: Setup) -> None:
    new = order()
    setup.client.submit_order(new)
    setup.wait_for(new.order_id, T.EXECUTION_TYPE_ACCEPTED)
    setup.client.submit_order(new)
    assert setup.fake.count(new.order_id) == 1
    assert setup.kinds(new.order_id) == [T.EXECUTION_TYPE_ACCEPTED]


def test_an_order_the_algorithm_finds_invalid_is_rejected_with_leans_message(
    setup: Setup,
) -> None:
    new = order(instrument="ETH-USD", price="3000")
    setup.client.submit_order(new)
    [rejected] = setup.wait_for(new.order_id, T.EXECUTION_TYPE_REJECTED)
    assert "Invalid order for ETHUSD" in rejected.message
    assert T.EXECUTION_TYPE_ACCEPTED not in setup.kinds(new.order_id)


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        ({"post_only": True}, "post-only"),
        ({"protection_price": Decimal("61000")}, "worst price"),
        ({"display_quantity": Decimal("0.001")}, "display quantity"),
    ],
)
def test_an_order_the_command_cannot_express_is_rejected_without_being_sent(
    setup: Setup, extra: dict[str, Any], why: str
) -> None:
    kind = T.ORDER_TYPE_MARKET if "protection_price" in extra else T.ORDER_TYPE_LIMIT
    new = order(kind, price=None if kind == T.ORDER_TYPE_MARKET else "59000", **extra)
    setup.client.submit_order(new)
    [rejected] = setup.wait_for(new.order_id, T.EXECUTION_TYPE_REJECTED)
    assert why in rejected.message
    assert setup.fake.count(new.order_id) == 0


def test_an_unmapped_instrument_and_a_stop_order_are_rejected_with_the_reason(
    setup: Setup,
) -> None:
    unmapped = order(instrument="SOL-USD")
    setup.client.submit_order(unmapped)
    [rejected] = setup.wait_for(unmapped.order_id, T.EXECUTION_TYPE_REJECTED)
    assert "not mapped" in rejected.message and "BTC-USD" in rejected.message
    stop = order(T.ORDER_TYPE_STOP_MARKET)
    setup.client.submit_order(stop)
    [refused] = setup.wait_for(stop.order_id, T.EXECUTION_TYPE_REJECTED)
    assert "ORDER_TYPE_STOP_MARKET" in refused.message
    assert not setup.fake.sent


def test_a_modify_is_rejected_naming_the_venue(setup: Setup) -> None:
    new = order()
    setup.client.submit_order(new)
    setup.wait_for(new.order_id, T.EXECUTION_TYPE_ACCEPTED)
    setup.client.modify_order(new.order_id, "modify-1", Decimal("0.02"), None)
    [rejected] = setup.wait_for(new.order_id, T.EXECUTION_TYPE_MODIFY_REJECTED)
    assert rejected.request_id == "modify-1" and "quantconnect" in rejected.message


# -- cancels --------------------------------------------------------------------------------


def test_a_cancel_goes_by_lean_order_id_and_is_answered_when_the_orders_show_it(
    setup: Setup,
) -> None:
    new = order()
    setup.client.submit_order(new)
    setup.wait_for(new.order_id, T.EXECUTION_TYPE_ACCEPTED)
    setup.client.cancel_order(new.order_id, "cancel-1")
    [canceled] = setup.wait_for(new.order_id, T.EXECUTION_TYPE_CANCELED)
    assert canceled.request_id == "cancel-1"
    assert setup.fake.cancels[setup.fake.order(new.order_id).id] == 1


def test_a_cancel_of_a_filled_order_is_rejected_and_fills_are_reported_first(
    setup: Setup,
) -> None:
    new = order()
    setup.client.submit_order(new)
    setup.wait_for(new.order_id, T.EXECUTION_TYPE_ACCEPTED)
    setup.fake.cross(Decimal("59000"))
    setup.client.cancel_order(new.order_id, "cancel-late")
    [rejected] = setup.wait_for(new.order_id, T.EXECUTION_TYPE_CANCEL_REJECTED)
    assert rejected.request_id == "cancel-late" and "finished" in rejected.message
    assert setup.kinds(new.order_id)[:2] == [T.EXECUTION_TYPE_ACCEPTED, T.EXECUTION_TYPE_FILLED]


def test_a_cancel_that_cannot_be_delivered_is_rejected_with_the_reason(setup: Setup) -> None:
    new = order()
    setup.client.submit_order(new)
    setup.wait_for(new.order_id, T.EXECUTION_TYPE_ACCEPTED)
    setup.fake.fault("5xx")
    setup.client.cancel_order(new.order_id, "cancel-1")
    [rejected] = setup.wait_for(new.order_id, T.EXECUTION_TYPE_CANCEL_REJECTED)
    assert rejected.request_id == "cancel-1" and "not delivered" in rejected.message
    assert setup.fake.order(new.order_id).status == 1  # still working


def test_a_cancel_of_an_order_whose_submit_was_lost_waits_for_it_then_cancels(
    setup: Setup,
) -> None:
    new = order()
    setup.fake.fault("lost")
    setup.client.submit_order(new)
    setup.client.cancel_order(new.order_id, "cancel-early")
    [canceled] = setup.wait_for(new.order_id, T.EXECUTION_TYPE_CANCELED)
    assert canceled.request_id == "cancel-early"
    assert setup.fake.count(new.order_id) == 1


# -- lost answers: no order lost, none sent twice ---------------------------------------------


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("lost", {}),
        ("timeout", {"apply": True, "sleep_s": 1.0}),
        ("5xx", {"apply": True}),
        ("malformed", {"apply": True}),
        ("missing", {"apply": True, "field": "success"}),
        ("late", {"sleep_s": 0.2}),
    ],
)
def test_a_command_applied_but_unanswered_is_looked_up_and_adopted_not_sent_again(
    setup: Setup, kind: str, options: dict[str, Any]
) -> None:
    new = order()
    setup.fake.fault(kind, **options)
    setup.client.submit_order(new)
    setup.wait_for(new.order_id, T.EXECUTION_TYPE_ACCEPTED)
    setup.client.submit_order(new)  # the router's retry changes nothing
    setup.fake.cross(Decimal("59000"))
    setup.wait_for(new.order_id, T.EXECUTION_TYPE_FILLED)
    assert setup.fake.count(new.order_id) == 1
    assert setup.kinds(new.order_id) == [T.EXECUTION_TYPE_ACCEPTED, T.EXECUTION_TYPE_FILLED]
    if kind in ("malformed", "missing"):
        assert setup.client.reconciliation_problems == 1


@pytest.mark.parametrize(
    ("kind", "options"),
    [("drop", {}), ("5xx", {}), ("timeout", {"sleep_s": 1.0})],
)
def test_a_command_not_applied_is_looked_up_then_sent_once_more(
    setup: Setup, kind: str, options: dict[str, Any]
) -> None:
    new = order()
    setup.fake.fault(kind, **options)
    setup.client.submit_order(new)
    setup.wait_for(new.order_id, T.EXECUTION_TYPE_ACCEPTED)
    assert setup.fake.count(new.order_id) == 2
    assert setup.made(new.order_id) == 1
    # Looked up (read) between the lost command and the second one.
    reads = setup.fake.requests
    first, second = [i for i, path in enumerate(reads) if path == "/live/commands/create"]
    assert "/live/orders/read" in reads[first + 1 : second]


def test_a_command_applied_late_within_the_window_is_adopted_not_sent_again(
    fake: FakeQuantConnect,
) -> None:
    reports: list[Report] = []
    client = _client(fake, reports, lost_submit_window_s=3.0)
    client.start()
    try:
        setup = Setup(fake, client, reports)
        new = order()
        fake.fault("late", sleep_s=1.0)
        client.submit_order(new)
        setup.wait_for(new.order_id, T.EXECUTION_TYPE_ACCEPTED)
        assert fake.count(new.order_id) == 1 and setup.made(new.order_id) == 1
    finally:
        client.stop()


def test_a_submit_whose_answers_are_lost_every_time_is_rejected_after_its_attempts(
    setup: Setup,
) -> None:
    new = order()
    for _ in range(3):
        setup.fake.fault("drop")
    setup.client.submit_order(new)
    [rejected] = setup.wait_for(new.order_id, T.EXECUTION_TYPE_REJECTED)
    assert "not sent again" in rejected.message
    assert setup.fake.count(new.order_id) == 3 and setup.made(new.order_id) == 0


def test_a_rate_limited_command_waits_retry_after_and_is_sent_again(setup: Setup) -> None:
    new = order()
    setup.fake.fault("429", retry_after_s=1)
    started = time.monotonic()
    setup.client.submit_order(new)
    assert time.monotonic() - started >= 1.0
    setup.wait_for(new.order_id, T.EXECUTION_TYPE_ACCEPTED)
    assert setup.fake.count(new.order_id) == 2 and setup.made(new.order_id) == 1


# -- garbage is counted, not crashed on, not guessed --------------------------------------------


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("malformed", {"apply": True}),
        ("missing", {"apply": True, "field": "status"}),
        ("missing", {"apply": True, "field": "events"}),
        ("missing", {"apply": True, "field": "orders"}),
        ("unknown_status", {}),
    ],
)
def test_a_garbage_read_is_counted_and_the_next_poll_reads_again(
    setup: Setup, kind: str, options: dict[str, Any]
) -> None:
    resting = order()
    setup.client.submit_order(resting)
    setup.wait_for(resting.order_id, T.EXECUTION_TYPE_ACCEPTED)
    setup.fake.fault(kind, "/live/orders/read", **options)
    setup.fake.fill(resting.order_id, Decimal("0.01"), Decimal("59000"))
    setup.wait_for(resting.order_id, T.EXECUTION_TYPE_FILLED)
    assert setup.client.reconciliation_problems >= 1
    assert setup.kinds(resting.order_id) == [T.EXECUTION_TYPE_ACCEPTED, T.EXECUTION_TYPE_FILLED]
    # The poller lives on: a new order is still followed.
    after = order()
    setup.client.submit_order(after)
    setup.wait_for(after.order_id, T.EXECUTION_TYPE_ACCEPTED)


# -- the emergency path ---------------------------------------------------------------------


def test_liquidate_cancels_the_working_orders_and_closes_the_holding(setup: Setup) -> None:
    bought = order(T.ORDER_TYPE_MARKET, price=None)
    resting = order()
    setup.client.submit_order(bought)
    setup.client.submit_order(resting)
    setup.wait_for(bought.order_id, T.EXECUTION_TYPE_FILLED)
    setup.wait_for(resting.order_id, T.EXECUTION_TYPE_ACCEPTED)
    assert setup.fake.holdings("BTCUSD") == Decimal("0.01")
    setup.client.liquidate()
    [canceled] = setup.wait_for(resting.order_id, T.EXECUTION_TYPE_CANCELED)
    assert "canceled by the algorithm" in canceled.message and not canceled.request_id
    assert setup.fake.liquidations == 1 and setup.fake.holdings("BTCUSD") == 0


def test_a_liquidation_whose_answer_is_lost_raises_and_is_not_repeated(setup: Setup) -> None:
    setup.fake.fault("lost", "/live/update/liquidate")
    with pytest.raises(QuantConnectError, match="answer was lost"):
        setup.client.liquidate()
    assert setup.fake.requests.count("/live/update/liquidate") == 1
    assert setup.fake.liquidations == 1


def test_stop_stops_the_algorithm_and_a_later_order_is_rejected_with_the_reason(
    setup: Setup,
) -> None:
    setup.client.stop_algorithm()
    assert not setup.fake.running
    new = order()
    setup.client.submit_order(new)
    [rejected] = setup.wait_for(new.order_id, T.EXECUTION_TYPE_REJECTED)
    assert "not running" in rejected.message
    with pytest.raises(QuantConnectError, match="not running"):
        setup.client.stop_algorithm()


# -- authentication and secrets ---------------------------------------------------------------


def _headers(token: str, stamp: int) -> dict[str, str]:
    hashed = hashlib.sha256(f"{token}:{stamp}".encode()).hexdigest()
    basic = base64.b64encode(f"{USER_ID}:{hashed}".encode()).decode()
    return {"Authorization": f"Basic {basic}", "Timestamp": str(stamp)}


def test_the_fake_takes_a_fresh_hash_and_refuses_a_stale_one_or_a_wrong_token(
    fake: FakeQuantConnect,
) -> None:
    url, body = f"{fake.url}/authenticate", {"projectId": PROJECT_ID}
    now = int(time.time())
    fresh = requests.post(url, json=body, headers=_headers(API_TOKEN, now), timeout=5)
    assert fresh.status_code == 200 and fresh.json()["success"] is True
    stale = requests.post(url, json=body, headers=_headers(API_TOKEN, now - 3600), timeout=5)
    assert stale.status_code == 401 and "too old" in stale.json()["errors"][0]
    wrong = requests.post(url, json=body, headers=_headers("not-the-token", now), timeout=5)
    assert wrong.status_code == 401 and "Hash doesn't match" in wrong.json()["errors"][0]


def test_a_wrong_token_gives_a_clear_rejection_and_no_order(fake: FakeQuantConnect) -> None:
    reports: list[Report] = []
    client = _client(fake, reports, api_token="a-wrong-token")
    client.start()
    try:
        new = order()
        client.submit_order(new)
        setup = Setup(fake, client, reports)
        [rejected] = setup.wait_for(new.order_id, T.EXECUTION_TYPE_REJECTED)
        assert "HTTP 401" in rejected.message and "Hash doesn't match" in rejected.message
        assert not fake.orders and fake.refused_auth >= 1
    finally:
        client.stop()


def test_no_token_or_hash_in_any_log_line_of_a_whole_order_life(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    new = order()
    setup.fake.fault("lost")
    setup.client.submit_order(new)
    setup.wait_for(new.order_id, T.EXECUTION_TYPE_ACCEPTED)
    setup.fake.fault("malformed", "/live/orders/read")
    setup.client.cancel_order(new.order_id, "cancel-1")
    setup.wait_for(new.order_id, T.EXECUTION_TYPE_CANCELED)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "quantconnect" in text  # something was logged
    assert API_TOKEN not in text
    assert not re.search(r"[0-9a-f]{64}", text)  # no hashed token
    assert "Basic " not in text


# -- the one REST path a venue guard plugs into -----------------------------------------------


class RecordingGuard:
    """A stand-in for resilience.py's VenueGuard that calls through and records how."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, bool]] = []

    def call(
        self,
        function: Callable[[], R],
        *,
        weight: int = 1,
        orders: int = 0,
        repeatable: bool = False,
    ) -> R:
        self.calls.append((orders, repeatable))
        return function()


def test_every_call_goes_through_the_guard_reads_repeatable_order_commands_not(
    fake: FakeQuantConnect,
) -> None:
    guard = RecordingGuard()
    reports: list[Report] = []
    client = _client(fake, reports, guard=guard)
    client.start()
    try:
        new = order()
        client.submit_order(new)
        Setup(fake, client, reports).wait_for(new.order_id, T.EXECUTION_TYPE_ACCEPTED)
        client.liquidate()
    finally:
        client.stop()
    assert len(guard.calls) == len(fake.requests)
    assert (1, False) in guard.calls  # the order command: one order, never repeated
    assert (0, True) in guard.calls  # reads
    assert guard.calls[-1] == (0, False)  # liquidation: never repeated


def test_an_order_the_venue_guard_holds_back_is_rejected_as_not_sent(
    fake: FakeQuantConnect,
) -> None:
    settings = VenueResilience(order_rate_limits=["1/minute"], execution_timeout_ms=100)
    guard = VenueGuard("quantconnect", settings, TRANSIENT)
    reports: list[Report] = []
    client = _client(fake, reports, guard=guard)
    client.start()
    try:
        setup = Setup(fake, client, reports)
        first, second = order(), order()
        client.submit_order(first)
        client.submit_order(second)
        setup.wait_for(first.order_id, T.EXECUTION_TYPE_ACCEPTED)
        [rejected] = setup.wait_for(second.order_id, T.EXECUTION_TYPE_REJECTED)
        assert "not sent" in rejected.message and "1 per 1 minute" in rejected.message
        assert fake.count(second.order_id) == 0
    finally:
        client.stop()
