"""The account: cash, fees, equity, the day's start and the high-water mark. Plain data and
arithmetic, no I/O; prices and the clock are passed in.

Cash starts at `accounts.starting_cash` and moves with every fill: a buy pays quantity * price,
a sale takes it in, and every fee is paid. Equity is cash plus every position at its mark, so a
fill changes equity only by its fee and by the gap between its price and the mark: money is
conserved.

The day's start is the equity first seen on a UTC day (before that day's first fill), so the
daily P&L is realized and unrealized together. The high-water mark is the highest equity seen;
the drawdown is how far below it equity is, in percent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from trading_core.config import RiskLimits
from trading_core.decimals import ZERO, format_decimal

from order_management.domain.risk import Exposure

_HUNDRED = Decimal(100)


@dataclass
class Account:
    account_id: str
    starting_cash: Decimal
    cash: Decimal
    fees: Decimal = ZERO
    day: date | None = None
    day_start_equity: Decimal = ZERO
    high_water_mark: Decimal = ZERO

    @classmethod
    def opened(cls, account_id: str, starting_cash: Decimal) -> Account:
        return cls(account_id, starting_cash, starting_cash, high_water_mark=starting_cash)

    def fill(self, signed_quantity: Decimal, price: Decimal, fee: Decimal) -> None:
        """A fill of `signed_quantity` (a sale is negative) at `price`, paying `fee`."""
        self.cash -= signed_quantity * price + fee
        self.fees += fee

    def observe(self, equity: Decimal, now: datetime) -> bool:
        """Notes the equity at `now`: a new day's start, a new high. Whether either changed."""
        today = now.astimezone(UTC).date()
        changed = False
        if self.day != today:
            self.day, self.day_start_equity, changed = today, equity, True
        if equity > self.high_water_mark:
            self.high_water_mark, changed = equity, True
        return changed

    def daily_pnl(self, equity: Decimal) -> Decimal:
        return equity - self.day_start_equity if self.day is not None else ZERO

    def drawdown_percent(self, equity: Decimal) -> Decimal:
        if self.high_water_mark <= 0 or equity >= self.high_water_mark:
            return ZERO
        return (self.high_water_mark - equity) / self.high_water_mark * _HUNDRED

    def breach(self, equity: Decimal, limits: RiskLimits) -> str | None:
        """Why the account's loss breaks its daily-loss or drawdown limit, or None."""
        loss = -self.daily_pnl(equity)
        if limits.max_daily_loss is not None and loss >= limits.max_daily_loss:
            return (
                f"daily loss {format_decimal(loss)} reached the limit "
                f"{format_decimal(limits.max_daily_loss)} (equity {format_decimal(equity)}, "
                f"{format_decimal(self.day_start_equity)} at the day's start)"
            )
        drawdown = self.drawdown_percent(equity)
        limit = limits.max_drawdown_percent
        if limit is not None and drawdown >= limit:
            return (
                f"drawdown {drawdown:.2f}% reached the limit {format_decimal(limit)}% (equity "
                f"{format_decimal(equity)}, high-water mark {format_decimal(self.high_water_mark)})"
            )
        return None


def percent(used: Decimal, limit: Decimal) -> Decimal:
    """used / limit in percent, two decimals (a limit of zero is used up by anything)."""
    if limit <= 0:
        return _HUNDRED if used > 0 else ZERO
    return (used / limit * _HUNDRED).quantize(Decimal("0.01"))


@dataclass(frozen=True)
class LimitUse:
    name: str
    limit: Decimal
    used: Decimal

    @property
    def percent(self) -> Decimal:
        return percent(self.used, self.limit)


def limit_uses(
    limits: RiskLimits, account: Account, equity: Decimal, exposure: Exposure
) -> list[LimitUse]:
    """How much of each of an account's limits that are set it uses now (an order's own
    quantity limit has no standing use)."""
    holdings = exposure.holdings.values()
    largest_value = max((h.worst_value for h in holdings), default=ZERO)
    used = {
        "max_position_quantity": max((h.worst() for h in holdings), default=ZERO),
        "max_position_value": largest_value,
        "max_gross_exposure": exposure.gross,
        "max_net_exposure": exposure.net,
        "max_open_orders": Decimal(exposure.open_orders),
        "max_leverage": exposure.gross / equity if equity > 0 else exposure.gross,
        "max_concentration_percent": largest_value / equity * _HUNDRED if equity > 0 else ZERO,
        "max_daily_loss": max(-account.daily_pnl(equity), ZERO),
        "max_drawdown_percent": account.drawdown_percent(equity),
    }
    return [
        LimitUse(name, Decimal(limit), value)
        for name, value in used.items()
        if (limit := getattr(limits, name)) is not None
    ]
