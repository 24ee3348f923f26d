"""The execution-client contract (venues/base.py), run against every venue adapter: what the
router may count on, whatever the venue. Each adapter comes with a way for the test to make its
market (a quote for the paper venue; a fake's hooks for an exchange) and its reports collected
from `emit`. The adapters: the paper venue, and the CCXT Binance spot, CCXT Bybit v5 spot (with
their user-data streams) and QuantConnect adapters, each against its fake on loopback (a fake's
resting buy fills when its market trades at the limit; its market is calm without help).

- A new order is acknowledged (ACCEPTED) under its own order id, the client order id.
- A marketable order fills: fill reports carry a trade id, exact decimals and a fee.
- A second submit of the same order id makes no second order, and never reports the first one
  rejected (a retry is always safe).
- A cancel is answered CANCELED, or CANCEL_REJECTED for an order finished or unknown, each
  carrying the cancel's request id.
- A modify is answered MODIFIED (the new quantity and limit in the report and in open_orders)
  or MODIFY_REJECTED, carrying its request id.
- open_orders shows what rests, with its leaves; fills_since every fill since a moment.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from execution_router.domain.venue_types import Report, VenueOrder
from execution_router.venues.base import ExecutionClient
from execution_router.venues.bybit import CcxtBybitSpotClient
from execution_router.venues.ccxt_client import CcxtBinanceSpotClient
from execution_router.venues.quantconnect import QuantConnectClient
from execution_router.venues.simulation import SimulationClient
from trading.v1 import types_pb2
from trading_core.clock import SystemClock
from trading_core.config import Instrument, SimulationVenue
from trading_core.quotes import Quote

from tests.fakes import binance_spot, bybit_v5
from tests.fakes.binance_spot import FakeBinanceSpot
from tests.fakes.bybit_v5 import FakeBybitSpot
from tests.fakes.quantconnect import FakeQuantConnect
from tests.fakes.server import API_KEY, SECRET
from tests.integration.reports_seen import ReportsSeen
from tests.support import wait_until

T = types_pb2
BTC = Instrument(
    symbol="BTC-USD",
    tick_size=Decimal("0.01"),
    step_size=Decimal("0.0001"),
    min_notional=Decimal("10"),
    initial_price=Decimal("60000"),
)
_ids = (f"contract-{n}" for n in itertools.count(1))


@dataclass
class Venue(ReportsSeen):
    """An adapter under test, its reports, and the test's hand on its market."""

    client: ExecutionClient
    reports: list[Report]
    # Makes the market cross a resting buy at `price` (fills it).
    cross: Callable[[Decimal], None]
    # Sets a market where nothing near `price` trades (a buy at it rests).
    calm: Callable[[Decimal], None]
    closers: list[Callable[[], None]] = field(default_factory=list)


def _simulation() -> Venue:
    reports: list[Report] = []
    settings = SimulationVenue(slippage_bps=Decimal(0), fill_delay_ms=0, fee_bps=Decimal(10))
    client = SimulationClient(reports.append, settings, [BTC], SystemClock())

    def quote(bid: Decimal, ask: Decimal) -> None:
        client.on_quote(Quote("BTC-USD", bid, ask, Decimal(5), Decimal(5), datetime.now(UTC)))

    venue = Venue(
        client,
        reports,
        cross=lambda price: quote(price - 2, price),
        calm=lambda price: quote(price + 100, price + 102),
    )
    venue.closers.append(client.stop)
    return venue


def _with_fake(
    fake: FakeBinanceSpot | FakeBybitSpot | FakeQuantConnect,
    client: ExecutionClient,
    reports: list[Report],
) -> Venue:
    venue = Venue(client, reports, cross=fake.cross, calm=lambda price: None)
    venue.closers += [client.stop, fake.stop]
    return venue


def _binance() -> Venue:
    fake = FakeBinanceSpot(API_KEY, SECRET, [binance_spot.BTCUSDT]).start()
    reports: list[Report] = []
    client = CcxtBinanceSpotClient(
        reports.append, base_url=fake.url, stream_url=fake.stream_url, **_CCXT
    )
    return _with_fake(fake, client, reports)


def _bybit() -> Venue:
    # The market trades above the suite's 60000 limit, so its buys rest until crossed.
    fake = FakeBybitSpot(API_KEY, SECRET, [bybit_v5.BTCUSDT], market_price=Decimal("60100"))
    fake.start()
    reports: list[Report] = []
    client = CcxtBybitSpotClient(
        reports.append, base_url=fake.url, stream_url=fake.stream_url, **_CCXT
    )
    return _with_fake(fake, client, reports)


def _quantconnect() -> Venue:
    # ACCEPTED comes from the live orders (the fake shows an order at once); a modify is
    # answered MODIFY_REJECTED, as the contract allows.
    fake = FakeQuantConnect("424242", SECRET, 23456789, ["BTCUSD"]).start()
    reports: list[Report] = []
    client = QuantConnectClient(
        reports.append,
        user_id="424242",
        api_token=SECRET,
        project_id=23456789,
        symbols={"BTC-USD": "BTCUSD"},
        base_url=fake.url,
        poll_interval_s=0.05,
        read_timeout_s=2.0,
    )
    return _with_fake(fake, client, reports)


_CCXT: dict[str, Any] = {
    "api_key": API_KEY,
    "secret": SECRET,
    "symbols": {"BTC-USD": "BTC/USDT"},
    "timeout_s": 2.0,
    "poll_interval_s": 0.05,
}
ADAPTERS: dict[str, Callable[[], Venue]] = {
    "simulation": _simulation,
    "binance": _binance,
    "bybit": _bybit,
    "quantconnect": _quantconnect,
}


@pytest.fixture(params=sorted(ADAPTERS))
def venue(request: pytest.FixtureRequest) -> Iterator[Venue]:
    made = ADAPTERS[request.param]()
    made.client.start()
    made.calm(Decimal(60000))
    yield made
    for close in made.closers:
        close()


def limit_buy(price: str = "60000", quantity: str = "0.01") -> VenueOrder:
    return VenueOrder(
        next(_ids),
        "acct-contract",
        "BTC-USD",
        T.SIDE_BUY,
        T.ORDER_TYPE_LIMIT,
        T.TIME_IN_FORCE_GTC,
        Decimal(quantity),
        Decimal(price),
    )


def test_a_new_order_is_accepted_under_its_own_id_and_rests(venue: Venue) -> None:
    order = limit_buy()
    venue.client.submit_order(order)
    [accepted] = venue.wait_for(order.order_id, T.EXECUTION_TYPE_ACCEPTED)
    assert (accepted.leaves_quantity, accepted.cumulative_quantity) == (Decimal("0.01"), Decimal(0))
    [shown] = [r for r in venue.client.open_orders() if r.order_id == order.order_id]
    assert shown.leaves_quantity == Decimal("0.01")


def test_a_crossed_order_fills_with_a_trade_id_exact_decimals_and_a_fee(venue: Venue) -> None:
    order = limit_buy()
    before = datetime.now(UTC) - timedelta(seconds=1)
    venue.client.submit_order(order)
    venue.wait_for(order.order_id, T.EXECUTION_TYPE_ACCEPTED)
    venue.cross(Decimal(60000))
    [filled] = venue.wait_for(order.order_id, T.EXECUTION_TYPE_FILLED)
    assert filled.trade_id
    assert (filled.last_quantity, filled.cumulative_quantity) == (Decimal("0.01"),) * 2
    assert filled.last_price is not None and filled.last_price <= Decimal(60000)
    assert isinstance(filled.fee, Decimal) and filled.fee > 0
    assert filled.trade_id in {f.trade_id for f in venue.client.fills_since(before)}
    assert not [r for r in venue.client.open_orders() if r.order_id == order.order_id]


def test_a_second_submit_of_an_order_id_makes_no_second_order(venue: Venue) -> None:
    order = limit_buy()
    venue.client.submit_order(order)
    venue.wait_for(order.order_id, T.EXECUTION_TYPE_ACCEPTED)
    venue.client.submit_order(order)
    venue.cross(Decimal(60000))
    venue.wait_for(order.order_id, T.EXECUTION_TYPE_FILLED)
    kinds = [r.execution_type for r in venue.of(order.order_id)]
    assert kinds.count(T.EXECUTION_TYPE_ACCEPTED) == 1
    assert kinds.count(T.EXECUTION_TYPE_FILLED) == 1
    assert T.EXECUTION_TYPE_REJECTED not in kinds


def test_a_cancel_is_answered_with_its_request_id_and_a_second_one_is_rejected(
    venue: Venue,
) -> None:
    order = limit_buy()
    venue.client.submit_order(order)
    venue.wait_for(order.order_id, T.EXECUTION_TYPE_ACCEPTED)
    venue.client.cancel_order(order.order_id, "cancel-1")
    [canceled] = venue.wait_for(order.order_id, T.EXECUTION_TYPE_CANCELED)
    assert canceled.request_id == "cancel-1"
    venue.client.cancel_order(order.order_id, "cancel-2")
    [again] = venue.wait_for(order.order_id, T.EXECUTION_TYPE_CANCEL_REJECTED)
    assert again.request_id == "cancel-2"
    venue.client.cancel_order("contract-unknown", "cancel-3")
    [unknown] = venue.wait_for("contract-unknown", T.EXECUTION_TYPE_CANCEL_REJECTED)
    assert unknown.request_id == "cancel-3"


def test_a_modify_is_answered_with_its_request_id_as_applied_or_rejected(venue: Venue) -> None:
    order = limit_buy()
    venue.client.submit_order(order)
    venue.wait_for(order.order_id, T.EXECUTION_TYPE_ACCEPTED)
    venue.client.modify_order(order.order_id, "modify-1", Decimal("0.02"), Decimal("59990"))

    def answered() -> Report | None:
        kinds = (T.EXECUTION_TYPE_MODIFIED, T.EXECUTION_TYPE_MODIFY_REJECTED)
        found = [r for r in venue.of(order.order_id) if r.execution_type in kinds]
        return found[0] if found else None

    answer = wait_until(answered, 10, "the venue's answer to the modify")
    assert answer.request_id == "modify-1"
    if answer.execution_type == T.EXECUTION_TYPE_MODIFIED:
        assert (answer.leaves_quantity, answer.limit_price) == (Decimal("0.02"), Decimal(59990))
        [shown] = [r for r in venue.client.open_orders() if r.order_id == order.order_id]
        assert shown.leaves_quantity == Decimal("0.02")
