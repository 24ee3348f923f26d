"""A fake Binance spot REST server on loopback, for the CCXT venue adapter's tests.

It speaks the documented spot wire format (api/v3) for what CCXT's `binance` class calls:
exchangeInfo, time, avgPrice, order (POST new, DELETE cancel, GET query, by client order id),
openOrders and myTrades. Signed endpoints check the X-MBX-APIKEY header and the HMAC-SHA256
signature of the query string (the body for a POST) with the test's secret, and answer
Binance's errors (-2015, -1022) when they do not match. Numbers are decimal strings, as
Binance sends them.

Orders are kept by client order id. A second order with a client order id the fake has seen is
refused (-2010 "Duplicate order sent."); real Binance only refuses one among *open* orders,
which is stricter here on purpose: the adapter must never rely on it. Every POST of an order is
counted by its newClientOrderId (`sent`), whatever became of it: the bar of the tests is that no
order is submitted twice. A MARKET order fills at once at `market_price`; a LIMIT order rests
until the test calls `fill(client_order_id, quantity, price)`. Orders are checked against
LOT_SIZE, PRICE_FILTER (tick, minPrice, maxPrice), PERCENT_PRICE_BY_SIDE (around `market_price`
as the average price, which avgPrice answers) and NOTIONAL, each refusal (-1013) naming it.
STOP_LOSS and STOP_LOSS_LIMIT orders (stopPrice, also checked by PRICE_FILTER) wait untriggered
(isWorking false) until `cross(price)` reaches their stopPrice.

Fault hooks, each for the next matching request (`fault(kind, path=..., method=...)`):
`timeout` (the answer comes after `sleep_s`, beyond the client's timeout), `5xx` (503),
`429` (with Retry-After, nothing applied), `drop` (the connection closes without an answer,
nothing applied) and `lost` (the request is applied, then the connection closes: "the submit
is applied but its answer is lost"). `timeout` and `5xx` take `apply` to say whether the
request was applied before the bad answer. `late`: the connection closes at once and the request
is applied `sleep_s` later, as Binance does with a request that reaches its matching engine late
(and only while its timestamp is within its `recvWindow`, as Binance checks).

Public market data (no key): `ticker/bookTicker` (one symbol, a `symbols` list, or all) and
`depth`, from the books the test sets with `set_book(symbol, bids, asks)`; a symbol with no
book set is left out of bookTicker and has an empty depth. `market_fault(kind, symbol=None)`
breaks these endpoints until `clear_market_faults()`: `silent` (the connection closes without
an answer; with a symbol, bookTicker leaves that symbol out and its depth requests get no
answer), `5xx` (503), `garbage` (200 with a body that is not JSON) and `missing` (200, but each
entry lacks its bid price). `requests` lists every request, so a test can count polls.

The user-data stream (`stream`, at `stream_url`: tests/fakes/stream.py) speaks the spot
WebSocket API's subscription as CCXT 4.5 uses it: `userDataStream.subscribe.signature` with
`apiKey`, `timestamp` and the HMAC-SHA256 `signature` of the other parameters sorted by name
(refused with -1022 / -2015 otherwise), answered with a `subscriptionId`; then each order change
as `{"subscriptionId", "event": {"e": "executionReport", ...}}` (NEW, TRADE, CANCELED, EXPIRED),
in Binance's documented fields.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

from tests.fakes.server import FakeHandler, Fault, LoopbackFake, now_ms
from tests.fakes.stream import Session, StreamServer

COMMISSION_RATE = Decimal("0.001")
_JSON = "application/json;charset=UTF-8"


@dataclass(frozen=True)
class SymbolRules:
    symbol: str  # Binance's id, e.g. BTCUSDT
    base: str
    quote: str
    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal
    # PRICE_FILTER's bounds, and PERCENT_PRICE_BY_SIDE's multipliers (the same for both sides
    # here) around the average price (`market_price` in the fake).
    min_price: Decimal = Decimal("0.01")
    max_price: Decimal = Decimal("1000000")
    multiplier_down: Decimal = Decimal("0.8")
    multiplier_up: Decimal = Decimal("1.2")


# The tests' usual symbol.
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


@dataclass
class Book:
    """One symbol's public order book: (price, quantity) levels, best first."""

    bids: list[tuple[Decimal, Decimal]]
    asks: list[tuple[Decimal, Decimal]]


MARKET_PATHS = frozenset({"/api/v3/ticker/bookTicker", "/api/v3/depth"})
MARKET_FAULTS = frozenset({"silent", "5xx", "garbage", "missing"})


@dataclass
class FakeOrder:
    order_id: int
    client_order_id: str
    symbol: str
    side: str
    type: str
    time_in_force: str
    quantity: Decimal
    price: Decimal
    created_ms: int
    status: str = "NEW"
    executed: Decimal = Decimal(0)
    quote_executed: Decimal = Decimal(0)
    updated_ms: int = 0
    trades: list[dict[str, Any]] = field(default_factory=list)
    # A STOP_LOSS or STOP_LOSS_LIMIT: its stopPrice, and whether it has triggered.
    stop_price: Decimal = Decimal(0)
    working: bool = True


class BinanceError(Exception):
    def __init__(self, http_status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.http_status, self.code, self.msg = http_status, code, msg


def _s(value: Decimal) -> str:
    return f"{value:.8f}"


class FakeBinanceSpot(LoopbackFake):
    """The fake exchange; `start()` serves it on 127.0.0.1, `url` is its base; `sent` counts
    the POSTs of each newClientOrderId."""

    def __init__(
        self,
        api_key: str,
        secret: str,
        symbols: list[SymbolRules],
        market_price: Decimal = Decimal("60000"),
    ) -> None:
        super().__init__(_Handler, stream=StreamServer(_UserStream(self), "/ws-api/v3"))
        self.api_key = api_key
        self.secret = secret
        self.symbols = {s.symbol: s for s in symbols}
        self.market_price = market_price
        self.orders: dict[str, FakeOrder] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request
        self.books: dict[str, Book] = {}
        # symbol (None: every request) -> the market-data fault in force
        self._market_faults: dict[str | None, str] = {}
        self._update_ids = itertools.count(1)
        self._order_ids = itertools.count(1001)
        self._trade_ids = itertools.count(5001)

    # -- the test's hands -------------------------------------------------------------------

    def fault(
        self,
        kind: str,
        path: str | None = "/api/v3/order",
        method: str | None = "POST",
        *,
        apply: bool = False,
        sleep_s: float = 3.0,
        retry_after_s: int = 1,
    ) -> None:
        self._add_fault(Fault(kind, path, method, apply, sleep_s, retry_after_s))

    def fill(self, client_order_id: str, quantity: Decimal, price: Decimal) -> None:
        """A resting order trades `quantity` at `price` (its side pays the commission)."""
        with self._lock:
            order = self.orders[client_order_id]
            assert order.status in ("NEW", "PARTIALLY_FILLED"), order.status
            assert order.executed + quantity <= order.quantity
            self._trade(order, quantity, price, maker=True)

    def cross(self, price: Decimal) -> None:
        """The market trades at `price`: stops whose stopPrice it reaches trigger (a buy's at
        or below it, a sell's at or above: a STOP_LOSS fills whole at `price`, a
        STOP_LOSS_LIMIT starts working at its limit); then every working limit buy at or above
        it, and every working limit sell at or below it, fills whole at its own limit."""
        with self._lock:
            for order in self.orders.values():
                if order.status != "NEW" or order.working:
                    continue
                up = order.side == "BUY"
                if (price >= order.stop_price) if up else (price <= order.stop_price):
                    order.working, order.updated_ms = True, now_ms()
                    if order.type == "STOP_LOSS":
                        self._trade(order, order.quantity, price, maker=False)
            for order in self.orders.values():
                if order.status not in ("NEW", "PARTIALLY_FILLED") or not order.working:
                    continue
                if order.type not in ("LIMIT", "STOP_LOSS_LIMIT"):
                    continue
                crossed = order.price >= price if order.side == "BUY" else order.price <= price
                if crossed:
                    self._trade(order, order.quantity - order.executed, order.price, maker=True)

    def set_book(
        self,
        symbol: str,
        bids: list[tuple[Decimal | str, Decimal | str]],
        asks: list[tuple[Decimal | str, Decimal | str]],
    ) -> None:
        """The symbol's order book from now on: (price, quantity) levels, best first."""
        with self._lock:
            assert symbol in self.symbols, f"{symbol} is not one of the fake's symbols"
            self.books[symbol] = Book(
                [(Decimal(p), Decimal(q)) for p, q in bids],
                [(Decimal(p), Decimal(q)) for p, q in asks],
            )

    def market_fault(self, kind: str, symbol: str | None = None) -> None:
        """Breaks the market-data endpoints (of one symbol, or all) until cleared."""
        assert kind in MARKET_FAULTS, kind
        with self._lock:
            self._market_faults[symbol] = kind

    def clear_market_faults(self) -> None:
        with self._lock:
            self._market_faults.clear()

    def market_requests(self) -> int:
        """How many market-data requests have arrived."""
        with self._lock:
            return sum(1 for _, path in self.requests if path in MARKET_PATHS)

    # -- the exchange -----------------------------------------------------------------------

    def _trade(self, order: FakeOrder, quantity: Decimal, price: Decimal, maker: bool) -> None:
        now = now_ms()
        rules = self.symbols[order.symbol]
        quote_qty = quantity * price
        if order.side == "BUY":
            commission, asset = quantity * COMMISSION_RATE, rules.base
        else:
            commission, asset = quote_qty * COMMISSION_RATE, rules.quote
        order.trades.append(
            {
                "symbol": order.symbol,
                "id": next(self._trade_ids),
                "orderId": order.order_id,
                "orderListId": -1,
                "price": _s(price),
                "qty": _s(quantity),
                "quoteQty": _s(quote_qty),
                "commission": _s(commission),
                "commissionAsset": asset,
                "time": now,
                "isBuyer": order.side == "BUY",
                "isMaker": maker,
                "isBestMatch": True,
            }
        )
        order.executed += quantity
        order.quote_executed += quote_qty
        order.status = "FILLED" if order.executed == order.quantity else "PARTIALLY_FILLED"
        order.updated_ms = now
        self._publish(order, "TRADE", order.trades[-1])

    def _publish(
        self, order: FakeOrder, execution: str, trade: dict[str, Any] | None = None
    ) -> None:
        """The order's executionReport on the user-data stream."""
        canceled = execution == "CANCELED"
        self.stream.publish(
            {
                "e": "executionReport",
                "E": now_ms(),
                "s": order.symbol,
                "c": f"cancel-{order.order_id}" if canceled else order.client_order_id,
                "S": order.side,
                "o": order.type,
                "f": order.time_in_force or "GTC",
                "q": _s(order.quantity),
                "p": _s(order.price),
                "P": _s(order.stop_price),
                "F": "0.00000000",
                "g": -1,
                "C": order.client_order_id if canceled else "",
                "x": execution,
                "X": order.status,
                "r": "NONE",
                "i": order.order_id,
                "l": trade["qty"] if trade else "0.00000000",
                "z": _s(order.executed),
                "L": trade["price"] if trade else "0.00000000",
                "n": trade["commission"] if trade else "0",
                "N": trade["commissionAsset"] if trade else None,
                "T": trade["time"] if trade else order.updated_ms,
                "t": trade["id"] if trade else -1,
                "I": next(self._update_ids),
                "w": order.status == "NEW" and order.working,
                "m": bool(trade and trade["isMaker"]),
                "M": False,
                "O": order.created_ms,
                "Z": _s(order.quote_executed),
                "Y": trade["quoteQty"] if trade else "0.00000000",
                "Q": "0.00000000",
                "W": order.created_ms,
                "V": "NONE",
            }
        )

    def _check_filters(self, rules: SymbolRules, quantity: Decimal, price: Decimal) -> None:
        if quantity < rules.min_qty or quantity > rules.max_qty or quantity % rules.step_size:
            raise BinanceError(400, -1013, "Filter failure: LOT_SIZE")
        if price % rules.tick_size or not rules.min_price <= price <= rules.max_price:
            raise BinanceError(400, -1013, "Filter failure: PRICE_FILTER")
        average = self.market_price
        if not average * rules.multiplier_down <= price <= average * rules.multiplier_up:
            raise BinanceError(400, -1013, "Filter failure: PERCENT_PRICE_BY_SIDE")
        if quantity * price < rules.min_notional:
            raise BinanceError(400, -1013, "Filter failure: NOTIONAL")

    def new_order(self, p: dict[str, str]) -> dict[str, Any]:
        with self._lock:
            client_id = p.get("newClientOrderId", "")
            rules = self.symbols.get(p.get("symbol", ""))
            if rules is None:
                raise BinanceError(400, -1121, "Invalid symbol.")
            if not client_id or len(client_id) > 36:
                raise BinanceError(400, -1100, "Illegal characters found in parameter.")
            if client_id in self.orders:
                raise BinanceError(400, -2010, "Duplicate order sent.")
            kind, quantity = p.get("type", ""), Decimal(p.get("quantity", "0"))
            if kind == "LIMIT":
                price, tif = Decimal(p["price"]), p.get("timeInForce", "")
                if tif not in ("GTC", "IOC", "FOK"):
                    raise BinanceError(400, -1102, "Mandatory parameter 'timeInForce' missing.")
            elif kind == "LIMIT_MAKER":
                price, tif = Decimal(p["price"]), ""
                if "timeInForce" in p:
                    raise BinanceError(
                        400, -1106, "Parameter 'timeInForce' sent when not required."
                    )
            elif kind == "MARKET":
                price, tif = Decimal(0), ""
            elif kind in ("STOP_LOSS", "STOP_LOSS_LIMIT"):
                if "stopPrice" not in p:
                    raise BinanceError(400, -1102, "Mandatory parameter 'stopPrice' was not sent.")
                limited = kind == "STOP_LOSS_LIMIT"
                price = Decimal(p["price"]) if limited else Decimal(0)
                tif = p.get("timeInForce", "") if limited else ""
                if limited and tif not in ("GTC", "IOC", "FOK"):
                    raise BinanceError(400, -1102, "Mandatory parameter 'timeInForce' missing.")
                self._check_filters(rules, quantity, Decimal(p["stopPrice"]))
            else:
                raise BinanceError(400, -1116, "Invalid orderType.")
            priced = kind not in ("MARKET", "STOP_LOSS")
            self._check_filters(rules, quantity, price if priced else self.market_price)
            now = now_ms()
            order = FakeOrder(
                next(self._order_ids),
                client_id,
                rules.symbol,
                p.get("side", ""),
                kind,
                tif,
                quantity,
                price,
                now,
                updated_ms=now,
            )
            if kind.startswith("STOP_LOSS"):
                order.stop_price, order.working = Decimal(p["stopPrice"]), False
            self.orders[client_id] = order
            self._publish(order, "NEW")
            if kind == "MARKET":
                self._trade(order, quantity, self.market_price, maker=False)
            elif tif in ("IOC", "FOK"):
                # Trades against the market price when it crosses; the rest expires.
                crossed = (
                    price >= self.market_price
                    if order.side == "BUY"
                    else (price <= self.market_price)
                )
                if crossed:
                    self._trade(order, quantity, self.market_price, maker=False)
                else:
                    order.status = "EXPIRED"
                    self._publish(order, "EXPIRED")
            answer = self._order_json(order) | {"transactTime": now, "workingTime": now}
            for key in ("time", "updateTime", "isWorking", "stopPrice", "icebergQty"):
                answer.pop(key)
            answer["fills"] = [
                {
                    "price": t["price"],
                    "qty": t["qty"],
                    "commission": t["commission"],
                    "commissionAsset": t["commissionAsset"],
                    "tradeId": t["id"],
                }
                for t in order.trades
            ]
            return answer

    def avg_price(self, p: dict[str, str]) -> dict[str, Any]:
        """The symbol's weighted average price over 5 minutes: the market price here."""
        if p.get("symbol") not in self.symbols:
            raise BinanceError(400, -1121, "Invalid symbol.")
        return {"mins": 5, "price": _s(self.market_price), "closeTime": now_ms()}

    def _find(self, p: dict[str, str], missing: BinanceError) -> FakeOrder:
        order = self.orders.get(p.get("origClientOrderId", ""))
        if order is None and "orderId" in p:
            order = next((o for o in self.orders.values() if str(o.order_id) == p["orderId"]), None)
        if order is None or order.symbol != p.get("symbol"):
            raise missing
        return order

    def cancel(self, p: dict[str, str]) -> dict[str, Any]:
        with self._lock:
            order = self._find(p, BinanceError(400, -2011, "Unknown order sent."))
            if order.status not in ("NEW", "PARTIALLY_FILLED"):
                raise BinanceError(400, -2011, "Unknown order sent.")
            order.status, order.updated_ms = "CANCELED", now_ms()
            self._publish(order, "CANCELED")
            answer = self._order_json(order)
            for key in ("time", "updateTime", "isWorking", "stopPrice", "icebergQty"):
                answer.pop(key)
            answer["origClientOrderId"] = order.client_order_id
            answer["clientOrderId"] = f"cancel-{order.order_id}"
            answer["transactTime"] = order.updated_ms
            return answer

    def query(self, p: dict[str, str]) -> dict[str, Any]:
        with self._lock:
            return self._order_json(
                self._find(p, BinanceError(400, -2013, "Order does not exist."))
            )

    def open_orders(self, p: dict[str, str]) -> list[dict[str, Any]]:
        with self._lock:
            return [
                self._order_json(o)
                for o in self.orders.values()
                if o.status in ("NEW", "PARTIALLY_FILLED")
                and ("symbol" not in p or o.symbol == p["symbol"])
            ]

    def my_trades(self, p: dict[str, str]) -> list[dict[str, Any]]:
        with self._lock:
            if "symbol" not in p:
                raise BinanceError(400, -1102, "Mandatory parameter 'symbol' was not sent.")
            trades = [
                t
                for o in self.orders.values()
                if o.symbol == p["symbol"]
                for t in o.trades
                if ("orderId" not in p or str(t["orderId"]) == p["orderId"])
                and ("startTime" not in p or t["time"] >= int(p["startTime"]))
                and ("fromId" not in p or t["id"] >= int(p["fromId"]))
            ]
            trades.sort(key=lambda t: t["id"])
            return trades[: int(p.get("limit", "500"))]

    def book_ticker(self, p: dict[str, str]) -> Any:
        with self._lock:
            if "symbol" in p:
                wanted = [p["symbol"]]
            elif "symbols" in p:
                wanted = json.loads(p["symbols"])
            else:
                wanted = sorted(self.books)
            if any(symbol not in self.symbols for symbol in wanted):
                raise BinanceError(400, -1121, "Invalid symbol.")
            entries = []
            for symbol in wanted:
                book = self.books.get(symbol)
                if book is None or self._market_faults.get(symbol) == "silent":
                    continue
                bid = book.bids[0] if book.bids else (Decimal(0), Decimal(0))
                ask = book.asks[0] if book.asks else (Decimal(0), Decimal(0))
                entry = {
                    "symbol": symbol,
                    "bidPrice": _s(bid[0]),
                    "bidQty": _s(bid[1]),
                    "askPrice": _s(ask[0]),
                    "askQty": _s(ask[1]),
                }
                if self._market_fault(symbol) == "missing":
                    del entry["bidPrice"]
                entries.append(entry)
            return entries[0] if "symbol" in p and entries else entries

    def depth(self, p: dict[str, str]) -> dict[str, Any]:
        with self._lock:
            symbol = p.get("symbol", "")
            if symbol not in self.symbols:
                raise BinanceError(400, -1121, "Invalid symbol.")
            limit = int(p.get("limit", "100"))
            book = self.books.get(symbol, Book([], []))
            answer: dict[str, Any] = {
                "lastUpdateId": next(self._update_ids),
                "bids": [[_s(price), _s(qty)] for price, qty in book.bids[:limit]],
                "asks": [[_s(price), _s(qty)] for price, qty in book.asks[:limit]],
            }
            if self._market_fault(symbol) == "missing":
                del answer["bids"]
            return answer

    def _market_fault(self, symbol: str | None) -> str | None:
        """The market-data fault in force for a request of `symbol` (None: of several)."""
        with self._lock:
            return self._market_faults.get(symbol) or self._market_faults.get(None)

    def exchange_info(self) -> dict[str, Any]:
        return {
            "timezone": "UTC",
            "serverTime": now_ms(),
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": 6000,
                },
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
            ],
            "exchangeFilters": [],
            "symbols": [_symbol_json(s) for s in self.symbols.values()],
        }

    def _order_json(self, o: FakeOrder) -> dict[str, Any]:
        return {
            "symbol": o.symbol,
            "orderId": o.order_id,
            "orderListId": -1,
            "clientOrderId": o.client_order_id,
            "price": _s(o.price),
            "origQty": _s(o.quantity),
            "executedQty": _s(o.executed),
            "cummulativeQuoteQty": _s(o.quote_executed),
            "status": o.status,
            "timeInForce": o.time_in_force or "GTC",
            "type": o.type,
            "side": o.side,
            "stopPrice": _s(o.stop_price),
            "icebergQty": "0.00000000",
            "time": o.created_ms,
            "updateTime": o.updated_ms,
            "isWorking": o.working,
            "workingTime": o.created_ms,
            "origQuoteOrderQty": "0.00000000",
            "selfTradePreventionMode": "NONE",
        }

    def authenticate(self, headers: Any, payload: str) -> dict[str, str]:
        """The signed request's parameters, or Binance's error."""
        if headers.get("X-MBX-APIKEY") != self.api_key:
            raise BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        signed, sep, signature = payload.rpartition("&signature=")
        if not sep:
            raise BinanceError(400, -1102, "Mandatory parameter 'signature' was not sent.")
        expected = hmac.new(self.secret.encode(), signed.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise BinanceError(401, -1022, "Signature for this request is not valid.")
        params = dict(parse_qsl(signed, keep_blank_values=True))
        if "timestamp" not in params:
            raise BinanceError(400, -1102, "Mandatory parameter 'timestamp' was not sent.")
        return params


def _symbol_json(s: SymbolRules) -> dict[str, Any]:
    return {
        "symbol": s.symbol,
        "status": "TRADING",
        "baseAsset": s.base,
        "baseAssetPrecision": 8,
        "quoteAsset": s.quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": [
            "LIMIT",
            "LIMIT_MAKER",
            "MARKET",
            "STOP_LOSS",
            "STOP_LOSS_LIMIT",
            "TAKE_PROFIT",
            "TAKE_PROFIT_LIMIT",
        ],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": _s(s.min_price),
                "maxPrice": _s(s.max_price),
                "tickSize": _s(s.tick_size),
            },
            {
                "filterType": "PERCENT_PRICE_BY_SIDE",
                "bidMultiplierUp": _s(s.multiplier_up),
                "bidMultiplierDown": _s(s.multiplier_down),
                "askMultiplierUp": _s(s.multiplier_up),
                "askMultiplierDown": _s(s.multiplier_down),
                "avgPriceMins": 5,
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": _s(s.min_qty),
                "maxQty": _s(s.max_qty),
                "stepSize": _s(s.step_size),
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": _s(s.min_notional),
                "applyMinToMarket": True,
                "maxNotional": "9000000.00000000",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


class _UserStream:
    """The spot WebSocket API's user-data subscription (see the module docstring)."""

    def __init__(self, fake: FakeBinanceSpot) -> None:
        self.fake = fake
        self._ids = itertools.count(0)

    def answer(self, session: Session, message: Any) -> list[dict[str, Any]]:
        if not isinstance(message, dict) or "method" not in message:
            return [_ws_error(None, 400, -1102, "Malformed request.")]
        request_id = message.get("id")
        if message["method"] != "userDataStream.subscribe.signature":
            return [_ws_error(request_id, 400, -1102, f"Unknown method {message['method']}.")]
        params = dict(message.get("params") or {})
        signature = str(params.pop("signature", ""))
        if params.get("apiKey") != self.fake.api_key:
            return [_ws_error(request_id, 401, -2015, "Invalid API-key, IP, or permissions.")]
        signed = "&".join(f"{k}={params[k]}" for k in sorted(params))
        secret = self.fake.secret.encode()
        expected = hmac.new(secret, signed.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            return [_ws_error(request_id, 401, -1022, "Signature for this request is not valid.")]
        session.subscription_id = next(self._ids)
        return [
            {
                "id": request_id,
                "status": 200,
                "result": {"subscriptionId": session.subscription_id},
            }
        ]

    def wrap(self, session: Session, event: Any) -> dict[str, Any] | None:
        if session.subscription_id is None:
            return None
        return {"subscriptionId": session.subscription_id, "event": event}


def _ws_error(request_id: Any, status: int, code: int, msg: str) -> dict[str, Any]:
    return {"id": request_id, "status": status, "error": {"code": code, "msg": msg}}


class _Handler(FakeHandler):
    fake: ClassVar[FakeBinanceSpot]

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self._serve("POST")

    def do_DELETE(self) -> None:  # noqa: N802 - http.server's name
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        fake = self.fake
        parts = urlsplit(self.path)
        path = parts.path
        body = self._read_body()
        payload = body if method == "POST" and body else parts.query
        with fake._lock:
            fake.requests.append((method, path))
            if method == "POST" and path == "/api/v3/order":
                sent_id = dict(parse_qsl(payload)).get("newClientOrderId", "")
                fake.sent[sent_id] += 1
        if path in MARKET_PATHS and self._market_fault_answered(parts.query):
            return
        self._play(
            fake._take_fault(method, path),
            lambda: self._apply(method, path, payload),
            self._applied_later(method, path, payload),
            (200, {}),
        )

    def _market_fault_answered(self, query: str) -> bool:
        """Answers a market-data request as its fault says; False when it is left to the
        route (no fault, or one the route applies to what it answers)."""
        symbol = dict(parse_qsl(query)).get("symbol")
        kind = self.fake._market_fault(symbol)
        if kind == "silent":
            self._hang_up()
            return True
        if kind == "5xx":
            self._answer_unavailable()
            return True
        if kind == "garbage":
            self._send(200, b'{"symbol": "BTCUSDT", "bidPrice": "600', _JSON)
            return True
        return False

    def _applied_later(self, method: str, path: str, payload: str) -> Callable[[], None]:
        """Applies the request, if Binance would still take it (a `late` fault)."""
        fake, headers = self.fake, dict(self.headers)
        params = dict(parse_qsl(payload))
        expires_ms = int(params.get("timestamp", "0")) + int(params.get("recvWindow", "5000"))

        def apply() -> None:
            if now_ms() > expires_ms:
                return  # Binance refuses a request past its recvWindow: never executed
            with contextlib.suppress(BinanceError):
                route = {("POST", "/api/v3/order"): fake.new_order}[(method, path)]
                route(fake.authenticate(headers, payload))

        return apply

    def _apply(self, method: str, path: str, payload: str) -> tuple[int, Any]:
        try:
            return 200, self._route(method, path, payload)
        except BinanceError as error:
            return error.http_status, {"code": error.code, "msg": error.msg}

    def _route(self, method: str, path: str, payload: str) -> Any:
        fake = self.fake
        if (method, path) == ("GET", "/api/v3/exchangeInfo"):
            return fake.exchange_info()
        if (method, path) == ("GET", "/api/v3/time"):
            return {"serverTime": now_ms()}
        if (method, path) == ("GET", "/api/v3/ping"):
            return {}
        if (method, path) == ("GET", "/api/v3/avgPrice"):
            return fake.avg_price(dict(parse_qsl(payload)))
        public = {
            ("GET", "/api/v3/ticker/bookTicker"): fake.book_ticker,
            ("GET", "/api/v3/depth"): fake.depth,
        }
        if (method, path) in public:
            return public[(method, path)](dict(parse_qsl(payload)))
        routes = {
            ("POST", "/api/v3/order"): fake.new_order,
            ("DELETE", "/api/v3/order"): fake.cancel,
            ("GET", "/api/v3/order"): fake.query,
            ("GET", "/api/v3/openOrders"): fake.open_orders,
            ("GET", "/api/v3/myTrades"): fake.my_trades,
        }
        route = routes.get((method, path))
        if route is None:
            raise BinanceError(404, -1000, f"no such endpoint {method} {path}")
        return route(fake.authenticate(self.headers, payload))

    def _answer(self, status: int, answer: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(answer).encode(), _JSON, headers)

    def _answer_rate_limited(self, retry_after_s: float) -> None:
        message = {"code": -1003, "msg": "Too many requests; please use the websocket."}
        self._answer(429, message, {"Retry-After": str(retry_after_s)})

    def _answer_unavailable(self) -> None:
        self._answer(503, {"code": -1001, "msg": "Internal error; unable to process."})
