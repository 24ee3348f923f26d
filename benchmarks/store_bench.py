"""Event store throughput (rows/s, JSON): the store's batch insert vs row-by-row executemany."""

from __future__ import annotations

import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
from trading.v1 import events_pb2, orders_pb2
from trading_core.events import new_id, timestamp
from trading_core.store import DuckDBEventStore
from trading_core.store.schema import EVENT_VALUE_COLUMNS, event_values

BATCH_ROWS = 50_000
ROW_BY_ROW_ROWS = 1_000  # row by row is slow: keep the run short


def sample_events(count: int) -> list[events_pb2.Event]:
    now = timestamp(datetime.now(UTC))
    order = orders_pb2.Order(order_id=new_id(), instrument="BTC-USD", quantity="0.015")
    accepted = events_pb2.OrderSubmitted(order=order)
    return [
        events_pb2.Event(event_id=new_id(), event_time=now, sequence=n, order_submitted=accepted)
        for n in range(count)
    ]


def batch_rows_per_s(folder: Path) -> tuple[float, float]:
    """(append rate on the caller's thread, write rate of the one columnar insert)."""
    events = sample_events(BATCH_ROWS)
    # Nothing is written until flush(): the flusher's size and interval are out of reach.
    store = DuckDBEventStore(
        folder / "batch.duckdb", "events", batch_size=BATCH_ROWS + 1, flush_interval_ms=60_000
    )
    started = time.perf_counter()
    for event in events:
        store.append(event)
    appended = time.perf_counter()
    store.flush()
    written = time.perf_counter()
    store.close()
    return BATCH_ROWS / (appended - started), BATCH_ROWS / (written - appended)


def row_by_row_rows_per_s(folder: Path) -> float:
    DuckDBEventStore(folder / "rows.duckdb", "events").close()  # creates the table
    now = datetime.now(UTC)
    rows = [(n, *event_values(e), now) for n, e in enumerate(sample_events(ROW_BY_ROW_ROWS), 1)]
    # The order of those values, and event_time as epoch microseconds (what Arrow takes).
    columns = ["store_sequence", *(c.name for c in EVENT_VALUE_COLUMNS), "record_time"]
    marks = ", ".join("make_timestamp(?)" if name == "event_time" else "?" for name in columns)
    with duckdb.connect(str(folder / "rows.duckdb")) as connection:
        started = time.perf_counter()
        insert = f"INSERT INTO events ({', '.join(columns)}) VALUES ({marks})"
        connection.executemany(insert, rows)
        elapsed = time.perf_counter() - started
    return ROW_BY_ROW_ROWS / elapsed


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        append, batch = batch_rows_per_s(Path(folder))
        row_by_row = row_by_row_rows_per_s(Path(folder))
    rates = {"append": append, "batch_insert": batch, "executemany": row_by_row}
    result = {f"{name}_rows_per_s": round(rate) for name, rate in rates.items()}
    print(json.dumps({"store": "duckdb", **result, "speedup": round(batch / row_by_row, 1)}))
