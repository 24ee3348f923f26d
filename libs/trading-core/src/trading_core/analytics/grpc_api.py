"""The AnalyticsService gRPC API: GetExecutionQuality and GetPerformance answer from
`analytics.report` (what `tradectl report` shows) on the config's warehouse.

A request names its days as YYYY-MM-DD; a missing, malformed or reversed range is
INVALID_ARGUMENT saying what to send. A warehouse file its feeder holds for too long is
UNAVAILABLE (try again); a query the warehouse refuses (a BigQuery dataset that is not there, no
permission) is FAILED_PRECONDITION with the warehouse's words.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

import grpc
from trading.v1 import analytics_pb2, analytics_pb2_grpc

from trading_core.analytics.performance import Performance
from trading_core.analytics.queries import AnalyticsError
from trading_core.analytics.report import (
    BookPerformance,
    Period,
    Row,
    execution_quality,
    trading_performance,
)
from trading_core.analytics.runner import Analytics, open_analytics
from trading_core.analytics.warehouse import WarehouseBusy
from trading_core.config import PlatformConfig
from trading_core.decimals import format_decimal, quantize
from trading_core.errors import InvalidArgument, grpc_errors
from trading_core.requests import optional_text

# Averages are divisions: shown rounded to this many decimals.
AVERAGE_DECIMALS = 8
_ERRORS: dict[type[Exception], grpc.StatusCode] = {
    WarehouseBusy: grpc.StatusCode.UNAVAILABLE,
    AnalyticsError: grpc.StatusCode.FAILED_PRECONDITION,
}


def add_analytics_servicer(config: PlatformConfig, server: grpc.Server) -> Sequence[str]:
    """Serves the API on `server`, from the config's warehouse; returns its full name."""
    servicer = AnalyticsServicer(open_analytics(config.database), config.accounts.starting_cash_of)
    analytics_pb2_grpc.add_AnalyticsServiceServicer_to_server(servicer, server)
    return [analytics_pb2.DESCRIPTOR.services_by_name["AnalyticsService"].full_name]


class AnalyticsServicer(analytics_pb2_grpc.AnalyticsServiceServicer):
    def __init__(self, analytics: Analytics, starting_cash_of: Callable[[str], Decimal]) -> None:
        self._analytics = analytics
        self._starting_cash_of = starting_cash_of

    @grpc_errors(_ERRORS)
    def GetExecutionQuality(  # noqa: N802
        self, request: analytics_pb2.GetExecutionQualityRequest, context: grpc.ServicerContext
    ) -> analytics_pb2.GetExecutionQualityResponse:
        period = period_of(request.date_range)
        found = execution_quality(
            self._analytics,
            period,
            account=optional_text(request.account_id, "account_id") or None,
            venue=optional_text(request.venue, "venue") or None,
            shadow=False,  # not in the response
        )
        markouts: dict[str, list[analytics_pb2.Markout]] = defaultdict(list)
        for row in found.markouts:
            markouts[row["venue"]].append(_markout(row))
        return analytics_pb2.GetExecutionQualityResponse(
            venues=[_venue(row, markouts[row["venue"]]) for row in found.venues],
            request_outcomes=[_outcomes(row) for row in found.requests],
        )

    @grpc_errors(_ERRORS)
    def GetPerformance(  # noqa: N802
        self, request: analytics_pb2.GetPerformanceRequest, context: grpc.ServicerContext
    ) -> analytics_pb2.GetPerformanceResponse:
        period = period_of(request.date_range)
        found = trading_performance(
            self._analytics,
            period,
            account=optional_text(request.account_id, "account_id") or None,
            strategy=optional_text(request.strategy_id, "strategy_id") or None,
            starting_cash_of=self._starting_cash_of,
        )
        return analytics_pb2.GetPerformanceResponse(
            performances=[_book(book) for book in found.books],
            daily_pnls=[_daily(row) for row in found.daily_pnl],
        )


def period_of(given: analytics_pb2.DateRange) -> Period:
    """The request's days; InvalidArgument saying what to send."""
    first = _day(given.start_date, "date_range.start_date")
    last = _day(given.end_date, "date_range.end_date") if given.end_date else first
    try:
        return Period(first, last)
    except AnalyticsError as error:
        raise InvalidArgument(f"date_range: {error}") from None


def _day(text: str, field: str) -> date:
    if not text:
        raise InvalidArgument(f"{field} is required: the first day, as YYYY-MM-DD (UTC)")
    try:
        if len(text) != len("YYYY-MM-DD"):
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        shown = text[:32]
        raise InvalidArgument(f"{field} {shown!r} is not a day: send YYYY-MM-DD (UTC)") from None


def _set(**fields: Any) -> dict[str, Any]:
    """The fields that have a value (optional fields stay unset for None)."""
    return {name: value for name, value in fields.items() if value is not None}


def _latency(row: Row, point: str) -> analytics_pb2.Latency:
    return analytics_pb2.Latency(
        **_set(p50_ms=row[f"{point}_p50_ms"], p95_ms=row[f"{point}_p95_ms"])
    )


def _venue(row: Row, markouts: list[analytics_pb2.Markout]) -> analytics_pb2.VenueExecution:
    return analytics_pb2.VenueExecution(
        venue=row["venue"],
        orders=row["orders"],
        rejected_orders=row["rejected"],
        filled_orders=row["filled_orders"],
        fills=row["fills"],
        accept_latency=_latency(row, "accept"),
        first_fill_latency=_latency(row, "first_fill"),
        last_fill_latency=_latency(row, "last_fill"),
        notional=format_decimal(row["notional"]),
        fees=format_decimal(row["fees"]),
        shortfall=format_decimal(row["shortfall"]),
        markouts=markouts,
        **_set(
            rejection_rate=row["rejection_rate"],
            fill_rate=row["fill_rate"],
            slippage_bps=row["slippage_bps"],
            fee_bps=row["fee_bps"],
            shortfall_bps=row["shortfall_bps"],
        ),
    )


def _markout(row: Row) -> analytics_pb2.Markout:
    return analytics_pb2.Markout(
        horizon_seconds=row["horizon_s"],
        fills=row["fills"],
        marked_fills=row["marked"],
        **_set(markout_bps=row["markout_bps"]),
    )


def _outcomes(row: Row) -> analytics_pb2.RequestOutcomes:
    counts = ("requests", "denied", "submitted", "rejected", "filled")
    rates = ("denial_rate", "rejection_rate", "success_rate", "fill_rate")
    return analytics_pb2.RequestOutcomes(
        account_id=row["account_id"],
        date=row["day"].isoformat(),
        **{name: row[name] for name in counts},
        **_set(**{name: row[name] for name in rates}),
    )


def _book(book: BookPerformance) -> analytics_pb2.BookPerformance:
    figures: Performance = book.figures
    return analytics_pb2.BookPerformance(
        account_id=book.account_id,
        starting_cash=format_decimal(figures.starting_cash),
        days=figures.days,
        total_pnl=format_decimal(figures.total_pnl),
        ending_equity=format_decimal(figures.ending_equity),
        winning_days=figures.winning_days,
        losing_days=figures.losing_days,
        average_win=_average(figures.average_win),
        average_loss=_average(figures.average_loss),
        largest_win=format_decimal(figures.largest_win),
        largest_loss=format_decimal(figures.largest_loss),
        max_drawdown=format_decimal(figures.max_drawdown),
        max_drawdown_ratio=figures.max_drawdown_ratio,
        **_set(
            strategy_id=book.strategy_id,
            win_rate=figures.win_rate,
            profit_factor=figures.profit_factor,
            annual_return=figures.annual_return,
            sharpe_ratio=figures.sharpe,
            sortino_ratio=figures.sortino,
            calmar_ratio=figures.calmar,
        ),
    )


def _average(value: Decimal | None) -> str:
    return "" if value is None else format_decimal(quantize(value, AVERAGE_DECIMALS))


def _daily(row: Row) -> analytics_pb2.DailyPnl:
    return analytics_pb2.DailyPnl(
        account_id=row["account_id"],
        strategy_id=row["strategy_id"],
        date=row["day"].isoformat(),
        pnl=format_decimal(row["pnl"]),
        fees=format_decimal(row["fees"]),
        fills=row["fills"],
        notional=format_decimal(row["notional"]),
        exposure=format_decimal(row["exposure"]),
        cumulative_pnl=format_decimal(row["cumulative_pnl"]),
    )
