"""What people are shown of the analytics, computed once: execution quality per venue and trading
performance per account and strategy over a period of whole UTC days. `tradectl report` (its
tables, JSON and HTML) and the AnalyticsService RPCs (GetExecutionQuality, GetPerformance) both
answer from these functions, on whichever warehouse the config chose (`runner.Analytics`).

An empty period, an account with no fills, a warehouse with no table yet: empty lists, never
an error.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from trading_core.analytics.performance import DailyPnl, Performance, performance
from trading_core.analytics.queries import AnalyticsError
from trading_core.analytics.runner import Analytics

# The longest period one report covers: the daily P&L makes a row per book and day.
MAX_PERIOD_DAYS = 3660
Row = dict[str, Any]


@dataclass(frozen=True)
class Period:
    first: date
    last: date  # inclusive

    def __post_init__(self) -> None:
        if self.first > self.last:
            raise AnalyticsError(
                f"the period starts on {self.first}, after its last day {self.last}: "
                "give the first day, then the last"
            )
        if self.days > MAX_PERIOD_DAYS:
            raise AnalyticsError(
                f"the period {self.first} to {self.last} has {self.days} days; at most "
                f"{MAX_PERIOD_DAYS} in one report: split it"
            )

    @property
    def parameters(self) -> dict[str, datetime]:
        start = datetime.combine(self.first, time(), UTC)
        return {"day_start": start, "day_end": start + timedelta(days=self.days)}

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1


@dataclass
class ExecutionQuality:
    """Rows of the stored queries (their columns: README, `queries/*.sql`)."""

    venues: list[Row] = field(default_factory=list)  # venue_execution, over the period
    markouts: list[Row] = field(default_factory=list)  # per venue and horizon
    requests: list[Row] = field(default_factory=list)  # success_rates: per account and day
    orders: list[Row] = field(default_factory=list)  # order_execution, when asked for
    # Shadow simulation (execution.shadow): the model against each network venue, per day, and
    # the paper venue's parameters fitted to it; the venues' call outcomes and latency.
    shadow: list[Row] = field(default_factory=list)  # shadow_comparison
    shadow_fit: list[Row] = field(default_factory=list)  # shadow_fit
    venue_calls: list[Row] = field(default_factory=list)  # venue_calls


@dataclass(frozen=True)
class BookPerformance:
    """The figures of an account (strategy None: all its strategies together) or of one of its
    strategies ("" for fills whose order's submit is not in the warehouse)."""

    account_id: str
    strategy_id: str | None
    series: tuple[DailyPnl, ...]
    figures: Performance

    @property
    def name(self) -> str:
        if self.strategy_id is None:
            return self.account_id
        return f"{self.account_id} / {self.strategy_id or '-'}"


@dataclass
class TradingPerformance:
    daily_pnl: list[Row] = field(default_factory=list)  # daily_pnl: per account, strategy, day
    books: list[BookPerformance] = field(default_factory=list)  # accounts, then their strategies


@dataclass
class Report:
    period: Period
    account: str | None
    strategy: str | None
    venue: str | None
    execution: ExecutionQuality
    performance: TradingPerformance

    @property
    def empty(self) -> bool:
        return not (self.execution.venues or self.execution.requests or self.performance.daily_pnl)


def execution_quality(
    analytics: Analytics,
    period: Period,
    *,
    account: str | None = None,
    venue: str | None = None,
    orders: bool = False,
    shadow: bool = True,
) -> ExecutionQuality:
    """Per venue (one venue, or every one) over the period; `orders`: each order's row too (for
    distributions); `shadow`: the shadow simulation's and venue calls' rows too (three more
    queries). Requests are per account: a denied order never reached a venue."""
    given = {**period.parameters, "account": account}

    def rows(name: str, **more: object) -> list[Row]:
        found = analytics.run(name, {**given, **more}).records()
        return [row for row in found if venue is None or row["venue"] == venue]

    return ExecutionQuality(
        venues=rows("venue_execution", per_day=False),
        markouts=rows("markouts", per_day=False),
        requests=analytics.run("success_rates", given).records(),
        orders=rows("order_execution") if orders else [],
        shadow=rows("shadow_comparison") if shadow else [],
        shadow_fit=rows("shadow_fit") if shadow else [],
        venue_calls=rows("venue_calls") if shadow else [],
    )


def trading_performance(
    analytics: Analytics,
    period: Period,
    *,
    account: str | None = None,
    strategy: str | None = None,
    starting_cash_of: Callable[[str], Decimal],
) -> TradingPerformance:
    """The daily P&L and the figures of each account and each of its strategies; equity starts
    at `starting_cash_of(account)`."""
    parameters = {**period.parameters, "account": account, "strategy": strategy}
    daily = analytics.run("daily_pnl", parameters).records()
    series: dict[tuple[str, str | None], dict[date, Decimal]] = defaultdict(
        lambda: defaultdict(Decimal)
    )
    for row in daily:
        series[row["account_id"], None][row["day"]] += row["pnl"]
        series[row["account_id"], row["strategy_id"]][row["day"]] += row["pnl"]
    books = []
    for (account_id, strategy_id), days in sorted(series.items(), key=_accounts_first):
        pnls = tuple(DailyPnl(day, days[day]) for day in sorted(days))
        figures = performance(pnls, starting_cash_of(account_id))
        books.append(BookPerformance(account_id, strategy_id, pnls, figures))
    return TradingPerformance(daily, books)


def _accounts_first(item: tuple[tuple[str, str | None], object]) -> tuple[str, bool, str]:
    (account_id, strategy_id), _ = item
    return account_id, strategy_id is not None, strategy_id or ""


def gather(
    analytics: Analytics,
    period: Period,
    *,
    account: str | None = None,
    strategy: str | None = None,
    venue: str | None = None,
    orders: bool = False,
    starting_cash_of: Callable[[str], Decimal],
) -> Report:
    """Both halves. With a strategy, only its performance: orders carry no strategy in the
    execution queries."""
    execution = (
        ExecutionQuality()
        if strategy is not None
        else execution_quality(analytics, period, account=account, venue=venue, orders=orders)
    )
    trading = trading_performance(
        analytics, period, account=account, strategy=strategy, starting_cash_of=starting_cash_of
    )
    return Report(period, account, strategy, venue, execution, trading)
