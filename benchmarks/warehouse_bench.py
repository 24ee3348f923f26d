"""CPU the warehouse feeder spends per event: it runs in the services' process in embedded mode,
so each millisecond it spends is taken from order entry.

A journal is filled with what one order makes across the platform (OrderSubmitted; ACCEPTED
and FILLED reports with a fill; a PositionUpdated) plus quotes, then fed into a fresh DuckDB
file in the configured batches, timed by this process's CPU clock (all threads, DuckDB's
included). Run: `uv run python -m benchmarks.warehouse_bench`; prints JSON.
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

ORDERS = int(os.environ.get("BENCH_WAREHOUSE_ORDERS", "4000"))
BATCH = 5000  # database.batch_size's default


def fill_journal(journal: Journal, orders: int, first: int = 0) -> int:
    events = 0
    for number in range(first, first + orders):
        made = one_order(number)
        keep(journal, made)
        events += len(made)
    return events


def measure(orders: int, feed_every: int) -> dict[str, float]:
    """Feeds after every `feed_every` orders (a feed interval's worth); times the feeds only."""
    cpu = wall = 0.0
    events = stored = 0
    with tempfile.TemporaryDirectory() as folder:
        journal = Journal(Path(folder) / "bench.journal")
        try:
            warehouse = DuckDBWarehouse(Path(folder) / "bench.duckdb", "bench")
            feeder = WarehouseFeeder(journal, warehouse, interval_s=3600, batch_size=BATCH)
            for first in range(0, orders, feed_every):
                events += fill_journal(journal, feed_every, first)
                cpu_start, wall_start = time.process_time(), time.perf_counter()
                stored += feeder.feed_all()
                cpu += time.process_time() - cpu_start
                wall += time.perf_counter() - wall_start
        finally:
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
    """Large feeds (a backlog, in batches of 5000) and small ones (50 orders a feed: 10 orders
    a second at the default 5 s interval); the best of `BENCH_WAREHOUSE_ROUNDS` runs of each."""
    rounds = int(os.environ.get("BENCH_WAREHOUSE_ROUNDS", "3"))
    results = {}
    for name, feed_every in (("backlog", ORDERS), ("every_50_orders", 50)):
        runs = [measure(ORDERS, feed_every) for _ in range(rounds)]
        results[name] = min(runs, key=lambda run: run["cpu_us_per_event"])
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
