"""What every service shares: its journal, the bus, the clock, one lock, and safe consumption.

A service keeps its working state in memory and changes it only under `lock`, describing each
change as a journal `Transaction`. Nothing becomes visible before that transaction is durable:
a reply waits for its ticket, a publish is the journal's outbox, an acknowledgement of a
consumed message waits for the ticket of what the message changed.

A message whose handler keeps failing is parked after `messaging.max_delivery_attempts` in the
service's dead-letter table, with its error, and acknowledged, so its ordering key moves on;
`tradectl deadletter` lists and replays them. What reconciliation cannot resolve is kept in
the unresolved table, logged and counted, never dropped.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from google.protobuf.message import DecodeError
from google.protobuf.message import Message as ProtoMessage
from google.protobuf.timestamp_pb2 import Timestamp
from trading.v1 import events_pb2

from trading_core.bus.base import (
    PER_INSTANCE_TOPICS,
    Durable,
    EventBus,
    Message,
    subscription_name,
)
from trading_core.clock import Clock
from trading_core.config import PlatformConfig
from trading_core.errors import FailedPrecondition, NotFound
from trading_core.events import event_type, new_id, timestamp
from trading_core.journal import Journal, Record, Ticket, Transaction, now_us
from trading_core.outbox import Outbox
from trading_core.telemetry import current_traceparent, trace_scope

log = logging.getLogger(__name__)

M = TypeVar("M", bound=ProtoMessage)
# Applies a consumed message under the service lock, adding what it changed to the transaction.
Apply = Callable[[M, Transaction], None]

_MAX_ERROR_LENGTH = 2_000


@dataclass(frozen=True)
class DeadLetter:
    id: int
    subscription: str
    message_id: str
    ordering_key: str
    attributes: dict[str, str]
    data: bytes
    error: str
    attempts: int
    time_us: int


@dataclass(frozen=True)
class Unresolved:
    kind: str
    subject: str
    detail: str
    time_us: int


class JournaledService:
    """Base of the services; see the module docstring."""

    name = ""

    def __init__(self, config: PlatformConfig, bus: EventBus, journal: Journal, clock: Clock):
        self.config = config
        self.bus = bus
        self.journal = journal
        self.clock = clock
        self.lock = threading.RLock()
        self.outbox = Outbox(journal, bus)
        self._max_attempts = config.messaging.max_delivery_attempts
        # subscription -> what applies its messages, for dead-letter replay
        self._consumers: dict[str, Callable[[Message], Transaction]] = {}

    # Building records -------------------------------------------------------------------------

    def new_event(self, **envelope: Any) -> events_pb2.Event:
        """An event envelope with a fresh id, the current time and the caller's trace context."""
        event = events_pb2.Event(event_id=new_id(), traceparent=current_traceparent(), **envelope)
        event.event_time.CopyFrom(timestamp(self.clock.now()))
        return event

    def new_command(self, **envelope: Any) -> events_pb2.Command:
        command = events_pb2.Command(
            command_id=new_id(), traceparent=current_traceparent(), **envelope
        )
        command.command_time.CopyFrom(timestamp(self.clock.now()))
        return command

    @staticmethod
    def event_record(event: events_pb2.Event, topic: str = "", key: str = "") -> Record:
        """The journal record of an event; published to `topic` when given."""
        return _record(event, event.event_id, event_type(event), event.event_time, topic, key)

    @staticmethod
    def command_record(command: events_pb2.Command, topic: str, key: str) -> Record:
        kind = command.WhichOneof("command") or ""
        name = type(getattr(command, kind)).__name__ if kind else ""
        return _record(command, command.command_id, name, command.command_time, topic, key)

    def commit(self, transaction: Transaction) -> Ticket:
        return self.journal.commit(transaction)

    # Consuming --------------------------------------------------------------------------------

    def consume(self, topic: str, message_type: type[M], apply: Apply[M]) -> None:
        """Subscribes to a topic. Each message is applied under the lock and acknowledged once
        what it changed is durable; one that keeps failing is dead-lettered."""
        instance = new_id()[:8] if topic in PER_INSTANCE_TOPICS else ""
        subscription = subscription_name(topic, self.name, instance)

        def applied(message: Message) -> Transaction:
            try:
                parsed = message_type.FromString(message.data)
            except DecodeError as error:
                raise ValueError(f"not a {message_type.__name__}: {error}") from None
            transaction = Transaction()
            with trace_scope(getattr(parsed, "traceparent", "")), self.lock:
                apply(parsed, transaction)
            return transaction

        def on_message(message: Message) -> Durable | None:
            try:
                transaction = applied(message)
            except Exception as error:
                if message.delivery_attempt < self._max_attempts:
                    raise
                return self._dead_letter(subscription, message, error)
            return self.commit(transaction) if transaction else None

        self._consumers[subscription] = applied
        self.bus.subscribe(topic, subscription, on_message)

    def _dead_letter(self, subscription: str, message: Message, error: Exception) -> Ticket:
        log.error(
            "dead-lettered message %s of %s after %d attempts: %r",
            message.message_id,
            subscription,
            message.delivery_attempt,
            error,
        )
        transaction = Transaction()
        transaction.execute(
            "INSERT INTO dead_letters (subscription, message_id, ordering_key, attributes, data,"
            " error, attempts, time_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                subscription,
                message.message_id,
                message.ordering_key,
                json.dumps(dict(message.attributes)),
                message.data,
                repr(error)[:_MAX_ERROR_LENGTH],
                message.delivery_attempt,
                now_us(),
            ),
        )
        return self.commit(transaction)

    def dead_letters(self) -> list[DeadLetter]:
        rows = self.journal.query(
            "SELECT id, subscription, message_id, ordering_key, attributes, data, error, attempts,"
            " time_us FROM dead_letters ORDER BY id"
        )
        return [
            DeadLetter(r[0], r[1], r[2], r[3], json.loads(r[4]), bytes(r[5]), r[6], r[7], r[8])
            for r in rows
        ]

    def replay_dead_letter(self, letter_id: int) -> None:
        """Applies a dead letter again; it leaves the table once applied. Raises
        FailedPrecondition with the error when it still fails."""
        letter = next((d for d in self.dead_letters() if d.id == letter_id), None)
        if letter is None:
            raise NotFound(f"{self.name} has no dead letter {letter_id}")
        message = Message(
            data=letter.data,
            attributes=letter.attributes,
            ordering_key=letter.ordering_key,
            message_id=letter.message_id,
        )
        try:
            transaction = self._consumers[letter.subscription](message)
        except Exception as error:
            raise FailedPrecondition(
                f"dead letter {letter_id} still fails: {error!r}"[:_MAX_ERROR_LENGTH]
            ) from None
        transaction.execute("DELETE FROM dead_letters WHERE id = ?", (letter_id,))
        self.commit(transaction).wait()

    # Unresolved -------------------------------------------------------------------------------

    def report_unresolved(
        self, transaction: Transaction, kind: str, subject: str, detail: str
    ) -> None:
        """Keeps what reconciliation cannot resolve, for an operator (`tradectl unresolved`)."""
        log.error("unresolved %s %s: %s", kind, subject, detail)
        transaction.execute(
            "INSERT INTO unresolved (kind, subject, detail, time_us) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (kind, subject) DO UPDATE SET detail = excluded.detail",
            (kind, subject, detail, now_us()),
        )

    @staticmethod
    def resolved(transaction: Transaction, kind: str, subject: str) -> None:
        transaction.execute(
            "DELETE FROM unresolved WHERE kind = ? AND subject = ?", (kind, subject)
        )

    def unresolved(self) -> list[Unresolved]:
        rows = self.journal.query(
            "SELECT kind, subject, detail, time_us FROM unresolved ORDER BY time_us"
        )
        return [Unresolved(*row) for row in rows]

    # Life cycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Rebuilds state from the journal, subscribes, starts background work."""
        self.outbox.start()

    def stop(self) -> None:
        """Stops background producers; the bus may still deliver."""

    def close(self) -> None:
        """Called after the bus has drained."""
        self.outbox.stop()

    def ready(self) -> bool:
        """Whether the service can do its work: its journal writes and its bus delivers."""
        return self.journal.healthy() and self.bus.healthy()


def _record(
    message: events_pb2.Event | events_pb2.Command,
    record_id: str,
    record_type: str,
    stamp: Timestamp,
    *routing: str,
) -> Record:
    """`routing`: the topic and ordering key, when the record is published."""
    topic, key = routing
    return Record(
        record_id=record_id,
        record_type=record_type,
        is_event=isinstance(message, events_pb2.Event),
        payload=message.SerializeToString(),
        time_us=stamp.seconds * 1_000_000 + stamp.nanos // 1_000,
        order_id=message.order_id,
        account_id=message.account_id,
        instrument=message.instrument,
        topic=topic,
        ordering_key=key,
    )
