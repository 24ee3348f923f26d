"""The warehouse feed under load (issue 8's bar): SubmitOrder sustained for `BENCH_FEED_SECONDS`
(60) with `IN_FLIGHT` calls outstanding against the embedded platform on DuckDB, its warehouse
fed on the default `database.flush_interval_ms` (or `BENCH_FEED_INTERVAL_MS`); then, the platform
stopped, every service's journal is compared with its DuckDB file.

- Lag: each stored event's `record_time` (when its feed built the batch, just before the
  batch's transaction commits) minus the time its journal record was made (`time_us`, just
  before its journal commit): the time from journal to table, the bar's measure; p50, p99 and
  max over the events journaled while the load ran (the feed at shutdown is left out: nothing
  waits for it). Beside it, `since_event_s` counts from the event's own `event_time`.
- Lost and duplicated: journal events missing from the file, and event ids stored twice.

Run: `uv run python -m benchmarks.feed_lag_bench`; prints JSON (`make bench` runs it too).
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import grpc
from tradectl.credentials import DEVELOPMENT_KEY, authorized
from trading.v1 import orders_pb2_grpc
from trading_core.journal import Journal

# As a module, not its names: benchmarks.run imports this one (make bench runs both).
from benchmarks import run as platform_bench

SECONDS = float(os.environ.get("BENCH_FEED_SECONDS", "60"))
# Unset: the platform's default (database.flush_interval_ms).
INTERVAL_MS = int(os.environ.get("BENCH_FEED_INTERVAL_MS", "0")) or None
SERVICES = ("order-management", "execution-router", "position-management", "market-data")
LAG_BAR_S = 2.0


def sustain(address: str, seconds: float, pid: int) -> dict[str, float]:
    """SubmitOrder with IN_FLIGHT outstanding for `seconds`; the rate and server CPU per order."""
    with grpc.insecure_channel(address) as channel:
        orders = orders_pb2_grpc.OrderServiceStub(authorized(channel, DEVELOPMENT_KEY))
        slots = threading.Semaphore(platform_bench.IN_FLIGHT)
        failures: list[BaseException] = []
        cpu_before, started = platform_bench.cpu_seconds(pid), time.perf_counter()
        load_start_us = time.time_ns() // 1000
        sent = 0

        def on_done(future: grpc.Future[Any]) -> None:
            slots.release()
            if future.exception() is not None:
                failures.append(future.exception())  # type: ignore[arg-type]

        while time.perf_counter() - started < seconds:
            slots.acquire()
            orders.SubmitOrder.future(platform_bench.order_request(), timeout=60).add_done_callback(
                on_done
            )
            sent += 1
        for _ in range(platform_bench.IN_FLIGHT):
            slots.acquire()
        elapsed = time.perf_counter() - started
        if failures:
            raise RuntimeError(f"{len(failures)} orders failed, the first: {failures[0]}")
        return {
            "orders": sent,
            "orders_per_s": round(sent / elapsed, 1),
            "server_cpu_us_per_order": round(
                (platform_bench.cpu_seconds(pid) - cpu_before) / sent * 1e6, 1
            ),
            "load_start_us": load_start_us,
            "load_end_us": time.time_ns() // 1000,
        }


def compare(data: Path, service: str, load_start_us: int, load_end_us: int) -> dict[str, Any]:
    """One service's journal against its warehouse file (the platform stopped)."""
    journal = Journal(data / f"{service}.journal")
    try:
        # When the service made each event's record, by journal position: the feed's start.
        made = dict(journal.query("SELECT seq, time_us FROM journal WHERE is_event = 1"))
    finally:
        journal.close()
    table = f"{service.replace('-', '_')}_events"
    with duckdb.connect(str(data / f"{service}.duckdb"), read_only=True) as connection:
        stored, distinct = connection.execute(
            f"SELECT count(*), count(DISTINCT event_id) FROM {table}"
        ).fetchone() or (0, 0)
        rows = connection.execute(
            "SELECT store_sequence, epoch_us(record_time), epoch_us(event_time) FROM " + table
        ).fetchall()
    during_load = [(seq, fed, at) for seq, fed, at in rows if made.get(seq, 0) <= load_end_us]
    lags = [(fed - made[seq], made[seq]) for seq, fed, _ in during_load if seq in made]
    return {
        "journal_events": len(made),
        "lost": len(made) - distinct,
        "duplicated": stored - distinct,
        "lag_s": _lag_percentiles([lag for lag, _ in lags]),
        # When, from the load's start, the worst-waiting event was journaled.
        "worst_at_s": round((max(lags)[1] - load_start_us) / 1e6, 2) if lags else None,
        # From the event's own time (a quote's is when the feed priced it), for comparison.
        "since_event_s": _lag_percentiles([fed - at for _, fed, at in during_load if at]),
    }


def _lag_percentiles(lags_us: list[float]) -> dict[str, float]:
    if not lags_us:
        return {}
    ordered = sorted(lags_us)
    return {
        "p50": round(statistics.median(ordered) / 1e6, 3),
        "p99": round(ordered[int(len(ordered) * 0.99) - 1] / 1e6, 3),
        "max": round(ordered[-1] / 1e6, 3),
    }


def measure(seconds: float = SECONDS, interval_ms: int | None = INTERVAL_MS) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as directory:
        chosen = {"flush_interval_ms": interval_ms} if interval_ms else {}
        config, addresses = platform_bench.platform_config(Path(directory), database=chosen)
        process = subprocess.Popen(
            [sys.executable, "-m", "tradectl", "serve", "--config", str(config)],
            cwd=platform_bench.ROOT,
        )
        try:
            for address in addresses.values():
                platform_bench.wait_healthy(address)
            load = sustain(addresses["order_management"], seconds, process.pid)
        finally:
            process.send_signal(signal.SIGTERM)
            if process.wait(timeout=120) != 0:
                raise RuntimeError(f"the platform exited with {process.returncode}")
        load_start_us, load_end_us = load.pop("load_start_us"), load.pop("load_end_us")
        data = Path(directory) / "data"
        services = {
            name: compare(data, name, int(load_start_us), int(load_end_us)) for name in SERVICES
        }
    worst = max(s["lag_s"].get("max", 0.0) for s in services.values())
    return {
        "seconds": seconds,
        "flush_interval_ms": interval_ms or "default",
        "load": load,
        "services": services,
        "worst_lag_s": worst,
        "lost": sum(s["lost"] for s in services.values()),
        "duplicated": sum(s["duplicated"] for s in services.values()),
        "bar_met": worst < LAG_BAR_S
        and not any(s["lost"] or s["duplicated"] for s in services.values()),
    }


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
