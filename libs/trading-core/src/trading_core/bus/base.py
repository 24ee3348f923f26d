"""The event bus interface, with Google Cloud Pub/Sub's semantics.

- `publish` sends bytes with an ordering key and string attributes. Messages with the same
  ordering key reach each subscription in publish order.
- `publish` calls `on_taken` once the bus has taken the message for good (Pub/Sub accepted
  it; the in-memory bus, when every subscription acknowledged it). Until then the publisher
  keeps it (see `trading_core.outbox`).
- `subscribe` attaches a handler to a named subscription of a topic. A message is acknowledged
  only after its handler returned and, when the handler returns a `Durable` (a journal ticket),
  once that is durable; a handler that raises gets the message again later (at-least-once), and
  later messages with the same ordering key wait for it.
- Consumers must tolerate duplicates and apply each fact once.
- Sharding by account: a message carries the `shard` attribute of the shard whose services
  published it, and a shard's subscription (`subscribe(..., shard=K)`) delivers only the messages
  whose `shard` attribute is K, as a Pub/Sub subscription filter `attributes.shard = "K"` does.
  Broadcast topics (`PER_INSTANCE_TOPICS`) carry no shard: every instance of every shard reads
  them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

# Topics and which services subscribe to them. The one place the topology is written down:
# adapters create what is missing at start, Terraform creates it in the cloud.
TOPICS: Mapping[str, tuple[str, ...]] = {
    "orders": ("execution-router",),
    "executions": ("order-management", "position-management"),
    "positions": (),  # for analytics and streams; order-management's risk view is its own
    "market-data": (),
}
# Topics whose subscriptions belong to one running process each, made at subscribe and removed
# at close: conflated quotes need no durability, every instance (every shard) wants all of them,
# and a restarted process needs only the next quote.
PER_INSTANCE_TOPICS = frozenset({"market-data"})


# The message attribute that names the shard of the account a message is about.
SHARD_ATTRIBUTE = "shard"


def subscription_name(
    topic: str, service: str, instance: str = "", shard: int | None = None
) -> str:
    """The subscription of one service (one instance of it, for per-instance topics) to a topic;
    of one shard's service when the platform has several shards (`shard` given): a single shard
    keeps the unsharded name, so that nothing moves for a deployment that does not shard."""
    if instance:
        return f"{topic}.{service}.{instance}"
    return f"{topic}.{service}" if shard is None else f"{topic}.{service}.shard-{shard}"


def shard_filter(shard: int) -> str:
    """The Pub/Sub subscription filter that keeps the messages of one shard."""
    return f'attributes.{SHARD_ATTRIBUTE} = "{shard}"'


def of_shard(attributes: Mapping[str, str], shard: int | None) -> bool:
    """Whether a subscription filtered on `shard` (None: unfiltered) delivers the message; one
    without the attribute matches no filter, as in Pub/Sub."""
    return shard is None or attributes.get(SHARD_ATTRIBUTE) == str(shard)


@dataclass(frozen=True)
class Message:
    data: bytes
    attributes: Mapping[str, str] = field(default_factory=dict)
    ordering_key: str = ""
    message_id: str = ""
    # 1 on the first delivery, counting up on every redelivery.
    delivery_attempt: int = 1


class Durable(Protocol):
    """What a handler may return: the message is acknowledged once this is done."""

    def add_done_callback(self, callback: Callable[[], None]) -> None: ...


Handler = Callable[[Message], "Durable | None"]


class EventBus(Protocol):
    def publish(
        self,
        topic: str,
        data: bytes,
        *,
        ordering_key: str = "",
        attributes: Mapping[str, str] | None = None,
        on_taken: Callable[[], None] | None = None,
    ) -> None:
        """Queues a message for delivery; raises only when the bus is closed. A publish that
        fails is retried, in order with the later messages of its key, until taken."""

    def subscribe(
        self, topic: str, subscription: str, handler: Handler, *, shard: int | None = None
    ) -> None:
        """Starts delivering the subscription's messages to the handler; with `shard`, only
        those of that shard (a subscription's filter is fixed when it is created)."""

    def flush(self, timeout: float = 10.0) -> None:
        """Waits until every message published so far has been accepted by the bus."""

    def close(self, timeout: float = 10.0) -> None:
        """Stops delivery, waits for running handlers and pending publishes, frees resources."""

    def healthy(self) -> bool:
        """False when messages can no longer be delivered (a dead subscriber), and once closed."""
