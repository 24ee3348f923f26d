"""Publishing through an outage, against the real emulator: a topic deleted mid-run and then
restored loses and reorders nothing, and `flush` returns once everything is taken (A3)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest
from google.cloud import pubsub_v1
from trading_core.bus import PubSubBus
from trading_core.bus.pubsub import resource_id

from tests.support import wait_until

pytestmark = pytest.mark.emulator


@pytest.fixture
def bus(pubsub_emulator: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[PubSubBus]:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator)  # for the admin clients below
    unique = uuid.uuid4().hex[:12]
    # Retries wait long enough for the test to restore the topic and its subscription first:
    # messages published to a topic without a subscription reach nobody, in Pub/Sub too.
    created = PubSubBus(
        f"outage-{unique}",
        topic_prefix=f"t{unique}-",
        emulator_host=pubsub_emulator,
        min_retry_delay_s=3.0,
    )
    created.ensure_topology()
    yield created
    created.close(timeout=5)


def test_messages_published_while_the_topic_is_gone_arrive_in_order_once_it_is_back(
    bus: PubSubBus, caplog: pytest.LogCaptureFixture
) -> None:
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    project = bus._project
    topic = publisher.topic_path(project, resource_id(bus._prefix + "orders"))
    taken: list[int] = []
    lock = threading.Lock()

    def publish(number: int) -> None:
        def took(n: int = number) -> None:
            with lock:
                taken.append(n)

        bus.publish("orders", b"%d" % number, ordering_key="order-1", on_taken=took)

    for number in range(20):
        publish(number)
    bus.flush(timeout=20)
    publisher.delete_topic(topic=topic)
    for number in range(20, 60):
        publish(number)
    wait_until(lambda: "publish failed" in caplog.text, 10, "the publishes to fail")

    # Restored as an operator would: the topic, and a subscription on it (the old one is
    # detached for good when its topic is deleted).
    publisher.create_topic(name=topic)
    fresh = subscriber.subscription_path(project, resource_id(f"{bus._prefix}restored"))
    subscriber.create_subscription(
        request={"name": fresh, "topic": topic, "enable_message_ordering": True}
    )
    assert sorted(taken) == list(range(20))  # the held ones wait for their retry
    received: list[bytes] = []

    def on_message(message: pubsub_v1.subscriber.message.Message) -> None:
        with lock:
            received.append(message.data)
        message.ack()

    pull = subscriber.subscribe(fresh, on_message)
    try:
        bus.flush(timeout=60)
        wait_until(lambda: len(received) >= 40, 30, "the held messages after the outage")
    finally:
        pull.cancel()
    assert sorted(taken) == list(range(60))
    assert received == [b"%d" % n for n in range(20, 60)]
