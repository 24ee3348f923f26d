"""Direct execution on spot exchanges through CCXT: what every exchange shares, in one base class
(`CcxtSpotClient`) of the execution-client template (venues/base.py). Each exchange is a small
subclass that speaks its wire format: venues/binance.py (`CcxtBinanceSpotClient`) and
venues/bybit.py (`CcxtBybitSpotClient`).

Choices, and why:
- **CCXT's async classes on one event loop per adapter.** The adapter owns an asyncio loop on
  its own thread and one `ccxt.pro` exchange object (CCXT's async class plus its websockets;
  one HTTP session, used concurrently by the loop's tasks). The template's calls stay
  synchronous for the router: `submit_order`, `cancel_order` and `modify_order` schedule a
  coroutine and return at once (their outcome comes as reports); `open_orders` and
  `fills_since` wait for theirs. Calls for one order run one after another, in the order they
  were asked (a lock per order id, taken before any await); calls for different orders run
  concurrently, so a lost submit being looked up holds back only its own order.
- **One door to the exchange.** Every REST call goes through `_request(fn, weight=, orders=,
  repeatable=)`: the venue's guard (venues/resilience.py: rate limit by weight, circuit breaker,
  timeout, retries of repeatable calls) when one is set, else the call itself. Queries are
  repeatable; a submit, a cancel and an amend are not (the adapter resolves their outcome). The
  status and headers of an answer are kept per task (a context variable), so concurrent calls
  never read each other's.
- **Exact decimals from the raw answer.** CCXT's unified order and trade fields are floats
  (`parse_number`). Every number in a report is read from the exchange's own JSON (a REST
  answer, or a stream event's `info`), where both exchanges send decimal strings, into an
  `OrderView` or a `TradeView` of `Decimal`s; a float there is refused. What we send is checked
  against the symbol's tick and step (read as strings from the exchange's instrument rules)
  before the exchange sees it, so no rounding ever changes an order.
- **Reports from the user-data stream, polling as the fallback.** With `stream` on, the adapter
  subscribes to the exchange's private stream (`_subscribe`, then CCXT's `watch_orders` and
  `watch_my_trades`: Binance's WebSocket API `userDataStream.subscribe.signature` with its
  `executionReport` events, Bybit v5's private `order` and `execution` topics after its `auth`
  op) and reports from its events, each taken as it arrives from the handler CCXT calls for it
  (`_tap`): CCXT's own cache keeps only the latest state per order between two reads, which an
  older event (out of order) would hide. While the stream is down (dropped, refused) the poller
  reads REST every `poll_interval_s` and the stream reconnects with a growing backoff; each
  (re)subscription is followed at once by a poll for the gap. While it is up the poller still
  reconciles every `stream_poll_interval_s`. Every path (the stream, a poll, a call's answer)
  feeds one `_settle`: a trade is reported once by its trade id, an end (canceled, expired) only
  once the trades before it are reported and only once, so duplicate and out-of-order events
  never report a state twice or against another. The stream's news of an order whose submit is
  not yet answered waits for the answer. The poller lists the open orders of each symbol we have
  working orders in, and for an order that traded more (or left the book) reads its trades by
  order id. An order ends only once its trades add up to what the exchange says executed.
- **The client order id is our order id.** A second submit of an order the adapter knows is not
  sent, and a submit whose answer was lost (a timeout, a 5xx, a dropped connection, an answer
  that is not the exchange's JSON), or that the router may have made before a restart, is
  first looked up by client order id and sent again only when the exchange answers that it has
  no such order *and* the lost request can no longer be executed: both exchanges refuse a
  request whose timestamp is older than its receive window (sent with every request,
  `recv_window_ms`), so until that window (and a second for the clocks) has passed since it was
  sent, an order not shown yet may still be placed, and it is
  looked up again rather than sent twice. A rate-limited request was not applied: the adapter
  waits the exchange's hint (at most `max_retry_after_s`) and sends again. An outcome still
  unknown after `resolve_attempts` lookups is left to the poller, which adopts the order when
  the exchange shows it and reports it REJECTED (never sent again) when the exchange still has
  none after `unresolved_timeout_s`.
- **Fees.** A commission is paid in the quote asset, the base asset or a third one. `Report.fee`
  is in the quote currency: a quote commission is taken as it is, a base commission is
  converted at the trade's price (exactly), and a third asset's is reported as 0 with the
  commission and asset in the report's message.
- **Order forms.** LIMIT (GTC, IOC, FOK), post-only LIMIT, MARKET, and a MARKET order with a
  protection price as a LIMIT IOC at that price (neither exchange's spot market orders have a
  worst price). Stops, trailing stops, DAY/GTD and icebergs are refused with a reason
  (order-management's emulator holds stops and releases them as market or limit orders).
- **Price limits.** Besides tick, step, quantity and value, a symbol's `Rules` carry its fixed
  price bounds and its `PriceBand` around a reference price the exchange publishes
  (`_band_reference`, read when an order is checked and kept `band_reference_ttl_s`): a priced
  order outside them is refused before it is sent, naming the bound. When the reference cannot
  be read the exchange decides (its refusal comes back as the rejection's reason).
- **Not yet:** paging beyond one page of trades or orders per symbol; native stop orders.
- **Endpoints and keys.** `sandbox=True` calls CCXT's `set_sandbox_mode(True)` (the exchange's
  testnet, REST and websockets); `base_url` then points the REST API at another host, and
  `stream_url` the private websocket, the tests' fakes (`sandbox=False` and neither: the live
  exchange). Keys come from the constructor (the caller reads them from `${VAR}`); CCXT's own
  wire log is routed through a logger that blanks the key, the secret and signatures.
"""

from __future__ import annotations

import abc
import asyncio
import concurrent.futures
import contextlib
import logging
import re
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import ccxt  # type: ignore[import-untyped]
import ccxt.pro  # type: ignore[import-untyped]
from trading.v1 import events_pb2, types_pb2
from trading_core.config import ConfigError
from trading_core.decimals import ZERO, format_decimal, is_multiple, multiply

from execution_router.domain.venue_types import Report, VenueOrder
from execution_router.venues.base import (
    ExecutionClient,
    ReportChannel,
    ReportSink,
    count_attempt,
)
from execution_router.venues.resilience import VenueBusy, VenueGuard, VenueUnavailable

if TYPE_CHECKING:  # the old import path of the Binance adapter (see __getattr__ below)
    from execution_router.venues.binance import CcxtBinanceSpotClient

__all__ = [
    "CcxtBinanceSpotClient",
    "CcxtSpotClient",
    "OrderView",
    "PriceBand",
    "Rules",
    "TradeView",
]

log = logging.getLogger(__name__)
_wire_log = logging.getLogger(__name__ + ".wire")

T = types_pb2
R = TypeVar("R")
SIDES = {T.SIDE_BUY: "buy", T.SIDE_SELL: "sell"}
LIMIT_TIFS = (T.TIME_IN_FORCE_GTC, T.TIME_IN_FORCE_IOC, T.TIME_IN_FORCE_FOK)
STOPS = (T.ORDER_TYPE_STOP_MARKET, T.ORDER_TYPE_STOP_LIMIT)
# A rate limit refused the request: nothing was applied.
RATE_LIMITED = (ccxt.DDoSProtection, ccxt.RateLimitExceeded)


def transport_failure(error: BaseException) -> bool:
    """What counts against an exchange's circuit and may be retried: a timeout, a dropped
    connection, a 5xx or an exchange's "internal error" (CCXT's OperationFailed); not a rate
    limit (refused before anything happened: waited out) nor a clock problem."""
    return isinstance(error, ccxt.OperationFailed) and not isinstance(
        error, (*RATE_LIMITED, ccxt.InvalidNonce)
    )


# The venue's guard held the request back: nothing was sent.
HELD_BACK = (VenueBusy, VenueUnavailable)

ExchangeFactory = Callable[[dict[str, Any]], Any]
_SUBMIT = events_pb2.VENUE_OPERATION_SUBMIT
_CANCEL = events_pb2.VENUE_OPERATION_CANCEL
_QUERY_ORDER = events_pb2.VENUE_OPERATION_QUERY_ORDER
_QUERY_OPEN_ORDERS = events_pb2.VENUE_OPERATION_QUERY_OPEN_ORDERS
_QUERY_FILLS = events_pb2.VENUE_OPERATION_QUERY_FILLS

# The HTTP status and headers of the last REST answer of the running task (see _new_exchange).
_NO_ANSWER: tuple[int | None, dict[str, str]] = (None, {})
_answer: ContextVar[tuple[int | None, dict[str, str]]] = ContextVar(
    "ccxt_last_answer", default=_NO_ANSWER
)


class MalformedAnswer(ccxt.BadResponse):  # type: ignore[misc]
    """The exchange answered with something that is not its documented JSON."""


@dataclass(frozen=True)
class PriceBand:
    """How far from the exchange's reference price (`reference`, in words) a priced order may
    be: a buy's price within [buy_down, buy_up] times it, a sell's within [sell_down, sell_up]
    (None: no bound that way)."""

    reference: str
    buy_down: Decimal | None
    buy_up: Decimal | None
    sell_down: Decimal | None
    sell_up: Decimal | None


@dataclass(frozen=True)
class Rules:
    """A symbol's trading rules, as the exchange sends them (None: not checked here)."""

    tick: Decimal
    step: Decimal
    min_quantity: Decimal | None = None
    max_quantity: Decimal | None = None
    min_notional: Decimal | None = None
    # Fixed price limits, and a band around a reference price read when an order is checked.
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    band: PriceBand | None = None


@dataclass(frozen=True)
class OrderView:
    """The exchange's view of one order, read from its raw JSON."""

    order_id: str  # the client order id: our order id
    venue_order_id: str
    side: T.Side.ValueType
    order_type: T.OrderType.ValueType
    time_in_force: T.TimeInForce.ValueType
    quantity: Decimal
    price: Decimal | None  # the limit; None for a market order
    executed: Decimal
    executed_notional: Decimal
    status: str  # the exchange's own word, for messages
    is_open: bool
    # How it ended, other than filled: CANCELED, EXPIRED or REJECTED; None while open or filled.
    ended: T.ExecutionType.ValueType | None = None
    updated: datetime | None = None
    reason: str = ""  # why the exchange ended it, when it says

    @property
    def filled(self) -> bool:
        return not self.is_open and self.ended is None

    @property
    def average_price(self) -> Decimal | None:
        return self.executed_notional / self.executed if self.executed else None


@dataclass(frozen=True)
class TradeView:
    """One trade of one of our orders, read from the exchange's raw JSON."""

    trade_id: str
    venue_order_id: str
    quantity: Decimal
    price: Decimal
    commission: Decimal
    commission_asset: str
    time: datetime | None
    sequence: tuple[int, str]  # sorts an order's trades in the exchange's order


@dataclass
class _Working:
    """An order the exchange has, and what we reported of it."""

    order: VenueOrder
    symbol: str  # CCXT's unified symbol, e.g. BTC/USDT
    venue_order_id: str
    registered: float  # time.monotonic() when we learned the exchange has it
    cumulative_quantity: Decimal = ZERO
    filled_notional: Decimal = ZERO
    trade_ids: set[str] = field(default_factory=set)
    done: bool = False
    # A cancel of ours is on its way: its answer, not the poller, reports the order CANCELED.
    canceling: bool = False
    # The exchange's first view of the order ended, reported once its trades add up.
    end: OrderView | None = None

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
            limit_price=self.order.limit_price
            if execution_type == T.EXECUTION_TYPE_MODIFIED
            else None,
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
        text = re.sub(r"signature=[0-9a-fA-F]+", "signature=***", text)
        return re.sub(r"(X-BAPI-SIGN'?\"?:\s*'?\"?)[0-9a-fA-F]+", r"\1***", text)

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


class CcxtSpotClient(ExecutionClient):
    """A spot exchange through CCXT; see the module docstring. A subclass names its CCXT class
    (`kind`) and speaks its exchange's wire format through the hooks below."""

    kind = ""  # CCXT's exchange id, and the exchange's name in messages
    # The client order ids the exchange takes, and the rule in words for a refusal.
    client_order_id = re.compile(r"^[A-Za-z0-9_-]{1,36}$")
    client_order_id_rule = "at most 36 characters of letters, digits, _ and -"
    # Whether the adapter can send stop orders as the exchange's own (a subclass that can sets
    # it; the config's native_stops turns it on).
    can_hold_stops = False
    timeouts = (ccxt.RequestTimeout,)
    rate_limits = RATE_LIMITED

    def __init__(
        self,
        emit: ReportSink,
        *,
        api_key: str,
        secret: str,
        symbols: Mapping[str, str],
        sandbox: bool = False,
        base_url: str | None = None,
        stream: bool = True,
        stream_url: str | None = None,
        timeout_s: float = 10.0,
        poll_interval_s: float = 1.0,
        stream_poll_interval_s: float = 30.0,
        lost_submit_grace_s: float = 1.0,
        resolve_attempts: int = 3,
        unresolved_timeout_s: float = 60.0,
        max_retry_after_s: float = 10.0,
        rate_limit_attempts: int = 3,
        band_reference_ttl_s: float = 1.0,
        native_stops: bool = False,
        recv_window_ms: int = 5000,
        exchange_factory: ExchangeFactory | None = None,
        guard: VenueGuard | None = None,
    ) -> None:
        """`symbols` maps our instruments to CCXT's symbols, e.g. {"BTC-USD": "BTC/USDT"}.
        `stream`: reports from the exchange's user-data stream (at `stream_url` when the REST
        API is at `base_url`; with a `base_url` and no `stream_url` there is no stream)."""
        super().__init__(emit, guard)
        self.symbols = dict(symbols)
        self._symbols = {ccxt_symbol: ours for ours, ccxt_symbol in symbols.items()}
        self._timeout_s = timeout_s
        self._poll_interval_s = poll_interval_s
        self._stream_poll_interval_s = stream_poll_interval_s
        self._grace_s = lost_submit_grace_s
        self._resolve_attempts = resolve_attempts
        self._unresolved_timeout_s = unresolved_timeout_s
        self._max_retry_after_s = max_retry_after_s
        self._rate_limit_attempts = rate_limit_attempts
        if native_stops and not self.can_hold_stops:
            raise ValueError(f"{self.kind}: native stop orders are not supported")
        self.native_stops = native_stops
        # Price bands: each symbol's reference price, and when it was read (time.monotonic()).
        self._band_reference_ttl_s = band_reference_ttl_s
        self._references: dict[str, tuple[float, Decimal]] = {}
        # How long a lost request may still be executed: its receive window, and a second of
        # clock difference between us and the exchange.
        self._in_flight_s = recv_window_ms / 1000 + 1.0
        if unresolved_timeout_s <= self._in_flight_s:
            raise ValueError("unresolved_timeout_s must be longer than recv_window_ms + 1 s")
        self._factory = exchange_factory or getattr(ccxt.pro, self.kind)
        self._exchange_settings = self._settings(api_key, secret, timeout_s, recv_window_ms)
        self._redacting = _RedactingLog([api_key, secret])
        self._sandbox, self._base_url = sandbox, base_url
        self._stream_url = stream_url
        self.streaming = stream and (base_url is None or stream_url is not None)
        self._exchange = self._new_exchange()
        self._lock = threading.RLock()
        self._orders: dict[str, _Working] = {}
        # Submits whose answer was lost: the order and when it was first sent.
        self._unresolved: dict[str, tuple[VenueOrder, float]] = {}
        # Orders being sent now, and the stream's news of them that came before their answer.
        self._sending: set[str] = set()
        self._early: dict[str, list[Callable[[], None]]] = {}
        # The event loop (its thread), the calls asked of it, and its background tasks.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._pending: set[concurrent.futures.Future[None]] = set()
        self._in_order: dict[str, tuple[asyncio.Lock, int]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._poll_now: asyncio.Event | None = None
        self._stream_up = False

    # -- what an exchange's subclass implements ------------------------------------------------

    @abc.abstractmethod
    def _settings(
        self, api_key: str, secret: str, timeout_s: float, recv_window_ms: int
    ) -> dict[str, Any]:
        """CCXT's constructor settings."""

    @abc.abstractmethod
    def _point_at(self, exchange: Any, base_url: str) -> None:
        """Points the exchange object's REST URLs at `base_url`."""

    @abc.abstractmethod
    def _point_stream_at(self, exchange: Any, stream_url: str) -> None:
        """Points the exchange object's private websocket at `stream_url`."""

    @abc.abstractmethod
    def _rules(self, market: dict[str, Any]) -> Rules:
        """The symbol's rules, from CCXT's market (its `info`: the exchange's own JSON)."""

    def _form_problem(self, order: VenueOrder) -> str:
        """Why the exchange cannot take the order's form (type, time in force), or "": spot
        limit (GTC, IOC, FOK, post-only) and market orders, and stop-market and stop-limit
        orders when the venue holds stops natively (`native_stops`)."""
        if order.order_type in STOPS:
            if not self.native_stops:
                return (
                    f"venue {self.name} is not configured to hold stop orders (native_stops): "
                    "order-management's emulator holds them"
                )
            if order.trigger_price is None:
                return "a stop order needs its trigger price"
            limit = order.order_type == T.ORDER_TYPE_STOP_LIMIT
            if limit and order.time_in_force not in LIMIT_TIFS:
                name = T.TimeInForce.Name(order.time_in_force)
                return f"{self.kind} spot takes GTC, IOC and FOK stop-limit orders, not {name}"
            return ""
        if order.order_type not in (T.ORDER_TYPE_LIMIT, T.ORDER_TYPE_MARKET):
            name = T.OrderType.Name(order.order_type)
            return f"{self.kind} spot takes LIMIT and MARKET orders here, not {name}"
        limit_tif = order.order_type == T.ORDER_TYPE_LIMIT and not order.post_only
        if limit_tif and order.time_in_force not in LIMIT_TIFS:
            name = T.TimeInForce.Name(order.time_in_force)
            return f"{self.kind} spot takes GTC, IOC and FOK limit orders, not {name}"
        return ""

    @abc.abstractmethod
    async def _place(
        self, symbol: str, order: VenueOrder
    ) -> tuple[OrderView, list[TradeView] | None]:
        """Sends the order: the exchange's view of it, with its trades when the answer has
        them (None: read them when the order has executed)."""

    @abc.abstractmethod
    async def _query(self, symbol: str, order_id: str) -> OrderView | None:
        """The order by client order id; None when the exchange answers it has none. Raises
        ccxt.BaseError when it cannot tell."""

    @abc.abstractmethod
    async def _query_venue_id(self, symbol: str, venue_order_id: str) -> OrderView:
        """The order by the exchange's id."""

    @abc.abstractmethod
    async def _cancel_on_venue(self, symbol: str, order_id: str) -> OrderView:
        """Cancels by client order id: the order as it is now. Raises ccxt.OrderNotFound when
        the exchange has no open order of that id."""

    @abc.abstractmethod
    async def _open_on_venue(self, symbol: str) -> list[OrderView]:
        """The open orders of the symbol."""

    @abc.abstractmethod
    async def _order_trades(
        self, symbol: str, venue_order_id: str, order_id: str
    ) -> list[TradeView]:
        """Every trade of one order."""

    @abc.abstractmethod
    async def _trades_since(self, symbol: str, since_ms: int) -> list[TradeView]:
        """The symbol's trades since `since_ms`."""

    async def _band_reference(self, symbol: str) -> Decimal | None:
        """The reference price of the symbol's price band (None: not known now)."""
        return None

    @abc.abstractmethod
    def _retry_hint(self, headers: Mapping[str, str]) -> float | None:
        """Seconds a rate-limited answer (its headers) asks us to wait, when it says."""

    @abc.abstractmethod
    def _is_duplicate(self, error: Exception) -> bool:
        """Whether the error refuses a client order id the exchange already has."""

    @abc.abstractmethod
    async def _subscribe(self) -> None:
        """Opens the private stream and subscribes to our orders and trades; returns once the
        exchange has acknowledged it (raises when it refuses or cannot be reached)."""

    async def _subscribed(self) -> None:
        """Returns once the watchers' own subscriptions (if any) are acknowledged."""
        return None

    @abc.abstractmethod
    def _tap(self, exchange: Any) -> None:
        """Wraps the exchange object's handlers of our order and trade events so that each
        event, as it arrives, also goes to `self._taken(self._on_order | self._on_trade, info)`
        (then to CCXT's own handler)."""

    @abc.abstractmethod
    def _stream_order(self, info: dict[str, Any]) -> OrderView | None:
        """An order event of the stream (the exchange's own JSON); None: not one of ours."""

    @abc.abstractmethod
    def _stream_trade(self, info: dict[str, Any]) -> tuple[str, TradeView] | None:
        """A trade event of the stream: our order id and the trade; None: not one of ours."""

    # Fragments of an error's text saying the exchange does not know whether it executed.
    unknown_outcome_codes: tuple[str, ...] = ()

    # -- the one door to the exchange ----------------------------------------------------------

    async def _request(
        self,
        fn: Callable[[], Awaitable[R]],
        *,
        weight: int = 1,
        orders: int = 0,
        repeatable: bool = False,
    ) -> R:
        """Makes one REST call, through the venue's guard when one is set (rate limit by
        `weight`, `orders` placed, circuit breaker, timeout, retries when `repeatable`)."""

        def attempt() -> Awaitable[R]:
            count_attempt()
            return fn()

        if self.guard is None:
            return await attempt()
        try:
            result: R = await self.guard.call_async(
                attempt, weight=weight, orders=orders, repeatable=repeatable
            )
        except HELD_BACK as error:
            if not repeatable:
                raise  # a submit, cancel or amend not sent: its caller says why
            # A query not sent: to a lookup, the exchange cannot tell yet.
            raise ccxt.ExchangeNotAvailable(f"{self.kind}: {error}") from error
        return result

    # -- the event loop -------------------------------------------------------------------------

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        """The adapter's event loop, started on its own thread when it is not running."""
        if self._loop is not None:
            return self._loop
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        self._loop_thread = threading.Thread(target=run, name=f"venue-{self.kind}", daemon=True)
        self._loop_thread.start()
        ready.wait()
        self._loop = loop
        if self._exchange.closed_by_user:  # stopped before: a new session, the same markets
            markets = self._exchange.markets
            self._exchange = self._new_exchange()
            if markets:
                self._exchange.set_markets(markets)
        return loop

    def _run(self, coroutine: Coroutine[Any, Any, R]) -> R:
        """Runs a coroutine on the loop and waits for its result (a caller's thread only)."""
        loop = self._ensure_loop()
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result()

    def _schedule(self, key: str, make: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Runs `make()` on the loop after the calls scheduled before it for the same order,
        concurrently with those of other orders; returns at once."""
        loop = self._ensure_loop()
        future = asyncio.run_coroutine_threadsafe(self._one_by_one(key, make), loop)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: concurrent.futures.Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)
        if not future.cancelled() and future.exception() is not None:
            error = future.exception()
            log.error("%s: a call failed", self.kind, exc_info=error)

    async def _one_by_one(self, key: str, make: Callable[[], Coroutine[Any, Any, None]]) -> None:
        # Taken before any await: calls of one order run in the order they were asked.
        lock, users = self._in_order.get(key) or (asyncio.Lock(), 0)
        self._in_order[key] = (lock, users + 1)
        try:
            async with lock:
                await make()
        finally:
            lock, users = self._in_order[key]
            if users == 1:
                del self._in_order[key]
            else:
                self._in_order[key] = (lock, users - 1)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Loads the spot markets (an unlisted instrument stops start-up; an exchange that does
        not answer now is asked again by the first order), then starts the poller and the
        user-data stream."""
        self._ensure_loop()
        try:
            self._run(self._load_markets())
        except ConfigError:
            self.stop()  # start-up stops: the session closed, the loop ended
            raise
        except Exception as error:
            log.warning("%s: markets not loaded (%s); the first order loads them", self.kind, error)
        self._run(self._start_tasks())

    async def _start_tasks(self) -> None:
        self._poll_now = asyncio.Event()
        self._tasks = [asyncio.create_task(self._poll_loop(), name=f"{self.kind}-poller")]
        if self.streaming:
            self._tasks.append(asyncio.create_task(self._stream_loop(), name=f"{self.kind}-stream"))

    async def _load_markets(self) -> None:
        """Loads the exchange's markets; an instrument mapped to a symbol the exchange does not
        list raises ConfigError naming its key (start-up stops)."""
        await self._request(self._exchange.load_markets, weight=20, repeatable=True)
        markets = self._exchange.markets
        for ours, symbol in sorted(self.symbols.items()):
            if symbol not in markets:
                spot = sorted(m for m, v in markets.items() if v.get("spot"))
                raise ConfigError(
                    f"execution.venues.{self.name}.symbols.{ours}: {self.kind} lists no spot "
                    f"market {symbol!r}; expected one it lists, such as "
                    f"{', '.join(spot[:5]) or 'none'}"
                )

    def stop(self) -> None:
        """Lets the calls already asked finish (each bounded by its timeouts), then stops the
        poller and the stream and closes the session."""
        loop = self._loop
        if loop is None:
            return
        with self._lock:
            pending = list(self._pending)
        longest = self._timeout_s * (self._resolve_attempts + 2) + self._in_flight_s
        concurrent.futures.wait(pending, timeout=longest)
        try:
            asyncio.run_coroutine_threadsafe(self._close(), loop).result(timeout=longest)
        except Exception:
            log.exception("%s: closing the session failed", self.kind)
        loop.call_soon_threadsafe(loop.stop)
        if self._loop_thread is not None:
            self._loop_thread.join(timeout=longest)
        loop.close()
        self._loop, self._loop_thread = None, None

    async def _close(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=self._timeout_s)
        self._stream_up = False
        try:
            await asyncio.wait_for(self._exchange.close(), self._timeout_s)
        except TimeoutError:
            log.warning("%s: the session did not close within %ss", self.kind, self._timeout_s)
        # Whatever else still runs on the loop (a call that outlived stop's wait, CCXT's own
        # tasks) ends here, before the loop is closed.
        left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in left:
            task.cancel()
        if left:
            await asyncio.wait(left, timeout=self._timeout_s)

    def connected(self) -> bool:
        return True

    @property
    def stream_up(self) -> bool:
        """Whether the user-data stream is subscribed now (polling is the fallback)."""
        return self._stream_up

    def report_channel(self) -> ReportChannel:
        if not self.streaming:
            return "polled"
        return "pushed" if self._stream_up else "polled_stream_down"

    def restore(self, orders: Sequence[tuple[VenueOrder, Report]]) -> None:
        """After a restart: the orders the router had at the exchange, so that the poller
        follows them again and reports what they did meanwhile, also those that finished (an
        open-orders list would not show them). Their trades are reported from the first; the
        router applies each trade id once."""
        with self._lock:
            for order, last in orders:
                symbol = self.symbols.get(order.instrument)
                if symbol is None:
                    log.error(
                        "%s: restored order %s of unmapped %s",
                        self.kind,
                        order.order_id,
                        order.instrument,
                    )
                    continue
                working = _Working(order, symbol, last.venue_order_id, time.monotonic())
                self._orders.setdefault(order.order_id, working)

    # -- the template -------------------------------------------------------------------------

    def submit_order(self, order: VenueOrder) -> None:
        """Returns at once; the outcome comes as reports. Raises VenueUnavailable (nothing
        sent) while the venue's circuit is open."""
        if self.guard is not None and not self.guard.available:
            raise VenueUnavailable(self.guard.why_unavailable())
        self._schedule(order.order_id, lambda: self._submit(order))

    def submit_after_restart(self, order: VenueOrder) -> None:
        """A submit whose answer was lost (in the router's restart): looked up by client order
        id, sent only when the exchange has no such order and can no longer get the first; the
        poller asks meanwhile, also while the circuit is open."""
        sending = self.guard is None or self.guard.available

        async def resolve() -> None:
            self._lost(order)  # on the loop: it wakes the poller
            if sending:
                await self._submit(order)

        self._schedule(order.order_id, resolve)

    def cancel_order(self, order_id: str, request_id: str) -> None:
        self._schedule(order_id, lambda: self._cancel_order(order_id, request_id))

    def open_orders(self) -> list[Report]:
        return self._run(self._open_orders())

    def fills_since(self, moment: datetime) -> list[Report]:
        """Every fill since `moment`, read from the exchange (its trades, then each order's
        trades from its first, for the cumulative quantity each fill left)."""
        return self._run(self._fills_since(moment))

    async def _submit(self, order: VenueOrder) -> None:
        with self._lock:
            known = order.order_id in self._orders
            lost = order.order_id in self._unresolved
        if known:
            log.info("%s: order %s was already sent: not sent again", self.kind, order.order_id)
            return
        with self._lock:
            self._sending.add(order.order_id)
        try:
            if lost:
                await self._resolve_lost_submit(order)
                return
            problem = await self._problem(order)
            if problem:
                self._emit_rejected(order, problem)
                return
            await self._send(order)
        except HELD_BACK as error:  # nothing of it was sent
            self._emit_rejected(order, str(error))
        finally:
            with self._lock:
                self._sending.discard(order.order_id)
                if order.order_id not in self._unresolved:
                    self._early.pop(order.order_id, None)

    async def _cancel_order(self, order_id: str, request_id: str) -> None:
        with self._lock:
            working = self._orders.get(order_id)
        symbols = [working.symbol] if working else list(self._symbols)
        if working is not None and working.done:
            self._cancel_rejected(order_id, request_id, working, "it has already finished")
            return
        last_error = f"{self.kind} does not know the order"
        if working is not None:
            with self._lock:
                working.canceling = True
        try:
            await self._cancel(order_id, request_id, symbols, working, last_error)
        finally:
            if working is not None:
                with self._lock:
                    working.canceling = False

    async def _cancel(
        self,
        order_id: str,
        request_id: str,
        symbols: list[str],
        working: _Working | None,
        last_error: str,
    ) -> None:
        for symbol in symbols:
            try:
                view = await self.recorded_async(
                    _CANCEL, order_id, partial(self._cancel_on_venue, symbol, order_id)
                )
            except ccxt.OrderNotFound:
                last_error = await self._why_not_cancelable(order_id, symbol, working)
                continue
            except (ccxt.NetworkError, ccxt.BadResponse) as error:
                await self._cancel_outcome_unknown(order_id, request_id, symbol, working, error)
                return
            except ccxt.BaseError as error:
                last_error = f"{self.kind} refused the cancel: {self._reason(error)}"
                break
            except HELD_BACK as error:
                last_error = f"it was not sent: {error}"
                break
            adopted = working or self._adopt(order_id, symbol, view)
            await self._apply(adopted, view, request_id=request_id)
            return
        self._cancel_rejected(order_id, request_id, working, last_error)

    async def _open_orders(self) -> list[Report]:
        reports = []
        for symbol in self._symbols:
            listed = await self.recorded_async(
                _QUERY_OPEN_ORDERS, "", partial(self._open_on_venue, symbol)
            )
            for view in listed:
                self._known_or_adopted(view, symbol)  # the poller follows it from now on
                kind = (
                    T.EXECUTION_TYPE_PARTIALLY_FILLED
                    if view.executed
                    else T.EXECUTION_TYPE_ACCEPTED
                )
                reports.append(
                    Report(
                        execution_type=kind,
                        order_id=view.order_id,
                        venue_order_id=view.venue_order_id,
                        side=view.side,
                        cumulative_quantity=view.executed,
                        leaves_quantity=view.quantity - view.executed,
                        average_price=view.average_price,
                        limit_price=view.price,
                        time=view.updated,
                    )
                )
        return reports

    async def _fills_since(self, moment: datetime) -> list[Report]:
        since_ms = int(moment.timestamp() * 1000)
        reports: list[Report] = []
        for symbol, instrument in self._symbols.items():
            trades = await self.recorded_async(
                _QUERY_FILLS, "", partial(self._trades_since, symbol, since_ms)
            )
            for venue_order_id in sorted({t.venue_order_id for t in trades}, key=_id_order):
                view = await self._query_venue_id(symbol, venue_order_id)
                order = _venue_order(view, instrument)
                replay = _Working(order, symbol, venue_order_id, time.monotonic())
                every = await self._order_trades(symbol, venue_order_id, view.order_id)
                for trade in sorted(every, key=lambda t: t.sequence):
                    report = self._fill(replay, trade)
                    if report.time is not None and report.time >= moment:
                        reports.append(report)
        return sorted(reports, key=lambda r: r.time or moment)

    # -- submitting ---------------------------------------------------------------------------

    async def _problem(self, order: VenueOrder) -> str:
        """Why the order cannot go to the exchange as it is, or ""."""
        symbol = self.symbols.get(order.instrument)
        if symbol is None:
            known = ", ".join(sorted(self.symbols)) or "none"
            return f"instrument {order.instrument!r} is not mapped to {self.kind}; mapped: {known}"
        if not self.client_order_id.match(order.order_id):
            return (
                f"order id {order.order_id!r} cannot be {self.kind}'s client order id "
                f"({self.client_order_id_rule})"
            )
        if order.side not in SIDES:
            return "side must be BUY or SELL"
        problem = self._form_problem(order)
        if problem:
            return problem
        if order.display_quantity is not None:
            return f"iceberg orders are not supported on {self.kind} yet"
        if not self._exchange.markets:
            try:
                await self._load_markets()
            except ccxt.BaseError as error:
                return f"{self.kind}'s markets could not be loaded: {self._reason(error)}"
        market = self._exchange.markets.get(symbol)
        if market is None:
            return f"{self.kind} does not list {symbol}"
        try:
            rules = self._rules(market)
        except (KeyError, TypeError, ValueError) as error:
            return f"{self.kind}'s rules for {symbol} cannot be read: {error}"
        return _rules_problem(order, symbol, rules) or await self._band_problem(
            order, symbol, rules.band
        )

    async def _band_problem(self, order: VenueOrder, symbol: str, band: PriceBand | None) -> str:
        """Why the order's price is outside the symbol's price band around its reference price
        now, or "" (also when the reference cannot be read: the exchange decides then)."""
        price = _priced(order)
        if band is None or price is None:
            return ""
        cached = self._references.get(symbol)
        if cached is not None and time.monotonic() - cached[0] < self._band_reference_ttl_s:
            reference: Decimal | None = cached[1]
        else:
            try:
                reference = await self._band_reference(symbol)
            except (ccxt.BaseError, *HELD_BACK) as error:
                log.warning("%s: %s's band reference not read: %s", self.kind, symbol, error)
                return ""
            if reference is not None:
                self._references[symbol] = (time.monotonic(), reference)
        if reference is None or reference <= 0:
            return ""
        buy = order.side == T.SIDE_BUY
        down, up = (band.buy_down, band.buy_up) if buy else (band.sell_down, band.sell_up)
        shown = format_decimal(price)
        where = f"{band.reference} {format_decimal(reference)}"
        if up is not None and price > multiply(reference, up):
            most = format_decimal(multiply(reference, up))
            return (
                f"limit price {shown} is above {symbol}'s price band: at most {most} "
                f"({format_decimal(up)} x {where})"
            )
        if down is not None and price < multiply(reference, down):
            least = format_decimal(multiply(reference, down))
            return (
                f"limit price {shown} is below {symbol}'s price band: at least {least} "
                f"({format_decimal(down)} x {where})"
            )
        return ""

    async def _send(self, order: VenueOrder) -> None:
        """Sends the order; on a lost answer, finds out whether the exchange has it before
        anything else."""
        symbol = self.symbols[order.instrument]
        for attempt in range(1, self._rate_limit_attempts + 1):
            _answer.set(_NO_ANSWER)
            try:
                view, trades = await self.recorded_async(
                    _SUBMIT, order.order_id, lambda: self._place(symbol, order)
                )
            except RATE_LIMITED as error:  # not applied
                wait = self._retry_after()
                if attempt == self._rate_limit_attempts:
                    self._emit_rejected(order, f"{self.kind} rate limit: {self._reason(error)}")
                    return
                log.warning(
                    "%s: rate limited; order %s again in %ss", self.kind, order.order_id, wait
                )
                await asyncio.sleep(wait)
                continue
            except ccxt.BaseError as error:
                await self._not_placed(order, error)
                return
            if view.quantity != order.quantity:
                log.error(
                    "%s: order %s placed for %s, not %s",
                    self.kind,
                    order.order_id,
                    format_decimal(view.quantity),
                    format_decimal(order.quantity),
                )
            await self._adopt_and_apply(order, symbol, view, trades)
            return

    async def _not_placed(self, order: VenueOrder, error: Exception) -> None:
        """A submit that raised: looked up when it may have been applied, else rejected."""
        if self._outcome_unknown(error):  # timeout, 5xx, dropped, garbled
            log.warning(
                "%s: the answer to order %s was lost (%s): looking it up",
                self.kind,
                order.order_id,
                type(error).__name__,
            )
            self._lost(order)
            await self._resolve_lost_submit(order)
        elif self._is_duplicate(error):
            log.warning("%s: order %s is already there: adopting it", self.kind, order.order_id)
            try:
                found = await self._look_up(order)
            except ccxt.BaseError:
                found = False
            if not found:  # refused as a duplicate, yet not shown: the poller adopts it
                self._lost(order)
        elif isinstance(error, ccxt.AuthenticationError | ccxt.PermissionDenied):
            message = f"{self.kind} refused our API credentials: {self._reason(error)}"
            log.error("%s: order %s not placed: %s", self.kind, order.order_id, message)
            self._emit_rejected(order, message)
        elif isinstance(error, ccxt.InvalidNonce):
            message = (
                f"{self.kind} refused the request's timestamp (our clock and the exchange's "
                f"differ by more than the receive window): {self._reason(error)}"
            )
            self._emit_rejected(order, message)
        else:
            self._emit_rejected(order, f"{self.kind} rejected the order: {self._reason(error)}")

    def _lost(self, order: VenueOrder) -> None:
        """A submit whose outcome is unknown: the poller looks it up from now on, at its quick
        interval (woken now: it may be waiting out its quiet one)."""
        with self._lock:
            self._unresolved.setdefault(order.order_id, (order, time.monotonic()))
        if self._poll_now is not None:
            self._poll_now.set()

    async def _resolve_lost_submit(self, order: VenueOrder) -> None:
        """Looks the order up by client order id; sends it again only when the exchange answers
        that it has no such order. Left to the poller when that stays unknown. Only this
        order waits meanwhile: the others' calls go on."""
        for attempt in range(self._resolve_attempts):
            await asyncio.sleep(self._grace_s * (attempt + 1))
            try:
                if await self._look_up(order):
                    return
            except (ccxt.BaseError, *HELD_BACK) as error:  # cannot tell (our limit or circuit
                # held the look-up back: the order may be there all the same): ask again
                log.warning("%s: looking up order %s failed: %s", self.kind, order.order_id, error)
                continue
            with self._lock:
                lost = self._unresolved.get(order.order_id)
            still_in_flight = self._in_flight_s - (time.monotonic() - lost[1]) if lost else 0.0
            if still_in_flight > 0:  # it may yet be placed: look again once it cannot
                await asyncio.sleep(still_in_flight)
                continue
            with self._lock:
                self._unresolved.pop(order.order_id, None)
            log.info("%s: order %s is not at the exchange: sending it", self.kind, order.order_id)
            await self._send(order)
            return
        log.error(
            "%s: whether order %s was placed is still unknown: the poller goes on asking",
            self.kind,
            order.order_id,
        )

    async def _look_up(self, order: VenueOrder) -> bool:
        """Adopts the order when the exchange has it (True); False when it has none.
        Raises ccxt.BaseError when it cannot tell."""
        symbol = self.symbols[order.instrument]
        view = await self._query_recorded(symbol, order.order_id)
        if view is None:
            return False
        with self._lock:
            self._unresolved.pop(order.order_id, None)
        await self._adopt_and_apply(order, symbol, view, None)
        return True

    async def _adopt_and_apply(
        self,
        order: VenueOrder,
        symbol: str,
        view: OrderView,
        trades: list[TradeView] | None,
    ) -> None:
        working = self._register(order, symbol, view)
        await self._apply(working, view, trades=trades)
        self._replay_early(order.order_id)

    def _register(self, order: VenueOrder, symbol: str, view: OrderView) -> _Working:
        """The order the exchange has: ACCEPTED when we did not know it yet."""
        with self._lock:
            working = self._orders.get(order.order_id)
            if working is None:
                working = _Working(order, symbol, view.venue_order_id, time.monotonic())
                self._orders[order.order_id] = working
                self.emit(working.report(T.EXECUTION_TYPE_ACCEPTED))
        return working

    def _adopt(self, order_id: str, symbol: str, view: OrderView) -> _Working:
        """An order we did not know (sent before a restart), from the exchange's view of it."""
        order = _venue_order(view, self._symbols[symbol])
        with self._lock:
            working = self._orders.setdefault(
                order_id, _Working(order, symbol, view.venue_order_id, time.monotonic())
            )
        return working

    def _known_or_adopted(self, view: OrderView, symbol: str) -> _Working:
        with self._lock:
            working = self._orders.get(view.order_id)
        return working or self._adopt(view.order_id, symbol, view)

    # -- what the exchange did with an order ---------------------------------------------------

    async def _apply(
        self,
        working: _Working,
        view: OrderView,
        *,
        trades: list[TradeView] | None = None,
        request_id: str = "",
    ) -> None:
        """Reports what the exchange's view of the order holds that we did not report yet: new
        trades (read by order id when not given), then its end (canceled, expired)."""
        with self._lock:
            behind = view.executed > working.cumulative_quantity
        if behind and trades is None:
            trades = await self._order_trades(
                working.symbol, working.venue_order_id, working.order.order_id
            )
        self._settle(working, view, trades or [], request_id)

    def _settle(
        self,
        working: _Working,
        view: OrderView | None,
        trades: Iterable[TradeView],
        request_id: str = "",
    ) -> None:
        """Reports the trades not reported yet, then the order's end once its trades add up to
        what the exchange executed: the first end seen is kept until they do, so that news in
        any order (a stream's, a poll's, an answer's) reports each state once, in order."""
        with self._lock:
            for trade in sorted(trades, key=lambda t: t.sequence):
                if trade.trade_id not in working.trade_ids:
                    self.emit(self._fill(working, trade))
            if view is not None and view.ended is not None and working.end is None:
                working.end = view
            end = view if view is not None and view.ended is not None else working.end
            executed = view.executed if view is not None else working.cumulative_quantity
            caught_up = working.cumulative_quantity >= executed
            filled = view is not None and view.filled and caught_up
            if working.cumulative_quantity == working.order.quantity or filled:
                working.done = True
            if end is None or end.ended is None:
                return
            ended = end.ended
            if ended == T.EXECUTION_TYPE_CANCELED and working.canceling and not request_id:
                return
            # An end waits for the trades before it (the poller or the stream brings them),
            # unless a cancel of ours is answered now.
            end_caught_up = working.cumulative_quantity >= end.executed
            if not working.done and (end_caught_up or request_id):
                working.done = True
                message = "" if request_id else self._end_message(end)
                if ended == T.EXECUTION_TYPE_REJECTED:
                    # Reported ACCEPTED already (it is working): an exchange that rejects it
                    # now has ended it unfilled, which is what CANCELED says of an accepted
                    # order; REJECTED is for an order never accepted.
                    ended = T.EXECUTION_TYPE_CANCELED
                self.emit(working.report(ended, message, request_id))
            elif request_id and view is not None and view.ended == T.EXECUTION_TYPE_CANCELED:
                self.emit(working.report(ended, "", request_id))

    def _end_message(self, view: OrderView) -> str:
        why = f" ({view.reason})" if view.reason else ""
        return f"{self.kind}: {view.status.lower()}{why}"

    def _fill(self, working: _Working, trade: TradeView) -> Report:
        working.trade_ids.add(trade.trade_id)
        working.cumulative_quantity += trade.quantity
        working.filled_notional += multiply(trade.quantity, trade.price)
        fee, message = self._fee(trade, working.symbol)
        done = working.cumulative_quantity >= working.order.quantity
        if done:
            working.done = True
        return Report(
            execution_type=T.EXECUTION_TYPE_FILLED if done else T.EXECUTION_TYPE_PARTIALLY_FILLED,
            order_id=working.order.order_id,
            venue_order_id=working.venue_order_id,
            side=working.order.side,
            trade_id=trade.trade_id,
            last_quantity=trade.quantity,
            last_price=trade.price,
            fee=fee,
            cumulative_quantity=working.cumulative_quantity,
            leaves_quantity=working.order.quantity - working.cumulative_quantity,
            average_price=working.average_price,
            message=message,
            time=trade.time,
        )

    def _fee(self, trade: TradeView, symbol: str) -> tuple[Decimal, str]:
        """The commission in the quote currency, and a note when it was not paid in it."""
        commission, asset = trade.commission, trade.commission_asset
        markets = self._exchange.markets or {}
        market = markets.get(symbol, {})
        if asset == market.get("quoteId") or not commission:
            return commission, ""
        note = f"commission {format_decimal(commission)} {asset}"
        if asset == market.get("baseId"):
            return multiply(commission, trade.price), note
        return ZERO, note + " (not in the quote currency: fee reported as 0)"

    # -- cancels ------------------------------------------------------------------------------

    async def _why_not_cancelable(
        self, order_id: str, symbol: str, working: _Working | None
    ) -> str:
        try:
            view = await self._query_recorded(symbol, order_id)
        except ccxt.BaseError:
            view = None
        if view is None:
            return f"{self.kind} does not know order {order_id}"
        known = working or self._adopt(order_id, symbol, view)
        await self._apply(known, view)  # reports fills we had not seen
        return f"the order has already finished ({view.status.lower()})"

    async def _cancel_outcome_unknown(
        self,
        order_id: str,
        request_id: str,
        symbol: str,
        working: _Working | None,
        error: Exception,
    ) -> None:
        try:
            view = await self._query_recorded(symbol, order_id)
        except ccxt.BaseError:
            view = None
        if view is not None and view.ended == T.EXECUTION_TYPE_CANCELED:
            known = working or self._adopt(order_id, symbol, view)
            await self._apply(known, view, request_id=request_id)
            return
        if view is not None:
            known = working or self._adopt(order_id, symbol, view)
            await self._apply(known, view)
        status = view.status.lower() if view else "unknown"
        message = f"the cancel's answer was lost ({type(error).__name__}); the order is {status}"
        self._cancel_rejected(order_id, request_id, working, message)

    def _cancel_rejected(
        self, order_id: str, request_id: str, working: _Working | None, why: str
    ) -> None:
        rejected = T.EXECUTION_TYPE_CANCEL_REJECTED
        message = f"{self.kind} cannot cancel: {why}"
        with self._lock:
            known = working or self._orders.get(order_id)
            if known is not None:
                self.emit(known.report(rejected, message, request_id))
                return
        side = T.SIDE_UNSPECIFIED
        self.emit(Report.nothing_filled(rejected, order_id, side, message, request_id))

    # -- the user-data stream ------------------------------------------------------------------

    async def _stream_loop(self) -> None:
        """Keeps the private stream subscribed. While it is down the poller reads every
        `poll_interval_s`; each (re)connection is followed by a poll for the gap."""
        backoff = 0.05
        while True:
            watchers: list[asyncio.Task[None]] = []
            try:
                await self._subscribe()
                watchers = [
                    asyncio.create_task(self._watch(self._exchange.watch_orders)),
                    asyncio.create_task(self._watch(self._exchange.watch_my_trades)),
                ]
                await asyncio.wait_for(self._subscribed(), self._timeout_s)
                self._stream_changed(up=True)
                backoff = 0.05
                done, _ = await asyncio.wait(watchers, return_when=asyncio.FIRST_EXCEPTION)
                for task in done:
                    task.result()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                _raise_if_cancelled()  # CCXT may turn a cancel into one of its errors
                log.warning(
                    "%s: the user-data stream is down (%s: %s); polling until it is back",
                    self.kind,
                    type(error).__name__,
                    str(error)[:200],
                )
            finally:
                for task in watchers:
                    task.cancel()
            self._stream_changed(up=False)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def _stream_changed(self, up: bool) -> None:
        if up != self._stream_up:
            log.info("%s: user-data stream %s", self.kind, "subscribed" if up else "down")
        self._stream_up = up
        if self._poll_now is not None:
            self._poll_now.set()  # the gap (or the outage) is polled at once

    async def _watch(self, watch: Callable[[], Awaitable[Any]]) -> None:
        """Keeps one of CCXT's subscriptions (and raises when its connection drops). The events
        themselves are taken as they arrive (`_tap`), not from CCXT's cache, which keeps one
        state per order between two reads."""
        while True:
            await watch()

    def _taken(self, handle: Callable[[dict[str, Any]], None], info: Any) -> None:
        """One event of the stream, as the exchange sent it (from the handler `_tap` wraps)."""
        if not isinstance(info, dict):
            self.count_problem(f"a stream event that is not an object: {str(info)[:200]}")
            return
        try:
            handle(info)
        except MalformedAnswer as error:
            self.count_problem(f"a stream event: {error}")

    def _on_order(self, info: dict[str, Any]) -> None:
        view = self._stream_order(info)
        if view is not None:
            self._on_news(view.order_id, lambda working: self._settle(working, view, ()))

    def _on_trade(self, info: dict[str, Any]) -> None:
        found = self._stream_trade(info)
        if found is not None:
            order_id, trade = found
            self._on_news(order_id, lambda working: self._settle(working, None, (trade,)))

    def _on_news(self, order_id: str, apply: Callable[[_Working], None]) -> None:
        """Applies the stream's news of an order; news of an order whose submit is not yet
        answered waits for the answer (then applied after it)."""
        with self._lock:
            working = self._orders.get(order_id)
            if working is None:
                if order_id in self._sending or order_id in self._unresolved:
                    self._early.setdefault(order_id, []).append(
                        lambda: self._on_news(order_id, apply)
                    )
                if order_id in self._unresolved and self._poll_now is not None:
                    self._poll_now.set()  # the exchange has it: the poller adopts it now
                return  # not ours, or finished before a restart: polling knows the rest
            if working.done:
                return  # reported to its end: later news (a duplicate, a late one) is old
        apply(working)

    def _replay_early(self, order_id: str) -> None:
        with self._lock:
            early = self._early.pop(order_id, [])
        for news in early:
            news()

    # -- the poller ---------------------------------------------------------------------------

    async def _poll_loop(self) -> None:
        assert self._poll_now is not None
        while True:
            with self._lock:
                urgent = bool(self._unresolved)  # a lost submit: resolved as soon as can be
            quiet = self._stream_up and not urgent
            interval = self._stream_poll_interval_s if quiet else self._poll_interval_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poll_now.wait(), interval)
            self._poll_now.clear()
            try:
                await self._poll_once()
            except RATE_LIMITED:
                await asyncio.sleep(self._retry_after())
            except ccxt.BadResponse as error:  # garbage: counted, the next poll reads again
                self.count_problem(f"polling for fills: {error}")
            except Exception:
                _raise_if_cancelled()
                log.exception("%s: polling for fills failed", self.kind)

    async def _poll_once(self) -> None:
        with self._lock:
            working = [w for w in self._orders.values() if not w.done]
            unresolved = list(self._unresolved.values())
        for order, since in unresolved:
            await self._poll_unresolved(order, since)
        by_symbol: dict[str, list[_Working]] = {}
        for w in working:
            by_symbol.setdefault(w.symbol, []).append(w)
        for symbol, orders in by_symbol.items():
            asked = time.monotonic()
            listed = {v.order_id: v for v in await self._open_on_venue(symbol)}
            for w in orders:
                view = listed.get(w.order.order_id)
                if view is None:
                    if w.registered >= asked:
                        continue  # registered after the list was asked for
                    view = await self._query(symbol, w.order.order_id)
                    if view is None:  # not shown yet (an exchange's lists may lag)
                        log.warning("%s: order %s not found yet", self.kind, w.order.order_id)
                        continue
                with self._lock:
                    behind = view.executed > w.cumulative_quantity
                if behind or not view.is_open:
                    await self._apply(w, view)

    async def _poll_unresolved(self, order: VenueOrder, since: float) -> None:
        symbol = self.symbols[order.instrument]
        try:
            view = await self._query(symbol, order.order_id)
        except ccxt.BaseError as error:  # cannot tell yet: the next poll asks again
            log.warning("%s: looking up order %s failed: %s", self.kind, order.order_id, error)
            return
        if view is None:
            if time.monotonic() - since < self._unresolved_timeout_s:
                return
            with self._lock:
                if self._unresolved.pop(order.order_id, None) is None:
                    return
            message = (
                f"{self.kind} has no such order after the answer to its submit was lost: "
                "not sent again"
            )
            self._emit_rejected(order, message)
            return
        with self._lock:
            if self._unresolved.pop(order.order_id, None) is None:
                return
        await self._adopt_and_apply(order, symbol, view, None)

    # -- helpers ------------------------------------------------------------------------------

    async def _query_recorded(self, symbol: str, order_id: str) -> OrderView | None:
        """An order's look-up by client order id, recorded as a venue call of the order."""
        return await self.recorded_async(
            _QUERY_ORDER, order_id, lambda: self._query(symbol, order_id)
        )

    def _retry_after(self) -> float:
        """How long the last (rate-limited) answer of this task asks us to wait."""
        hint = self._retry_hint(_answer.get()[1])
        wait = 1.0 if hint is None else hint
        return min(max(wait, 0.0), self._max_retry_after_s)

    def _outcome_unknown(self, error: Exception) -> bool:
        """Whether a failed call may still have been applied: the answer never came (timeout,
        dropped connection), came as a 5xx or garbled, or said that the execution status is
        unknown."""
        if isinstance(error, (*RATE_LIMITED, ccxt.InvalidNonce)):
            return False  # refused before anything was applied
        if isinstance(error, ccxt.BadResponse):
            self.count_problem(str(error))
            return True
        if isinstance(error, ccxt.NetworkError):
            return True
        status = _answer.get()[0]
        if isinstance(status, int) and status >= 500:
            return True
        text = str(error).replace(" ", "")
        return any(code in text for code in self.unknown_outcome_codes)

    def _reason(self, error: Exception) -> str:
        """CCXT's message without its exchange prefix ("binance {...}")."""
        text = str(error)
        return text.removeprefix(f"{self.kind} ").strip() or type(error).__name__

    def _emit_rejected(self, order: VenueOrder, message: str) -> None:
        with self._lock:
            self._unresolved.pop(order.order_id, None)
            self._early.pop(order.order_id, None)
        rejected = T.EXECUTION_TYPE_REJECTED
        self.emit(Report.nothing_filled(rejected, order.order_id, order.side, message))

    def _new_exchange(self) -> Any:
        """CCXT's async exchange object (ccxt.pro: REST and websockets), configured."""
        exchange = self._factory(self._exchange_settings)
        exchange.logger = self._redacting
        answered = exchange.on_rest_response

        def remember(
            code: int, reason: Any, url: Any, method: Any, headers: Any, *rest: Any
        ) -> Any:
            # The status and headers of this task's last answer: a 5xx leaves a submit's outcome
            # unknown, whatever exception CCXT makes of its body; a 429's headers say how long
            # to wait. Concurrent calls each see their own (a context variable per task).
            _answer.set((code, dict(headers or {})))
            return answered(code, reason, url, method, headers, *rest)

        exchange.on_rest_response = remember
        self._tap(exchange)
        if self._sandbox:
            exchange.set_sandbox_mode(True)
        if self._base_url is not None:
            self._point_at(exchange, self._base_url.rstrip("/"))
        if self._stream_url is not None:
            self._point_stream_at(exchange, self._stream_url.rstrip("/"))
        return exchange


def _raise_if_cancelled() -> None:
    """Raises CancelledError when the running task is being cancelled (an error caught instead
    of the cancel must not keep a loop that is being stopped going)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _rules_problem(order: VenueOrder, symbol: str, rules: Rules) -> str:
    """Why the order breaks the symbol's rules, or ""."""
    quantity = format_decimal(order.quantity)
    if order.quantity <= 0 or (rules.step and not is_multiple(order.quantity, rules.step)):
        return f"quantity {quantity} is not a positive multiple of {symbol}'s step {rules.step}"
    if rules.min_quantity is not None and order.quantity < rules.min_quantity:
        least = format_decimal(rules.min_quantity)
        return f"quantity {quantity} is below {symbol}'s minimum quantity {least}"
    if rules.max_quantity is not None and order.quantity > rules.max_quantity:
        most = format_decimal(rules.max_quantity)
        return f"quantity {quantity} is above {symbol}'s maximum quantity {most}"
    if order.trigger_price is not None:
        problem = _price_problem("trigger price", order.trigger_price, symbol, rules)
        if problem:
            return problem
    priced = order.order_type in (T.ORDER_TYPE_LIMIT, T.ORDER_TYPE_STOP_LIMIT)
    if not priced and order.protection_price is None:
        return ""
    price = _priced(order)
    problem = _price_problem("limit price", price, symbol, rules)
    if problem or price is None:
        return problem
    notional = multiply(order.quantity, price)
    if rules.min_notional is not None and notional < rules.min_notional:
        least = format_decimal(rules.min_notional)
        return (
            f"order value {format_decimal(notional)} is below {symbol}'s minimum order value "
            f"{least}"
        )
    return ""


def _price_problem(what: str, price: Decimal | None, symbol: str, rules: Rules) -> str:
    """Why a price breaks the symbol's tick or fixed bounds, or ""."""
    tick = rules.tick
    if price is None or price <= 0 or (tick and not is_multiple(price, tick)):
        shown = format_decimal(price)
        return f"{what} {shown} is not a positive multiple of {symbol}'s tick {tick}"
    if rules.min_price is not None and price < rules.min_price:
        least = format_decimal(rules.min_price)
        return f"{what} {format_decimal(price)} is below {symbol}'s minimum price {least}"
    if rules.max_price is not None and price > rules.max_price:
        most = format_decimal(rules.max_price)
        return f"{what} {format_decimal(price)} is above {symbol}'s maximum price {most}"
    return ""


def _priced(order: VenueOrder) -> Decimal | None:
    """The price an order is sent at: its limit (also a stop-limit's), or a market order's
    protection price (sent as a limit IOC); None for a plain market or stop-market order."""
    if order.order_type in (T.ORDER_TYPE_LIMIT, T.ORDER_TYPE_STOP_LIMIT):
        return order.limit_price
    if order.order_type == T.ORDER_TYPE_MARKET:
        return order.protection_price
    return None


def _venue_order(view: OrderView, instrument: str) -> VenueOrder:
    """An order as the exchange shows it, for one we did not send in this process."""
    return VenueOrder(
        order_id=view.order_id,
        account_id="",
        instrument=instrument,
        side=view.side,
        order_type=view.order_type,
        time_in_force=view.time_in_force,
        quantity=view.quantity,
        limit_price=view.price or None,
    )


def modified(order: VenueOrder, quantity: Decimal | None, price: Decimal | None) -> VenueOrder:
    """The order with its new total quantity and limit (None keeps each)."""
    return replace(
        order,
        quantity=order.quantity if quantity is None else quantity,
        limit_price=order.limit_price if price is None else price,
    )


def _id_order(venue_order_id: str) -> tuple[int, str]:
    """Numeric ids in number order, others as text."""
    return (int(venue_order_id), "") if venue_order_id.isdigit() else (0, venue_order_id)


def dec(text: Any, what: str = "a number") -> Decimal:
    """A decimal string from an exchange's JSON (never a float)."""
    if isinstance(text, float):
        raise MalformedAnswer(
            f"a float where the exchange sends decimal strings ({what}): {text!r}"
        )
    try:
        return Decimal(str(text))
    except InvalidOperation as error:
        raise MalformedAnswer(f"{what} is not a decimal: {text!r}") from error


def from_ms(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    return datetime.fromtimestamp(int(value) / 1000, UTC)


def need(info: Any, key: str) -> Any:
    """A field the exchange's JSON must have."""
    if not isinstance(info, dict) or info.get(key) is None:
        raise MalformedAnswer(f"the exchange's answer has no {key!r}: {str(info)[:200]}")
    return info[key]


def __getattr__(name: str) -> Any:
    """`from execution_router.venues.ccxt_client import CcxtBinanceSpotClient` still works
    (it lives in venues/binance.py, which imports this module)."""
    if name == "CcxtBinanceSpotClient":
        from execution_router.venues.binance import CcxtBinanceSpotClient

        return CcxtBinanceSpotClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
