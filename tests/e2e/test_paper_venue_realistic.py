"""The paper venue's market model, switched on by config/local-realistic.yaml, through the
platform: a market order larger than the touch walks the book (depth, slippage, latency) and
fills in full at a worse average price than the touch it saw."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import yaml
from trading.v1 import execution_pb2, types_pb2

from tests.e2e.conftest import ROOT, embedded_overrides, running_embedded
from tests.e2e.test_trading_flow import (
    order_status,
    ready_for_market_orders,
    submit,
    wait_for_quote,
)


def test_a_market_order_larger_than_the_touch_walks_the_book_and_fills_in_full(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config.yaml"
    document = {
        "extends": str(ROOT / "config" / "local-realistic.yaml"),
        **embedded_overrides(tmp_path / "data"),
    }
    document["execution"] = {"simulation": {"reject_probability": 0}}  # no random reject here
    config.write_text(yaml.safe_dump(document), encoding="utf-8")
    with running_embedded(config) as clients:
        ready_for_market_orders(clients)
        wait_for_quote(clients, "SOL-USD")
        order = submit(clients, instrument="SOL-USD", quantity="12")  # the touch shows 5
        filled = order_status(clients, order, types_pb2.ORDER_STATUS_FILLED)
        assert Decimal(filled.filled_quantity) == Decimal(12)
        query = execution_pb2.QueryOrderRequest(
            order_id=order.order_id, account_id=order.account_id, instrument="SOL-USD"
        )
        reports = clients.router.QueryOrder(query, timeout=10).reports
        prices = [
            Decimal(r.execution_report.last_price) for r in reports if r.execution_report.trade_id
        ]
        assert len(prices) == 2  # 5 at the touch, then 7 of the 7.5 one tick further out
        assert prices == sorted(prices) and prices[0] < prices[-1]
        # Above the touch it met (not the ask read before: the synthetic market moves meanwhile).
        assert Decimal(filled.average_fill_price) > prices[0]
