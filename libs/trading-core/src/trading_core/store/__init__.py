"""The warehouse: each service's events, fed from its journal, for analysts."""

from __future__ import annotations

from trading_core.config import BigQueryDatabase, ConfigError, DuckDBDatabase
from trading_core.store.base import Warehouse
from trading_core.store.duckdb import DuckDBWarehouse, WarehouseFeeder
from trading_core.store.schema import raw_table_name as table_name

__all__ = ["DuckDBWarehouse", "Warehouse", "WarehouseFeeder", "create_warehouse", "table_name"]


def create_warehouse(database: DuckDBDatabase | BigQueryDatabase, service: str) -> DuckDBWarehouse:
    """The configured warehouse of one service: for DuckDB, the file `<path>/<service>.duckdb`."""
    if isinstance(database, BigQueryDatabase):
        raise ConfigError(
            "database.backend: 'bigquery' needs the BigQuery warehouse, which arrives in a "
            "later release; choose duckdb"
        )
    return DuckDBWarehouse(database.path / f"{service}.duckdb", service)
