"""Shadow simulation and venue calls end to end: the embedded platform in direct mode against the
Binance spot fake (a real HTTP server on loopback), `execution.shadow.enabled`. A market order
fills at the fake's market price; the paper venue's model of it fills at the arrival quote's ask
plus the configured slippage, 25 ms after the send; both reach the warehouse (DuckDB), with the
router's calls to the exchange in venue_calls. The warehouse is read once the platform has stopped
(tradectl sql's runner)."""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from typing import Any

import yaml
from trading.v1 import types_pb2
from trading_core.analytics import DuckDBAnalytics

from tests.e2e.conftest import running_embedded
from tests.e2e.test_network_venues import binance, credentials, direct_config  # noqa: F401
from tests.e2e.test_order_types import finished, submit_order
from tests.e2e.test_trading_flow import TIMEOUT, ready_for_market_orders
from tests.fakes.binance_spot import FakeBinanceSpot

T = types_pb2
SLIPPAGE_BPS = Decimal("2")
LATENCY_MS = 25


def shadow_config(tmp_path: Path, fake: FakeBinanceSpot) -> Path:
    path = direct_config(tmp_path, fake)
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    document["execution"]["shadow"] = {"enabled": True}
    document["execution"]["simulation"] = {
        "slippage_bps": str(SLIPPAGE_BPS),
        "fee_bps": "10",
        "latency": {"distribution": "fixed", "mean_ms": LATENCY_MS},
    }
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def rows(data: Path, sql: str, order_id: str) -> list[dict[str, Any]]:
    with DuckDBAnalytics(data) as analytics:
        parameters = {"order_id": order_id} if "@order_id" in sql else {}
        return analytics.run_sql(sql, parameters).records()


def test_an_order_sent_to_an_exchange_is_shadowed_and_its_venue_calls_recorded(
    tmp_path: Path,
    binance: FakeBinanceSpot,  # noqa: F811
) -> None:
    data = tmp_path / "data"
    with running_embedded(shadow_config(tmp_path, binance)) as clients:
        ready_for_market_orders(clients)
        order = submit_order(clients, order_type=T.ORDER_TYPE_MARKET, quantity="0.01").order
        done = finished(clients, order)
        assert (done.status, done.average_fill_price) == (T.ORDER_STATUS_FILLED, "60000")

    # Stopped: the router journaled what its recorders held, the feeder fed it.
    (model,) = rows(
        data, "SELECT * FROM trading.shadow_executions WHERE order_id = @order_id", order.order_id
    )
    calls = rows(
        data, "SELECT * FROM trading.venue_calls WHERE order_id = @order_id", order.order_id
    )

    # The model: the arrival ask plus 2 bps, up to the tick (0.01); fee 10 bps up to the cent.
    arrival = model["arrival_price"]
    price = (arrival * (1 + SLIPPAGE_BPS / 10_000)).quantize(Decimal("0.01"), ROUND_CEILING)
    fee = (Decimal("0.01") * price / 1000).quantize(Decimal("0.01"), ROUND_CEILING)
    assert (model["venue"], model["execution_type"], model["side"]) == ("binance", "FILLED", "BUY")
    assert (model["quantity"], model["price"], model["fee"]) == (Decimal("0.01"), price, fee)
    assert model["order_quantity"] == model["cumulative_quantity"] == Decimal("0.01")
    assert (model["model_time"] - model["send_time"]).total_seconds() * 1000 == LATENCY_MS
    assert model["account_id"] == order.account_id
    assert model["arrival_mid"] is not None and arrival > model["arrival_mid"]

    (submit,) = [call for call in calls if call["operation"] == "SUBMIT"]
    assert (submit["venue"], submit["outcome"], submit["attempts"]) == ("binance", "ANSWERED", 1)
    assert submit["error_class"] is None
    assert 0 < submit["latency_us"] < TIMEOUT * 1_000_000
    assert (submit["account_id"], submit["instrument"]) == (order.account_id, "BTC-USD")


def test_a_rate_limited_submit_is_recorded_as_such_then_the_one_that_went_through(
    tmp_path: Path,
    binance: FakeBinanceSpot,  # noqa: F811
) -> None:
    data = tmp_path / "data"
    with running_embedded(shadow_config(tmp_path, binance)) as clients:
        ready_for_market_orders(clients)
        binance.fault("429", retry_after_s=0)  # refused, nothing applied: sent again at once
        order = submit_order(clients, order_type=T.ORDER_TYPE_MARKET, quantity="0.01").order
        assert finished(clients, order).status == T.ORDER_STATUS_FILLED

    # The next order sent (a warm-up order may still have been on its way) met the 429.
    submits = rows(
        data,
        "SELECT * FROM trading.venue_calls WHERE order_id IN (SELECT order_id FROM "
        "trading.venue_calls WHERE outcome = 'RATE_LIMITED') ORDER BY start_time",
        "",
    )
    assert [(c["operation"], c["outcome"], c["error_class"]) for c in submits] == [
        ("SUBMIT", "RATE_LIMITED", "DDoSProtection"),
        ("SUBMIT", "ANSWERED", None),
    ]
    assert submits[0]["start_time"] < submits[1]["start_time"]
