"""Building and naming events: the envelope around every state change."""

from __future__ import annotations

import os
import random
import uuid
from datetime import UTC, datetime

from google.protobuf import timestamp_pb2
from trading.v1 import events_pb2

# Event and order ids must be unique, not secret: a generator seeded once from the OS is enough,
# and os.urandom per id (uuid.uuid4) costs tens of microseconds on these virtual machines.
_ids = random.Random(os.urandom(32))


def new_id() -> str:
    """A random (version 4) UUID string."""
    return str(uuid.UUID(int=_ids.getrandbits(128), version=4))


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
