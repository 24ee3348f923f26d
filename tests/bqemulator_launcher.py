"""Starts bqemulator (`python tests/bqemulator_launcher.py start --rest-port N ...`) with three
things it does otherwise than these tests need, changed here (never in the warehouse):

- The DuckDB spatial extension is left unloaded: the emulator installs it from the internet at
  start, and these machines have none (GEOGRAPHY queries would fail; the warehouse has none).
- BIGNUMERIC is stored as DuckDB's DECIMAL(38, 18): the emulator asks DuckDB for
  DECIMAL(76, 38), wider than DuckDB's 38 digits, and fails to create the table ("Binder
  Error: DECIMAL type width must be between 1 and 38"); the warehouse's BIGNUMERIC values
  have 38 digits, 18 decimals.
- A column added by tables.patch / tables.update is added to the table's storage too: the
  emulator records it in its catalog only, so the next append fails with "Binder Error:
  table "executions" has 25 columns but 26 values were supplied". BigQuery adds the column,
  NULL in the rows already stored (the warehouse's additive migration relies on that).
- The Storage Write API's threads get DuckDB connections of their own: the emulator shares
  one between its REST queries (on its event loop) and its appends (on gRPC worker threads),
  and DuckDB refuses a call on a connection that is busy ("Resource In Use Error: connection
  is busy with another call; it refuses instead of waiting, so use a separate connection
  from cursor()"): a query run while a feed appends failed, or the append did. BigQuery
  serves both at once.

Run by .venv-bqemulator's Python (uv group bqemulator), not the platform's; started by the
tests through tests/bqemulator_support.py."""

from __future__ import annotations

import threading

import duckdb
import pyarrow as pa
from bqemulator.api.routes import tabledata
from bqemulator.catalog.memory_repository import MemoryCatalogRepository
from bqemulator.catalog.models import TableMeta
from bqemulator.cli import main
from bqemulator.storage import type_map
from bqemulator.storage.engine import DuckDBEngine
from bqemulator.storage.sql_identifiers import quoted_table_ref


def _without_spatial(_engine: DuckDBEngine) -> None:
    """The engine's spatial loading, switched off (GEOGRAPHY queries would fail)."""


_arrow_type = tabledata._bq_type_to_arrow


def _bignumeric_as_duckdb_holds_it(bq_type: str) -> pa.DataType:
    """The Arrow type rows are cast to before DuckDB stores them: DuckDB reads no 256-bit
    decimals, so BIGNUMERIC travels as decimal128(38, 18) inside the emulator."""
    if bq_type.upper() == "BIGNUMERIC":
        return pa.decimal128(38, 18)
    found: pa.DataType = _arrow_type(bq_type)
    return found


_update_catalog = MemoryCatalogRepository.update_table


def _update_table_and_storage(self: MemoryCatalogRepository, table: TableMeta) -> TableMeta:
    """The catalog's update, after adding the columns it gains to the DuckDB table (at its
    end, where the catalog puts them too: appends are stored by position)."""
    before = self.get_table(table.project_id, table.dataset_id, table.table_id)
    engine = self._engine
    if before is not None and engine is not None and table.table_type == "TABLE":
        known = {f.name for f in before.schema_.fields}
        added = [
            {"name": f.name, "type": f.type, "mode": f.mode}
            for f in table.schema_.fields
            if f.name not in known
        ]
        where = quoted_table_ref(table.project_id, table.dataset_id, table.table_id)
        for name, duckdb_type in type_map.bq_schema_to_duckdb_columns(added):
            engine.execute(f'ALTER TABLE {where} ADD COLUMN IF NOT EXISTS "{name}" {duckdb_type}')
    return _update_catalog(self, table)


_shared_connection = DuckDBEngine.connection.fget
_threads = threading.local()


def _connection_of_this_thread(engine: DuckDBEngine) -> duckdb.DuckDBPyConnection:
    """The engine's connection on the main thread (its event loop); on any other thread, a
    cursor of it (a connection of its own to the same database), in UTC as the engine's."""
    shared: duckdb.DuckDBPyConnection = _shared_connection(engine)
    if threading.current_thread() is threading.main_thread():
        return shared
    cursors = _threads.__dict__.setdefault("cursors", {})
    if id(shared) not in cursors:
        cursors[id(shared)] = shared.cursor()
        cursors[id(shared)].execute("SET TimeZone = 'UTC'")
    cursor: duckdb.DuckDBPyConnection = cursors[id(shared)]
    return cursor


if __name__ == "__main__":
    DuckDBEngine._load_spatial = _without_spatial
    type_map._BQ_TO_DUCKDB["BIGNUMERIC"] = "DECIMAL(38, 18)"
    tabledata._bq_type_to_arrow = _bignumeric_as_duckdb_holds_it
    MemoryCatalogRepository.update_table = _update_table_and_storage
    DuckDBEngine.connection = property(_connection_of_this_thread)
    main()
