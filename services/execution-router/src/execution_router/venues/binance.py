"""Binance spot through CCXT's `binance` class: the wire half of the CCXT spot adapter
(venues/ccxt_client.py holds the rest and explains the choices).

- **Wire.** CCXT's unified calls (create_order, cancel_order, fetch_order, fetch_open_orders,
  fetch_my_trades), whose `info` is Binance's own JSON with decimal strings. Orders are named by
  client order id (`newClientOrderId`, `origClientOrderId`: at most 36 characters of
  `[.A-Z:/a-z0-9_-]`). Real Binance only refuses a repeated client order id among *open*
  orders, so the adapter never relies on it (see the lost-submit rule in ccxt_client.py).
- **Answers.** A new order's FULL answer holds its state and fills; a cancel's answer the
  order's state. A 429/418 carries Retry-After; -1000, -1001, -1006 and -1007 mean Binance does
  not know whether it executed.
- **Order forms.** LIMIT (GTC, IOC, FOK); post-only as LIMIT_MAKER (no timeInForce); MARKET; a
  MARKET order with a protection price as LIMIT IOC at it; with `native_stops`, a stop-market as
  STOP_LOSS and a stop-limit as STOP_LOSS_LIMIT, each with its trigger as stopPrice (Binance
  triggers them on the last trade: a buy at or above it, a sell at or below). Modifies: the
  template's default MODIFY_REJECTED (Binance's cancel-replace comes later).
- **Rules.** PRICE_FILTER's tickSize, minPrice and maxPrice, LOT_SIZE's stepSize, minQty and
  maxQty from exchangeInfo; the price band of PERCENT_PRICE_BY_SIDE (bid multipliers for a buy,
  ask multipliers for a sell) or else PERCENT_PRICE, around the weighted average price read
  from /api/v3/avgPrice when an order is checked (kept a second): a priced order outside it is
  refused before it is sent, naming the bound. The NOTIONAL filter is left to Binance: it
  values market orders at an average price we do not have, and its refusal names the filter.
- **User-data stream.** CCXT 4.5 subscribes Binance spot's user data through the WebSocket API
  (`ws-api/v3`): `userDataStream.subscribe.signature` (the API key, a timestamp and an HMAC
  signature; no listenKey), answered `{"id", "status": 200, "result": {"subscriptionId"}}`,
  then `{"subscriptionId", "event": {"e": "executionReport", ...}}` per order event. An
  executionReport carries the order's state (`X`, cumulative `z` and `Z`) and, for `x` TRADE,
  the trade (`t`, `l`, `L`, `n`, `N`); a cancel's event names the order in `C` (`c` is the
  cancel's own id).
- **Endpoints.** `sandbox=True`: the spot testnet (testnet.binance.vision); `base_url` replaces
  `urls['api']['public'|'private'|'v1']`, `stream_url` `urls['api']['ws']['ws-api']['spot']`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import ccxt  # type: ignore[import-untyped]
from trading_core.decimals import format_decimal

from execution_router.domain.venue_types import VenueOrder
from execution_router.venues.ccxt_client import (
    SIDES,
    CcxtSpotClient,
    OrderView,
    PriceBand,
    Rules,
    T,
    TradeView,
    dec,
    from_ms,
    need,
)

_SIDE_OF = {"BUY": T.SIDE_BUY, "SELL": T.SIDE_SELL}
_TIFS = {T.TIME_IN_FORCE_GTC: "GTC", T.TIME_IN_FORCE_IOC: "IOC", T.TIME_IN_FORCE_FOK: "FOK"}
_TIF_OF = {v: k for k, v in _TIFS.items()}
_KINDS = {
    "LIMIT": T.ORDER_TYPE_LIMIT,
    "LIMIT_MAKER": T.ORDER_TYPE_LIMIT,
    "MARKET": T.ORDER_TYPE_MARKET,
    "STOP_LOSS": T.ORDER_TYPE_STOP_MARKET,
    "STOP_LOSS_LIMIT": T.ORDER_TYPE_STOP_LIMIT,
}
_OPEN = ("NEW", "PARTIALLY_FILLED", "PENDING_NEW")
# Binance's end states other than FILLED, as our execution types.
_ENDED = {
    "CANCELED": T.EXECUTION_TYPE_CANCELED,
    "EXPIRED": T.EXECUTION_TYPE_EXPIRED,
    "EXPIRED_IN_MATCH": T.EXECUTION_TYPE_EXPIRED,
    "REJECTED": T.EXECUTION_TYPE_REJECTED,
}
# Request weights (Binance's REST docs), for the venue's rate limit.
_WEIGHT_ORDER_QUERY = 4
_WEIGHT_OPEN_ORDERS = 6
_WEIGHT_MY_TRADES = 20
_WEIGHT_MY_TRADES_BY_ORDER = 5
_WEIGHT_AVG_PRICE = 2


class CcxtBinanceSpotClient(CcxtSpotClient):
    """Binance spot through CCXT; see the module docstring."""

    name = "binance"
    kind = "binance"
    client_order_id = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
    client_order_id_rule = "at most 36 characters of letters, digits and . : / _ -"
    # Binance's codes for "execution status unknown" (UNKNOWN, DISCONNECTED, UNEXPECTED_RESP,
    # TIMEOUT).
    unknown_outcome_codes = ('"code":-1000', '"code":-1001', '"code":-1006', '"code":-1007')
    # Binance spot's published limits: request weight per IP, orders per account.
    default_rate_limits = ("6000/minute",)
    default_order_rate_limits = ("100/10 seconds", "200000/day")
    can_hold_stops = True  # STOP_LOSS and STOP_LOSS_LIMIT with stopPrice

    def _settings(
        self, api_key: str, secret: str, timeout_s: float, recv_window_ms: int
    ) -> dict[str, Any]:
        return {
            "apiKey": api_key,
            "secret": secret,
            "timeout": int(timeout_s * 1000),
            # The venue guard limits calls by the venue's own weights (the limits library);
            # CCXT's throttle would pace every call on top of it.
            "enableRateLimit": False,
            "options": {
                "defaultType": "spot",
                "fetchMarkets": {"types": ["spot"]},
                "fetchCurrencies": False,
                "fetchMargins": False,
                "adjustForTimeDifference": False,
                "fetchOpenOrders": {"warnWithoutSymbol": False},
                "recvWindow": recv_window_ms,
            },
        }

    def _point_at(self, exchange: Any, base_url: str) -> None:
        exchange.urls["api"]["public"] = f"{base_url}/api/v3"
        exchange.urls["api"]["private"] = f"{base_url}/api/v3"
        exchange.urls["api"]["v1"] = f"{base_url}/api/v1"

    def _point_stream_at(self, exchange: Any, stream_url: str) -> None:
        exchange.urls["api"]["ws"]["ws-api"]["spot"] = stream_url

    def _rules(self, market: dict[str, Any]) -> Rules:
        filters = {f["filterType"]: f for f in market["info"].get("filters", [])}
        lot = filters.get("LOT_SIZE", {})
        prices = filters.get("PRICE_FILTER", {})
        return Rules(
            tick=dec(prices.get("tickSize", "0"), "tickSize"),
            step=dec(lot.get("stepSize", "0"), "stepSize"),
            min_quantity=dec(lot["minQty"], "minQty") if "minQty" in lot else None,
            max_quantity=dec(lot["maxQty"], "maxQty") if "maxQty" in lot else None,
            # 0 disables a PRICE_FILTER bound.
            min_price=_nonzero(prices, "minPrice"),
            max_price=_nonzero(prices, "maxPrice"),
            band=_band(filters),
        )

    async def _band_reference(self, symbol: str) -> Decimal | None:
        """The symbol's weighted average price (GET /api/v3/avgPrice): the reference of
        PERCENT_PRICE_BY_SIDE and PERCENT_PRICE."""
        exchange = self._exchange
        asked = {"symbol": exchange.market(symbol)["id"]}
        answer = await self._request(
            lambda: exchange.public_get_avgprice(asked), weight=_WEIGHT_AVG_PRICE, repeatable=True
        )
        return dec(need(answer, "price"), "avgPrice")

    # -- the wire -------------------------------------------------------------------------------

    async def _place(
        self, symbol: str, order: VenueOrder
    ) -> tuple[OrderView, list[TradeView] | None]:
        kind, price, params = _wire_form(order)
        amount = format_decimal(order.quantity)
        side = SIDES[order.side]
        exchange = self._exchange
        answer = await self._request(
            lambda: exchange.create_order(symbol, kind, side, amount, price, params), orders=1
        )
        info = answer["info"]
        view = _view(info)
        fills = info.get("fills")
        if fills is None:
            return view, None
        return view, [_trade_from_fill(f, info) for f in fills]

    async def _query(self, symbol: str, order_id: str) -> OrderView | None:
        params = {"origClientOrderId": order_id}
        exchange = self._exchange
        try:
            answer = await self._request(
                lambda: exchange.fetch_order(None, symbol, params),
                weight=_WEIGHT_ORDER_QUERY,
                repeatable=True,
            )
        except ccxt.OrderNotFound:
            return None
        return _view(answer["info"])

    async def _query_venue_id(self, symbol: str, venue_order_id: str) -> OrderView:
        exchange = self._exchange
        answer = await self._request(
            lambda: exchange.fetch_order(venue_order_id, symbol),
            weight=_WEIGHT_ORDER_QUERY,
            repeatable=True,
        )
        return _view(answer["info"])

    async def _cancel_on_venue(self, symbol: str, order_id: str) -> OrderView:
        params = {"origClientOrderId": order_id}
        exchange = self._exchange
        answer = await self._request(lambda: exchange.cancel_order(None, symbol, params))
        info = dict(answer["info"])
        # A cancel's answer names the cancel's own client id; the order's is origClientOrderId.
        info["clientOrderId"] = info.get("origClientOrderId", order_id)
        return _view(info)

    async def _open_on_venue(self, symbol: str) -> list[OrderView]:
        exchange = self._exchange
        orders = await self._request(
            lambda: exchange.fetch_open_orders(symbol),
            weight=_WEIGHT_OPEN_ORDERS,
            repeatable=True,
        )
        return [_view(o["info"]) for o in orders]

    async def _order_trades(
        self, symbol: str, venue_order_id: str, order_id: str
    ) -> list[TradeView]:
        params = {"orderId": venue_order_id}
        exchange = self._exchange
        trades = await self._request(
            lambda: exchange.fetch_my_trades(symbol, None, None, params),
            weight=_WEIGHT_MY_TRADES_BY_ORDER,
            repeatable=True,
        )
        return [_trade(t["info"]) for t in trades]

    async def _trades_since(self, symbol: str, since_ms: int) -> list[TradeView]:
        exchange = self._exchange
        trades = await self._request(
            lambda: exchange.fetch_my_trades(symbol, since_ms),
            weight=_WEIGHT_MY_TRADES,
            repeatable=True,
        )
        return [_trade(t["info"]) for t in trades]

    def _retry_hint(self, headers: Mapping[str, str]) -> float | None:
        value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
        try:
            return float(value) if value is not None else None
        except ValueError:
            return None

    def _is_duplicate(self, error: Exception) -> bool:
        return isinstance(error, ccxt.InvalidOrder) and "Duplicate order" in str(error)

    # -- the user-data stream -------------------------------------------------------------------

    async def _subscribe(self) -> None:
        # Spot: the WebSocket API's signature subscription, acknowledged before it returns.
        await self._exchange.authenticate({"type": "spot"})

    def _tap(self, exchange: Any) -> None:
        handle = exchange.handle_order_update

        def tapped(client: Any, message: Any) -> Any:
            self._taken(self._on_order, message)
            self._taken(self._on_trade, message)
            return handle(client, message)

        exchange.handle_order_update = tapped

    def _stream_order(self, info: dict[str, Any]) -> OrderView | None:
        if info.get("e") != "executionReport" or info.get("s") not in self._ids():
            return None
        return _view(_order_of_event(info))

    def _stream_trade(self, info: dict[str, Any]) -> tuple[str, TradeView] | None:
        if info.get("x") != "TRADE" or info.get("s") not in self._ids():
            return None
        order = _order_of_event(info)
        trade = _trade(
            {
                "id": need(info, "t"),
                "symbol": info.get("s"),
                "orderId": info.get("i"),
                "price": info.get("L"),
                "qty": info.get("l"),
                "commission": info.get("n"),
                "commissionAsset": info.get("N"),
                "time": info.get("T"),
            }
        )
        return str(order["clientOrderId"]), trade

    def _ids(self) -> set[str]:
        """Binance's ids of our symbols (BTCUSDT)."""
        markets = self._exchange.markets or {}
        return {str(markets[s]["id"]) for s in self._symbols if s in markets}


def _nonzero(fields: dict[str, Any], key: str) -> Decimal | None:
    value = dec(fields[key], key) if key in fields else None
    return value or None


def _band(filters: dict[str, dict[str, Any]]) -> PriceBand | None:
    """PERCENT_PRICE_BY_SIDE (a buy's bounds from its bid multipliers, a sell's from its ask
    multipliers), else PERCENT_PRICE (one pair for both), around the average price."""
    by_side, both = filters.get("PERCENT_PRICE_BY_SIDE"), filters.get("PERCENT_PRICE")
    chosen = by_side or both
    if chosen is None:
        return None
    reference = f"the {chosen.get('avgPriceMins', 5)}-minute average price"
    if by_side is not None:
        keys = ("bidMultiplierDown", "bidMultiplierUp", "askMultiplierDown", "askMultiplierUp")
    else:
        keys = ("multiplierDown", "multiplierUp", "multiplierDown", "multiplierUp")
    buy_down, buy_up, sell_down, sell_up = (dec(need(chosen, key), key) for key in keys)
    return PriceBand(reference, buy_down, buy_up, sell_down, sell_up)


def _wire_form(order: VenueOrder) -> tuple[str, str | None, dict[str, Any]]:
    """CCXT's order type, price and params for the order (checked by `_problem`)."""
    params: dict[str, Any] = {"newClientOrderId": order.order_id}
    price: str | None
    if order.order_type == T.ORDER_TYPE_STOP_MARKET:
        # Binance's STOP_LOSS triggers on the last trade at stopPrice (a buy at or above it, a
        # sell at or below), as our stops do, and then trades as a market order.
        params["stopPrice"] = format_decimal(order.trigger_price)
        return "STOP_LOSS", None, params
    if order.order_type == T.ORDER_TYPE_STOP_LIMIT:
        params["stopPrice"] = format_decimal(order.trigger_price)
        params["timeInForce"] = _TIFS[order.time_in_force]
        return "STOP_LOSS_LIMIT", format_decimal(order.limit_price), params
    if order.order_type == T.ORDER_TYPE_LIMIT and order.post_only:
        kind, price = "limit", format_decimal(order.limit_price)
        params["postOnly"] = True  # LIMIT_MAKER: Binance takes no timeInForce with it
    elif order.order_type == T.ORDER_TYPE_LIMIT:
        kind, price = "limit", format_decimal(order.limit_price)
        params["timeInForce"] = _TIFS[order.time_in_force]
    elif order.protection_price is not None:
        # A market order with a worst acceptable price: Binance's market orders have
        # none, so it goes as a LIMIT IOC at that price (what trades beyond it expires).
        kind, price = "limit", format_decimal(order.protection_price)
        params["timeInForce"] = "IOC"
    else:
        kind, price = "market", None
    return kind, price, params


def _view(info: dict[str, Any]) -> OrderView:
    """Binance's order JSON (new, query, open orders, cancel) as an OrderView."""
    status = str(need(info, "status"))
    executed = dec(need(info, "executedQty"), "executedQty")
    price = dec(info.get("price", "0"), "price")
    # A status this adapter does not know is followed as open: the poller asks again.
    is_open = status in _OPEN or (status != "FILLED" and status not in _ENDED)
    return OrderView(
        order_id=str(need(info, "clientOrderId")),
        venue_order_id=str(need(info, "orderId")),
        side=_SIDE_OF.get(info.get("side", ""), T.SIDE_UNSPECIFIED),
        order_type=_KINDS.get(info.get("type", ""), T.ORDER_TYPE_UNSPECIFIED),
        time_in_force=_TIF_OF.get(info.get("timeInForce", ""), T.TIME_IN_FORCE_UNSPECIFIED),
        quantity=dec(need(info, "origQty"), "origQty"),
        price=price or None,
        executed=executed,
        executed_notional=dec(info.get("cummulativeQuoteQty", "0"), "cummulativeQuoteQty"),
        status=status,
        is_open=is_open,
        ended=_ENDED.get(status),
        updated=from_ms(info.get("updateTime") or info.get("transactTime")),
    )


def _order_of_event(info: dict[str, Any]) -> dict[str, Any]:
    """An executionReport as the order JSON of the REST API."""
    # A cancel's event carries the cancel's own client id in `c` and the order's in `C`.
    client_order_id = info.get("C") or need(info, "c")
    return {
        "clientOrderId": client_order_id,
        "orderId": need(info, "i"),
        "side": info.get("S"),
        "type": info.get("o"),
        "timeInForce": info.get("f"),
        "origQty": need(info, "q"),
        "price": info.get("p", "0"),
        "executedQty": need(info, "z"),
        "cummulativeQuoteQty": info.get("Z", "0"),
        "status": need(info, "X"),
        "updateTime": info.get("E"),
        "rejectReason": info.get("r"),
    }


def _trade(info: dict[str, Any]) -> TradeView:
    """A myTrades row. Binance numbers trades per symbol: the symbol makes the id unique."""
    number = need(info, "id")
    trade_id = f"{need(info, 'symbol')}-{number}"
    return TradeView(
        trade_id=trade_id,
        venue_order_id=str(need(info, "orderId")),
        quantity=dec(need(info, "qty"), "qty"),
        price=dec(need(info, "price"), "price"),
        commission=dec(info.get("commission") or "0", "commission"),
        commission_asset=info.get("commissionAsset") or "",
        time=from_ms(info.get("time")),
        sequence=(int(number), ""),
    )


def _trade_from_fill(fill: dict[str, Any], order_info: dict[str, Any]) -> TradeView:
    """A FULL new-order answer's fill."""
    return _trade(
        {
            "id": need(fill, "tradeId"),
            "symbol": order_info.get("symbol"),
            "orderId": order_info.get("orderId"),
            "price": fill.get("price"),
            "qty": fill.get("qty"),
            "commission": fill.get("commission"),
            "commissionAsset": fill.get("commissionAsset"),
            "time": order_info.get("transactTime"),
        }
    )
