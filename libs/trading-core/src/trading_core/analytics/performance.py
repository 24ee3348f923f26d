"""Trading performance from a daily P&L series (the `daily_pnl` query's): plain Python, no I/O.

Definitions:

- Equity starts at the account's starting cash (config `accounts`) and adds each day's P&L.
- A day's return is its P&L over the equity at the start of that day: compounding the returns
  gives back the equity curve.
- Wins and losses are days: a winning day has P&L > 0, a losing day < 0 (days at 0 are neither).
  win rate = winning days / (winning + losing days); profit factor = the winning days' P&L over
  the losing days' (absolute); average and largest win and loss are over those days.
- Max drawdown: the largest fall of equity from its running peak (the starting cash counts as
  the first peak), in money and as a fraction of the peak.
- Annualized with 365 days a year (crypto trades every day): Sharpe = mean / standard deviation
  (n - 1) of the daily returns x sqrt(365); Sortino = mean x 365 / (root mean square of the
  returns below 0, over all days, x sqrt(365)); annual return = (ending / starting equity) ^
  (365 / days) - 1; Calmar = annual return / |max drawdown|. No risk-free rate. A ratio without
  a meaning (fewer than two days, no spread, no losing day, no drawdown) is None.

Money (P&L, wins, losses, drawdown) stays exact Decimal; ratios are floats.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

DAYS_PER_YEAR = 365
ZERO = Decimal(0)


@dataclass(frozen=True)
class DailyPnl:
    day: date
    pnl: Decimal


@dataclass(frozen=True)
class Performance:
    starting_cash: Decimal
    days: int
    total_pnl: Decimal
    ending_equity: Decimal
    winning_days: int
    losing_days: int
    win_rate: float | None
    profit_factor: float | None
    average_win: Decimal | None
    average_loss: Decimal | None
    largest_win: Decimal | None
    largest_loss: Decimal | None
    max_drawdown: Decimal  # money, <= 0
    max_drawdown_ratio: float  # of the peak, <= 0
    annual_return: float | None
    sharpe: float | None
    sortino: float | None
    calmar: float | None
    returns: tuple[float, ...]


@dataclass(frozen=True)
class EquityPoint:
    """The equity at a day's end, the running peak (the starting cash is the first), and how
    far below it the equity is (<= 0)."""

    day: date
    equity: Decimal
    peak: Decimal

    @property
    def drawdown(self) -> Decimal:
        return self.equity - self.peak

    @property
    def drawdown_ratio(self) -> float:
        return float(self.drawdown / self.peak) if self.peak > 0 else 0.0


def equity_curve(series: Sequence[DailyPnl], starting_cash: Decimal) -> list[EquityPoint]:
    """The equity after each day of the series (the equity curve and its drawdown)."""
    points = []
    equity = peak = starting_cash
    for day in series:
        equity += day.pnl
        peak = max(peak, equity)
        points.append(EquityPoint(day.day, equity, peak))
    return points


def daily_returns(series: Sequence[DailyPnl], starting_cash: Decimal) -> list[float]:
    """Each day's P&L over the equity at its start."""
    returns = []
    equity = starting_cash
    for day in series:
        returns.append(float(day.pnl / equity) if equity else math.nan)
        equity += day.pnl
    return returns


def performance(series: Sequence[DailyPnl], starting_cash: Decimal) -> Performance:
    """The figures of a daily series (every day of the period, in order)."""
    pnls = [day.pnl for day in series]
    wins = [pnl for pnl in pnls if pnl > 0]
    losses = [pnl for pnl in pnls if pnl < 0]
    returns = daily_returns(series, starting_cash)
    curve = equity_curve(series, starting_cash)
    drawdown = min((point.drawdown for point in curve), default=ZERO)
    drawdown_ratio = min((point.drawdown_ratio for point in curve), default=0.0)
    ending = starting_cash + sum(pnls, ZERO)
    annual = _annual_return(starting_cash, ending, len(pnls))
    return Performance(
        starting_cash=starting_cash,
        days=len(pnls),
        total_pnl=sum(pnls, ZERO),
        ending_equity=ending,
        winning_days=len(wins),
        losing_days=len(losses),
        win_rate=len(wins) / (len(wins) + len(losses)) if wins or losses else None,
        profit_factor=float(sum(wins, ZERO) / -sum(losses, ZERO)) if losses else None,
        average_win=sum(wins, ZERO) / len(wins) if wins else None,
        average_loss=sum(losses, ZERO) / len(losses) if losses else None,
        largest_win=max(wins) if wins else None,
        largest_loss=min(losses) if losses else None,
        max_drawdown=drawdown,
        max_drawdown_ratio=drawdown_ratio,
        annual_return=annual,
        sharpe=_sharpe(returns),
        sortino=_sortino(returns),
        calmar=annual / -drawdown_ratio if annual is not None and drawdown_ratio < 0 else None,
        returns=tuple(returns),
    )


def _annual_return(starting: Decimal, ending: Decimal, days: int) -> float | None:
    if not days or starting <= 0 or ending <= 0:
        return None
    return math.pow(float(ending / starting), DAYS_PER_YEAR / days) - 1


def _sharpe(returns: Sequence[float]) -> float | None:
    if len(returns) < 2 or any(math.isnan(r) for r in returns):
        return None
    mean = math.fsum(returns) / len(returns)
    deviation = math.sqrt(math.fsum((r - mean) ** 2 for r in returns) / (len(returns) - 1))
    return mean / deviation * math.sqrt(DAYS_PER_YEAR) if deviation > 0 else None


def _sortino(returns: Sequence[float]) -> float | None:
    if len(returns) < 2 or any(math.isnan(r) for r in returns):
        return None
    mean = math.fsum(returns) / len(returns)
    downside = math.sqrt(math.fsum(min(r, 0.0) ** 2 for r in returns) / len(returns))
    return mean * DAYS_PER_YEAR / (downside * math.sqrt(DAYS_PER_YEAR)) if downside > 0 else None
