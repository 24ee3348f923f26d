"""The DuckDB warehouse: one file per service, fed from its journal.

Each file holds the service's raw events table (`<service>_events`) and every typed table of
the schema (orders, executions, fills, quotes, ...; see `schema.py`), empty where the service
makes no such events: the same tables in every file, so an analyst can attach them all and
union them. A feed writes the raw rows and the typed rows of a batch in one transaction; the
highest `store_sequence` of the raw table (the journal position) is how far it was fed, so a
crash anywhere leaves every event stored once, or not yet.

The file is attached only while a batch is written (milliseconds every feed interval):
between feeds an analyst can open it, also read-only, while the platform runs. A feed that
finds the file locked (an analyst's session is open) waits for the next interval; the journal
keeps the events meanwhile.

Opening a file made by an earlier version migrates it, additively, in one transaction: missing
tables are created (and filled from the raw events, whose payloads hold every value), missing
columns are added (NULL in the rows already stored).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa

from trading_core.journal import KeptRecord
from trading_core.store.rows import arrow_batches, parse, typed_batches
from trading_core.store.schema import (
    EVENT_COLUMNS,
    RAW_TABLE_DESCRIPTION,
    TABLES,
    Column,
    SchemaMismatch,
    Table,
    missing_columns,
    raw_table_name,
)

log = logging.getLogger(__name__)

_BACKFILL_ROWS = 5000
_ALIAS = "warehouse"


class DuckDBWarehouse:
    # A file locked by an analyst's session, a disk full, a table of another type.
    transient_errors: tuple[type[Exception], ...] = (duckdb.Error, OSError, SchemaMismatch)

    def __init__(self, path: Path, service: str) -> None:
        self.path = Path(path)
        self.service = service
        # Letters, digits and underscores (services are named so): SQL quotes it (S608 below).
        self.table = raw_table_name(service)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fed_through: int | None = None
        self._verified = False  # the tables were found (or made) with the expected columns
        self._lock = threading.Lock()  # one use of the connection at a time
        self._connection: duckdb.DuckDBPyConnection | None = None

    def fed_through(self) -> int:
        with self._lock:
            if self._fed_through is None:
                with self._attached() as connection:
                    self._fed_through = self._last_sequence(connection)
            return self._fed_through

    def feed(self, records: Sequence[KeptRecord]) -> int:
        with self._lock, self._attached() as connection:
            through = self._last_sequence(connection)
            fresh = [k for k in records if k.seq > through and k.record.is_event]
            if fresh:
                batches = arrow_batches(self.table, self.service, fresh)
                _in_one_transaction(connection, lambda: _insert(connection, batches))
            self._fed_through = max([through, *(k.seq for k in records)])
        return len(fresh)

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    @contextmanager
    def _attached(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The file, attached to this object's in-memory DuckDB while the caller works, as the
        current database; detached after (which checkpoints it and frees it for others).
        Attaching costs well under a millisecond; a connection of its own costs ~20 ms of CPU
        to make, whatever the file, and the feeder uses the file every feed interval."""
        if self._connection is None:
            # One thread: the feed shares the machine with the services; its batches are small.
            self._connection = duckdb.connect(":memory:", config={"threads": 1})
        connection = self._connection
        if not self.path.exists():
            self._make(connection)
        with _using(connection, self.path):
            if not self._verified:  # once: reading the catalog costs more than a feed
                self._migrate(connection)
                self._verified = True
            yield connection

    def _make(self, connection: duckdb.DuckDBPyConnection) -> None:
        """A new file, with its tables, made under another name and renamed into place: an
        analyst who opens it meanwhile finds no file, rather than one DuckDB cannot read yet."""
        making = self.path.with_name(self.path.name + ".making")
        making.unlink(missing_ok=True)  # what a process killed while making it left
        making.with_name(making.name + ".wal").unlink(missing_ok=True)
        with _using(connection, making):
            self._migrate(connection, made=True)
        making.replace(self.path)  # detached: checkpointed, whole, no write-ahead log
        self._verified = True

    def _migrate(self, connection: duckdb.DuckDBPyConnection, *, made: bool = False) -> None:
        """Creates what is missing, additively; fills new typed tables from the raw events.
        `made`: the file is new (said so in the log)."""
        found = _columns(connection)
        statements: list[str] = []
        new_tables: list[Table] = []
        for name, columns, description in (
            (self.table, EVENT_COLUMNS, RAW_TABLE_DESCRIPTION),
            *((t.name, t.columns, t.description) for t in TABLES),
        ):
            if name not in found:
                statements += _create_table(name, columns, description)
                new_tables += [t for t in TABLES if t.name == name]
                continue
            for column in missing_columns(name, columns, found[name], _duckdb_type):
                statements.append(
                    f'ALTER TABLE "{name}" ADD COLUMN {column.name} {column.duckdb_type}'
                )
                statements.append(_comment(name, column))
        if not statements:
            return
        backfill = new_tables if self.table in found else []

        def migrate() -> None:
            for statement in statements:
                connection.execute(statement)
            if backfill:
                self._backfill(connection, backfill)

        _in_one_transaction(connection, migrate)
        if made:
            log.info("warehouse %s: made (%d tables)", self.path, 1 + len(TABLES))
        else:
            log.info("warehouse %s: migrated (%d changes)", self.path, len(statements))

    def _backfill(self, connection: duckdb.DuckDBPyConnection, tables: list[Table]) -> None:
        after = 0
        while True:
            rows = connection.execute(
                f'SELECT store_sequence, payload FROM "{self.table}"'  # noqa: S608
                " WHERE store_sequence > ? ORDER BY store_sequence LIMIT ?",
                [after, _BACKFILL_ROWS],
            ).fetchall()
            if not rows:
                return
            parsed = [(int(seq), parse(bytes(payload), str(seq))) for seq, payload in rows]
            _insert(connection, typed_batches(self.service, parsed, set(tables)))
            after = parsed[-1][0]

    def _last_sequence(self, connection: duckdb.DuckDBPyConnection) -> int:
        ((last,),) = connection.execute(
            f'SELECT coalesce(max(store_sequence), 0) FROM "{self.table}"'  # noqa: S608
        ).fetchall()
        return int(last)


@contextmanager
def _using(connection: duckdb.DuckDBPyConnection, path: Path) -> Iterator[None]:
    """The file attached as the current database while the caller works; detached after."""
    location = str(path).replace("'", "''")
    connection.execute(f"ATTACH '{location}' AS {_ALIAS}")
    try:
        connection.execute(f"USE {_ALIAS}")
        yield
    finally:
        connection.execute("USE memory")
        connection.execute(f"DETACH {_ALIAS}")


def _insert(connection: duckdb.DuckDBPyConnection, batches: dict[str, pa.Table]) -> None:
    """By column name: a migrated table may hold its columns in another order. The batch is
    found by its variable's name (DuckDB's replacement scan): registering it as a view would
    change the catalog, at twice the cost."""
    for name, batch in batches.items():
        assert batch.num_rows  # the variable the statement reads
        connection.execute(f'INSERT INTO "{name}" BY NAME SELECT * FROM batch')  # noqa: S608


def _in_one_transaction(connection: duckdb.DuckDBPyConnection, work: Callable[[], None]) -> None:
    connection.execute("BEGIN TRANSACTION")
    try:
        work()
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


def _create_table(name: str, columns: Sequence[Column], description: str) -> list[str]:
    """The table and its descriptions (made in the caller's transaction: never one without)."""
    escaped = description.replace("'", "''")
    definitions = ", ".join(
        f"{c.name} {c.duckdb_type}{' NOT NULL' if c.required else ''}" for c in columns
    )
    return [
        f'CREATE TABLE "{name}" ({definitions})',
        f"COMMENT ON TABLE \"{name}\" IS '{escaped}'",
        *(_comment(name, column) for column in columns),
    ]


def _comment(table: str, column: Column) -> str:
    description = column.description.replace("'", "''")
    return f"COMMENT ON COLUMN \"{table}\".{column.name} IS '{description}'"


def _duckdb_type(column: Column) -> str:
    return column.duckdb_type


def _columns(connection: duckdb.DuckDBPyConnection) -> dict[str, dict[str, str]]:
    """Every table of the file's main schema: column name -> type as DuckDB reports it."""
    rows = connection.execute(
        "SELECT table_name, column_name, data_type FROM duckdb_columns()"
        " WHERE database_name = current_database() AND schema_name = current_schema()"
        " ORDER BY table_name, column_index"
    ).fetchall()
    found: dict[str, dict[str, str]] = {}
    for table, column, data_type in rows:
        found.setdefault(str(table), {})[str(column)] = str(data_type)
    return found
