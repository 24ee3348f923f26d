"""What every service shares: its store, the bus, the clock, one lock, and idempotent intake."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping

from google.protobuf.message import DecodeError
from trading.v1 import events_pb2

from trading_core.bus.base import EventBus, Message, subscription_name
from trading_core.clock import Clock
from trading_core.config import PlatformConfig
from trading_core.dedupe import AppliedEvents
from trading_core.events import event_time, event_type, new_id, timestamp
from trading_core.store.base import EventStore
from trading_core.telemetry import current_traceparent, trace_scope

log = logging.getLogger(__name__)

# What a handler returns is ignored.
EventHandler = Callable[[events_pb2.Event], object]


class EventSourcedService:
    """Base of the three services: state in memory, events in the store, events on the bus.

    Every state change happens under `lock`, is appended to the store and, when others need to
    know, published. Consumed events are applied once: an event id already applied is skipped.
    """

    name = ""

    def __init__(
        self, config: PlatformConfig, bus: EventBus, store: EventStore, clock: Clock
    ) -> None:
        self.config = config
        self.bus = bus
        self.store = store
        self.clock = clock
        self.lock = threading.RLock()
        self._applied = AppliedEvents()
        # The event being consumed and the bytes it arrived as (set and read under `lock`).
        self._received: tuple[events_pb2.Event, bytes] | None = None

    def new_event(self, **envelope: object) -> events_pb2.Event:
        """An event envelope with a fresh id, the current time and the caller's trace context."""
        event = events_pb2.Event(event_id=new_id(), traceparent=current_traceparent(), **envelope)  # type: ignore[arg-type]
        event.event_time.CopyFrom(timestamp(self.clock.now()))
        return event

    def record(self, event: events_pb2.Event) -> bytes:
        """Appends an event this service produced or applied, and remembers its id.

        Returns the event serialized, for `publish`: each event is serialized once. A consumed
        event is stored as the bytes it arrived as.
        """
        received = self._received
        payload = (
            received[1]
            if received is not None and received[0] is event
            else event.SerializeToString()
        )
        self.store.append(event, payload)
        self._applied.add(event.event_id, event_time(event))
        return payload

    def record_and_publish(self, topic: str, event: events_pb2.Event, ordering_key: str) -> None:
        """Records an event and publishes it, serialized once for both."""
        self.publish(topic, event, ordering_key, self.record(event))

    def publish(
        self, topic: str, event: events_pb2.Event, ordering_key: str, data: bytes | None = None
    ) -> None:
        """Publishes an event; `data` is the event serialized, when the caller has it."""
        attributes: Mapping[str, str] = {
            "event_id": event.event_id,
            "event_type": event_type(event),
            "account_id": event.account_id,
        }
        if data is None:
            data = event.SerializeToString()
        self.bus.publish(topic, data, ordering_key=ordering_key, attributes=attributes)

    def replay(self, apply: EventHandler) -> int:
        """Rebuilds state from the store; returns how many events were replayed."""
        count = 0
        with self.lock:
            for event in self.store.replay():
                apply(event)
                self._applied.add(event.event_id, event_time(event))
                count += 1
        log.info("%s replayed %d events", self.name, count)
        return count

    def consume(self, topic: str, handler: EventHandler, *, dedupe: bool = True) -> None:
        """Subscribes to a topic; each event reaches `handler` under the lock, at most once."""

        def on_message(message: Message) -> None:
            try:
                event = events_pb2.Event.FromString(message.data)
            except DecodeError:
                # A message that cannot be read would block its ordering key forever.
                log.error("dropped an unreadable message %s on %s", message.message_id, topic)
                return
            with trace_scope(event.traceparent), self.lock:
                if dedupe and event.event_id in self._applied:
                    return
                self._received = (event, message.data)
                try:
                    handler(event)
                finally:
                    self._received = None

        self.bus.subscribe(topic, subscription_name(topic, self.name), on_message)

    def ready(self) -> bool:
        """Whether the service can do its work: its store writes and its bus delivers."""
        return self.store.healthy() and self.bus.healthy()

    def close(self) -> None:
        self.store.close()
