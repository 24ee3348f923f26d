"""The in-process event bus of the embedded mode: one instance shared by all services.

It keeps Pub/Sub's semantics (see `base`) with as few thread hand-offs as possible: `publish`
appends to each subscription's queue and wakes the bus's one dispatcher thread, which runs the
handlers, taking the subscriptions in turn. Handlers therefore run one at a time, each
subscription's in publish order. One thread rather than one per subscription: in one process
under one GIL, more threads add hand-offs and lock contention, not parallelism.

A message is taken (its publisher's `on_taken` runs) once every subscription acknowledged it:
after its handler returned and what the handler made durable is durable. A failed message is
held back with every later message of its ordering key and retried after a short, growing
delay, while messages of other keys go on. The subscriptions named in `TOPICS`
exist from the start (those of the bus's shard, filtered on it, when there are several), so
messages published before a service subscribes wait for it, as they would in Pub/Sub. A
subscription filtered on a shard gets only the messages of that shard. Nothing outlives the
process, so `close` first drains what is queued.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Mapping
from dataclasses import replace
from types import MappingProxyType

from trading_core.bus.base import TOPICS, Handler, Message, of_shard, subscription_name

log = logging.getLogger(__name__)

_FIRST_RETRY_DELAY_S = 0.01
_MAX_RETRY_DELAY_S = 1.0


def redelivery_delay(delivery_attempt: int) -> float:
    """Seconds to wait before redelivering a message whose `delivery_attempt` failed."""
    exponent = min(delivery_attempt - 1, 16)
    return float(min(_FIRST_RETRY_DELAY_S * 2**exponent, _MAX_RETRY_DELAY_S))


class _Publication:
    """One published message: taken once each subscription has acknowledged it."""

    __slots__ = ("_lock", "_on_taken", "_waiting")

    def __init__(self, subscriptions: int, on_taken: Callable[[], None] | None) -> None:
        self._waiting = subscriptions
        self._on_taken = on_taken
        self._lock = threading.Lock()

    def acknowledged(self) -> None:
        with self._lock:
            self._waiting -= 1
            taken = self._waiting == 0
        if taken and self._on_taken is not None:
            self._on_taken()


class _Delivery:
    """One message on its way to one subscription."""

    __slots__ = ("attempt", "key", "message", "publication")

    def __init__(self, message: Message, key: Hashable, publication: _Publication) -> None:
        self.message = message
        # Messages without an ordering key get a key of their own: nothing waits for them.
        self.key = key
        self.attempt = 0
        self.publication = publication


class _Subscription:
    """A queue that holds back a failed message's ordering key. The bus's dispatcher delivers;
    `lock` and `work` are the bus's, shared by every subscription."""

    def __init__(
        self,
        topic: str,
        name: str,
        shard: int | None,
        lock: threading.Lock,
        work: threading.Condition,
    ) -> None:
        self.topic = topic
        self.name = name
        self.shard = shard  # the filter: only messages of this shard (None: all)
        self._lock = lock
        self._work = work
        self._idle = threading.Condition(self._lock)
        self._pending: deque[_Delivery] = deque()
        # Ordering keys waiting for a failed message: that message first, then later ones.
        self._held: dict[Hashable, deque[_Delivery]] = {}
        self._retries: list[tuple[float, int, Hashable]] = []  # heap of (due, tie-break, key)
        self._tie_break = itertools.count()
        self._busy = False
        self.handler: Handler | None = None

    def put(self, delivery: _Delivery) -> None:
        with self._lock:
            self._pending.append(delivery)
            self._work.notify()

    def start(self, handler: Handler) -> None:
        with self._lock:
            if self.handler is not None:
                raise ValueError(f"subscription {self.name} already has a handler")
            self.handler = handler
            self._work.notify()

    def is_idle(self) -> bool:
        with self._lock:
            return self._is_idle()

    def wait_idle(self, deadline: float) -> bool:
        """Waits until nothing is queued, held or running; False at the deadline."""
        with self._lock:
            while not self._is_idle():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
            return True

    def _is_idle(self) -> bool:
        # Without a handler nothing will ever be delivered: there is nothing to wait for.
        return self.handler is None or not (self._busy or self._pending or self._held)

    def undelivered(self) -> int:
        with self._lock:
            return len(self._pending) + sum(len(held) for held in self._held.values())

    def take_ready(self, now: float) -> _Delivery | None:
        """The next message to hand over now, if any (marking the subscription busy); the
        bus's lock is held."""
        if self.handler is None or self._busy:
            return None
        delivery = self._ready(now)
        if delivery is not None:
            self._busy = True
        return delivery

    def next_retry(self) -> float | None:
        """When the earliest held message is due again; the bus's lock is held."""
        return self._retries[0][0] if self._retries else None

    def _ready(self, now: float) -> _Delivery | None:
        if self._retries and self._retries[0][0] <= now:
            _, _, key = heapq.heappop(self._retries)
            return self._held[key][0]
        while self._pending:
            delivery = self._pending.popleft()
            held = self._held.get(delivery.key)
            if held is None:
                return delivery
            held.append(delivery)  # its key waits for an earlier, failed message
        return None

    def deliver(self, handler: Handler, delivery: _Delivery) -> None:
        delivery.attempt += 1
        message = delivery.message
        if delivery.attempt > 1:
            message = replace(message, delivery_attempt=delivery.attempt)
        try:
            durable = handler(message)
        except Exception:
            log.exception(
                "handler failed; redelivering (subscription=%s message_id=%s "
                "ordering_key=%s delivery_attempt=%d)",
                self.name,
                message.message_id,
                message.ordering_key,
                delivery.attempt,
            )
            self._hold_for_retry(delivery)
            return
        # The subscription goes on at once; the publisher hears of it once it is durable.
        self._acknowledge(delivery)
        if durable is None:
            delivery.publication.acknowledged()
        else:
            durable.add_done_callback(delivery.publication.acknowledged)

    def _hold_for_retry(self, delivery: _Delivery) -> None:
        due = time.monotonic() + redelivery_delay(delivery.attempt)
        with self._lock:
            self._held.setdefault(delivery.key, deque([delivery]))
            heapq.heappush(self._retries, (due, next(self._tie_break), delivery.key))
            self._became_free()

    def _acknowledge(self, delivery: _Delivery) -> None:
        with self._lock:
            held = self._held.get(delivery.key)
            if held is not None:
                held.popleft()  # the delivered message heads its held key
                if held:
                    due_now = (time.monotonic(), next(self._tie_break), delivery.key)
                    heapq.heappush(self._retries, due_now)
                else:
                    del self._held[delivery.key]
            self._became_free()

    def _became_free(self) -> None:
        self._busy = False
        self._work.notify()  # a held key may be due, or a message may have queued meanwhile
        if not (self._pending or self._held):
            self._idle.notify_all()


class InMemoryBus:
    """An `EventBus` within one process; see the module docstring."""

    def __init__(
        self, topics: Mapping[str, tuple[str, ...]] = TOPICS, shard: int | None = None
    ) -> None:
        """`shard`: the shard whose subscriptions exist from the start (None: unsharded)."""
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._stopping = False
        self._turn = 0
        self._closed = False
        self._ids = itertools.count(1)
        self._subscriptions: dict[str, _Subscription] = {}
        # Replaced, never mutated, so `publish` reads it without the lock.
        self._by_topic: dict[str, tuple[_Subscription, ...]] = {topic: () for topic in topics}
        # Whether any subscription is filtered on a shard: else `publish` filters nothing (one
        # shard costs nothing). Set before the subscription is published in `_by_topic`.
        self._filtered = False
        for topic, services in topics.items():
            for service in services:
                self._subscription(topic, subscription_name(topic, service, shard=shard), shard)
        self._dispatcher = threading.Thread(
            target=self._dispatch, name="bus-dispatcher", daemon=True
        )
        self._dispatcher.start()

    def publish(
        self,
        topic: str,
        data: bytes,
        *,
        ordering_key: str = "",
        attributes: Mapping[str, str] | None = None,
        on_taken: Callable[[], None] | None = None,
    ) -> None:
        if self._closed:
            raise RuntimeError("the event bus is closed")
        subscriptions = self._by_topic.get(topic)
        if subscriptions is None:
            raise ValueError(f"unknown topic {topic!r}; known: {sorted(self._by_topic)}")
        message = Message(
            data=bytes(data),
            attributes=MappingProxyType(dict(attributes or {})),
            ordering_key=ordering_key,
            message_id=str(next(self._ids)),
        )
        key: Hashable = ordering_key or object()
        if self._filtered:
            subscriptions = tuple(s for s in subscriptions if of_shard(message.attributes, s.shard))
        if not subscriptions:
            if on_taken is not None:
                on_taken()
            return
        publication = _Publication(len(subscriptions), on_taken)
        for subscription in subscriptions:
            subscription.put(_Delivery(message, key, publication))

    def subscribe(
        self, topic: str, subscription: str, handler: Handler, *, shard: int | None = None
    ) -> None:
        if self._closed:
            raise RuntimeError("the event bus is closed")
        self._subscription(topic, subscription, shard).start(handler)

    def flush(self, timeout: float = 10.0) -> None:
        """Nothing to wait for: `publish` hands messages to their subscriptions at once."""

    def healthy(self) -> bool:
        return not self._closed and self._dispatcher.is_alive()

    def close(self, timeout: float = 10.0) -> None:
        """Delivers what is queued (handlers may publish more), then stops the dispatchers."""
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._closed:
                return
            subscriptions = list(self._subscriptions.values())
        self._drain(subscriptions, deadline)
        self._closed = True
        with self._lock:
            self._stopping = True
            self._work.notify()
        if self._dispatcher is not threading.current_thread():
            self._dispatcher.join(max(0.0, deadline - time.monotonic()))
            if self._dispatcher.is_alive():
                log.warning("a bus handler is still running at close")

    def _dispatch(self) -> None:
        while True:
            with self._lock:
                taken = self._next_delivery()
                if taken is None:
                    return
            subscription, handler, delivery = taken
            subscription.deliver(handler, delivery)

    def _next_delivery(self) -> tuple[_Subscription, Handler, _Delivery] | None:
        """The next message of any subscription, taking them in turn, waiting for one; None
        once stopping. The lock is held."""
        while not self._stopping:
            now = time.monotonic()
            subscriptions = list(self._subscriptions.values())
            for offset in range(len(subscriptions)):
                subscription = subscriptions[(self._turn + offset) % len(subscriptions)]
                delivery = subscription.take_ready(now)
                if delivery is not None and subscription.handler is not None:
                    self._turn = (self._turn + offset + 1) % len(subscriptions)
                    return subscription, subscription.handler, delivery
            due = [d for s in subscriptions if (d := s.next_retry()) is not None]
            self._work.wait(min(due) - now if due else None)
        return None

    def _drain(self, subscriptions: list[_Subscription], deadline: float) -> None:
        # A handler may publish to a subscription already waited for: repeat until one whole
        # pass finds every subscription idle without waiting.
        waited = True
        while waited:
            waited = False
            for subscription in subscriptions:
                if subscription.is_idle():
                    continue
                waited = True
                if not subscription.wait_idle(deadline):
                    self._report_undelivered(subscriptions)
                    return

    @staticmethod
    def _report_undelivered(subscriptions: list[_Subscription]) -> None:
        for subscription in subscriptions:
            if left := subscription.undelivered():
                log.warning("closing with %d undelivered messages on %s", left, subscription.name)

    def _subscription(self, topic: str, name: str, shard: int | None) -> _Subscription:
        with self._lock:
            if topic not in self._by_topic:
                raise ValueError(f"unknown topic {topic!r}; known: {sorted(self._by_topic)}")
            existing = self._subscriptions.get(name)
            if existing is not None:
                if existing.topic != topic:
                    raise ValueError(f"subscription {name} belongs to topic {existing.topic}")
                if existing.shard != shard:
                    raise ValueError(
                        f"subscription {name} is filtered on shard {existing.shard}, not {shard}"
                    )
                return existing
            created = _Subscription(topic, name, shard, self._lock, self._work)
            self._filtered = self._filtered or shard is not None
            self._subscriptions[name] = created
            self._by_topic[topic] = (*self._by_topic[topic], created)
            return created
