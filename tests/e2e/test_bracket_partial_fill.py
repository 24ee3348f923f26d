"""A bracket whose entry fills in part and goes on working, on a market the test sets: its
stop-loss guards what filled from the first fill. When the stop triggers, the entry's remainder
is canceled and the stop closes everything the entry filled; the take-profit is canceled; the
account ends flat. Quotes come from the test on the platform's bus (the synthetic feed ticks
once a minute), so the partial fill and the trigger happen exactly when it says."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from tradectl.serve import service_specs
from trading.v1 import events_pb2, orders_pb2, types_pb2
from trading_core.config import load_config
from trading_core.events import timestamp
from trading_core.quotes import Quote
from trading_core.runtime import Platform, build_platform

from tests.e2e.conftest import SERVICE_MODULES, Clients, embedded_overrides, write_config
from tests.e2e.test_order_types import finished, get_order, submit_order
from tests.e2e.test_trading_flow import TIMEOUT, order_status, position_quantity
from tests.support import wait_until

T = types_pb2
ACCOUNT = "acct-partial-bracket"


@dataclass
class Market:
    """The test's market: it publishes each instrument's quote as the feed would."""

    platform: Platform

    def quote(
        self,
        instrument: str,
        bid: str,
        ask: str,
        size: str,
        source: str = "synthetic",
        asks: Sequence[tuple[str, str]] = (),
    ) -> None:
        """The top (`size` on each side), and with `asks` the ask side's book levels."""
        quote = Quote(
            instrument,
            Decimal(bid),
            Decimal(ask),
            Decimal(size),
            Decimal(size),
            datetime.now(UTC),
            source=source,
            asks=tuple((Decimal(price), Decimal(amount)) for price, amount in asks),
        )
        event = events_pb2.Event(
            event_id=str(uuid.uuid4()),
            event_time=timestamp(quote.time),
            instrument=instrument,
            quote_updated=events_pb2.QuoteUpdated(quote=quote.to_proto()),
        )
        self.platform.bus.publish("market-data", event.SerializeToString(), ordering_key=instrument)


@pytest.fixture
def market(tmp_path: Path) -> Iterator[tuple[Clients, Market]]:
    overrides = embedded_overrides(tmp_path / "data")
    overrides["market_data"] = {"interval_ms": 60_000}  # the test sets the market
    platform = build_platform(load_config(write_config(tmp_path, overrides)), service_specs())
    platform.start()
    market = Market(platform)
    for instrument, price in (("BTC-USD", "60000"), ("ETH-USD", "3000"), ("SOL-USD", "150")):
        market.quote(instrument, price, str(Decimal(price) + 10), "1")
    assert platform.wait_ready(30), "the platform did not become ready on the test's quotes"
    clients = Clients({name: platform.address(name) for name in SERVICE_MODULES})
    yield clients, market
    clients.close()
    platform.stop()


def test_a_partly_filled_entrys_stop_loss_guards_what_filled_and_closes_it(
    market: tuple[Clients, Market],
) -> None:
    clients, prices = market
    prices.quote("BTC-USD", "60000", "60010", "0.01")  # the ask shows 0.01
    response = submit_order(
        clients,
        account_id=ACCOUNT,
        order_type=T.ORDER_TYPE_LIMIT,
        limit_price="60010",
        quantity="0.03",
        order_class=T.ORDER_CLASS_BRACKET,
        take_profit=orders_pb2.TakeProfit(limit_price="61000"),
        stop_loss=orders_pb2.StopLoss(trigger_price="59000"),
    )
    entry = response.order
    take_profit, stop_loss = response.legs
    partly = order_status(clients, entry, T.ORDER_STATUS_PARTIALLY_FILLED)
    assert Decimal(partly.filled_quantity) == Decimal("0.01")

    # The bid falls through the stop; the ask stays above the entry's limit: it keeps working.
    prices.quote("BTC-USD", "58990", "60020", "0.01")
    done = finished(clients, entry)
    assert done.status == T.ORDER_STATUS_CANCELED
    assert Decimal(done.filled_quantity) == Decimal("0.01")

    def stop_working() -> orders_pb2.Order | None:
        shown = get_order(clients, stop_loss)
        return shown if shown.status != T.ORDER_STATUS_HELD else None

    sent = wait_until(stop_working, TIMEOUT, "the stop-loss to be released")
    assert Decimal(sent.quantity) == Decimal("0.01")
    prices.quote("BTC-USD", "58990", "59010", "1")  # the market order fills on a quote
    assert finished(clients, stop_loss).status == T.ORDER_STATUS_FILLED
    assert finished(clients, take_profit).status == T.ORDER_STATUS_CANCELED
    position_quantity(clients, ACCOUNT, "0")
