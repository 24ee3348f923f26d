"""The event store interface: each service appends its own events to its own table.

Appends are buffered and written in batches (one columnar insert per batch); `flush` writes
what is buffered. On start a service replays its table, in append order, to rebuild its state.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from trading.v1 import events_pb2


class EventStore(Protocol):
    def append(self, event: events_pb2.Event, payload: bytes | None = None) -> None:
        """Buffers an event; it is written by the next batch.

        `payload` is the event serialized, when the caller already has it (for a publish, or as
        it arrived from the bus); it must parse to `event`. Without it the store serializes.
        """

    def flush(self) -> None:
        """Writes every buffered event; returns when they are stored."""

    def replay(self) -> Iterator[events_pb2.Event]:
        """Every stored event of this table, in the order it was appended."""

    def close(self) -> None:
        """Flushes and releases the store."""

    def healthy(self) -> bool:
        """False while buffered events cannot be written, and once closed."""
