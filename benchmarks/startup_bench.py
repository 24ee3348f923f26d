"""Start-up time and memory of order-management with a large journal.

Builds an order-management journal holding `STARTUP_ORDERS` orders (default 1,000,000; 1% of
them still open, resting limits) through the service's own tables, each with its OrderSubmitted
event, then starts the service in a fresh process and reports the time to load and its RSS.
Run: `uv run python -m benchmarks.startup_bench`; prints JSON.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from order_management.domain.orders import Order
from order_management.domain.validation import OrderRequest
from order_management.service import SCHEMA, OrderManagement, _order_row, _Tracked
from trading.v1 import events_pb2, types_pb2
from trading_core.events import new_id, timestamp
from trading_core.journal import Journal, Transaction

ORDERS = int(os.environ.get("STARTUP_ORDERS", "1000000"))
BATCH = 10_000
OPEN_EVERY = 100  # one order in a hundred still rests


def _order(number: int, now: datetime) -> _Tracked:
    request = OrderRequest(
        request_id=f"req-{number}",
        client_order_id=f"coid-{number}",
        account_id=f"acct-{number % 50}",
        strategy_id="bench",
        signal_id="",
        instrument="BTC-USD",
        side=types_pb2.SIDE_BUY,
        order_type=types_pb2.ORDER_TYPE_LIMIT,
        time_in_force=types_pb2.TIME_IN_FORCE_GTC,
        quantity=Decimal("0.01"),
        limit_price=Decimal("1000"),
    )
    order = Order.accepted(request, new_id(), now)
    if number % OPEN_EVERY:
        order.status = types_pb2.ORDER_STATUS_CANCELED
    else:
        order.status = types_pb2.ORDER_STATUS_ACCEPTED
        order.venue_accepted = True
    return _Tracked(order, report_sequence=2)


def build(path: Path) -> None:
    journal = Journal(path, SCHEMA)
    # Created long ago, so finished orders are past the in-memory retention.
    now = datetime.now(UTC) - timedelta(days=2)
    for start in range(0, ORDERS, BATCH):
        transaction = Transaction()
        for number in range(start, min(start + BATCH, ORDERS)):
            tracked = _order(number, now)
            snapshot = tracked.order.to_proto()
            event = events_pb2.Event(
                event_id=new_id(),
                order_id=snapshot.order_id,
                account_id=snapshot.account_id,
                order_submitted=events_pb2.OrderSubmitted(order=snapshot),
            )
            event.event_time.CopyFrom(timestamp(now))
            transaction.keep(OrderManagement.event_record(event))
            transaction.execute(
                "INSERT INTO orders (order_id, account_id, instrument, status, is_open, "
                "create_time_us, update_time_us, request_id, client_order_id, own_sequence, "
                "report_sequence, venue_accepted, snapshot) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                _order_row(tracked, snapshot),
            )
        journal.commit(transaction).wait()
    journal.close()


_LOAD = """
import resource, sys, time
from pathlib import Path
start = time.perf_counter()
from trading_core.bus import InMemoryBus
from trading_core.clock import SystemClock
from trading_core.config import load_config
from trading_core.journal import Journal
from trading_core.service import ServiceContext
from order_management.service import SCHEMA, OrderManagement
config = load_config("config/local.yaml")
journal = Journal(Path(sys.argv[1]), SCHEMA)
service = OrderManagement(ServiceContext(config, InMemoryBus(), journal, SystemClock()))
loaded = time.perf_counter()
service._load()
done = time.perf_counter()
print(done - loaded, done - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "order-management.journal"
        started = time.perf_counter()
        build(path)
        built_s = time.perf_counter() - started
        size = path.stat().st_size
        out = subprocess.run(
            [sys.executable, "-c", _LOAD, str(path)], capture_output=True, text=True, check=True
        ).stdout.split()
    load_s, process_s, rss_kb = float(out[0]), float(out[1]), int(out[2])
    print(
        json.dumps(
            {
                "orders_in_journal": ORDERS,
                "open_orders": ORDERS // OPEN_EVERY,
                "journal_mb": round(size / 1e6),
                "build_s": round(built_s, 1),
                "load_state_s": round(load_s, 2),
                "process_start_to_loaded_s": round(process_s, 2),
                "max_rss_mb": round(rss_kb / 1024),
                "this_process_max_rss_mb": round(
                    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                ),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
