"""The CCXT Binance spot adapter against a fake Binance spot REST server on loopback: the wire
format, signatures, fills with exact decimals and fees, cancels, and the faults that make a
submit's outcome unknown (none of which may place an order twice)."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from execution_router.domain.venue_types import Report, VenueOrder
from execution_router.venues.ccxt_client import CcxtBinanceSpotClient
from trading.v1 import types_pb2

from tests.fakes.binance_spot import FakeBinanceSpot, SymbolRules
from tests.support import wait_until

T = types_pb2
API_KEY = "test-api-key-0123456789abcdef"
SECRET = "test-secret-fedcba9876543210-do-not-log"
BTCUSDT = SymbolRules(
    symbol="BTCUSDT",
    base="BTC",
    quote="USDT",
    tick_size=Decimal("0.01"),
    step_size=Decimal("0.0001"),
    min_qty=Decimal("0.0001"),
    max_qty=Decimal("100"),
    min_notional=Decimal("10"),
)
_ids = (f"ccxt-{n}" for n in itertools.count(1))


@dataclass
class Setup:
    fake: FakeBinanceSpot
    client: CcxtBinanceSpotClient
    reports: list[Report]

    def of(self, order_id: str) -> list[Report]:
        return [r for r in list(self.reports) if r.order_id == order_id]

    def wait_for(self, order_id: str, kind: int, count: int = 1) -> list[Report]:
        def arrived() -> list[Report] | None:
            found = [r for r in self.of(order_id) if r.execution_type == kind]
            return found if len(found) >= count else None

        name = T.ExecutionType.Name(T.ExecutionType.ValueType(kind))
        return wait_until(arrived, 10, f"{count} {name} report(s) of {order_id}")


def _client(fake: FakeBinanceSpot, reports: list[Report], secret: str) -> CcxtBinanceSpotClient:
    return CcxtBinanceSpotClient(
        reports.append,
        api_key=API_KEY,
        secret=secret,
        symbols={"BTC-USD": "BTC/USDT"},
        base_url=fake.url,
        timeout_s=1.0,
        poll_interval_s=0.05,
        lost_submit_grace_s=0.05,
        max_retry_after_s=2.0,
        recv_window_ms=1000,  # a lost request may be executed up to 2 s after it was sent
    )


@pytest.fixture
def fake() -> Iterator[FakeBinanceSpot]:
    server = FakeBinanceSpot(API_KEY, SECRET, [BTCUSDT], market_price=Decimal("60000.00"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def setup(fake: FakeBinanceSpot) -> Iterator[Setup]:
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
) -> VenueOrder:
    return VenueOrder(
        next(_ids),
        "acct-ccxt",
        "BTC-USD",
        T.Side.ValueType(side),
        T.OrderType.ValueType(kind),
        T.TIME_IN_FORCE_GTC,
        Decimal(quantity),
        Decimal(price) if price is not None else None,
    )


def test_a_limit_order_is_accepted_rests_and_fills_with_exact_decimals_and_a_fee(
    setup: Setup,
) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    new = order()
    setup.client.submit_order(new)
    [accepted] = setup.wait_for(new.order_id, T.EXECUTION_TYPE_ACCEPTED)
    assert accepted.venue_order_id == str(setup.fake.orders[new.order_id].order_id)
    assert (accepted.cumulative_quantity, accepted.leaves_quantity) == (Decimal(0), Decimal("0.01"))
    [shown] = [r for r in setup.client.open_orders() if r.order_id == new.order_id]
    assert shown.leaves_quantity == Decimal("0.01")
    assert shown.limit_price == Decimal("59000")

    setup.fake.fill(new.order_id, Decimal("0.004"), Decimal("58999.99"))
    [partial] = setup.wait_for(new.order_id, T.EXECUTION_TYPE_PARTIALLY_FILLED)
    setup.fake.fill(new.order_id, Decimal("0.006"), Decimal("59000.00"))
    [filled] = setup.wait_for(new.order_id, T.EXECUTION_TYPE_FILLED)

    assert partial.trade_id and filled.trade_id and partial.trade_id != filled.trade_id
    assert (partial.last_quantity, partial.last_price) == (Decimal("0.004"), Decimal("58999.99"))
    assert isinstance(partial.last_price, Decimal)
    # A buy pays its commission in BTC (0.1%): reported in USDT at the trade's price, exactly.
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
    kinds = [r.execution_type for r in setup.of(new.order_id)]
    assert kinds == [
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
    kinds = [r.execution_type for r in setup.of(new.order_id)]
    assert kinds == [T.EXECUTION_TYPE_ACCEPTED, T.EXECUTION_TYPE_FILLED]  # not twice (poller)


def test_a_cancel_is_answered_canceled_and_a_filled_orders_cancel_rejected(setup: Setup) -> None:
    resting = order()
    setup.client.submit_order(resting)
    setup.wait_for(resting.order_id, T.EXECUTION_TYPE_ACCEPTED)
    setup.client.cancel_order(resting.order_id, "cancel-1")
    [canceled] = setup.wait_for(resting.order_id, T.EXECUTION_TYPE_CANCELED)
    assert (canceled.request_id, canceled.leaves_quantity) == ("cancel-1", Decimal(0))
    assert setup.fake.orders[resting.order_id].status == "CANCELED"

    filled = order()
    setup.client.submit_order(filled)
    setup.wait_for(filled.order_id, T.EXECUTION_TYPE_ACCEPTED)
    setup.fake.fill(filled.order_id, Decimal("0.01"), Decimal("59000"))
    setup.wait_for(filled.order_id, T.EXECUTION_TYPE_FILLED)
    setup.client.cancel_order(filled.order_id, "cancel-2")
    [rejected] = setup.wait_for(filled.order_id, T.EXECUTION_TYPE_CANCEL_REJECTED)
    assert rejected.request_id == "cancel-2" and "finished" in rejected.message

    setup.client.cancel_order("ccxt-unknown", "cancel-3")
    [unknown] = setup.wait_for("ccxt-unknown", T.EXECUTION_TYPE_CANCEL_REJECTED)
    assert unknown.request_id == "cancel-3" and "does not know" in unknown.message


def test_a_cancel_after_an_unseen_fill_reports_the_fill_first(setup: Setup) -> None:
    new = order()
    setup.client.submit_order(new)
    setup.wait_for(new.order_id, T.EXECUTION_TYPE_ACCEPTED)
    setup.client.stop()  # no poller: the cancel's answer is the first to show the fill
    setup.fake.fill(new.order_id, Decimal("0.003"), Decimal("59000"))
    setup.client.cancel_order(new.order_id, "cancel-1")
    kinds = [r.execution_type for r in setup.of(new.order_id)]
    assert kinds == [
        T.EXECUTION_TYPE_ACCEPTED,
        T.EXECUTION_TYPE_PARTIALLY_FILLED,
        T.EXECUTION_TYPE_CANCELED,
    ]
    assert setup.of(new.order_id)[-1].cumulative_quantity == Decimal("0.003")


def test_a_second_submit_of_an_order_id_is_not_sent(setup: Setup) -> None:
    new = order()
    setup.client.submit_order(new)
    setup.wait_for(new.order_id, T.EXECUTION_TYPE_ACCEPTED)
    setup.client.submit_order(new)
    assert setup.fake.count(new.order_id) == 1
    kinds = [r.execution_type for r in setup.of(new.order_id)]
    assert kinds == [T.EXECUTION_TYPE_ACCEPTED]


def test_a_submit_the_exchange_already_has_is_adopted_not_rejected(
    fake: FakeBinanceSpot,
) -> None:
    # A restarted adapter sends an order the exchange has: -2010, looked up, adopted.
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
        kinds = [r.execution_type for r in again]
        assert kinds == [T.EXECUTION_TYPE_ACCEPTED]
        assert len(fake.orders) == 1
    finally:
        restarted.stop()


@pytest.mark.parametrize("kind", ["lost", "timeout"])
def test_a_submit_applied_but_unanswered_is_looked_up_not_sent_again(
    setup: Setup, kind: str
) -> None:
    setup.fake.fault(kind, apply=True, sleep_s=2.0)
    new = order()
    setup.client.submit_order(new)
    [accepted] = setup.wait_for(new.order_id, T.EXECUTION_TYPE_ACCEPTED)
    assert accepted.venue_order_id == str(setup.fake.orders[new.order_id].order_id)
    assert setup.fake.count(new.order_id) == 1
    assert ("GET", "/api/v3/order") in setup.fake.requests
    assert T.EXECUTION_TYPE_REJECTED not in [r.execution_type for r in setup.of(new.order_id)]


@pytest.mark.parametrize("kind", ["drop", "5xx"])
def test_a_submit_not_applied_is_looked_up_then_sent_once_more(setup: Setup, kind: str) -> None:
    setup.fake.fault(kind, apply=False)
    new = order()
    setup.client.submit_order(new)
    setup.wait_for(new.order_id, T.EXECUTION_TYPE_ACCEPTED)
    assert setup.fake.count(new.order_id) == 2  # the lost one, and one after the lookup
    assert len([o for o in setup.fake.orders.values() if o.client_order_id == new.order_id]) == 1


def test_a_rate_limited_submit_waits_retry_after_and_is_sent_again(setup: Setup) -> None:
    setup.fake.fault("429", retry_after_s=1)
    new = order()
    setup.client.submit_order(new)
    setup.wait_for(new.order_id, T.EXECUTION_TYPE_ACCEPTED)
    assert setup.fake.count(new.order_id) == 2
    assert ("GET", "/api/v3/order") not in setup.fake.requests  # a 429 applied nothing


def test_an_order_off_the_step_is_rejected_without_being_sent(setup: Setup) -> None:
    new = order(quantity="0.00015")
    setup.client.submit_order(new)
    [rejected] = setup.wait_for(new.order_id, T.EXECUTION_TYPE_REJECTED)
    assert "step" in rejected.message
    assert setup.fake.count(new.order_id) == 0


def test_an_order_the_exchange_refuses_is_rejected_with_its_reason(setup: Setup) -> None:
    new = order(quantity="0.0001", price="59000.00")  # 5.9 USDT < min notional 10
    setup.client.submit_order(new)
    [rejected] = setup.wait_for(new.order_id, T.EXECUTION_TYPE_REJECTED)
    assert "NOTIONAL" in rejected.message


def test_a_wrong_secret_gives_a_clear_error_no_order_and_no_secret_in_the_logs(
    fake: FakeBinanceSpot, caplog: pytest.LogCaptureFixture
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
        assert "credentials" in rejected.message and "Signature" in rejected.message
        assert fake.orders == {}
    finally:
        client.stop()
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "binance" in text  # the wire log and the error were logged
    for secret in (API_KEY, wrong, SECRET):
        assert secret not in text


def test_no_secret_in_any_log_line_of_a_whole_order_life(
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
    assert "X-MBX-APIKEY" in text  # CCXT's wire log was there, redacted
    assert API_KEY not in text and SECRET not in text


def test_a_submit_whose_lookups_fail_too_is_resolved_by_the_poller(setup: Setup) -> None:
    setup.fake.fault("lost", apply=True)
    for _ in range(5):  # the submit's own lookups fail as well (the poller may take some)
        setup.fake.fault("5xx", method="GET", apply=False)
    new = order()
    setup.client.submit_order(new)
    [accepted] = setup.wait_for(new.order_id, T.EXECUTION_TYPE_ACCEPTED)
    assert accepted.venue_order_id == str(setup.fake.orders[new.order_id].order_id)
    assert setup.fake.count(new.order_id) == 1


def test_sandbox_mode_points_at_the_spot_testnet_and_a_base_url_overrides_it() -> None:
    def urls(sandbox: bool = False, base_url: str | None = None) -> dict[str, str]:
        client = CcxtBinanceSpotClient(
            lambda report: None,
            api_key="k",
            secret="s",
            symbols={},
            sandbox=sandbox,
            base_url=base_url,
        )
        api: dict[str, str] = client._worker.urls["api"]
        return api

    assert urls()["private"] == "https://api.binance.com/api/v3"
    assert urls(sandbox=True)["private"] == "https://testnet.binance.vision/api/v3"
    local = urls(sandbox=True, base_url="http://127.0.0.1:9")
    assert (local["public"], local["private"]) == ("http://127.0.0.1:9/api/v3",) * 2


def test_a_market_order_with_a_protection_price_goes_as_limit_ioc(setup: Setup) -> None:
    inside = order(T.ORDER_TYPE_MARKET, T.SIDE_BUY, "0.0010", None)
    inside = VenueOrder(**{**inside.__dict__, "protection_price": Decimal("60100.00")})
    setup.client.submit_order(inside)
    [filled] = setup.wait_for(inside.order_id, T.EXECUTION_TYPE_FILLED)
    assert filled.last_price == Decimal("60000")
    sent = setup.fake.orders[inside.order_id]
    assert (sent.type, sent.time_in_force, sent.price) == ("LIMIT", "IOC", Decimal("60100"))

    beyond = order(T.ORDER_TYPE_MARKET, T.SIDE_BUY, "0.0010", None)
    beyond = VenueOrder(**{**beyond.__dict__, "protection_price": Decimal("59900.00")})
    setup.client.submit_order(beyond)
    [expired] = setup.wait_for(beyond.order_id, T.EXECUTION_TYPE_EXPIRED)
    assert (expired.cumulative_quantity, expired.leaves_quantity) == (Decimal(0), Decimal(0))


def test_a_post_only_order_goes_as_limit_maker(setup: Setup) -> None:
    maker = VenueOrder(**{**order().__dict__, "post_only": True})
    setup.client.submit_order(maker)
    setup.wait_for(maker.order_id, T.EXECUTION_TYPE_ACCEPTED)
    assert setup.fake.orders[maker.order_id].type == "LIMIT_MAKER"


def test_a_submit_placed_late_within_its_recv_window_is_adopted_not_sent_again(
    setup: Setup,
) -> None:
    """Binance may place a request whose answer was lost after the first lookups saw nothing:
    until its recvWindow has passed, the adapter looks again instead of sending it twice."""
    setup.fake.fault("late", sleep_s=0.5)
    new = order()
    setup.client.submit_order(new)
    setup.wait_for(new.order_id, T.EXECUTION_TYPE_ACCEPTED)
    assert setup.fake.count(new.order_id) == 1


def test_a_submit_that_arrives_after_its_recv_window_is_never_placed_and_is_sent_again(
    setup: Setup,
) -> None:
    setup.fake.fault("late", sleep_s=1.5)  # past the 1 s window: Binance refuses it
    new = order()
    setup.client.submit_order(new)
    setup.wait_for(new.order_id, T.EXECUTION_TYPE_ACCEPTED)
    assert setup.fake.count(new.order_id) == 2
    assert len([o for o in setup.fake.orders.values() if o.client_order_id == new.order_id]) == 1
