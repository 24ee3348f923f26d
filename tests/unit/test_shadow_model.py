"""Shadow simulation's model (execution_router.domain.shadow) from fixed quotes: exact prices,
fees and model times."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from execution_router.domain.shadow import ShadowModel
from trading.v1 import types_pb2
from trading_core.config import SimulationLatency, SimulationVenue

from tests.unit.test_paper_venue import BTC, BUY, SELL, T0, limit, market, quote

FILLED = types_pb2.EXECUTION_TYPE_FILLED
CANCELED = types_pb2.EXECUTION_TYPE_CANCELED
REJECTED = types_pb2.EXECUTION_TYPE_REJECTED
LATENCY = SimulationLatency(distribution="fixed", mean_ms=40)


def model(**settings: object) -> ShadowModel:
    counter = itertools.count(1)
    venue = SimulationVenue(
        slippage_bps=Decimal("2"), fee_bps=Decimal("10"), latency=LATENCY, **settings
    )
    return ShadowModel(venue, {"BTC-USD": BTC}, new_id=lambda: f"id-{next(counter)}")


def test_a_market_buy_fills_at_the_arrival_ask_plus_slippage_after_the_latency() -> None:
    shadow = model()

    reports = shadow.submit(market("o-1", BUY, "0.5"), "binance", quote(), T0)

    # 60006 * 1.0002 = 60018.0012 -> up to the tick 60018.01; fee 0.5 * 60018.01 / 1000 =
    # 30.009005 -> up to the cent 30.01. The model's book is reached 40 ms after the send.
    [fill] = reports
    assert fill.report.execution_type == FILLED
    assert fill.report.last_price == Decimal("60018.01")
    assert fill.report.last_quantity == Decimal("0.5")
    assert fill.report.fee == Decimal("30.01")
    assert fill.report.trade_id == "id-2"
    assert fill.model_time == T0 + timedelta(milliseconds=40)
    assert fill.shadowed.send_time == T0
    assert fill.shadowed.venue == "binance"
    assert fill.shadowed.arrival == quote()
    assert shadow.open_orders == 0


def test_a_market_sell_fills_at_the_arrival_bid_less_slippage_rounded_down() -> None:
    [fill] = model().submit(market("o-1", SELL, "1"), "bybit", quote(), T0)

    # 59994 * 0.9998 = 59982.0012 -> down to 59982.00
    assert fill.report.last_price == Decimal("59982.00")
    assert fill.report.fee == Decimal("59.99")  # 59.982 up to the cent


def test_a_resting_limit_fills_on_a_later_quote_that_crosses_it_at_that_quotes_time() -> None:
    shadow = model()
    assert shadow.submit(limit("o-1", BUY, "1", "59990"), "binance", quote(), T0) == []
    assert shadow.open_orders == 1

    later = T0 + timedelta(seconds=3)
    [fill] = shadow.on_quote(quote(bid="59980", ask="59989"), later)

    assert (fill.report.execution_type, fill.report.last_price) == (FILLED, Decimal("59989"))
    assert fill.model_time == later
    assert shadow.open_orders == 0


def test_the_model_order_is_canceled_when_the_real_order_finishes_first() -> None:
    shadow = model()
    shadow.submit(limit("o-1", BUY, "1", "59000"), "binance", quote(), T0)

    [end] = shadow.close("o-1", T0 + timedelta(seconds=1))

    assert end.report.execution_type == CANCELED
    assert end.report.cumulative_quantity == Decimal(0)
    assert end.report.message.startswith("the real order finished first")
    assert shadow.close("o-1", T0 + timedelta(seconds=2)) == []  # once
    assert shadow.on_quote(quote(bid="58000", ask="58500"), T0 + timedelta(seconds=3)) == []


def test_closing_an_order_the_model_has_filled_or_never_had_reports_nothing() -> None:
    shadow = model()
    shadow.submit(market("o-1", BUY, "0.1"), "binance", quote(), T0)

    assert shadow.close("o-1", T0) == []
    assert shadow.close("unknown", T0) == []


def test_an_order_the_paper_venue_refuses_is_a_model_rejection() -> None:
    order = market("o-1", BUY, "0")

    [end] = model().submit(order, "binance", quote(), T0)

    assert end.report.execution_type == REJECTED
    assert "quantity must be positive" in end.report.message


def test_stop_orders_a_venue_holds_natively_are_not_modelled() -> None:
    order = market("o-1", BUY, "1")
    assert ShadowModel.models(order)
    held = replace(order, order_type=types_pb2.ORDER_TYPE_STOP_MARKET)
    assert not ShadowModel.models(held)
