"""The CCXT Binance spot adapter against a fake Binance spot REST server on loopback, where Binance
has its own ways: its order-form filters, its errors, its spot testnet and LIMIT_MAKER. The
scenarios every exchange shares (fills, cancels, the faults that make a submit's outcome unknown)
are in test_ccxt_exchanges.py."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal

import pytest
from execution_router.venues.ccxt_client import CcxtBinanceSpotClient
from trading.v1 import types_pb2

from tests.fakes import binance_spot
from tests.fakes.binance_spot import FakeBinanceSpot
from tests.fakes.server import API_KEY, SECRET
from tests.integration.ccxt_support import BINANCE, Setup, order, running, serving

T = types_pb2


@pytest.fixture
def fake() -> Iterator[FakeBinanceSpot]:
    with serving(BINANCE) as server:
        yield server


@pytest.fixture
def setup(fake: FakeBinanceSpot) -> Iterator[Setup]:
    with running(BINANCE, fake) as made:
        yield made


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


def test_sandbox_mode_points_at_the_spot_testnet_and_a_base_url_overrides_it() -> None:
    def urls(
        sandbox: bool = False, base_url: str | None = None, stream_url: str | None = None
    ) -> dict[str, str]:
        client = CcxtBinanceSpotClient(
            lambda report: None,
            api_key="k",
            secret="s",
            symbols={},
            sandbox=sandbox,
            base_url=base_url,
            stream_url=stream_url,
        )
        api = client._exchange.urls["api"]
        shown = {k: v for k, v in api.items() if isinstance(v, str)}
        streaming = "on" if client.streaming else "off"
        return shown | {"stream": api["ws"]["ws-api"]["spot"], "streaming": streaming}

    live = urls()
    assert live["private"] == "https://api.binance.com/api/v3"
    assert (live["stream"], live["streaming"]) == ("wss://ws-api.binance.com:443/ws-api/v3", "on")
    testnet = urls(sandbox=True)
    assert testnet["private"] == "https://testnet.binance.vision/api/v3"
    assert testnet["stream"] == "wss://ws-api.testnet.binance.vision/ws-api/v3"
    local = urls(sandbox=True, base_url="http://127.0.0.1:9")
    assert (local["public"], local["private"]) == ("http://127.0.0.1:9/api/v3",) * 2
    assert local["streaming"] == "off"  # a REST fake and no stream URL: polling only
    both = urls(base_url="http://127.0.0.1:9", stream_url="ws://127.0.0.1:8/ws-api/v3")
    assert (both["stream"], both["streaming"]) == ("ws://127.0.0.1:8/ws-api/v3", "on")


def test_a_post_only_order_goes_as_limit_maker(setup: Setup) -> None:
    maker = order(post_only=True)
    setup.client.submit_order(maker)
    setup.wait_for(maker.order_id, T.EXECUTION_TYPE_ACCEPTED)
    assert setup.fake.orders[maker.order_id].type == "LIMIT_MAKER"


def test_price_filter_bounds_are_checked_before_sending() -> None:
    rules = replace(binance_spot.BTCUSDT, max_price=Decimal("61000"), min_price=Decimal("59000"))
    fake = FakeBinanceSpot(API_KEY, SECRET, [rules]).start()
    try:
        with running(BINANCE, fake) as setup:
            high = order(price="61000.01")
            setup.client.submit_order(high)
            [refused] = setup.wait_for(high.order_id, T.EXECUTION_TYPE_REJECTED)
            assert "above BTC/USDT's maximum price 61000" in refused.message
            low = order(side=T.SIDE_SELL, price="58999.99")
            setup.client.submit_order(low)
            [below] = setup.wait_for(low.order_id, T.EXECUTION_TYPE_REJECTED)
            assert "below BTC/USDT's minimum price 59000" in below.message
            assert fake.count(high.order_id) == fake.count(low.order_id) == 0
    finally:
        fake.stop()


def test_a_stop_to_a_venue_not_holding_stops_is_rejected_naming_the_emulator(
    setup: Setup,
) -> None:
    stop = order(T.ORDER_TYPE_STOP_MARKET, price=None, trigger_price=Decimal("61000.00"))
    setup.client.submit_order(stop)
    [rejected] = setup.wait_for(stop.order_id, T.EXECUTION_TYPE_REJECTED)
    assert "native_stops" in rejected.message and setup.fake.count(stop.order_id) == 0
