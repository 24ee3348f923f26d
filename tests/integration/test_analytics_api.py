"""The AnalyticsService (GetExecutionQuality, GetPerformance) on a real gRPC server over the
seeded week's DuckDB files (conftest.py): its answers are the report's figures (the one code
path `tradectl report` shows), money as exact decimal strings; bad ranges are INVALID_ARGUMENT
saying what to send; an empty day and an account with no fills answer empty lists. And the
BigQuery runner's SQL and typed parameters for the same queries."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import grpc
import pytest
from trading.v1 import analytics_pb2, analytics_pb2_grpc
from trading_core.analytics import DuckDBAnalytics, load
from trading_core.analytics.bigquery import BigQueryAnalytics
from trading_core.analytics.grpc_api import AnalyticsServicer
from trading_core.analytics.report import Period, trading_performance
from trading_core.config import Accounts
from trading_core.decimals import format_decimal

from tests.analytics_support import DAYS, DENIED_ONLY, FIRST_DAY, VENUES, Trading

FIRST = FIRST_DAY.date()
LAST = FIRST + timedelta(days=DAYS - 1)
WEEK = analytics_pb2.DateRange(start_date=FIRST.isoformat(), end_date=LAST.isoformat())
ACCOUNTS = Accounts(starting_cash_per_account={"ACC-2": Decimal("50000")})


@pytest.fixture(scope="module")
def stub(warehouse: Path) -> Iterator[analytics_pb2_grpc.AnalyticsServiceStub]:
    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    runner = DuckDBAnalytics(warehouse)
    servicer = AnalyticsServicer(runner, ACCOUNTS.starting_cash_of)
    analytics_pb2_grpc.add_AnalyticsServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield analytics_pb2_grpc.AnalyticsServiceStub(channel)
    finally:
        channel.close()
        server.stop(None)
        runner.close()


def test_get_performance_answers_the_reports_figures_with_money_as_exact_decimal_strings(
    stub: analytics_pb2_grpc.AnalyticsServiceStub, warehouse: Path
) -> None:
    answer = stub.GetPerformance(analytics_pb2.GetPerformanceRequest(date_range=WEEK), timeout=30)
    with DuckDBAnalytics(warehouse) as runner:
        report = trading_performance(
            runner, Period(FIRST, LAST), starting_cash_of=ACCOUNTS.starting_cash_of
        )
    assert [(p.account_id, p.strategy_id if p.HasField("strategy_id") else None)
            for p in answer.performances] == [
        (b.account_id, b.strategy_id) for b in report.books
    ]  # fmt: skip
    assert [p.account_id for p in answer.performances if not p.HasField("strategy_id")] == [
        "ACC-1", "ACC-2",
    ]  # fmt: skip
    for shown, book in zip(answer.performances, report.books, strict=True):
        figures = book.figures
        assert shown.starting_cash == format_decimal(ACCOUNTS.starting_cash_of(book.account_id))
        assert Decimal(shown.total_pnl) == figures.total_pnl
        assert Decimal(shown.ending_equity) == figures.starting_cash + figures.total_pnl
        assert Decimal(shown.max_drawdown) == figures.max_drawdown <= 0
        assert Decimal(shown.largest_loss) == figures.largest_loss
        assert Decimal(shown.average_win) == figures.average_win.quantize(Decimal("1e-8"))  # type: ignore[union-attr]
        assert (shown.days, shown.winning_days, shown.losing_days) == (
            DAYS, figures.winning_days, figures.losing_days,
        )  # fmt: skip
        assert shown.sharpe_ratio == figures.sharpe and shown.win_rate == figures.win_rate
        assert shown.HasField("sortino_ratio") == (figures.sortino is not None)
    by_book: dict[tuple[str, str], Decimal] = Counter()  # type: ignore[assignment]
    for day in answer.daily_pnls:
        by_book[day.account_id, day.strategy_id] += Decimal(day.pnl)
        assert date.fromisoformat(day.date) >= FIRST
    for shown in answer.performances:
        if shown.HasField("strategy_id"):
            assert Decimal(shown.total_pnl) == by_book[shown.account_id, shown.strategy_id]


def test_get_performance_of_one_strategy_answers_that_book_and_its_account(
    stub: analytics_pb2_grpc.AnalyticsServiceStub,
) -> None:
    request = analytics_pb2.GetPerformanceRequest(
        date_range=WEEK, account_id="ACC-1", strategy_id="momentum"
    )
    answer = stub.GetPerformance(request, timeout=30)
    assert [(p.account_id, p.strategy_id) for p in answer.performances] == [
        ("ACC-1", ""), ("ACC-1", "momentum"),
    ]  # fmt: skip
    assert {(d.account_id, d.strategy_id) for d in answer.daily_pnls} == {("ACC-1", "momentum")}
    assert answer.performances[0].total_pnl == answer.performances[1].total_pnl


def test_get_execution_quality_compares_the_venues_with_their_markouts_and_the_requests(
    stub: analytics_pb2_grpc.AnalyticsServiceStub, trading: Trading
) -> None:
    request = analytics_pb2.GetExecutionQualityRequest(date_range=WEEK)
    answer = stub.GetExecutionQuality(request, timeout=30)
    submitted = Counter(o.venue for o in trading.submitted())
    assert {v.venue: v.orders for v in answer.venues} == submitted
    for venue in answer.venues:
        orders = [o for o in trading.submitted() if o.venue == venue.venue]
        assert venue.rejected_orders == sum(o.rejected for o in orders)
        assert venue.fills == sum(len(o.fills) for o in orders)
        assert Decimal(venue.fees) == sum((f.fee for o in orders for f in o.fills), Decimal(0))
        assert Decimal(venue.notional) == sum(
            (f.notional for o in orders for f in o.fills), Decimal(0)
        )
        assert 0 < venue.accept_latency.p50_ms <= venue.accept_latency.p95_ms
        assert venue.HasField("slippage_bps") and venue.HasField("fill_rate")
        assert [m.horizon_seconds for m in venue.markouts] == [1, 5, 60]
        assert all(m.fills == m.marked_fills == venue.fills for m in venue.markouts)
    assert sum(r.requests for r in answer.request_outcomes) == len(trading.orders)
    assert sum(r.denied for r in answer.request_outcomes) == sum(o.denied for o in trading.orders)


def test_get_execution_quality_of_one_venue_answers_that_venue_alone(
    stub: analytics_pb2_grpc.AnalyticsServiceStub, trading: Trading
) -> None:
    request = analytics_pb2.GetExecutionQualityRequest(date_range=WEEK, venue=VENUES[1])
    answer = stub.GetExecutionQuality(request, timeout=30)
    assert [v.venue for v in answer.venues] == [VENUES[1]]
    assert answer.venues[0].orders == sum(o.venue == VENUES[1] for o in trading.submitted())


def test_an_empty_day_and_an_account_with_no_fills_answer_empty_lists_not_errors(
    stub: analytics_pb2_grpc.AnalyticsServiceStub,
) -> None:
    before = analytics_pb2.DateRange(start_date="2025-12-31")
    assert (
        stub.GetPerformance(analytics_pb2.GetPerformanceRequest(date_range=before), timeout=30)
        == analytics_pb2.GetPerformanceResponse()
    )
    assert (
        stub.GetExecutionQuality(
            analytics_pb2.GetExecutionQualityRequest(date_range=before), timeout=30
        )
        == analytics_pb2.GetExecutionQualityResponse()
    )
    none_filled = stub.GetPerformance(
        analytics_pb2.GetPerformanceRequest(date_range=WEEK, account_id=DENIED_ONLY), timeout=30
    )
    assert none_filled == analytics_pb2.GetPerformanceResponse()
    denials = stub.GetExecutionQuality(
        analytics_pb2.GetExecutionQualityRequest(date_range=WEEK, account_id=DENIED_ONLY),
        timeout=30,
    )
    assert not denials.venues
    assert {(r.denied, r.submitted, r.success_rate) for r in denials.request_outcomes} == {
        (1, 0, 0.0)
    }


@pytest.mark.parametrize(
    ("date_range", "says"),
    [
        (analytics_pb2.DateRange(), "date_range.start_date is required: the first day, as "
         "YYYY-MM-DD"),
        (analytics_pb2.DateRange(start_date="2026-1-5"), "date_range.start_date '2026-1-5' is "
         "not a day: send YYYY-MM-DD (UTC)"),
        (analytics_pb2.DateRange(start_date="2026-01-05", end_date="2026-02-30"),
         "date_range.end_date '2026-02-30' is not a day"),
        (analytics_pb2.DateRange(start_date="2026-01-09", end_date="2026-01-05"),
         "date_range: the period starts on 2026-01-09, after its last day 2026-01-05"),
        (analytics_pb2.DateRange(start_date="2000-01-01", end_date="2026-01-05"),
         "has 9502 days; at most 3660 in one report: split it"),
    ],
)  # fmt: skip
def test_a_missing_malformed_or_reversed_date_range_is_invalid_argument_saying_what_to_send(
    stub: analytics_pb2_grpc.AnalyticsServiceStub, date_range: analytics_pb2.DateRange, says: str
) -> None:
    for call in (
        lambda: stub.GetPerformance(analytics_pb2.GetPerformanceRequest(date_range=date_range)),
        lambda: stub.GetExecutionQuality(
            analytics_pb2.GetExecutionQualityRequest(date_range=date_range)
        ),
    ):
        with pytest.raises(grpc.RpcError) as refused:
            call()
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert says in (refused.value.details() or "")


def test_the_bigquery_runner_sends_the_query_as_written_on_the_dataset_with_typed_parameters() -> (
    None
):
    runner = BigQueryAnalytics("my-project", "trading_prod")
    start = datetime(2026, 1, 5, tzinfo=UTC)
    period = {"day_start": start, "day_end": start + timedelta(days=1), "account": "ACC-1"}
    text, config = runner.job("daily_pnl", {**period, "strategy": None})
    assert "FROM `my-project.trading_prod`.fills AS f" in text
    assert "GENERATE_DATE_ARRAY" in text and "trading.fills" not in text  # BigQuery's own SQL
    sent = {p.name: (p.type_, p.value) for p in config.query_parameters}
    assert sent == {
        "day_start": ("TIMESTAMP", start),
        "day_end": ("TIMESTAMP", start + timedelta(days=1)),
        "account": ("STRING", "ACC-1"),
        "strategy": ("STRING", None),  # NULL: every strategy, typed as the header declares
    }
    _, markouts = runner.job("markouts", {**period, "per_day": True})
    assert ("per_day", "BOOL", True) in {
        (p.name, p.type_, p.value) for p in markouts.query_parameters
    }
    declared = {p.name: p.type for p in load("venue_execution").parameters}
    _, venues = runner.job("venue_execution", {**period, "per_day": False})
    assert {p.name: p.type_ for p in venues.query_parameters} == declared
    assert runner.describe() == "BigQuery my-project.trading_prod"
