"""Pre-trade risk over gRPC, on the embedded platform: a limit denies with its reason, open
orders count, a reducing order passes, and the risk view survives a restart."""

from __future__ import annotations

import uuid
from pathlib import Path

from trading.v1 import orders_pb2, types_pb2

from tests.e2e.conftest import Clients, embedded_overrides, running_embedded, write_config
from tests.e2e.test_trading_flow import order_status, ready_for_market_orders, submit

ACCOUNT = "acct-risk"
LIMITS = {"account": {"max_position_quantity": "0.05"}, "strategy": {"max_open_orders": 1}}


def test_position_limit_denies_growth_allows_reduction_and_survives_a_restart(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, {**embedded_overrides(tmp_path / "data"), "risk": LIMITS})
    with running_embedded(config) as clients:
        ready_for_market_orders(clients)
        bought = submit(clients, account_id=ACCOUNT, quantity="0.04")
        order_status(clients, bought, types_pb2.ORDER_STATUS_FILLED)

        # A resting bid far below the market counts as if it filled: 0.04 + 0.02 > 0.05.
        resting = resting_bid(clients, "0.02")
        assert resting.status == types_pb2.ORDER_STATUS_DENIED
        assert resting.denial_reason == types_pb2.DENIAL_REASON_POSITION_LIMIT_EXCEEDED
        assert "could reach a quantity of 0.06" in resting.status_message

        small = resting_bid(clients, "0.01")
        assert small.status == types_pb2.ORDER_STATUS_SUBMITTED
        # A sale would shrink the position, but the strategy has its one open order.
        second = submit(clients, account_id=ACCOUNT, side=types_pb2.SIDE_SELL, quantity="0.001")
        assert second.denial_reason == types_pb2.DENIAL_REASON_OPEN_ORDER_LIMIT_EXCEEDED

    with running_embedded(config) as clients:
        ready_for_market_orders(clients)
        again = submit(clients, account_id=ACCOUNT, strategy_id="other", quantity="0.01")
        assert again.denial_reason == types_pb2.DENIAL_REASON_POSITION_LIMIT_EXCEEDED
        reduce = submit(
            clients,
            account_id=ACCOUNT,
            strategy_id="other",
            side=types_pb2.SIDE_SELL,
            quantity="0.03",
        )
        assert reduce.status == types_pb2.ORDER_STATUS_SUBMITTED
        order_status(clients, reduce, types_pb2.ORDER_STATUS_FILLED)


def resting_bid(clients: Clients, quantity: str) -> orders_pb2.Order:
    """A buy limit far below the market: it rests."""
    return submit(
        clients,
        account_id=ACCOUNT,
        quantity=quantity,
        order_type=types_pb2.ORDER_TYPE_LIMIT,
        limit_price="1000",
    )


def test_modifies_and_cancels_count_toward_the_rate_limit_across_a_restart(
    tmp_path: Path,
) -> None:
    overrides = embedded_overrides(tmp_path / "data")
    overrides["order_defaults"] = {"rate_limit_orders": 3, "rate_limit_window_ms": 60_000}
    config = write_config(tmp_path, overrides)
    with running_embedded(config) as clients:
        ready_for_market_orders(clients)  # its warm-up orders are of another account
        first = order_status(clients, resting_bid(clients, "0.01"), types_pb2.ORDER_STATUS_ACCEPTED)
        modify = orders_pb2.ModifyOrderRequest(
            order_id=first.order_id,
            account_id=ACCOUNT,
            request_id=str(uuid.uuid4()),
            limit_price="1001",
        )
        assert not clients.orders.ModifyOrder(modify, timeout=10).refusal_reason
        cancel = orders_pb2.CancelOrderRequest(
            order_id=first.order_id, account_id=ACCOUNT, request_id=str(uuid.uuid4())
        )
        canceled = clients.orders.CancelOrder(cancel, timeout=10).order
        assert canceled.status == types_pb2.ORDER_STATUS_PENDING_CANCEL
        fourth = resting_bid(clients, "0.01")  # an order, a modify and a cancel: 3 in the window
        assert fourth.denial_reason == types_pb2.DENIAL_REASON_RATE_LIMIT_EXCEEDED
    with running_embedded(config) as clients:  # the counts survive a restart
        ready_for_market_orders(clients)
        again = resting_bid(clients, "0.01")
        assert again.denial_reason == types_pb2.DENIAL_REASON_RATE_LIMIT_EXCEEDED
