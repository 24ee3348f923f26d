"""The CCXT spot adapters (Binance, Bybit v5) against their fake exchanges on loopback, in the
scenarios every exchange shares: fills with exact decimals and fees, cancels, the faults that
make a submit's outcome unknown (none of which may place an order twice), and the user-data
stream (reports from it, a dropped stream's gap polled, duplicate and out-of-order events). What
one exchange does its own way is tested in its file (test_ccxt_binance.py, test_ccxt_bybit.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from execution_router.domain.venue_types import Report
from trading.v1 import types_pb2

from tests.fakes.server import API_KEY, SECRET
from tests.integration.ccxt_support import (
    BINANCE,
    BYBIT,
    Exchange,
    Setup,
    client,
    order,
    running,
    serving,
)
from tests.support import wait_until

T = types_pb2


def _named(value: object) -> str:
    return value.name if isinstance(value, Exchange) else str(value)


@pytest.fixture(params=[BINANCE, BYBIT], ids=_named)
def exchange(request: pytest.FixtureRequest) -> Exchange:
    made: Exchange = request.param
    return made


@pytest.fixture
def fake(exchange: Exchange) -> Iterator[Any]:
    with serving(exchange) as server:
        yield server


@pytest.fixture
def setup(exchange: Exchange, fake: Any) -> Iterator[Setup]:
    with running(exchange, fake) as made:
        yield made


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
    # Not twice (the poller).
    assert setup.kinds(new.order_id) == [T.EXECUTION_TYPE_ACCEPTED, T.EXECUTION_TYPE_FILLED]


def test_a_cancel_is_answered_canceled_and_a_filled_orders_cancel_rejected(setup: Setup) -> None:
    resting = order()
    setup.client.submit_order(resting)
    setup.wait_for(resting.order_id, T.EXECUTION_TYPE_ACCEPTED)
    setup.client.cancel_order(resting.order_id, "cancel-1")
    [canceled] = setup.wait_for(resting.order_id, T.EXECUTION_TYPE_CANCELED)
    assert (canceled.request_id, canceled.leaves_quantity) == ("cancel-1", Decimal(0))
    assert setup.fake.orders[resting.order_id].status == setup.exchange.canceled

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


def test_a_cancel_after_an_unseen_fill_reports_the_fill_first(
    exchange: Exchange, fake: Any
) -> None:
    # No stream and no poll within the test: the cancel's answer is the first to show the fill.
    with running(exchange, fake, stream=False, poll_interval_s=60) as setup:
        new = order()
        setup.client.submit_order(new)
        setup.wait_for(new.order_id, T.EXECUTION_TYPE_ACCEPTED)
        setup.fake.fill(new.order_id, Decimal("0.003"), Decimal("59000"))
        setup.client.cancel_order(new.order_id, "cancel-1")
        setup.wait_for(new.order_id, T.EXECUTION_TYPE_CANCELED)
    assert setup.kinds(new.order_id) == [
        T.EXECUTION_TYPE_ACCEPTED,
        T.EXECUTION_TYPE_PARTIALLY_FILLED,
        T.EXECUTION_TYPE_CANCELED,
    ]
    assert setup.of(new.order_id)[-1].cumulative_quantity == Decimal("0.003")
    assert setup.fake.orders[new.order_id].status == setup.exchange.partly_canceled


def test_a_second_submit_of_an_order_id_is_not_sent(setup: Setup) -> None:
    new = order()
    setup.client.submit_order(new)
    setup.wait_for(new.order_id, T.EXECUTION_TYPE_ACCEPTED)
    setup.client.submit_order(new)
    assert setup.fake.count(new.order_id) == 1
    assert setup.kinds(new.order_id) == [T.EXECUTION_TYPE_ACCEPTED]


def test_a_submit_the_exchange_already_has_is_adopted_not_rejected(
    exchange: Exchange, fake: Any
) -> None:
    # A restarted adapter sends an order the exchange has (Binance -2010, Bybit 110072): it is
    # looked up and adopted.
    first: list[Report] = []
    adapter = client(exchange, fake, first)
    adapter.start()
    new = order()
    adapter.submit_order(new)
    adapter.stop()
    again: list[Report] = []
    restarted = client(exchange, fake, again)
    restarted.start()
    try:
        restarted.submit_order(new)
        wait_until(lambda: again, 10, "the restarted adapter's report")
        assert [r.execution_type for r in again] == [T.EXECUTION_TYPE_ACCEPTED]
        assert len(fake.orders) == 1 and fake.count(new.order_id) == 2
    finally:
        restarted.stop()


@pytest.mark.parametrize(
    ("exchange", "kind"),
    [
        (BINANCE, "lost"),
        (BINANCE, "timeout"),
        (BYBIT, "lost"),
        (BYBIT, "timeout"),
        (BYBIT, "malformed"),  # the Bybit fake can also cut an answer short
    ],
    ids=_named,
    indirect=["exchange"],
)
def test_a_submit_applied_but_unanswered_is_looked_up_not_sent_again(
    setup: Setup, kind: str
) -> None:
    setup.fake.fault(kind, apply=True, sleep_s=2.0)
    new = order()
    setup.client.submit_order(new)
    [accepted] = setup.wait_for(new.order_id, T.EXECUTION_TYPE_ACCEPTED)
    assert accepted.venue_order_id == str(setup.fake.orders[new.order_id].order_id)
    assert setup.fake.count(new.order_id) == 1
    assert setup.exchange.lookup in setup.fake.requests
    assert T.EXECUTION_TYPE_REJECTED not in setup.kinds(new.order_id)


@pytest.mark.parametrize(
    ("exchange", "kind"),
    [
        (BINANCE, "drop"),
        (BINANCE, "5xx"),
        (BYBIT, "drop"),
        (BYBIT, "5xx"),
        (BYBIT, "malformed"),  # the Bybit fake can also cut an answer short
    ],
    ids=_named,
    indirect=["exchange"],
)
def test_a_submit_not_applied_is_looked_up_then_sent_once_more(setup: Setup, kind: str) -> None:
    setup.fake.fault(kind, apply=False)
    new = order()
    setup.client.submit_order(new)
    setup.wait_for(new.order_id, T.EXECUTION_TYPE_ACCEPTED)
    assert setup.fake.count(new.order_id) == 2  # the lost one, and one after the lookup
    assert setup.placed(new.order_id) == 1
    assert setup.kinds(new.order_id) == [T.EXECUTION_TYPE_ACCEPTED]


def test_a_rate_limited_submit_waits_as_told_and_is_sent_again(setup: Setup) -> None:
    setup.fake.fault("429", retry_after_s=setup.exchange.retry_after_s)
    new = order()
    setup.client.submit_order(new)
    setup.wait_for(new.order_id, T.EXECUTION_TYPE_ACCEPTED)
    assert setup.fake.count(new.order_id) == 2
    assert setup.exchange.lookup not in setup.fake.requests  # a rate limit applied nothing
    assert setup.placed(new.order_id) == 1


def test_a_submit_whose_lookups_fail_too_is_resolved_by_the_poller(setup: Setup) -> None:
    setup.fake.fault("lost", apply=True)
    method, path = setup.exchange.lookup
    for _ in range(5):  # the submit's own lookups fail as well (the poller may take some)
        setup.fake.fault("5xx", path=path, method=method, apply=False)
    new = order()
    setup.client.submit_order(new)
    [accepted] = setup.wait_for(new.order_id, T.EXECUTION_TYPE_ACCEPTED)
    assert accepted.venue_order_id == str(setup.fake.orders[new.order_id].order_id)
    assert setup.fake.count(new.order_id) == 1


def test_a_submit_placed_late_within_its_recv_window_is_adopted_not_sent_again(
    setup: Setup,
) -> None:
    """An exchange may place a request whose answer was lost after the first lookups saw
    nothing: until its recv window has passed, the adapter looks again instead of sending it
    twice."""
    setup.fake.fault("late", sleep_s=0.5)
    new = order()
    setup.client.submit_order(new)
    setup.wait_for(new.order_id, T.EXECUTION_TYPE_ACCEPTED)
    assert setup.fake.count(new.order_id) == 1


def test_a_submit_that_arrives_after_its_recv_window_is_never_placed_and_is_sent_again(
    setup: Setup,
) -> None:
    setup.fake.fault("late", sleep_s=1.5)  # past the 1 s window: the exchange refuses it
    new = order()
    setup.client.submit_order(new)
    setup.wait_for(new.order_id, T.EXECUTION_TYPE_ACCEPTED)
    assert setup.fake.count(new.order_id) == 2
    assert setup.placed(new.order_id) == 1


def test_a_market_order_with_a_protection_price_goes_as_limit_ioc(setup: Setup) -> None:
    inside = order(
        T.ORDER_TYPE_MARKET, T.SIDE_BUY, "0.0010", None, protection_price=Decimal("60100.00")
    )
    setup.client.submit_order(inside)
    [filled] = setup.wait_for(inside.order_id, T.EXECUTION_TYPE_FILLED)
    assert filled.last_price == Decimal("60000")
    sent = setup.fake.orders[inside.order_id]
    form = (setup.exchange.type_of(sent), sent.time_in_force, sent.price)
    assert form == (setup.exchange.limit, "IOC", Decimal("60100"))

    beyond = order(
        T.ORDER_TYPE_MARKET, T.SIDE_BUY, "0.0010", None, protection_price=Decimal("59900.00")
    )
    setup.client.submit_order(beyond)
    [expired] = setup.wait_for(beyond.order_id, T.EXECUTION_TYPE_EXPIRED)
    assert (expired.cumulative_quantity, expired.leaves_quantity) == (Decimal(0), Decimal(0))


def test_a_wrong_secret_gives_a_clear_error_no_order_and_no_secret_in_the_logs(
    exchange: Exchange, fake: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    reports: list[Report] = []
    wrong = "wrong-secret-0000000000000000"
    adapter = client(exchange, fake, reports, wrong)
    adapter.start()
    try:
        new = order()
        adapter.submit_order(new)
        [rejected] = wait_until(
            lambda: [r for r in reports if r.execution_type == T.EXECUTION_TYPE_REJECTED],
            10,
            "the order rejected",
        )
        assert "credentials" in rejected.message and exchange.auth_error in rejected.message
        assert fake.orders == {}
    finally:
        adapter.stop()
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert exchange.name in text  # the wire log and the error were logged
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
    for shown in setup.exchange.wire_log:  # the adapter's wire log was there, redacted
        assert shown in text
    assert API_KEY not in text and SECRET not in text


# -- price bands ------------------------------------------------------------------------------


def test_an_order_outside_the_price_band_is_refused_before_it_is_sent_naming_the_bound(
    exchange: Exchange, fake: Any
) -> None:
    highest, lowest = (Decimal(p) for p in exchange.band)
    with running(exchange, fake, band_reference_ttl_s=0) as setup:
        above = order(price=str(highest + Decimal("0.01")))
        setup.client.submit_order(above)
        [refused] = setup.wait_for(above.order_id, T.EXECUTION_TYPE_REJECTED)
        assert f"above BTC/USDT's price band: at most {highest}" in refused.message
        below = order(side=T.SIDE_SELL, price=str(lowest - Decimal("0.01")))
        setup.client.submit_order(below)
        [low] = setup.wait_for(below.order_id, T.EXECUTION_TYPE_REJECTED)
        assert f"below BTC/USDT's price band: at least {lowest}" in low.message
        protected = order(
            T.ORDER_TYPE_MARKET, price=None, protection_price=highest + Decimal("0.01")
        )
        setup.client.submit_order(protected)  # sent as a limit IOC at its protection price
        setup.wait_for(protected.order_id, T.EXECUTION_TYPE_REJECTED)
        never = (above.order_id, below.order_id, protected.order_id)
        assert [fake.count(order_id) for order_id in never] == [0, 0, 0]
        at_edge = order(price=str(highest))
        setup.client.submit_order(at_edge)  # sent: the exchange decides (Bybit: see its file)
        wait_until(lambda: setup.of(at_edge.order_id), 10, "the exchange's answer")
        assert fake.count(at_edge.order_id) == 1
        # The band follows the exchange's reference price, read when an order is checked.
        fake.market_price = Decimal("65000")
        again = order(price=str(highest + Decimal("0.01")))
        setup.client.submit_order(again)
        setup.wait_for(again.order_id, T.EXECUTION_TYPE_ACCEPTED)


# -- the user-data stream ---------------------------------------------------------------------

_POLLS = {
    ("GET", "/api/v3/openOrders"),
    ("GET", "/api/v3/myTrades"),
    ("GET", "/api/v3/order"),
    ("GET", "/v5/order/realtime"),
    ("GET", "/v5/order/history"),
    ("GET", "/v5/execution/list"),
}


def _stream_up(setup: Setup) -> None:
    wait_until(lambda: setup.client.stream_up, 10, "the user-data stream subscribed")


def _resting_with_the_stream_up(setup: Setup) -> str:
    """A resting buy of 0.01, accepted, with the stream subscribed: its order id."""
    _stream_up(setup)
    new = order()
    setup.client.submit_order(new)
    setup.wait_for(new.order_id, T.EXECUTION_TYPE_ACCEPTED)
    return new.order_id


def test_fills_and_cancels_are_reported_from_the_user_data_stream_without_polling(
    setup: Setup,
) -> None:
    order_id = _resting_with_the_stream_up(setup)
    asked = len(setup.fake.requests)
    setup.fake.fill(order_id, Decimal("0.004"), Decimal("59000"))
    [partial] = setup.wait_for(order_id, T.EXECUTION_TYPE_PARTIALLY_FILLED)
    assert (partial.last_quantity, partial.cumulative_quantity) == (Decimal("0.004"),) * 2
    assert partial.fee == Decimal("0.000004") * Decimal("59000")  # exact, from the event's JSON
    setup.exchange.cancel_at_venue(setup.fake, order_id)  # the exchange ends it itself
    [canceled] = setup.wait_for(order_id, T.EXECUTION_TYPE_CANCELED)
    assert canceled.cumulative_quantity == Decimal("0.004") and canceled.leaves_quantity == 0
    assert not _POLLS & set(setup.fake.requests[asked:])  # the stream told, no poll asked
    assert setup.fake.stream.sent > 0


def test_a_stream_dropped_mid_run_is_polled_meanwhile_and_reconnects_nothing_lost(
    setup: Setup,
) -> None:
    order_id = _resting_with_the_stream_up(setup)
    assert setup.client.report_channel() == "pushed"  # GetVenueStatus.report_channel
    connections = setup.fake.stream.connections
    setup.fake.stream.refuse(True)
    setup.fake.stream.drop()
    wait_until(lambda: not setup.client.stream_up, 10, "the adapter to see the stream down")
    assert setup.client.report_channel() == "polled_stream_down"
    # Traded while the stream is down: the poller reports it.
    setup.fake.fill(order_id, Decimal("0.004"), Decimal("59000"))
    setup.wait_for(order_id, T.EXECUTION_TYPE_PARTIALLY_FILLED)

    setup.fake.stream.refuse(False)
    _stream_up(setup)
    assert setup.fake.stream.connections > connections  # reconnected
    # Traded just as it came back and later: the gap's poll and the stream report each once.
    setup.fake.fill(order_id, Decimal("0.003"), Decimal("59000"))
    setup.fake.stream.drop()
    setup.fake.fill(order_id, Decimal("0.003"), Decimal("59000"))
    [filled] = setup.wait_for(order_id, T.EXECUTION_TYPE_FILLED)
    assert filled.cumulative_quantity == Decimal("0.01")
    trades = [r.trade_id for r in setup.of(order_id) if r.trade_id]
    assert len(trades) == len(set(trades)) == 3
    assert setup.kinds(order_id) == [
        T.EXECUTION_TYPE_ACCEPTED,
        T.EXECUTION_TYPE_PARTIALLY_FILLED,
        T.EXECUTION_TYPE_PARTIALLY_FILLED,
        T.EXECUTION_TYPE_FILLED,
    ]
    assert setup.fake.count(order_id) == 1


def test_duplicate_and_out_of_order_stream_events_report_each_state_once_in_order(
    setup: Setup,
) -> None:
    order_id = _resting_with_the_stream_up(setup)
    setup.fake.stream.hold()
    setup.fake.stream.duplicate(100)
    setup.fake.fill(order_id, Decimal("0.004"), Decimal("59000"))
    setup.fake.fill(order_id, Decimal("0.002"), Decimal("59000.01"))
    setup.exchange.cancel_at_venue(setup.fake, order_id)
    setup.fake.stream.release(reverse=True)  # the end first, then the trades, each twice
    [canceled] = setup.wait_for(order_id, T.EXECUTION_TYPE_CANCELED)
    assert canceled.cumulative_quantity == Decimal("0.006")
    assert setup.kinds(order_id) == [
        T.EXECUTION_TYPE_ACCEPTED,
        T.EXECUTION_TYPE_PARTIALLY_FILLED,
        T.EXECUTION_TYPE_PARTIALLY_FILLED,
        T.EXECUTION_TYPE_CANCELED,  # only once its trades were reported
    ]
    fills = [r for r in setup.of(order_id) if r.trade_id]
    assert sorted(r.last_quantity or 0 for r in fills) == [Decimal("0.002"), Decimal("0.004")]
    assert fills[-1].cumulative_quantity == Decimal("0.006")


def test_calls_for_different_orders_run_concurrently_while_one_submit_is_being_resolved(
    setup: Setup,
) -> None:
    """A submit whose answer is lost waits for its lookups (seconds: its recv window); an order
    submitted after it is placed and accepted meanwhile, and each is placed once."""
    setup.fake.fault("drop", apply=False)
    lost, other = order(), order()
    setup.client.submit_order(lost)
    wait_until(lambda: setup.fake.count(lost.order_id), 10, "the first submit to arrive")
    setup.client.submit_order(other)
    setup.wait_for(other.order_id, T.EXECUTION_TYPE_ACCEPTED)
    assert not setup.of(lost.order_id)  # still being resolved: its recv window has not passed
    setup.wait_for(lost.order_id, T.EXECUTION_TYPE_ACCEPTED)
    assert (setup.placed(lost.order_id), setup.placed(other.order_id)) == (1, 1)
    assert setup.fake.count(other.order_id) == 1


def test_native_stops_wait_at_the_exchange_untriggered_and_trade_when_the_market_reaches_them(
    exchange: Exchange, fake: Any
) -> None:
    with running(exchange, fake, native_stops=True) as setup:
        trigger = Decimal("58000.00")
        stop = order(T.ORDER_TYPE_STOP_MARKET, T.SIDE_SELL, "0.0100", None, trigger_price=trigger)
        limit = order(
            T.ORDER_TYPE_STOP_LIMIT, T.SIDE_SELL, "0.0100", "57900.00", trigger_price=trigger
        )
        for sent in (stop, limit):
            setup.client.submit_order(sent)
            setup.wait_for(sent.order_id, T.EXECUTION_TYPE_ACCEPTED)
        held = [fake.orders[stop.order_id], fake.orders[limit.order_id]]
        assert tuple(exchange.type_of(o) for o in held) == exchange.stops
        assert [exchange.trigger_of(o) for o in held] == [trigger, trigger]
        resting = {r.order_id for r in setup.client.open_orders()}
        assert {stop.order_id, limit.order_id} <= resting

        fake.cross(Decimal("58000.01"))  # not reached: both wait (a sell stop waits for a fall)
        assert all(exchange.untriggered(o) for o in held)
        fake.cross(Decimal("57990.00"))  # reached: the stop trades at the market, the limit
        [filled] = setup.wait_for(stop.order_id, T.EXECUTION_TYPE_FILLED)  # at its limit
        assert filled.last_price == Decimal("57990")
        [limited] = setup.wait_for(limit.order_id, T.EXECUTION_TYPE_FILLED)
        assert limited.last_price == Decimal("57900")
        assert fake.count(stop.order_id) == fake.count(limit.order_id) == 1
