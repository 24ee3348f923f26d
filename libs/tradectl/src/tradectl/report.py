"""`tradectl report`: execution quality and trading performance over a period, in the terminal.

It runs the analytics queries itself on the warehouse the config chose: the DuckDB files
(`database.path`, or `--data`), READ_ONLY and only while a query runs, so it works while the
platform runs and when it is stopped; or the BigQuery dataset (`database.backend: bigquery`). The
figures are those of trading-core's `analytics.report`, which the AnalyticsService RPCs answer
with too. This module imports trading-core, which the client alone does not install
(`tradectl[analytics]`): the command imports it only when it runs.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from trading_core.analytics import DuckDBAnalytics, Result, query_names
from trading_core.analytics.report import BookPerformance, Period, Report, gather
from trading_core.analytics.runner import Analytics, open_analytics
from trading_core.config import Accounts, ConfigError, load_config
from trading_core.decimals import format_decimal

PERFORMANCE_FIELDS = (
    ("days", "days"), ("total_pnl", "P&L"), ("win_rate", "win rate"),
    ("profit_factor", "profit factor"), ("average_win", "avg win"), ("average_loss", "avg loss"),
    ("largest_win", "largest win"), ("largest_loss", "largest loss"),
    ("max_drawdown", "max drawdown"), ("max_drawdown_ratio", "drawdown %"),
    ("sharpe", "Sharpe"), ("sortino", "Sortino"), ("calmar", "Calmar"),
)  # fmt: skip


def warehouse_of(config: Path | None, data: Path | None) -> tuple[Analytics, Accounts]:
    """The runner of the config's warehouse (`data`: the DuckDB files of that folder instead)
    and the accounts' starting cash; ./data and the defaults without a config. A config that
    does not load is a ValueError saying so."""
    accounts = Accounts()
    if config is not None:
        try:
            loaded = load_config(config)
        except ConfigError as error:
            raise ValueError(str(error)) from None
        accounts = loaded.accounts
        if data is None:
            return open_analytics(loaded.database), accounts
    return DuckDBAnalytics(data or Path("data")), accounts


@dataclass(frozen=True)
class Answer:
    report: Report
    source: str  # where the queries ran: a folder, a dataset


def report_of(
    config: Path | None,
    data: Path | None,
    period: Period,
    *,
    account: str | None,
    strategy: str | None,
    venue: str | None,
    orders: bool,
) -> Answer:
    """The report on the config's warehouse; raises AnalyticsError with a clear message."""
    analytics, accounts = warehouse_of(config, data)
    try:
        found = gather(
            analytics, period, account=account, strategy=strategy, venue=venue, orders=orders,
            starting_cash_of=accounts.starting_cash_of,
        )  # fmt: skip
        return Answer(found, analytics.describe())
    finally:
        analytics.close()


def parameter_value(text: str) -> object:
    """A --param's value: true/false, null, an ISO time or day (UTC unless it says), else text."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if text.lower() == "null":
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def run_sql(analytics: Analytics, query: str, parameters: dict[str, object]) -> Result:
    """A stored query by name, a .sql file, or SQL text (BigQuery's dialect) on the DuckDB files
    (on BigQuery, run the same SQL with `bq query`)."""
    if not isinstance(analytics, DuckDBAnalytics):
        raise ValueError(
            f"tradectl sql runs on the DuckDB files, and the config's warehouse is "
            f"{analytics.describe()}: run the same SQL there (bq query), or give --data"
        )
    with analytics:
        if query in query_names():
            return analytics.run(query, parameters)
        if query.endswith(".sql") and Path(query).is_file():
            query = Path(query).read_text(encoding="utf-8")
        return analytics.run_sql(query, parameters)


def render_result(result: Result, console: Console) -> None:
    table = Table(*result.columns)
    for row in result.rows:
        table.add_row(*("NULL" if value is None else str(value) for value in row))
    console.print(table)
    console.print(f"{len(result)} rows")


def result_json(result: Result) -> str:
    return json.dumps(result.records(), default=_json_value, indent=2)


def _shown(value: Any, places: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, Decimal | float):
        return f"{value:,.{places}f}"
    return str(value)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


@dataclass(frozen=True)
class Tabled:
    """One table of the report as text, shown in the terminal (rich) and in the HTML alike."""

    title: str
    columns: tuple[str, ...]
    rows: list[tuple[str, ...]]


def tables(report: Report) -> list[Tabled]:
    """The report's tables, money at 2 decimals, latencies at 1, rates in percent."""
    return [
        table
        for table in (
            _venues(report.execution.venues),
            _markouts(report.execution.markouts),
            _requests(report.execution.requests),
            _shadow(report.execution.shadow),
            _shadow_fit(report.execution.shadow_fit),
            _venue_calls(report.execution.venue_calls),
            _performance(report.performance.books),
            _daily(report.performance.daily_pnl),
        )
        if table.rows
    ]


def _venues(rows: Sequence[dict[str, Any]]) -> Tabled:
    return Tabled("Execution quality by venue (latency in ms from submit; costs in bps)", (
        "venue", "orders", "fill rate", "rejected", "accept p50", "accept p95", "1st fill p50",
        "1st fill p95", "last fill p50", "last fill p95", "slippage", "fees", "shortfall",
        "shortfall (money)",
    ), [(
        row["venue"], str(row["orders"]), _percent(row["fill_rate"]),
        _percent(row["rejection_rate"]),
        *(_shown(row[f"{point}_{q}_ms"], 1) for point in ("accept", "first_fill", "last_fill")
          for q in ("p50", "p95")),
        _shown(row["slippage_bps"]), _shown(row["fee_bps"]), _shown(row["shortfall_bps"]),
        _shown(row["shortfall"]),
    ) for row in rows])  # fmt: skip


def _markouts(rows: Sequence[dict[str, Any]]) -> Tabled:
    horizons = sorted({row["horizon_s"] for row in rows})
    by_venue: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    for row in rows:
        by_venue[row["venue"]][row["horizon_s"]] = row
    return Tabled(
        "Markouts (bps; positive: the market moved in the fill's favour)",
        ("venue", "fills", *(f"{h} s" for h in horizons)),
        [
            (venue, str(next(iter(found.values()))["fills"]),
             *(_shown(found[h]["markout_bps"]) for h in horizons))
            for venue, found in sorted(by_venue.items())
        ],
    )  # fmt: skip


def _requests(rows: Sequence[dict[str, Any]]) -> Tabled:
    return Tabled("Requests per account and day", (
        "account", "day", "requests", "denied", "rejected", "filled", "success rate",
    ), [(
        row["account_id"], str(row["day"]), str(row["requests"]), str(row["denied"]),
        str(row["rejected"]), str(row["filled"]), _percent(row["success_rate"]),
    ) for row in rows])  # fmt: skip


def _shadow(rows: Sequence[dict[str, Any]]) -> Tabled:
    return Tabled(
        "Shadow simulation: the paper venue's model against each venue (price error in bps, "
        "positive: the venue cost more; time error in ms, positive: the venue was slower)", (
        "venue", "day", "orders", "both filled", "price err mean", "price err median",
        "time err mean", "time err median", "fill rate", "model fill rate", "fill rate diff",
    ), [(
        row["venue"], str(row["day"]), str(row["orders"]), str(row["both_filled"]),
        _shown(row["mean_price_error_bps"]), _shown(row["median_price_error_bps"]),
        _shown(row["mean_time_error_ms"], 1), _shown(row["median_time_error_ms"], 1),
        _percent(row["real_fill_rate"]), _percent(row["model_fill_rate"]),
        _percent(row["fill_rate_difference"]),
    ) for row in rows])  # fmt: skip


def _shadow_fit(rows: Sequence[dict[str, Any]]) -> Tabled:
    return Tabled(
        "Paper venue fitted to each venue's market orders (execution.simulation.slippage_bps, "
        "latency.mean_ms)", (
        "venue", "market orders", "slippage_bps", "latency mean_ms", "slippage vs mid (bps)",
        "price err mean (bps)",
    ), [(
        row["venue"], str(row["market_orders"]), _shown(row["slippage_bps"]),
        _shown(row["latency_mean_ms"], 1), _shown(row["median_slippage_mid_bps"]),
        _shown(row["mean_price_error_bps"]),
    ) for row in rows])  # fmt: skip


def _venue_calls(rows: Sequence[dict[str, Any]]) -> Tabled:
    return Tabled("Venue calls (latency of the answered calls, in ms)", (
        "venue", "operation", "day", "calls", "error rate", "refused", "failed", "timed out",
        "rate limited", "not sent", "p50", "p95", "p99",
    ), [(
        row["venue"], row["operation"], str(row["day"]), str(row["calls"]),
        _percent(row["error_rate"]), str(row["refused"]), str(row["failed"]),
        str(row["timed_out"]), str(row["rate_limited"]), str(row["not_sent"]),
        _shown(row["latency_p50_ms"], 1), _shown(row["latency_p95_ms"], 1),
        _shown(row["latency_p99_ms"], 1),
    ) for row in rows])  # fmt: skip


def _performance(books: Sequence[BookPerformance]) -> Tabled:
    shown = []
    for book in books:
        values = asdict(book.figures)
        shown.append((book.name, *(
            _percent(values[key]) if key in ("win_rate", "max_drawdown_ratio")
            else _shown(values[key]) for key, _ in PERFORMANCE_FIELDS
        )))  # fmt: skip
    return Tabled(
        "Performance (days as trades; ratios annualized over 365 days)",
        ("account / strategy", *(label for _, label in PERFORMANCE_FIELDS)),
        shown,
    )


def _daily(rows: Sequence[dict[str, Any]]) -> Tabled:
    return Tabled("Daily P&L (marked at each day's end)", (
        "account", "strategy", "day", "P&L", "fees", "fills", "exposure", "cumulative",
    ), [(
        row["account_id"], row["strategy_id"] or "-", str(row["day"]), _shown(row["pnl"]),
        _shown(row["fees"]), str(row["fills"]), _shown(row["exposure"]),
        _shown(row["cumulative_pnl"]),
    ) for row in rows])  # fmt: skip


def scope_of(report: Report) -> str:
    """The period and what the report covers, in words."""
    scope = report.account or "every account"
    if report.strategy:
        scope += f", strategy {report.strategy}"
    if report.venue:
        scope += f", venue {report.venue}"
    return f"{report.period.first} to {report.period.last} (UTC), {scope}"


def render(answer: Answer, console: Console) -> None:
    report = answer.report
    if report.empty:
        scope = scope_of(report).replace(" (UTC), ", " (UTC) for ", 1)
        console.print(f"No trading in {scope} (warehouse: {answer.source}).")
        return
    console.print(f"[bold]Report[/bold] {scope_of(report)}; warehouse {answer.source}")
    for tabled in tables(report):
        table = Table(title=tabled.title, title_justify="left")
        for number, column in enumerate(tabled.columns):
            table.add_column(
                column, justify="left" if number == 0 else "right", no_wrap=number == 0
            )
        for row in tabled.rows:
            table.add_row(*row)
        console.print(table)


def as_json(answer: Answer) -> str:
    """Every figure, for scripts: decimals as exact strings, dates ISO."""
    report = answer.report
    body = {
        "first_day": report.period.first,
        "last_day": report.period.last,
        "account": report.account,
        "strategy": report.strategy,
        "venue": report.venue,
        "venues": report.execution.venues,
        "markouts": report.execution.markouts,
        "requests": report.execution.requests,
        "shadow": report.execution.shadow,
        "shadow_fit": report.execution.shadow_fit,
        "venue_calls": report.execution.venue_calls,
        "daily_pnl": report.performance.daily_pnl,
        "performance": {book.name: asdict(book.figures) for book in report.performance.books},
    }
    return json.dumps(body, default=_json_value, indent=2)


def _json_value(value: object) -> object:
    if isinstance(value, Decimal):
        return format_decimal(value)  # exact: normalize() would round to 28 digits
    if isinstance(value, date | datetime):
        return value.isoformat()
    raise TypeError(f"cannot show {type(value).__name__}")
