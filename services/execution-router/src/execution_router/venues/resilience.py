"""Resilience per venue: every call an adapter makes to its venue goes through one `VenueGuard`.

- **Rate limits shaped to the venue's weights** (the `limits` library, moving windows): a call
  takes its request weight from each of `rate_limits` ("6000/minute"), a new order also one from
  each of `order_rate_limits` ("100/10 seconds"). Without headroom the call waits for it, at most
  `execution_timeout_ms`, then fails with `VenueBusy` having sent nothing: the venue would have
  refused it, and a ban (Binance's 418) costs far more than a wait.
- **A circuit breaker** (pybreaker): `failure_threshold` consecutive transport failures (timeouts,
  5xx, dropped connections: what the adapter's `transient` says is one) open it; while open every
  call fails at once with `VenueUnavailable`, having sent nothing, and the venue's health is
  NOT_SERVING; after `reset_timeout_ms` one probe goes through (half-open) and its outcome closes
  or opens it again. A venue's refusal of one request (an unknown order, a bad price) is an
  answer, not a failure, and never counts.
- **Retries** with exponential backoff and jitter (tenacity), only for calls the adapter marks
  `repeatable` (queries, cancels): a submit is never repeated here; its adapter decides after a
  query shows the venue does not have the order.
- **Latency** of each call, kept for `GetVenueStatus` (p50 and p99 of the last calls).

`call` guards a blocking call; `call_async` the same for a coroutine on an adapter's event loop
(its waits for headroom and between retries are `asyncio.sleep`, never blocking the loop).

Connection pooling is the HTTP session's (CCXT and requests keep one per exchange object).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import pybreaker
import tenacity
from limits import RateLimitItem, WindowStats, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from trading_core import metrics
from trading_core.config import VenueResilience

T = TypeVar("T")

_LATENCIES_KEPT = 512


class VenueUnavailable(Exception):
    """The venue's circuit is open: the call was not sent."""


class VenueBusy(Exception):
    """The venue's rate limit left no headroom within the call's timeout: the call was not sent."""


@dataclass(frozen=True)
class RateHeadroom:
    limit: str
    remaining: int


@dataclass(frozen=True)
class GuardStatus:
    circuit: str  # closed, open, half-open
    consecutive_failures: int
    calls: int
    failures: int
    last_error: str
    opened_at: datetime | None
    headroom: tuple[RateHeadroom, ...]
    latency_p50_ms: float | None
    latency_p99_ms: float | None


class VenueGuard:
    """Rate limits, circuit breaker, retries and latency of one venue; see the module docstring.
    Thread-safe: an adapter's threads (or its loop and a caller) share one guard."""

    def __init__(
        self,
        venue: str,
        settings: VenueResilience,
        transient: tuple[type[BaseException], ...] | Callable[[BaseException], bool],
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        self.venue = venue
        self.settings = settings
        self.timeout_s = settings.execution_timeout_ms / 1000
        self._transient = _predicate(transient)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._request_limits = [parse(text) for text in settings.rate_limits]
        self._order_limits = [parse(text) for text in settings.order_rate_limits]
        self._breaker = pybreaker.CircuitBreaker(
            fail_max=settings.failure_threshold,
            reset_timeout=settings.reset_timeout_ms / 1000,
            # Only transport failures count; a venue's answer, even a refusal, is no failure.
            exclude=[lambda error: not self._transient(error)],
            listeners=[_Listener(self, on_change)],
            name=venue,
            throw_new_error_on_trip=False,
        )
        self._lock = threading.Lock()
        self._latencies: deque[float] = deque(maxlen=_LATENCIES_KEPT)
        self._calls = 0
        self._failures = 0
        self._last_error = ""
        self._opened_at: datetime | None = None
        metrics.circuit(venue, is_open=False)

    @property
    def available(self) -> bool:
        """Whether a call would be sent now (closed, or open long enough for a probe)."""
        state = self._breaker.current_state
        if state != pybreaker.STATE_OPEN:
            return True
        opened = self._opened_at
        return (
            opened is not None
            and (datetime.now(UTC) - opened).total_seconds() >= self._breaker.reset_timeout
        )

    def is_transient(self, error: BaseException) -> bool:
        """Whether the error is a transport failure (counts against the circuit)."""
        return self._transient(error)

    def call(
        self,
        function: Callable[[], T],
        *,
        weight: int = 1,
        orders: int = 0,
        repeatable: bool = False,
    ) -> T:
        """Runs `function` (one request to the venue) under the guard. `weight` is its request
        weight, `orders` the new orders it places; `repeatable` lets transport failures be
        retried. Raises VenueUnavailable or VenueBusy (nothing sent), or the call's own error."""
        retrying = tenacity.Retrying(**self._retries(repeatable))
        result: T = retrying(self._once, function, weight, orders)
        return result

    async def call_async(
        self,
        function: Callable[[], Awaitable[T]],
        *,
        weight: int = 1,
        orders: int = 0,
        repeatable: bool = False,
    ) -> T:
        """`call` for a coroutine (made anew by `function` for each attempt), on the caller's
        event loop."""
        retrying = tenacity.AsyncRetrying(**self._retries(repeatable))
        result: T = await retrying(self._once_async, function, weight, orders)
        return result

    def _retries(self, repeatable: bool) -> dict[str, Any]:
        """Tenacity's settings: transport failures of a repeatable call are tried again, with
        exponential backoff and jitter."""
        attempts = self.settings.retry_attempts + 1 if repeatable else 1
        delay_s = self.settings.retry_delay_ms / 1000
        return {
            "stop": tenacity.stop_after_attempt(attempts),
            "wait": tenacity.wait_exponential_jitter(
                multiplier=delay_s, max=self.timeout_s, jitter=delay_s
            ),
            "retry": tenacity.retry_if_exception(self._transient),
            "reraise": True,
        }

    def status(self) -> GuardStatus:
        with self._lock:
            latencies = sorted(self._latencies)
            calls, failures, last_error = self._calls, self._failures, self._last_error
        state = self._breaker.current_state
        return GuardStatus(
            circuit=state.replace("_", "-"),
            consecutive_failures=self._breaker.fail_counter,
            calls=calls,
            failures=failures,
            last_error=last_error,
            opened_at=self._opened_at if state != pybreaker.STATE_CLOSED else None,
            headroom=tuple(
                RateHeadroom(str(limit), self._window(limit).remaining)
                for limit in (*self._request_limits, *self._order_limits)
            ),
            latency_p50_ms=_percentile(latencies, 0.50),
            latency_p99_ms=_percentile(latencies, 0.99),
        )

    def _once(self, function: Callable[[], T], weight: int, orders: int) -> T:
        if not self.available:
            raise VenueUnavailable(self.why_unavailable())
        deadline = time.monotonic() + self.timeout_s
        while (wait := self._take(weight, orders, deadline)) is not None:
            time.sleep(wait)
        started = time.monotonic()
        try:
            result = self._breaker.call(function)
        except pybreaker.CircuitBreakerError:
            raise VenueUnavailable(self.why_unavailable()) from None
        except BaseException as error:
            self._failed(error)
            raise
        self._answered(started)
        return result

    async def _once_async(
        self, function: Callable[[], Awaitable[T]], weight: int, orders: int
    ) -> T:
        if not self.available:
            raise VenueUnavailable(self.why_unavailable())
        deadline = time.monotonic() + self.timeout_s
        while (wait := self._take(weight, orders, deadline)) is not None:
            await asyncio.sleep(wait)
        started = time.monotonic()
        try:
            with self._breaker.calling():
                result = await function()
        except pybreaker.CircuitBreakerError:
            raise VenueUnavailable(self.why_unavailable()) from None
        except BaseException as error:
            self._failed(error)
            raise
        self._answered(started)
        return result

    def _failed(self, error: BaseException) -> None:
        metrics.venue_error(self.venue, error)
        with self._lock:
            self._calls += 1
            if self._transient(error):
                self._failures += 1
                self._last_error = f"{type(error).__name__}: {str(error)[:200]}"

    def _answered(self, started: float) -> None:
        with self._lock:
            self._calls += 1
            self._latencies.append((time.monotonic() - started) * 1000)

    def _take(self, weight: int, orders: int, deadline: float) -> float | None:
        """Takes the call's weight from every limit (None), or says how long to wait for
        headroom; VenueBusy once that would pass the deadline."""
        wanted = [(limit, weight) for limit in self._request_limits]
        wanted += [(limit, orders) for limit in self._order_limits if orders]
        with self._lock:
            short = [
                limit
                for limit, cost in wanted
                if not self._limiter.test(limit, self.venue, cost=cost)
            ]
            if not short:
                for limit, cost in wanted:
                    self._limiter.hit(limit, self.venue, cost=cost)
                return None
            free_at = max(self._window(limit).reset_time for limit in short)
        wait = min(max(free_at - time.time(), 0.001), deadline - time.monotonic())
        if wait <= 0:
            names = ", ".join(str(limit) for limit in short)
            raise VenueBusy(
                f"venue {self.venue}: rate limit {names} leaves no headroom within "
                f"{self.settings.execution_timeout_ms} ms; nothing was sent"
            )
        return wait

    def _window(self, limit: RateLimitItem) -> WindowStats:
        return self._limiter.get_window_stats(limit, self.venue)

    def why_unavailable(self) -> str:
        opened = self._opened_at.strftime("%H:%M:%S") if self._opened_at else "?"
        return (
            f"venue {self.venue} is unavailable: its circuit opened at {opened} UTC after "
            f"{self.settings.failure_threshold} failed calls ({self._last_error or 'no detail'}); "
            f"a probe goes through {self.settings.reset_timeout_ms} ms after that"
        )

    def circuit_changed(self, opened: bool) -> None:
        self._opened_at = datetime.now(UTC) if opened else None
        metrics.circuit(self.venue, is_open=opened)


class _Listener(pybreaker.CircuitBreakerListener):
    def __init__(self, guard: VenueGuard, on_change: Callable[[str], None] | None) -> None:
        self._guard = guard
        self._on_change = on_change

    def state_change(
        self, breaker: pybreaker.CircuitBreaker, old: object, new: pybreaker.CircuitBreakerState
    ) -> None:
        if new.name == pybreaker.STATE_OPEN:
            self._guard.circuit_changed(True)
        elif new.name == pybreaker.STATE_CLOSED:
            self._guard.circuit_changed(False)
        if self._on_change is not None:
            self._on_change(new.name)


def _predicate(
    transient: tuple[type[BaseException], ...] | Callable[[BaseException], bool],
) -> Callable[[BaseException], bool]:
    if isinstance(transient, tuple):
        return lambda error: isinstance(error, transient)
    return transient


def _percentile(ordered: list[float], fraction: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
