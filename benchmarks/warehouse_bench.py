"""CPU the warehouse feeder spends per event: it runs in the services' process in embedded mode,
so each millisecond it spends is taken from order entry.

Each service's journal gets what one order makes there (order-management: OrderSubmitted;
the router: ACCEPTED and FILLED reports with a fill; position-management: a PositionUpdated;
market-data: a quote), and each is fed into its own fresh DuckDB file in the configured
batches, timed by this process's CPU clock (all threads, DuckDB's included). Run:
`uv run python -m benchmarks.warehouse_bench`; prints JSON.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from trading_core.journal import Journal
from trading_core.store import DuckDBWarehouse, WarehouseFeeder

from tests.warehouse_support import keep, one_order

ORDERS = int(os.environ.get("BENCH_WAREHOUSE_ORDERS", "2000"))
BATCH = 5000  # database.batch_size's default


# Which service journals each of one_order's events: OrderSubmitted; the router's ACCEPTED and
# FILLED reports; the PositionUpdated; the quote.
SERVICES = ("order-management", "execution-router", "execution-router", "position-management",
            "market-data")  # fmt: skip


def measure(orders: int, feed_every: int) -> dict[str, float]:
    """Each service's events in its own journal and file, as the platform keeps them; feeds
    every file after every `feed_every` orders (a feed interval's worth) and times the feeds."""
    cpu = wall = 0.0
    events = stored = 0
    with tempfile.TemporaryDirectory() as folder:
        journals = {name: Journal(Path(folder) / f"{name}.journal") for name in set(SERVICES)}
        try:
            feeders = [
                WarehouseFeeder(
                    journal,
                    DuckDBWarehouse(Path(folder) / f"{name}.duckdb", name),
                    interval_s=3600,
                    batch_size=BATCH,
                )
                for name, journal in journals.items()
            ]
            for first in range(0, orders, feed_every):
                for number in range(first, first + feed_every):
                    for service, event in zip(SERVICES, one_order(number), strict=True):
                        keep(journals[service], [event])
                        events += 1
                cpu_start, wall_start = time.process_time(), time.perf_counter()
                stored += sum(feeder.feed_all() for feeder in feeders)
                cpu += time.process_time() - cpu_start
                wall += time.perf_counter() - wall_start
        finally:
            for journal in journals.values():
                journal.close()
    assert stored == events, (stored, events)
    return {
        "events": events,
        "events_per_feed": events * feed_every // orders,
        "cpu_us_per_event": round(cpu / events * 1e6, 1),
        "cpu_ms_per_order": round(cpu / orders * 1e3, 3),
        "wall_us_per_event": round(wall / events * 1e6, 1),
    }


def main() -> None:
    """Large feeds (a backlog: every order at once, in batches of 5000) and small ones (50
    orders a feed: 10 orders a second at the default 5 s interval); the best of
    `BENCH_WAREHOUSE_ROUNDS` runs of each."""
    rounds = int(os.environ.get("BENCH_WAREHOUSE_ROUNDS", "3"))
    results = {}
    for name, feed_every in (("backlog", ORDERS), ("every_50_orders", 50)):
        runs = [measure(ORDERS, feed_every) for _ in range(rounds)]
        results[name] = min(runs, key=lambda run: run["cpu_us_per_event"])
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
