"""The event table: the one definition of its columns.

The DuckDB adapter builds its table and its batches from it; the BigQuery adapter and Terraform
use `bigquery_fields()`. Each column says how its value is read from an event; the two the
store assigns itself (`store_sequence`, `record_time`) have no reader.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from trading.v1 import events_pb2

from trading_core.events import event_type

EventReader = Callable[[events_pb2.Event], Any]


@dataclass(frozen=True)
class Column:
    name: str
    duckdb_type: str
    bigquery_type: str
    arrow_type: pa.DataType
    description: str
    required: bool = False
    read: EventReader | None = None


def _text(field: str) -> EventReader:
    """An envelope string; empty (unset in proto3) is stored as NULL."""
    return lambda event: getattr(event, field) or None


def _event_time(event: events_pb2.Event) -> int | None:
    if not event.HasField("event_time"):
        return None
    seconds, nanos = event.event_time.seconds, event.event_time.nanos
    return seconds * 1_000_000 + nanos // 1_000


_TIMESTAMP = pa.timestamp("us", tz="UTC")

EVENT_COLUMNS: tuple[Column, ...] = (
    Column("store_sequence", "BIGINT", "INT64", pa.int64(),
           "Append order within the table, from 1, continuing across restarts.", required=True),
    Column("event_id", "VARCHAR", "STRING", pa.string(),
           "The event's UUID.", required=True, read=lambda event: event.event_id),
    Column("event_type", "VARCHAR", "STRING", pa.string(),
           "The payload message name, such as OrderAccepted.", required=True, read=event_type),
    Column("event_time", "TIMESTAMPTZ", "TIMESTAMP", _TIMESTAMP,
           "When the state change happened.", read=_event_time),
    Column("sequence", "BIGINT", "INT64", pa.int64(),
           "Per-order or per-position sequence number.", required=True,
           read=lambda event: event.sequence),
    Column("order_id", "VARCHAR", "STRING", pa.string(),
           "The order the event is about.", read=_text("order_id")),
    Column("signal_id", "VARCHAR", "STRING", pa.string(),
           "The signal the order was sized from.", read=_text("signal_id")),
    Column("parent_order_id", "VARCHAR", "STRING", pa.string(),
           "The order this child order was split from.", read=_text("parent_order_id")),
    Column("account_id", "VARCHAR", "STRING", pa.string(),
           "The trading account.", read=_text("account_id")),
    Column("instrument", "VARCHAR", "STRING", pa.string(),
           "The instrument symbol.", read=_text("instrument")),
    Column("traceparent", "VARCHAR", "STRING", pa.string(),
           "W3C trace context of the request that caused the event.",
           read=_text("traceparent")),
    Column("payload", "BLOB", "BYTES", pa.binary(),
           "The serialized trading.v1.Event protobuf.", required=True,
           read=lambda event: event.SerializeToString()),
    Column("record_time", "TIMESTAMPTZ", "TIMESTAMP", _TIMESTAMP,
           "When the store wrote the event.", required=True),
)  # fmt: skip

EVENT_VALUE_COLUMNS: tuple[Column, ...] = tuple(c for c in EVENT_COLUMNS if c.read is not None)

ARROW_SCHEMA = pa.schema(
    [pa.field(c.name, c.arrow_type, nullable=not c.required) for c in EVENT_COLUMNS]
)


def event_values(event: events_pb2.Event) -> tuple[Any, ...]:
    """The event's values for `EVENT_VALUE_COLUMNS`, in that order."""
    return tuple(column.read(event) for column in EVENT_VALUE_COLUMNS if column.read is not None)


def duckdb_column_definitions() -> str:
    return ", ".join(
        f"{c.name} {c.duckdb_type}{' NOT NULL' if c.required else ''}" for c in EVENT_COLUMNS
    )


def bigquery_fields() -> list[dict[str, str]]:
    """The table schema in BigQuery's JSON form (also what Terraform's `schema` takes)."""
    return [
        {
            "name": c.name,
            "type": c.bigquery_type,
            "mode": "REQUIRED" if c.required else "NULLABLE",
            "description": c.description,
        }
        for c in EVENT_COLUMNS
    ]
