"""Execution through a QuantConnect live algorithm, over QuantConnect's REST API v2: the
execution-client template (venues/base.py), chosen by an `execution.venues.<name>` block of
`kind: quantconnect` (its poll interval and lost-submit window are that block's
`poll_interval_ms` and `lost_submit_window_ms`; the constructor's keywords below).

The algorithm runs on QuantConnect's cloud; we never talk to its brokerage. An order goes to it
as a live command, and what became of it is read back from its live orders.

Choices, and why:
- **Orders are live commands** (`/live/commands/create`): LEAN's `OrderCommand` (`$type`
  `OrderCommand`, with ticker, security type and market, the order type, the signed quantity,
  the limit price, and our order id as its `tag`). Decimals go as decimal strings, as the API's
  own example sends the quantity, so nothing is rounded through a float. MARKET and GTC LIMIT
  orders only: the command carries no time in force, no worst price, no post-only flag and no
  display quantity, so orders that need one are refused with a reason, never sent without it.
- **The API's answer to a command is only "delivered"** (`success`), not what the algorithm
  did with it. ACCEPTED is reported when the live orders (`/live/orders/read`) show an order
  with our tag (REJECTED when LEAN shows it `Invalid`, with its event's message). QuantConnect
  documents that snapshot as updated "about every 10 minutes": acknowledgements and fills are
  as late as that on the real service (the fake shows orders at once).
- **Fills are polled**: every `poll_interval_s` the poller reads the live orders (pages of
  `page_size`) when we follow any order, finds ours by tag, and reports each fill event
  (`status` filled/partiallyFilled, by its event id, so each is reported once, with LEAN's
  `fillQuantity`, `fillPrice` and `orderFeeAmount` read as exact decimals: the JSON is parsed
  with `parse_float=Decimal`). The trade id is `<LEAN order id>-<event id>`. A fee in another
  currency than the fill price's is reported as 0, the fee and its currency in the message.
- **No order is sent twice.** A second submit of an order id we sent is not sent. A submit whose
  answer was lost (a timeout, a dropped connection, a 5xx, an answer we cannot read), or that the
  router may have made before a restart, may have been delivered: it is looked up by tag in the live
  orders, and sent again only when a listing read once `lost_submit_window_s` had passed since it
  was sent still has no such order (set it to the snapshot's period plus the command's delivery: 900
  s by default). At most `max_submit_attempts` sends; then it is reported REJECTED, not sent again.
  A 429 was not applied: the adapter waits its Retry-After (at most `max_retry_after_s`) and sends
  again. Two orders with one tag (which this rule should never make) are counted and logged.
- **Cancels** are LEAN's `CancelOrderCommand` by LEAN order id, which we learn from the live
  orders: a cancel of an order not shown yet waits until it is. The answer again only says
  "delivered": CANCELED (with the request id) is reported when the live orders show the order
  canceled, CANCEL_REJECTED when they show it finished otherwise. A cancel that cannot be
  delivered is CANCEL_REJECTED with the reason (the order's state still follows the live orders).
- **Modifies are rejected** (the template's default): LEAN's `UpdateOrderCommand` takes a whole
  number quantity and its outcome is only visible in the same late snapshot.
- **The emergency path**: `liquidate()` (`/live/update/liquidate`: LEAN cancels the open orders
  and closes every holding) and `stop_algorithm()` (`/live/update/stop`). Both raise
  `QuantConnectError` with QuantConnect's reason when refused or not delivered.
- **Garbage is counted, never guessed**: an answer that is not JSON, lacks a field, or shows an
  unknown status is logged and counted (`reconciliation_problems`); the order it concerned
  keeps the state we last knew, and the next poll reads again.
- **Authentication** as documented: HTTP basic with the user id and the SHA-256 hex of
  "<api token>:<unix time>", and that time in a `Timestamp` header, fresh for every request.
  The token is never logged, nor the hash, nor the Authorization header.
- **One path for every REST call** (`_request`, marked repeatable for reads and cancels, not
  for order commands and liquidation), through the venue's `guard` when one is given
  (resilience.py's VenueGuard: rate limit, circuit breaker, retries); `TRANSIENT` is what it
  should count as a transport failure. One `requests.Session` (pooled connections) per thread.
- **Restarts**: `open_orders` reports every open order with a tag, and the poller follows from
  then on those of a mapped ticker (ours sent before a restart; also any the algorithm placed
  itself with a tag); `fills_since` replays the fills of every tagged order.
- **Not yet:** orders the algorithm places itself (and liquidation's) are not reported (they
  carry no tag of ours); each poll reads every order of the deployment from the first (no
  paging from the last one seen); `fills_since` reads the whole list too; no websocket or
  notification push from the algorithm instead of the snapshot.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import requests
from trading.v1 import events_pb2, types_pb2
from trading_core.decimals import ZERO, format_decimal, multiply

from execution_router.domain.venue_types import Report, VenueOrder
from execution_router.venues.base import (
    ExecutionClient,
    ReportChannel,
    ReportSink,
    count_attempt,
)
from execution_router.venues.resilience import VenueBusy, VenueGuard, VenueUnavailable

log = logging.getLogger(__name__)

T = types_pb2
R = TypeVar("R")
BASE_URL = "https://www.quantconnect.com/api/v2"

# LEAN's OrderStatus, as the live orders show it (integers; the older reference shows names).
_STATUS_CODES = {
    0: "new",
    1: "submitted",
    2: "partiallyfilled",
    3: "filled",
    5: "canceled",
    6: "none",
    7: "invalid",
    8: "cancelpending",
    9: "updatesubmitted",
}
_STATUS_NAMES = frozenset(_STATUS_CODES.values())
_OPEN = frozenset(
    {"new", "submitted", "partiallyfilled", "none", "cancelpending", "updatesubmitted"}
)
_FILL_EVENTS = frozenset({"filled", "partiallyfilled"})
_DIRECTIONS = {0: T.SIDE_BUY, 1: T.SIDE_SELL, "buy": T.SIDE_BUY, "sell": T.SIDE_SELL}
_ORDER_TYPES = {0: T.ORDER_TYPE_MARKET, 1: T.ORDER_TYPE_LIMIT}


class QuantConnectError(Exception):
    """QuantConnect refused the request (`success: false`, a 4xx): it was not applied."""


class AnswerLost(Exception):
    """No usable answer (timeout, dropped connection, 5xx): the request may have been applied."""


class AnswerTimedOut(AnswerLost):
    """No answer within the call's timeout (a lost answer)."""


class RateLimited(Exception):
    """A 429: not applied; may be sent again after `retry_after_s`."""

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"rate limited by QuantConnect (Retry-After {retry_after_s:g} s)")
        self.retry_after_s = retry_after_s


class GarbageAnswer(Exception):
    """An answer that is not the documented JSON (malformed, a field missing, an unknown
    status); for a command, whether it was applied is unknown."""


_SUBMIT = events_pb2.VENUE_OPERATION_SUBMIT
_CANCEL = events_pb2.VENUE_OPERATION_CANCEL
_QUERY_OPEN_ORDERS = events_pb2.VENUE_OPERATION_QUERY_OPEN_ORDERS
_QUERY_FILLS = events_pb2.VENUE_OPERATION_QUERY_FILLS

# What a venue guard should count as a transport failure (its circuit breaker, its retries).
TRANSIENT: tuple[type[BaseException], ...] = (AnswerLost,)


@dataclass(frozen=True)
class _Fill:
    event_id: int
    quantity: Decimal  # unsigned
    price: Decimal
    fee: Decimal
    fee_currency: str
    price_currency: str
    time: datetime | None


@dataclass(frozen=True)
class _LiveOrder:
    """One order of the live orders, checked whole before anything is reported from it."""

    lean_id: int
    tag: str
    ticker: str
    status: str
    side: T.Side.ValueType
    quantity: Decimal  # unsigned
    order_type: T.OrderType.ValueType
    limit_price: Decimal | None
    fills: tuple[_Fill, ...]
    message: str  # the last event's message (why LEAN found it invalid)


@dataclass
class _Working:
    """An order we sent, and what we reported of it."""

    order: VenueOrder
    sent_at: float  # time.monotonic() of its last send
    lean_id: int | None = None
    accepted: bool = False
    done: bool = False
    cumulative_quantity: Decimal = ZERO
    filled_notional: Decimal = ZERO
    events: set[int] = field(default_factory=set)
    # A cancel of ours: its request id, and whether it has been delivered.
    cancel_request: str | None = None
    cancel_sent: bool = False
    overdue_logged: bool = False
    problems: set[str] = field(default_factory=set)  # counted already

    @property
    def average_price(self) -> Decimal | None:
        if not self.cumulative_quantity:
            return None
        return self.filled_notional / self.cumulative_quantity

    def report(
        self, execution_type: T.ExecutionType.ValueType, message: str = "", request_id: str = ""
    ) -> Report:
        return Report(
            execution_type=execution_type,
            order_id=self.order.order_id,
            venue_order_id="" if self.lean_id is None else str(self.lean_id),
            side=self.order.side,
            cumulative_quantity=self.cumulative_quantity,
            leaves_quantity=ZERO if self.done else self.order.quantity - self.cumulative_quantity,
            average_price=self.average_price,
            message=message,
            request_id=request_id,
            time=datetime.now(UTC),
            limit_price=self.order.limit_price,
        )


@dataclass
class _Lost:
    """A submit whose answer was lost: looked up before it is ever sent again."""

    order: VenueOrder
    sent_at: float
    attempts: int


class QuantConnectClient(ExecutionClient):
    """A QuantConnect live algorithm through REST API v2; see the module docstring."""

    name = "quantconnect"
    kind = "quantconnect"
    timeouts = (AnswerTimedOut,)
    rate_limits = (RateLimited,)

    def __init__(
        self,
        emit: ReportSink,
        *,
        user_id: str,
        api_token: str,
        project_id: int,
        symbols: Mapping[str, str],
        market: str = "coinbase",
        security_type: str = "crypto",
        base_url: str = BASE_URL,
        poll_interval_s: float = 5.0,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 10.0,
        lost_submit_window_s: float = 900.0,
        overdue_after_s: float = 1800.0,
        max_submit_attempts: int = 3,
        max_retry_after_s: float = 10.0,
        rate_limit_attempts: int = 3,
        page_size: int = 100,
        guard: VenueGuard | None = None,
    ) -> None:
        """`symbols` maps our instruments to the algorithm's tickers, e.g. {"BTC-USD": "BTCUSD"};
        `market` and `security_type` are LEAN's for those tickers."""
        super().__init__(emit, guard)
        if not api_token or not str(user_id):
            raise ValueError("quantconnect needs a user id and an api token")
        self._user_id = str(user_id)
        self._token = api_token
        self._project_id = project_id
        self.symbols = dict(symbols)
        self._instruments = {ticker: ours for ours, ticker in symbols.items()}
        self._market = market
        self._security_type = security_type
        self._base_url = base_url.rstrip("/")
        self._poll_interval_s = poll_interval_s
        self._timeouts = (connect_timeout_s, read_timeout_s)
        self._lost_window_s = lost_submit_window_s
        self._overdue_after_s = overdue_after_s
        self._max_submit_attempts = max_submit_attempts
        self._max_retry_after_s = max_retry_after_s
        self._rate_limit_attempts = rate_limit_attempts
        self._page_size = page_size
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.RLock()
        self._orders: dict[str, _Working] = {}
        self._lost: dict[str, _Lost] = {}
        # Orders whose command is on its way now (a send from the worker or the poller).
        self._sending: set[str] = set()
        # Cancels of orders not known to be at QuantConnect yet (lost or in flight).
        self._pending_cancels: dict[str, str] = {}
        self._stopping = threading.Event()
        self._poll_thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def report_channel(self) -> ReportChannel:
        return "polled"  # the live orders' snapshot, read every poll interval

    def start(self) -> None:
        """Starts the poller and checks the credentials (a refusal is logged, not raised: the
        poller keeps trying)."""
        self._stopping.clear()
        self._poll_thread = threading.Thread(
            target=self._poll_loop, name="venue-quantconnect-poller", daemon=True
        )
        self._poll_thread.start()
        try:
            self._request("/authenticate", {}, repeatable=True)
        except Exception as error:
            log.error("quantconnect: the credentials were not accepted: %s", _why(error))

    def stop(self) -> None:
        self._stopping.set()
        if self._poll_thread is not None:
            self._poll_thread.join(timeout=sum(self._timeouts) + self._poll_interval_s + 1)
            self._poll_thread = None
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()

    @property
    def reconciliation_problems(self) -> int:
        """How many answers could not be read as documented (garbage, a missing field, an
        unknown status, two orders under one tag, an order not showing up in time)."""
        return self.problems

    # -- the emergency path -------------------------------------------------------------------

    def liquidate(self) -> None:
        """Liquidates the live algorithm: LEAN cancels its open orders and closes every holding.
        Not repeated on a lost answer (a second liquidation could sell again what the first is
        selling); raises QuantConnectError when refused or not known to be delivered."""
        self._emergency("/live/update/liquidate", "liquidate", repeatable=False)

    def stop_algorithm(self) -> None:
        """Stops the live algorithm (open orders stay at the brokerage as they are). Raises
        QuantConnectError when refused or not known to be delivered."""
        self._emergency("/live/update/stop", "stop", repeatable=True)

    def _emergency(self, path: str, what: str, *, repeatable: bool) -> None:
        try:
            self._request(path, {"projectId": self._project_id}, repeatable=repeatable)
        except QuantConnectError as error:
            log.error("quantconnect: %s of project %s refused: %s", what, self._project_id, error)
            raise
        except Exception as error:
            message = f"{what} of project {self._project_id}: the answer was lost ({_why(error)})"
            log.error("quantconnect: %s; check the algorithm", message)
            raise QuantConnectError(message) from error
        log.warning("quantconnect: %s of project %s delivered", what, self._project_id)

    # -- the template -------------------------------------------------------------------------

    def submit_order(self, order: VenueOrder) -> None:
        with self._lock:
            known = order.order_id in self._orders or order.order_id in self._sending
            lost = order.order_id in self._lost
            if not (known or lost):
                problem = self._problem(order)
                if not problem:
                    self._sending.add(order.order_id)
        if known or lost:
            state = "its answer was lost: it is being looked up" if lost else "it was sent"
            log.info("quantconnect: order %s not sent again (%s)", order.order_id, state)
            return
        if problem:
            self._reject(order, problem)
            return
        self._send(order, attempts=0)

    def submit_after_restart(self, order: VenueOrder) -> None:
        """A command whose answer was lost (in the router's restart): looked up by tag in the
        live orders, sent only when they still have none `lost_submit_window_s` on."""
        with self._lock:
            if order.order_id not in self._orders:
                self._lost.setdefault(order.order_id, _Lost(order, time.monotonic(), attempts=1))

    def cancel_order(self, order_id: str, request_id: str) -> None:
        rejected = T.EXECUTION_TYPE_CANCEL_REJECTED
        with self._lock:
            working = self._orders.get(order_id)
            if working is None and (order_id in self._lost or order_id in self._sending):
                # Not known to be there yet: the cancel waits for the order to show up.
                self._pending_cancels[order_id] = request_id
                return
            if working is None:
                why = "quantconnect cannot cancel: no order of ours with this id"
                self.emit(
                    Report.nothing_filled(rejected, order_id, T.SIDE_UNSPECIFIED, why, request_id)
                )
                return
            if working.done:
                self.emit(
                    working.report(
                        rejected, "quantconnect cannot cancel: it has already finished", request_id
                    )
                )
                return
            working.cancel_request, working.cancel_sent = request_id, False
            lean_id = working.lean_id
        if lean_id is not None:
            self._send_cancel(working)
        # else: sent by the poller once the live orders show the order's LEAN id

    def open_orders(self) -> list[Report]:
        reports = []
        for live in self.recorded(_QUERY_OPEN_ORDERS, "", self._read_orders):
            if live.status not in _OPEN or not live.tag or live.status == "none":
                continue
            self._follow(live)
            with self._lock:
                cumulative, average = _totals(live.fills)
                reports.append(
                    Report(
                        execution_type=(
                            T.EXECUTION_TYPE_PARTIALLY_FILLED
                            if cumulative
                            else T.EXECUTION_TYPE_ACCEPTED
                        ),
                        order_id=live.tag,
                        venue_order_id=str(live.lean_id),
                        side=live.side,
                        cumulative_quantity=cumulative,
                        leaves_quantity=live.quantity - cumulative,
                        average_price=average,
                        limit_price=live.limit_price,
                        time=datetime.now(UTC),
                    )
                )
        return reports

    def fills_since(self, moment: datetime) -> list[Report]:
        """Every fill since `moment` of the orders with a tag, replayed from each order's first
        fill (for the cumulative quantity each left)."""
        reports: list[Report] = []
        for live in self.recorded(_QUERY_FILLS, "", self._read_orders):
            if not live.tag:
                continue
            replay = _Working(_venue_order(live, self._instruments.get(live.ticker, "")), 0.0)
            replay.lean_id = live.lean_id
            for fill in live.fills:
                report = self._fill(replay, fill)
                if report.time is not None and report.time >= moment:
                    reports.append(report)
        return sorted(reports, key=lambda r: r.time or moment)

    # -- submitting ---------------------------------------------------------------------------

    def _problem(self, order: VenueOrder) -> str:
        """Why the order cannot go as an OrderCommand, or ""."""
        if order.instrument not in self.symbols:
            known = ", ".join(sorted(self.symbols)) or "none"
            return (
                f"instrument {order.instrument!r} is not mapped to a quantconnect ticker; "
                f"mapped: {known}"
            )
        if not order.order_id or len(order.order_id) > 100:
            return "the order id must be 1 to 100 characters (it is the LEAN order's tag)"
        if order.side not in (T.SIDE_BUY, T.SIDE_SELL):
            return "side must be BUY or SELL"
        if order.quantity <= 0:
            return f"quantity must be positive, not {format_decimal(order.quantity)}"
        return _form_problem(order)

    def _command(self, order: VenueOrder) -> dict[str, Any]:
        signed = order.quantity if order.side == T.SIDE_BUY else -order.quantity
        limit = order.order_type == T.ORDER_TYPE_LIMIT
        return {
            "$type": "OrderCommand",
            "ticker": self.symbols[order.instrument],
            "security_type": self._security_type,
            "market": self._market,
            "order_type": "limit" if limit else "market",
            "quantity": format_decimal(signed),
            "limit_price": format_decimal(order.limit_price) if limit else "0",
            "stop_price": "0",
            "tag": order.order_id,
        }

    def _send(self, order: VenueOrder, attempts: int) -> None:
        """Sends the order's command (the caller marked it `_sending`); a lost answer leaves
        it to be looked up by tag."""
        try:
            self._send_command(order, attempts)
        finally:
            with self._lock:
                self._sending.discard(order.order_id)

    def _send_command(self, order: VenueOrder, attempts: int) -> None:
        body = {"projectId": self._project_id, "command": self._command(order)}
        for attempt in range(1, self._rate_limit_attempts + 1):
            sent_at = time.monotonic()
            try:
                self.recorded(
                    _SUBMIT,
                    order.order_id,
                    lambda: self._request(
                        "/live/commands/create", body, repeatable=False, orders=1
                    ),
                )
            except RateLimited as error:  # refused, not applied: safe to send again
                if attempt == self._rate_limit_attempts:
                    self._reject(order, f"quantconnect rate limit: {error}; not sent")
                    return
                wait = min(max(error.retry_after_s, 0.0), self._max_retry_after_s)
                log.warning(
                    "quantconnect: rate limited; order %s again in %gs", order.order_id, wait
                )
                if self._stopping.wait(wait):
                    self._reject(order, "the adapter stopped while rate limited: not sent")
                    return
                continue
            except QuantConnectError as error:
                self._reject(order, f"quantconnect refused the order command: {error}")
                return
            except (VenueBusy, VenueUnavailable) as error:  # the guard sent nothing
                self._reject(order, f"not sent: {error}")
                return
            except Exception as error:  # timeout, 5xx, dropped, garbage: maybe delivered
                log.warning(
                    "quantconnect: the answer to order %s's command was lost (%s): it is looked "
                    "up by tag before it is ever sent again",
                    order.order_id,
                    _why(error),
                )
                with self._lock:
                    self._lost[order.order_id] = _Lost(order, sent_at, attempts + 1)
                return
            with self._lock:
                working = self._orders[order.order_id] = _Working(order, sent_at)
                working.cancel_request = self._pending_cancels.pop(order.order_id, None)
            log.info("quantconnect: order %s delivered to the algorithm", order.order_id)
            return

    def _reject(self, order: VenueOrder, message: str) -> None:
        with self._lock:
            self._lost.pop(order.order_id, None)
            cancel = self._pending_cancels.pop(order.order_id, None)
        kind = T.EXECUTION_TYPE_REJECTED
        self.emit(Report.nothing_filled(kind, order.order_id, order.side, message))
        if cancel is not None:
            why = "quantconnect cannot cancel: the order was rejected"
            rejected = T.EXECUTION_TYPE_CANCEL_REJECTED
            self.emit(Report.nothing_filled(rejected, order.order_id, order.side, why, cancel))

    # -- cancels ------------------------------------------------------------------------------

    def _send_cancel(self, working: _Working) -> None:
        with self._lock:
            request_id, lean_id = working.cancel_request, working.lean_id
            if request_id is None or lean_id is None or working.cancel_sent or working.done:
                return
            working.cancel_sent = True
        body = {
            "projectId": self._project_id,
            "command": {"$type": "CancelOrderCommand", "order_id": lean_id},
        }
        try:
            # Repeatable: a second cancel of one LEAN order changes nothing.
            self.recorded(
                _CANCEL,
                working.order.order_id,
                lambda: self._request("/live/commands/create", body, repeatable=True),
            )
        except Exception as error:
            with self._lock:
                working.cancel_request = None
                rejected = T.EXECUTION_TYPE_CANCEL_REJECTED
                message = (
                    f"quantconnect cannot cancel: the cancel command was not delivered "
                    f"({_why(error)}); the order's state follows from the live orders"
                )
                self.emit(working.report(rejected, message, request_id))

    # -- the poller ---------------------------------------------------------------------------

    def _poll_loop(self) -> None:
        while not self._stopping.wait(self._poll_interval_s):
            try:
                self._poll_once()
            except RateLimited as error:
                self._stopping.wait(min(error.retry_after_s, self._max_retry_after_s))
            except Exception as error:
                log.warning("quantconnect: polling the live orders failed: %s", _why(error))

    def _poll_once(self) -> None:
        with self._lock:
            following = any(not w.done for w in self._orders.values()) or bool(self._lost)
        if not following:
            return
        asked = time.monotonic()
        listed = self._read_orders()
        by_tag: dict[str, _LiveOrder] = {}
        for live in listed:
            if not live.tag:
                continue
            first = by_tag.setdefault(live.tag, live)
            if first is not live and self._is_ours(live.tag):
                self.count_problem(
                    f"two orders with tag {live.tag} (LEAN ids {first.lean_id} and "
                    f"{live.lean_id}): following the first"
                )
        with self._lock:
            lost = list(self._lost.values())
            working = [w for w in self._orders.values() if not w.done]
        for entry in lost:
            self._resolve_lost(entry, by_tag.get(entry.order.order_id), asked)
        for w in working:
            shown = by_tag.get(w.order.order_id)
            if shown is None:
                self._not_shown(w, asked)
                continue
            self._apply(w, shown)
            self._send_cancel(w)

    def _resolve_lost(self, entry: _Lost, live: _LiveOrder | None, asked: float) -> None:
        order = entry.order
        if live is not None:
            with self._lock:
                if self._lost.pop(order.order_id, None) is None:
                    return
                working = self._orders.setdefault(order.order_id, _Working(order, entry.sent_at))
                request_id = self._pending_cancels.pop(order.order_id, None)
                if request_id is not None:
                    working.cancel_request = request_id
            log.info("quantconnect: order %s found in the live orders: adopted", order.order_id)
            self._apply(working, live)
            self._send_cancel(working)
            return
        if asked - entry.sent_at < self._lost_window_s:
            return  # it may yet show up: look again
        with self._lock:
            if self._lost.pop(order.order_id, None) is None:
                return
            cancel = self._pending_cancels.pop(order.order_id, None)
            resend = cancel is None and entry.attempts < self._max_submit_attempts
            if resend:
                self._sending.add(order.order_id)
        if cancel is not None:
            canceled = T.EXECUTION_TYPE_CANCELED
            message = "canceled before it reached quantconnect: not sent again"
            self.emit(Report.nothing_filled(canceled, order.order_id, order.side, message, cancel))
            return
        if not resend:
            self._reject(
                order,
                f"quantconnect has no order with this tag after {entry.attempts} sends whose "
                "answers were lost: not sent again",
            )
            return
        log.warning(
            "quantconnect: order %s is not in the live orders %gs after its lost command: "
            "sending it again",
            order.order_id,
            self._lost_window_s,
        )
        self._send(order, attempts=entry.attempts)

    def _not_shown(self, working: _Working, asked: float) -> None:
        """A delivered command whose order the live orders do not show (yet)."""
        with self._lock:
            overdue = (
                asked - working.sent_at >= self._overdue_after_s and not working.overdue_logged
            )
            if overdue:
                working.overdue_logged = True
        if overdue:
            self.count_problem(
                f"order {working.order.order_id} was delivered {self._overdue_after_s:g}s ago "
                "and the live orders still do not show it (still looked for)"
            )

    # -- what the algorithm did with an order --------------------------------------------------

    def _apply(self, working: _Working, live: _LiveOrder) -> None:
        """Reports what the live order shows that we did not report yet: acceptance (or
        LEAN's rejection), new fills, then its end."""
        with self._lock:
            if working.done:
                return
            working.lean_id = live.lean_id
            if live.quantity != working.order.quantity or live.side != working.order.side:
                self._order_problem(
                    working,
                    f"shows {format_decimal(live.quantity)} {T.Side.Name(live.side)}, "
                    "not what we sent",
                )
            if not working.accepted:
                if live.status == "invalid":
                    working.done = True
                    reason = live.message or "no reason given"
                    rejected = T.EXECUTION_TYPE_REJECTED
                    self.emit(working.report(rejected, f"LEAN: invalid order: {reason}"))
                    self._answer_cancel(working, "it was rejected")
                    return
                if live.status in ("new", "none"):
                    return  # not processed yet
                working.accepted = True
                self.emit(working.report(T.EXECUTION_TYPE_ACCEPTED))
            for fill in live.fills:
                if fill.event_id not in working.events:
                    self.emit(self._fill(working, fill))
            self._apply_end(working, live)

    def _apply_end(self, working: _Working, live: _LiveOrder) -> None:
        """Reports the live order's end, once (called under the lock)."""
        if live.status == "canceled" and not working.done:
            working.done = True
            request_id = working.cancel_request or ""
            message = "" if request_id else "quantconnect: canceled by the algorithm"
            working.cancel_request = None
            self.emit(working.report(T.EXECUTION_TYPE_CANCELED, message, request_id))
        elif live.status == "filled" and not working.done:
            self._order_problem(
                working,
                f"shows filled, its fill events {format_decimal(working.cumulative_quantity)}"
                f" of {format_decimal(working.order.quantity)}",
            )
        elif live.status == "invalid":
            self._order_problem(working, f"accepted, now shown invalid: {live.message}")
        if working.done:
            self._answer_cancel(working, f"it has already finished ({live.status})")

    def _answer_cancel(self, working: _Working, why: str) -> None:
        if working.cancel_request is not None:
            request_id, working.cancel_request = working.cancel_request, None
            rejected = T.EXECUTION_TYPE_CANCEL_REJECTED
            self.emit(working.report(rejected, f"quantconnect cannot cancel: {why}", request_id))

    def _fill(self, working: _Working, fill: _Fill) -> Report:
        working.events.add(fill.event_id)
        working.cumulative_quantity += fill.quantity
        working.filled_notional += multiply(fill.quantity, fill.price)
        done = working.cumulative_quantity >= working.order.quantity
        if done:
            working.done = True
        fee, message = fill.fee, ""
        if fill.fee and fill.fee_currency != fill.price_currency:
            note = f"fee {format_decimal(fill.fee)} {fill.fee_currency}"
            fee, message = ZERO, note + " (not in the price's currency: fee reported as 0)"
        return Report(
            execution_type=T.EXECUTION_TYPE_FILLED if done else T.EXECUTION_TYPE_PARTIALLY_FILLED,
            order_id=working.order.order_id,
            venue_order_id=str(working.lean_id),
            side=working.order.side,
            trade_id=f"{working.lean_id}-{fill.event_id}",
            last_quantity=fill.quantity,
            last_price=fill.price,
            fee=fee,
            cumulative_quantity=working.cumulative_quantity,
            leaves_quantity=max(working.order.quantity - working.cumulative_quantity, ZERO),
            average_price=working.average_price,
            message=message,
            time=fill.time,
        )

    def _follow(self, live: _LiveOrder) -> _Working | None:
        """The order we follow under this tag; one sent before a restart is adopted when its
        ticker is mapped (the poller follows it from now on)."""
        instrument = self._instruments.get(live.ticker)
        with self._lock:
            working = self._orders.get(live.tag)
            if working is None and instrument is not None and live.tag not in self._lost:
                working = _Working(_venue_order(live, instrument), time.monotonic())
                working.lean_id, working.accepted = live.lean_id, True
                for fill in live.fills:
                    self._fill(working, fill)
                working.done = False
                self._orders[live.tag] = working
            return working

    def _is_ours(self, tag: str) -> bool:
        with self._lock:
            return tag in self._orders or tag in self._lost

    # -- reading the live orders --------------------------------------------------------------

    def _read_orders(self) -> list[_LiveOrder]:
        """Every order of the live deployment, page by page; an order that cannot be read is
        counted and left out (its state stays what we knew)."""
        orders: list[_LiveOrder] = []
        start = 0
        while True:
            body = {"projectId": self._project_id, "start": start, "end": start + self._page_size}
            answer = self._request("/live/orders/read", body, repeatable=True)
            page = answer.get("orders")
            if not isinstance(page, list):
                raise self._garbage(f"/live/orders/read: no orders list: {_excerpt(answer)}")
            for raw in page:
                try:
                    orders.append(_live_order(raw))
                except GarbageAnswer as error:
                    self.count_problem(f"an order of /live/orders/read: {error}")
            if len(page) < self._page_size:
                return orders
            start += self._page_size

    # -- the one path of every REST call ------------------------------------------------------

    def _request(
        self, path: str, body: dict[str, Any], *, repeatable: bool, orders: int = 0
    ) -> dict[str, Any]:
        """POSTs `body` to `path` (through the guard when there is one); the answer's JSON, its
        numbers as Decimal. Raises QuantConnectError, RateLimited, AnswerLost or GarbageAnswer."""

        def attempt() -> dict[str, Any]:
            count_attempt()
            return self._post(path, body)

        if self.guard is None:
            return attempt()
        return self.guard.call(attempt, orders=orders, repeatable=repeatable)

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self._session().post(
                self._base_url + path,
                data=json.dumps(body),
                headers=self._auth_headers(),
                timeout=self._timeouts,
            )
        except requests.Timeout as error:
            raise AnswerTimedOut(f"{path}: no answer within {self._timeouts[1]:g}s") from error
        except requests.RequestException as error:
            raise AnswerLost(f"{path}: {type(error).__name__}") from error
        status = response.status_code
        if status == 429:
            raise RateLimited(_retry_after(response.headers.get("Retry-After")))
        if status >= 500:
            raise AnswerLost(f"{path}: HTTP {status}")
        try:
            answer = json.loads(response.text, parse_float=Decimal)
        except ValueError as error:
            if status in (401, 403):
                raise QuantConnectError(f"{path}: HTTP {status}: credentials refused") from error
            raise self._garbage(
                f"{path}: HTTP {status}, not JSON: {response.text[:80]!r}"
            ) from error
        if not isinstance(answer, dict) or not isinstance(answer.get("success"), bool):
            if status in (401, 403):
                raise QuantConnectError(f"{path}: HTTP {status}: credentials refused")
            raise self._garbage(f"{path}: HTTP {status}, no success flag: {_excerpt(answer)}")
        if not answer["success"] or status >= 400:
            errors = answer.get("errors")
            text = (
                "; ".join(str(e) for e in errors)
                if isinstance(errors, list) and errors
                else "no reason given"
            )
            raise QuantConnectError(f"{path}: HTTP {status}: {text}")
        return answer

    def _auth_headers(self) -> dict[str, str]:
        """A fresh timestamped hash per request, as QuantConnect documents: basic auth with the
        user id and sha256("<token>:<unix time>"), and the time in `Timestamp`."""
        stamp = str(int(time.time()))
        hashed = hashlib.sha256(f"{self._token}:{stamp}".encode()).hexdigest()
        basic = base64.b64encode(f"{self._user_id}:{hashed}".encode()).decode("ascii")
        return {
            "Authorization": f"Basic {basic}",
            "Timestamp": stamp,
            "Content-Type": "application/json",
            "Accept": "application/json",
        }

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def _order_problem(self, working: _Working, what: str) -> None:
        """Counts a problem of one order once, however many polls show it."""
        if what not in working.problems:
            working.problems.add(what)
            self.count_problem(f"order {working.order.order_id} ({working.lean_id}) {what}")

    def _garbage(self, what: str) -> GarbageAnswer:
        """Counts an answer that is not the documented JSON; the error to raise."""
        self.count_problem(what)
        return GarbageAnswer(what)


# -- reading QuantConnect's JSON ----------------------------------------------------------------


def _live_order(raw: Any) -> _LiveOrder:
    """One order of /live/orders/read, checked whole; GarbageAnswer names what is wrong."""
    if not isinstance(raw, dict):
        raise GarbageAnswer(f"not an object: {_excerpt(raw)}")
    lean_id = _int(_field(raw, "id"), "id")
    where = f"order {lean_id}"
    tag = _field(raw, "tag", where)
    if tag is None:
        tag = ""
    if not isinstance(tag, str):
        raise GarbageAnswer(f"{where}: tag is not a string: {_excerpt(tag)}")
    symbol = _field(raw, "symbol", where)
    ticker = symbol.get("value") if isinstance(symbol, dict) else None
    if not isinstance(ticker, str):
        raise GarbageAnswer(f"{where}: symbol has no value: {_excerpt(symbol)}")
    status = _status(_field(raw, "status", where), where)
    signed = _dec(_field(raw, "quantity", where), f"{where} quantity")
    direction = raw.get("direction")
    side = _DIRECTIONS.get(direction.lower() if isinstance(direction, str) else direction)
    if side is None:
        side = T.SIDE_BUY if signed > 0 else T.SIDE_SELL
    limit = raw.get("limitPrice")
    events = _field(raw, "events", where)
    if not isinstance(events, list):
        raise GarbageAnswer(f"{where}: events is not a list")
    fills: list[_Fill] = []
    message = ""
    for event in events:
        if not isinstance(event, dict):
            raise GarbageAnswer(f"{where}: an event is not an object")
        event_status = _status(_field(event, "status", where), where)
        text = event.get("message")
        message = text if isinstance(text, str) and text else message
        if event_status not in _FILL_EVENTS:
            continue
        quantity = abs(_dec(_field(event, "fillQuantity", where), f"{where} fillQuantity"))
        if not quantity:
            continue
        fills.append(
            _Fill(
                event_id=_int(_field(event, "id", where), f"{where} event id"),
                quantity=quantity,
                price=_dec(_field(event, "fillPrice", where), f"{where} fillPrice"),
                fee=abs(_dec(event.get("orderFeeAmount") or 0, f"{where} orderFeeAmount")),
                fee_currency=str(event.get("orderFeeCurrency") or ""),
                price_currency=str(event.get("fillPriceCurrency") or ""),
                time=_from_unix(event.get("time")),
            )
        )
    kind = raw.get("type")
    return _LiveOrder(
        lean_id=lean_id,
        tag=tag,
        ticker=ticker,
        status=status,
        side=side,
        quantity=abs(signed),
        order_type=_ORDER_TYPES.get(kind, T.ORDER_TYPE_UNSPECIFIED)
        if isinstance(kind, int)
        else T.ORDER_TYPE_UNSPECIFIED,
        limit_price=_dec(limit, f"{where} limitPrice") if limit else None,
        fills=tuple(sorted(fills, key=lambda f: f.event_id)),
        message=message,
    )


def _form_problem(order: VenueOrder) -> str:
    """Why the order's type and options cannot go as an OrderCommand, or ""."""
    if order.order_type == T.ORDER_TYPE_LIMIT:
        if order.limit_price is None or order.limit_price <= 0:
            return "a limit order needs a positive limit price"
        if order.time_in_force != T.TIME_IN_FORCE_GTC:
            name = T.TimeInForce.Name(order.time_in_force)
            return f"quantconnect's OrderCommand places GTC limit orders only, not {name}"
        if order.post_only:
            return "quantconnect's OrderCommand has no post-only flag"
    elif order.order_type == T.ORDER_TYPE_MARKET:
        if order.protection_price is not None:
            return "quantconnect's OrderCommand has no worst price for a market order"
    else:
        name = T.OrderType.Name(order.order_type)
        return f"quantconnect takes MARKET and LIMIT orders here, not {name}"
    if order.display_quantity is not None:
        return "quantconnect's OrderCommand has no display quantity (iceberg)"
    if order.expire_time is not None:
        return "quantconnect's OrderCommand has no expiry time"
    return ""


def _field(raw: dict[str, Any], name: str, where: str = "an order") -> Any:
    if name not in raw:
        raise GarbageAnswer(f"{where}: the field {name!r} is missing")
    return raw[name]


def _status(value: Any, where: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value in _STATUS_CODES:
        return _STATUS_CODES[value]
    if isinstance(value, str) and value.lower() in _STATUS_NAMES:
        return value.lower()
    raise GarbageAnswer(f"{where}: unknown status {_excerpt(value)}")


def _dec(value: Any, what: str) -> Decimal:
    """A number of QuantConnect's JSON, exactly (parsed with parse_float=Decimal)."""
    if isinstance(value, bool | float):
        raise GarbageAnswer(f"{what} is not an exact number: {value!r}")
    if isinstance(value, Decimal | int):
        return Decimal(value)
    if isinstance(value, str):
        try:
            number = Decimal(value)
        except InvalidOperation:
            raise GarbageAnswer(f"{what} is not a number: {_excerpt(value)}") from None
        if number.is_finite():
            return number
    raise GarbageAnswer(f"{what} is not a number: {_excerpt(value)}")


def _int(value: Any, what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise GarbageAnswer(f"{what} is not an integer: {_excerpt(value)}")


def _from_unix(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        return None
    return datetime.fromtimestamp(float(value), UTC)


def _totals(fills: tuple[_Fill, ...]) -> tuple[Decimal, Decimal | None]:
    quantity = sum((f.quantity for f in fills), ZERO)
    notional = sum((multiply(f.quantity, f.price) for f in fills), ZERO)
    return quantity, (notional / quantity if quantity else None)


def _venue_order(live: _LiveOrder, instrument: str) -> VenueOrder:
    """An order as the live orders show it, for one we did not send in this process."""
    return VenueOrder(
        order_id=live.tag,
        account_id="",
        instrument=instrument,
        side=live.side,
        order_type=live.order_type,
        time_in_force=T.TIME_IN_FORCE_GTC,
        quantity=live.quantity,
        limit_price=live.limit_price,
    )


def _retry_after(value: str | None) -> float:
    try:
        return float(value) if value is not None else 1.0
    except ValueError:
        return 1.0


def _excerpt(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:120] + "…"


def _why(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
