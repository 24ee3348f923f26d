"""The event bus contract, run against every adapter: in-memory, and Pub/Sub on its emulator."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator

import pytest
from trading_core.bus import SHARD_ATTRIBUTE, EventBus, Message, create_bus, subscription_name
from trading_core.config import MemoryMessaging, PubSubMessaging

from tests.support import wait_until

ORDERS_SUBSCRIPTION = subscription_name("orders", "execution-router")
OM_EXECUTIONS = subscription_name("executions", "order-management")
PM_EXECUTIONS = subscription_name("executions", "position-management")


class Recorder:
    """A handler that records what it is given; `fail_when` makes a delivery raise."""

    def __init__(self, fail_when: Callable[[Message], bool] = lambda _message: False) -> None:
        self._lock = threading.Lock()
        self._fail_when = fail_when
        self.deliveries: list[Message] = []  # every delivery, failed ones included
        self.handled: list[Message] = []  # deliveries the handler returned from

    def __call__(self, message: Message) -> None:
        with self._lock:
            self.deliveries.append(message)
        if self._fail_when(message):
            raise RuntimeError(f"handler refuses {message.data!r}")
        with self._lock:
            self.handled.append(message)

    def handled_data(self, ordering_key: str | None = None) -> list[bytes]:
        with self._lock:
            return [m.data for m in self.handled if ordering_key in (None, m.ordering_key)]

    def delivered_data(self) -> list[bytes]:
        with self._lock:
            return [m.data for m in self.deliveries]


BUSES = ["memory", pytest.param("pubsub", marks=pytest.mark.emulator)]


@pytest.fixture(params=BUSES)
def bus(request: pytest.FixtureRequest) -> Iterator[EventBus]:
    yield from _bus(request)


@pytest.fixture(params=BUSES)
def sharded_bus(request: pytest.FixtureRequest) -> Iterator[EventBus]:
    """A bus of shard 1 of a sharded platform."""
    yield from _bus(request, shard=1)


def _bus(request: pytest.FixtureRequest, shard: int | None = None) -> Iterator[EventBus]:
    messaging: MemoryMessaging | PubSubMessaging
    if request.param == "memory":
        messaging = MemoryMessaging(backend="memory")
    else:
        unique = uuid.uuid4().hex[:12]
        messaging = PubSubMessaging(
            backend="pubsub",
            project=f"contract-{unique}",
            topic_prefix=f"t{unique}-",
            emulator_host=request.getfixturevalue("pubsub_emulator"),
        )
    event_bus = create_bus(messaging, shard)
    yield event_bus
    event_bus.close()


def test_messages_of_each_ordering_key_arrive_in_publish_order(bus: EventBus) -> None:
    recorder = Recorder()
    bus.subscribe("orders", ORDERS_SUBSCRIPTION, recorder)
    keys = ["order-a", "order-b", "order-c"]
    for sequence in range(100):
        for key in keys:
            bus.publish("orders", f"{key}:{sequence}".encode(), ordering_key=key)
    bus.flush()

    wait_until(lambda: len(recorder.handled_data()) >= 300, 20, "all 300 messages handled")
    for key in keys:
        assert recorder.handled_data(key) == [f"{key}:{n}".encode() for n in range(100)]


def test_handled_message_is_not_delivered_again(bus: EventBus) -> None:
    recorder = Recorder()
    bus.subscribe("orders", ORDERS_SUBSCRIPTION, recorder)
    bus.publish("orders", b"first", ordering_key="order-a")
    bus.publish("orders", b"second")
    wait_until(lambda: len(recorder.handled_data()) == 2, 10, "both messages handled")

    # A redelivery would come before a later message of the same key.
    bus.publish("orders", b"sentinel", ordering_key="order-a")
    wait_until(lambda: b"sentinel" in recorder.handled_data(), 10, "the sentinel handled")
    assert sorted(recorder.delivered_data()) == [b"first", b"second", b"sentinel"]


def test_failing_handler_gets_message_again_while_later_messages_of_its_key_wait(
    bus: EventBus,
) -> None:
    recorder = Recorder(fail_when=lambda m: m.data == b"a1" and m.delivery_attempt < 3)
    bus.subscribe("orders", ORDERS_SUBSCRIPTION, recorder)
    for data, key in [(b"a1", "a"), (b"a2", "a"), (b"b1", "b"), (b"a3", "a")]:
        bus.publish("orders", data, ordering_key=key)

    wait_until(lambda: len(recorder.handled_data()) == 4, 10, "all messages handled")
    assert recorder.handled_data("a") == [b"a1", b"a2", b"a3"]
    assert recorder.handled_data("b") == [b"b1"]
    a1_attempts = [m.delivery_attempt for m in recorder.deliveries if m.data == b"a1"]
    assert a1_attempts == [1, 2, 3]
    # Nothing later of key "a" reached the handler before a1 succeeded.
    deliveries_of_a = [m.data for m in recorder.deliveries if m.ordering_key == "a"]
    assert deliveries_of_a == [b"a1", b"a1", b"a1", b"a2", b"a3"]


def test_attributes_data_and_ordering_key_arrive_intact(bus: EventBus) -> None:
    recorder = Recorder()
    bus.subscribe("orders", ORDERS_SUBSCRIPTION, recorder)
    attributes = {
        "event_id": "0b9e7c1e-2f7a-4c39-9a53-5d3f1c7b2a10",
        "event_type": "trading.v1.OrderSubmitted",
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "note": "prix ü € 1.50",
    }
    data = bytes(range(256))
    bus.publish("orders", data, ordering_key="acct-1/BTC-USD", attributes=attributes)

    wait_until(lambda: recorder.handled_data() != [], 10, "the message handled")
    (message,) = recorder.handled
    assert message.data == data
    assert dict(message.attributes) == attributes
    assert message.ordering_key == "acct-1/BTC-USD"
    assert message.message_id != ""
    assert message.delivery_attempt == 1


def test_every_subscription_of_a_topic_gets_every_message(bus: EventBus) -> None:
    order_management, position_management = Recorder(), Recorder()
    bus.subscribe("executions", OM_EXECUTIONS, order_management)
    bus.subscribe("executions", PM_EXECUTIONS, position_management)
    published = [f"fill-{n}".encode() for n in range(20)]
    for data in published:
        bus.publish("executions", data, ordering_key="order-1")

    wait_until(
        lambda: order_management.handled_data() == position_management.handled_data() == published,
        10,
        "every fill handled by both subscriptions",
    )


def test_a_shards_subscription_gets_only_the_messages_of_its_shard(bus: EventBus) -> None:
    shard_0, shard_1 = Recorder(), Recorder()
    for shard, recorder in ((0, shard_0), (1, shard_1)):
        name = subscription_name("orders", "execution-router", shard=shard)
        bus.subscribe("orders", name, recorder, shard=shard)
    # One ordering key: each subscription sees them in this order, so once its last message
    # arrived, nothing of another shard can follow.
    for data, tag in [(b"a", "1"), (b"b", "0"), (b"c", "1"), (b"unsharded", None), (b"d", "0")]:
        attributes = {} if tag is None else {SHARD_ATTRIBUTE: tag}
        bus.publish("orders", data, ordering_key="k", attributes=attributes)
    bus.publish("orders", b"last-1", ordering_key="k", attributes={SHARD_ATTRIBUTE: "1"})

    wait_until(lambda: b"d" in shard_0.handled_data(), 10, "shard 0's messages handled")
    wait_until(lambda: b"last-1" in shard_1.handled_data(), 10, "shard 1's messages handled")
    assert shard_0.delivered_data() == [b"b", b"d"]
    assert shard_1.delivered_data() == [b"a", b"c", b"last-1"]


def test_a_shards_subscriptions_exist_from_the_start_with_their_filter(
    sharded_bus: EventBus,
) -> None:
    sharded_bus.publish("orders", b"other", ordering_key="k", attributes={SHARD_ATTRIBUTE: "0"})
    sharded_bus.publish("orders", b"mine", ordering_key="k", attributes={SHARD_ATTRIBUTE: "1"})
    sharded_bus.flush()
    recorder = Recorder()
    name = subscription_name("orders", "execution-router", shard=1)
    assert name == "orders.execution-router.shard-1"
    sharded_bus.subscribe("orders", name, recorder, shard=1)

    wait_until(lambda: recorder.handled_data() == [b"mine"], 10, "shard 1's message handled")
    assert recorder.delivered_data() == [b"mine"]


def test_messages_published_before_subscribing_wait_in_the_subscription(bus: EventBus) -> None:
    bus.publish("orders", b"early", ordering_key="order-a")
    bus.flush()
    recorder = Recorder()
    bus.subscribe("orders", ORDERS_SUBSCRIPTION, recorder)

    wait_until(lambda: recorder.handled_data() == [b"early"], 10, "the early message handled")


def test_subscription_created_after_publishing_misses_earlier_messages(bus: EventBus) -> None:
    bus.publish("orders", b"before", ordering_key="order-a")
    bus.flush()
    late = Recorder()
    bus.subscribe("orders", "orders.late-joiner", late)
    bus.publish("orders", b"after", ordering_key="order-a")

    wait_until(lambda: late.handled_data() == [b"after"], 10, "the later message handled")
    assert late.delivered_data() == [b"after"]


def test_a_failed_delivery_comes_again_and_a_repeated_publish_arrives_twice(
    bus: EventBus,
) -> None:
    """At-least-once, as consumers must expect it: what the platform's consumers do about it is
    tested end to end (tests/e2e/test_duplicate_deliveries.py)."""
    recorder = Recorder(
        fail_when=lambda message: message.data == b"e2" and message.delivery_attempt == 1
    )
    bus.subscribe("executions", OM_EXECUTIONS, recorder)
    # e3 is published twice, as a publisher retrying after a lost response would.
    for event_id in [b"e1", b"e2", b"e3", b"e3", b"e4"]:
        bus.publish("executions", event_id, ordering_key="order-1")

    wait_until(lambda: b"e4" in recorder.handled_data(), 10, "the last event handled")
    assert recorder.handled_data() == [b"e1", b"e2", b"e3", b"e3", b"e4"]
    assert recorder.delivered_data().count(b"e2") == 2


def test_close_waits_for_the_running_handler_which_may_still_publish(bus: EventBus) -> None:
    started, release = threading.Event(), threading.Event()
    events: list[str] = []

    def slow_handler(_message: Message) -> None:
        started.set()
        release.wait(10)
        bus.publish("executions", b"fill", ordering_key="order-a")
        events.append("handler published")

    bus.subscribe("orders", ORDERS_SUBSCRIPTION, slow_handler)
    bus.publish("orders", b"slow", ordering_key="order-a")
    assert started.wait(10), "the handler never started"

    def close() -> None:
        bus.close()
        events.append("close returned")

    closer = threading.Thread(target=close)
    closer.start()
    closer.join(0.5)
    assert closer.is_alive(), "close() returned while a handler was running"
    release.set()
    closer.join(10)
    assert events == ["handler published", "close returned"]


def test_publishing_after_close_is_refused(bus: EventBus) -> None:
    bus.close()
    with pytest.raises(RuntimeError, match="closed"):
        bus.publish("orders", b"late")


def test_publishing_to_an_unknown_topic_is_refused(bus: EventBus) -> None:
    with pytest.raises(ValueError, match="unknown topic"):
        bus.publish("no-such-topic", b"lost")


def test_every_published_message_is_taken_exactly_once(bus: EventBus) -> None:
    taken: list[int] = []
    lock = threading.Lock()

    def taker(number: int) -> Callable[[], None]:
        def took() -> None:
            with lock:
                taken.append(number)

        return took

    om, pm = Recorder(), Recorder()
    bus.subscribe("executions", OM_EXECUTIONS, om)
    bus.subscribe("executions", PM_EXECUTIONS, pm)
    for number in range(40):
        bus.publish("executions", b"%d" % number, ordering_key="k", on_taken=taker(number))
    bus.flush()

    wait_until(lambda: len(taken) == 40, 20, "every message to be taken")
    wait_until(lambda: len(pm.handled) == 40 and len(om.handled) == 40, 20, "both handled")
    assert sorted(taken) == list(range(40))


class PendingWork:
    """What a handler returns when its work is not durable yet."""

    def __init__(self) -> None:
        self.callbacks: list[Callable[[], None]] = []
        self.done = False

    def add_done_callback(self, callback: Callable[[], None]) -> None:
        if self.done:
            callback()
        else:
            self.callbacks.append(callback)

    def finish(self) -> None:
        self.done = True
        for callback in self.callbacks:
            callback()


def test_in_memory_bus_takes_a_message_only_once_the_handlers_work_is_durable() -> None:
    bus = create_bus(MemoryMessaging(backend="memory"))
    work = PendingWork()
    taken = threading.Event()
    bus.subscribe("orders", ORDERS_SUBSCRIPTION, lambda _message: work)
    bus.publish("orders", b"submit", ordering_key="o-1", on_taken=taken.set)
    wait_until(lambda: work.callbacks, 10, "the handler to run")
    assert not taken.is_set()

    work.finish()

    assert taken.is_set()
    bus.close()
