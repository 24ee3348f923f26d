"""The DuckDB event store: one file per service, one table of events per store.

Appends (from many gRPC worker threads) go to an in-memory buffer; a background thread writes
the buffer as one columnar (Arrow) insert when it reaches `batch_size` or every
`flush_interval_ms`. A failed write keeps the events buffered for the next attempt.

One DuckDB connection is not safe to share between threads, so every use of it holds
`_write_lock`; a replay reads through its own cursor (a connection of its own).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from trading.v1 import events_pb2

from trading_core.store.schema import (
    ARROW_SCHEMA,
    EVENT_COLUMNS,
    EVENT_VALUE_COLUMNS,
    duckdb_column_definitions,
    event_values,
)

logger = logging.getLogger(__name__)

_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_REPLAY_CHUNK = 10_000
_MAX_RETRY_DELAY_S = 5.0
_RECORD_TIME_TYPE = ARROW_SCHEMA.field("record_time").type


class EventStoreWriteError(RuntimeError):
    """Buffered events could not be written; they stay buffered for the next attempt."""


class DuckDBEventStore:
    def __init__(
        self, path: Path, table: str, *, batch_size: int = 5000, flush_interval_ms: int = 50
    ) -> None:
        # Checked so that SQL can quote it as an identifier (S608 below).
        if not _TABLE_NAME.match(table):
            raise ValueError(f"table name {table!r} must be letters, digits and underscores")
        if batch_size < 1 or flush_interval_ms < 1:
            raise ValueError("batch_size and flush_interval_ms must be at least 1")
        self._path = Path(path)
        self._table = table
        self._batch_size = batch_size
        self._flush_interval_s = flush_interval_ms / 1000
        self._pending: list[tuple[Any, ...]] = []
        self._buffer_changed = threading.Condition()  # guards _pending and _closed
        self._closed = False
        self._write_failing = False  # the last write failed; cleared by the next that succeeds
        self._write_lock = threading.Lock()  # guards the connection, serialises writes
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._connection = duckdb.connect(str(self._path))
        try:
            self._create_table_if_missing()
            self._next_sequence = self._last_sequence() + 1
        except BaseException:
            self._connection.close()
            raise
        self._flusher = threading.Thread(
            target=self._flush_in_background, name=f"event-store-{table}", daemon=True
        )
        self._flusher.start()

    def append(self, event: events_pb2.Event, payload: bytes | None = None) -> None:
        row = event_values(event, payload)  # read now: the caller may change the event afterwards
        with self._buffer_changed:
            if self._closed:
                raise RuntimeError(f"event store {self._table} is closed")
            self._pending.append(row)
            if len(self._pending) in (1, self._batch_size):
                self._buffer_changed.notify()  # the first event starts the interval

    def flush(self) -> None:
        self._write_pending()

    def healthy(self) -> bool:
        return not (self._closed or self._write_failing)

    def replay(self) -> Iterator[events_pb2.Event]:
        # Not a generator itself: the flush and the query's snapshot happen at the call.
        if self._closed:
            raise RuntimeError(f"event store {self._table} is closed")
        self.flush()
        with self._write_lock:
            cursor = self._connection.cursor()
        cursor.execute(f'SELECT payload FROM "{self._table}" ORDER BY store_sequence')  # noqa: S608
        return _parse_events(cursor)

    def close(self) -> None:
        with self._buffer_changed:
            if self._closed:
                return
            self._closed = True
            self._buffer_changed.notify()
        self._flusher.join()
        try:
            self._write_pending()
        except EventStoreWriteError:
            logger.error("event store %s: closed with buffered events not stored", self._table)
            raise
        finally:
            with self._write_lock:
                self._connection.close()

    def _flush_in_background(self) -> None:
        delay = self._flush_interval_s
        while True:
            with self._buffer_changed:
                # Idle until the first event, then write after the interval or a full batch.
                self._buffer_changed.wait_for(lambda: self._closed or bool(self._pending))
                self._buffer_changed.wait_for(
                    lambda: self._closed or len(self._pending) >= self._batch_size, delay
                )
                if self._closed:
                    return  # close() writes what is left
            try:
                self._write_pending()
                delay = self._flush_interval_s
            except EventStoreWriteError:
                delay = min(delay * 2, _MAX_RETRY_DELAY_S)  # already logged; back off

    def _write_pending(self) -> None:
        # Holding the write lock from taking the batch to putting it back on failure keeps
        # batches in append order.
        with self._write_lock:
            with self._buffer_changed:
                batch, self._pending = self._pending, []
            if not batch:
                return
            try:
                self._insert(batch)
                self._write_failing = False
            except Exception as error:  # whatever failed, the events must stay buffered
                self._write_failing = True
                with self._buffer_changed:
                    self._pending[:0] = batch
                logger.error(
                    "event store %s: could not write %d events, keeping them buffered: %s: %s",
                    self._table,
                    len(batch),
                    type(error).__name__,
                    error,
                )
                raise EventStoreWriteError(
                    f"event store {self._table}: could not write {len(batch)} events: {error}"
                ) from error

    def _insert(self, batch: list[tuple[Any, ...]]) -> None:
        sequences = range(self._next_sequence, self._next_sequence + len(batch))
        # Typed arrays straight from the rows' columns: no per-value type inference, and times
        # as epoch microseconds rather than one datetime per row.
        record_time = time.time_ns() // 1_000
        columns: dict[str, pa.Array[Any]] = {"store_sequence": pa.array(sequences, pa.int64())}
        for column, values in zip(EVENT_VALUE_COLUMNS, zip(*batch, strict=True), strict=True):
            columns[column.name] = pa.array(values, column.arrow_type)
        columns["record_time"] = pa.array([record_time] * len(batch), _RECORD_TIME_TYPE)
        arrow_batch = pa.Table.from_arrays(
            [columns[name] for name in ARROW_SCHEMA.names], schema=ARROW_SCHEMA
        )
        # By position: the table's columns were checked to be EVENT_COLUMNS, in order, at open.
        # One call, rather than registering a view, inserting from it and unregistering it.
        self._connection.from_arrow(arrow_batch).insert_into(self._table)
        self._next_sequence = sequences.stop

    def _create_table_if_missing(self) -> None:
        if not self._table_columns():
            self._create_table()
        found = self._table_columns()
        expected = [column.name for column in EVENT_COLUMNS]
        if found != expected:
            raise ValueError(
                f"{self._path}: table {self._table} has columns {found}, expected {expected}"
            )

    def _create_table(self) -> None:
        # One transaction: the table never exists without its column descriptions.
        statements = [f'CREATE TABLE "{self._table}" ({duckdb_column_definitions()})']
        for column in EVENT_COLUMNS:
            description = column.description.replace("'", "''")
            statements.append(
                f"COMMENT ON COLUMN \"{self._table}\".{column.name} IS '{description}'"
            )
        self._connection.execute("BEGIN TRANSACTION")
        try:
            for statement in statements:
                self._connection.execute(statement)
            self._connection.execute("COMMIT")
        except BaseException:
            self._connection.execute("ROLLBACK")
            raise

    def _table_columns(self) -> list[str]:
        rows = self._connection.execute(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = ?"
            " AND database_name = current_database() AND schema_name = current_schema()"
            " ORDER BY column_index",
            [self._table],
        ).fetchall()
        return [str(name) for (name,) in rows]

    def _last_sequence(self) -> int:
        # fetchall, not fetchone: in DuckDB 2 an unread result keeps the connection busy.
        ((last,),) = self._connection.execute(
            f'SELECT coalesce(max(store_sequence), 0) FROM "{self._table}"'  # noqa: S608
        ).fetchall()
        return int(last)


def _parse_events(cursor: duckdb.DuckDBPyConnection) -> Iterator[events_pb2.Event]:
    try:
        while rows := cursor.fetchmany(_REPLAY_CHUNK):
            for (payload,) in rows:
                event = events_pb2.Event()
                event.ParseFromString(payload)
                yield event
    finally:
        cursor.close()
