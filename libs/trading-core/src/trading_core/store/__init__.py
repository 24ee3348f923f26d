"""Event stores: each service appends its events to its own table and replays them on start."""

from __future__ import annotations

from trading_core.config import BigQueryDatabase, ConfigError, DuckDBDatabase
from trading_core.store.base import EventStore
from trading_core.store.duckdb import DuckDBEventStore, EventStoreWriteError

__all__ = ["DuckDBEventStore", "EventStore", "EventStoreWriteError", "create_store", "table_name"]


def table_name(service: str) -> str:
    """The events table of a service: `order-management` keeps `order_management_events`."""
    return f"{service.replace('-', '_')}_events"


def create_store(database: DuckDBDatabase | BigQueryDatabase, service: str) -> EventStore:
    """The configured store of one service: for DuckDB, the file `<path>/<service>.duckdb`."""
    if isinstance(database, BigQueryDatabase):
        raise ConfigError(
            "database.backend: 'bigquery' needs the BigQuery event store, which arrives in a "
            "later release; choose duckdb"
        )
    return DuckDBEventStore(
        database.path / f"{service}.duckdb",
        table_name(service),
        batch_size=database.batch_size,
        flush_interval_ms=database.flush_interval_ms,
    )
