"""The account: cash and equity from fills (a property test against position-management's own
P&L model: money is conserved), the day's start, the high-water mark, breaches of the daily-loss
and drawdown limits, the use of each limit, and the equity-based risk limits (leverage,
concentration) with their reason codes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from order_management.domain.account import Account, limit_uses, percent
from order_management.domain.risk import ExposureBook, RiskEngine
from position_management.domain.positions import Fill, Position
from trading.v1 import types_pb2
from trading_core.config import Risk, RiskLimits

from tests.unit.test_order_validation import NOW, QUOTE, order_request

BUY, SELL = types_pb2.SIDE_BUY, types_pb2.SIDE_SELL
START = Decimal(100_000)

fills = st.lists(
    st.tuples(
        st.sampled_from([BUY, SELL]),
        st.decimals(min_value=Decimal("0.01"), max_value=5, places=2),
        st.decimals(min_value=1, max_value=1000, places=2),
        st.decimals(min_value=0, max_value=1, places=2),
    ),
    min_size=1,
    max_size=30,
)


@given(fills, st.decimals(min_value=1, max_value=1000, places=2))
def test_equity_less_starting_cash_is_the_pnl_position_management_computes_less_fees(
    trades: list[tuple[int, Decimal, Decimal, Decimal]], mark: Decimal
) -> None:
    account = Account.opened("acc-1", START)
    position = Position("acc-1", "BTC-USD")
    held = Decimal(0)
    for number, (side, quantity, price, fee) in enumerate(trades):
        signed = quantity if side == BUY else -quantity
        account.fill(signed, price, fee)
        held += signed
        position.apply_fill(
            Fill(str(number), "o", "acc-1", "BTC-USD", side, quantity, price, fee, NOW)  # type: ignore[arg-type]
        )
    position.mark(mark, NOW)
    equity = account.cash + held * mark
    pnl = position.net_realized_pnl + position.unrealized_pnl
    assert abs((equity - START) - pnl) <= Decimal("1e-12")
    assert account.fees == sum((fee for *_, fee in trades), Decimal(0))


def test_the_day_starts_at_the_first_equity_seen_on_it_and_the_high_water_mark_only_rises() -> None:
    account = Account.opened("acc-1", START)
    assert account.observe(START, NOW)
    assert (account.day, account.day_start_equity) == (NOW.date(), START)
    assert not account.observe(START - 500, NOW + timedelta(hours=1))
    assert account.daily_pnl(START - 500) == -500
    assert account.drawdown_percent(START - 500) == Decimal("0.5")
    assert account.observe(START + 200, NOW + timedelta(hours=2))
    assert account.high_water_mark == START + 200
    tomorrow = datetime(2024, 5, 2, 0, 1, tzinfo=UTC)
    assert account.observe(START + 100, tomorrow)
    assert (account.day_start_equity, account.daily_pnl(START + 100)) == (START + 100, Decimal(0))


@pytest.mark.parametrize(
    ("limits", "equity", "message"),
    [
        (
            RiskLimits(max_daily_loss=Decimal(1000)),
            START - 1000,
            "daily loss 1000 reached the limit 1000 (equity 99000, 100000 at the day's start)",
        ),
        (
            RiskLimits(max_drawdown_percent=Decimal(5)),
            START * Decimal("0.95"),
            "drawdown 5.00% reached the limit 5% (equity 95000, high-water mark 100000)",
        ),
    ],
)
def test_a_loss_reaching_its_limit_is_a_breach_naming_the_figures(
    limits: RiskLimits, equity: Decimal, message: str
) -> None:
    account = Account.opened("acc-1", START)
    account.observe(START, NOW)
    assert account.breach(equity, limits) == message
    assert account.breach(equity + Decimal("0.01"), limits) is None


def test_each_limit_set_shows_its_use_in_percent() -> None:
    book = ExposureBook()
    book.set_mark("BTC-USD", Decimal(50_000))
    book.fill("acc-1", "s", "BTC-USD", Decimal(1), Decimal(50_000), now=NOW)
    account = Account.opened("acc-1", START)
    account.observe(START, NOW)
    limits = RiskLimits(
        max_gross_exposure=Decimal(200_000),
        max_leverage=Decimal(2),
        max_daily_loss=Decimal(1000),
    )
    uses = {
        u.name: u.percent
        for u in limit_uses(limits, account, START - 250, book.exposure(("acc-1",)))
    }
    assert uses == {
        "max_gross_exposure": Decimal("25.00"),
        "max_leverage": Decimal("25.06"),  # 50,000 / 99,750 of 2
        "max_daily_loss": Decimal("25.00"),
    }
    assert percent(Decimal(1), Decimal(0)) == 100


EQUITY_CASES = [
    (
        {"max_leverage": "1"},
        Decimal(50_000),
        types_pb2.DENIAL_REASON_LEVERAGE_EXCEEDS_LIMIT,
        "the gross exposure of account acc-1 could reach 60000 ",
    ),
    (
        {"max_concentration_percent": "50"},
        Decimal(100_000),
        types_pb2.DENIAL_REASON_CONCENTRATION_EXCEEDS_LIMIT,
        "the BTC-USD position of account acc-1 could be worth 60000 ",
    ),
]
EQUITY_REASONS = frozenset(case[2] for case in EQUITY_CASES)


@pytest.mark.parametrize(("limits", "equity", "reason", "message"), EQUITY_CASES)
def test_an_order_beyond_an_equity_limit_is_denied_and_one_within_it_passes(
    limits: dict[str, str], equity: Decimal, reason: int, message: str
) -> None:
    engine = RiskEngine(Risk.model_validate({"account": limits}))
    book = ExposureBook()
    book.set_mark("BTC-USD", Decimal(60_000))
    request = order_request(quantity=Decimal(1))
    denial = engine.check(request, QUOTE, book, Decimal(60_000), NOW, equity=equity)
    assert denial is not None
    assert denial.reason == reason
    assert denial.message.startswith(message)
    assert engine.check(request, QUOTE, book, Decimal(60_000), NOW, equity=equity * 2) is None
