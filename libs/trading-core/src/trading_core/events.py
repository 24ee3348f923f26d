"""Building and naming events: the envelope around every state change."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from google.protobuf import timestamp_pb2
from trading.v1 import events_pb2


def new_id() -> str:
    return str(uuid.uuid4())


def timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def event_kind(event: events_pb2.Event) -> str:
    """The payload field name, such as `order_accepted`."""
    return event.WhichOneof("payload") or ""


def event_type(event: events_pb2.Event) -> str:
    """The payload message name, such as `OrderAccepted`."""
    kind = event_kind(event)
    return type(getattr(event, kind)).__name__ if kind else ""


def event_time(event: events_pb2.Event) -> datetime:
    return event.event_time.ToDatetime(tzinfo=UTC)
