"""Event bus adapters, chosen by the `messaging` section of the config."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trading_core.bus.base import (
    SHARD_ATTRIBUTE,
    TOPICS,
    EventBus,
    Handler,
    Message,
    subscription_name,
)
from trading_core.bus.memory import InMemoryBus
from trading_core.config import MemoryMessaging, PubSubMessaging

if TYPE_CHECKING:
    from trading_core.bus.pubsub import PubSubBus

__all__ = [
    "SHARD_ATTRIBUTE",
    "TOPICS",
    "EventBus",
    "Handler",
    "InMemoryBus",
    "Message",
    "PubSubBus",
    "create_bus",
    "subscription_name",
]


def create_bus(messaging: MemoryMessaging | PubSubMessaging, shard: int | None = None) -> EventBus:
    """The bus the config asks for; a Pub/Sub bus has its topics and subscriptions created
    (those of `shard`, filtered on it, when the platform has several shards)."""
    if isinstance(messaging, MemoryMessaging):
        return InMemoryBus(shard=shard)
    # Imported here: the Pub/Sub client library takes a second to import, which the embedded
    # mode and the CLI should not pay.
    from trading_core.bus.pubsub import PubSubBus

    bus = PubSubBus(
        messaging.project,
        topic_prefix=messaging.topic_prefix,
        emulator_host=messaging.emulator_host,
        create_topology=messaging.create_topology,
        shard=shard,
    )
    try:
        bus.ensure_topology()
    except BaseException:
        bus.close(timeout=1.0)
        raise
    return bus


def __getattr__(name: str) -> Any:
    if name == "PubSubBus":
        from trading_core.bus.pubsub import PubSubBus

        return PubSubBus
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
