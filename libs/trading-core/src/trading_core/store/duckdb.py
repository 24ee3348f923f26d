"""The DuckDB warehouse: one file per service, one table of events, fed from the journal.

The file is opened only while a batch is written (a few milliseconds a second by default):
between feeds an analyst can open it, also read-only, while the platform runs. A feed that
finds the file locked (an analyst's session is open) waits for the next interval; the journal
keeps the events meanwhile. The highest `store_sequence` (the journal position) in the table
is how far it was fed, in the same transaction as the rows: each event is stored once.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from trading.v1 import events_pb2

from trading_core.journal import Journal, KeptRecord
from trading_core.store.schema import (
    ARROW_SCHEMA,
    EVENT_COLUMNS,
    EVENT_VALUE_COLUMNS,
    duckdb_column_definitions,
    event_values,
)

log = logging.getLogger(__name__)

_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RECORD_TIME_TYPE = ARROW_SCHEMA.field("record_time").type


class DuckDBWarehouse:
    def __init__(self, path: Path, table: str) -> None:
        # Checked so that SQL can quote it as an identifier (S608 below).
        if not _TABLE_NAME.match(table):
            raise ValueError(f"table name {table!r} must be letters, digits and underscores")
        self.path = Path(path)
        self.table = table
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fed_through: int | None = None
        self._verified = False  # the table was found (or made) with the expected columns
        self._lock = threading.Lock()  # one connection of this object at a time

    def fed_through(self) -> int:
        with self._lock:
            if self._fed_through is None:
                with self._open() as connection:
                    self._fed_through = self._last_sequence(connection)
            return self._fed_through

    def feed(self, records: Sequence[KeptRecord]) -> int:
        with self._lock, self._open() as connection:
            through = self._last_sequence(connection)
            fresh = [k for k in records if k.seq > through and k.record.is_event]
            if fresh:
                connection.execute("BEGIN TRANSACTION")
                connection.from_arrow(_arrow_batch(fresh)).insert_into(self.table)
                connection.execute("COMMIT")
            self._fed_through = max([through, *(k.seq for k in records)])
        return len(fresh)

    def _open(self) -> duckdb.DuckDBPyConnection:
        connection = duckdb.connect(str(self.path))
        try:
            if not self._verified:  # once: reading the catalog costs more than a feed
                self._verify(connection)
                self._verified = True
        except BaseException:
            connection.close()
            raise
        return connection

    def _verify(self, connection: duckdb.DuckDBPyConnection) -> None:
        found = _table_columns(connection, self.table)
        if not found:
            _create_table(connection, self.table)
            found = _table_columns(connection, self.table)
        expected = [column.name for column in EVENT_COLUMNS]
        if found != expected:
            raise ValueError(
                f"{self.path}: table {self.table} has columns {found}, expected {expected}"
            )

    def _last_sequence(self, connection: duckdb.DuckDBPyConnection) -> int:
        ((last,),) = connection.execute(
            f'SELECT coalesce(max(store_sequence), 0) FROM "{self.table}"'  # noqa: S608
        ).fetchall()
        return int(last)


class WarehouseFeeder:
    """Copies a journal's new events into a warehouse every interval, on its own thread."""

    def __init__(
        self, journal: Journal, warehouse: DuckDBWarehouse, *, interval_s: float, batch_size: int
    ) -> None:
        self._journal = journal
        self._warehouse = warehouse
        self._interval_s = interval_s
        self._batch_size = batch_size
        self._stopping = threading.Event()
        self._failing = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.name = f"warehouse-{warehouse.table}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Feeds what is left, then stops."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
        self.feed_all()

    def feed_all(self) -> int:
        """Feeds what the journal held when called; returns how many events were stored.

        Not "until caught up": on a busy journal that target moves while a feed runs, and the
        feeder would open the file again and again (each open and close costs tens of ms)."""
        stored = 0
        target = self._journal.last_seq
        try:
            while (after := self._warehouse.fed_through()) < target:
                batch = self._journal.records_after(after, limit=self._batch_size)
                if not batch:
                    break
                stored += self._warehouse.feed(batch)
        except (duckdb.Error, OSError) as error:
            if not self._failing:
                log.warning(
                    "warehouse %s: cannot write now (%s); will retry", self._warehouse.path, error
                )
            self._failing = True
            return stored
        self._failing = False
        return stored

    def _run(self) -> None:
        while not self._stopping.wait(self._interval_s):
            self.feed_all()


def _arrow_batch(records: Sequence[KeptRecord]) -> pa.Table:
    rows = [
        event_values(events_pb2.Event.FromString(k.record.payload), k.record.payload)
        for k in records
    ]
    columns: dict[str, Any] = {"store_sequence": pa.array([k.seq for k in records], pa.int64())}
    for column, values in zip(EVENT_VALUE_COLUMNS, zip(*rows, strict=True), strict=True):
        columns[column.name] = pa.array(values, column.arrow_type)
    record_time = time.time_ns() // 1_000
    columns["record_time"] = pa.array([record_time] * len(records), _RECORD_TIME_TYPE)
    return pa.Table.from_arrays([columns[name] for name in ARROW_SCHEMA.names], schema=ARROW_SCHEMA)


def _create_table(connection: duckdb.DuckDBPyConnection, table: str) -> None:
    # One transaction: the table never exists without its column descriptions.
    statements = [f'CREATE TABLE "{table}" ({duckdb_column_definitions()})']
    for column in EVENT_COLUMNS:
        description = column.description.replace("'", "''")
        statements.append(f"COMMENT ON COLUMN \"{table}\".{column.name} IS '{description}'")
    connection.execute("BEGIN TRANSACTION")
    try:
        for statement in statements:
            connection.execute(statement)
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


def _table_columns(connection: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    rows = connection.execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = ?"
        " AND database_name = current_database() AND schema_name = current_schema()"
        " ORDER BY column_index",
        [table],
    ).fetchall()
    return [str(name) for (name,) in rows]
