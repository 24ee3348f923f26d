"""The CCXT Bybit v5 spot adapter against a fake Bybit v5 REST server on loopback, where Bybit has
its own ways: market buys in the base coin, amends, its recv window, lists that lag, statuses
it never documented, PostOnly, its testnet, its market data, and the venue guard on every call.
The scenarios every exchange shares (fills, cancels, the faults that make a submit's outcome
unknown) are in test_ccxt_exchanges.py."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import ccxt  # type: ignore[import-untyped]
import pytest
from execution_router.domain.venue_types import Report
from execution_router.venues.bybit import CcxtBybitSpotClient
from execution_router.venues.resilience import VenueGuard, VenueUnavailable
from trading.v1 import types_pb2
from trading_core.config import VenueResilience

from tests.fakes.bybit_v5 import FakeBybitSpot
from tests.integration.ccxt_support import BYBIT, Setup, client, order, running, serving
from tests.support import wait_until

T = types_pb2


@pytest.fixture
def fake() -> Iterator[FakeBybitSpot]:
    with serving(BYBIT) as server:
        yield server


@pytest.fixture
def setup(fake: FakeBybitSpot) -> Iterator[Setup]:
    with running(BYBIT, fake) as made:
        yield made


def test_a_market_buy_is_sent_in_the_base_coin(setup: Setup) -> None:
    new = order(T.ORDER_TYPE_MARKET, T.SIDE_BUY, "0.0020", None)
    setup.client.submit_order(new)
    [filled] = setup.wait_for(new.order_id, T.EXECUTION_TYPE_FILLED)
    assert setup.fake.orders[new.order_id].qty == Decimal("0.002")  # not 0.002 USDT's worth
    assert filled.cumulative_quantity == Decimal("0.002")


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


def test_a_submit_answered_without_its_order_id_is_looked_up_not_sent_again(
    setup: Setup,
) -> None:
    setup.fake.fault("missing", field="orderId")
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


def test_a_request_older_than_its_recv_window_is_refused_with_a_clear_reason(
    fake: FakeBybitSpot,
) -> None:
    reports: list[Report] = []
    adapter = client(BYBIT, fake, reports)
    adapter._exchange.options["timeDifference"] = 5000  # our clock 5 s behind: past the window
    adapter.start()
    try:
        new = order()
        adapter.submit_order(new)
        [rejected] = wait_until(
            lambda: [r for r in reports if r.execution_type == T.EXECUTION_TYPE_REJECTED],
            10,
            "the order rejected",
        )
        assert "timestamp" in rejected.message and "10002" in rejected.message
        assert fake.orders == {} and fake.count(new.order_id) == 1
    finally:
        adapter.stop()


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
        exchange = client._exchange
        api = exchange.urls["api"] | {"stream": exchange.urls["api"]["ws"]["private"]["contract"]}
        return {
            k: v.replace("{hostname}", exchange.hostname)
            for k, v in api.items()
            if isinstance(v, str)
        }

    assert urls()["private"] == "https://api.bybit.com"
    assert urls()["stream"] == "wss://stream.bybit.com/v5/private"
    assert urls(sandbox=True)["private"] == "https://api-testnet.bybit.com"
    assert urls(sandbox=True)["stream"] == "wss://stream-testnet.bybit.com/v5/private"
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


@pytest.fixture
def quiet(fake: FakeBybitSpot) -> Iterator[Setup]:
    """The adapter with no stream and no poll within a test: only the test's calls are made."""
    with running(BYBIT, fake, stream=False, poll_interval_s=60) as made:
        yield made


def test_every_call_goes_through_the_venue_guard_and_what_it_holds_back_is_never_sent(
    quiet: Setup,
) -> None:
    """With the real VenueGuard: a submit and a cancel pass through it; once its circuit is
    open, a submit raises VenueUnavailable (nothing sent: the router rejects it), a cancel is
    CANCEL_REJECTED and a modify MODIFY_REJECTED, each saying why, and nothing reaches Bybit."""
    setup = quiet
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


def test_a_malformed_answer_is_counted_as_a_venue_problem_and_nothing_is_guessed(
    setup: Setup,
) -> None:
    setup.fake.fault("malformed", apply=False)
    new = order()
    setup.client.submit_order(new)
    setup.wait_for(new.order_id, T.EXECUTION_TYPE_ACCEPTED)
    assert setup.client.problems == 1  # shown as VenueStatus.problem_count
    assert setup.placed(new.order_id) == 1  # looked up, then sent once more: never two orders


def test_a_price_inside_the_outer_limit_but_beyond_the_inner_is_left_to_bybit(
    setup: Setup,
) -> None:
    """Bybit's spot price limit depends on a premium we cannot know: the adapter refuses what is
    beyond the outer bound (y) before sending; between the inner bound (x, with no premium) and
    y it sends, and Bybit's refusal comes back with its reason."""
    between = order(price="64000.00")  # above 60000 x 1.05, below 60000 x 1.1
    setup.client.submit_order(between)
    [rejected] = setup.wait_for(between.order_id, T.EXECUTION_TYPE_REJECTED)
    assert "Buy order price cannot be higher than 63000. (retCode 170193)" in rejected.message
    assert setup.fake.count(between.order_id) == 1


def test_a_stop_the_last_price_has_already_reached_is_refused_before_it_is_sent(
    fake: FakeBybitSpot,
) -> None:
    """Bybit spot would take a buy stop below the last price as one that waits for a fall: the
    adapter refuses it rather than let it wait for the wrong move."""
    with running(BYBIT, fake, native_stops=True) as setup:
        below = order(
            T.ORDER_TYPE_STOP_MARKET, T.SIDE_BUY, "0.0100", None, trigger_price=Decimal("59000.00")
        )
        setup.client.submit_order(below)
        [rejected] = setup.wait_for(below.order_id, T.EXECUTION_TYPE_REJECTED)
        assert "buy stop's trigger 59000 is at or below the last price 60000" in rejected.message
        assert fake.count(below.order_id) == 0


def test_a_waiting_stop_is_cancelled_as_a_conditional_order_and_a_triggered_one_as_an_order(
    fake: FakeBybitSpot,
) -> None:
    """Bybit's cancel looks among one kind of spot order (orderFilter): the adapter names the
    conditional kind for a stop it has not seen trade, and the other kind when the stop has
    triggered in between."""
    with running(BYBIT, fake, native_stops=True) as setup:
        trigger = Decimal("61000.00")
        waiting = order(
            T.ORDER_TYPE_STOP_LIMIT, T.SIDE_BUY, "0.0100", "61100.00", trigger_price=trigger
        )
        triggered = order(
            T.ORDER_TYPE_STOP_LIMIT, T.SIDE_BUY, "0.0100", "61100.00", trigger_price=trigger
        )
        for stop in (waiting, triggered):
            setup.client.submit_order(stop)
            setup.wait_for(stop.order_id, T.EXECUTION_TYPE_ACCEPTED)

        setup.client.cancel_order(waiting.order_id, "cancel-1")
        [canceled] = setup.wait_for(waiting.order_id, T.EXECUTION_TYPE_CANCELED)
        assert canceled.request_id == "cancel-1"
        assert fake.orders[waiting.order_id].status == "Deactivated"

        fake.market_price = Decimal("61200")  # above the limit: it rests once triggered
        fake.cross(Decimal("61200"))
        assert fake.orders[triggered.order_id].status == "New"
        setup.client.cancel_order(triggered.order_id, "cancel-2")
        [canceled] = setup.wait_for(triggered.order_id, T.EXECUTION_TYPE_CANCELED)
        assert canceled.request_id == "cancel-2"
        assert fake.orders[triggered.order_id].status == "Cancelled"
        assert fake.count(waiting.order_id) == fake.count(triggered.order_id) == 1
