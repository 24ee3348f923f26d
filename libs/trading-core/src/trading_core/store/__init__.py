"""The warehouse: each service's events, fed from its journal, for analysts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from trading_core.config import BigQueryDatabase, DuckDBDatabase
from trading_core.store.base import Warehouse
from trading_core.store.duckdb import DuckDBWarehouse
from trading_core.store.feeding import (
    Feed,
    FeedProcess,
    FeedSpec,
    FeedThreads,
    WarehouseFeeder,
    create_feed,
)
from trading_core.store.schema import raw_table_name as table_name

if TYPE_CHECKING:
    from trading_core.store.bigquery import BigQueryWarehouse

__all__ = [
    "DuckDBWarehouse",
    "Feed",
    "FeedProcess",
    "FeedSpec",
    "FeedThreads",
    "Warehouse",
    "WarehouseFeeder",
    "create_feed",
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
        # Imported here: its clients (pyarrow, google-cloud) take a second to import, which
        # every process started on DuckDB would pay.
        from trading_core.store.bigquery import BigQueryWarehouse

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
