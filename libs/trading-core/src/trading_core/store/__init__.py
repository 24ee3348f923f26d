"""The warehouse: each service's events, fed from its journal, for analysts."""

from __future__ import annotations

from trading_core.config import BigQueryDatabase, DuckDBDatabase
from trading_core.store.base import Warehouse
from trading_core.store.bigquery import BigQueryWarehouse
from trading_core.store.duckdb import DuckDBWarehouse, WarehouseFeeder
from trading_core.store.schema import raw_table_name as table_name

__all__ = [
    "BigQueryWarehouse",
    "DuckDBWarehouse",
    "Warehouse",
    "WarehouseFeeder",
    "create_warehouse",
    "table_name",
]


def create_warehouse(
    database: DuckDBDatabase | BigQueryDatabase, service: str
) -> DuckDBWarehouse | BigQueryWarehouse:
    """The configured warehouse of one service: for DuckDB, the file `<path>/<service>.duckdb`;
    for BigQuery, the dataset, with its write streams' offsets in `<state_path>/<service>.
    bigquery.json`."""
    if isinstance(database, BigQueryDatabase):
        return BigQueryWarehouse(
            service,
            project=database.project,
            dataset=database.dataset,
            location=database.location,
            state_dir=database.state_path,
            endpoint=database.endpoint,
            write_endpoint=database.write_endpoint,
        )
    return DuckDBWarehouse(database.path / f"{service}.duckdb", service)
