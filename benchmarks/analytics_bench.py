"""The analytics queries over one million fills on DuckDB (bar: each under 5 s).

The four service files are made by the warehouse itself (`DuckDBWarehouse`: the schema's tables),
then filled in bulk by DuckDB (a day of trading: 250,000 orders of 4 fills each on three venues,
two instruments, 1,000,000 quotes): feeding a million fills through the journals would take this
machine many minutes, and the queries read only the typed tables. Each query runs over the whole
day through `DuckDBAnalytics` (attaching the files included), its answer read as Arrow: the time
is the best of `BENCH_ANALYTICS_ROUNDS` (2) wall-clock runs, with the process's CPU time beside
it (DuckDB's threads included: on a busy machine the wall clock waits for a core). Reading the
answer as Python rows (`run`, what `tradectl report` does) is timed once more beside it: for the
per-order query (250,000 rows) that conversion, not the query, is most of the time.
Run alone: `uv run python -m benchmarks.analytics_bench`; prints JSON.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
from trading_core.analytics import DuckDBAnalytics, load, query_names
from trading_core.store import DuckDBWarehouse
from trading_core.store.schema import SERVICES

FILLS = int(os.environ.get("BENCH_ANALYTICS_FILLS", "1000000"))
FILLS_PER_ORDER = 4
QUOTES = int(os.environ.get("BENCH_ANALYTICS_QUOTES", "1000000"))
ROUNDS = int(os.environ.get("BENCH_ANALYTICS_ROUNDS", "2"))
DAY = datetime(2026, 1, 5, tzinfo=UTC)
BAR_S = 5.0

# One day: order i is submitted at i * (86400 s / orders); its reports follow within a second.
_ORDERS = """
INSERT INTO orders BY NAME
SELECT 'om-' || i AS event_id, 'order-management' AS service, i AS journal_position,
       $day + to_microseconds(i * $step) AS event_time, 'o-' || i AS order_id,
       'OrderSubmitted' AS event_type, 1 AS sequence, 'c-' || i AS client_order_id,
       ['mean-revert', 'momentum', 'carry'][i % 3 + 1] AS strategy_id,
       'ACC-' || (i % 5) AS account_id, ['BTC-USD', 'ETH-USD'][i % 2 + 1] AS instrument,
       'SUBMITTED' AS status, CASE WHEN i % 7 < 4 THEN 'BUY' ELSE 'SELL' END AS side,
       'MARKET' AS order_type, 0.1 * (1 + i % 9) AS quantity
FROM range($orders) AS t(i)
"""
_MID = "(CASE WHEN i % 2 = 0 THEN 64000 ELSE 3100 END) * (1 + 0.01 * sin(i / 5000.0))"
_EXECUTIONS = f"""
INSERT INTO executions BY NAME
SELECT 'ex-' || i || '-' || k AS event_id, 'execution-router' AS service,
       i * 5 + k AS journal_position,
       $day + to_microseconds(i * $step + 2000 + k * 150000) AS event_time,
       'o-' || i AS order_id, k + 1 AS sequence, 'ACC-' || (i % 5) AS account_id,
       ['BTC-USD', 'ETH-USD'][i % 2 + 1] AS instrument,
       ['binance', 'bybit', 'simulation'][i % 3 + 1] AS venue,
       CASE WHEN i % 7 < 4 THEN 'BUY' ELSE 'SELL' END AS side,
       CASE WHEN k = 0 THEN NULL ELSE 't-' || i || '-' || k END AS trade_id,
       CASE WHEN k = 0 THEN 'ACCEPTED' WHEN k = {FILLS_PER_ORDER} THEN 'FILLED'
            ELSE 'PARTIALLY_FILLED' END AS execution_type,
       CASE WHEN k = 0 THEN NULL ELSE 0.025 * (1 + i % 9) END AS last_quantity,
       CASE WHEN k = 0 THEN NULL
            ELSE round({_MID} * (1 + ((hash(i * 7 + k) % 21)::INTEGER - 5) / 100000.0), 2)
       END AS last_price,
       CASE WHEN k = 0 THEN round({_MID}, 2) END AS arrival_mid
FROM range($orders) AS t(i), range({FILLS_PER_ORDER + 1}) AS s(k)
"""
_FILLS = """
INSERT INTO fills BY NAME
SELECT event_id, service, journal_position, event_time, order_id, account_id, instrument,
       venue, side, trade_id, last_quantity AS quantity, last_price AS price,
       (last_price::DECIMAL(38, 9) * last_quantity::DECIMAL(38, 9)) AS notional,
       round(last_price::DECIMAL(38, 9) * last_quantity::DECIMAL(38, 9) * 0.001, 8) AS fee
FROM executions WHERE trade_id IS NOT NULL
"""
_QUOTES = f"""
INSERT INTO quotes BY NAME
SELECT 'q-' || i AS event_id, 'market-data' AS service, i AS journal_position,
       $day + to_microseconds(i * $quote_step) AS event_time,
       ['BTC-USD', 'ETH-USD'][i % 2 + 1] AS instrument, 'synthetic' AS source,
       round({_MID}, 2) - 0.5 AS bid_price, round({_MID}, 2) + 0.5 AS ask_price,
       round({_MID}, 2) AS mid
FROM range($quotes) AS t(i)
"""


def make_files(folder: Path, fills: int, quotes: int) -> None:
    for service in SERVICES:  # the schema's tables, as the platform makes them
        warehouse = DuckDBWarehouse(folder / f"{service}.duckdb", service)
        warehouse.fed_through()
        warehouse.close()
    orders = fills // FILLS_PER_ORDER
    day_us = 86_400 * 1_000_000
    values = {"day": DAY, "orders": orders, "step": day_us // orders}
    statements = {
        "order-management": [(_ORDERS, values)],
        "execution-router": [(_EXECUTIONS, values), (_FILLS, {})],
        "market-data": [(_QUOTES, {"day": DAY, "quotes": quotes, "quote_step": day_us // quotes})],
    }
    for service, work in statements.items():
        with duckdb.connect(str(folder / f"{service}.duckdb")) as connection:
            for statement, parameters in work:
                connection.execute(statement, parameters)


def _parameters(name: str) -> dict[str, Any]:
    given = {"day_start": DAY, "day_end": DAY + timedelta(days=1), "per_day": True}
    return {p.name: given.get(p.name) for p in load(name).parameters}


def measure(fills: int = FILLS, quotes: int = QUOTES, rounds: int = ROUNDS) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        started = time.perf_counter()
        make_files(folder, fills, quotes)
        made_s = time.perf_counter() - started
        seconds: dict[str, float] = {}
        cpu_seconds: dict[str, float] = {}
        python_rows_s: dict[str, float] = {}
        rows: dict[str, int] = {}
        with DuckDBAnalytics(folder) as analytics:
            for name in query_names():
                runs = []
                for _ in range(rounds):
                    cpu, start = time.process_time(), time.perf_counter()
                    rows[name] = analytics.arrow(name, _parameters(name)).num_rows
                    runs.append((time.perf_counter() - start, time.process_time() - cpu))
                wall, cpu_used = min(runs)
                seconds[name], cpu_seconds[name] = round(wall, 3), round(cpu_used, 3)
                start = time.perf_counter()
                analytics.run(name, _parameters(name))
                python_rows_s[name] = round(time.perf_counter() - start, 3)
    return {
        "fills": fills,
        "quotes": quotes,
        "orders": fills // FILLS_PER_ORDER,
        "files_made_s": round(made_s, 1),
        "query_s": seconds,
        "query_cpu_s": cpu_seconds,
        "query_with_python_rows_s": python_rows_s,
        "rows": rows,
        "slowest_query_s": max(seconds.values()),
        "bar_s": BAR_S,
        "within_bar": max(seconds.values()) < BAR_S,
    }


def main() -> None:
    print(json.dumps(measure(), indent=2))


if __name__ == "__main__":
    main()
