"""An exchange's public market data through CCXT: polled, read exactly, conflated.

Each poll reads every instrument's top of book, from Binance's `ticker/bookTicker` (all of them
in one request) or `depth`, or from Bybit v5's `market/tickers` or `market/orderbook` (one
request each), as `market_data.quotes_from` says; an order book also gives
`market_data.book_depth` levels of each side, published with the quote. Prices and sizes are
read from the exchange's raw JSON strings into Decimals: CCXT's unified methods
(`fetch_order_book`, `fetch_tickers`) hand back floats, and a price that went through a float is
no longer the exchange's price.

Conflation: a poll publishes at most one quote per instrument, its latest top, and nothing for
an instrument whose top (and depth) did not change since its last quote, so the bus and the
journal carry changes, not the poll rate. One exception: an unchanged top is published again
once its last quote is half `stale_after_ms` old. Consumers judge freshness by a quote's time
(order-management's `risk.max_quote_age_ms`); without it, a quiet but healthy market would look
like a dead feed and its orders would be denied.

A poll that fails (a timeout, a 5xx, a refused connection, an answer that is not the documented
JSON or lacks a field) is logged and counted in `failures` by kind, and publishes nothing for
the instruments it was to read: never a guessed or a previous quote under a new time. An
instrument with no top read for `stale_after_ms` is stale (`stale()`); the producer reports
NOT_SERVING while any is, and keeps polling until each is fresh again.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any

import ccxt  # type: ignore[import-untyped]
from trading_core.clock import Clock
from trading_core.config import ConfigError, Instrument, MarketData
from trading_core.quotes import Level, Quote

log = logging.getLogger(__name__)

ZERO = Decimal(0)
# Builds the CCXT exchange from its settings; tests may pass another.
ExchangeFactory = Callable[[str, dict[str, Any]], Any]


class VenueUnavailable(ConnectionError):
    """The exchange could not be reached, or answered garbage, when its markets were loaded."""


class Malformed(ValueError):
    """An answer that is not the exchange's documented JSON, or lacks what is needed."""


class Missing(Malformed):
    """A well-formed answer without the instrument asked for."""


# Binance's depth endpoint takes these limits; the smallest that covers book_depth is asked.
_BINANCE_DEPTH_LIMITS = (5, 10, 20, 50)


@dataclass(frozen=True)
class Top:
    """The best bid and ask of one instrument, as the exchange sent them, and the book's
    levels (best first) when read from an order book."""

    bid: Decimal
    bid_size: Decimal
    ask: Decimal
    ask_size: Decimal
    bids: tuple[Level, ...] = ()
    asks: tuple[Level, ...] = ()

    @classmethod
    def of(cls, quote: Quote) -> Top:
        return cls(quote.bid, quote.bid_size, quote.ask, quote.ask_size, quote.bids, quote.asks)


class VenueFeed:
    """Polls one exchange for the configured instruments' tops; see the module docstring.
    `connect()` first, then `poll()` from one thread; `stale()` from any thread."""

    def __init__(
        self,
        instruments: Sequence[Instrument],
        settings: MarketData,
        clock: Clock,
        exchange_factory: ExchangeFactory | None = None,
    ) -> None:
        if settings.venue is None:
            raise ValueError("market_data.venue is not set")
        self.venue: str = settings.venue
        self._settings = settings
        self._clock = clock
        # our instrument -> the CCXT symbol (BTC/USDT), and, once connected, the exchange's id
        self._symbols = {i.symbol: settings.symbols[i.symbol] for i in instruments}
        self._ids: dict[str, str] = {}
        self._exchange = _configure(
            (exchange_factory or _ccxt_exchange)(self.venue, _options(settings)), settings
        )
        self._refresh = timedelta(milliseconds=settings.stale_after_ms / 2)
        self._stale_after = timedelta(milliseconds=settings.stale_after_ms)
        self._lock = threading.Lock()
        self._polling = threading.Lock()  # one poll at a time: conflation compares with the last
        self._published: dict[str, Quote] = {}
        self._read_at: dict[str, datetime] = {}  # when each instrument's top was last read
        self._stale: set[str] = set()
        self.failures: Counter[str] = Counter()  # failed reads by kind: timeout, unavailable, …

    # -- start-up ---------------------------------------------------------------------------

    def connect(self) -> None:
        """Loads the exchange's spot markets and checks that it lists every instrument's
        symbol. Raises ConfigError (naming market_data.symbols.<instrument>) for one it does
        not list, VenueUnavailable when the markets cannot be loaded."""
        try:
            markets: Mapping[str, Any] = self._exchange.load_markets()
        except ccxt.BaseError as error:
            raise VenueUnavailable(
                f"market data: cannot load {self.venue}'s markets to check market_data.symbols: "
                f"{_reason(error)}"
            ) from None
        spot = {symbol for symbol, market in markets.items() if market.get("spot")}
        for ours, symbol in self._symbols.items():
            if symbol not in spot:
                raise ConfigError(
                    f"market_data.symbols.{ours}: {self.venue} lists no spot market {symbol!r}; "
                    f"expected one of its spot symbols in CCXT's BASE/QUOTE form, such as "
                    f"{', '.join(sorted(spot)[:5]) or 'BTC/USDT'}"
                )
            self._ids[ours] = str(markets[symbol]["id"])

    # -- polling ----------------------------------------------------------------------------

    def poll(self) -> list[Quote]:
        """Reads every instrument's top once; the quotes to publish, conflated."""
        if len(self._ids) != len(self._symbols):
            raise RuntimeError("VenueFeed.poll before connect")
        with self._polling:
            tops = self._read()
            now = self._clock.now()
            quotes = []
            with self._lock:
                for ours, top in tops.items():
                    self._read_at[ours] = now
                    last = self._published.get(ours)
                    if last is not None and Top.of(last) == top and now - last.time < self._refresh:
                        continue
                    quote = Quote(
                        ours,
                        top.bid,
                        top.ask,
                        top.bid_size,
                        top.ask_size,
                        time=now,
                        source=self.venue,
                        bids=top.bids,
                        asks=top.asks,
                    )
                    self._published[ours] = quote
                    quotes.append(quote)
            self._log_staleness()
            return quotes

    def stale(self) -> list[str]:
        """The instruments with no top read for stale_after_ms (or none yet), in config order."""
        now = self._clock.now()
        with self._lock:
            return [
                ours
                for ours in self._symbols
                if (read_at := self._read_at.get(ours)) is None or now - read_at > self._stale_after
            ]

    def _log_staleness(self) -> None:
        stale = set(self.stale())
        for ours in sorted(stale - self._stale):
            log.warning(
                "market data: %s has had no quote from %s for over %d ms: stale, orders on it "
                "are denied until it is fresh",
                ours,
                self.venue,
                self._settings.stale_after_ms,
            )
        for ours in sorted(self._stale - stale):
            log.info("market data: %s is fresh again from %s", ours, self.venue)
        self._stale = stale

    def _read(self) -> dict[str, Top]:
        """Each instrument's top, for those read; a failed read is logged and counted."""
        tops: dict[str, Top] = {}
        if self.venue == "binance" and self._settings.quotes_from == "ticker":
            ids = list(self._ids.values())
            answer = self._request(
                list(self._ids),
                self._exchange.publicGetTickerBookTicker,
                {"symbols": json.dumps(ids, separators=(",", ":"))},
            )
            if answer is None:
                return tops
            try:
                entries = _binance_book_tickers(answer)
            except Malformed as error:
                self._failed("malformed", list(self._ids), error)
                return tops
            for ours, market_id in self._ids.items():
                top = self._parse(ours, partial(_binance_ticker, entries, market_id))
                if top is not None:
                    tops[ours] = top
            return tops
        for ours, market_id in self._ids.items():
            call, params, parse = self._per_instrument(market_id)
            answer = self._request([ours], call, params)
            if answer is not None:
                top = self._parse(ours, partial(parse, answer))
                if top is not None:
                    tops[ours] = top
        return tops

    def _per_instrument(
        self, market_id: str
    ) -> tuple[Callable[[dict[str, Any]], Any], dict[str, Any], Callable[[Any], Top]]:
        """The raw CCXT call, its parameters and the parser of one instrument's top."""
        exchange = self._exchange
        params: dict[str, Any]
        depth = self._settings.book_depth
        if self.venue == "binance":  # order_book
            limit = next(n for n in _BINANCE_DEPTH_LIMITS if n >= depth)
            params = {"symbol": market_id, "limit": limit}
            return exchange.publicGetDepth, params, lambda a: _binance_depth(a, depth)
        if self._settings.quotes_from == "ticker":
            params = {"category": "spot", "symbol": market_id}
            return exchange.publicGetV5MarketTickers, params, lambda a: _bybit_ticker(a, market_id)
        params = {"category": "spot", "symbol": market_id, "limit": depth}
        return (
            exchange.publicGetV5MarketOrderbook,
            params,
            lambda a: _bybit_book(a, market_id, depth),
        )

    def _request(
        self, instruments: list[str], call: Callable[[dict[str, Any]], Any], params: dict[str, Any]
    ) -> Any:
        """The raw answer of one call, or None when it failed (logged and counted)."""
        self._exchange.last_http_status = None
        try:
            return call(params)
        except ccxt.RequestTimeout as error:
            self._failed("timeout", instruments, error)
        except ccxt.BaseError as error:
            # Whatever CCXT makes of a 5xx's body (Binance's -1001 is an ExchangeError), the
            # exchange was unavailable; anything else it refused (a 4xx, a ban).
            status = self._exchange.last_http_status
            unavailable = isinstance(error, ccxt.NetworkError) or (
                isinstance(status, int) and status >= 500
            )
            self._failed("unavailable" if unavailable else "refused", instruments, error)
        return None

    def _parse(self, ours: str, parse: Callable[[], Top]) -> Top | None:
        try:
            return parse()
        except Missing as error:
            self._failed("missing", [ours], error)
        except Malformed as error:
            self._failed("malformed", [ours], error)
        except (KeyError, IndexError, TypeError, ValueError, ArithmeticError) as error:
            self._failed("malformed", [ours], Malformed(f"{type(error).__name__}: {error}"))
        return None

    def _failed(self, kind: str, instruments: list[str], error: Exception) -> None:
        self.failures[kind] += 1
        log.warning(
            "market data: reading %s from %s failed (%s, %d so far): %s",
            ", ".join(instruments),
            self.venue,
            kind,
            self.failures[kind],
            _reason(error),
        )


# -- the exchanges' JSON -------------------------------------------------------------------------


def _binance_book_tickers(answer: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(answer, list):
        raise Malformed(f"expected a JSON list of book tickers, got {_kind(answer)}")
    return {
        e["symbol"]: e for e in answer if isinstance(e, dict) and isinstance(e.get("symbol"), str)
    }


def _binance_ticker(entries: dict[str, dict[str, Any]], market_id: str) -> Top:
    """GET /api/v3/ticker/bookTicker: [{"symbol", "bidPrice", "bidQty", "askPrice", "askQty"}]."""
    entry = entries.get(market_id)
    if entry is None:
        raise Missing(f"no book ticker for {market_id} in the answer")
    return _top(entry["bidPrice"], entry["bidQty"], entry["askPrice"], entry["askQty"])


def _binance_depth(answer: Any, depth: int) -> Top:
    """GET /api/v3/depth: {"lastUpdateId", "bids": [[price, qty], …], "asks": […]}."""
    if not isinstance(answer, dict):
        raise Malformed(f"expected a JSON object, got {_kind(answer)}")
    return _book(answer["bids"], answer["asks"], depth)


def _bybit_result(answer: Any) -> dict[str, Any]:
    if not isinstance(answer, dict) or not isinstance(answer.get("result"), dict):
        raise Malformed(f"expected a v5 answer with a result object, got {_kind(answer)}")
    result: dict[str, Any] = answer["result"]
    return result


def _bybit_ticker(answer: Any, market_id: str) -> Top:
    """GET /v5/market/tickers: {"result": {"list": [{"symbol", "bid1Price", "bid1Size", …}]}}."""
    entries = _bybit_result(answer)["list"]
    entry = next((e for e in entries if isinstance(e, dict) and e.get("symbol") == market_id), None)
    if entry is None:
        raise Missing(f"no ticker for {market_id} in the answer")
    return _top(entry["bid1Price"], entry["bid1Size"], entry["ask1Price"], entry["ask1Size"])


def _bybit_book(answer: Any, market_id: str, depth: int) -> Top:
    """GET /v5/market/orderbook: {"result": {"s", "b": [[price, size], …], "a": […]}}."""
    result = _bybit_result(answer)
    if result.get("s") != market_id:
        raise Malformed(f"an order book of {result.get('s')!r}, not {market_id}")
    return _book(result["b"], result["a"], depth)


def _book(bids: Any, asks: Any, depth: int) -> Top:
    """The top and up to `depth` levels of each side; an empty side is a zero price and size
    (no bid, no ask). Levels must be best first: bids falling, asks rising."""
    bid_levels, ask_levels = _side(bids, depth, falling=True), _side(asks, depth, falling=False)
    bid = bid_levels[0] if bid_levels else (ZERO, ZERO)
    ask = ask_levels[0] if ask_levels else (ZERO, ZERO)
    return _checked(Top(bid[0], bid[1], ask[0], ask[1], bid_levels, ask_levels))


def _side(levels: Any, depth: int, *, falling: bool) -> tuple[Level, ...]:
    if not isinstance(levels, list):
        raise Malformed("expected lists of [price, size] levels")
    parsed = tuple((_dec(level[0]), _dec(level[1])) for level in levels[:depth])
    prices = [price for price, _ in parsed]
    if prices != sorted(prices, reverse=falling) or len(set(prices)) != len(prices):
        raise Malformed("order book levels out of order")
    return parsed


def _top(bid: Any, bid_size: Any, ask: Any, ask_size: Any) -> Top:
    return _checked(Top(_dec(bid), _dec(bid_size), _dec(ask), _dec(ask_size)))


def _checked(top: Top) -> Top:
    if top.bid > 0 and top.ask > 0 and top.bid >= top.ask:
        raise Malformed(f"a crossed or locked book: bid {top.bid} >= ask {top.ask}")
    return top


def _dec(text: Any) -> Decimal:
    """A price or size from the exchange's decimal string; never through a float."""
    if not isinstance(text, str):
        raise Malformed(f"expected a decimal string, got {_kind(text)}")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise Malformed(f"not a decimal: {text[:32]!r}") from None
    if not value.is_finite() or value < ZERO:
        raise Malformed(f"not a price or size: {text[:32]!r}")
    return value


def _kind(value: Any) -> str:
    if isinstance(value, str | bytes):
        return f"text {value[:40]!r}"
    return type(value).__name__


def _reason(error: Exception) -> str:
    return str(error)[:300] or type(error).__name__


# -- the CCXT exchange ---------------------------------------------------------------------------


def _options(settings: MarketData) -> dict[str, Any]:
    return {
        "timeout": settings.timeout_ms,
        "enableRateLimit": True,
        "options": {
            "defaultType": "spot",
            # Spot markets only; no currency list (a private endpoint on some exchanges).
            "fetchMarkets": {"types": ["spot"]},
            "fetchCurrencies": False,
            "fetchMargins": False,
            "adjustForTimeDifference": False,
        },
    }


def _ccxt_exchange(venue: str, options: dict[str, Any]) -> Any:
    return getattr(ccxt, venue)(options)


def _configure(exchange: Any, settings: MarketData) -> Any:
    # The HTTP status of the last answer, to tell a 5xx from a refusal whatever its body says.
    exchange.last_http_status = None
    answered = exchange.on_rest_response

    def remember_status(code: int, *rest: Any) -> Any:
        exchange.last_http_status = code
        return answered(code, *rest)

    exchange.on_rest_response = remember_status
    if settings.sandbox:
        exchange.set_sandbox_mode(True)
    if settings.base_url is not None:
        root = settings.base_url.rstrip("/")
        if settings.venue == "binance":
            exchange.urls["api"]["public"] = f"{root}/api/v3"
        else:  # bybit: every path carries its version (v5/market/…)
            for key in exchange.urls["api"]:
                exchange.urls["api"][key] = root
    return exchange
