"""Runs the analytics queries on the DuckDB warehouse: the four services' files as one dataset.

Each run attaches the files that exist (`<folder>/<service>.duckdb`) READ_ONLY to an in-memory
DuckDB, makes the schema `trading` in it with a view per table (the union, by column name, of
that table in every file: each file has every typed table, empty where its service makes no
such rows), runs the query's DuckDB text, and detaches them: between runs the feeders can write.
A table no file has yet (a fresh platform: no file at all) is an empty table of the schema's
columns, so a query over it answers no rows. A file its feeder holds at that moment is tried
again, briefly (`busy_timeout_s`), then `WarehouseBusy` says so.

`run_query(folder, name, parameters)` is the whole API for one-off use; `DuckDBAnalytics` keeps
one in-memory DuckDB for many runs (a service answering RPCs).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pyarrow as pa

from trading_core.analytics.queries import (
    DATASET,
    AnalyticsError,
    composed,
    duckdb_sql,
    load,
    parameters_of,
    transpiled,
)
from trading_core.store.schema import SERVICES, TABLES, duckdb_column_definitions, raw_table_name

# Another process holds the file's lock (the feed process), or a writer in this process has it
# attached this very moment.
_HELD = re.compile(r"lock|already attached", re.IGNORECASE)
_FIRST_WAIT_S = 0.02
Answer = TypeVar("Answer")
Values = dict[str, Any]


class WarehouseBusy(AnalyticsError):
    """A feeder held a file for longer than the runner waits."""


@dataclass(frozen=True)
class Result:
    """A query's answer: column names, and rows of Python values (Decimal for amounts)."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def __len__(self) -> int:
        return len(self.rows)


def bind(name: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """The query's parameters from `given`: NULL-able ones default to None; a missing one or one
    the query does not take is an AnalyticsError naming it."""
    query = load(name)
    known = {p.name: p for p in query.parameters}
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise AnalyticsError(
            f"query {name} takes no parameter {', '.join(unknown)}; it takes "
            + ", ".join(f"@{p}" for p in known)
        )
    missing = [p for p in known.values() if not p.nullable and given.get(p.name) is None]
    if missing:
        raise AnalyticsError(
            f"query {name} needs "
            + "; ".join(f"@{p.name} ({p.type}: {p.description})" for p in missing)
        )
    used = parameters_of(composed(name))
    return {key: given.get(key) for key in known if key in used}


class DuckDBAnalytics:
    def __init__(self, folder: Path, *, busy_timeout_s: float = 5.0) -> None:
        self.folder = Path(folder)
        self.busy_timeout_s = busy_timeout_s
        self._lock = threading.Lock()
        self._connection: duckdb.DuckDBPyConnection | None = None

    def describe(self) -> str:
        return str(self.folder)

    def run(self, name: str, parameters: Mapping[str, Any] | None = None) -> Result:
        """Runs the named query with its parameters (Python values: datetime, str, bool)."""
        return self._execute(name, *_named(name, parameters), _rows)

    def run_sql(self, text: str, parameters: Mapping[str, Any] | None = None) -> Result:
        """Any query in BigQuery's dialect on the `trading` dataset (an analyst's own), with
        its parameters (every `@name` it uses)."""
        duckdb_text, names = transpiled(text)
        given = dict(parameters or {})
        missing = sorted(names - set(given))
        if missing:
            raise AnalyticsError("the query needs " + ", ".join(f"@{m}" for m in missing))
        values = {name: given[name] for name in names}
        return self._execute("", duckdb_text, values, _rows)

    def arrow(self, name: str, parameters: Mapping[str, Any] | None = None) -> pa.Table:
        """The same answer as an Arrow table: for many rows (a per-order query over a busy
        day), read in bulk without making a Python object per value."""

        def table(connection: duckdb.DuckDBPyConnection, text: str, values: Values) -> pa.Table:
            answer: pa.Table = connection.sql(text, params=values).to_arrow_table()
            return answer

        return self._execute(name, *_named(name, parameters), table)

    def _execute(
        self,
        name: str,
        text: str,
        values: Values,
        fetch: Callable[[duckdb.DuckDBPyConnection, str, Values], Answer],
    ) -> Answer:
        with self._lock, self._dataset() as connection:
            try:
                return fetch(connection, text, values)
            except duckdb.Error as error:
                what = f"query {name}" if name else "the query"
                raise AnalyticsError(f"{what} failed on DuckDB: {error}") from None

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def __enter__(self) -> DuckDBAnalytics:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def files(self) -> list[tuple[str, Path]]:
        """The services' files that exist, with the alias each is attached as."""
        return [
            (f"file_{raw_table_name(service)}", path)
            for service in SERVICES
            if (path := self.folder / f"{service}.duckdb").is_file()
        ]

    @contextmanager
    def _dataset(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if self._connection is None:
            self._connection = duckdb.connect(":memory:")
            self._connection.execute("SET TimeZone = 'UTC'")  # DATE(timestamp) is UTC's day
        connection = self._connection
        attached: list[str] = []
        try:
            for alias, path in self.files():
                self._attach(connection, alias, path)
                attached.append(alias)
            _make_views(connection, attached)
            yield connection
        finally:
            connection.execute(f"DROP SCHEMA IF EXISTS {DATASET} CASCADE")
            for alias in attached:
                connection.execute(f"DETACH {alias}")

    def _attach(self, connection: duckdb.DuckDBPyConnection, alias: str, path: Path) -> None:
        location = str(path).replace("'", "''")
        deadline = time.monotonic() + self.busy_timeout_s
        wait = _FIRST_WAIT_S
        while True:
            try:
                connection.execute(f"ATTACH '{location}' AS {alias} (READ_ONLY)")
                return
            except duckdb.Error as error:
                if not _HELD.search(str(error)):
                    raise AnalyticsError(f"cannot open {path}: {error}") from None
                if time.monotonic() >= deadline:
                    raise WarehouseBusy(
                        f"{path} is held by its writer (a feeder, or another session opened "
                        f"it read-write) for over {self.busy_timeout_s:g} s; try again"
                    ) from None
                time.sleep(wait)  # the feeder holds a file for milliseconds at a time
                wait = min(wait * 2, 0.5)


def _named(name: str, parameters: Mapping[str, Any] | None) -> tuple[str, Values]:
    return duckdb_sql(name), bind(name, parameters or {})


def _rows(connection: duckdb.DuckDBPyConnection, text: str, values: Values) -> Result:
    cursor = connection.execute(text, values)
    fetched = cursor.fetchall()
    return Result(tuple(str(c[0]) for c in cursor.description or ()), fetched)


def _make_views(connection: duckdb.DuckDBPyConnection, aliases: Sequence[str]) -> None:
    """`trading.<table>`: each typed table, and each raw events table, over the attached files."""
    found: dict[str, list[str]] = {}
    for database, table in connection.execute(
        "SELECT database_name, table_name FROM duckdb_tables() WHERE schema_name = 'main'"
    ).fetchall():
        if database in aliases:
            found.setdefault(str(table), []).append(str(database))
    connection.execute(f"CREATE SCHEMA {DATASET}")
    for table in TABLES:
        if table.name not in found:
            connection.execute(
                f"CREATE TABLE {DATASET}.{table.name} ({duckdb_column_definitions(table.columns)})"
            )
    typed = {table.name for table in TABLES}
    raw = {raw_table_name(service) for service in SERVICES}
    for name, databases in found.items():
        if name in typed or name in raw:
            union = " UNION ALL BY NAME ".join(
                f'SELECT * FROM {database}.main."{name}"'  # noqa: S608 (schema's names)
                for database in databases
            )
            connection.execute(f'CREATE VIEW {DATASET}."{name}" AS {union}')


def run_query(
    folder: Path, name: str, parameters: Mapping[str, Any] | None = None, **options: float
) -> Result:
    """One query on the DuckDB files under `folder` (`database.path`)."""
    with DuckDBAnalytics(folder, **options) as analytics:
        return analytics.run(name, parameters)
