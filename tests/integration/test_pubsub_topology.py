"""Who makes the topics and subscriptions, against the real emulator: the bus itself by default
(the emulator, a project without Terraform), or Terraform (`messaging.create_topology: false`),
where a service creates only the per-instance subscriptions that only a running process can
name: Pub/Sub refuses a create to a service without the right even when the resource exists."""

from __future__ import annotations

import logging
import os
import signal
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.cloud import pubsub_v1
from trading_core.bus import PubSubBus
from trading_core.bus.base import PER_INSTANCE_TOPICS

from tests.conftest import start_emulator, stop_emulator
from tests.support import wait_until

pytestmark = pytest.mark.emulator


@pytest.fixture
def admin(pubsub_emulator: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh project on the emulator, with the admin clients pointed at it."""
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator)
    yield f"topology-{uuid.uuid4().hex[:12]}"


def existing(project: str) -> tuple[set[str], set[str]]:
    """The topic and subscription ids of the project."""
    topics = pubsub_v1.PublisherClient().list_topics(project=f"projects/{project}")
    subscriptions = pubsub_v1.SubscriberClient().list_subscriptions(project=f"projects/{project}")
    return (
        {t.name.rsplit("/", 1)[1] for t in topics},
        {s.name.rsplit("/", 1)[1] for s in subscriptions},
    )


def test_the_bus_creates_every_topic_and_subscription_by_default(
    admin: str, pubsub_emulator: str
) -> None:
    bus = PubSubBus(admin, topic_prefix="t-", emulator_host=pubsub_emulator)
    try:
        bus.ensure_topology()
        topics, subscriptions = existing(admin)
        assert {"t-orders", "t-executions", "t-positions", "t-market-data"} <= topics
        assert "t-orders.execution-router" in subscriptions
    finally:
        bus.close(timeout=5)


def test_where_terraform_owns_them_only_a_per_instance_subscription_is_created(
    admin: str, pubsub_emulator: str
) -> None:
    # What Terraform would have made: the topic of the per-instance subscription.
    [topic] = PER_INSTANCE_TOPICS
    pubsub_v1.PublisherClient().create_topic(name=f"projects/{admin}/topics/t-{topic}")
    bus = PubSubBus(admin, topic_prefix="t-", emulator_host=pubsub_emulator, create_topology=False)
    try:
        bus.ensure_topology()
        assert existing(admin) == ({f"t-{topic}"}, set())
        bus.subscribe(topic, f"{topic}.order-management.instance-1", lambda message: None)
        _, subscriptions = existing(admin)
        assert subscriptions == {f"t-{topic}.order-management.instance-1"}
    finally:
        bus.close(timeout=5)


def test_a_shards_bus_creates_its_subscriptions_with_the_shards_filter(
    admin: str, pubsub_emulator: str
) -> None:
    bus = PubSubBus(admin, topic_prefix="t-", emulator_host=pubsub_emulator, shard=2)
    try:
        bus.ensure_topology()
        _, subscriptions = existing(admin)
        assert "t-orders.execution-router.shard-2" in subscriptions
        assert "t-orders.execution-router" not in subscriptions
        made = pubsub_v1.SubscriberClient().get_subscription(
            subscription=f"projects/{admin}/subscriptions/t-orders.execution-router.shard-2"
        )
        assert made.filter == 'attributes.shard = "2"'
    finally:
        bus.close(timeout=5)


def test_a_bus_started_while_pub_sub_does_not_answer_waits_for_it_and_creates_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A restarted service once exited because the emulator left a create unanswered for 30 s;
    here an emulator of the test's own is frozen (SIGSTOP) while the bus creates its topology."""
    emulator, host = start_emulator(tmp_path / "emulator.log")
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", host)
    project = f"stalled-{uuid.uuid4().hex[:12]}"
    bus = PubSubBus(project, topic_prefix="t-", emulator_host=host, admin_timeout_s=1.0)
    failures: list[BaseException] = []

    def ensure() -> None:
        try:
            bus.ensure_topology()
        except BaseException as error:
            failures.append(error)

    creating = threading.Thread(target=ensure)
    try:
        os.killpg(emulator.pid, signal.SIGSTOP)
        with caplog.at_level(logging.WARNING, logger="trading_core.bus.pubsub"):
            creating.start()
            wait_until(
                lambda: any("did not answer" in r.getMessage() for r in caplog.records),
                30,
                "the bus to find Pub/Sub not answering",
            )
            os.killpg(emulator.pid, signal.SIGCONT)
            creating.join(60)
        assert not creating.is_alive(), "ensure_topology did not end once Pub/Sub answered"
        assert failures == []
        topics, subscriptions = existing(project)
        assert {"t-orders", "t-executions", "t-positions", "t-market-data"} <= topics
        assert "t-orders.execution-router" in subscriptions
    finally:
        os.killpg(emulator.pid, signal.SIGCONT)
        bus.close(timeout=5)
        stop_emulator(emulator)
