"""The guard every venue call goes through (venues/resilience.py): rate limits by weight, the
circuit breaker, retries of repeatable calls only. The venue here is a plain function that
fails as a network would; the adapters' own tests run the guard against the fakes over HTTP."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from execution_router.venues.resilience import VenueBusy, VenueGuard, VenueUnavailable
from trading_core.config import VenueResilience

from tests.support import wait_until


class Timeout(Exception):
    """A transport failure, as a venue's client library raises one."""


class Refused(Exception):
    """The venue's answer refusing one request: not a failure of the venue."""


def guard(**settings: object) -> VenueGuard:
    defaults: dict[str, object] = {"retry_delay_ms": 1, "execution_timeout_ms": 2000}
    return VenueGuard("test", VenueResilience(**{**defaults, **settings}), (Timeout,))


def failing(times: int, error: Exception) -> tuple[Callable[[], str], list[int]]:
    calls: list[int] = []

    def call() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise error
        return "answer"

    return call, calls


def test_a_repeatable_call_is_retried_after_transport_failures_and_answers() -> None:
    call, calls = failing(2, Timeout("read timed out"))
    assert guard(retry_attempts=3).call(call, repeatable=True) == "answer"
    assert len(calls) == 3


def test_a_call_not_marked_repeatable_is_sent_once_and_its_failure_raised() -> None:
    call, calls = failing(1, Timeout("read timed out"))
    with pytest.raises(Timeout):
        guard(retry_attempts=3).call(call)
    assert len(calls) == 1


def test_a_refusal_is_never_retried_nor_counted_against_the_venue() -> None:
    venue = guard(failure_threshold=1)
    call, calls = failing(1, Refused("unknown order"))
    with pytest.raises(Refused):
        venue.call(call, repeatable=True)
    assert len(calls) == 1
    status = venue.status()
    assert (status.circuit, status.consecutive_failures, status.failures) == ("closed", 0, 0)


def test_the_circuit_opens_after_the_threshold_and_then_sends_nothing() -> None:
    venue = guard(failure_threshold=3, reset_timeout_ms=60_000)
    call, calls = failing(100, Timeout("connection reset"))
    for _ in range(3):
        with pytest.raises(Timeout):
            venue.call(call)
    assert not venue.available
    with pytest.raises(VenueUnavailable) as refused:
        venue.call(call)
    assert len(calls) == 3
    assert "venue test is unavailable: its circuit opened at" in str(refused.value)
    assert "after 3 failed calls (Timeout: connection reset)" in str(refused.value)
    status = venue.status()
    assert status.circuit == "open"
    assert status.opened_at is not None


def test_an_open_circuit_lets_one_probe_through_after_the_reset_timeout_and_closes() -> None:
    venue = guard(failure_threshold=1, reset_timeout_ms=50)
    with pytest.raises(Timeout):
        venue.call(failing(1, Timeout("down"))[0])
    assert not venue.available
    wait_until(lambda: venue.available, 5, "the reset timeout to pass")
    assert venue.call(lambda: "up again") == "up again"
    assert venue.status().circuit == "closed"
    assert venue.status().opened_at is None


def test_a_failed_probe_opens_the_circuit_again() -> None:
    venue = guard(failure_threshold=1, reset_timeout_ms=50)
    call, calls = failing(2, Timeout("down"))
    with pytest.raises(Timeout):
        venue.call(call)
    wait_until(lambda: venue.available, 5, "the reset timeout to pass")
    with pytest.raises(Timeout):
        venue.call(call)
    assert venue.status().circuit == "open"
    assert not venue.available
    assert len(calls) == 2


def test_rate_limit_weight_waits_for_headroom_then_sends() -> None:
    venue = guard(rate_limits=["10/second"])
    venue.call(lambda: None, weight=10)
    assert [h.remaining for h in venue.status().headroom] == [0]
    started = time.monotonic()
    venue.call(lambda: None, weight=5)
    assert time.monotonic() - started > 0.5  # the first call's weight had to leave the window


def test_no_headroom_within_the_timeout_sends_nothing_and_says_which_limit() -> None:
    venue = guard(order_rate_limits=["1/minute"], execution_timeout_ms=50)
    venue.call(lambda: None, orders=1)
    sent: list[int] = []
    with pytest.raises(VenueBusy) as busy:
        venue.call(lambda: sent.append(1), orders=1)
    assert sent == []
    assert "rate limit 1 per 1 minute leaves no headroom within 50 ms" in str(busy.value)
    venue.call(lambda: sent.append(1))  # a query places no order: the order limit is not its
    assert sent == [1]


def test_status_reports_calls_failures_and_latency_percentiles() -> None:
    venue = guard(failure_threshold=10)
    for _ in range(4):
        venue.call(lambda: None)
    with pytest.raises(Timeout):
        venue.call(failing(1, Timeout("slow"))[0])
    status = venue.status()
    assert (status.calls, status.failures, status.consecutive_failures) == (5, 1, 1)
    assert status.last_error == "Timeout: slow"
    assert status.latency_p50_ms is not None
    assert status.latency_p99_ms is not None
