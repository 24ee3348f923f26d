"""Bybit v5 spot (unified API, category `spot`) through CCXT's `bybit` class: the wire half of the
CCXT spot adapter (venues/ccxt_client.py holds the rest and explains the choices).

- **Wire.** CCXT's implicit v5 endpoints, which sign (X-BAPI-API-KEY, X-BAPI-TIMESTAMP,
  X-BAPI-RECV-WINDOW, X-BAPI-SIGN), rate-limit and map Bybit's retCodes to CCXT's errors, with
  request bodies we build from our decimals as strings: CCXT's unified createOrder would round
  through its precision, ask which account kind we have (/v5/user/query-api) and send market
  buys as a quote amount. Orders: POST /v5/order/create, /v5/order/cancel, /v5/order/amend;
  GET /v5/order/realtime (openOnly 0: open; 1: recently closed), /v5/order/history, fills from
  /v5/execution/list; rules from /v5/market/instruments-info (CCXT's load_markets).
- **Our order id is `orderLinkId`** (at most 36 of letters, digits, _ and -). Bybit refuses a
  repeated one (110072): the adapter then adopts the order it has. A submit whose answer was
  lost is looked up by orderLinkId (open orders, recently closed ones, then the history) and
  sent again only once its recv window has passed (see ccxt_client.py).
- **Asynchronous answers.** Bybit's create, cancel and amend answer with ids only. A create is
  reported ACCEPTED on its answer and the poller reports what became of it (fills, an IOC's
  expiry); a cancel or amend reads the order again for its fills and state. A post-only order
  that would take liquidity ends CANCELED (Bybit cancels it, EC_PostOnlyWillTakeLiquidity), and
  so does an order Bybit rejects after accepting it (our ACCEPTED came first); the remainder of
  an IOC, FOK or market order that Bybit cancels is EXPIRED, as on Binance.
- **Order forms.** Limit (GTC, IOC, FOK), PostOnly, Market with marketUnit=baseCoin (our quantity
  is in the base coin, whatever the side), and a Market order with a protection price as a Limit
  IOC at it. Modifies through /v5/order/amend (spot supports it): the new total quantity and/or
  limit of a limit order; the answer is MODIFIED with what Bybit accepted, or MODIFY_REJECTED
  with its reason.
- **Native stops** (`native_stops`): a stop-market or stop-limit goes as a spot conditional
  order (orderFilter StopOrder, triggerPrice; Market or Limit), Untriggered until the last trade
  reaches its trigger. Bybit spot takes no trigger direction: it triggers on a rise when the
  trigger is above the last price when the order is placed, else on a fall. So a stop whose
  trigger the last price has already reached (a buy's at or below it, a sell's at or above)
  would wait for the wrong move; it is refused before it is sent, as Binance refuses a stop that
  would trigger at once, and so is a stop when the last price cannot be read. A cancel names the
  order's kind (orderFilter StopOrder while it waits, Order once triggered): the adapter tries
  the kind it last saw, then the other, since a trigger can come between.
- **Rules.** priceFilter.tickSize; lotSizeFilter.basePrecision (the quantity step), minOrderQty,
  maxOrderQty and minOrderAmt (the least order value, checked for priced orders; a market
  order's value Bybit checks); the spot price limit of riskParameters (see `_band`: the outer
  bound, priceLimitRatioY around the index price read from the ticker when an order is
  checked, refused before it is sent; the inner one, with x and the premium, Bybit decides).
- **Fees.** Bybit spot charges a buy in the base coin and a sell in the quote coin
  (`feeCurrency`); a base-coin fee is reported in quote at the trade's price.
- **Rate limits and faults.** "Too many visits!" (10006) carries X-Bapi-Limit-Reset-Timestamp:
  the adapter waits until then (at most `max_retry_after_s`). A 5xx, a timeout, a dropped
  connection, an answer that is not Bybit's JSON and 10016 (system error) leave a submit's outcome
  unknown; 10002 (timestamp outside the recv window) refused it.
- **User-data stream.** Bybit v5's private websocket (`/v5/private`): the `auth` op (the API
  key, an expiry and the HMAC of `GET/realtime` + expiry), then CCXT's `watch_orders` and
  `watch_my_trades` subscribe to the `order` and `execution` topics, whose rows are those of
  /v5/order/realtime and /v5/execution/list (rows of other categories than spot are ignored).
- **Endpoints.** `sandbox=True`: Bybit's testnet (api-testnet.bybit.com); `base_url` replaces
  `urls['api']['public'|'private']`, `stream_url` `urls['api']['ws']['private']['contract']`
  (CCXT's private URL of a unified account). Keys: an API key with spot trade permission on a
  unified trading account.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from decimal import Decimal
from functools import partial
from typing import Any

import ccxt  # type: ignore[import-untyped]
from trading.v1 import events_pb2
from trading_core.decimals import ZERO, format_decimal

from execution_router.domain.venue_types import Report, VenueOrder
from execution_router.venues.ccxt_client import (
    HELD_BACK,
    CcxtSpotClient,
    MalformedAnswer,
    OrderView,
    PriceBand,
    Rules,
    T,
    TradeView,
    dec,
    from_ms,
    modified,
    need,
)

log = logging.getLogger(__name__)

_SIDES = {T.SIDE_BUY: "Buy", T.SIDE_SELL: "Sell"}
_SIDE_OF = {v: k for k, v in _SIDES.items()}
_TIFS = {T.TIME_IN_FORCE_GTC: "GTC", T.TIME_IN_FORCE_IOC: "IOC", T.TIME_IN_FORCE_FOK: "FOK"}
_TIF_OF = {v: k for k, v in _TIFS.items()} | {"PostOnly": T.TIME_IN_FORCE_GTC}
_KINDS = {"Limit": T.ORDER_TYPE_LIMIT, "Market": T.ORDER_TYPE_MARKET}
_OPEN = ("Created", "New", "PartiallyFilled", "Untriggered", "Triggered")
_STOP_KINDS = {"Limit": T.ORDER_TYPE_STOP_LIMIT, "Market": T.ORDER_TYPE_STOP_MARKET}
# Bybit's cancel looks among one kind of spot order: a waiting conditional one, or the others.
_CONDITIONAL, _ACTIVE = "StopOrder", "Order"
_UNCHECKED = "the stop's trigger cannot be checked against it"
_FILLED = "Filled"
_ENDED = ("Cancelled", "PartiallyFilledCanceled", "Deactivated", "Rejected")
_PAGE = {"realtime": 50, "executions": 100}
_TOPICS = 2  # the private stream's topics we subscribe to: order and execution


class CcxtBybitSpotClient(CcxtSpotClient):
    """Bybit v5 spot through CCXT; see the module docstring."""

    name = "bybit"
    kind = "bybit"
    client_order_id = re.compile(r"^[A-Za-z0-9_-]{1,36}$")
    client_order_id_rule = "at most 36 characters of letters, digits, _ and -"
    # 10016: "System error" / "Request timeout": Bybit does not know whether it executed.
    unknown_outcome_codes = ('"retCode":10016',)
    # Bybit v5's published limits: requests per IP, spot orders per account (UTA default).
    default_rate_limits = ("600/5 seconds",)
    default_order_rate_limits = ("20/second",)
    can_hold_stops = True  # spot conditional orders (orderFilter StopOrder, triggerPrice)
    # Set once the private stream's subscriptions are acknowledged (made anew per connection).
    _acknowledged: asyncio.Event

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
            # load_markets would ask the private coin list (/v5/asset/coin/query-info).
            "has": {"fetchCurrencies": False},
            "options": {
                "defaultType": "spot",
                "fetchMarkets": {"types": ["spot"]},
                "adjustForTimeDifference": False,
                "recvWindow": recv_window_ms,
                # A unified trading account: CCXT need not ask (/v5/user/query-api).
                "enableUnifiedAccount": True,
                "enableUnifiedMargin": False,
            },
        }

    def _point_at(self, exchange: Any, base_url: str) -> None:
        exchange.urls["api"]["public"] = base_url
        exchange.urls["api"]["private"] = base_url

    def _point_stream_at(self, exchange: Any, stream_url: str) -> None:
        exchange.urls["api"]["ws"]["private"]["contract"] = stream_url

    def _rules(self, market: dict[str, Any]) -> Rules:
        info = market["info"]
        lot = need(info, "lotSizeFilter")
        return Rules(
            tick=dec(need(need(info, "priceFilter"), "tickSize"), "tickSize"),
            step=dec(need(lot, "basePrecision"), "basePrecision"),
            min_quantity=dec(need(lot, "minOrderQty"), "minOrderQty"),
            max_quantity=dec(need(lot, "maxOrderQty"), "maxOrderQty"),
            min_notional=dec(lot["minOrderAmt"], "minOrderAmt") if lot.get("minOrderAmt") else None,
            band=_band(info.get("riskParameters")),
        )

    async def _band_reference(self, symbol: str) -> Decimal | None:
        """The index price of the symbol's base coin (the spot ticker's usdIndexPrice), the
        reference of Bybit's spot price limit; None when the ticker has none."""
        return await self._ticker_price(symbol, "usdIndexPrice")

    async def _ticker_price(self, symbol: str, key: str) -> Decimal | None:
        """One price of the symbol's spot ticker (/v5/market/tickers), None when it has none."""
        exchange = self._exchange
        asked = {"category": "spot", "symbol": _market_id(exchange, symbol)}
        answer = await self._request(
            lambda: exchange.public_get_v5_market_tickers(asked), repeatable=True
        )
        rows = _rows(answer)
        value = rows[0].get(key) if rows else None
        return dec(value, key) if value else None

    async def _problem(self, order: VenueOrder) -> str:
        return await super()._problem(order) or await self._trigger_problem(order)

    async def _trigger_problem(self, order: VenueOrder) -> str:
        """Why a stop cannot wait at Bybit for the move it is for (see the module docstring):
        its trigger is already reached by the last price, or the last price is unknown."""
        if order.order_type not in _STOP_KINDS.values() or order.trigger_price is None:
            return ""
        symbol = self.symbols[order.instrument]
        try:
            last = await self._ticker_price(symbol, "lastPrice")
        except (ccxt.BaseError, MalformedAnswer, *HELD_BACK) as error:
            return f"bybit's last price of {symbol} cannot be read ({error}): {_UNCHECKED}"
        if last is None:
            return f"bybit's ticker of {symbol} has no last price: {_UNCHECKED}"
        buy = order.side == T.SIDE_BUY
        if (order.trigger_price <= last) if buy else (order.trigger_price >= last):
            side = "buy" if buy else "sell"
            where = "at or below" if buy else "at or above"
            return (
                f"a {side} stop's trigger {format_decimal(order.trigger_price)} is {where} the "
                f"last price {format_decimal(last)} of {symbol}: it would trigger at once "
                "(Bybit spot would wait for the opposite move)"
            )
        return ""

    # -- the wire -------------------------------------------------------------------------------

    async def _place(
        self, symbol: str, order: VenueOrder
    ) -> tuple[OrderView, list[TradeView] | None]:
        exchange = self._exchange
        request = {
            "category": "spot",
            "symbol": _market_id(exchange, symbol),
            "side": _SIDES[order.side],
            "qty": format_decimal(order.quantity),
            "orderLinkId": order.order_id,
        } | _wire_form(order)
        answer = await self._request(
            lambda: exchange.private_post_v5_order_create(request), orders=1
        )
        result = _result(answer)
        if result.get("orderLinkId") not in (None, order.order_id):
            raise MalformedAnswer(f"bybit answered for another order: {result!r}")
        # The answer holds ids only: the order as we sent it, open; the poller follows it.
        view = OrderView(
            order_id=order.order_id,
            venue_order_id=str(need(result, "orderId")),
            side=order.side,
            order_type=_sent_type(order, request),
            time_in_force=order.time_in_force,
            quantity=order.quantity,
            price=Decimal(request["price"]) if "price" in request else None,
            executed=ZERO,
            executed_notional=ZERO,
            status="Untriggered" if "triggerPrice" in request else "New",
            is_open=True,
        )
        return view, None

    async def _query(self, symbol: str, order_id: str) -> OrderView | None:
        return await self._lookup(symbol, "orderLinkId", order_id)

    async def _query_venue_id(self, symbol: str, venue_order_id: str) -> OrderView:
        view = await self._lookup(symbol, "orderId", venue_order_id)
        if view is None:
            raise ccxt.OrderNotFound(f"bybit has no order {venue_order_id}")
        return view

    async def _lookup(self, symbol: str, key: str, value: str) -> OrderView | None:
        """The order from the open ones, the recently closed ones, then the history (where a
        closed order stays after Bybit restarts)."""
        exchange = self._exchange
        asked = {"category": "spot", "symbol": _market_id(exchange, symbol), key: value}
        calls: list[Callable[[], Any]] = [
            lambda: exchange.private_get_v5_order_realtime(asked | {"openOnly": 0}),
            lambda: exchange.private_get_v5_order_realtime(asked | {"openOnly": 1}),
            lambda: exchange.private_get_v5_order_history(asked),
        ]
        for call in calls:
            answer = await self._request(call, repeatable=True)
            rows = [r for r in _rows(answer) if r.get(key) == value]
            if rows:
                return self._view(rows[0])
        return None

    async def _cancel_on_venue(self, symbol: str, order_id: str) -> OrderView:
        exchange = self._exchange
        request = {
            "category": "spot",
            "symbol": _market_id(exchange, symbol),
            "orderLinkId": order_id,
        }
        first, then = self._cancel_kinds(order_id)
        try:
            cancel = request | {"orderFilter": first}
            _result(await self._request(lambda: exchange.private_post_v5_order_cancel(cancel)))
        except ccxt.OrderNotFound:  # the other kind: a stop triggered, or one we did not send
            cancel = request | {"orderFilter": then}
            _result(await self._request(lambda: exchange.private_post_v5_order_cancel(cancel)))
        view = await self._query(symbol, order_id)
        if view is None:
            raise ccxt.ExchangeNotAvailable(
                f"bybit acknowledged the cancel of {order_id} but does not show the order"
            )
        if view.is_open:  # acknowledged: Bybit's lists may not show it canceled yet
            view = replace(view, is_open=False, ended=T.EXECUTION_TYPE_CANCELED, status="Cancelled")
        return view

    def _cancel_kinds(self, order_id: str) -> tuple[str, str]:
        """The orderFilter to cancel the order with first (a stop with nothing filled yet:
        StopOrder), and the other."""
        with self._lock:
            working = self._orders.get(order_id)
        waiting = (
            working is not None
            and working.order.order_type in _STOP_KINDS.values()
            and not working.cumulative_quantity
        )
        return (_CONDITIONAL, _ACTIVE) if waiting else (_ACTIVE, _CONDITIONAL)

    async def _open_on_venue(self, symbol: str) -> list[OrderView]:
        exchange = self._exchange
        asked = {
            "category": "spot",
            "symbol": _market_id(exchange, symbol),
            "openOnly": 0,
            "limit": _PAGE["realtime"],
        }
        rows = await self._pages(lambda page: exchange.private_get_v5_order_realtime(asked | page))
        return [self._view(row) for row in rows]

    async def _order_trades(
        self, symbol: str, venue_order_id: str, order_id: str
    ) -> list[TradeView]:
        exchange = self._exchange
        asked = {
            "category": "spot",
            "symbol": _market_id(exchange, symbol),
            "orderId": venue_order_id,
            "execType": "Trade",
            "limit": _PAGE["executions"],
        }
        rows = await self._pages(lambda page: exchange.private_get_v5_execution_list(asked | page))
        return [self._trade(row, symbol) for row in rows if row.get("execType", "Trade") == "Trade"]

    async def _trades_since(self, symbol: str, since_ms: int) -> list[TradeView]:
        exchange = self._exchange
        asked = {
            "category": "spot",
            "symbol": _market_id(exchange, symbol),
            "startTime": since_ms,
            "execType": "Trade",
            "limit": _PAGE["executions"],
        }
        rows = await self._pages(lambda page: exchange.private_get_v5_execution_list(asked | page))
        return [self._trade(row, symbol) for row in rows if row.get("execType", "Trade") == "Trade"]

    async def _pages(
        self, call: Callable[[dict[str, Any]], Any], most: int = 20
    ) -> list[dict[str, Any]]:
        """Every row of a cursor-paged list (at most `most` pages)."""
        rows: list[dict[str, Any]] = []
        page: dict[str, Any] = {}
        for _ in range(most):
            answer = await self._request(partial(call, page), repeatable=True)
            rows += _rows(answer)
            cursor = _result(answer).get("nextPageCursor") or ""
            if not cursor:
                break
            page = {"cursor": cursor}
        return rows

    def _retry_hint(self, headers: Mapping[str, str]) -> float | None:
        value = next(
            (v for k, v in headers.items() if k.lower() == "x-bapi-limit-reset-timestamp"), None
        )
        if value is None or not str(value).isdigit():
            return None
        return (int(value) - time.time() * 1000) / 1000

    def _is_duplicate(self, error: Exception) -> bool:
        text = str(error).replace(" ", "")
        return isinstance(error, ccxt.InvalidOrder) and (
            '"retCode":110072' in text or '"retCode":170141' in text
        )

    def _reason(self, error: Exception) -> str:
        """Bybit's retMsg and retCode from CCXT's message ("bybit {body}")."""
        text = str(error).removeprefix("bybit ").strip()
        try:
            body = json.loads(text)
        except ValueError:
            return text or type(error).__name__
        if not isinstance(body, dict) or "retMsg" not in body:
            return text
        return f"{body['retMsg']} (retCode {body.get('retCode')})"

    # -- modify ---------------------------------------------------------------------------------

    def modify_order(
        self,
        order_id: str,
        request_id: str,
        quantity: Decimal | None,
        limit_price: Decimal | None,
    ) -> None:
        """Amends a working limit order's total quantity and/or limit (/v5/order/amend); returns
        at once (after the order's earlier calls, on the loop)."""
        self._schedule(order_id, lambda: self._modify(order_id, request_id, quantity, limit_price))

    async def _modify(
        self,
        order_id: str,
        request_id: str,
        quantity: Decimal | None,
        limit_price: Decimal | None,
    ) -> None:
        with self._lock:
            working = self._orders.get(order_id)
            done = working is None or working.done
        if working is None or done:
            why = "bybit does not know the order" if working is None else "it has finished"
            self._modify_rejected(order_id, request_id, why)
            return
        wanted = modified(working.order, quantity, limit_price)
        problem = "" if wanted.order_type == T.ORDER_TYPE_LIMIT else "only a limit order can"
        problem = problem or await self._problem(wanted)
        if problem:
            self._modify_rejected(order_id, request_id, problem)
            return
        request: dict[str, Any] = {
            "category": "spot",
            "symbol": _market_id(self._exchange, working.symbol),
            "orderLinkId": order_id,
        }
        if quantity is not None:
            request["qty"] = format_decimal(quantity)
        if limit_price is not None:
            request["price"] = format_decimal(limit_price)
        try:
            amend = self._exchange.private_post_v5_order_amend
            answer = await self.recorded_async(
                events_pb2.VENUE_OPERATION_MODIFY,
                order_id,
                lambda: self._request(lambda: amend(request)),
            )
            _result(answer)
        except ccxt.OrderNotFound:
            why = await self._why_not_cancelable(order_id, working.symbol, working)
            self._modify_rejected(order_id, request_id, why)
            return
        except (ccxt.NetworkError, ccxt.BadResponse) as error:
            await self._modify_outcome_unknown(order_id, request_id, wanted, error)
            return
        except ccxt.BaseError as error:
            self._modify_rejected(order_id, request_id, f"bybit refused it: {self._reason(error)}")
            return
        except HELD_BACK as error:
            self._modify_rejected(order_id, request_id, f"it was not sent: {error}")
            return
        await self._modified(order_id, request_id, wanted)

    async def _modified(self, order_id: str, request_id: str, wanted: VenueOrder) -> None:
        """Reports fills first, then the order as Bybit now holds it."""
        with self._lock:
            working = self._orders[order_id]
            working.order = replace(
                working.order, quantity=wanted.quantity, limit_price=wanted.limit_price
            )
        try:
            view = await self._query_recorded(working.symbol, order_id)
        except ccxt.BaseError:
            view = None  # the amend was acknowledged: the poller reports later fills
        if view is not None:
            await self._apply(working, view)
        with self._lock:
            if working.done:  # filled (or ended) before the amend took effect
                self._modify_rejected(order_id, request_id, "it has finished")
                return
            self.emit(working.report(T.EXECUTION_TYPE_MODIFIED, "", request_id))

    async def _modify_outcome_unknown(
        self, order_id: str, request_id: str, wanted: VenueOrder, error: Exception
    ) -> None:
        with self._lock:
            working = self._orders[order_id]
        try:
            view = await self._query_recorded(working.symbol, order_id)
        except ccxt.BaseError:
            view = None
        if view is not None and (view.quantity, view.price) == (
            wanted.quantity,
            wanted.limit_price,
        ):
            await self._modified(order_id, request_id, wanted)
            return
        if view is not None:
            await self._apply(working, view)
        why = f"the amend's answer was lost ({type(error).__name__}); the order is unchanged"
        self._modify_rejected(order_id, request_id, why)

    def _modify_rejected(self, order_id: str, request_id: str, why: str) -> None:
        rejected = T.EXECUTION_TYPE_MODIFY_REJECTED
        message = f"bybit cannot modify: {why}"
        with self._lock:
            working = self._orders.get(order_id)
            if working is not None:
                self.emit(working.report(rejected, message, request_id))
                return
        self.emit(
            Report.nothing_filled(rejected, order_id, T.SIDE_UNSPECIFIED, message, request_id)
        )

    # -- the user-data stream -------------------------------------------------------------------

    async def _subscribe(self) -> None:
        # The auth op on the private URL (CCXT's choice for a unified account), acknowledged;
        # watch_orders and watch_my_trades then subscribe to the order and execution topics.
        exchange = self._exchange
        url = exchange.implode_hostname(exchange.urls["api"]["ws"]["private"]["contract"])
        self._acknowledged = asyncio.Event()
        acks = 0
        handle = type(exchange).handle_subscription_status

        def counted(client: Any, message: dict[str, Any]) -> Any:
            nonlocal acks
            if message.get("op") == "subscribe" and message.get("success"):
                acks += 1
                if acks >= _TOPICS:
                    self._acknowledged.set()
            return handle(exchange, client, message)

        exchange.handle_subscription_status = counted
        await exchange.authenticate(url)

    async def _subscribed(self) -> None:
        """Both topics acknowledged: from now on no event of ours is missed."""
        await self._acknowledged.wait()

    def _tap(self, exchange: Any) -> None:
        def tap(handle: Callable[[Any, Any], Any], take: Callable[[dict[str, Any]], None]) -> Any:
            def tapped(client: Any, message: Any) -> Any:
                rows = message.get("data") if isinstance(message, dict) else None
                for row in rows if isinstance(rows, list) else [rows]:
                    self._taken(take, row)
                return handle(client, message)

            return tapped

        exchange.handle_order = tap(exchange.handle_order, self._on_order)
        exchange.handle_my_trades = tap(exchange.handle_my_trades, self._on_trade)

    def _stream_order(self, info: dict[str, Any]) -> OrderView | None:
        if info.get("category", "spot") != "spot" or self._symbol_of(info) is None:
            return None
        return self._view(info)

    def _stream_trade(self, info: dict[str, Any]) -> tuple[str, TradeView] | None:
        symbol = self._symbol_of(info)
        if info.get("category", "spot") != "spot" or symbol is None:
            return None
        if info.get("execType", "Trade") != "Trade":
            return None
        return str(need(info, "orderLinkId")), self._trade(info, symbol)

    def _symbol_of(self, info: dict[str, Any]) -> str | None:
        """CCXT's symbol of a row's Bybit symbol, when it is one of ours."""
        markets = self._exchange.markets or {}
        wanted = info.get("symbol")
        return next((s for s in self._symbols if markets.get(s, {}).get("id") == wanted), None)

    # -- Bybit's JSON ---------------------------------------------------------------------------

    def _view(self, row: dict[str, Any]) -> OrderView:
        """A row of /v5/order/realtime or /v5/order/history."""
        status = str(need(row, "orderStatus"))
        kinds = _STOP_KINDS if row.get("stopOrderType") == "Stop" else _KINDS
        kind = kinds.get(row.get("orderType", ""), T.ORDER_TYPE_UNSPECIFIED)
        tif = row.get("timeInForce", "")
        ended = None
        if status in _ENDED:
            # Bybit ends an IOC, FOK or market order's remainder by cancelling it: expired.
            expires = tif in ("IOC", "FOK") or kind == T.ORDER_TYPE_MARKET
            by_venue = status in ("Cancelled", "PartiallyFilledCanceled") and expires
            ended = T.EXECUTION_TYPE_EXPIRED if by_venue else T.EXECUTION_TYPE_CANCELED
        elif status not in _OPEN and status != _FILLED:
            log.warning(
                "bybit: order %s has a status we do not know: %r; followed as open",
                row.get("orderLinkId"),
                status,
            )
        price = dec(row.get("price") or "0", "price")
        reason = row.get("rejectReason") or ""
        return OrderView(
            order_id=str(need(row, "orderLinkId")),
            venue_order_id=str(need(row, "orderId")),
            side=_SIDE_OF.get(row.get("side", ""), T.SIDE_UNSPECIFIED),
            order_type=kind,
            time_in_force=_TIF_OF.get(tif, T.TIME_IN_FORCE_UNSPECIFIED),
            quantity=dec(need(row, "qty"), "qty"),
            price=price or None,
            executed=dec(need(row, "cumExecQty"), "cumExecQty"),
            executed_notional=dec(need(row, "cumExecValue"), "cumExecValue"),
            status=status,
            is_open=status not in _ENDED and status != _FILLED,
            ended=ended,
            updated=from_ms(row.get("updatedTime")),
            reason="" if reason in ("", "EC_NoError") else reason,
        )

    def _trade(self, row: dict[str, Any], symbol: str) -> TradeView:
        """A row of /v5/execution/list."""
        market = (self._exchange.markets or {}).get(symbol, {})
        # Spot: a buy pays its fee in the base coin, a sell in the quote coin.
        charged = market.get("baseId") if row.get("side") == "Buy" else market.get("quoteId")
        exec_id = str(need(row, "execId"))
        moment = need(row, "execTime")
        return TradeView(
            trade_id=exec_id,
            venue_order_id=str(need(row, "orderId")),
            quantity=dec(need(row, "execQty"), "execQty"),
            price=dec(need(row, "execPrice"), "execPrice"),
            commission=dec(row.get("execFee") or "0", "execFee"),
            commission_asset=row.get("feeCurrency") or charged or "",
            time=from_ms(moment),
            sequence=(int(moment), exec_id),
        )


def _band(risk: Any) -> PriceBand | None:
    """Bybit's spot price limit from riskParameters: a buy at most Min[Max(I, I(1 + x) + P),
    I(1 + y)], a sell at least Max[Min(I, I(1 - x) + P), I(1 - y)], with I the index price and
    P the 2-minute average premium, which we cannot know. The bound we can check exactly is the
    outer one, y (priceLimitRatioY, a fraction); what lies between x and y Bybit decides."""
    if not isinstance(risk, dict) or not risk.get("priceLimitRatioY"):
        return None
    y = dec(risk["priceLimitRatioY"], "priceLimitRatioY")
    return PriceBand("the index price", None, 1 + y, 1 - y, None)


def _wire_form(order: VenueOrder) -> dict[str, str]:
    """The order's type, price and time in force on Bybit's wire (checked by `_problem`)."""
    if order.order_type in _STOP_KINDS.values():
        limited = order.order_type == T.ORDER_TYPE_STOP_LIMIT
        plain = replace(order, order_type=T.ORDER_TYPE_LIMIT if limited else T.ORDER_TYPE_MARKET)
        trigger = format_decimal(order.trigger_price)
        return _wire_form(plain) | {"triggerPrice": trigger, "orderFilter": _CONDITIONAL}
    if order.order_type == T.ORDER_TYPE_LIMIT and order.post_only:
        price = format_decimal(order.limit_price)
        return {"orderType": "Limit", "price": price, "timeInForce": "PostOnly"}
    if order.order_type == T.ORDER_TYPE_LIMIT:
        price = format_decimal(order.limit_price)
        return {"orderType": "Limit", "price": price, "timeInForce": _TIFS[order.time_in_force]}
    if order.protection_price is not None:
        # A market order with a worst acceptable price: Bybit's spot market orders have none,
        # so it goes as a Limit IOC at that price (what trades beyond it expires).
        price = format_decimal(order.protection_price)
        return {"orderType": "Limit", "price": price, "timeInForce": "IOC"}
    # Our quantity is in the base coin; a unified account's market buy is in quote by default.
    return {"orderType": "Market", "marketUnit": "baseCoin"}


def _sent_type(order: VenueOrder, request: dict[str, Any]) -> T.OrderType.ValueType:
    """The type of the order as sent (a market order with a protection price goes as a limit)."""
    if "triggerPrice" in request:
        return order.order_type
    return T.ORDER_TYPE_LIMIT if "price" in request else T.ORDER_TYPE_MARKET


def _market_id(exchange: Any, symbol: str) -> str:
    markets = exchange.markets or {}
    market = markets.get(symbol)
    return str(market["id"]) if market else symbol.replace("/", "")


def _result(answer: Any) -> dict[str, Any]:
    """The `result` of Bybit's envelope (CCXT raised already for a non-zero retCode)."""
    if not isinstance(answer, dict) or str(answer.get("retCode")) != "0":
        raise MalformedAnswer(f"not bybit's answer: {str(answer)[:200]!r}")
    result = answer.get("result")
    if not isinstance(result, dict):
        raise MalformedAnswer(f"bybit's answer has no result: {str(answer)[:200]!r}")
    return result


def _rows(answer: Any) -> list[dict[str, Any]]:
    rows = _result(answer).get("list")
    if not isinstance(rows, list):
        raise MalformedAnswer(f"bybit's answer has no list: {str(answer)[:200]!r}")
    return rows
