"""The CCXT Bybit v5 spot adapter against a fake Bybit v5 REST server on loopback: the wire format,
signatures and recv window, fills with exact decimals and fees, cancels, amends, and the faults
that make a submit's outcome unknown (none of which may place an order twice)."""

from __future__ import annotations

import itertools
import json
import logging
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import ccxt  # type: ignore[import-untyped]
import pytest
from execution_router.domain.venue_types import Report, VenueOrder
from execution_router.venues.bybit import CcxtBybitSpotClient
from execution_router.venues.resilience import VenueGuard, VenueUnavailable
from trading.v1 import types_pb2
from trading_core.config import VenueResilience

from tests.fakes.bybit_v5 import FakeBybitSpot, SpotRules
from tests.support import wait_until

T = types_pb2
API_KEY = "bybit-test-key-0123456789"
SECRET = "bybit-test-secret-fedcba9876543210-do-not-log"
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
_ids = (f"bybit-{n}" for n in itertools.count(1))


@dataclass
class Setup:
    fake: FakeBybitSpot
    client: CcxtBybitSpotClient
    reports: list[Report]

    def of(self, order_id: str) -> list[Report]:
        return [r for r in list(self.reports) if r.order_id == order_id]

    def kinds(self, order_id: str) -> list[int]:
        return [r.execution_type for r in self.of(order_id)]

    def wait_for(self, order_id: str, kind: int, count: int = 1) -> list[Report]:
        def arrived() -> list[Report] | None:
            found = [r for r in self.of(order_id) if r.execution_type == kind]
            return found if len(found) >= count else None

        name = T.ExecutionType.Name(T.ExecutionType.ValueType(kind))
        return wait_until(arrived, 10, f"{count} {name} report(s) of {order_id}")

    def placed(self, order_id: str) -> int:
        """How many orders the fake holds under the id (never more than one)."""
        return len([o for o in self.fake.orders.values() if o.order_link_id == order_id])


def _client(
    fake: FakeBybitSpot, reports: list[Report], secret: str, recv_window_ms: int = 1000
) -> CcxtBybitSpotClient:
    return CcxtBybitSpotClient(
        reports.append,
        api_key=API_KEY,
        secret=secret,
        symbols={"BTC-USD": "BTC/USDT"},
        base_url=fake.url,
        timeout_s=1.0,
        poll_interval_s=0.05,
        lost_submit_grace_s=0.05,
        max_retry_after_s=2.0,
        recv_window_ms=recv_window_ms,  # a lost request may be executed up to 2 s after it was sent
    )


@pytest.fixture
def fake() -> Iterator[FakeBybitSpot]:
    server = FakeBybitSpot(API_KEY, SECRET, [BTCUSDT], market_price=Decimal("60000"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def setup(fake: FakeBybitSpot) -> Iterator[Setup]:
    reports: list[Report] = []
    client = _client(fake, reports, SECRET)
    client.start()
    yield Setup(fake, client, reports)
    client.stop()


def order(
    kind: int = T.ORDER_TYPE_LIMIT,
    side: int = T.SIDE_BUY,
    quantity: str = "0.0100",
    price: str | None = "59000.00",
    **changes: Any,
) -> VenueOrder:
    made = VenueOrder(
        next(_ids),
        "acct-bybit",
        "BTC-USD",
        T.Side.ValueType(side),
        T.OrderType.ValueType(kind),
        T.TIME_IN_FORCE_GTC,
        Decimal(quantity),
        Decimal(price) if price is not None else None,
    )
    return replace(made, **changes)


def test_a_limit_order_is_accepted_rests_and_fills_with_exact_decimals_and_a_fee(
    setup: Setup,
) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    new = order()
    setup.client.submit_order(new)
    [accepted] = setup.wait_for(new.order_id, T.EXECUTION_TYPE_ACCEPTED)
    assert accepted.venue_order_id == setup.fake.orders[new.order_id].order_id
    assert (accepted.cumulative_quantity, accepted.leaves_quantity) == (Decimal(0), Decimal("0.01"))
    [shown] = [r for r in setup.client.open_orders() if r.order_id == new.order_id]
    assert (shown.leaves_quantity, shown.limit_price) == (Decimal("0.01"), Decimal("59000"))

    setup.fake.fill(new.order_id, Decimal("0.004"), Decimal("58999.99"))
    [partial] = setup.wait_for(new.order_id, T.EXECUTION_TYPE_PARTIALLY_FILLED)
    setup.fake.fill(new.order_id, Decimal("0.006"), Decimal("59000.00"))
    [filled] = setup.wait_for(new.order_id, T.EXECUTION_TYPE_FILLED)

    assert partial.trade_id and filled.trade_id and partial.trade_id != filled.trade_id
    assert (partial.last_quantity, partial.last_price) == (Decimal("0.004"), Decimal("58999.99"))
    assert isinstance(partial.last_price, Decimal)
    # A spot buy pays its fee in BTC (0.1%): reported in USDT at the trade's price, exactly.
    assert partial.fee == Decimal("0.000004") * Decimal("58999.99")
    assert "BTC" in partial.message
    assert (filled.cumulative_quantity, filled.leaves_quantity) == (Decimal("0.01"), Decimal(0))
    expected_average = (
        Decimal("0.004") * Decimal("58999.99") + Decimal("0.006") * Decimal("59000")
    ) / Decimal("0.01")
    assert filled.average_price == expected_average
    assert not [r for r in setup.client.open_orders() if r.order_id == new.order_id]

    fills = [f for f in setup.client.fills_since(before) if f.order_id == new.order_id]
    assert [f.trade_id for f in fills] == [partial.trade_id, filled.trade_id]
    assert fills[-1].cumulative_quantity == Decimal("0.01")
    assert setup.kinds(new.order_id) == [
        T.EXECUTION_TYPE_ACCEPTED,
        T.EXECUTION_TYPE_PARTIALLY_FILLED,
        T.EXECUTION_TYPE_FILLED,
    ]


def test_a_market_sell_fills_at_once_with_its_fee_in_the_quote(setup: Setup) -> None:
    new = order(T.ORDER_TYPE_MARKET, T.SIDE_SELL, "0.0020", None)
    setup.client.submit_order(new)
    [filled] = setup.wait_for(new.order_id, T.EXECUTION_TYPE_FILLED)
    assert (filled.last_quantity, filled.last_price) == (Decimal("0.002"), Decimal("60000"))
    assert filled.fee == Decimal("0.002") * Decimal("60000") * Decimal("0.001")
    assert filled.message == ""
    assert setup.kinds(new.order_id) == [T.EXECUTION_TYPE_ACCEPTED, T.EXECUTION_TYPE_FILLED]


def test_a_market_buy_is_sent_in_the_base_coin(setup: Setup) -> None:
    new = order(T.ORDER_TYPE_MARKET, T.SIDE_BUY, "0.0020", None)
    setup.client.submit_order(new)
    [filled] = setup.wait_for(new.order_id, T.EXECUTION_TYPE_FILLED)
    assert setup.fake.orders[new.order_id].qty == Decimal("0.002")  # not 0.002 USDT's worth
    assert filled.cumulative_quantity == Decimal("0.002")


def test_a_cancel_is_answered_canceled_and_a_filled_orders_cancel_rejected(setup: Setup) -> None:
    resting = order()
    setup.client.submit_order(resting)
    setup.wait_for(resting.order_id, T.EXECUTION_TYPE_ACCEPTED)
    setup.client.cancel_order(resting.order_id, "cancel-1")
    [canceled] = setup.wait_for(resting.order_id, T.EXECUTION_TYPE_CANCELED)
    assert (canceled.request_id, canceled.leaves_quantity) == ("cancel-1", Decimal(0))
    assert setup.fake.orders[resting.order_id].status == "Cancelled"

    filled = order()
    setup.client.submit_order(filled)
    setup.wait_for(filled.order_id, T.EXECUTION_TYPE_ACCEPTED)
    setup.fake.fill(filled.order_id, Decimal("0.01"), Decimal("59000"))
    setup.wait_for(filled.order_id, T.EXECUTION_TYPE_FILLED)
    setup.client.cancel_order(filled.order_id, "cancel-2")
    [rejected] = setup.wait_for(filled.order_id, T.EXECUTION_TYPE_CANCEL_REJECTED)
    assert rejected.request_id == "cancel-2" and "finished" in rejected.message

    setup.client.cancel_order("bybit-unknown", "cancel-3")
    [unknown] = setup.wait_for("bybit-unknown", T.EXECUTION_TYPE_CANCEL_REJECTED)
    assert unknown.request_id == "cancel-3" and "does not know" in unknown.message


def test_a_cancel_after_an_unseen_fill_reports_the_fill_first(setup: Setup) -> None:
    new = order()
    setup.client.submit_order(new)
    setup.wait_for(new.order_id, T.EXECUTION_TYPE_ACCEPTED)
    setup.client.stop()  # no poller: the cancel's lookup is the first to show the fill
    setup.fake.fill(new.order_id, Decimal("0.003"), Decimal("59000"))
    setup.client.cancel_order(new.order_id, "cancel-1")
    assert setup.kinds(new.order_id) == [
        T.EXECUTION_TYPE_ACCEPTED,
        T.EXECUTION_TYPE_PARTIALLY_FILLED,
        T.EXECUTION_TYPE_CANCELED,
    ]
    assert setup.of(new.order_id)[-1].cumulative_quantity == Decimal("0.003")
    assert setup.fake.orders[new.order_id].status == "PartiallyFilledCanceled"


def test_an_amend_changes_quantity_and_price_and_a_finished_orders_is_rejected(
    setup: Setup,
) -> None:
    new = order()
    setup.client.submit_order(new)
    setup.wait_for(new.order_id, T.EXECUTION_TYPE_ACCEPTED)
    setup.client.modify_order(new.order_id, "modify-1", Decimal("0.02"), Decimal("59990.00"))
    [changed] = setup.wait_for(new.order_id, T.EXECUTION_TYPE_MODIFIED)
    assert changed.request_id == "modify-1"
    assert (changed.leaves_quantity, changed.limit_price) == (Decimal("0.02"), Decimal("59990"))
    held = setup.fake.orders[new.order_id]
    assert (held.qty, held.price) == (Decimal("0.02"), Decimal("59990"))
    [shown] = [r for r in setup.client.open_orders() if r.order_id == new.order_id]
    assert (shown.leaves_quantity, shown.limit_price) == (Decimal("0.02"), Decimal("59990"))

    setup.fake.fill(new.order_id, Decimal("0.02"), Decimal("59990"))
    setup.wait_for(new.order_id, T.EXECUTION_TYPE_FILLED)
    setup.client.modify_order(new.order_id, "modify-2", None, Decimal("59980.00"))
    [refused] = setup.wait_for(new.order_id, T.EXECUTION_TYPE_MODIFY_REJECTED)
    assert refused.request_id == "modify-2" and "finished" in refused.message


def test_an_amend_off_the_tick_is_rejected_without_being_sent(setup: Setup) -> None:
    new = order()
    setup.client.submit_order(new)
    setup.wait_for(new.order_id, T.EXECUTION_TYPE_ACCEPTED)
    setup.client.modify_order(new.order_id, "modify-1", None, Decimal("59990.005"))
    [refused] = setup.wait_for(new.order_id, T.EXECUTION_TYPE_MODIFY_REJECTED)
    assert "tick" in refused.message
    assert ("POST", "/v5/order/amend") not in setup.fake.requests


def test_a_second_submit_of_an_order_id_is_not_sent(setup: Setup) -> None:
    new = order()
    setup.client.submit_order(new)
    setup.wait_for(new.order_id, T.EXECUTION_TYPE_ACCEPTED)
    setup.client.submit_order(new)
    assert setup.fake.count(new.order_id) == 1
    assert setup.kinds(new.order_id) == [T.EXECUTION_TYPE_ACCEPTED]


def test_a_submit_the_exchange_already_has_is_adopted_not_rejected(fake: FakeBybitSpot) -> None:
    # A restarted adapter sends an order Bybit has: 110072, looked up, adopted.
    first: list[Report] = []
    client = _client(fake, first, SECRET)
    client.start()
    new = order()
    client.submit_order(new)
    client.stop()
    again: list[Report] = []
    restarted = _client(fake, again, SECRET)
    restarted.start()
    try:
        restarted.submit_order(new)
        assert [r.execution_type for r in again] == [T.EXECUTION_TYPE_ACCEPTED]
        assert len(fake.orders) == 1 and fake.count(new.order_id) == 2
    finally:
        restarted.stop()


@pytest.mark.parametrize("kind", ["lost", "timeout", "malformed"])
def test_a_submit_applied_but_unanswered_is_looked_up_not_sent_again(
    setup: Setup, kind: str
) -> None:
    setup.fake.fault(kind, apply=True, sleep_s=2.0)
    new = order()
    setup.client.submit_order(new)
    [accepted] = setup.wait_for(new.order_id, T.EXECUTION_TYPE_ACCEPTED)
    assert accepted.venue_order_id == setup.fake.orders[new.order_id].order_id
    assert setup.fake.count(new.order_id) == 1
    assert ("GET", "/v5/order/realtime") in setup.fake.requests
    assert T.EXECUTION_TYPE_REJECTED not in setup.kinds(new.order_id)


def test_a_submit_answered_without_its_order_id_is_looked_up_not_sent_again(
    setup: Setup,
) -> None:
    setup.fake.fault("missing", field="orderId")
    new = order()
    setup.client.submit_order(new)
    [accepted] = setup.wait_for(new.order_id, T.EXECUTION_TYPE_ACCEPTED)
    assert accepted.venue_order_id == setup.fake.orders[new.order_id].order_id
    assert setup.fake.count(new.order_id) == 1


@pytest.mark.parametrize("kind", ["drop", "5xx", "malformed"])
def test_a_submit_not_applied_is_looked_up_then_sent_once_more(setup: Setup, kind: str) -> None:
    setup.fake.fault(kind, apply=False)
    new = order()
    setup.client.submit_order(new)
    setup.wait_for(new.order_id, T.EXECUTION_TYPE_ACCEPTED)
    assert setup.fake.count(new.order_id) == 2  # the lost one, and one after the lookup
    assert setup.placed(new.order_id) == 1
    assert setup.kinds(new.order_id) == [T.EXECUTION_TYPE_ACCEPTED]


def test_a_rate_limited_submit_waits_for_the_reset_and_is_sent_again(setup: Setup) -> None:
    setup.fake.fault("429", retry_after_s=0.5)
    new = order()
    setup.client.submit_order(new)
    setup.wait_for(new.order_id, T.EXECUTION_TYPE_ACCEPTED)
    assert setup.fake.count(new.order_id) == 2
    assert ("GET", "/v5/order/realtime") not in setup.fake.requests  # 10006 applied nothing
    assert setup.placed(new.order_id) == 1


def test_a_submit_whose_lookups_fail_too_is_resolved_by_the_poller(setup: Setup) -> None:
    setup.fake.fault("lost", apply=True)
    for _ in range(5):  # the submit's own lookups fail as well (the poller may take some)
        setup.fake.fault("5xx", path="/v5/order/realtime", method="GET")
    new = order()
    setup.client.submit_order(new)
    [accepted] = setup.wait_for(new.order_id, T.EXECUTION_TYPE_ACCEPTED)
    assert accepted.venue_order_id == setup.fake.orders[new.order_id].order_id
    assert setup.fake.count(new.order_id) == 1


def test_a_lookup_that_does_not_show_the_order_yet_never_sends_it_twice(setup: Setup) -> None:
    """Bybit's lists may lag: the first lookups answer 'no such order' though it was placed;
    until the recv window has passed the adapter asks again instead of sending it twice."""
    setup.fake.fault("lost", apply=True)
    for path in ("/v5/order/realtime", "/v5/order/realtime", "/v5/order/history"):
        setup.fake.fault("unknown", path=path, method="GET")
    new = order()
    setup.client.submit_order(new)
    setup.wait_for(new.order_id, T.EXECUTION_TYPE_ACCEPTED)
    assert setup.fake.count(new.order_id) == 1


def test_a_submit_placed_late_within_its_recv_window_is_adopted_not_sent_again(
    setup: Setup,
) -> None:
    setup.fake.fault("late", sleep_s=0.5)
    new = order()
    setup.client.submit_order(new)
    setup.wait_for(new.order_id, T.EXECUTION_TYPE_ACCEPTED)
    assert setup.fake.count(new.order_id) == 1


def test_a_submit_that_arrives_after_its_recv_window_is_never_placed_and_is_sent_again(
    setup: Setup,
) -> None:
    setup.fake.fault("late", sleep_s=1.5)  # past the 1 s window: Bybit refuses it
    new = order()
    setup.client.submit_order(new)
    setup.wait_for(new.order_id, T.EXECUTION_TYPE_ACCEPTED)
    assert setup.fake.count(new.order_id) == 2
    assert setup.placed(new.order_id) == 1


def test_an_order_in_a_status_bybit_never_documented_is_followed_until_it_fills(
    setup: Setup,
) -> None:
    new = order()
    setup.client.submit_order(new)
    setup.wait_for(new.order_id, T.EXECUTION_TYPE_ACCEPTED)
    setup.fake.fault("status", path="/v5/order/realtime", method="GET")
    setup.fake.fault("missing", path="/v5/order/realtime", method="GET", field="cumExecQty")
    setup.fake.fill(new.order_id, Decimal("0.01"), Decimal("59000"))
    [filled] = setup.wait_for(new.order_id, T.EXECUTION_TYPE_FILLED)
    assert filled.cumulative_quantity == Decimal("0.01")
    assert setup.kinds(new.order_id) == [T.EXECUTION_TYPE_ACCEPTED, T.EXECUTION_TYPE_FILLED]


def test_an_order_off_the_step_or_below_the_minimum_value_is_rejected_without_being_sent(
    setup: Setup,
) -> None:
    off_step = order(quantity="0.00015")
    setup.client.submit_order(off_step)
    [rejected] = setup.wait_for(off_step.order_id, T.EXECUTION_TYPE_REJECTED)
    assert "step" in rejected.message
    too_small = order(quantity="0.0001", price="59000.00")  # 5.9 USDT < minOrderAmt 10
    setup.client.submit_order(too_small)
    [small] = setup.wait_for(too_small.order_id, T.EXECUTION_TYPE_REJECTED)
    assert "minimum order value 10" in small.message
    assert setup.fake.count(off_step.order_id) == setup.fake.count(too_small.order_id) == 0


def test_an_order_the_exchange_refuses_is_rejected_with_its_reason(setup: Setup) -> None:
    new = order(T.ORDER_TYPE_MARKET, T.SIDE_SELL, "0.0001", None)  # 6 USDT at the market
    setup.client.submit_order(new)
    [rejected] = setup.wait_for(new.order_id, T.EXECUTION_TYPE_REJECTED)
    assert "Order value exceeded lower limit. (retCode 170140)" in rejected.message
    assert setup.fake.count(new.order_id) == 1


def test_a_market_order_with_a_protection_price_goes_as_limit_ioc(setup: Setup) -> None:
    inside = order(
        T.ORDER_TYPE_MARKET, T.SIDE_BUY, "0.0010", None, protection_price=Decimal("60100.00")
    )
    setup.client.submit_order(inside)
    [filled] = setup.wait_for(inside.order_id, T.EXECUTION_TYPE_FILLED)
    assert filled.last_price == Decimal("60000")
    sent = setup.fake.orders[inside.order_id]
    assert (sent.order_type, sent.time_in_force, sent.price) == ("Limit", "IOC", Decimal("60100"))

    beyond = order(
        T.ORDER_TYPE_MARKET, T.SIDE_BUY, "0.0010", None, protection_price=Decimal("59900.00")
    )
    setup.client.submit_order(beyond)
    [expired] = setup.wait_for(beyond.order_id, T.EXECUTION_TYPE_EXPIRED)
    assert (expired.cumulative_quantity, expired.leaves_quantity) == (Decimal(0), Decimal(0))


def test_a_post_only_order_rests_as_post_only_and_one_that_would_take_is_canceled(
    setup: Setup,
) -> None:
    maker = order(post_only=True)
    setup.client.submit_order(maker)
    setup.wait_for(maker.order_id, T.EXECUTION_TYPE_ACCEPTED)
    assert setup.fake.orders[maker.order_id].time_in_force == "PostOnly"

    taker = order(price="60100.00", post_only=True)
    setup.client.submit_order(taker)
    [canceled] = setup.wait_for(taker.order_id, T.EXECUTION_TYPE_CANCELED)
    assert "EC_PostOnlyWillTakeLiquidity" in canceled.message
    assert setup.kinds(taker.order_id) == [T.EXECUTION_TYPE_ACCEPTED, T.EXECUTION_TYPE_CANCELED]


def test_a_wrong_secret_gives_a_clear_error_no_order_and_no_secret_in_the_logs(
    fake: FakeBybitSpot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    reports: list[Report] = []
    wrong = "wrong-secret-0000000000000000"
    client = _client(fake, reports, wrong)
    client.start()
    try:
        new = order()
        client.submit_order(new)
        [rejected] = [r for r in reports if r.execution_type == T.EXECUTION_TYPE_REJECTED]
        assert "credentials" in rejected.message and "10004" in rejected.message
        assert fake.orders == {}
    finally:
        client.stop()
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "bybit" in text  # the wire log and the error were logged
    for secret in (API_KEY, wrong, SECRET):
        assert secret not in text


def test_no_secret_or_signature_in_any_log_line_of_a_whole_order_life(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    new = order()
    setup.client.submit_order(new)
    setup.wait_for(new.order_id, T.EXECUTION_TYPE_ACCEPTED)
    setup.fake.fill(new.order_id, Decimal("0.01"), Decimal("59000"))
    setup.wait_for(new.order_id, T.EXECUTION_TYPE_FILLED)
    setup.client.cancel_order(new.order_id, "cancel-1")
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "X-BAPI-API-KEY" in text and "X-BAPI-SIGN" in text  # the wire log, redacted
    assert API_KEY not in text and SECRET not in text
    assert "X-BAPI-SIGN': '***'" in text


def test_a_request_older_than_its_recv_window_is_refused_with_a_clear_reason(
    fake: FakeBybitSpot,
) -> None:
    reports: list[Report] = []
    client = _client(fake, reports, SECRET)
    client._worker.options["timeDifference"] = 5000  # our clock 5 s behind: past the 1 s window
    client.start()
    try:
        new = order()
        client.submit_order(new)
        [rejected] = [r for r in reports if r.execution_type == T.EXECUTION_TYPE_REJECTED]
        assert "timestamp" in rejected.message and "10002" in rejected.message
        assert fake.orders == {} and fake.count(new.order_id) == 1
    finally:
        client.stop()


def test_sandbox_mode_points_at_the_testnet_and_a_base_url_overrides_it() -> None:
    def urls(sandbox: bool = False, base_url: str | None = None) -> dict[str, str]:
        client = CcxtBybitSpotClient(
            lambda report: None,
            api_key="k",
            secret="s",
            symbols={},
            sandbox=sandbox,
            base_url=base_url,
        )
        api: dict[str, str] = client._worker.urls["api"]
        return {k: v.replace("{hostname}", client._worker.hostname) for k, v in api.items()}

    assert urls()["private"] == "https://api.bybit.com"
    assert urls(sandbox=True)["private"] == "https://api-testnet.bybit.com"
    local = urls(sandbox=True, base_url="http://127.0.0.1:9")
    assert (local["public"], local["private"]) == ("http://127.0.0.1:9",) * 2


def test_the_fake_serves_bybit_market_data_for_spot(fake: FakeBybitSpot) -> None:
    def get(path: str) -> Any:
        with urllib.request.urlopen(f"{fake.url}{path}", timeout=5) as answer:
            body = json.loads(answer.read())
        assert (body["retCode"], body["retMsg"]) == (0, "OK") and "time" in body
        return body["result"]

    assert int(get("/v5/market/time")["timeSecond"]) > 0
    [instrument] = get("/v5/market/instruments-info?category=spot&symbol=BTCUSDT")["list"]
    assert instrument["lotSizeFilter"]["basePrecision"] == "0.0001"
    assert instrument["priceFilter"]["tickSize"] == "0.01"
    [ticker] = get("/v5/market/tickers?category=spot&symbol=BTCUSDT")["list"]
    assert (ticker["bid1Price"], ticker["ask1Price"]) == ("59999.99", "60000.01")
    book = get("/v5/market/orderbook?category=spot&symbol=BTCUSDT&limit=3")
    assert [level[0] for level in book["b"]] == ["59999.99", "59999.98", "59999.97"]
    assert len(book["a"]) == 3 and book["s"] == "BTCUSDT"


def test_every_call_goes_through_the_venue_guard_and_what_it_holds_back_is_never_sent(
    setup: Setup,
) -> None:
    """With the real VenueGuard: a submit and a cancel pass through it; once its circuit is
    open, a submit raises VenueUnavailable (nothing sent: the router rejects it), a cancel is
    CANCEL_REJECTED and a modify MODIFY_REJECTED, each saying why, and nothing reaches Bybit."""
    settings = VenueResilience(failure_threshold=1, reset_timeout_ms=60_000, retry_attempts=0)
    guard = VenueGuard("bybit", settings, (ccxt.NetworkError,))
    setup.client.guard = guard
    resting = order()
    setup.client.submit_order(resting)
    setup.wait_for(resting.order_id, T.EXECUTION_TYPE_ACCEPTED)
    assert guard.status().calls >= 1

    setup.fake.fault("5xx", path="/v5/order/realtime", method="GET")
    with pytest.raises(ccxt.BaseError):
        setup.client.open_orders()  # one transport failure opens the circuit
    assert guard.status().circuit == "open"
    asked = len(setup.fake.requests)

    held = order()
    with pytest.raises(VenueUnavailable):
        setup.client.submit_order(held)
    setup.client.cancel_order(resting.order_id, "cancel-1")
    [refused] = setup.wait_for(resting.order_id, T.EXECUTION_TYPE_CANCEL_REJECTED)
    assert refused.request_id == "cancel-1" and "not sent" in refused.message
    setup.client.modify_order(resting.order_id, "modify-1", None, Decimal("58000.00"))
    [unchanged] = setup.wait_for(resting.order_id, T.EXECUTION_TYPE_MODIFY_REJECTED)
    assert unchanged.request_id == "modify-1" and "not sent" in unchanged.message
    assert setup.fake.count(held.order_id) == 0
    assert all(path != "/v5/order/cancel" for _, path in setup.fake.requests[asked:])
    assert all(path != "/v5/order/amend" for _, path in setup.fake.requests[asked:])
