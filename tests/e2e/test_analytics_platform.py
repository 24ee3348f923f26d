"""The analytics on a running platform: an order's execution quality read from the warehouse
files while the feeders write them, and through tradectl report."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from tradectl.cli import app
from trading.v1 import types_pb2
from trading_core.analytics import DuckDBAnalytics
from typer.testing import CliRunner

from tests.e2e.conftest import SERVICE_MODULES, Clients, embedded_overrides, start_embedded
from tests.e2e.conftest import write_config as write_platform_config
from tests.e2e.test_lifecycle import _submit
from tests.e2e.test_trading_flow import order_status, ready_for_market_orders
from tests.support import wait_until

ACCOUNT = "acct-analytics"


def test_a_filled_order_is_read_from_the_warehouse_while_the_platform_runs(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    overrides = embedded_overrides(data)
    overrides["database"] = {**overrides["database"], "flush_interval_ms": 100}  # type: ignore[dict-item]
    platform = start_embedded(write_platform_config(tmp_path, overrides))
    clients = Clients({name: platform.address(name) for name in SERVICE_MODULES})
    today = datetime.combine(datetime.now(UTC).date(), time(), UTC)
    period = {"day_start": today - timedelta(days=1), "day_end": today + timedelta(days=2)}
    try:
        ready_for_market_orders(clients)
        order = _submit(clients, ACCOUNT, types_pb2.ORDER_TYPE_MARKET, "0.01")
        order_status(clients, order, types_pb2.ORDER_STATUS_FILLED)
        with DuckDBAnalytics(data) as analytics:

            def filled() -> dict[str, Any] | None:
                rows = analytics.run("order_execution", {**period, "account": ACCOUNT})
                found = [r for r in rows.records() if r["last_report"] == "FILLED"]
                return found[0] if found else None

            row = wait_until(filled, timeout=30, message="the order's fill in the warehouse")
            horizons = analytics.run("markouts", {**period, "account": ACCOUNT, "per_day": False})
            marked = {r["horizon_s"]: r["marked"] for r in horizons.records()}
        shown = CliRunner().invoke(app, ["report", "--data", str(data), "--account", ACCOUNT])
    finally:
        clients.close()
        platform.stop()
    assert row["order_id"] == order.order_id and row["venue"] == "simulation"
    assert row["fill_rate"] == 1.0 and row["filled_quantity"] == Decimal("0.01")
    assert 0 <= row["accept_ms"] <= row["first_fill_ms"] <= row["last_fill_ms"]
    average = row["notional"] / row["filled_quantity"]
    arrival = row["arrival_mid"]
    assert row["slippage_bps"] == pytest.approx(float((average - arrival) / arrival) * 1e4)
    # A minute has not passed since the fill: its 60 s markout is not marked by a stale quote.
    assert marked[60] == 0
    assert shown.exit_code == 0, shown.output
    assert "simulation" in shown.output and ACCOUNT in shown.output
