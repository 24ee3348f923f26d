"""The shadow simulation's and venue calls' queries (shadow_orders, shadow_comparison, shadow_fit,
venue_calls) on the seeded week (tests/analytics_support.py) with its model fills and calls
(tests/shadow_support.py), written through the router's journal and the real feeder into DuckDB;
every expected figure is worked out here, in plain Python, from the generators' own records."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from trading_core.analytics import DuckDBAnalytics
from trading_core.analytics.report import Period, execution_quality

from tests.analytics_support import (
    DAYS,
    FIRST_DAY,
    Trading,
    feed,
    order_management_events,
    router_events,
)
from tests.integration.test_analytics import _DAYS, PERIOD, _tradectl
from tests.shadow_support import Call, Shadowed, call_event, generate, shadow_events


@pytest.fixture(scope="module")
def seeded(trading: Trading, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    folder = tmp_path_factory.mktemp("shadow")
    shadows, calls = generate(trading)
    orders = {s.order.order_id: s.order for s in shadows}
    events = [e for o in trading.orders for e in router_events(o)]
    events += [e for s in shadows for e in shadow_events(s)]
    events += [call_event(c, orders[c.order_id]) for c in calls]
    feed(folder, "execution-router", events)
    feed(
        folder, "order-management", (e for o in trading.orders for e in order_management_events(o))
    )
    return folder, (shadows, calls)


@pytest.fixture(scope="module")
def analytics(seeded: tuple[Path, Any]) -> Iterable[DuckDBAnalytics]:
    with DuckDBAnalytics(seeded[0]) as runner:
        yield runner


def _expected_order(shadow: Shadowed) -> dict[str, Any]:
    order = shadow.order
    assert order.arrival_mid is not None
    mid, touch = float(order.arrival_mid), float(shadow.arrival_price)
    model_filled = sum(f.quantity for f in shadow.fills)
    real_filled = sum(f.quantity for f in order.fills)
    model = sum(float(f.quantity) * float(f.price) for f in shadow.fills) / float(model_filled) \
        if model_filled else None  # fmt: skip
    real = sum(float(f.notional) for f in order.fills) / float(real_filled) if real_filled else None
    model_first = min((f.time for f in shadow.fills), default=None)
    real_first = min((f.time for f in order.fills), default=None)
    both = model is not None and real is not None
    return {
        "order_id": order.order_id,
        "venue": order.venue,
        "day": shadow.send_time.date(),
        "model_filled_quantity": model_filled,
        "real_filled_quantity": real_filled,
        "model_fill_rate": float(model_filled / order.quantity),
        "real_fill_rate": float(real_filled / order.quantity),
        "price_error_bps": order.sign * (real - model) / mid * 1e4 if both else None,  # type: ignore[operator]
        "time_error_ms": (real_first - model_first).total_seconds() * 1000
        if real_first and model_first else None,
        "real_latency_ms": (real_first - shadow.send_time).total_seconds() * 1000
        if real_first else None,
        "real_slippage_bps": order.sign * (real - touch) / touch * 1e4 if real else None,
        "real_slippage_mid_bps": order.sign * (real - mid) / mid * 1e4 if real else None,
    }  # fmt: skip


def _close(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    for key, value in expected.items():
        if isinstance(value, float):
            assert actual[key] == pytest.approx(value, rel=1e-9, abs=1e-6), key
        else:
            assert actual[key] == value, key


def test_shadow_orders_put_the_models_price_time_and_fill_beside_the_venues_per_order(
    analytics: DuckDBAnalytics, seeded: tuple[Path, Any]
) -> None:
    shadows, _ = seeded[1]
    found = {row["order_id"]: row for row in analytics.run("shadow_orders", PERIOD).records()}
    assert set(found) == {s.order.order_id for s in shadows}
    for shadow in shadows:
        _close(found[shadow.order.order_id], _expected_order(shadow))


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def test_shadow_comparison_gives_each_venue_and_day_its_price_and_time_errors_and_fill_rates(
    analytics: DuckDBAnalytics, seeded: tuple[Path, Any]
) -> None:
    shadows, _ = seeded[1]
    groups: dict[tuple[str, date], list[tuple[Shadowed, dict[str, Any]]]] = defaultdict(list)
    for shadow in shadows:
        expected = _expected_order(shadow)
        groups[expected["venue"], expected["day"]].append((shadow, expected))
    rows = analytics.run("shadow_comparison", PERIOD).records()
    assert [(r["venue"], r["day"]) for r in rows] == sorted(groups)
    for row in rows:
        group = groups[row["venue"], row["day"]]
        prices = [e["price_error_bps"] for _, e in group if e["price_error_bps"] is not None]
        times = [e["time_error_ms"] for _, e in group if e["time_error_ms"] is not None]
        ordered = sum(s.order.quantity for s, _ in group)
        real = sum(e["real_filled_quantity"] for _, e in group)
        model = sum(e["model_filled_quantity"] for _, e in group)
        _close(row, {
            "orders": len(group),
            "both_filled": len(prices),
            "mean_price_error_bps": _mean(prices),
            "median_price_error_bps": _median(prices),
            "mean_time_error_ms": _mean(times),
            "median_time_error_ms": _median(times),
            "real_fill_rate": float(real / ordered),
            "model_fill_rate": float(model / ordered),
            "fill_rate_difference": float((real - model) / ordered),
        })  # fmt: skip


def test_shadow_fit_gives_each_venue_the_slippage_and_latency_that_match_its_market_orders(
    analytics: DuckDBAnalytics, seeded: tuple[Path, Any]
) -> None:
    shadows, _ = seeded[1]
    by_venue: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for shadow in shadows:
        expected = _expected_order(shadow)
        if expected["real_slippage_bps"] is not None:
            by_venue[shadow.order.venue].append(expected)
    rows = analytics.run("shadow_fit", PERIOD).records()
    assert [r["venue"] for r in rows] == sorted(by_venue)
    for row in rows:
        orders = by_venue[row["venue"]]
        errors = [o["price_error_bps"] for o in orders if o["price_error_bps"] is not None]
        _close(row, {
            "market_orders": len(orders),
            "slippage_bps": max(statistics.median(o["real_slippage_bps"] for o in orders), 0.0),
            "latency_mean_ms": statistics.fmean(o["real_latency_ms"] for o in orders),
            "median_slippage_mid_bps": statistics.median(
                o["real_slippage_mid_bps"] for o in orders
            ),
            "mean_price_error_bps": _mean(errors),
        })  # fmt: skip


def test_venue_calls_count_outcomes_and_answered_latency_per_venue_operation_and_day(
    analytics: DuckDBAnalytics, seeded: tuple[Path, Any]
) -> None:
    _, calls = seeded[1]
    groups: dict[tuple[str, str, date], list[Call]] = defaultdict(list)
    for call in calls:
        groups[call.venue, call.operation, call.start.date()].append(call)
    rows = analytics.run("venue_calls", PERIOD).records()
    assert [(r["venue"], r["operation"], r["day"]) for r in rows] == sorted(groups)
    for row in rows:
        group = groups[row["venue"], row["operation"], row["day"]]
        answered = [c.latency_us / 1000 for c in group if c.outcome == "ANSWERED"]
        expected: dict[str, Any] = {
            "calls": len(group),
            "answered": len(answered),
            "refused": sum(c.outcome == "REFUSED" for c in group),
            "timed_out": sum(c.outcome == "TIMED_OUT" for c in group),
            "rate_limited": sum(c.outcome == "RATE_LIMITED" for c in group),
            "failed": 0,
            "not_sent": 0,
            "error_rate": 1 - len(answered) / len(group),
            "mean_attempts": 1.0,
        }
        for q in (50, 95, 99):
            expected[f"latency_p{q}_ms"] = float(np.percentile(answered, q)) if answered else None
        _close(row, expected)


def test_the_report_carries_the_shadow_comparison_the_fit_and_the_venue_calls(
    analytics: DuckDBAnalytics,
) -> None:
    period = Period(FIRST_DAY.date(), FIRST_DAY.date().replace(day=FIRST_DAY.day + DAYS - 1))
    quality = execution_quality(analytics, period, venue="binance")
    assert quality.shadow and {row["venue"] for row in quality.shadow} == {"binance"}
    assert [row["venue"] for row in quality.shadow_fit] == ["binance"]
    assert quality.venue_calls and {row["venue"] for row in quality.venue_calls} == {"binance"}


def test_a_period_without_shadowed_orders_answers_no_rows(analytics: DuckDBAnalytics) -> None:
    before = {"day_start": FIRST_DAY.replace(year=2020), "day_end": FIRST_DAY.replace(year=2021)}
    for name in ("shadow_orders", "shadow_comparison", "shadow_fit", "venue_calls"):
        assert len(analytics.run(name, before)) == 0, name


def test_tradectl_report_shows_the_shadow_simulation_the_fit_and_the_venue_calls(
    seeded: tuple[Path, Any],
) -> None:
    shown = _tradectl("report", "--data", str(seeded[0]), *_DAYS)
    assert shown.exit_code == 0, shown.output
    for text in ("Shadow simulation", "Paper venue fitted", "Venue calls", "SUBMIT"):
        assert text in shown.output
