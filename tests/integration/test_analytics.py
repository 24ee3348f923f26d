"""The analytics queries on a seeded week of trading (tests/analytics_support.py) written through
the journals and the real feeder into the four DuckDB files (the fixtures `trading` and
`warehouse`, conftest.py); every expected figure is worked out here, in plain Python, from the
generator's own records."""

from __future__ import annotations

import json
import math
import re
import statistics
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import empyrical  # type: ignore[import-untyped]
import numpy as np
import pytest
import sqlglot
from tradectl.cli import app
from tradectl.report import result_json
from trading_core.analytics import (
    AnalyticsError,
    DuckDBAnalytics,
    UnknownQuery,
    WarehouseBusy,
    bigquery_sql,
    duckdb_sql,
    load,
    query_names,
    run_query,
)
from trading_core.analytics import Result as QueryResult
from trading_core.analytics.performance import DailyPnl, daily_returns, performance
from typer.testing import CliRunner, Result

from tests.analytics_support import (
    DAYS,
    DENIED_ONLY,
    FIRST_DAY,
    Order,
    Trading,
)

PERIOD = {"day_start": FIRST_DAY, "day_end": FIRST_DAY + timedelta(days=DAYS)}
HORIZONS = (1, 5, 60)
ZERO = Decimal(0)


@pytest.fixture(scope="module")
def analytics(warehouse: Path) -> Iterable[DuckDBAnalytics]:
    with DuckDBAnalytics(warehouse) as runner:
        yield runner


def _ms(start: datetime, end: datetime | None) -> float | None:
    return None if end is None else (end - start) / timedelta(microseconds=1) / 1000


def _ratio(top: Decimal, bottom: Decimal) -> float | None:
    return float(top) / float(bottom) if bottom else None


def _expected_order(trading: Trading, order: Order) -> dict[str, Any]:
    filled = sum((f.quantity for f in order.fills), ZERO)
    notional = sum((f.notional for f in order.fills), ZERO)
    fees = sum((f.fee for f in order.fills), ZERO)
    assert order.arrival_mid is not None and order.last_report_time is not None
    end_mid = trading.mid_at(order.instrument, order.last_report_time)
    assert end_mid is not None
    slippage = order.sign * (notional - filled * order.arrival_mid)
    opportunity = order.sign * (end_mid - order.arrival_mid) * (order.quantity - filled)
    shortfall = slippage + fees + opportunity
    return {
        "order_id": order.order_id,
        "account_id": order.account,
        "strategy_id": order.strategy,
        "venue": order.venue,
        "day": order.submit_time.date(),
        "last_report": "REJECTED" if order.rejected else
        ("FILLED" if filled == order.quantity else "CANCELED"),
        "quantity": order.quantity,
        "filled_quantity": filled,
        "fills": len(order.fills),
        "fill_rate": float(filled / order.quantity),
        "accept_ms": _ms(order.submit_time, order.accept_time),
        "first_fill_ms": _ms(order.submit_time, min((f.time for f in order.fills), default=None)),
        "last_fill_ms": _ms(order.submit_time, max((f.time for f in order.fills), default=None)),
        "arrival_mid": order.arrival_mid,
        "end_mid": end_mid,
        "notional": notional,
        "fees": fees,
        "slippage": slippage,
        "filled_at_arrival": filled * order.arrival_mid,
        "ordered_at_arrival": order.quantity * order.arrival_mid,
        "slippage_bps": float(slippage / (filled * order.arrival_mid)) * 1e4 if filled else None,
        "fee_bps": None if not filled else float(fees / notional) * 1e4,
        "shortfall": shortfall,
        "shortfall_bps": float(shortfall / (order.quantity * order.arrival_mid)) * 1e4,
    }  # fmt: skip


def _same(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    """Exact for Decimals and text, to 1e-9 relative for the floats (ratios)."""
    for key, value in expected.items():
        if isinstance(value, float):
            assert actual[key] == pytest.approx(value, rel=1e-9, abs=1e-9), key
        else:
            assert actual[key] == value, key


def test_every_query_file_is_bigquery_sql_and_what_runs_on_duckdb_is_its_transpilation() -> None:
    assert set(query_names()) >= {
        "order_execution", "venue_execution", "markouts", "success_rates", "daily_pnl",
    }  # fmt: skip
    for name in query_names():
        query = load(name)
        sqlglot.parse_one(query.text, read="bigquery")  # raises on anything not BigQuery's
        composed = bigquery_sql(name)
        sqlglot.parse_one(composed, read="bigquery")
        transpiled = sqlglot.transpile(composed, read="bigquery", write="duckdb", pretty=True)
        assert duckdb_sql(name) == transpiled[0]
        assert "trading." in composed and all(p.type for p in query.parameters)
    renamed = bigquery_sql("order_execution", "my-project.trading_prod")
    assert "`my-project.trading_prod`.orders" in renamed and " trading.orders" not in renamed
    assert "BIGNUMERIC(38, 9)" in renamed  # the text as written, not sqlglot's rendering of it


def test_order_execution_states_latency_fill_rate_slippage_fees_and_shortfall_per_order(
    analytics: DuckDBAnalytics, trading: Trading
) -> None:
    rows = {row["order_id"]: row for row in analytics.run("order_execution", PERIOD).records()}
    submitted = trading.submitted()
    assert set(rows) == {o.order_id for o in submitted}
    assert any(o.rejected for o in submitted) and any(len(o.fills) > 1 for o in submitted)
    assert any(o.fills and sum(f.quantity for f in o.fills) < o.quantity for o in submitted)
    for order in submitted:
        _same(rows[order.order_id], _expected_order(trading, order))


def _quantile(values: list[float], q: float) -> float | None:
    """Continuous (linear) interpolation, as PERCENTILE_CONT."""
    ordered = sorted(values)
    if not ordered:
        return None
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _grouped(orders: Iterable[Order], key: Callable[[Order], Any]) -> dict[Any, list[Order]]:
    groups: dict[Any, list[Order]] = defaultdict(list)
    for order in orders:
        groups[key(order)].append(order)
    return groups


@pytest.mark.parametrize("per_day", [False, True])
def test_venue_execution_compares_the_venues_side_by_side_and_per_day(
    analytics: DuckDBAnalytics, trading: Trading, per_day: bool
) -> None:
    rows = analytics.run("venue_execution", {**PERIOD, "per_day": per_day}).records()
    groups = _grouped(
        trading.submitted(), lambda o: (o.venue, o.submit_time.date() if per_day else None)
    )
    assert [(r["venue"], r["day"]) for r in rows] == sorted(groups)
    for row in rows:
        orders = [_expected_order(trading, o) for o in groups[row["venue"], row["day"]]]
        expected: dict[str, Any] = {
            "orders": len(orders),
            "rejected": sum(o["last_report"] == "REJECTED" for o in orders),
            "rejection_rate": sum(o["last_report"] == "REJECTED" for o in orders) / len(orders),
            "filled_orders": sum(o["fills"] > 0 for o in orders),
            "fill_rate": _ratio(*(sum((o[k] for o in orders), ZERO)
                                  for k in ("filled_at_arrival", "ordered_at_arrival"))),
            "notional": sum((o["notional"] for o in orders), ZERO),
            "fees": sum((o["fees"] for o in orders), ZERO),
            "shortfall": sum((o["shortfall"] for o in orders), ZERO),
        }  # fmt: skip
        for point in ("accept", "first_fill", "last_fill"):
            values = [o[f"{point}_ms"] for o in orders if o[f"{point}_ms"] is not None]
            expected[f"{point}_p50_ms"] = _quantile(values, 0.5)
            expected[f"{point}_p95_ms"] = _quantile(values, 0.95)
        for name, top, bottom in (
            ("slippage_bps", "slippage", "filled_at_arrival"),
            ("fee_bps", "fees", "notional"),
            ("shortfall_bps", "shortfall", "ordered_at_arrival"),
        ):
            ratio = _ratio(*(sum((o[k] for o in orders), ZERO) for k in (top, bottom)))
            expected[name] = None if ratio is None else ratio * 1e4
        _same(row, expected)


@pytest.mark.parametrize("per_day", [False, True])
def test_markouts_compare_each_fill_with_the_mid_1_5_and_60_seconds_later(
    analytics: DuckDBAnalytics, trading: Trading, per_day: bool
) -> None:
    rows = analytics.run("markouts", {**PERIOD, "per_day": per_day}).records()
    markouts: dict[tuple[str, date | None, int], list[float]] = defaultdict(list)
    for order in trading.submitted():
        for fill in order.fills:
            for horizon in HORIZONS:
                mid = trading.mid_at(order.instrument, fill.time + timedelta(seconds=horizon))
                assert mid is not None
                key = (order.venue, fill.time.date() if per_day else None, horizon)
                markouts[key].append(order.sign * float(mid - fill.price) / float(fill.price))
    assert [(r["venue"], r["day"], r["horizon_s"]) for r in rows] == sorted(markouts)
    for row in rows:
        values = markouts[row["venue"], row["day"], row["horizon_s"]]
        _same(row, {"fills": len(values), "marked": len(values),
                    "markout_bps": statistics.fmean(values) * 1e4})  # fmt: skip
    one_second = {r["venue"]: r["markout_bps"] for r in rows if r["horizon_s"] == 1}
    sixty = {r["venue"]: r["markout_bps"] for r in rows if r["horizon_s"] == 60}
    assert one_second != sixty  # the quotes after each fill differ by horizon


def test_success_rates_count_denials_and_venue_rejections_per_account_and_day(
    analytics: DuckDBAnalytics, trading: Trading
) -> None:
    rows = analytics.run("success_rates", PERIOD).records()
    groups = _grouped(trading.orders, lambda o: (o.account, o.submit_time.date()))
    assert [(r["account_id"], r["day"]) for r in rows] == sorted(groups)
    for row in rows:
        orders = groups[row["account_id"], row["day"]]
        denied = sum(o.denied for o in orders)
        submitted = len(orders) - denied
        rejected = sum(o.rejected for o in orders)
        _same(row, {
            "requests": len(orders), "denied": denied, "submitted": submitted,
            "rejected": rejected, "filled": sum(bool(o.fills) for o in orders),
            "denial_rate": denied / len(orders),
            "rejection_rate": rejected / submitted if submitted else None,
            "success_rate": (submitted - rejected) / len(orders),
            "fill_rate": sum(bool(o.fills) for o in orders) / submitted if submitted else None,
        })  # fmt: skip


def _expected_daily(
    trading: Trading, first: date, last: date
) -> dict[tuple[str, str, date], dict[str, Any]]:
    """Mark-to-market per account, strategy and day: equity = cash + position x end-of-day mark
    (the last quote's mid at or before the day's end; else the last fill's price)."""
    fills = [(o, f) for o in trading.submitted() for f in o.fills]
    books = {(o.account, o.strategy, o.instrument) for o, _ in fills}
    expected: dict[tuple[str, str, date], dict[str, Any]] = {}
    for account, strategy, instrument in sorted(books):
        previous: Decimal | None = None
        day = first - timedelta(days=1)
        while day <= last:
            end = datetime.combine(day + timedelta(days=1), datetime.min.time(), FIRST_DAY.tzinfo)
            mine = [(o, f) for o, f in fills if (o.account, o.strategy, o.instrument)
                    == (account, strategy, instrument) and f.time < end]  # fmt: skip
            position = sum((o.sign * f.quantity for o, f in mine), ZERO)
            cash = sum((-o.sign * f.notional - f.fee for o, f in mine), ZERO)
            mark = trading.mid_at(instrument, end - timedelta(microseconds=1))
            if mark is None and mine:
                mark = max(mine, key=lambda pair: pair[1].time)[1].price
            exposure = position * mark if position else ZERO  # type: ignore[operator]
            equity = cash + exposure
            if day >= first:
                today = [f for o, f in mine if f.time.date() == day]
                row = expected.setdefault((account, strategy, day), {
                    "pnl": ZERO, "fees": ZERO, "fills": 0, "notional": ZERO, "exposure": ZERO,
                    "cumulative_pnl": ZERO,
                })  # fmt: skip
                assert previous is not None
                row["pnl"] += equity - previous
                row["fees"] += sum((f.fee for f in today), ZERO)
                row["fills"] += len(today)
                row["notional"] += sum((f.notional for f in today), ZERO)
                row["exposure"] += exposure
                row["cumulative_pnl"] += equity
            previous = equity
            day += timedelta(days=1)
    return expected


def _pnl_period() -> dict[str, Any]:
    """From the second day: what the first day left open is carried in."""
    return {**PERIOD, "day_start": FIRST_DAY + timedelta(days=1)}


def test_daily_pnl_marks_every_book_to_market_at_each_days_end_carrying_the_opening(
    analytics: DuckDBAnalytics, trading: Trading
) -> None:
    period = _pnl_period()
    rows = analytics.run("daily_pnl", period).records()
    expected = _expected_daily(
        trading, period["day_start"].date(), (period["day_end"] - timedelta(days=1)).date()
    )
    assert [(r["account_id"], r["strategy_id"], r["day"]) for r in rows] == sorted(expected)
    for row in rows:
        _same(row, expected[row["account_id"], row["strategy_id"], row["day"]])
    assert any(r["fills"] == 0 and r["pnl"] != 0 for r in rows)  # a held position's day
    one = analytics.run("daily_pnl", {**period, "account": "ACC-1", "strategy": "momentum"})
    assert {(r["account_id"], r["strategy_id"]) for r in one.records()} == {("ACC-1", "momentum")}


def test_performance_figures_equal_empyricals_on_the_same_daily_series(
    analytics: DuckDBAnalytics,
) -> None:
    starting_cash = Decimal("100000")
    by_day: dict[date, Decimal] = defaultdict(Decimal)
    for row in analytics.run("daily_pnl", {**_pnl_period(), "account": "ACC-1"}).records():
        by_day[row["day"]] += row["pnl"]  # the account: its strategies' sum
    series = [DailyPnl(day, by_day[day]) for day in sorted(by_day)]
    figures = performance(series, starting_cash)
    returns = np.array(daily_returns(series, starting_cash))
    assert figures.returns == tuple(returns)
    assert figures.sharpe == pytest.approx(empyrical.sharpe_ratio(returns, annualization=365))
    assert figures.sortino == pytest.approx(empyrical.sortino_ratio(returns, annualization=365))
    assert figures.max_drawdown_ratio == pytest.approx(empyrical.max_drawdown(returns))
    assert figures.annual_return == pytest.approx(
        empyrical.annual_return(returns, annualization=365)
    )
    assert figures.calmar == pytest.approx(empyrical.calmar_ratio(returns, annualization=365))
    pnls = [day.pnl for day in series]
    wins, losses = [p for p in pnls if p > 0], [p for p in pnls if p < 0]
    assert wins and losses and figures.max_drawdown < 0
    assert (figures.winning_days, figures.losing_days) == (len(wins), len(losses))
    assert figures.win_rate == len(wins) / (len(wins) + len(losses))
    assert figures.profit_factor == pytest.approx(float(sum(wins) / -sum(losses)))
    assert (figures.largest_win, figures.largest_loss) == (max(wins), min(losses))
    assert figures.average_win == sum(wins) / len(wins)
    assert figures.total_pnl == sum(pnls) and figures.ending_equity == starting_cash + sum(pnls)


def test_a_fresh_platform_with_no_file_answers_every_query_with_no_rows(tmp_path: Path) -> None:
    for name in query_names():
        assert run_query(tmp_path, name, _parameters(name)).rows == [], name


def _parameters(name: str, **given: Any) -> dict[str, Any]:
    names = {p.name for p in load(name).parameters}
    return {key: value for key, value in {**PERIOD, "per_day": True, **given}.items()
            if key in names}  # fmt: skip


def test_an_empty_day_and_an_account_with_no_fills_answer_no_rows_or_their_denials(
    analytics: DuckDBAnalytics,
) -> None:
    before = {"day_start": FIRST_DAY - timedelta(days=3), "day_end": FIRST_DAY}
    for name in query_names():
        assert analytics.run(name, _parameters(name, **before)).rows == [], name
    for name in ("order_execution", "venue_execution", "markouts", "daily_pnl"):
        assert analytics.run(name, _parameters(name, account=DENIED_ONLY)).rows == [], name
    denials = analytics.run("success_rates", _parameters("success_rates", account=DENIED_ONLY))
    assert {(r["denied"], r["submitted"], r["denial_rate"]) for r in denials.records()} == {
        (1, 0, 1.0)
    }
    assert performance([], Decimal("100000")).sharpe is None


def test_unknown_queries_and_missing_parameters_are_refused_with_a_clear_message(
    analytics: DuckDBAnalytics,
) -> None:
    with pytest.raises(UnknownQuery, match="no query 'pnl'; the queries are: daily_pnl"):
        analytics.run("pnl", PERIOD)
    with pytest.raises(AnalyticsError, match=r"needs @per_day \(BOOL"):
        analytics.run("markouts", PERIOD)
    with pytest.raises(AnalyticsError, match="takes no parameter venue"):
        analytics.run("order_execution", {**PERIOD, "venue": "bybit"})


def test_a_file_its_writer_holds_is_waited_for_then_reported_busy(warehouse: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]);"
         " print('held', flush=True); sys.stdin.read()", str(warehouse / "market-data.duckdb")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(WarehouseBusy, match=r"market-data\.duckdb is held by its writer"):
            run_query(warehouse, "markouts", _parameters("markouts"), busy_timeout_s=0.2)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
    assert run_query(warehouse, "markouts", _parameters("markouts")).rows


# tradectl report and tradectl sql, and the README's examples through them ------------------

ROOT = Path(__file__).resolve().parents[2]
_EXAMPLE = re.compile(r"```sql\n(-- example: .*?)```", re.DOTALL)
_DAYS = ["--start", "2026-01-05", "--end", "2026-01-10"]


def _tradectl(*arguments: str) -> Result:
    return CliRunner().invoke(app, list(arguments), env={"COLUMNS": "250"})


def test_the_readmes_analytics_examples_run_on_duckdb_through_the_cli(warehouse: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    guide = readme.split("### Analytics: execution quality and performance", 1)[1]
    examples = _EXAMPLE.findall(guide.split("\n## ", 1)[0])
    assert len(examples) >= 3
    period = [f"day_start={FIRST_DAY.isoformat()}", f"day_end={PERIOD['day_end'].isoformat()}"]
    for example in examples:
        sqlglot.parse_one(example, read="bigquery")
        answer = run_query_text(warehouse, example)
        assert answer.rows, example
        shown = _tradectl("-o", "json", "sql", "--data", str(warehouse),
                          "-p", period[0], "-p", period[1], "--", example)  # fmt: skip
        assert shown.exit_code == 0, shown.output
        assert len(json.loads(shown.output)) == len(answer.rows)


def test_json_output_keeps_every_digit_of_a_warehouse_decimal() -> None:
    # DECIMAL(38, 18) holds 38 digits: more than Decimal's default context (28) keeps.
    value = Decimal("12345678901234567890.123456789012345678")
    answer = QueryResult(("amount",), [(value,), (Decimal("0E-18"),)])
    assert json.loads(result_json(answer)) == [{"amount": str(value)}, {"amount": "0"}]


def run_query_text(folder: Path, text: str) -> Any:
    with DuckDBAnalytics(folder) as analytics:
        return analytics.run_sql(text, PERIOD)


def test_tradectl_report_shows_the_venues_side_by_side_and_each_books_performance(
    warehouse: Path, trading: Trading
) -> None:
    shown = _tradectl("report", "--data", str(warehouse), *_DAYS)
    assert shown.exit_code == 0, shown.output
    for text in ("Execution quality by venue", "Markouts", "Requests per account and day",
                 "Performance", "ACC-1 / momentum", "Daily P&L", *VENUES_SHOWN):  # fmt: skip
        assert text in shown.output
    as_json = _tradectl("-o", "json", "report", "--data", str(warehouse), *_DAYS)
    body = json.loads(as_json.output)
    submitted = [o for o in trading.submitted() if o.submit_time < FIRST_DAY + timedelta(days=6)]
    assert sum(venue["orders"] for venue in body["venues"]) == len(submitted)
    last = body["daily_pnl"][-1]
    assert Decimal(last["cumulative_pnl"]) == sum(
        (Decimal(row["pnl"]) for row in body["daily_pnl"]
         if (row["account_id"], row["strategy_id"]) == (last["account_id"], last["strategy_id"])),
        ZERO,
    )  # fmt: skip
    assert set(body["performance"]) >= {"ACC-1", "ACC-1 / mean-revert", "ACC-2 / carry"}


VENUES_SHOWN = ("binance", "bybit", "simulation")


def test_tradectl_report_on_no_files_or_an_empty_period_says_there_was_no_trading(
    tmp_path: Path, warehouse: Path
) -> None:
    shown = _tradectl("report", "--data", str(tmp_path), *_DAYS)
    assert shown.exit_code == 0 and "No trading in 2026-01-05 to 2026-01-10" in shown.output
    early = _tradectl("report", "--data", str(warehouse), "--end", "2025-12-31")
    assert early.exit_code == 0 and "No trading in 2025-12-25 to 2025-12-31" in early.output
    backwards = _tradectl("report", "--data", str(warehouse), "--start", "2026-01-09",
                          "--end", "2026-01-05")  # fmt: skip
    assert backwards.exit_code == 2
    bad = _tradectl("sql", "--data", str(warehouse), "SELECT venue FROM trading.fills WHERE x = @x")
    assert bad.exit_code == 1 and "the query needs @x" in bad.output
