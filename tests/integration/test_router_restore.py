"""The router's restart with a simulated venue: what it puts back into the paper book keeps the
venue-form fields, on a real journal. The venue's calls are made directly (no worker thread, no
bus delivery), so each step is synchronous."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from execution_router.service import SCHEMA, ExecutionRouter
from trading.v1 import events_pb2, orders_pb2, types_pb2
from trading_core.bus.memory import InMemoryBus
from trading_core.config import PlatformConfig, load_config
from trading_core.events import timestamp
from trading_core.journal import Journal, Transaction
from trading_core.quotes import Quote
from trading_core.service import ServiceContext

T0 = datetime(2024, 1, 2, 9, 30, tzinfo=UTC)
CONFIG = Path(__file__).resolve().parents[2] / "config" / "local.yaml"


@dataclass
class Clock:
    moment: datetime = T0

    def now(self) -> datetime:
        return self.moment


@pytest.fixture
def config() -> PlatformConfig:
    return load_config(CONFIG, environ={})


@pytest.fixture
def bus() -> Iterator[InMemoryBus]:
    bus = InMemoryBus()
    yield bus
    bus.close()


def router(path: Path, config: PlatformConfig, bus: InMemoryBus, clock: Clock) -> ExecutionRouter:
    return ExecutionRouter(ServiceContext(config, bus, Journal(path, SCHEMA), clock))


def receive(service: ExecutionRouter, order: orders_pb2.Order) -> None:
    """The SubmitOrder command arrives, is journaled, then reaches the venue."""
    command = events_pb2.Command(
        order_id=order.order_id,
        account_id=order.account_id,
        instrument=order.instrument,
        submit_order=events_pb2.SubmitOrder(order=order),
    )
    transaction = Transaction()
    with service.lock:
        service._on_command(command, transaction)
    service.commit(transaction, waited=True).wait()
    service.venues["simulation"].client.submit_order(service._open[order.order_id].order)


def quote(ask: str, size: str, moment: datetime) -> Quote:
    return Quote("BTC-USD", Decimal("59900"), Decimal(ask), Decimal(size), Decimal(size), moment)


def reports(service: ExecutionRouter, order_id: str) -> list[events_pb2.ExecutionReport]:
    service.journal.sync_point().wait()
    kept = service.journal.records_of_order(order_id, "ExecutionReport")
    return [events_pb2.Event.FromString(k.record.payload).execution_report for k in kept]


def buy(
    order_id: str, order_type: types_pb2.OrderType.ValueType, **fields: object
) -> orders_pb2.Order:
    return orders_pb2.Order(
        order_id=order_id,
        account_id="acct-1",
        instrument="BTC-USD",
        side=types_pb2.SIDE_BUY,
        order_type=order_type,
        quantity="8",
        **fields,  # type: ignore[arg-type]
    )


def test_market_to_limit_remainder_rests_at_its_first_fill_price_after_a_restart(
    tmp_path: Path, config: PlatformConfig, bus: InMemoryBus
) -> None:
    path, clock = tmp_path / "router.journal", Clock()
    before = router(path, config, bus, clock)
    before.venues["simulation"].client.on_quote(quote("60006", "5", T0))
    receive(
        before,
        buy("mtl", types_pb2.ORDER_TYPE_MARKET_TO_LIMIT, time_in_force=types_pb2.TIME_IN_FORCE_GTC),
    )
    before.venues["simulation"].client.on_quote(
        quote("59990", "1", T0)
    )  # 1 more at a better ask: average 60003.33…
    assert [r.last_price for r in reports(before, "mtl") if r.trade_id] == ["60006", "59990"]
    before.journal.close()

    after = router(path, config, bus, clock)
    after._restore()
    after.venues["simulation"].client.on_quote(
        quote("60005", "5", T0)
    )  # above the average, below the first fill

    last = reports(after, "mtl")[-1]
    assert last.execution_type == types_pb2.EXECUTION_TYPE_FILLED
    assert (last.last_quantity, last.last_price, last.cumulative_quantity) == ("2", "60005", "8")
    after.journal.close()


def test_gtd_iceberg_keeps_its_display_and_expires_after_a_restart(
    tmp_path: Path, config: PlatformConfig, bus: InMemoryBus
) -> None:
    path, clock = tmp_path / "router.journal", Clock()
    expires = T0 + timedelta(minutes=5)
    before = router(path, config, bus, clock)
    order = buy(
        "gtd",
        types_pb2.ORDER_TYPE_LIMIT,
        limit_price="60000",
        time_in_force=types_pb2.TIME_IN_FORCE_GTD,
        expire_time=timestamp(expires),
        display_quantity="3",
    )
    receive(before, order)  # no quote yet: it rests
    before.journal.close()

    after = router(path, config, bus, clock)
    after._restore()
    after.venues["simulation"].client.on_quote(quote("59999", "5", T0))
    clock.moment = expires
    after.venues["simulation"].client.on_quote(quote("59999", "5", expires))

    fill, expired = reports(after, "gtd")[-2:]
    assert (fill.last_quantity, fill.cumulative_quantity) == ("3", "3")
    assert expired.execution_type == types_pb2.EXECUTION_TYPE_EXPIRED
    assert expired.message == "good-till-date: expired at 2024-01-02T09:35:00+00:00; 5 unfilled"
    after.journal.close()
