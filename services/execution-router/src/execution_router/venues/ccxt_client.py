"""Direct execution on Binance spot through CCXT: the execution-client template (venues/base.py)
over CCXT's `binance` class. Not yet chosen by config (`execution.mode: direct` comes next).

Choices, and why:
- **CCXT's synchronous class.** The template calls the adapter from one venue worker thread, one
  call at a time, and the adapter may run threads of its own. The sync class fits that without an
  event loop to own, start and stop; CCXT's async class would need a loop thread and a
  cross-thread future on every call for no gain at one call at a time. A CCXT exchange object is
  not thread-safe (its session, rate limiter, nonce), so each thread owns one: the worker's
  (`_worker`) for the template's calls, the poller's (`_poller`) for fills.
- **Exact decimals from the raw answer.** CCXT's unified order and trade fields are floats
  (`parse_number`). Every number in a report is read from the exchange's own JSON (`order['info']`,
  `trade['info']`), where Binance sends decimal strings, and parsed into `Decimal`. What we send
  is checked against the symbol's tick and step (from `exchangeInfo`, as strings) before CCXT
  sees it, so CCXT's precision rounding never changes an order; the exchange's `origQty` in the
  answer is checked against ours.
- **Fills are polled.** Binance spot pushes fills on the user-data websocket only; this first
  slice polls REST instead: every `poll_interval_s` the poller lists the open orders of each
  symbol we have working orders in, and for an order that traded more (or left the book) reads
  its trades by order id. Fill reports carry Binance's trade id, so the worker (a submit's FULL
  answer, a cancel) and the poller never report one trade twice.
- **The client order id is our order id** (`newClientOrderId`, at most 36 characters of
  `[.A-Z:/a-z0-9_-]`). Real Binance only refuses a repeated client order id among *open*
  orders, so the adapter never relies on it: a second submit of an order it knows is not sent,
  and a submit whose answer was lost (a timeout, a 5xx, a dropped connection) is first looked up
  by client order id and sent again only when Binance answers that it has no such order and the
  lost request can no longer be executed: Binance refuses a request whose timestamp is older
  than its `recvWindow` (sent with every request, `recv_window_ms`), so until that window (and
  a second for the clocks) has passed since it was sent, an order not shown yet may still be
  placed, and it is looked up again rather than sent twice. A 429/418 was not
  applied: the adapter waits the answer's Retry-After (at most `max_retry_after_s`) and sends
  again. An outcome still unknown after `resolve_attempts` lookups is left to the poller, which
  adopts the order when Binance shows it and reports it REJECTED (never sent again) when
  Binance still has none after `unresolved_timeout_s`.
- **Fees.** A Binance commission is paid in the quote asset, the base asset or a third one
  (BNB). `Report.fee` is in the quote currency: a quote commission is taken as it is, a base
  commission is converted at the trade's price (exactly), and a third asset's is reported as 0
  with the commission and asset in the report's message.
- **Order forms.** LIMIT (GTC, IOC, FOK), post-only LIMIT as LIMIT_MAKER, MARKET, and a
  MARKET order with a protection price as a LIMIT IOC at that price (Binance's market orders
  have no worst price). Stops, trailing stops, DAY/GTD, icebergs and modifies are refused with
  a reason (the template's default MODIFY_REJECTED); they come later.
- **Not yet:** the user-data websocket instead of polling; `fills_since` reads at most 500
  trades per symbol (no paging); retries and circuit breaking beyond the submit's own.
- **Endpoints.** `sandbox=True` calls CCXT's `set_sandbox_mode(True)` (the spot testnet URLs);
  `base_url` then points the spot REST API (`urls['api']['public'|'private']`) at another host,
  the tests' fake (`sandbox=False` and no `base_url`: live Binance). Keys come from the
  constructor (the caller reads them from `${VAR}`); CCXT's
  own wire log is routed through a logger that blanks the key, the secret and signatures.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import ccxt  # type: ignore[import-untyped]
from trading.v1 import types_pb2
from trading_core.decimals import ZERO, format_decimal, is_multiple, multiply

from execution_router.domain.venue_types import Report, VenueOrder
from execution_router.venues.base import ExecutionClient, ReportSink

log = logging.getLogger(__name__)
_wire_log = logging.getLogger(__name__ + ".wire")

T = types_pb2
_CLIENT_ORDER_ID = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
_SIDES = {T.SIDE_BUY: "buy", T.SIDE_SELL: "sell"}
_SIDE_OF = {"BUY": T.SIDE_BUY, "SELL": T.SIDE_SELL}
_TIFS = {T.TIME_IN_FORCE_GTC: "GTC", T.TIME_IN_FORCE_IOC: "IOC", T.TIME_IN_FORCE_FOK: "FOK"}
_OPEN = ("NEW", "PARTIALLY_FILLED", "PENDING_NEW")
# Binance's end states other than FILLED, as our execution types.
_ENDED = {
    "CANCELED": T.EXECUTION_TYPE_CANCELED,
    "EXPIRED": T.EXECUTION_TYPE_EXPIRED,
    "EXPIRED_IN_MATCH": T.EXECUTION_TYPE_EXPIRED,
    "REJECTED": T.EXECUTION_TYPE_REJECTED,
}

ExchangeFactory = Callable[[dict[str, Any]], Any]


class SubmitOutcomeUnknown(Exception):
    """A submit whose answer was lost, still unresolved."""


@dataclass
class _Working:
    """An order Binance has, and what we reported of it."""

    order: VenueOrder
    symbol: str  # CCXT's unified symbol, e.g. BTC/USDT
    venue_order_id: str
    registered: float  # time.monotonic() when we learned Binance has it
    cumulative_quantity: Decimal = ZERO
    filled_notional: Decimal = ZERO
    trade_ids: set[str] = field(default_factory=set)
    done: bool = False
    # A cancel of ours is on its way: its answer, not the poller, reports the order CANCELED.
    canceling: bool = False

    @property
    def average_price(self) -> Decimal | None:
        if not self.cumulative_quantity:
            return None
        return self.filled_notional / self.cumulative_quantity

    @property
    def leaves_quantity(self) -> Decimal:
        return ZERO if self.done else self.order.quantity - self.cumulative_quantity

    def report(
        self,
        execution_type: T.ExecutionType.ValueType,
        message: str = "",
        request_id: str = "",
    ) -> Report:
        return Report(
            execution_type=execution_type,
            order_id=self.order.order_id,
            venue_order_id=self.venue_order_id,
            side=self.order.side,
            cumulative_quantity=self.cumulative_quantity,
            leaves_quantity=self.leaves_quantity,
            average_price=self.average_price,
            message=message,
            request_id=request_id,
            time=datetime.now(UTC),
        )


class _RedactingLog:
    """CCXT's `exchange.logger`: its debug wire log writes request headers (the API key) and
    signed URLs; this one blanks every credential before anything is logged."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._secrets = [s for s in secrets if s]

    def _clean(self, message: str, args: tuple[Any, ...]) -> str:
        text = message % args if args else message
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return re.sub(r"signature=[0-9a-fA-F]+", "signature=***", text)

    def debug(self, message: str, *args: Any) -> None:
        if _wire_log.isEnabledFor(logging.DEBUG):
            _wire_log.debug("%s", self._clean(message, args))

    def info(self, message: str, *args: Any) -> None:
        _wire_log.info("%s", self._clean(message, args))

    def warning(self, message: str, *args: Any) -> None:
        _wire_log.warning("%s", self._clean(message, args))

    def error(self, message: str, *args: Any) -> None:
        _wire_log.error("%s", self._clean(message, args))

    def exception(self, message: str, *args: Any) -> None:
        _wire_log.error("%s", self._clean(message, args))


class CcxtBinanceSpotClient(ExecutionClient):
    """Binance spot through CCXT; see the module docstring."""

    name = "binance"

    def __init__(
        self,
        emit: ReportSink,
        *,
        api_key: str,
        secret: str,
        symbols: Mapping[str, str],
        sandbox: bool = False,
        base_url: str | None = None,
        timeout_s: float = 10.0,
        poll_interval_s: float = 1.0,
        lost_submit_grace_s: float = 1.0,
        resolve_attempts: int = 3,
        unresolved_timeout_s: float = 60.0,
        max_retry_after_s: float = 10.0,
        rate_limit_attempts: int = 3,
        recv_window_ms: int = 5000,
        exchange_factory: ExchangeFactory | None = None,
    ) -> None:
        """`symbols` maps our instruments to CCXT's symbols, e.g. {"BTC-USD": "BTC/USDT"}."""
        super().__init__(emit)
        self._instruments = dict(symbols)
        self._symbols = {ccxt_symbol: ours for ours, ccxt_symbol in symbols.items()}
        self._timeout_s = timeout_s
        self._poll_interval_s = poll_interval_s
        self._grace_s = lost_submit_grace_s
        self._resolve_attempts = resolve_attempts
        self._unresolved_timeout_s = unresolved_timeout_s
        self._max_retry_after_s = max_retry_after_s
        self._rate_limit_attempts = rate_limit_attempts
        # How long a lost request may still be executed: its recvWindow, and a second of clock
        # difference between us and Binance.
        self._in_flight_s = recv_window_ms / 1000 + 1.0
        if unresolved_timeout_s <= self._in_flight_s:
            raise ValueError("unresolved_timeout_s must be longer than recv_window_ms + 1 s")
        factory = exchange_factory or _binance
        settings = {
            "apiKey": api_key,
            "secret": secret,
            "timeout": int(timeout_s * 1000),
            "enableRateLimit": True,
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
        redacting = _RedactingLog([api_key, secret])
        self._worker = _configure(factory(settings), redacting, sandbox, base_url)
        self._poller = _configure(factory(settings), redacting, sandbox, base_url)
        self._lock = threading.RLock()
        self._orders: dict[str, _Working] = {}
        # Submits whose answer was lost: the order and when it was first sent.
        self._unresolved: dict[str, tuple[VenueOrder, float]] = {}
        self._stopping = threading.Event()
        self._poll_thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Starts the fill poller and loads the spot markets (a failure is raised; the first
        order tries again)."""
        self._stopping.clear()
        self._poll_thread = threading.Thread(
            target=self._poll_loop, name="venue-binance-poller", daemon=True
        )
        self._poll_thread.start()
        self._load_markets()

    def _load_markets(self) -> None:
        self._worker.load_markets()
        self._poller.set_markets(self._worker.markets)
        missing = sorted(s for s in self._symbols if s not in self._worker.markets)
        if missing:
            log.error("binance: symbols not listed by the exchange: %s", ", ".join(missing))

    def stop(self) -> None:
        self._stopping.set()
        if self._poll_thread is not None:
            self._poll_thread.join(timeout=self._timeout_s + self._poll_interval_s + 1)
            self._poll_thread = None

    # -- the template -------------------------------------------------------------------------

    def submit_order(self, order: VenueOrder) -> None:
        with self._lock:
            known = order.order_id in self._orders
            lost = order.order_id in self._unresolved
        if known:
            log.info("binance: order %s was already sent: not sent again", order.order_id)
            return
        if lost:
            self._resolve_lost_submit(order)
            return
        problem = self._problem(order)
        if problem:
            self._emit_rejected(order, problem)
            return
        self._send(order)

    def cancel_order(self, order_id: str, request_id: str) -> None:
        with self._lock:
            working = self._orders.get(order_id)
        symbols = [working.symbol] if working else list(self._symbols)
        if working is not None and working.done:
            self._cancel_rejected(order_id, request_id, working, "it has already finished")
            return
        last_error = "binance does not know the order"
        if working is not None:
            with self._lock:
                working.canceling = True
        try:
            self._cancel(order_id, request_id, symbols, working, last_error)
        finally:
            if working is not None:
                with self._lock:
                    working.canceling = False

    def _cancel(
        self,
        order_id: str,
        request_id: str,
        symbols: list[str],
        working: _Working | None,
        last_error: str,
    ) -> None:
        for symbol in symbols:
            try:
                info = self._worker.cancel_order(None, symbol, {"origClientOrderId": order_id})[
                    "info"
                ]
            except ccxt.OrderNotFound:
                last_error = self._why_not_cancelable(order_id, symbol, working)
                continue
            except ccxt.NetworkError as error:
                self._cancel_outcome_unknown(order_id, request_id, symbol, working, error)
                return
            except ccxt.BaseError as error:
                last_error = f"binance refused the cancel: {_reason(error)}"
                break
            adopted = working or self._adopt(order_id, symbol, info)
            self._apply(self._worker, adopted, info, request_id=request_id)
            return
        self._cancel_rejected(order_id, request_id, working, last_error)

    def open_orders(self) -> list[Report]:
        reports = []
        for symbol in self._symbols:
            for order in self._worker.fetch_open_orders(symbol):
                info = order["info"]
                self._known_or_adopted(info, symbol)  # the poller follows it from now on
                executed = _dec(info["executedQty"])
                average = _dec(info["cummulativeQuoteQty"]) / executed if executed else None
                kind = T.EXECUTION_TYPE_PARTIALLY_FILLED if executed else T.EXECUTION_TYPE_ACCEPTED
                reports.append(
                    Report(
                        execution_type=kind,
                        order_id=info["clientOrderId"],
                        venue_order_id=str(info["orderId"]),
                        side=_SIDE_OF.get(info["side"], T.SIDE_UNSPECIFIED),
                        cumulative_quantity=executed,
                        leaves_quantity=_dec(info["origQty"]) - executed,
                        average_price=average,
                        limit_price=_dec(info["price"]) or None,
                        time=_from_ms(info.get("updateTime")),
                    )
                )
        return reports

    def fills_since(self, moment: datetime) -> list[Report]:
        """Every fill since `moment`, read from Binance (its trades, then each order's trades
        from its first, for the cumulative quantity each fill left)."""
        since_ms = int(moment.timestamp() * 1000)
        reports: list[Report] = []
        for symbol, instrument in self._symbols.items():
            trades = self._worker.fetch_my_trades(symbol, since_ms)
            order_ids = sorted({str(t["info"]["orderId"]) for t in trades}, key=int)
            for venue_order_id in order_ids:
                info = self._worker.fetch_order(venue_order_id, symbol)["info"]
                order = _venue_order(info, instrument)
                all_trades = self._worker.fetch_my_trades(
                    symbol, None, None, {"orderId": venue_order_id}
                )
                replay = _Working(order, symbol, venue_order_id, time.monotonic())
                for trade in sorted((t["info"] for t in all_trades), key=lambda t: int(t["id"])):
                    report = self._fill(replay, _trade_from(trade), symbol)
                    if report.time is not None and report.time >= moment:
                        reports.append(report)
        return sorted(reports, key=lambda r: r.time or moment)

    # -- submitting ---------------------------------------------------------------------------

    def _problem(self, order: VenueOrder) -> str:
        """Why the order cannot go to Binance as it is, or ""."""
        symbol = self._instruments.get(order.instrument)
        if symbol is None:
            known = ", ".join(sorted(self._instruments)) or "none"
            return f"instrument {order.instrument!r} is not mapped to binance; mapped: {known}"
        if not _CLIENT_ORDER_ID.match(order.order_id):
            return (
                f"order id {order.order_id!r} cannot be binance's client order id "
                "(at most 36 characters of letters, digits and . : / _ -)"
            )
        if order.side not in _SIDES:
            return "side must be BUY or SELL"
        if order.order_type not in (T.ORDER_TYPE_LIMIT, T.ORDER_TYPE_MARKET):
            name = T.OrderType.Name(order.order_type)
            return f"binance spot takes LIMIT and MARKET orders here, not {name}"
        limit_tif = order.order_type == T.ORDER_TYPE_LIMIT and not order.post_only
        if limit_tif and order.time_in_force not in _TIFS:
            name = T.TimeInForce.Name(order.time_in_force)
            return f"binance spot takes GTC, IOC and FOK limit orders, not {name}"
        if order.display_quantity is not None:
            return "iceberg orders are not supported on binance yet"
        if not self._worker.markets:
            try:
                self._load_markets()
            except ccxt.BaseError as error:
                return f"binance's markets could not be loaded: {_reason(error)}"
        market = self._worker.markets.get(symbol)
        if market is None:
            return f"binance does not list {symbol}"
        filters = {f["filterType"]: f for f in market["info"].get("filters", [])}
        step = _dec(filters.get("LOT_SIZE", {}).get("stepSize", "0"))
        if order.quantity <= 0 or (step and not is_multiple(order.quantity, step)):
            quantity = format_decimal(order.quantity)
            return f"quantity {quantity} is not a positive multiple of {symbol}'s step {step}"
        tick = _dec(filters.get("PRICE_FILTER", {}).get("tickSize", "0"))
        price = order.limit_price
        limit = order.order_type == T.ORDER_TYPE_LIMIT
        if not limit and order.protection_price is not None:
            price, limit = order.protection_price, True
        if limit and (price is None or price <= 0 or (tick and not is_multiple(price, tick))):
            shown = format_decimal(price)
            return f"limit price {shown} is not a positive multiple of {symbol}'s tick {tick}"
        return ""

    def _send(self, order: VenueOrder) -> None:
        """Sends the order; on a lost answer, finds out whether Binance has it before anything
        else."""
        symbol = self._instruments[order.instrument]
        kind, price, params = _wire_form(order)
        amount = format_decimal(order.quantity)
        for attempt in range(1, self._rate_limit_attempts + 1):
            self._worker.last_http_status = None
            try:
                answer = self._worker.create_order(
                    symbol, kind, _SIDES[order.side], amount, price, dict(params)
                )
            except ccxt.DDoSProtection as error:  # 429/418: not applied
                wait = self._retry_after()
                if attempt == self._rate_limit_attempts:
                    self._emit_rejected(order, f"binance rate limit: {_reason(error)}")
                    return
                log.warning("binance: rate limited; order %s again in %ss", order.order_id, wait)
                time.sleep(wait)
                continue
            except ccxt.BaseError as error:
                if _outcome_unknown(error, self._worker):  # timeout, 5xx, dropped connection
                    log.warning(
                        "binance: the answer to order %s was lost (%s): looking it up",
                        order.order_id,
                        type(error).__name__,
                    )
                    with self._lock:
                        self._unresolved.setdefault(order.order_id, (order, time.monotonic()))
                    self._resolve_lost_submit(order)
                elif isinstance(error, ccxt.InvalidOrder) and "Duplicate order" in str(error):
                    log.warning("binance: order %s is already there: adopting it", order.order_id)
                    self._look_up(order)
                elif isinstance(error, ccxt.AuthenticationError | ccxt.PermissionDenied):
                    message = f"binance refused our API credentials: {_reason(error)}"
                    log.error("binance: order %s not placed: %s", order.order_id, message)
                    self._emit_rejected(order, message)
                else:
                    self._emit_rejected(order, f"binance rejected the order: {_reason(error)}")
                return
            info = answer["info"]
            if _dec(info.get("origQty", amount)) != order.quantity:
                log.error(
                    "binance: order %s placed for %s, not %s",
                    order.order_id,
                    info.get("origQty"),
                    amount,
                )
            self._adopt_and_apply(order, symbol, info, fills=info.get("fills"))
            return

    def _resolve_lost_submit(self, order: VenueOrder) -> None:
        """Looks the order up by client order id; sends it again only when Binance answers that
        it has no such order. Left to the poller when that stays unknown."""
        for attempt in range(self._resolve_attempts):
            time.sleep(self._grace_s * (attempt + 1))
            try:
                if self._look_up(order):
                    return
            except ccxt.BaseError as error:  # cannot tell: ask again
                log.warning("binance: looking up order %s failed: %s", order.order_id, error)
                continue
            with self._lock:
                lost = self._unresolved.get(order.order_id)
            still_in_flight = self._in_flight_s - (time.monotonic() - lost[1]) if lost else 0.0
            if still_in_flight > 0:  # it may yet be placed: look again once it cannot
                time.sleep(still_in_flight)
                continue
            with self._lock:
                self._unresolved.pop(order.order_id, None)
            log.info("binance: order %s is not at the exchange: sending it", order.order_id)
            self._send(order)
            return
        log.error(
            "binance: whether order %s was placed is still unknown: the poller goes on asking",
            order.order_id,
        )

    def _look_up(self, order: VenueOrder) -> bool:
        """Adopts the order when Binance has it (True); False when Binance has none.
        Raises ccxt.NetworkError when it cannot tell."""
        symbol = self._instruments[order.instrument]
        try:
            info = self._worker.fetch_order(None, symbol, {"origClientOrderId": order.order_id})[
                "info"
            ]
        except ccxt.OrderNotFound:
            return False
        with self._lock:
            self._unresolved.pop(order.order_id, None)
        self._adopt_and_apply(order, symbol, info, fills=None)
        return True

    def _adopt_and_apply(
        self,
        order: VenueOrder,
        symbol: str,
        info: dict[str, Any],
        fills: list[dict[str, Any]] | None,
    ) -> None:
        with self._lock:
            working = self._orders.get(order.order_id)
            if working is None:
                working = _Working(order, symbol, str(info["orderId"]), time.monotonic())
                self._orders[order.order_id] = working
                self.emit(working.report(T.EXECUTION_TYPE_ACCEPTED))
        if fills is not None:
            trades = [_trade_from_fill(f, info) for f in fills]
            self._apply(self._worker, working, info, trades=trades)
        else:
            self._apply(self._worker, working, info)

    def _adopt(self, order_id: str, symbol: str, info: dict[str, Any]) -> _Working:
        """An order we did not know (sent before a restart), from Binance's view of it."""
        order = _venue_order(info, self._symbols[symbol])
        with self._lock:
            working = self._orders.setdefault(
                order_id, _Working(order, symbol, str(info["orderId"]), time.monotonic())
            )
        return working

    def _known_or_adopted(self, info: dict[str, Any], symbol: str) -> _Working:
        with self._lock:
            working = self._orders.get(info["clientOrderId"])
        return working or self._adopt(info["clientOrderId"], symbol, info)

    # -- what Binance did with an order --------------------------------------------------------

    def _apply(
        self,
        exchange: Any,
        working: _Working,
        info: dict[str, Any],
        *,
        trades: list[dict[str, Any]] | None = None,
        request_id: str = "",
    ) -> None:
        """Reports what Binance's view `info` of the order holds that we did not report yet:
        new trades (read by order id when not given), then its end (canceled, expired)."""
        executed = _dec(info["executedQty"])
        with self._lock:
            behind = executed > working.cumulative_quantity
        if behind and trades is None:
            raw = exchange.fetch_my_trades(
                working.symbol, None, None, {"orderId": working.venue_order_id}
            )
            trades = [_trade_from(t["info"]) for t in raw]
        with self._lock:
            for trade in sorted(trades or [], key=lambda t: int(t["id"])):
                if str(trade["id"]) not in working.trade_ids:
                    self.emit(self._fill(working, trade, working.symbol))
            status = info.get("status", "")
            if status == "FILLED" or working.cumulative_quantity == working.order.quantity:
                working.done = True
            ended = _ENDED.get(status)
            if ended == T.EXECUTION_TYPE_CANCELED and working.canceling and not request_id:
                return
            if ended is not None and not working.done:
                working.done = True
                message = "" if request_id else f"binance: {status.lower()}"
                self.emit(working.report(ended, message, request_id))
            elif request_id and ended == T.EXECUTION_TYPE_CANCELED:
                self.emit(working.report(ended, "", request_id))

    def _fill(self, working: _Working, trade: dict[str, Any], symbol: str) -> Report:
        quantity, price = _dec(trade["qty"]), _dec(trade["price"])
        working.trade_ids.add(str(trade["id"]))
        working.cumulative_quantity += quantity
        working.filled_notional += multiply(quantity, price)
        fee, message = self._fee(trade, price, symbol)
        done = working.cumulative_quantity >= working.order.quantity
        if done:
            working.done = True
        return Report(
            execution_type=T.EXECUTION_TYPE_FILLED if done else T.EXECUTION_TYPE_PARTIALLY_FILLED,
            order_id=working.order.order_id,
            venue_order_id=working.venue_order_id,
            side=working.order.side,
            trade_id=str(trade["id"]),
            last_quantity=quantity,
            last_price=price,
            fee=fee,
            cumulative_quantity=working.cumulative_quantity,
            leaves_quantity=working.order.quantity - working.cumulative_quantity,
            average_price=working.average_price,
            message=message,
            time=_from_ms(trade.get("time")),
        )

    def _fee(self, trade: dict[str, Any], price: Decimal, symbol: str) -> tuple[Decimal, str]:
        """The commission in the quote currency, and a note when it was not paid in it."""
        commission = _dec(trade.get("commission") or "0")
        asset = trade.get("commissionAsset") or ""
        market = self._worker.markets.get(symbol, {})
        info = market.get("info", {})
        if asset == info.get("quoteAsset") or not commission:
            return commission, ""
        note = f"commission {format_decimal(commission)} {asset}"
        if asset == info.get("baseAsset"):
            return multiply(commission, price), note
        return ZERO, note + " (not in the quote currency: fee reported as 0)"

    # -- cancels ------------------------------------------------------------------------------

    def _why_not_cancelable(self, order_id: str, symbol: str, working: _Working | None) -> str:
        try:
            info = self._worker.fetch_order(None, symbol, {"origClientOrderId": order_id})["info"]
        except ccxt.BaseError:
            return f"binance does not know order {order_id}"
        known = working or self._adopt(order_id, symbol, info)
        self._apply(self._worker, known, info)  # reports fills we had not seen
        return f"the order has already finished ({info.get('status', '?').lower()})"

    def _cancel_outcome_unknown(
        self,
        order_id: str,
        request_id: str,
        symbol: str,
        working: _Working | None,
        error: Exception,
    ) -> None:
        try:
            info = self._worker.fetch_order(None, symbol, {"origClientOrderId": order_id})["info"]
        except ccxt.BaseError:
            info = None
        if info is not None and info.get("status") == "CANCELED":
            known = working or self._adopt(order_id, symbol, info)
            self._apply(self._worker, known, info, request_id=request_id)
            return
        if info is not None:
            known = working or self._adopt(order_id, symbol, info)
            self._apply(self._worker, known, info)
        status = info.get("status", "unknown").lower() if info else "unknown"
        message = f"the cancel's answer was lost ({type(error).__name__}); the order is {status}"
        self._cancel_rejected(order_id, request_id, working, message)

    def _cancel_rejected(
        self, order_id: str, request_id: str, working: _Working | None, why: str
    ) -> None:
        rejected = T.EXECUTION_TYPE_CANCEL_REJECTED
        with self._lock:
            known = working or self._orders.get(order_id)
            if known is not None:
                self.emit(known.report(rejected, f"binance cannot cancel: {why}", request_id))
                return
        side = T.SIDE_UNSPECIFIED
        message = f"binance cannot cancel: {why}"
        self.emit(Report.nothing_filled(rejected, order_id, side, message, request_id))

    # -- the poller ---------------------------------------------------------------------------

    def _poll_loop(self) -> None:
        while not self._stopping.wait(self._poll_interval_s):
            try:
                self._poll_once()
            except ccxt.DDoSProtection:
                self._stopping.wait(self._retry_after())
            except Exception:
                log.exception("binance: polling for fills failed")

    def _poll_once(self) -> None:
        with self._lock:
            working = [w for w in self._orders.values() if not w.done]
            unresolved = list(self._unresolved.values())
        for order, since in unresolved:
            self._poll_unresolved(order, since)
        by_symbol: dict[str, list[_Working]] = {}
        for w in working:
            by_symbol.setdefault(w.symbol, []).append(w)
        for symbol, orders in by_symbol.items():
            asked = time.monotonic()
            listed = {
                o["info"]["clientOrderId"]: o["info"]
                for o in self._poller.fetch_open_orders(symbol)
            }
            for w in orders:
                info = listed.get(w.order.order_id)
                if info is None:
                    if w.registered >= asked:
                        continue  # registered after the list was asked for
                    info = self._poller.fetch_order(
                        None, symbol, {"origClientOrderId": w.order.order_id}
                    )["info"]
                with self._lock:
                    behind = _dec(info["executedQty"]) > w.cumulative_quantity
                if behind or info.get("status") not in _OPEN:
                    self._apply(self._poller, w, info)

    def _poll_unresolved(self, order: VenueOrder, since: float) -> None:
        symbol = self._instruments[order.instrument]
        try:
            info = self._poller.fetch_order(None, symbol, {"origClientOrderId": order.order_id})[
                "info"
            ]
        except ccxt.OrderNotFound:
            if time.monotonic() - since < self._unresolved_timeout_s:
                return
            with self._lock:
                if self._unresolved.pop(order.order_id, None) is None:
                    return
            message = (
                "binance has no such order after the answer to its submit was lost: not sent again"
            )
            self._emit_rejected(order, message)
            return
        except ccxt.BaseError as error:  # cannot tell yet: the next poll asks again
            log.warning("binance: looking up order %s failed: %s", order.order_id, error)
            return
        with self._lock:
            if self._unresolved.pop(order.order_id, None) is None:
                return
            working = self._orders.get(order.order_id)
            if working is None:
                working = _Working(order, symbol, str(info["orderId"]), time.monotonic())
                self._orders[order.order_id] = working
                self.emit(working.report(T.EXECUTION_TYPE_ACCEPTED))
        self._apply(self._poller, working, info)

    # -- helpers ------------------------------------------------------------------------------

    def _retry_after(self) -> float:
        headers = self._worker.last_response_headers or {}
        value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
        try:
            wait = float(value) if value is not None else 1.0
        except ValueError:
            wait = 1.0
        return min(max(wait, 0.0), self._max_retry_after_s)

    def _emit_rejected(self, order: VenueOrder, message: str) -> None:
        with self._lock:
            self._unresolved.pop(order.order_id, None)
        rejected = T.EXECUTION_TYPE_REJECTED
        self.emit(Report.nothing_filled(rejected, order.order_id, order.side, message))


def _wire_form(order: VenueOrder) -> tuple[str, str | None, dict[str, Any]]:
    """CCXT's order type, price and params for the order (checked by `_problem`)."""
    params: dict[str, Any] = {"newClientOrderId": order.order_id}
    price: str | None
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


def _binance(settings: dict[str, Any]) -> Any:
    return ccxt.binance(settings)


def _configure(exchange: Any, logger: _RedactingLog, sandbox: bool, base_url: str | None) -> Any:
    exchange.logger = logger
    # The HTTP status of the last answer: a 5xx leaves a submit's outcome unknown, whatever
    # exception CCXT makes of its body.
    exchange.last_http_status = None
    answered = exchange.on_rest_response

    def remember_status(code: int, *rest: Any) -> Any:
        exchange.last_http_status = code
        return answered(code, *rest)

    exchange.on_rest_response = remember_status
    if sandbox:
        exchange.set_sandbox_mode(True)
    if base_url is not None:
        root = base_url.rstrip("/")
        exchange.urls["api"]["public"] = f"{root}/api/v3"
        exchange.urls["api"]["private"] = f"{root}/api/v3"
        exchange.urls["api"]["v1"] = f"{root}/api/v1"
    return exchange


# Binance's codes for "execution status unknown" (UNKNOWN, DISCONNECTED, UNEXPECTED_RESP, TIMEOUT).
_UNKNOWN_CODES = ('"code":-1000', '"code":-1001', '"code":-1006', '"code":-1007')


def _outcome_unknown(error: Exception, exchange: Any) -> bool:
    """Whether a failed call may still have been applied: the answer never came (timeout,
    dropped connection), came as a 5xx, or said that the execution status is unknown."""
    if isinstance(error, ccxt.DDoSProtection):
        return False  # 429/418: refused, nothing applied
    if isinstance(error, ccxt.NetworkError):
        return True
    status = getattr(exchange, "last_http_status", None)
    if isinstance(status, int) and status >= 500:
        return True
    text = str(error).replace(" ", "")
    return any(code in text for code in _UNKNOWN_CODES)


def _dec(text: Any) -> Decimal:
    """A decimal string from Binance's JSON (never a float)."""
    if isinstance(text, float):
        raise TypeError(f"a float where binance sends decimal strings: {text!r}")
    try:
        return Decimal(str(text))
    except InvalidOperation as error:
        raise ValueError(f"not a decimal: {text!r}") from error


def _from_ms(value: Any) -> datetime | None:
    if value is None:
        return None
    return datetime.fromtimestamp(int(value) / 1000, UTC)


def _trade_from(info: dict[str, Any]) -> dict[str, Any]:
    return info


def _trade_from_fill(fill: dict[str, Any], order_info: dict[str, Any]) -> dict[str, Any]:
    """A FULL new-order answer's fill, in myTrades' shape."""
    return {
        "id": fill["tradeId"],
        "price": fill["price"],
        "qty": fill["qty"],
        "commission": fill.get("commission"),
        "commissionAsset": fill.get("commissionAsset"),
        "time": order_info.get("transactTime"),
    }


def _venue_order(info: dict[str, Any], instrument: str) -> VenueOrder:
    """An order as Binance shows it, for one we did not send in this process."""
    kinds = {"LIMIT": T.ORDER_TYPE_LIMIT, "MARKET": T.ORDER_TYPE_MARKET}
    tifs = {v: k for k, v in _TIFS.items()}
    price = _dec(info.get("price", "0"))
    return VenueOrder(
        order_id=info["clientOrderId"],
        account_id="",
        instrument=instrument,
        side=_SIDE_OF.get(info.get("side", ""), T.SIDE_UNSPECIFIED),
        order_type=kinds.get(info.get("type", ""), T.ORDER_TYPE_UNSPECIFIED),
        time_in_force=tifs.get(info.get("timeInForce", ""), T.TIME_IN_FORCE_UNSPECIFIED),
        quantity=_dec(info["origQty"]),
        limit_price=price or None,
    )


def _reason(error: Exception) -> str:
    """CCXT's message without its exchange prefix ("binance {...}")."""
    text = str(error)
    return text.removeprefix("binance ").strip() or type(error).__name__
