"""Market data from an exchange (`market_data.source: venue`) against the fake Binance spot
REST server on loopback (and the fake Bybit v5 one for the flow of quotes): quotes flow through
the real producer (its journal in a temp folder, the in-memory bus) with the exchange's exact
decimals, from its ticker or its order book, conflated; a failed poll is counted and
publishes nothing; a stale instrument turns the producer's health NOT_SERVING (and back) and
order-management denies orders on it (QUOTE_STALE) on the embedded platform; an instrument the
exchange does not list stops start-up naming its key."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from market_data.main import SPEC as MARKET_DATA
from market_data.service import MarketDataProducer
from market_data.venue_feed import VenueUnavailable
from trading.v1 import events_pb2, types_pb2
from trading_core.bus.base import Message
from trading_core.config import ConfigError, load_config
from trading_core.quotes import Quote
from trading_core.runtime import Platform, build_platform

from tests.e2e.conftest import ROOT, Clients, embedded_overrides, running_embedded, write_config
from tests.e2e.test_trading_flow import submit
from tests.fakes import binance_spot, bybit_v5
from tests.fakes.binance_spot import FakeBinanceSpot, SymbolRules
from tests.fakes.bybit_v5 import FakeBybitSpot, SpotRules
from tests.support import free_port, wait_until

T = types_pb2


def _rules(symbol: str, base: str) -> SymbolRules:
    return replace(binance_spot.BTCUSDT, symbol=symbol, base=base, max_qty=Decimal("1000"))


INSTRUMENTS = [
    {"symbol": "BTC-USD", "tick_size": "0.01", "step_size": "0.0001", "initial_price": "60000"},
    {"symbol": "ETH-USD", "tick_size": "0.01", "step_size": "0.001", "initial_price": "3000"},
]
SYMBOLS = {"BTC-USD": "BTC/USDT", "ETH-USD": "ETH/USDT"}
# A price a float cannot hold: 17 significant digits.
BTC_BID, BTC_ASK = "98765432.12345678", "98765432.12345679"
# Polls only when the test calls tick(): the producer's own thread waits a minute.
MANUAL = {"poll_interval_ms": 60_000, "stale_after_ms": 180_000}
NOW = datetime(2026, 12, 3, tzinfo=UTC)


@pytest.fixture
def fake() -> Iterator[FakeBinanceSpot]:
    # Public market data needs no key: the fake's are never sent.
    rules = [_rules("BTCUSDT", "BTC"), _rules("ETHUSDT", "ETH")]
    server = FakeBinanceSpot("unused-key", "unused-secret", rules)
    server.set_book("BTCUSDT", [(BTC_BID, "1.25"), ("98765431", "3")], [(BTC_ASK, "0.5")])
    server.set_book("ETHUSDT", [("3000.01", "10")], [("3000.02", "12.5")])
    server.start()
    yield server
    server.stop()


def _bybit_rules(symbol: str, base: str, tick_size: str) -> SpotRules:
    return replace(
        bybit_v5.BTCUSDT,
        symbol=symbol,
        base=base,
        tick_size=Decimal(tick_size),
        quote_precision=Decimal("0.01"),
        max_qty=Decimal("1000"),
        min_amount=Decimal("1"),
    )


@pytest.fixture
def bybit() -> Iterator[FakeBybitSpot]:
    # Its books are one tick either side of its one market price, sizes 1.5 and 2.25: a tick
    # of half BTC's spread around their middle puts BTC's top at BTC_BID / BTC_ASK exactly.
    rules = [
        _bybit_rules("BTCUSDT", "BTC", "0.000000005"),
        _bybit_rules("ETHUSDT", "ETH", "0.01"),
    ]
    server = FakeBybitSpot("unused-key", "unused-secret", rules, Decimal("98765432.123456785"))
    server.start()
    yield server
    server.stop()


@dataclass(frozen=True)
class Exchange:
    """An exchange's fake, the endpoint the feed reads for each `quotes_from`, and the top of
    each instrument's book as the fake serves it: (bid, bid size, ask, ask size)."""

    venue: str
    fake: FakeBinanceSpot | FakeBybitSpot
    endpoints: dict[str, str]
    tops: dict[str, tuple[str, str, str, str]]


@pytest.fixture(params=["binance", "bybit"])
def exchange(request: pytest.FixtureRequest) -> Exchange:
    if request.param == "binance":
        return Exchange(
            "binance",
            request.getfixturevalue("fake"),
            {"ticker": "/api/v3/ticker/bookTicker", "order_book": "/api/v3/depth"},
            {
                "BTC-USD": (BTC_BID, "1.25", BTC_ASK, "0.5"),
                "ETH-USD": ("3000.01", "10", "3000.02", "12.5"),
            },
        )
    return Exchange(
        "bybit",
        request.getfixturevalue("bybit"),
        {"ticker": "/v5/market/tickers", "order_book": "/v5/market/orderbook"},
        {
            "BTC-USD": (BTC_BID, "1.5", BTC_ASK, "2.25"),
            "ETH-USD": ("98765432.113456785", "1.5", "98765432.133456785", "2.25"),
        },
    )


def venue_config(tmp_path: Path, fake: FakeBinanceSpot | FakeBybitSpot, **market: Any) -> Path:
    overrides = embedded_overrides(tmp_path / "data")
    overrides["instruments"] = INSTRUMENTS
    overrides["market_data"] = {
        "source": "venue",
        "venue": "binance",
        "base_url": fake.url,
        "symbols": SYMBOLS,
        "timeout_ms": 1000,
        **market,
    }
    return write_config(tmp_path, overrides)


@dataclass
class Producer:
    """The market-data producer alone on a platform, and what it published on the bus."""

    platform: Platform
    service: MarketDataProducer
    quotes: list[Quote] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def received(self, message: Message) -> None:
        event = events_pb2.Event.FromString(message.data)
        with self._lock:
            self.quotes.append(Quote.from_proto(event.quote_updated.quote))

    def of(self, instrument: str) -> list[Quote]:
        with self._lock:
            return [q for q in self.quotes if q.instrument == instrument]

    def wait_for(self, instrument: str, count: int) -> list[Quote]:
        def arrived() -> list[Quote] | None:
            found = self.of(instrument)
            return found if len(found) >= count else None

        return wait_until(arrived, 10, f"{count} quote(s) of {instrument}")

    def serving(self) -> bool:
        return serving(self.platform.address("market-data"))


def serving(address: str) -> bool:
    with grpc.insecure_channel(address) as channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=2
        )
    return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)


@contextlib.contextmanager
def running_producer(config_path: Path) -> Iterator[Producer]:
    platform = build_platform(load_config(config_path), [MARKET_DATA])
    service = platform.service("market-data")
    assert isinstance(service, MarketDataProducer)
    producer = Producer(platform, service)
    platform.bus.subscribe("market-data", "market-data.test", producer.received)
    platform.start()
    try:
        yield producer
    finally:
        platform.stop()


# -- quotes from the exchange ---------------------------------------------------------------------


@pytest.mark.parametrize("quotes_from", ["ticker", "order_book"])
def test_quotes_flow_from_the_exchange_through_the_producer_with_its_exact_decimals(
    tmp_path: Path, exchange: Exchange, quotes_from: str
) -> None:
    config = venue_config(
        tmp_path, exchange.fake, venue=exchange.venue, quotes_from=quotes_from, **MANUAL
    )
    with running_producer(config) as producer:
        quotes = {}
        for instrument in exchange.tops:
            (quotes[instrument],) = producer.wait_for(instrument, 1)
        assert producer.serving()

    # The top of each book, as the exchange wrote it: no float on the way.
    for instrument, (bid, bid_size, ask, ask_size) in exchange.tops.items():
        quote = quotes[instrument]
        assert (quote.bid, quote.bid_size, quote.ask, quote.ask_size) == (
            Decimal(bid),
            Decimal(bid_size),
            Decimal(ask),
            Decimal(ask_size),
        ), instrument
        assert quote.source == exchange.venue
        assert quote.last is None  # tops only: no last trade
    assert str(quotes["BTC-USD"].bid.normalize()) == BTC_BID
    other = "order_book" if quotes_from == "ticker" else "ticker"
    assert ("GET", exchange.endpoints[quotes_from]) in exchange.fake.requests
    assert ("GET", exchange.endpoints[other]) not in exchange.fake.requests


def _levels(*levels: tuple[str, str]) -> tuple[tuple[Decimal, Decimal], ...]:
    return tuple((Decimal(price), Decimal(size)) for price, size in levels)


def test_an_order_book_gives_its_levels_best_first_as_deep_as_configured(
    tmp_path: Path, exchange: Exchange
) -> None:
    config = venue_config(
        tmp_path,
        exchange.fake,
        venue=exchange.venue,
        quotes_from="order_book",
        book_depth=2,
        **MANUAL,
    )
    with running_producer(config) as producer:
        (quote,) = producer.wait_for("BTC-USD", 1)

    if exchange.venue == "binance":  # the fake's book: two bids, one ask
        assert quote.bids == _levels((BTC_BID, "1.25"), ("98765431", "3"))
        assert quote.asks == _levels((BTC_ASK, "0.5"))
    else:  # one tick (0.000000005) apart, 1.5 and 2.25 at each
        assert quote.bids == _levels((BTC_BID, "1.5"), ("98765432.123456775", "1.5"))
        assert quote.asks == _levels((BTC_ASK, "2.25"), ("98765432.123456795", "2.25"))
    assert (quote.bids[0], quote.asks[0]) == (
        (quote.bid, quote.bid_size),
        (quote.ask, quote.ask_size),
    )


def test_a_book_with_levels_out_of_order_is_counted_malformed_and_publishes_nothing(
    tmp_path: Path, fake: FakeBinanceSpot
) -> None:
    config = venue_config(tmp_path, fake, quotes_from="order_book", **MANUAL)
    with running_producer(config) as producer:
        producer.wait_for("BTC-USD", 1)
        feed = producer.service.venue_feed
        assert feed is not None
        fake.set_book("BTCUSDT", [("59990", "1"), ("59999", "2")], [("60001", "1")])
        producer.service.tick()
        assert feed.failures["malformed"] == 1
        fake.set_book("BTCUSDT", [("59999", "2"), ("59990", "1")], [("60001", "1")])
        producer.service.tick()
        _, after = producer.wait_for("BTC-USD", 2)
        assert after.bids == _levels(("59999", "2"), ("59990", "1"))


def test_a_quote_without_depth_offers_its_top_and_keeps_it_through_the_wire() -> None:
    quote = Quote("BTC-USD", Decimal(1), Decimal(2), Decimal(3), Decimal(4), time=NOW)
    assert Quote.from_proto(quote.to_proto()) == quote
    assert quote.offered(True) == ((Decimal(2), Decimal(4)),)
    assert quote.offered(False) == ((Decimal(1), Decimal(3)),)


def test_many_book_changes_between_two_polls_publish_one_quote_the_latest_and_no_change_none(
    tmp_path: Path, fake: FakeBinanceSpot
) -> None:
    with running_producer(venue_config(tmp_path, fake, **MANUAL)) as producer:
        producer.wait_for("BTC-USD", 1)
        for n in range(1, 6):
            fake.set_book("BTCUSDT", [(f"60000.0{n}", "1")], [("60001", "1")])
        producer.service.tick()
        polls = fake.market_requests()
        producer.service.tick()  # nothing changed: nothing published
        assert fake.market_requests() == polls + 1
        fake.set_book("BTCUSDT", [("59999", "2")], [("60001", "1")])
        producer.service.tick()

        # Quotes of one instrument arrive in order: one that the unchanged poll had published
        # would come before the last change's.
        first, burst, change = producer.wait_for("BTC-USD", 3)
        assert first.bid == Decimal(BTC_BID)
        assert (burst.bid, change.bid) == (Decimal("60000.05"), Decimal("59999"))
        # ETH-USD never changed: its first quote only.
        assert len(producer.of("ETH-USD")) == 1


@pytest.mark.parametrize("kind", ["5xx", "garbage", "missing", "silent", "timeout"])
def test_a_failed_poll_is_counted_and_publishes_no_quote(
    tmp_path: Path, fake: FakeBinanceSpot, kind: str
) -> None:
    counted = {"5xx": "unavailable", "silent": "unavailable", "timeout": "timeout"}
    config = venue_config(tmp_path, fake, timeout_ms=300, **MANUAL)
    with running_producer(config) as producer:
        producer.wait_for("BTC-USD", 1)
        feed = producer.service.venue_feed
        assert feed is not None
        fake.set_book("BTCUSDT", [("1", "1")], [("999999", "1")])  # never to be published
        if kind == "timeout":
            fake.fault("timeout", "/api/v3/ticker/bookTicker", "GET", sleep_s=1.0)
        else:
            fake.market_fault(kind)

        producer.service.tick()  # logged and counted; never raised

        assert feed.failures[counted.get(kind, "malformed")] >= 1
        fake.clear_market_faults()
        fake.set_book("BTCUSDT", [("59999", "2")], [("60001", "1")])
        producer.service.tick()
        _, after = producer.wait_for("BTC-USD", 2)
        assert after.bid == Decimal("59999")  # and nothing between the two
        assert producer.service.ready()


# -- staleness --------------------------------------------------------------------------------


def test_a_stale_feed_turns_health_not_serving_while_the_producer_keeps_polling_and_back(
    tmp_path: Path, fake: FakeBinanceSpot
) -> None:
    config = venue_config(tmp_path, fake, poll_interval_ms=50, stale_after_ms=300)
    with running_producer(config) as producer:
        wait_until(producer.serving, 10, "the producer to serve")

        fake.market_fault("silent")
        wait_until(lambda: not producer.serving(), 10, "NOT_SERVING while the feed is stale")
        assert producer.service.stale_instruments() == ["BTC-USD", "ETH-USD"]
        polls = fake.market_requests()
        wait_until(lambda: fake.market_requests() > polls + 2, 10, "the producer to keep polling")

        fake.clear_market_faults()
        wait_until(producer.serving, 10, "SERVING once quotes are fresh again")
        assert producer.service.stale_instruments() == []


def test_an_order_on_a_stale_instrument_is_denied_by_order_management_the_fresh_one_is_not(
    tmp_path: Path, fake: FakeBinanceSpot
) -> None:
    # risk.max_quote_age_ms is left out: source venue makes it market_data.stale_after_ms.
    fake.set_book("BTCUSDT", [("60000", "5")], [("60000.01", "5")])  # within order limits
    config = venue_config(tmp_path, fake, poll_interval_ms=100, stale_after_ms=1500)
    assert load_config(config).risk.max_quote_age_ms == 1500
    with running_embedded(config) as clients:
        wait_until(lambda: accepted(clients, "BTC-USD"), 15, "order-management to have quotes")
        market_data = clients.addresses["market-data"]
        assert serving(market_data)

        fake.market_fault("silent", symbol="ETHUSDT")
        wait_until(lambda: not serving(market_data), 10, "market-data to turn NOT_SERVING")

        denied = submit(clients, instrument="ETH-USD", quantity="0.01")
        assert denied.status == T.ORDER_STATUS_DENIED
        assert denied.denial_reason == T.DENIAL_REASON_QUOTE_STALE
        assert "the quote of ETH-USD is" in denied.status_message
        # BTC-USD's book has not changed for longer than stale_after_ms: its unchanged top is
        # published again, so order-management still sees a fresh quote.
        assert accepted(clients, "BTC-USD")

        fake.clear_market_faults()
        wait_until(lambda: serving(market_data), 10, "market-data to serve again")
        wait_until(lambda: accepted(clients, "ETH-USD"), 10, "ETH-USD orders to pass again")


def accepted(clients: Clients, instrument: str) -> bool:
    order = submit(clients, instrument=instrument, quantity="0.01")
    return order.status != T.ORDER_STATUS_DENIED


# -- start-up and config ----------------------------------------------------------------------


def test_an_instrument_the_exchange_does_not_list_stops_start_up_naming_its_key(
    tmp_path: Path, fake: FakeBinanceSpot
) -> None:
    config = venue_config(
        tmp_path, fake, symbols={"BTC-USD": "BTC/USDT", "ETH-USD": "DOGE/USDT"}, **MANUAL
    )
    platform = build_platform(load_config(config), [MARKET_DATA])
    try:
        with pytest.raises(ConfigError, match=r"market_data\.symbols\.ETH-USD: binance lists"):
            platform.start()
    finally:
        platform.stop()

    # The producer's own process exits 2 with one line, as for any config error.
    run = subprocess.run(
        [sys.executable, "-m", "market_data", "--config", str(config)],
        cwd=ROOT,
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2, run.stderr
    (line,) = run.stderr.strip().splitlines()
    assert line.startswith("market-data: cannot start: market_data.symbols.ETH-USD: binance")
    assert "'DOGE/USDT'" in line and "BTC/USDT" in line


def test_an_exchange_unreachable_at_start_up_stops_it_as_unavailable(
    tmp_path: Path, fake: FakeBinanceSpot
) -> None:
    config = venue_config(tmp_path, fake, base_url=f"http://127.0.0.1:{free_port()}", **MANUAL)
    platform = build_platform(load_config(config), [MARKET_DATA])
    try:
        # An OSError: the runtime logs "cannot start" in one line and exits 1.
        with pytest.raises(VenueUnavailable, match="cannot load binance's markets"):
            platform.start()
    finally:
        platform.stop()


def test_a_venue_source_without_a_symbol_for_an_instrument_is_refused(
    tmp_path: Path, fake: FakeBinanceSpot
) -> None:
    config = venue_config(tmp_path, fake, symbols={"BTC-USD": "BTC/USDT"})
    with pytest.raises(ConfigError, match=r"market_data\.symbols: no symbol for ETH-USD"):
        load_config(config)


def test_a_venue_source_needs_the_exchange_and_staleness_well_above_the_poll_interval(
    tmp_path: Path, fake: FakeBinanceSpot
) -> None:
    with pytest.raises(ConfigError, match=r"market_data: venue: source venue needs"):
        load_config(venue_config(tmp_path, fake, venue=None))
    with pytest.raises(ConfigError, match=r"stale_after_ms \(2000\) must be at least 3 x"):
        load_config(venue_config(tmp_path, fake, poll_interval_ms=1000, stale_after_ms=2000))


def test_an_explicit_max_quote_age_is_kept_and_null_turns_the_gate_off(
    tmp_path: Path, fake: FakeBinanceSpot
) -> None:
    path = venue_config(tmp_path, fake)
    assert load_config(path).risk.max_quote_age_ms == 5000  # stale_after_ms's default
    for given in (800, None):
        overrides = embedded_overrides(tmp_path / "data")
        overrides["instruments"] = INSTRUMENTS
        overrides["market_data"] = load_config(path).market_data.model_dump(mode="json")
        overrides["risk"] = {"max_quote_age_ms": given}
        assert load_config(write_config(tmp_path, overrides)).risk.max_quote_age_ms == given
