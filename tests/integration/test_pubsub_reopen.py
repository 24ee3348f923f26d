"""A streaming pull that the client library gives up on is opened again, against the real
emulator: a service keeps receiving instead of staying NOT_SERVING for good."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest
from google.cloud import pubsub_v1
from trading_core.bus import PubSubBus
from trading_core.bus.base import Message
from trading_core.bus.pubsub import resource_id

from tests.support import wait_until

pytestmark = pytest.mark.emulator


@pytest.fixture
def bus(pubsub_emulator: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[PubSubBus]:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator)  # for the admin client below
    unique = uuid.uuid4().hex[:12]
    created = PubSubBus(
        f"reopen-{unique}", topic_prefix=f"t{unique}-", emulator_host=pubsub_emulator
    )
    created.ensure_topology()
    yield created
    created.close(timeout=5)


def test_a_streaming_pull_ended_by_a_deleted_subscription_is_opened_again_and_delivers(
    bus: PubSubBus, caplog: pytest.LogCaptureFixture
) -> None:
    received: list[bytes] = []
    lock = threading.Lock()

    def handler(message: Message) -> None:
        with lock:
            received.append(message.data)

    bus.subscribe("orders", "reopen-test", handler)
    bus.publish("orders", b"before", ordering_key="k")
    wait_until(lambda: b"before" in received, 20, "the first message")
    assert bus.healthy()

    # What ends a stream for good in the client library: NOT_FOUND, once its subscription is gone.
    subscriber = pubsub_v1.SubscriberClient()
    path = subscriber.subscription_path(bus._project, resource_id(bus._prefix + "reopen-test"))
    subscriber.delete_subscription(subscription=path)
    wait_until(lambda: "opening it again" in caplog.text, 30, "the ended stream to be noticed")

    wait_until(bus.healthy, 30, "the stream to be open again")
    bus.publish("orders", b"after", ordering_key="k")
    wait_until(lambda: b"after" in received, 30, "a message after the reopen")
