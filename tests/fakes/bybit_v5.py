"""A fake Bybit v5 REST server (spot) on loopback, for the CCXT Bybit adapter's tests.

It speaks Bybit v5's documented wire format: every answer is HTTP 200 with the envelope
`{"retCode", "retMsg", "result", "retExtInfo", "time"}` (retCode 0 for success), numbers are
decimal strings, and the endpoints are the ones CCXT's `bybit` class and the adapter call:

- public: GET /v5/market/time, /v5/market/instruments-info, /v5/market/tickers and
  /v5/market/orderbook (category spot);
- private: POST /v5/order/create, /v5/order/cancel, /v5/order/amend (JSON bodies); GET
  /v5/order/realtime (openOnly 0: open orders; 1: closed ones), /v5/order/history and
  /v5/execution/list.

A private request must carry X-BAPI-API-KEY (else 10003), X-BAPI-TIMESTAMP and
X-BAPI-RECV-WINDOW, and X-BAPI-SIGN: the hex HMAC-SHA256, with the secret, of timestamp + API key
+ recv window + the query string (GET) or the JSON body (POST); else 10004. A timestamp older
than its recv window (or over a second ahead) is refused with 10002, as Bybit does.

Orders are kept by orderLinkId. A second order with an orderLinkId the fake has seen is refused
(110072 "OrderLinkedID is duplicate"). Every POST /v5/order/create is counted by its
orderLinkId (`sent`), whatever became of it: the bar of the tests is that no order is submitted
twice. A Market order fills at once at `market_price` (its qty in base coin with
marketUnit=baseCoin, else a buy's qty is in quote coin, as Bybit's unified account does); an IOC
or FOK Limit fills at `market_price` when it crosses it, else is cancelled (a Limit beyond the
spot price limit of riskParameters, around `market_price` as the index, is refused: 170193,
170194); a PostOnly that would
cross is cancelled (rejectReason EC_PostOnlyWillTakeLiquidity); other Limits rest until the test
calls `fill(order_link_id, qty, price)` or `cross(price)`. A buy pays its fee in the base coin,
a sell in the quote coin (spot).

A conditional order (a `triggerPrice`, with orderFilter StopOrder) waits Untriggered, to trigger
on a rise to its trigger when the trigger is above the last price (`market_price`) when it is
placed, else on a fall, as Bybit spot decides (it takes no triggerDirection). `cross(price)`
triggers it (Triggered, then New: a Market one fills whole at `price`, a Limit one works at its
limit). As Bybit documents, a cancel names the kind of order it cancels (orderFilter, Order by
default): an untriggered conditional order is found only with StopOrder (and ends Deactivated),
a triggered one only as an Order; else 110001.

Fault hooks, each for the next matching request (`fault(kind, path=..., method=...)`):
`timeout` (the answer comes after `sleep_s`), `5xx` (a 503 with an HTML body), `429` (retCode
10006 "Too many visits!" with X-Bapi-Limit-Reset-Timestamp `retry_after_s` ahead, nothing
applied), `drop` (the connection closes unanswered, nothing applied), `lost` (applied, then the
connection closes), `late` (the connection closes at once and the request is applied `sleep_s`
later, only while its timestamp is within its recv window), `unknown` (a query answers as if
the order did not exist), `malformed` (a truncated JSON body), `missing` (the answer's rows lack
`field`), `status` (the answer's rows have an orderStatus Bybit never sent). `timeout`, `5xx`,
`malformed`, `missing` and `status` take `apply` to say whether a write was applied.

The private stream (`stream`, at `stream_url`: tests/fakes/stream.py) speaks Bybit v5's
documented private websocket: `{"op": "auth", "args": [key, expires, signature]}` with the hex
HMAC-SHA256 of `GET/realtime` + expires (an expiry in the past or a wrong signature is refused),
`{"op": "subscribe", "args": [topics]}` for `order` and `execution` (only once authenticated),
`{"op": "ping"}`; each change of an order is pushed as `{"id", "topic": "order",
"creationTime", "data": [row]}` with the row of /v5/order/realtime, and each trade as
`{"topic": "execution", ...}` with the row of /v5/execution/list (category spot).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

from tests.fakes.server import FakeHandler, Fault, LoopbackFake, now_ms
from tests.fakes.stream import Session, StreamServer

FEE_RATE = Decimal("0.001")
_OPEN = ("New", "PartiallyFilled")
_UNTRIGGERED = "Untriggered"  # a conditional order waiting for its trigger
_LINK_ID_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass(frozen=True)
class SpotRules:
    symbol: str  # Bybit's id, e.g. BTCUSDT
    base: str
    quote: str
    tick_size: Decimal
    base_precision: Decimal  # the quantity step
    quote_precision: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_amount: Decimal  # the least order value, in quote
    max_amount: Decimal = Decimal("2000000")
    # The spot price limit (riskParameters), fractions around the index price.
    limit_ratio_x: Decimal = Decimal("0.05")
    limit_ratio_y: Decimal = Decimal("0.1")


# The tests' usual symbol.
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


@dataclass
class FakeOrder:
    order_id: str
    order_link_id: str
    symbol: str
    side: str  # Buy | Sell
    order_type: str  # Limit | Market
    time_in_force: str  # GTC | IOC | FOK | PostOnly
    qty: Decimal
    price: Decimal
    created_ms: int
    status: str = "New"
    cum_qty: Decimal = Decimal(0)
    cum_value: Decimal = Decimal(0)
    cum_fee: Decimal = Decimal(0)
    updated_ms: int = 0
    cancel_type: str = "UNKNOWN"
    reject_reason: str = "EC_NoError"
    executions: list[dict[str, Any]] = field(default_factory=list)
    # A conditional order (orderFilter StopOrder): its trigger, and 1 when it triggers on a rise
    # to it, 2 on a fall (Bybit spot decides from the last price when the order is placed).
    trigger_price: Decimal = Decimal(0)
    trigger_direction: int = 0

    @property
    def waiting(self) -> bool:
        return self.status == _UNTRIGGERED

    @property
    def working(self) -> bool:
        return self.status in _OPEN or self.waiting


class BybitError(Exception):
    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code, self.msg = code, msg


def _s(value: Decimal) -> str:
    """Bybit's decimal strings: no exponent, no trailing zeros."""
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


class FakeBybitSpot(LoopbackFake):
    """The fake exchange; `start()` serves it on 127.0.0.1, `url` is its base; `sent` counts
    the POST /v5/order/create of each orderLinkId."""

    def __init__(
        self,
        api_key: str,
        secret: str,
        symbols: list[SpotRules],
        market_price: Decimal = Decimal("60000"),
    ) -> None:
        super().__init__(_Handler, stream=StreamServer(_PrivateStream(self), "/v5/private"))
        self.api_key = api_key
        self.secret = secret
        self.symbols = {s.symbol: s for s in symbols}
        self.market_price = market_price
        self.orders: dict[str, FakeOrder] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request
        self._order_ids = itertools.count(1_800_000_000_000_000_001)
        self._exec_seq = itertools.count(1)

    def _publish(self, order: FakeOrder, execution: dict[str, Any] | None = None) -> None:
        """The order's change (and its trade) on the private stream."""
        if execution is not None:
            self.stream.publish(("execution", {"category": "spot"} | execution))
        self.stream.publish(("order", {"category": "spot"} | self._order_json(order)))

    # -- the test's hands -------------------------------------------------------------------

    def fault(
        self,
        kind: str,
        path: str | None = "/v5/order/create",
        method: str | None = "POST",
        *,
        apply: bool = False,
        sleep_s: float = 3.0,
        retry_after_s: float = 1.0,
        field: str = "",
    ) -> None:
        self._add_fault(Fault(kind, path, method, apply, sleep_s, retry_after_s, field))

    def fill(self, order_link_id: str, qty: Decimal, price: Decimal) -> None:
        """A resting order trades `qty` at `price` as the maker."""
        with self._lock:
            order = self.orders[order_link_id]
            assert order.status in _OPEN, order.status
            assert order.cum_qty + qty <= order.qty
            self._execute(order, qty, price, maker=True)

    def cross(self, price: Decimal) -> None:
        """The market trades at `price`: conditional orders whose trigger it reaches trigger
        (a Market one fills whole at `price`); then every resting buy at or above it and every
        resting sell at or below it fills whole at its own limit."""
        with self._lock:
            for order in self.orders.values():
                rise = order.trigger_direction == 1
                if order.waiting and (
                    price >= order.trigger_price if rise else price <= order.trigger_price
                ):
                    self._trigger(order, price)
            for order in self.orders.values():
                if order.status not in _OPEN or order.order_type != "Limit":
                    continue
                crossed = order.price >= price if order.side == "Buy" else order.price <= price
                if crossed:
                    self._execute(order, order.qty - order.cum_qty, order.price, maker=True)

    # -- the exchange -----------------------------------------------------------------------

    def _trigger(self, order: FakeOrder, price: Decimal) -> None:
        order.status, order.updated_ms = "Triggered", now_ms()
        self._publish(order)
        order.status = "New"
        crosses = order.price >= price if order.side == "Buy" else order.price <= price
        if order.order_type == "Market":
            self._execute(order, order.qty, price, maker=False)
        elif order.time_in_force in ("IOC", "FOK") and not crosses:
            order.status, order.cancel_type = "Cancelled", "CancelByUser"
            self._publish(order)
        else:
            self._publish(order)  # a crossing limit fills at its limit in `cross`

    def _execute(self, order: FakeOrder, qty: Decimal, price: Decimal, maker: bool) -> None:
        now = now_ms()
        rules = self.symbols[order.symbol]
        value = qty * price
        fee, currency = (
            (qty * FEE_RATE, rules.base) if order.side == "Buy" else (value * FEE_RATE, rules.quote)
        )
        order.cum_qty += qty
        order.cum_value += value
        order.cum_fee += fee
        order.status = "Filled" if order.cum_qty == order.qty else "PartiallyFilled"
        order.updated_ms = now
        seq = next(self._exec_seq)
        order.executions.append(
            {
                "symbol": order.symbol,
                "orderId": order.order_id,
                "orderLinkId": order.order_link_id,
                "side": order.side,
                "orderPrice": _s(order.price),
                "orderQty": _s(order.qty),
                "leavesQty": _s(order.qty - order.cum_qty),
                "createType": "CreateByUser",
                "orderType": order.order_type,
                "stopOrderType": "Stop" if order.trigger_direction else "",
                "execFee": _s(fee),
                "execId": f"{seq:08d}-0000-4000-8000-{order.order_id[-12:]}",
                "execPrice": _s(price),
                "execQty": _s(qty),
                "execType": "Trade",
                "execValue": _s(value),
                "execTime": str(now),
                "feeCurrency": currency,
                "isMaker": maker,
                "feeRate": _s(FEE_RATE),
                "tradeIv": "",
                "markIv": "",
                "markPrice": "",
                "indexPrice": "",
                "underlyingPrice": "",
                "blockTradeId": "",
                "closedSize": "",
                "seq": seq,
            }
        )
        self._publish(order, order.executions[-1])

    def _rules_for(self, p: dict[str, Any]) -> SpotRules:
        if p.get("category") != "spot":
            raise BybitError(10001, "category only support spot here")
        rules = self.symbols.get(str(p.get("symbol", "")))
        if rules is None:
            raise BybitError(10001, "params error: symbol invalid")
        return rules

    def _check_price_limit(self, rules: SpotRules, side: str, price: Decimal) -> None:
        """Bybit's spot price limit for a limit order, with the index at the market price and
        no premium: a buy at most Min[Max(I, I(1 + x)), I(1 + y)], a sell at least
        Max[Min(I, I(1 - x)), I(1 - y)]."""
        index, x, y = self.market_price, rules.limit_ratio_x, rules.limit_ratio_y
        if side == "Buy":
            most = min(max(index, index * (1 + x)), index * (1 + y))
            if price > most:
                raise BybitError(170193, f"Buy order price cannot be higher than {_s(most)}.")
        else:
            least = max(min(index, index * (1 - x)), index * (1 - y))
            if price < least:
                raise BybitError(170194, f"Sell order price cannot be lower than {_s(least)}.")

    def _check(self, rules: SpotRules, qty: Decimal, price: Decimal | None) -> None:
        if qty % rules.base_precision:
            raise BybitError(170137, "Order quantity has too many decimals.")
        if qty < rules.min_qty:
            raise BybitError(170136, "Order quantity lower than the minimum.")
        if qty > rules.max_qty:
            raise BybitError(170135, "Order quantity exceeded upper limit.")
        if price is not None and price % rules.tick_size:
            raise BybitError(170134, "Order price has too many decimals.")
        value = qty * (price if price is not None else self.market_price)
        if value < rules.min_amount:
            raise BybitError(170140, "Order value exceeded lower limit.")

    def create(self, p: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            rules = self._rules_for(p)
            link_id = str(p.get("orderLinkId", ""))
            if not link_id or len(link_id) > 36 or not set(link_id) <= _LINK_ID_CHARS:
                raise BybitError(10001, "params error: orderLinkId invalid")
            if link_id in self.orders:
                raise BybitError(110072, "OrderLinkedID is duplicate")
            side, kind = p.get("side"), p.get("orderType")
            if side not in ("Buy", "Sell"):
                raise BybitError(10001, "params error: side invalid")
            try:
                qty = Decimal(str(p["qty"]))
                price = Decimal(str(p["price"])) if kind == "Limit" else None
                trigger = Decimal(str(p["triggerPrice"])) if p.get("triggerPrice") else None
            except (KeyError, ArithmeticError) as error:
                raise BybitError(10001, f"params error: {error}") from error
            if kind == "Limit":
                tif = p.get("timeInForce", "GTC")
                if tif not in ("GTC", "IOC", "FOK", "PostOnly"):
                    raise BybitError(10001, "params error: timeInForce invalid")
            elif kind == "Market":
                tif = "IOC"
                if side == "Buy" and p.get("marketUnit") != "baseCoin":
                    qty = qty / self.market_price  # a quote amount: Bybit's default for buys
                    qty -= qty % rules.base_precision
            else:
                raise BybitError(10001, "params error: orderType invalid")
            self._check(rules, qty, price if price is not None else trigger)
            if trigger is not None and trigger % rules.tick_size:
                raise BybitError(170134, "Order price has too many decimals.")
            if price is not None and trigger is None:
                self._check_price_limit(rules, str(side), price)
            now = now_ms()
            order = FakeOrder(
                str(next(self._order_ids)),
                link_id,
                rules.symbol,
                str(side),
                str(kind),
                tif,
                qty,
                price if price is not None else Decimal(0),
                now,
                updated_ms=now,
            )
            self.orders[link_id] = order
            if trigger is not None:
                order.status, order.trigger_price = _UNTRIGGERED, trigger
                order.trigger_direction = 1 if trigger > self.market_price else 2
                self._publish(order)
                return {"orderId": order.order_id, "orderLinkId": link_id}
            crosses = kind == "Market" or (
                order.price >= self.market_price
                if side == "Buy"
                else order.price <= self.market_price
            )
            if tif == "PostOnly" and crosses:
                order.status, order.reject_reason = "Cancelled", "EC_PostOnlyWillTakeLiquidity"
                order.cancel_type = "CancelByUser"
            elif tif in ("IOC", "FOK"):
                if crosses:
                    self._execute(order, qty, self.market_price, maker=False)
                else:
                    order.status, order.cancel_type = "Cancelled", "CancelByUser"
            self._publish(order)
            return {"orderId": order.order_id, "orderLinkId": link_id}

    def _find(self, p: dict[str, Any]) -> FakeOrder | None:
        if p.get("orderId"):
            return next((o for o in self.orders.values() if o.order_id == p["orderId"]), None)
        return self.orders.get(str(p.get("orderLinkId", "")))

    def cancel(self, p: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            rules = self._rules_for(p)
            order = self._find(p)
            if order is None or order.symbol != rules.symbol or not order.working:
                raise BybitError(110001, "Order does not exist.")
            if order.waiting != (p.get("orderFilter", "Order") == "StopOrder"):
                raise BybitError(110001, "Order does not exist.")  # looked for another kind
            if order.waiting:
                order.status = "Deactivated"
            else:
                order.status = "PartiallyFilledCanceled" if order.cum_qty else "Cancelled"
            order.cancel_type, order.updated_ms = "CancelByUser", now_ms()
            self._publish(order)
            return {"orderId": order.order_id, "orderLinkId": order.order_link_id}

    def amend(self, p: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            rules = self._rules_for(p)
            order = self._find(p)
            if order is None or order.symbol != rules.symbol or order.status not in _OPEN:
                raise BybitError(110001, "Order does not exist.")
            if order.order_type != "Limit":
                raise BybitError(10001, "only a Limit order can be amended")
            qty = Decimal(str(p["qty"])) if p.get("qty") else order.qty
            price = Decimal(str(p["price"])) if p.get("price") else order.price
            if (qty, price) == (order.qty, order.price):
                raise BybitError(10001, "order not modified")
            if qty <= order.cum_qty:
                raise BybitError(10001, "the new qty must be above the filled qty")
            self._check(rules, qty, price)
            self._check_price_limit(rules, order.side, price)
            order.qty, order.price, order.updated_ms = qty, price, now_ms()
            self._publish(order)
            return {"orderId": order.order_id, "orderLinkId": order.order_link_id}

    def _matching(self, p: dict[str, Any], wanted: Any) -> list[dict[str, Any]]:
        if p.get("category") != "spot":
            raise BybitError(10001, "category only support spot here")
        found = [
            o
            for o in self.orders.values()
            if wanted(o)
            and ("symbol" not in p or o.symbol == p["symbol"])
            and (not p.get("orderId") or o.order_id == p["orderId"])
            and (not p.get("orderLinkId") or o.order_link_id == p["orderLinkId"])
        ]
        found.sort(key=lambda o: o.created_ms, reverse=True)
        return [self._order_json(o) for o in found[: int(p.get("limit", "20"))]]

    def realtime(self, p: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            closed = str(p.get("openOnly", "0")) == "1"
            rows = self._matching(p, lambda o: (not o.working) == closed)
            return {"category": "spot", "list": rows, "nextPageCursor": ""}

    def history(self, p: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            return {"category": "spot", "list": self._matching(p, bool), "nextPageCursor": ""}

    def executions(self, p: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            if p.get("category") != "spot":
                raise BybitError(10001, "category only support spot here")
            rows = [
                e
                for o in self.orders.values()
                for e in o.executions
                if ("symbol" not in p or e["symbol"] == p["symbol"])
                and (not p.get("orderId") or e["orderId"] == p["orderId"])
                and (not p.get("orderLinkId") or e["orderLinkId"] == p["orderLinkId"])
                and ("startTime" not in p or int(e["execTime"]) >= int(p["startTime"]))
            ]
            rows.sort(key=lambda e: e["seq"], reverse=True)  # newest first, as Bybit
            limit = int(p.get("limit", "50"))
            return {"category": "spot", "list": rows[:limit], "nextPageCursor": ""}

    def instruments(self, p: dict[str, str]) -> dict[str, Any]:
        listed = [
            _instrument_json(s)
            for s in self.symbols.values()
            if "symbol" not in p or s.symbol == p["symbol"]
        ]
        return {"category": "spot", "list": listed, "nextPageCursor": ""}

    def tickers(self, p: dict[str, str]) -> dict[str, Any]:
        rows = []
        for s in self.symbols.values():
            if "symbol" in p and s.symbol != p["symbol"]:
                continue
            price = self.market_price
            rows.append(
                {
                    "symbol": s.symbol,
                    "bid1Price": _s(price - s.tick_size),
                    "bid1Size": "1.5",
                    "ask1Price": _s(price + s.tick_size),
                    "ask1Size": "2.25",
                    "lastPrice": _s(price),
                    "prevPrice24h": _s(price),
                    "price24hPcnt": "0",
                    "highPrice24h": _s(price),
                    "lowPrice24h": _s(price),
                    "turnover24h": "0",
                    "volume24h": "0",
                    "usdIndexPrice": _s(price),
                }
            )
        return {"category": "spot", "list": rows}

    def orderbook(self, p: dict[str, str]) -> dict[str, Any]:
        rules = self.symbols.get(p.get("symbol", ""))
        if rules is None or p.get("category") != "spot":
            raise BybitError(10001, "params error: symbol invalid")
        depth = max(1, min(int(p.get("limit", "1")), 200))
        price, tick = self.market_price, rules.tick_size
        return {
            "s": rules.symbol,
            "b": [[_s(price - tick * (i + 1)), "1.5"] for i in range(depth)],
            "a": [[_s(price + tick * (i + 1)), "2.25"] for i in range(depth)],
            "ts": now_ms(),
            "u": 1,
            "seq": 1,
            "cts": now_ms(),
        }

    def _order_json(self, o: FakeOrder) -> dict[str, Any]:
        average = o.cum_value / o.cum_qty if o.cum_qty else Decimal(0)
        leaves = o.qty - o.cum_qty if o.working else Decimal(0)
        return {
            "orderId": o.order_id,
            "orderLinkId": o.order_link_id,
            "blockTradeId": "",
            "symbol": o.symbol,
            "price": _s(o.price),
            "qty": _s(o.qty),
            "side": o.side,
            "isLeverage": "0",
            "positionIdx": 0,
            "orderStatus": o.status,
            "createType": "CreateByUser",
            "cancelType": o.cancel_type,
            "rejectReason": o.reject_reason,
            "avgPrice": _s(average) if o.cum_qty else "",
            "leavesQty": _s(leaves),
            "leavesValue": _s(leaves * o.price),
            "cumExecQty": _s(o.cum_qty),
            "cumExecValue": _s(o.cum_value),
            "cumExecFee": _s(o.cum_fee),
            "timeInForce": o.time_in_force,
            "orderType": o.order_type,
            "stopOrderType": "Stop" if o.trigger_direction else "",
            "orderIv": "",
            "marketUnit": "baseCoin" if o.order_type == "Market" else "",
            "triggerPrice": _s(o.trigger_price) if o.trigger_direction else "",
            "takeProfit": "",
            "stopLoss": "",
            "tpslMode": "",
            "ocoTriggerBy": "",
            "tpLimitPrice": "",
            "slLimitPrice": "",
            "tpTriggerBy": "",
            "slTriggerBy": "",
            "triggerDirection": o.trigger_direction,
            "triggerBy": "LastPrice" if o.trigger_direction else "",
            "lastPriceOnCreated": _s(self.market_price),
            "reduceOnly": False,
            "closeOnTrigger": False,
            "placeType": "",
            "smpType": "None",
            "smpGroup": 0,
            "smpOrderId": "",
            "createdTime": str(o.created_ms),
            "updatedTime": str(o.updated_ms),
        }

    def authenticate(self, headers: Any, payload: str) -> None:
        """Checks a private request's key, signature and recv window (Bybit's errors)."""
        if headers.get("X-BAPI-API-KEY") != self.api_key:
            raise BybitError(10003, "API key is invalid.")
        stamp = headers.get("X-BAPI-TIMESTAMP", "")
        window = headers.get("X-BAPI-RECV-WINDOW", "5000")
        signature = headers.get("X-BAPI-SIGN", "")
        signed = f"{stamp}{self.api_key}{window}{payload}"
        expected = hmac.new(self.secret.encode(), signed.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise BybitError(10004, "error sign! origin_string[***]")
        now = now_ms()
        if not (stamp.isdigit() and window.isdigit()):
            raise BybitError(10001, "params error: X-BAPI-TIMESTAMP or X-BAPI-RECV-WINDOW")
        if not now - int(window) <= int(stamp) < now + 1000:
            raise BybitError(
                10002,
                "invalid request, please check your server timestamp or recv_window param. "
                f"req_timestamp[{stamp}],server_timestamp[{now}],recv_window[{window}]",
            )


def _instrument_json(s: SpotRules) -> dict[str, Any]:
    return {
        "symbol": s.symbol,
        "baseCoin": s.base,
        "quoteCoin": s.quote,
        "innovation": "0",
        "status": "Trading",
        "marginTrading": "none",
        "stTag": "0",
        "lotSizeFilter": {
            "basePrecision": _s(s.base_precision),
            "quotePrecision": _s(s.quote_precision),
            "minOrderQty": _s(s.min_qty),
            "maxOrderQty": _s(s.max_qty),
            "minOrderAmt": _s(s.min_amount),
            "maxOrderAmt": _s(s.max_amount),
        },
        "priceFilter": {"tickSize": _s(s.tick_size)},
        "riskParameters": {
            "priceLimitRatioX": _s(s.limit_ratio_x),
            "priceLimitRatioY": _s(s.limit_ratio_y),
        },
    }


_PUBLIC = {
    "/v5/market/instruments-info": FakeBybitSpot.instruments,
    "/v5/market/tickers": FakeBybitSpot.tickers,
    "/v5/market/orderbook": FakeBybitSpot.orderbook,
}
_PRIVATE = {
    ("POST", "/v5/order/create"): FakeBybitSpot.create,
    ("POST", "/v5/order/cancel"): FakeBybitSpot.cancel,
    ("POST", "/v5/order/amend"): FakeBybitSpot.amend,
    ("GET", "/v5/order/realtime"): FakeBybitSpot.realtime,
    ("GET", "/v5/order/history"): FakeBybitSpot.history,
    ("GET", "/v5/execution/list"): FakeBybitSpot.executions,
}


class _Handler(FakeHandler):
    fake: ClassVar[FakeBybitSpot]
    always_applied = frozenset({"unknown", "status", "missing"})

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self._serve("POST")

    def _serve(self, method: str) -> None:
        fake = self.fake
        parts = urlsplit(self.path)
        path = parts.path
        body = self._read_body()
        payload = body if method == "POST" else parts.query
        with fake._lock:
            fake.requests.append((method, path))
            if (method, path) == ("POST", "/v5/order/create"):
                with contextlib.suppress(ValueError, AttributeError):
                    fake.sent[str(json.loads(body).get("orderLinkId", ""))] += 1
        self._play(
            fake._take_fault(method, path),
            lambda: self._apply(method, path, payload),
            self._applied_later(method, path, payload),
            (200, _envelope(0, "OK", {})),
        )

    def _applied_later(self, method: str, path: str, payload: str) -> Callable[[], None]:
        """Applies the request, if Bybit would still take it (a `late` fault)."""
        fake, headers = self.fake, dict(self.headers)
        stamp = int(headers.get("X-BAPI-TIMESTAMP", "0") or 0)
        expires_ms = stamp + int(headers.get("X-BAPI-RECV-WINDOW", "5000") or 5000)

        def apply() -> None:
            if now_ms() > expires_ms:
                return  # Bybit refuses a request past its recv window: never executed
            with contextlib.suppress(BybitError):
                fake.authenticate(headers, payload)
                _PRIVATE[(method, path)](fake, json.loads(payload))

        return apply

    def _apply(self, method: str, path: str, payload: str) -> tuple[int, Any]:
        try:
            return 200, _envelope(0, "OK", self._route(method, path, payload))
        except BybitError as error:
            return 200, _envelope(error.code, error.msg, {})

    def _route(self, method: str, path: str, payload: str) -> Any:
        fake = self.fake
        if (method, path) == ("GET", "/v5/market/time"):
            now = time.time_ns()
            return {"timeSecond": str(now // 10**9), "timeNano": str(now)}
        public = _PUBLIC.get(path)
        if public is not None and method == "GET":
            return public(fake, dict(parse_qsl(payload)))
        route = _PRIVATE.get((method, path))
        if route is None:
            raise BybitError(10001, f"no such endpoint {method} {path}")
        fake.authenticate(self.headers, payload)
        try:
            params = json.loads(payload) if method == "POST" else dict(parse_qsl(payload))
        except ValueError as error:
            raise BybitError(10001, "params error: the body is not JSON") from error
        return route(fake, params)

    def _answer(self, status: int, answer: Any, headers: dict[str, str] | None = None) -> None:
        text = answer if isinstance(answer, str) else json.dumps(answer)
        kind = "application/json" if status == 200 else "text/html"
        self._send(status, text.encode(), f"{kind}; charset=utf-8", headers)

    def _answer_rate_limited(self, retry_after_s: float) -> None:
        headers = {
            "X-Bapi-Limit": "20",
            "X-Bapi-Limit-Status": "0",
            "X-Bapi-Limit-Reset-Timestamp": str(now_ms() + int(retry_after_s * 1000)),
        }
        self._answer(200, _envelope(10006, "Too many visits!", {}), headers)

    def _answer_unavailable(self) -> None:
        self._answer(503, "<html><body>503 Service Temporarily Unavailable</body></html>")

    def _answer_faulted(self, fault: Fault, status: int, answer: Any) -> None:
        if fault.kind == "malformed":
            self._answer(200, json.dumps(answer)[: len(json.dumps(answer)) // 2])
        else:
            self._answer(200, _distort(answer, fault))


class _PrivateStream:
    """Bybit v5's private websocket (see the module docstring)."""

    topics = frozenset({"order", "execution"})

    def __init__(self, fake: FakeBybitSpot) -> None:
        self.fake = fake
        self._ids = itertools.count(1)

    def answer(self, session: Session, message: Any) -> list[dict[str, Any]]:
        if not isinstance(message, dict):
            return [self._status(False, "error:invalid op", "", None)]
        op, req_id = message.get("op", ""), message.get("req_id")
        args = message.get("args") or []
        if op == "ping":
            return [self._status(True, "pong", "ping", req_id)]
        if op == "auth":
            session.authenticated = self._authentic(args)
            why = "" if session.authenticated else "Request not authorized"
            return [self._status(session.authenticated, why, "auth", req_id)]
        if op == "subscribe":
            if not session.authenticated:
                return [self._status(False, "Request not authorized", op, req_id)]
            unknown = [topic for topic in args if topic not in self.topics]
            if unknown:
                why = f"error:handler not found,topic:{unknown[0]}"
                return [self._status(False, why, op, req_id)]
            session.topics.update(args)
            return [self._status(True, "", op, req_id)]
        return [self._status(False, f"error:invalid op {op}", op, req_id)]

    def _authentic(self, args: list[Any]) -> bool:
        if len(args) != 3 or args[0] != self.fake.api_key or not str(args[1]).isdigit():
            return False
        if int(args[1]) < now_ms():
            return False  # expired
        auth = f"GET/realtime{args[1]}".encode()
        expected = hmac.new(self.fake.secret.encode(), auth, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, str(args[2]))

    def _status(self, success: bool, message: str, op: str, req_id: Any) -> dict[str, Any]:
        answer = {"success": success, "ret_msg": message, "op": op, "conn_id": "fake-conn-1"}
        return answer | ({"req_id": req_id} if req_id is not None else {})

    def wrap(self, session: Session, event: Any) -> dict[str, Any] | None:
        topic, row = event
        if topic not in session.topics:
            return None
        return {
            "id": f"fake-{next(self._ids)}",
            "topic": topic,
            "creationTime": now_ms(),
            "data": [row],
        }


def _envelope(code: int, message: str, result: Any) -> dict[str, Any]:
    return {
        "retCode": code,
        "retMsg": message,
        "result": result,
        "retExtInfo": {},
        "time": now_ms(),
    }


def _distort(answer: dict[str, Any], fault: Fault | None) -> dict[str, Any]:
    """The `unknown`, `missing` and `status` faults, applied to an answer's result."""
    if fault is None or fault.kind not in ("unknown", "missing", "status"):
        return answer
    result = answer.get("result") or {}
    rows = result.get("list") if isinstance(result, dict) else None
    if fault.kind == "unknown":
        if rows is not None:
            result["list"] = []
        else:
            return _envelope(110001, "Order does not exist.", {})
    targets = rows if rows is not None else [result]
    for row in targets:
        if fault.kind == "missing":
            row.pop(fault.field, None)
        elif fault.kind == "status" and "orderStatus" in row:
            row["orderStatus"] = "Mysterious"
    return answer
