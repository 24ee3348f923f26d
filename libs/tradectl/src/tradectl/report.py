"""`tradectl report`: execution quality and trading performance over a period, in the terminal.

It reads the warehouse's DuckDB files itself (`database.path` of the config, or `--data`),
through trading-core's analytics runner, READ_ONLY and only while a query runs, so it works
while the platform runs and when it is stopped, and needs no server to answer: the queries are
the ones an analyst runs on BigQuery (`trading_core/analytics/queries`). This module imports
trading-core, which the client alone does not install (`tradectl[analytics]`): the command
imports it only when it runs.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from trading_core.analytics import DuckDBAnalytics, Result, query_names
from trading_core.analytics.performance import DailyPnl, Performance, performance
from trading_core.config import Accounts, ConfigError, load_config

PERFORMANCE_FIELDS = (
    ("days", "days"), ("total_pnl", "P&L"), ("win_rate", "win rate"),
    ("profit_factor", "profit factor"), ("average_win", "avg win"), ("average_loss", "avg loss"),
    ("largest_win", "largest win"), ("largest_loss", "largest loss"),
    ("max_drawdown", "max drawdown"), ("max_drawdown_ratio", "drawdown %"),
    ("sharpe", "Sharpe"), ("sortino", "Sortino"), ("calmar", "Calmar"),
)  # fmt: skip


@dataclass(frozen=True)
class Period:
    first: date
    last: date  # inclusive

    @property
    def parameters(self) -> dict[str, datetime]:
        start = datetime.combine(self.first, time(), UTC)
        return {"day_start": start, "day_end": start + timedelta(days=self.days)}

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1


@dataclass
class Report:
    folder: Path
    period: Period
    account: str | None
    strategy: str | None
    venues: list[dict[str, Any]] = field(default_factory=list)
    markouts: list[dict[str, Any]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    daily_pnl: list[dict[str, Any]] = field(default_factory=list)
    performance: dict[str, Performance] = field(default_factory=dict)  # account or account/strategy

    @property
    def empty(self) -> bool:
        return not (self.venues or self.requests or self.daily_pnl)


def warehouse_of(config: Path | None) -> tuple[Path, Accounts]:
    """The DuckDB files' folder and the accounts' starting cash from the config; `data` and the
    defaults without one. A config that does not load, or whose warehouse is not DuckDB, is a
    ValueError saying so."""
    if config is None:
        return Path("data"), Accounts()
    try:
        loaded = load_config(config)
    except ConfigError as error:
        raise ValueError(f"{config}: {error}") from None
    path = getattr(loaded.database, "path", None)
    if path is None:
        raise ValueError(
            f"{config}: database.backend is {loaded.database.backend}; tradectl report reads "
            "the DuckDB files (query BigQuery with the same SQL), or give --data"
        )
    return Path(path), loaded.accounts


def gather(
    folder: Path,
    period: Period,
    *,
    account: str | None,
    strategy: str | None,
    starting_cash_of: Callable[[str], Decimal],
) -> Report:
    """Runs the queries; raises trading_core.analytics.AnalyticsError with a clear message."""
    report = Report(folder, period, account, strategy)
    given = {**period.parameters, "account": account}
    with DuckDBAnalytics(folder) as analytics:
        if strategy is None:  # execution quality is per account (orders carry no strategy here)
            report.venues = analytics.run("venue_execution", {**given, "per_day": False}).records()
            report.markouts = analytics.run("markouts", {**given, "per_day": False}).records()
            report.requests = analytics.run("success_rates", given).records()
        report.daily_pnl = analytics.run("daily_pnl", {**given, "strategy": strategy}).records()
    series: dict[str, dict[date, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for row in report.daily_pnl:
        series[row["account_id"]][row["day"]] += row["pnl"]
        series[f"{row['account_id']} / {row['strategy_id'] or '-'}"][row["day"]] += row["pnl"]
    for name, days in sorted(series.items()):
        cash = starting_cash_of(name.split(" / ")[0])
        report.performance[name] = performance(
            [DailyPnl(day, days[day]) for day in sorted(days)], cash
        )
    return report


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


def run_sql(folder: Path, query: str, parameters: dict[str, object]) -> Result:
    """A stored query by name, a .sql file, or SQL text (BigQuery's dialect) on the files."""
    with DuckDBAnalytics(folder) as analytics:
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
    if isinstance(value, Decimal):
        return f"{value:,.{places}f}"
    if isinstance(value, float):
        return f"{value:,.{places}f}"
    return str(value)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _table(title: str, columns: Sequence[str]) -> Table:
    table = Table(title=title, title_justify="left")
    for number, column in enumerate(columns):
        table.add_column(column, justify="left" if number == 0 else "right", no_wrap=number == 0)
    return table


def render(report: Report, console: Console) -> None:
    period = f"{report.period.first} to {report.period.last} (UTC)"
    scope = report.account or "every account"
    if report.strategy:
        scope += f", strategy {report.strategy}"
    if report.empty:
        console.print(f"No trading in {period} for {scope} (warehouse: {report.folder}).")
        return
    console.print(f"[bold]Report[/bold] {period}, {scope}; warehouse {report.folder}")
    if report.venues:
        venues = _table("Execution quality by venue (latency in ms from submit; costs in bps)", (
            "venue", "orders", "fill rate", "rejected", "accept p50", "accept p95",
            "1st fill p50", "1st fill p95", "last fill p50", "last fill p95", "slippage",
            "fees", "shortfall", "shortfall (money)",
        ))  # fmt: skip
        for row in report.venues:
            venues.add_row(
                row["venue"], str(row["orders"]), _percent(row["fill_rate"]),
                _percent(row["rejection_rate"]),
                *(_shown(row[f"{point}_{q}_ms"], 1) for point in ("accept", "first_fill",
                  "last_fill") for q in ("p50", "p95")),
                _shown(row["slippage_bps"]), _shown(row["fee_bps"]),
                _shown(row["shortfall_bps"]), _shown(row["shortfall"]),
            )  # fmt: skip
        console.print(venues)
    if report.markouts:
        horizons = sorted({row["horizon_s"] for row in report.markouts})
        table = _table(
            "Markouts (bps; positive: the market moved in the fill's favour)",
            ("venue", "fills", *(f"{h} s" for h in horizons)),
        )
        by_venue: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
        for row in report.markouts:
            by_venue[row["venue"]][row["horizon_s"]] = row
        for venue, rows in sorted(by_venue.items()):
            fills = str(next(iter(rows.values()))["fills"])
            table.add_row(venue, fills, *(_shown(rows[h]["markout_bps"]) for h in horizons))
        console.print(table)
    if report.requests:
        table = _table("Requests per account and day", (
            "account", "day", "requests", "denied", "rejected", "filled", "success rate",
        ))  # fmt: skip
        for row in report.requests:
            table.add_row(
                row["account_id"], str(row["day"]), str(row["requests"]), str(row["denied"]),
                str(row["rejected"]), str(row["filled"]), _percent(row["success_rate"]),
            )  # fmt: skip
        console.print(table)
    if report.performance:
        table = _table(
            "Performance (days as trades; ratios annualized over 365 days)",
            ("account / strategy", *(label for _, label in PERFORMANCE_FIELDS)),
        )
        for name, figures in report.performance.items():
            values = asdict(figures)
            table.add_row(name, *(
                _percent(values[key]) if key in ("win_rate", "max_drawdown_ratio")
                else _shown(values[key]) for key, _ in PERFORMANCE_FIELDS
            ))  # fmt: skip
        console.print(table)
        daily = _table("Daily P&L (marked at each day's end)", (
            "account", "strategy", "day", "P&L", "fees", "fills", "exposure", "cumulative",
        ))  # fmt: skip
        for row in report.daily_pnl:
            daily.add_row(
                row["account_id"], row["strategy_id"] or "-", str(row["day"]),
                _shown(row["pnl"]), _shown(row["fees"]), str(row["fills"]),
                _shown(row["exposure"]), _shown(row["cumulative_pnl"]),
            )  # fmt: skip
        console.print(daily)


def as_json(report: Report) -> str:
    """Every figure, for scripts: decimals as exact strings, dates ISO."""
    body = {
        "first_day": report.period.first,
        "last_day": report.period.last,
        "account": report.account,
        "strategy": report.strategy,
        "venues": report.venues,
        "markouts": report.markouts,
        "requests": report.requests,
        "daily_pnl": report.daily_pnl,
        "performance": {name: asdict(f) for name, f in report.performance.items()},
    }
    return json.dumps(body, default=_json_value, indent=2)


def _json_value(value: object) -> object:
    if isinstance(value, Decimal):
        return f"{value.normalize():f}"
    if isinstance(value, date | datetime):
        return value.isoformat()
    raise TypeError(f"cannot show {type(value).__name__}")
