"""What every service shares: its journal, the bus, the clock, one lock, and safe consumption.

A service keeps its working state in memory and changes it only under `lock`, describing each
change as a journal `Transaction`. Nothing becomes visible before that transaction is durable:
a reply waits for its ticket, a publish is the journal's outbox, an acknowledgement of a
consumed message waits for the ticket of what the message changed.

A message whose handler keeps failing is parked after `messaging.max_delivery_attempts` in the
service's dead-letter table, with its error, and acknowledged, so its ordering key moves on (a
consumer that numbers what it applies moves its own count past it too, see `consume`). The same
message parked again stays one dead letter. A replay applies it through the same handler, with
`replaying` set, and removes it in the same transaction. The admin API (`trading_core.admin`) and
`tradectl deadletter` list and replay them. What reconciliation cannot resolve is kept in the
unresolved table, logged and counted, never dropped.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from google.protobuf.message import DecodeError
from google.protobuf.message import Message as ProtoMessage
from google.protobuf.timestamp_pb2 import Timestamp
from trading.v1 import events_pb2

from trading_core import metrics
from trading_core.auth import actor
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
from trading_core.events import event_type, micros, new_id, stamp_micros, timestamp
from trading_core.journal import Journal, Record, Ticket, Transaction, now_us
from trading_core.outbox import Outbox
from trading_core.peers import Peers
from trading_core.telemetry import observed_commit
from trading_core.tracing import consuming, current_traceparent

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
    error: str
    attempts: int
    time_us: int
    size: int  # of the payload, in bytes
    data: bytes = b""  # the payload; left out of listings unless asked for


@dataclass(frozen=True)
class Unresolved:
    id: int
    kind: str
    subject: str
    detail: str
    time_us: int


_DEAD_LETTER_COLUMNS = (
    "id, subscription, message_id, ordering_key, attributes, error, attempts, time_us, length(data)"
)


@dataclass(frozen=True)
class ServiceContext:
    """What the composition root gives a service: its config, the shared bus, its own journal,
    the clock, and where the other services listen."""

    config: PlatformConfig
    bus: EventBus
    journal: Journal
    clock: Clock
    peers: Peers | None = None


class JournaledService:
    """Base of the services; see the module docstring."""

    name = ""

    def __init__(self, context: ServiceContext):
        self.config = context.config
        self.peers = context.peers or Peers(context.config)
        self.bus = context.bus
        self.journal = context.journal
        self.clock = context.clock
        self.lock = threading.RLock()
        self.outbox = Outbox(context.journal, context.bus, shard=context.config.sharding.shard)
        self._max_attempts = context.config.messaging.max_delivery_attempts
        # subscription -> what applies its messages, for dead-letter replay
        self._consumers: dict[str, Callable[[Message], Transaction]] = {}
        self._replaying = False
        self._replayed: set[int] = set()  # dead letters replayed, until their removal is durable

    # Building records -------------------------------------------------------------------------

    def new_event(self, **envelope: Any) -> events_pb2.Event:
        """An event envelope with a fresh id, the current time, the caller's trace context and
        the API key that made the call (none for what the platform does by itself)."""
        event = events_pb2.Event(
            event_id=new_id(), traceparent=current_traceparent(), actor=actor(), **envelope
        )
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

    def commit(self, transaction: Transaction, *, waited: bool = False) -> Ticket:
        """See `Journal.commit`; `waited` when the caller waits on the ticket."""
        return observed_commit(self.name, lambda: self.journal.commit(transaction, waited=waited))

    # Consuming --------------------------------------------------------------------------------

    def consume(
        self,
        topic: str,
        message_type: type[M],
        apply: Apply[M],
        *,
        on_dead_letter: Apply[M] | None = None,
    ) -> None:
        """Subscribes to a topic. Each message is applied under the lock and acknowledged once
        what it changed is durable; one that keeps failing is dead-lettered. `on_dead_letter`
        runs under the lock in the transaction that parks a message (when it parses), so that a
        consumer that numbers what it applies can move past it."""
        per_instance = topic in PER_INSTANCE_TOPICS
        instance = new_id()[:8] if per_instance else ""
        # Broadcast topics are read whole by every shard; the others only for its own accounts.
        shard = None if per_instance else self.config.sharding.subscription_shard
        subscription = subscription_name(topic, self.name, instance, shard)

        def parsed_from(message: Message) -> M:
            try:
                return message_type.FromString(message.data)
            except DecodeError as error:
                raise ValueError(f"not a {message_type.__name__}: {error}") from None

        def applied(message: Message) -> Transaction:
            parsed = parsed_from(message)
            transaction = Transaction()
            with self.lock:
                apply(parsed, transaction)
            if metrics.enabled():
                metrics.consumed(subscription, self._lag_seconds(parsed))
            return transaction

        def parked(message: Message, transaction: Transaction) -> None:
            if on_dead_letter is None:
                return
            try:
                parsed = parsed_from(message)
            except ValueError:
                return  # nothing to move past: it never was one of ours
            with self.lock:
                on_dead_letter(parsed, transaction)

        def on_message(message: Message) -> Durable | None:
            with consuming(topic, message.attributes):
                try:
                    transaction = applied(message)
                except Exception as error:
                    if message.delivery_attempt < self._max_attempts:
                        raise
                    return self._dead_letter(subscription, message, error, parked)
                return self.commit(transaction) if transaction else None

        self._consumers[subscription] = applied
        self.bus.subscribe(topic, subscription, on_message, shard=shard)

    def _lag_seconds(self, consumed: ProtoMessage) -> float:
        """From the time an event (or command) was made to now."""
        stamp = getattr(consumed, "event_time", None) or getattr(consumed, "command_time", None)
        if stamp is None:
            return 0.0
        return (micros(self.clock.now()) - stamp_micros(stamp)) / 1_000_000

    def _dead_letter(
        self,
        subscription: str,
        message: Message,
        error: Exception,
        parked: Callable[[Message, Transaction], None],
    ) -> Ticket:
        log.error(
            "dead-lettered message %s of %s after %d attempts: %r",
            message.message_id,
            subscription,
            message.delivery_attempt,
            error,
        )
        transaction = Transaction()
        try:
            parked(message, transaction)
        except Exception:
            log.exception("moving past dead letter %s failed", message.message_id)
            transaction = Transaction()
        text = repr(error)[:_MAX_ERROR_LENGTH]
        known = self.journal.query(
            "SELECT id FROM dead_letters WHERE subscription = ? AND data = ?",
            (subscription, message.data),
        )
        if known:  # delivered again (a producer's resend): one dead letter, attempts add up
            transaction.execute(
                "UPDATE dead_letters SET message_id = ?, error = ?, attempts = attempts + ?"
                " WHERE id = ?",
                (message.message_id, text, message.delivery_attempt, known[0][0]),
            )
            return self.commit(transaction)
        transaction.execute(
            "INSERT INTO dead_letters (subscription, message_id, ordering_key, attributes, data,"
            " error, attempts, time_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                subscription,
                message.message_id,
                message.ordering_key,
                json.dumps(dict(message.attributes)),
                message.data,
                text,
                message.delivery_attempt,
                now_us(),
            ),
        )
        transaction.then(lambda: metrics.dead_letters_changed(self.name, subscription, 1))
        return self.commit(transaction)

    def dead_letters(
        self, *, after: int = 0, limit: int = 1000, with_payload: bool = False
    ) -> list[DeadLetter]:
        """Dead letters with an id above `after`, oldest first; payloads only when asked."""
        payload = ", data" if with_payload else ""
        rows = self.journal.query(
            f"SELECT {_DEAD_LETTER_COLUMNS}{payload} FROM dead_letters "  # noqa: S608
            "WHERE id > ? ORDER BY id LIMIT ?",
            (after, limit),
        )
        return [_dead_letter(row) for row in rows]

    def dead_letter(self, letter_id: int) -> DeadLetter | None:
        """One dead letter with its payload; None when there is none with this id."""
        rows = self.journal.query(
            f"SELECT {_DEAD_LETTER_COLUMNS}, data FROM dead_letters WHERE id = ?",  # noqa: S608
            (letter_id,),
        )
        return _dead_letter(rows[0]) if rows else None

    @property
    def replaying(self) -> bool:
        """True while a dead letter is applied again (under the lock): it was never applied, so
        a consumer that skips what it numbered as applied must not skip it."""
        return self._replaying

    def replay_dead_letter(self, letter_id: int) -> DeadLetter:
        """Applies a dead letter again through its subscription's handler; once that is durable
        it has left the table. Raises NotFound, or FailedPrecondition with the error when it
        still fails (it stays)."""
        with self.lock:
            letter = None if letter_id in self._replayed else self.dead_letter(letter_id)
            if letter is None:
                raise NotFound(f"{self.name} has no dead letter {letter_id}")
            apply = self._consumers.get(letter.subscription)
            if apply is None:
                raise FailedPrecondition(
                    f"{self.name} does not consume {letter.subscription} (any more): dead letter "
                    f"{letter_id} has no handler to replay it"
                )
            message = Message(
                data=letter.data,
                attributes=letter.attributes,
                ordering_key=letter.ordering_key,
                message_id=letter.message_id,
                delivery_attempt=letter.attempts + 1,
            )
            self._replaying = True
            try:
                transaction = apply(message)
            except Exception as error:
                log.warning("dead letter %d still fails: %r", letter_id, error)
                raise FailedPrecondition(
                    f"dead letter {letter_id} still fails: {error!r}"[:_MAX_ERROR_LENGTH]
                ) from None
            finally:
                self._replaying = False
            transaction.execute("DELETE FROM dead_letters WHERE id = ?", (letter_id,))
            transaction.then(
                lambda: metrics.dead_letters_changed(self.name, letter.subscription, -1)
            )
            self._replayed.add(letter_id)
            ticket = self.commit(transaction, waited=True)
        log.info("replayed dead letter %d of %s", letter_id, letter.subscription)
        ticket.add_done_callback(lambda: self._replayed.discard(letter_id))
        ticket.wait()
        return replace(letter, data=b"")

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

    def unresolved(self, *, after: int = 0, limit: int = 1000) -> list[Unresolved]:
        """What is unresolved, with an id above `after`, oldest first."""
        rows = self.journal.query(
            "SELECT id, kind, subject, detail, time_us FROM unresolved WHERE id > ? "
            "ORDER BY id LIMIT ?",
            (after, limit),
        )
        return [Unresolved(*row) for row in rows]

    # Life cycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Rebuilds state from the journal, subscribes, starts background work."""
        self.outbox.start()
        if metrics.enabled():  # started before the services: the letters parked until now
            for subscription, parked in self.journal.query(
                "SELECT subscription, count(*) FROM dead_letters GROUP BY subscription"
            ):
                metrics.dead_letters_changed(self.name, subscription, parked)

    def stop(self) -> None:
        """Stops background producers; the bus may still deliver."""

    def close(self) -> None:
        """Called after the bus has drained."""
        self.outbox.stop()

    def ready(self) -> bool:
        """Whether the service can do its work: its journal writes and its bus delivers."""
        return self.journal.healthy() and self.bus.healthy()

    def health_details(self) -> dict[str, bool]:
        """Parts with a health of their own; none by default."""
        return {}


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
        traceparent=message.traceparent,
        record_id=record_id,
        record_type=record_type,
        is_event=isinstance(message, events_pb2.Event),
        payload=message.SerializeToString(),
        time_us=stamp_micros(stamp),
        order_id=message.order_id,
        account_id=message.account_id,
        instrument=message.instrument,
        topic=topic,
        ordering_key=key,
    )


def _dead_letter(row: tuple[Any, ...]) -> DeadLetter:
    letter_id, subscription, message_id, key, attributes, error, attempts, time_us, size = row[:9]
    data = bytes(row[9]) if len(row) > 9 else b""
    return DeadLetter(
        letter_id,
        subscription,
        message_id,
        key,
        json.loads(attributes),
        error,
        attempts,
        time_us,
        size,
        data,
    )
