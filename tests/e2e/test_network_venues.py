"""The platform trading on network venues end to end: `execution.mode: direct` against the
Binance spot fake and `execution.mode: quantconnect` against the QuantConnect API fake, each a
real HTTP server on loopback that speaks the venue's documented wire format. An order goes
from gRPC through order-management and the router to the fake, the fake fills it, and the fill
comes back to the order and the position. ListVenues and the venue's own health tell its state;
a venue whose circuit opens turns NOT_SERVING and its orders are rejected with the reason,
never sent, until it answers again."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tradectl.serve import service_specs
from trading.v1 import execution_pb2, positions_pb2, types_pb2
from trading_core.config import load_config
from trading_core.runtime import build_platform

from tests.e2e.conftest import (
    SERVICE_MODULES,
    Clients,
    embedded_overrides,
    running_embedded,
    write_config,
)
from tests.e2e.test_bracket_partial_fill import Market
from tests.e2e.test_order_types import finished, submit_order
from tests.e2e.test_trading_flow import TIMEOUT, order_status, ready_for_market_orders
from tests.fakes.binance_spot import BTCUSDT, FakeBinanceSpot
from tests.fakes.quantconnect import FakeQuantConnect
from tests.fakes.server import API_KEY, SECRET
from tests.support import wait_until

T = types_pb2
BTC = {
    "symbol": "BTC-USD",
    "tick_size": "0.01",
    "step_size": "0.0001",
    "min_notional": "10",
    "initial_price": "60000",
}


@pytest.fixture
def binance() -> Iterator[FakeBinanceSpot]:
    fake = FakeBinanceSpot(API_KEY, SECRET, [BTCUSDT]).start()
    yield fake
    fake.stop()


@pytest.fixture
def quantconnect() -> Iterator[FakeQuantConnect]:
    fake = FakeQuantConnect("4242", SECRET, 777, ["BTCUSD"]).start()
    yield fake
    fake.stop()


def direct_venue_block() -> dict[str, object]:
    return {
        "kind": "binance",
        "environment": "live",
        "api_key": "${E2E_EXCHANGE_KEY}",
        "api_secret": "${E2E_EXCHANGE_SECRET}",
        "symbols": {"BTC-USD": "BTC/USDT"},
        "poll_interval_ms": 50,
        "execution_timeout_ms": 2000,
        "retry_delay_ms": 10,
        "rate_limits": ["6000/minute"],
    }


def direct_config(tmp_path: Path, fake: FakeBinanceSpot, **venue: object) -> Path:
    overrides = embedded_overrides(tmp_path / "data")
    overrides["instruments"] = [BTC]
    overrides["reconciliation"] = {"interval_ms": 200}
    block = {**direct_venue_block(), "base_url": fake.url, "stream_url": fake.stream_url, **venue}
    overrides["execution"] = {"mode": "direct", "venues": {"binance": block}}
    return write_config(tmp_path, overrides)


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("E2E_EXCHANGE_KEY", API_KEY)
    monkeypatch.setenv("E2E_EXCHANGE_SECRET", SECRET)
    monkeypatch.setenv("E2E_QC_USER", "4242")


def resting_buy(clients: Clients, price: str = "59000", quantity: str = "0.01") -> object:
    order = submit_order(
        clients, order_type=T.ORDER_TYPE_LIMIT, limit_price=price, quantity=quantity
    ).order
    return order_status(clients, order, T.ORDER_STATUS_ACCEPTED)


def venue_health(clients: Clients, venue: str) -> int:
    stub = health_pb2_grpc.HealthStub(clients.channel("execution-router"))
    answer = stub.Check(health_pb2.HealthCheckRequest(service=f"venue/{venue}"), timeout=5)
    return int(answer.status)


def position_of(clients: Clients) -> Decimal:
    request = positions_pb2.GetPositionRequest(account_id="acct-types", instrument="BTC-USD")
    try:
        return Decimal(clients.positions.GetPosition(request, timeout=5).position.quantity or "0")
    except grpc.RpcError:
        return Decimal(0)


def test_direct_mode_sends_the_order_to_the_exchange_once_and_its_fill_reaches_the_position(
    tmp_path: Path, binance: FakeBinanceSpot
) -> None:
    with running_embedded(direct_config(tmp_path, binance)) as clients:
        ready_for_market_orders(clients)
        order = resting_buy(clients)
        assert binance.count(order.order_id) == 1  # type: ignore[attr-defined]
        binance.cross(Decimal("58999"))
        done = finished(clients, order)  # type: ignore[arg-type]
        assert done.status == T.ORDER_STATUS_FILLED
        assert (done.venue, done.average_fill_price) == ("binance", "59000")
        wait_until(lambda: position_of(clients) == Decimal("0.01"), TIMEOUT, "the position")
        assert binance.count(order.order_id) == 1  # type: ignore[attr-defined]

        venues = clients.router.ListVenues(execution_pb2.ListVenuesRequest(), timeout=5).venues
        assert [(v.venue, v.kind, v.connected, v.available) for v in venues] == [
            ("binance", "binance", True, True)
        ]
        assert venues[0].circuit_state == execution_pb2.CIRCUIT_STATE_CLOSED
        assert venues[0].rate_limits[0].limit == "6000 per 1 minute"
        assert venue_health(clients, "binance") == health_pb2.HealthCheckResponse.SERVING


def test_a_last_trade_stop_goes_to_an_exchange_that_holds_stops_and_others_are_emulated(
    tmp_path: Path, binance: FakeBinanceSpot
) -> None:
    """With native_stops, order-management sends a plain stop that triggers on the last trade
    on to the exchange (Binance STOP_LOSS, untriggered there) instead of holding it; a stop on
    the bid/ask stays HELD by the emulator."""
    with running_embedded(direct_config(tmp_path, binance, native_stops=True)) as clients:
        ready_for_market_orders(clients)
        native = submit_order(
            clients,
            order_type=T.ORDER_TYPE_STOP_MARKET,
            trigger_price="61000",
            trigger_type=T.TRIGGER_TYPE_LAST,
        ).order
        accepted = order_status(clients, native, T.ORDER_STATUS_ACCEPTED)
        assert accepted.venue == "binance"
        sent = binance.orders[native.order_id]
        assert (sent.type, sent.stop_price, sent.working) == ("STOP_LOSS", Decimal("61000"), False)
        emulated = submit_order(
            clients, order_type=T.ORDER_TYPE_STOP_MARKET, trigger_price="61000"
        ).order
        assert emulated.status == T.ORDER_STATUS_HELD
        assert binance.count(emulated.order_id) == 0

        binance.cross(Decimal("61000.50"))  # the last trade reaches the stop: Binance fills it
        done = finished(clients, native)
        assert (done.status, done.average_fill_price) == (T.ORDER_STATUS_FILLED, "61000.5")
        assert binance.count(native.order_id) == 1


def test_quantconnect_mode_sends_a_live_command_once_and_its_fill_reaches_the_order(
    tmp_path: Path, quantconnect: FakeQuantConnect, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("E2E_QC_TOKEN", SECRET)
    overrides = embedded_overrides(tmp_path / "data")
    overrides["instruments"] = [BTC]
    overrides["execution"] = {
        "mode": "quantconnect",
        "venues": {
            "qc": {
                "kind": "quantconnect",
                "base_url": quantconnect.url,
                "user_id": "${E2E_QC_USER}",
                "api_token": "${E2E_QC_TOKEN}",
                "project_id": 777,
                "symbols": {"BTC-USD": "BTCUSD"},
                "poll_interval_ms": 50,
            }
        },
    }
    with running_embedded(write_config(tmp_path, overrides)) as clients:
        ready_for_market_orders(clients)
        order = resting_buy(clients)
        assert quantconnect.count(order.order_id) == 1  # type: ignore[attr-defined]
        quantconnect.fill(order.order_id, Decimal("0.01"), Decimal("58990.5"))  # type: ignore[attr-defined]
        done = finished(clients, order)  # type: ignore[arg-type]
        assert done.status == T.ORDER_STATUS_FILLED
        assert (done.venue, done.average_fill_price) == ("qc", "58990.5")
        assert quantconnect.count(order.order_id) == 1  # type: ignore[attr-defined]


def test_a_venue_whose_circuit_opens_rejects_orders_unsent_until_a_probe_closes_it(
    tmp_path: Path, binance: FakeBinanceSpot
) -> None:
    config = direct_config(
        tmp_path, binance, failure_threshold=2, reset_timeout_ms=1000, retry_attempts=0
    )
    with running_embedded(config) as clients:
        ready_for_market_orders(clients)
        for _ in range(1000):  # every request fails from now on
            binance.fault("5xx", path=None, method=None)
        status = execution_pb2.GetVenueStatusRequest(venue="binance")

        def opened() -> bool:
            answer = clients.router.GetVenueStatus(status, timeout=5).status
            return answer.circuit_state == execution_pb2.CIRCUIT_STATE_OPEN

        wait_until(opened, TIMEOUT, "the reconciler's failing calls to open the circuit")
        wait_until(
            lambda: venue_health(clients, "binance") == health_pb2.HealthCheckResponse.NOT_SERVING,
            TIMEOUT,
            "the venue's health to turn NOT_SERVING",
        )
        order = submit_order(
            clients, order_type=T.ORDER_TYPE_LIMIT, limit_price="59000", quantity="0.01"
        ).order
        done = finished(clients, order)
        assert done.status == T.ORDER_STATUS_REJECTED
        assert "venue binance is unavailable: its circuit opened" in done.status_message
        assert binance.count(order.order_id) == 0

        binance.clear_faults()  # the exchange is back: the next probe closes the circuit
        wait_until(
            lambda: venue_health(clients, "binance") == health_pb2.HealthCheckResponse.SERVING,
            TIMEOUT,
            "a probe to close the circuit",
        )
        answer = clients.router.GetVenueStatus(status, timeout=5).status
        assert answer.circuit_state == execution_pb2.CIRCUIT_STATE_CLOSED
        assert answer.failure_count >= 2
        again = resting_buy(clients)
        assert binance.count(again.order_id) == 1  # type: ignore[attr-defined]


def test_fills_made_while_the_platform_was_down_are_reported_once_after_a_restart(
    tmp_path: Path, binance: FakeBinanceSpot
) -> None:
    config = direct_config(tmp_path, binance)
    with running_embedded(config) as clients:
        ready_for_market_orders(clients)
        order = resting_buy(clients, quantity="0.03")
        binance.fill(order.order_id, Decimal("0.01"), Decimal("59000"))  # type: ignore[attr-defined]
        order_status(clients, order, T.ORDER_STATUS_PARTIALLY_FILLED)  # type: ignore[arg-type]
    binance.fill(order.order_id, Decimal("0.02"), Decimal("58999.5"))  # type: ignore[attr-defined]

    with running_embedded(config) as clients:
        done = finished(clients, order)  # type: ignore[arg-type]
        assert done.status == T.ORDER_STATUS_FILLED
        assert Decimal(done.filled_quantity) == Decimal("0.03")
        wait_until(lambda: position_of(clients) == Decimal("0.03"), TIMEOUT, "the position")
        assert position_of(clients) == Decimal("0.03")  # the first fill was not applied twice
        assert binance.count(order.order_id) == 1  # type: ignore[attr-defined]


def test_smart_routing_shares_an_order_across_venues_on_the_best_price_net_of_fees(
    tmp_path: Path,
) -> None:
    cheap_but_costly = FakeBinanceSpot(API_KEY, SECRET, [BTCUSDT], market_price=Decimal("60005"))
    best_net = FakeBinanceSpot(API_KEY, SECRET, [BTCUSDT], market_price=Decimal("60010"))
    fakes = {"venue-a": best_net.start(), "venue-b": cheap_but_costly.start()}
    overrides = embedded_overrides(tmp_path / "data")
    overrides["instruments"] = [BTC]
    overrides["market_data"] = {"interval_ms": 60_000}  # the test sets each venue's market
    venue = direct_venue_block()
    overrides["execution"] = {
        "mode": "direct",
        "venues": {
            "venue-a": {
                **venue,
                "base_url": best_net.url,
                "quote_source": "book-a",
                "taker_fee_bps": "0",
            },
            "venue-b": {
                **venue,
                "base_url": cheap_but_costly.url,
                "quote_source": "book-b",
                "taker_fee_bps": "10",
            },
        },
        "routing": [{"instrument": "BTC-USD", "venues": ["venue-b", "venue-a"], "smart": True}],
    }
    platform = build_platform(load_config(write_config(tmp_path, overrides)), service_specs())
    platform.start()
    try:
        market = Market(platform)
        market.quote("BTC-USD", "59990", "60010", "1")
        book_a = [("60010", "0.02"), ("60100", "1")]
        book_b = [("60005", "0.02"), ("60020", "1")]
        market.quote("BTC-USD", "59990", "60010", "0.02", source="book-a", asks=book_a)
        market.quote("BTC-USD", "59990", "60005", "0.02", source="book-b", asks=book_b)
        assert platform.wait_ready(30)
        clients = Clients({name: platform.address(name) for name in SERVICE_MODULES})
        ready_for_market_orders(clients)
        order = submit_order(clients, quantity="0.05").order
        done = finished(clients, order)
        assert done.status == T.ORDER_STATUS_FILLED
        request = execution_pb2.ListChildOrdersRequest(
            order_id=order.order_id, account_id=order.account_id
        )
        listed = clients.router.ListChildOrders(request, timeout=TIMEOUT).child_orders
        # Net of fees, the asks rank: venue-a 60010 (0.02), venue-b 60005 + 10 bps = 60065.005
        # (0.02), venue-b 60080.02 (1), venue-a 60100 (1): past its best level, venue-a is the
        # dearer one, so the last 0.01 goes to venue-b's second level.
        assert [(c.venue, c.quantity) for c in listed] == [("venue-a", "0.02"), ("venue-b", "0.03")]
        for child in listed:
            assert fakes[child.venue].count(child.child_order_id) == 1
        clients.close()
    finally:
        platform.stop()
        for fake in fakes.values():
            fake.stop()


def test_an_instrument_the_exchange_does_not_list_stops_the_router_naming_its_key(
    tmp_path: Path, binance: FakeBinanceSpot
) -> None:
    config = direct_config(tmp_path, binance)
    document = yaml.safe_load(config.read_text(encoding="utf-8"))
    document["instruments"].append({**BTC, "symbol": "ETH-USD", "initial_price": "3000"})
    document["execution"]["venues"]["binance"]["symbols"]["ETH-USD"] = "ETH/USDT"
    config.write_text(yaml.safe_dump(document), encoding="utf-8")
    run = subprocess.run(
        [sys.executable, "-m", "execution_router", "--config", str(config)],
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
        env={**os.environ},
    )
    assert run.returncode == 2, run.stderr
    line = run.stderr.strip().splitlines()[-1]
    assert line.startswith(
        "execution-router: cannot start: execution.venues.binance.symbols.ETH-USD: binance lists "
        "no spot market 'ETH/USDT'; expected one it lists, such as BTC/USDT"
    ), line
