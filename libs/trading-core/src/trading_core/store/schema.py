"""The event table: the one definition of its columns.

The DuckDB adapter builds its table and its batches from it; the BigQuery adapter and Terraform
use `bigquery_fields()`. Each column says how its value is read from an event; the two the
store assigns itself (`store_sequence`, `record_time`) have no reader.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

import pyarrow as pa
from trading.v1 import events_pb2

from trading_core.events import event_type, stamp_micros

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


class _Text:
    """An envelope string; empty (unset in proto3) is stored as NULL."""

    def __init__(self, field: str) -> None:
        self.field = field

    def __call__(self, event: events_pb2.Event) -> str | None:
        return getattr(event, self.field) or None


def _text(field: str) -> EventReader:
    return _Text(field)


def _event_time(event: events_pb2.Event) -> int | None:
    if not event.HasField("event_time"):
        return None
    return stamp_micros(event.event_time)


_TIMESTAMP = pa.timestamp("us", tz="UTC")

EVENT_COLUMNS: tuple[Column, ...] = (
    Column("store_sequence", "BIGINT", "INT64", pa.int64(),
           "Append order within the table, from 1, continuing across restarts.", required=True),
    Column("event_id", "VARCHAR", "STRING", pa.string(),
           "The event's UUID.", required=True, read=lambda event: event.event_id),
    Column("event_type", "VARCHAR", "STRING", pa.string(),
           "The payload message name, such as OrderSubmitted.", required=True, read=event_type),
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

# Values are read per appended event, so `event_values` reads every envelope string in one
# call and gives them first, then the other values, then the payload: this order.
_TEXTS = tuple(c for c in EVENT_COLUMNS if isinstance(c.read, _Text))
_OTHERS = tuple(c for c in EVENT_COLUMNS if c.read is not None and c not in _TEXTS)
_PAYLOAD = next(c for c in _OTHERS if c.name == "payload")
EVENT_VALUE_COLUMNS: tuple[Column, ...] = (
    *_TEXTS,
    *(c for c in _OTHERS if c is not _PAYLOAD),
    _PAYLOAD,
)
_read_texts = attrgetter(*(c.read.field for c in _TEXTS if isinstance(c.read, _Text)))
_OTHER_READERS: tuple[EventReader, ...] = tuple(
    c.read for c in _OTHERS if c.read is not None and c is not _PAYLOAD
)

ARROW_SCHEMA = pa.schema(
    [pa.field(c.name, c.arrow_type, nullable=not c.required) for c in EVENT_COLUMNS]
)


def event_values(event: events_pb2.Event, payload: bytes | None = None) -> tuple[Any, ...]:
    """The event's values for `EVENT_VALUE_COLUMNS`, in that order.

    `payload` is the event already serialized, when the caller has it: serializing once per
    event matters on the hot path.
    """
    values = [text or None for text in _read_texts(event)]
    values += [read(event) for read in _OTHER_READERS]
    values.append(event.SerializeToString() if payload is None else payload)
    return tuple(values)


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
