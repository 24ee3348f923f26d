"""The execution router with a network venue on loopback: the Binance spot fake of the tests (a
real HTTP server speaking Binance's REST) behind the CCXT adapter, all in this process with the
in-memory bus and a real journal.

- `venue_call_us`: the baseline, measured in the same run: the adapter alone sending an order
  (CCXT, HTTP on loopback, the fake's answer, until the adapter's first report), p50/p99.
- `command_to_venue_us`: a SubmitOrder command published on `orders` until the fake receives
  the order: the router's own path (bus, journal commit before the send, the venue worker,
  the adapter's request), p50/p99, one order at a time.
- `reports_per_s`: a burst of market orders, each ACCEPTED and FILLED by the fake's answer; the
  execution reports the router publishes per second, with this process's CPU time per order.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from execution_router.domain.venue_types import VenueOrder
from execution_router.service import SCHEMA, ExecutionRouter
from execution_router.venues.binance import CcxtBinanceSpotClient
from trading.v1 import events_pb2, orders_pb2, types_pb2
from trading_core.bus.base import Message
from trading_core.bus.memory import InMemoryBus
from trading_core.clock import SystemClock
from trading_core.config import load_config
from trading_core.events import timestamp
from trading_core.journal import Journal
from trading_core.quotes import Quote
from trading_core.service import ServiceContext

from tests.fakes import binance_spot
from tests.fakes.binance_spot import FakeBinanceSpot
from tests.fakes.server import API_KEY, SECRET

ROOT = Path(__file__).resolve().parents[1]
SEQUENTIAL = int(os.environ.get("BENCH_ROUTER_SEQUENTIAL", "300"))
BURST = int(os.environ.get("BENCH_ROUTER_BURST", "500"))
KEY = API_KEY
BTCUSDT = replace(binance_spot.BTCUSDT, max_qty=Decimal("1000"), min_notional=Decimal("1"))


class _ArrivalClock(FakeBinanceSpot):
    """The fake, noting when each new order reaches it."""

    def __init__(self) -> None:
        super().__init__(KEY, SECRET, [BTCUSDT])
        self.arrivals: dict[str, float] = {}

    def new_order(self, p: dict[str, str]) -> dict[str, Any]:
        self.arrivals.setdefault(p.get("newClientOrderId", ""), time.perf_counter())
        return super().new_order(p)


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_us": round(statistics.median(ordered) * 1e6, 1),
        "p99_us": round(ordered[int(0.99 * (len(ordered) - 1))] * 1e6, 1),
        "count": len(ordered),
    }


def _config(directory: Path, url: str) -> Path:
    path = directory / "router.yaml"
    document = {
        "extends": str(ROOT / "config" / "local.yaml"),
        "journal": {"path": str(directory)},
        "database": {"backend": "duckdb", "path": str(directory)},
        "logging": {"level": "WARNING", "json": False},
        "instruments": [
            {
                "symbol": "BTC-USD",
                "tick_size": "0.01",
                "step_size": "0.0001",
                "initial_price": "60000",
            }
        ],
        "execution": {
            "mode": "direct",
            "venues": {
                "binance": {
                    "kind": "binance",
                    "environment": "live",
                    "base_url": url,
                    "api_key": "${BENCH_KEY}",
                    "api_secret": "${BENCH_SECRET}",
                    "symbols": {"BTC-USD": "BTC/USDT"},
                    "poll_interval_ms": 60_000,  # every fill comes with its order's answer
                    # The router's own cost, not Binance's limits (100 orders per 10 s).
                    "rate_limits": [],
                    "order_rate_limits": [],
                }
            },
        },
    }
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def _command(order_id: str) -> bytes:
    order = orders_pb2.Order(
        order_id=order_id,
        account_id="bench",
        instrument="BTC-USD",
        side=types_pb2.SIDE_BUY,
        order_type=types_pb2.ORDER_TYPE_MARKET,
        time_in_force=types_pb2.TIME_IN_FORCE_GTC,
        quantity="0.001",
    )
    command = events_pb2.Command(
        order_id=order_id,
        account_id="bench",
        instrument="BTC-USD",
        submit_order=events_pb2.SubmitOrder(order=order),
    )
    return command.SerializeToString()


def _quote_event() -> bytes:
    quote = Quote(
        "BTC-USD", Decimal("59990"), Decimal("60010"), Decimal("5"), Decimal("5"), datetime.now(UTC)
    )
    event = events_pb2.Event(
        event_id=str(uuid.uuid4()),
        event_time=timestamp(quote.time),
        instrument="BTC-USD",
        quote_updated=events_pb2.QuoteUpdated(quote=quote.to_proto()),
    )
    return event.SerializeToString()


def _venue_call(fake: FakeBinanceSpot) -> dict[str, float]:
    """The baseline: the adapter alone sending orders to the fake, one at a time (each from
    the call until its first report: the adapter answers on its own event loop)."""
    answered = threading.Event()
    client = CcxtBinanceSpotClient(
        lambda report: answered.set(),
        api_key=KEY,
        secret=SECRET,
        symbols={"BTC-USD": "BTC/USDT"},
        base_url=fake.url,
        poll_interval_s=60,
    )
    client.start()
    samples = []
    try:
        for _ in range(SEQUENTIAL):
            order = VenueOrder(
                order_id=str(uuid.uuid4()),
                account_id="bench",
                instrument="BTC-USD",
                side=types_pb2.SIDE_BUY,
                order_type=types_pb2.ORDER_TYPE_LIMIT,
                time_in_force=types_pb2.TIME_IN_FORCE_IOC,
                quantity=Decimal("0.001"),
                limit_price=Decimal("60300"),
            )
            answered.clear()
            started = time.perf_counter()
            client.submit_order(order)
            answered.wait(10)
            samples.append(time.perf_counter() - started)
    finally:
        client.stop()
    return _percentiles(samples)


def measure() -> dict[str, Any]:
    os.environ.setdefault("BENCH_KEY", KEY)
    os.environ.setdefault("BENCH_SECRET", SECRET)
    fake = _ArrivalClock()
    fake.start()
    try:
        with tempfile.TemporaryDirectory(prefix="router-bench-") as directory:
            baseline = _venue_call(fake)
            config = load_config(_config(Path(directory), fake.url))
            bus = InMemoryBus()
            journal = Journal(Path(directory) / "execution-router.journal", SCHEMA)
            router = ExecutionRouter(ServiceContext(config, bus, journal, SystemClock()))
            reports = _ReportCounter()
            bus.subscribe("executions", "executions.order-management", reports.count)
            router.start()
            try:
                bus.publish("market-data", _quote_event(), ordering_key="BTC-USD")
                while not router.ready():
                    time.sleep(0.01)
                own_path = _command_to_venue(bus, fake, reports)
                burst = _burst(bus, reports)
            finally:
                router.stop()
                bus.close()
                router.close()
                journal.close()
    finally:
        fake.stop()
    return {
        "venue_call_us": baseline,
        "command_to_venue_us": own_path,
        "command_to_venue_p50_over_venue_call_p50": round(
            own_path["p50_us"] / baseline["p50_us"], 3
        ),
        **burst,
    }


class _ReportCounter:
    def __init__(self) -> None:
        self.total = 0
        self._changed = threading.Condition()

    def count(self, _message: Message) -> None:
        with self._changed:
            self.total += 1
            self._changed.notify_all()

    def wait_for(self, total: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.total < total:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self.total} of {total} reports after {timeout} s")
                self._changed.wait(left)


def _command_to_venue(
    bus: InMemoryBus, fake: _ArrivalClock, reports: _ReportCounter
) -> dict[str, float]:
    samples = []
    for _ in range(SEQUENTIAL):
        order_id = str(uuid.uuid4())
        expected = reports.total + 2  # ACCEPTED and FILLED
        started = time.perf_counter()
        bus.publish("orders", _command(order_id), ordering_key=order_id)
        reports.wait_for(expected)
        samples.append(fake.arrivals[order_id] - started)
    return _percentiles(samples)


def _burst(bus: InMemoryBus, reports: _ReportCounter) -> dict[str, float]:
    expected = reports.total + 2 * BURST
    cpu_before, started = time.process_time(), time.perf_counter()
    for _ in range(BURST):
        order_id = str(uuid.uuid4())
        bus.publish("orders", _command(order_id), ordering_key=order_id)
    reports.wait_for(expected, timeout=300)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_before
    return {
        "reports_per_s": round(2 * BURST / elapsed, 1),
        "orders_per_s": round(BURST / elapsed, 1),
        "cpu_us_per_order": round(cpu / BURST * 1e6, 1),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(measure(), indent=2))
