"""The account over gRPC: GetPortfolio after fills (cash, fees, equity and exposure agree with
the fills and position-management's P&L), and a daily-loss breach that moves the account to
REDUCING by itself, denies what would add to its position, lets a reduce-only order through,
and refuses a resume while the breach lasts."""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path

import grpc
import pytest
from trading.v1 import control_pb2, portfolio_pb2, types_pb2

from tests.e2e.conftest import Clients, embedded_overrides, running_embedded, write_config
from tests.e2e.test_trading_flow import (
    TIMEOUT,
    order_status,
    position_quantity,
    ready_for_market_orders,
    submit,
)
from tests.support import wait_until

FILLED = types_pb2.ORDER_STATUS_FILLED


def portfolio(clients: Clients, account: str) -> portfolio_pb2.Portfolio:
    request = portfolio_pb2.GetPortfolioRequest(account_id=account)
    answer: portfolio_pb2.Portfolio = clients.portfolio.GetPortfolio(
        request, timeout=TIMEOUT
    ).portfolio
    return answer


def test_the_portfolio_shows_cash_fees_and_equity_that_agree_with_the_fills(
    embedded: tuple[Clients, object],
) -> None:
    clients, _ = embedded
    account = "acct-portfolio"
    ready_for_market_orders(clients)
    untouched = portfolio(clients, account)
    assert (untouched.cash, untouched.equity, untouched.total_pnl) == ("100000", "100000", "0")

    buy = order_status(clients, submit(clients, account_id=account, quantity="0.02"), FILLED)
    sell = order_status(
        clients,
        submit(clients, account_id=account, quantity="0.01", side=types_pb2.SIDE_SELL),
        FILLED,
    )
    position_quantity(clients, account, "0.01")
    shown = portfolio(clients, account)
    fills = [(buy, Decimal("0.02")), (sell, Decimal("-0.01"))]
    paid = sum(Decimal(o.average_fill_price) * q for o, q in fills)
    fees = Decimal(buy.fees) + Decimal(sell.fees)
    assert Decimal(shown.cash) == Decimal(100_000) - paid - fees
    assert Decimal(shown.fees) == fees
    (holding,) = shown.holdings
    assert (holding.instrument, holding.position) == ("BTC-USD", "0.01")
    assert Decimal(shown.equity) == Decimal(shown.cash) + Decimal(holding.value)
    assert Decimal(shown.total_pnl) == Decimal(shown.equity) - 100_000
    assert shown.trading_state == types_pb2.TRADING_STATE_ACTIVE


def test_a_daily_loss_breach_moves_the_account_to_reducing_by_itself(tmp_path: Path) -> None:
    overrides = embedded_overrides(tmp_path / "data")
    # Any round of fees and spread loses more than this.
    overrides["risk"] = {"account": {"max_daily_loss": "0.05"}}
    account = "acct-breach"
    with running_embedded(write_config(tmp_path, overrides)) as clients:
        ready_for_market_orders(clients)
        order_status(clients, submit(clients, account_id=account, quantity="0.02"), FILLED)

        def reducing() -> control_pb2.TradingStateRecord | None:
            request = control_pb2.GetTradingStateRequest(account_id=account)
            (record,) = clients.control.GetTradingState(request, timeout=TIMEOUT).accounts
            return record if record.state == types_pb2.TRADING_STATE_REDUCING else None

        record = wait_until(reducing, TIMEOUT, "the breach to move the account to REDUCING")
        assert record.reason.startswith("daily loss ")
        assert "reached the limit 0.05" in record.reason

        more = submit(clients, account_id=account, quantity="0.01")
        assert more.denial_reason == types_pb2.DENIAL_REASON_TRADING_REDUCING
        less = submit(
            clients, account_id=account, quantity="0.01", side=types_pb2.SIDE_SELL, reduce_only=True
        )
        order_status(clients, less, FILLED)

        with pytest.raises(grpc.RpcError) as refused:
            clients.control.SetTradingState(
                control_pb2.SetTradingStateRequest(
                    request_id=str(uuid.uuid4()),
                    account_id=account,
                    state=types_pb2.TRADING_STATE_ACTIVE,
                    reason="try",
                ),
                timeout=TIMEOUT,
            )
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "daily loss" in (refused.value.details() or "")
        shown = portfolio(clients, account)
        uses = {use.name: use for use in shown.limits}
        assert Decimal(uses["max_daily_loss"].percent) >= 100
        assert shown.trading_state == types_pb2.TRADING_STATE_REDUCING
        position_quantity(clients, account, "0.01")


def test_get_portfolio_without_an_account_is_invalid(embedded: tuple[Clients, object]) -> None:
    clients, _ = embedded
    with pytest.raises(grpc.RpcError) as raised:
        portfolio(clients, "")
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
