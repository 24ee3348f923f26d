"""The one event table schema serves DuckDB now and BigQuery later, column for column."""

from __future__ import annotations

import duckdb
from trading_core.store.schema import EVENT_COLUMNS, bigquery_fields, duckdb_column_definitions


def test_bigquery_fields_list_every_column_in_order_with_its_mode() -> None:
    fields = bigquery_fields()
    assert [f["name"] for f in fields] == [c.name for c in EVENT_COLUMNS]
    by_name = {f["name"]: f for f in fields}
    assert by_name["payload"] == {
        "name": "payload",
        "type": "BYTES",
        "mode": "REQUIRED",
        "description": "The serialized trading.v1.Event protobuf.",
    }
    assert by_name["order_id"]["mode"] == "NULLABLE"
    assert by_name["event_time"]["type"] == "TIMESTAMP"


def test_duckdb_definitions_create_the_same_columns() -> None:
    connection = duckdb.connect()
    connection.execute(f"CREATE TABLE events ({duckdb_column_definitions()})")
    created = [row[0] for row in connection.execute("DESCRIBE events").fetchall()]
    assert created == [c.name for c in EVENT_COLUMNS]
