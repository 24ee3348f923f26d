"""The template every venue adapter implements, as NautilusTrader's adapter template does.

A venue adapter turns the router's orders into the venue's wire calls and the venue's answers
into `Report`s. The router owns ids, sequence numbers, the journal and the bus; the adapter
only talks to the venue.

Must implement:
- `submit_order(order)`: send a new order. `order.order_id` is the client order id the venue
  sees: the venue refuses a second order with the same id, so a retry never trades twice.
- `cancel_order(order_id, request_id)`: ask the venue to cancel. Its answer is a CANCELED
  report, or a CANCEL_REJECTED report when the venue cannot apply it (already finished,
  unknown), both carrying `request_id`.
- `open_orders()`: the orders the venue has open now, each as its latest report
  (cumulative quantity, average price), for reconciliation.
- `fills_since(moment)`: every fill since `moment`, for reconciliation after a restart.

May implement:
- `modify_order(order_id, request_id, quantity, limit_price)`: change a working order's total
  quantity or limit price (None keeps each), as a native amend or the venue's cancel-replace
  with the same client order id. Its answer is a MODIFIED report (cumulative and leaves
  quantity and the limit price as the venue now holds them) or a MODIFY_REJECTED one, both
  carrying `request_id`. By default every modify is rejected, naming the venue.
- `start()` / `stop()`: connect and disconnect (sessions, websockets).
- `lists(instrument)`: whether the venue trades the instrument (by default: its symbol map).
- `connected()`: whether its session is up (by default: yes).
- `on_quote(quote)`: market data, for a simulated venue that matches against it (set
  `wants_quotes`).
- `restore(orders)`: on start, the open orders the venue had (each with its last report): a
  simulated venue, whose book lives in the router's journal, puts them back; a network venue
  follows them again and reports what they did while the router was down (fills it reported
  before may be reported again: the router applies each trade id once, so a trade id must be
  unique at its venue).
- `submit_after_restart(order)`: on start, an order the router had taken but had no answer of
  when it stopped: it may have been sent. A network venue must not get it twice (an exchange
  takes a client order id again once its first order has finished): its adapter looks it up
  first, as a submit whose answer was lost. By default `submit_order` (a simulated venue, whose
  book lives in the router's journal, never had it).

Venue calls: a network adapter makes each call of an order (submit, cancel, modify, look-ups)
and reconciliation's queries through `recorded` (or `recorded_async`), which times it, tells how
it ended and hands a `VenueCall` to `record_call` (the router journals them: the warehouse's
venue_calls); its one door to the venue counts attempts with `count_attempt`. The polling that
follows orders while a venue pushes nothing is not recorded. The paper venue records nothing.

Resilience: a network venue sets `guard` (venues/resilience.py) and makes every request
through it. `submit_order` may raise `VenueUnavailable` or `VenueBusy` only when nothing of
that order reached the venue (the router then reports it REJECTED with the reason); once a
request may have reached it, the adapter resolves the outcome itself (lookups, the poller).
`available()` is whether the guard lets calls through: the router routes elsewhere when not.

Threads: every call of the router comes from one venue worker thread (never the bus
dispatcher, never under a service lock), one call at a time. Reports are pushed back with
`self.emit(report)`, from that thread or from the adapter's own threads. `submit_order`,
`cancel_order` and `modify_order` may return before the venue answers (an adapter with its own
event loop runs them there, each order's calls in the order they came, different orders'
concurrently) and report the outcome later; `open_orders` and `fills_since` return the answer.
"""

from __future__ import annotations

import abc
import logging
import queue
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar, Token
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal, TypeAlias, TypeVar

from trading.v1 import events_pb2, types_pb2
from trading_core.config import ConfigError
from trading_core.quotes import Quote

from execution_router.domain.venue_types import Report, VenueOrder
from execution_router.venues.resilience import VenueBusy, VenueGuard, VenueUnavailable

log = logging.getLogger(__name__)

# How a venue's reports reach the router (GetVenueStatus.report_channel).
ReportChannel = Literal["pushed", "polled", "polled_stream_down"]


ReportSink = Callable[[Report], None]
R = TypeVar("R")
E = events_pb2
Operation: TypeAlias = events_pb2.VenueOperation.ValueType
Outcome: TypeAlias = events_pb2.VenueCallOutcome.ValueType


@dataclass(frozen=True)
class VenueCall:
    """One call to a venue as it went: the VenueCalled event's values."""

    venue: str
    operation: Operation
    order_id: str  # "" for reconciliation's queries
    start_time: datetime
    latency_us: int
    outcome: Outcome
    attempts: int
    message: str = ""
    error_class: str = ""


CallSink = Callable[[VenueCall], None]
# The attempts of the recorded call running in this thread or task (None: none is recorded).
_attempts: ContextVar[list[int] | None] = ContextVar("venue_call_attempts", default=None)


def count_attempt() -> None:
    """Counts one request of the recorded call in progress (an adapter's door to its venue)."""
    counter = _attempts.get()
    if counter is not None:
        counter[0] += 1


# When a recorded call started (wall clock, monotonic) and its attempts so far.
_Started = tuple[datetime, float, list[int]]


def _ignore_call(_call: VenueCall) -> None:
    return None


class ExecutionClient(abc.ABC):
    """Base class of venue adapters; see the module docstring."""

    name = ""
    # The adapter's kind of venue (simulation, binance, bybit, quantconnect); `name` is the
    # venue's name in the config, which the factory sets.
    kind = ""
    wants_quotes = False
    # The venue's published rate limits, for a config that sets none (the limits notation).
    default_rate_limits: tuple[str, ...] = ()
    default_order_rate_limits: tuple[str, ...] = ()

    def __init__(self, emit: ReportSink, guard: VenueGuard | None = None) -> None:
        self.emit = emit
        self.guard = guard
        self._problems = 0
        self._problems_lock = threading.Lock()
        # Our instruments -> the venue's symbols; a network adapter fills it.
        self.symbols: dict[str, str] = {}
        # Where recorded calls go (the router sets it).
        self.record_call: CallSink = _ignore_call

    def lists(self, instrument: str) -> bool:
        return instrument in self.symbols

    def connected(self) -> bool:
        return True

    def report_channel(self) -> ReportChannel:
        """How reports reach the router now: pushed by the venue (the paper venue, in process),
        or polled; an adapter that polls, or may, says so."""
        return "pushed"

    @property
    def problems(self) -> int:
        """Answers the venue gave that were not its documented format (malformed, a field
        missing, an unknown status): each logged and counted, never guessed at."""
        with self._problems_lock:
            return self._problems

    def count_problem(self, what: str) -> None:
        with self._problems_lock:
            self._problems += 1
        log.error("venue %s: an answer not in its documented format: %s", self.name, what)

    def available(self) -> bool:
        return self.connected() and (self.guard is None or self.guard.available)

    def recorded(self, operation: Operation, order_id: str, function: Callable[[], R]) -> R:
        """Makes a venue call (`function`), recording it."""
        started, token = self._call_started()
        try:
            result = function()
        except Exception as error:
            self._call_ended(operation, order_id, started, token, error)
            raise
        self._call_ended(operation, order_id, started, token, None)
        return result

    async def recorded_async(
        self, operation: Operation, order_id: str, make: Callable[[], Awaitable[R]]
    ) -> R:
        """`recorded` for a coroutine (made by `make`), on the adapter's event loop."""
        started, token = self._call_started()
        try:
            result = await make()
        except Exception as error:
            self._call_ended(operation, order_id, started, token, error)
            raise
        self._call_ended(operation, order_id, started, token, None)
        return result

    def call_outcome(self, error: Exception) -> Outcome:
        """How a call that raised `error` ended; an adapter names its own timeouts and rate
        limits (`timeouts`, `rate_limits`) and what is a transport failure (its guard's)."""
        if isinstance(error, VenueUnavailable):
            return E.VENUE_CALL_OUTCOME_NOT_SENT
        if isinstance(error, (VenueBusy, *self.rate_limits)):
            return E.VENUE_CALL_OUTCOME_RATE_LIMITED
        if isinstance(error, (TimeoutError, *self.timeouts)):
            return E.VENUE_CALL_OUTCOME_TIMED_OUT
        if self.guard is not None and self.guard.is_transient(error):
            return E.VENUE_CALL_OUTCOME_FAILED
        return E.VENUE_CALL_OUTCOME_REFUSED

    # The adapter's exception classes of a timeout and of a venue's rate limiting.
    timeouts: tuple[type[BaseException], ...] = ()
    rate_limits: tuple[type[BaseException], ...] = ()

    @staticmethod
    def _call_started() -> tuple[_Started, Token[list[int] | None]]:
        counter = [0]
        return (datetime.now(UTC), time.monotonic(), counter), _attempts.set(counter)

    def _call_ended(
        self,
        operation: Operation,
        order_id: str,
        started: _Started,
        token: Token[list[int] | None],
        error: Exception | None,
    ) -> None:
        start_time, monotonic, counter = started
        _attempts.reset(token)
        outcome = E.VENUE_CALL_OUTCOME_ANSWERED if error is None else self.call_outcome(error)
        call = VenueCall(
            venue=self.name,
            operation=operation,
            order_id=order_id,
            start_time=start_time,
            latency_us=int((time.monotonic() - monotonic) * 1_000_000),
            outcome=outcome,
            attempts=counter[0] if error is not None or counter[0] else 1,
            message="" if error is None else str(error)[:500],
            error_class="" if error is None else type(error).__name__,
        )
        try:
            self.record_call(call)
        except Exception:  # a record is for analysts: never in the way of the call
            log.exception("venue %s: recording a call failed", self.name)

    def start(self) -> None:
        """Connects to the venue."""
        return None

    def stop(self) -> None:
        """Disconnects."""
        return None

    @abc.abstractmethod
    def submit_order(self, order: VenueOrder) -> None: ...

    @abc.abstractmethod
    def cancel_order(self, order_id: str, request_id: str) -> None: ...

    @abc.abstractmethod
    def open_orders(self) -> list[Report]: ...

    @abc.abstractmethod
    def fills_since(self, moment: datetime) -> list[Report]: ...

    def modify_order(
        self,
        order_id: str,
        request_id: str,
        quantity: Decimal | None,
        limit_price: Decimal | None,
    ) -> None:
        """Changes a working order; a venue that cannot rejects the change (the default)."""
        self.emit(
            Report.nothing_filled(
                types_pb2.EXECUTION_TYPE_MODIFY_REJECTED,
                order_id,
                types_pb2.SIDE_UNSPECIFIED,
                f"venue {self.name} cannot modify orders: cancel and submit a new one",
                request_id,
            )
        )

    def on_quote(self, quote: Quote) -> None:
        """Market data, for a simulated venue; a real venue ignores it."""
        return None

    def restore(self, orders: Sequence[tuple[VenueOrder, Report]]) -> None:
        """The orders the venue had when the router stopped; see the module docstring."""
        return None

    def submit_after_restart(self, order: VenueOrder) -> None:
        """An order that may have been sent before the router stopped; see the module
        docstring."""
        self.submit_order(order)


class VenueWorker:
    """Runs every call to one venue client on its own thread, in order (the client needs no
    lock, and no caller waits for the venue)."""

    def __init__(self, client: ExecutionClient) -> None:
        self.client = client
        self._calls: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"venue-{client.name}", daemon=True)

    def start(self) -> None:
        """Starts the venue's session on the caller's thread, then the worker: a config the
        venue refutes (an instrument it does not list: ConfigError) stops start-up; a venue
        that cannot be reached now is tried again by its calls."""
        try:
            self.client.start()
        except ConfigError:
            raise
        except Exception:
            log.exception("venue %s could not start; its calls try again", self.client.name)
        self._thread.start()

    def call(self, function: Callable[[], None]) -> None:
        self._calls.put(function)

    def stop(self) -> None:
        if self._thread.is_alive():
            self.call(self.client.stop)
            self._calls.put(None)
            self._thread.join()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        while (function := self._calls.get()) is not None:
            try:
                function()
            except Exception:
                log.exception("venue %s: a call failed", self.client.name)
