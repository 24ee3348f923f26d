"""The event bus over Google Cloud Pub/Sub (or its emulator).

Topic and subscription ids are the logical names with `topic_prefix` in front. `ensure_topology`
creates whatever `TOPICS` names that is missing, with message ordering enabled; with
`create_topology` false (the cloud, where Terraform owns them and the services hold no right to
create them: Pub/Sub checks that right before it looks whether the resource exists) it creates
nothing but the per-instance subscriptions, which only a running process can name.

A bus of one shard (`shard`, when the platform has several) creates its shard's subscriptions
with the filter `attributes.shard = "K"`: Pub/Sub then never delivers them another shard's
messages. The Pub/Sub emulator keeps the filter but does not apply it, so the consumer checks the
attribute too and acknowledges, without handling, a message of another shard (in Google's
Pub/Sub that never happens).

Pub/Sub itself keeps going with later messages of an ordering key after one was nacked (the
client library hands them over as soon as the failed one is nacked). To give the contract of
`base` (later messages of the key wait), a subscription remembers the failed message of each
key and nacks later ones of that key until the failed one succeeded; Pub/Sub then redelivers
them in order. Handlers of one subscription run one at a time, as in the in-memory bus.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import grpc
import tenacity
from google.api_core.exceptions import AlreadyExists, DeadlineExceeded, ServiceUnavailable
from google.cloud import pubsub_v1
from google.cloud.pubsub_v1.subscriber.scheduler import ThreadScheduler
from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport
from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

from trading_core.bus.base import (
    PER_INSTANCE_TOPICS,
    TOPICS,
    Handler,
    Message,
    of_shard,
    shard_filter,
    subscription_name,
)
from trading_core.bus.memory import redelivery_delay

log = logging.getLogger(__name__)

_ACK_DEADLINE_S = 30
_ADMIN_TIMEOUT_S = 10.0  # one create or delete
# How long a create is tried again while Pub/Sub does not answer: a process that starts during
# an outage (or beside an emulator stalled by a killed client) waits for it instead of exiting.
_ADMIN_PATIENCE_S = 120.0
# The client blocks a publish beyond these (memory stays bounded during an outage); the outbox
# keeps fewer than this in flight, so it never blocks there.
_FLOW_CONTROL = pubsub_v1.types.PublishFlowControl(
    message_limit=20_000,
    byte_limit=64 * 1024 * 1024,
    limit_exceeded_behavior=pubsub_v1.types.LimitExceededBehavior.BLOCK,
)
_BATCH_MAX_LATENCY_S = 0.002
# A failed message is redelivered within about a second; one not seen again for this long was
# acknowledged elsewhere, and must not hold its key back for good (review A8).
_BLOCK_EXPIRY_S = 2 * _ACK_DEADLINE_S
# A streaming pull open this long counts as having worked: when it ends, it is reopened after
# the shortest delay again.
_STREAM_STABLE_S = 10.0
_FORBIDDEN_IN_IDS = re.compile(r"[^A-Za-z0-9._~+%-]")


def resource_id(name: str) -> str:
    """A valid Pub/Sub topic or subscription id for `name`: allowed characters only, starting
    with a letter, 3 to 255 characters."""
    cleaned = _FORBIDDEN_IN_IDS.sub("-", name)
    if not cleaned[:1].isalpha() or cleaned.lower().startswith("goog"):
        cleaned = f"t-{cleaned}"
    return cleaned.ljust(3, "-")[:255]


@dataclass(frozen=True)
class _Outgoing:
    topic_path: str
    data: bytes
    ordering_key: str
    attributes: dict[str, str]
    on_taken: Callable[[], None] | None


@dataclass
class _KeyState:
    """The messages of one topic and ordering key that Pub/Sub has not taken yet, in order."""

    kept: list[_Outgoing]
    outstanding: int = 0  # published and not yet answered
    paused: bool = False  # a publish failed: hold the rest until the retry
    failed_rounds: int = 0


class _OrderedSender:
    """Publishes through the client library and retries failures without losing or reordering.

    A failed publish pauses its ordering key in the client, and every later message of that key
    fails too. So the messages of a key are kept, in order, until Pub/Sub took them; once every
    publish of a paused key has come back, the key is resumed once and its kept messages are
    sent again, in order, after a growing delay. Retries run on a timer thread, never inside the
    client's callbacks (which may run while the client holds its own lock: review A13).
    """

    def __init__(
        self, publisher: Any, closing: threading.Event, min_retry_delay_s: float = 0.0
    ) -> None:
        self._publisher = publisher
        self._closing = closing
        self._min_retry_delay_s = min_retry_delay_s
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)
        self._keys: dict[tuple[str, str], _KeyState] = {}
        self.unsettled = 0

    def send(self, outgoing: _Outgoing) -> None:
        key = (outgoing.topic_path, outgoing.ordering_key)
        with self._lock:
            self.unsettled += 1
            state = self._keys.setdefault(key, _KeyState([]))
            state.kept.append(outgoing)
            if state.paused:
                return  # sent by the key's retry, behind the failed messages
            state.outstanding += 1
        self._publish(key, outgoing)

    def wait_settled(self, timeout: float) -> bool:
        with self._lock:
            return self._settled.wait_for(lambda: self.unsettled == 0, timeout)

    def _publish(self, key: tuple[str, str], outgoing: _Outgoing) -> None:
        try:
            future = self._publisher.publish(
                outgoing.topic_path,
                outgoing.data,
                ordering_key=outgoing.ordering_key,
                **outgoing.attributes,
            )
        except Exception as error:  # the key is paused, or the client is stopping
            self._answered(key, outgoing, error)
            return
        future.add_done_callback(lambda done: self._answered(key, outgoing, done.exception()))

    def _answered(
        self, key: tuple[str, str], outgoing: _Outgoing, error: BaseException | None
    ) -> None:
        with self._lock:
            state = self._keys[key]
            state.outstanding -= 1
            if error is None:
                state.kept.remove(outgoing)
                self.unsettled -= 1
                self._settled.notify_all()
            elif not state.paused:
                state.paused = True
                log.warning(
                    "publish failed (topic=%s ordering_key=%s): %r; retrying in order", *key, error
                )
            retry_in = None
            if state.outstanding == 0:
                if state.paused:
                    state.failed_rounds += 1
                    retry_in = max(
                        self._min_retry_delay_s, redelivery_delay(state.failed_rounds + 3)
                    )
                elif not state.kept:
                    del self._keys[key]
        if error is None and outgoing.on_taken is not None:
            outgoing.on_taken()
        if retry_in is not None and not self._closing.is_set():
            timer = threading.Timer(retry_in, self._retry, args=(key,))
            timer.daemon = True
            timer.start()

    def _retry(self, key: tuple[str, str]) -> None:
        if self._closing.is_set():
            return
        topic_path, ordering_key = key
        if ordering_key:
            try:
                self._publisher.resume_publish(topic_path, ordering_key)
            except Exception as error:  # not paused in the client: nothing to resume
                log.debug("resume_publish(%s, %s): %r", topic_path, ordering_key, error)
        with self._lock:
            state = self._keys[key]
            state.paused = False
            kept = list(state.kept)
            state.outstanding += len(kept)
        for outgoing in kept:
            self._publish(key, outgoing)


class PubSubBus:
    """An `EventBus` over Pub/Sub; see the module docstring."""

    def __init__(
        self,
        project: str,
        *,
        topic_prefix: str = "trading-",
        emulator_host: str | None = None,
        topics: Mapping[str, tuple[str, ...]] = TOPICS,
        min_retry_delay_s: float = 0.0,
        create_topology: bool = True,
        shard: int | None = None,
        admin_timeout_s: float = _ADMIN_TIMEOUT_S,
    ) -> None:
        """`min_retry_delay_s`: the least time between a failed publish and its retry; `shard`:
        the shard whose subscriptions `ensure_topology` creates (None: unsharded);
        `admin_timeout_s`: how long one create may go unanswered before it is sent again."""
        self._project = project
        self._admin_timeout_s = admin_timeout_s
        self._prefix = topic_prefix
        self._topics = topics
        self._create_topology = create_topology
        self._shard = shard
        self._publisher = pubsub_v1.PublisherClient(
            batch_settings=pubsub_v1.types.BatchSettings(max_latency=_BATCH_MAX_LATENCY_S),
            publisher_options=pubsub_v1.types.PublisherOptions(
                enable_message_ordering=True, flow_control=_FLOW_CONTROL
            ),
            **_emulator_transport(emulator_host, PublisherGrpcTransport),
        )
        self._subscriber = pubsub_v1.SubscriberClient(
            **_emulator_transport(emulator_host, SubscriberGrpcTransport)
        )
        self._lock = threading.Lock()
        self._closed = False
        self._closing = threading.Event()
        self._created_subscriptions: set[str] = set()
        self._per_instance: set[str] = set()  # subscriptions to delete at close
        self._consumers: dict[str, tuple[_Consumer, Any]] = {}  # name -> consumer, pull future
        self._sender = _OrderedSender(self._publisher, self._closing, min_retry_delay_s)

    def ensure_topology(self) -> None:
        """Creates every topic and subscription of `topics` that does not exist yet (nothing
        when Terraform owns them: `create_topology` false)."""
        if not self._create_topology:
            return
        for topic, services in self._topics.items():
            self._create(self._publisher.create_topic, name=self._topic_path(topic))
            for service in services:
                name = subscription_name(topic, service, shard=self._shard)
                self._ensure_subscription(topic, name, self._shard)

    def publish(
        self,
        topic: str,
        data: bytes,
        *,
        ordering_key: str = "",
        attributes: Mapping[str, str] | None = None,
        on_taken: Callable[[], None] | None = None,
    ) -> None:
        self._refuse_if_closed()
        outgoing = _Outgoing(
            self._topic_path(topic), bytes(data), ordering_key, dict(attributes or {}), on_taken
        )
        self._sender.send(outgoing)

    def subscribe(
        self, topic: str, subscription: str, handler: Handler, *, shard: int | None = None
    ) -> None:
        if self._closing.is_set():
            raise RuntimeError("the event bus is closed")
        with self._lock:
            if subscription in self._consumers:
                raise ValueError(f"subscription {subscription} already has a handler")
        self._ensure_subscription(topic, subscription, shard)
        consumer = _Consumer(subscription, handler, self._closing, shard)
        self._open_pull(topic, consumer, failures=0)

    def _open_pull(self, topic: str, consumer: _Consumer, failures: int) -> None:
        """Starts the streaming pull of `consumer`'s subscription, and opens it again whenever
        it ends before the bus closes: the client library gives a stream up on errors it takes
        for final (a CANCELLED from a proxy, a subscription deleted and restored), and a
        service must not stop receiving for good. Unhealthy until it is open again."""
        subscription = consumer.subscription
        try:
            # Again on a reopen: the subscription may have been deleted (it is created anew).
            path = self._ensure_subscription(
                topic, subscription, consumer.shard, again=failures > 0
            )
        except Exception as error:
            self._reopen_later(topic, consumer, failures + 1, error)
            return
        # One worker: handlers of a subscription run one at a time, in arrival order.
        scheduler = ThreadScheduler(
            ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"bus-{subscription}")
        )
        with self._lock:
            if self._closing.is_set():
                return
            future = self._subscriber.subscribe(
                path, consumer, scheduler=scheduler, await_callbacks_on_shutdown=True
            )
            self._consumers[subscription] = (consumer, future)
        opened = time.monotonic()

        def ended(done: Any) -> None:
            # A stream that lived a while failed afresh: start again from the shortest delay.
            fresh = time.monotonic() - opened > _STREAM_STABLE_S
            self._reopen_later(topic, consumer, 1 if fresh else failures + 1, done.exception())

        future.add_done_callback(ended)

    def _reopen_later(
        self, topic: str, consumer: _Consumer, failures: int, error: BaseException | None
    ) -> None:
        if self._closing.is_set():
            return
        delay = redelivery_delay(failures)
        log.warning(
            "streaming pull of %s ended (%s); opening it again in %.2fs",
            consumer.subscription,
            error,
            delay,
        )
        timer = threading.Timer(delay, self._open_pull, (topic, consumer, failures))
        timer.daemon = True
        timer.start()

    def flush(self, timeout: float = 10.0) -> None:
        if not self._sender.wait_settled(timeout):
            raise TimeoutError(f"{self._sender.unsettled} messages not accepted within {timeout}s")

    def healthy(self) -> bool:
        """A streaming pull that ended (the library gave up on it) delivers nothing more."""
        with self._lock:
            pulls = [future for _, future in self._consumers.values()]
        return not self._closing.is_set() and not any(future.done() for future in pulls)

    def close(self, timeout: float = 10.0) -> None:
        """Stops pulling, waits for running handlers, flushes publishes, closes the clients."""
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._closing.is_set():
                return
            self._closing.set()
            consumers = list(self._consumers.values())
        for consumer, future in consumers:
            future.cancel()
            consumer.nack_waiting()
        for consumer, future in consumers:
            _await_stop(consumer.subscription, future, deadline)
        # Only now: a handler that was running may still have published its results.
        self._closed = True
        try:
            self.flush(max(0.0, deadline - time.monotonic()))
        except TimeoutError as error:
            log.warning("closing the Pub/Sub bus with unpublished messages: %s", error)
        self._publisher.stop()
        self._publisher.transport.close()
        for path in self._per_instance:
            try:
                self._subscriber.delete_subscription(subscription=path, timeout=_ADMIN_TIMEOUT_S)
            except Exception as error:  # it expires by itself
                log.warning("could not delete subscription %s: %r", path, error)
        self._subscriber.close()

    def _refuse_if_closed(self) -> None:
        if self._closed:
            raise RuntimeError("the event bus is closed")

    def _topic_path(self, topic: str) -> str:
        if topic not in self._topics:
            raise ValueError(f"unknown topic {topic!r}; known: {sorted(self._topics)}")
        path: str = self._publisher.topic_path(self._project, resource_id(self._prefix + topic))
        return path

    def _create(self, create: Callable[..., Any], **request: Any) -> None:
        """Creates a topic or subscription unless it exists, sending the create again (with
        growing pauses, for up to `_ADMIN_PATIENCE_S`) while Pub/Sub does not answer."""
        for attempt in tenacity.Retrying(
            retry=tenacity.retry_if_exception_type((DeadlineExceeded, ServiceUnavailable)),
            stop=tenacity.stop_after_delay(_ADMIN_PATIENCE_S),
            wait=tenacity.wait_exponential_jitter(multiplier=0.5, max=10.0, jitter=0.5),
            before_sleep=_log_unanswered,
            reraise=True,
        ):
            with attempt, contextlib.suppress(AlreadyExists):
                create(timeout=self._admin_timeout_s, **request)

    def _ensure_subscription(
        self, topic: str, subscription: str, shard: int | None, *, again: bool = False
    ) -> str:
        path: str = self._subscriber.subscription_path(
            self._project, resource_id(self._prefix + subscription)
        )
        if path in self._created_subscriptions and not again:
            return path
        request: dict[str, Any] = {
            "name": path,
            "topic": self._topic_path(topic),
            "enable_message_ordering": True,
            "ack_deadline_seconds": _ACK_DEADLINE_S,
        }
        if shard is not None:
            request["filter"] = shard_filter(shard)
        per_instance = topic in PER_INSTANCE_TOPICS
        if per_instance:
            # Deleted at close; one a crashed process leaves behind expires (a day at least).
            request["expiration_policy"] = {"ttl": {"seconds": 86_400}}
            self._per_instance.add(path)
        if per_instance or self._create_topology:
            self._create(self._subscriber.create_subscription, request=request)
        with self._lock:
            self._created_subscriptions.add(path)
        return path


def _log_unanswered(state: tenacity.RetryCallState) -> None:
    outcome = state.outcome
    log.warning(
        "Pub/Sub did not answer a create (attempt %d, %.0f s so far): %r; sending it again",
        state.attempt_number,
        state.seconds_since_start or 0.0,
        outcome.exception() if outcome else None,
    )


class _Consumer:
    """The streaming-pull callback of one subscription: runs the handler, acks once what it
    made durable is durable, nacks after a growing delay on failure, and keeps later messages of
    a failed key waiting. A key whose failed message is not delivered again within
    `_BLOCK_EXPIRY_S` (it was acknowledged by another process, or dead-lettered) moves on."""

    def __init__(
        self,
        subscription: str,
        handler: Handler,
        closing: threading.Event,
        shard: int | None = None,
    ) -> None:
        self.subscription = subscription
        self.shard = shard
        self._handler = handler
        self._closing = closing
        self._lock = threading.Lock()
        self._attempts: dict[str, int] = {}  # message id -> failed deliveries so far
        # ordering key -> id of its failed message, and when it failed
        self._failed: dict[str, tuple[str, float]] = {}
        self._waiting: dict[threading.Timer, Any] = {}  # delayed nacks -> their messages

    def __call__(self, received: Any) -> None:
        if self._closing.is_set():
            received.nack()
            return
        if not of_shard(received.attributes, self.shard):
            received.ack()  # another shard's: its filter is not applied (the emulator)
            return
        message_id: str = received.message_id
        key: str = received.ordering_key
        with self._lock:
            blocker = self._blocker(key)
            attempt = self._attempts.get(message_id, 0) + 1
        if blocker is not None and blocker != message_id:
            received.nack()  # Pub/Sub redelivers it after the failed message
            return
        message = Message(
            data=received.data,
            attributes=dict(received.attributes),
            ordering_key=key,
            message_id=message_id,
            delivery_attempt=received.delivery_attempt or attempt,
        )
        try:
            durable = self._handler(message)
        except Exception:
            log.exception(
                "handler failed; redelivering (subscription=%s message_id=%s "
                "ordering_key=%s delivery_attempt=%d)",
                self.subscription,
                message_id,
                key,
                message.delivery_attempt,
            )
            self._nack_later(received, key, attempt)
            return
        with self._lock:
            self._attempts.pop(message_id, None)
            if key and self._blocker(key) == message_id:
                del self._failed[key]
        if durable is None:
            received.ack()
        else:
            durable.add_done_callback(received.ack)

    def _blocker(self, key: str) -> str | None:
        """The failed message holding back `key`, if any; the lock is held."""
        failed = self._failed.get(key) if key else None
        if failed is None:
            return None
        message_id, since = failed
        if time.monotonic() - since > _BLOCK_EXPIRY_S:
            del self._failed[key]
            self._attempts.pop(message_id, None)
            return None
        return message_id

    def nack_waiting(self) -> None:
        """Nacks at once the failed messages still waiting for their delay."""
        with self._lock:
            waiting = list(self._waiting.items())
            self._waiting.clear()
        for timer, received in waiting:
            timer.cancel()
            received.nack()

    def _nack_later(self, received: Any, key: str, attempt: int) -> None:
        # Not sleeping here: the worker goes on with other keys meanwhile, and the client
        # library holds back this key's later messages until this one is nacked.
        timer = threading.Timer(redelivery_delay(attempt), lambda: self._nack(timer))
        timer.daemon = True
        with self._lock:
            self._attempts[received.message_id] = attempt
            if key:
                self._failed[key] = (received.message_id, time.monotonic())
            self._waiting[timer] = received
        timer.start()

    def _nack(self, timer: threading.Timer) -> None:
        with self._lock:
            received = self._waiting.pop(timer, None)
        if received is not None:
            received.nack()


def _emulator_transport(emulator_host: str | None, transport: Callable[..., Any]) -> dict[str, Any]:
    """Client arguments that talk to the emulator over plain gRPC, without credentials."""
    if emulator_host is None:
        return {}
    channel = grpc.insecure_channel(emulator_host)
    return {"transport": transport(host=emulator_host, channel=channel)}


def _await_stop(subscription: str, future: Future[Any], deadline: float) -> None:
    try:
        future.result(timeout=max(0.0, deadline - time.monotonic()))
    except TimeoutError:
        log.warning("subscription %s: handlers still running at close", subscription)
    except Exception as error:
        log.warning("subscription %s ended with an error: %r", subscription, error)
