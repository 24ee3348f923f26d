"""Streams cannot starve the API (review A9): each open stream holds a gRPC worker, so a service
refuses streams beyond `services.max_streams`, and unary calls keep workers of their own."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from trading.v1 import orders_pb2, positions_pb2, types_pb2
from trading_core.runtime import Platform

from tests.e2e.conftest import (
    SERVICE_MODULES,
    Clients,
    embedded_overrides,
    start_embedded,
    write_config,
)
from tests.e2e.test_trading_flow import ready_for_market_orders, submit
from tests.support import wait_until

MAX_STREAMS = 3
# The fewest workers the config allows: every one a stream could take would starve the rest.
MAX_WORKERS = MAX_STREAMS + 4

Opener = Callable[[Clients], grpc.Call]


def order_stream(clients: Clients) -> grpc.Call:
    call: grpc.Call = clients.orders.StreamOrderEvents(orders_pb2.StreamOrderEventsRequest())
    return call


def position_stream(clients: Clients) -> grpc.Call:
    call: grpc.Call = clients.positions.StreamPositionEvents(
        positions_pb2.StreamPositionEventsRequest()
    )
    return call


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[tuple[Clients, Platform]]:
    overrides = embedded_overrides(tmp_path / "data")
    services = overrides["services"]
    assert isinstance(services, dict)
    services.update(max_streams=MAX_STREAMS, max_workers=MAX_WORKERS)
    platform = start_embedded(write_config(tmp_path, overrides))
    clients = Clients({name: platform.address(name) for name in SERVICE_MODULES})
    yield clients, platform
    clients.close()
    platform.stop()


def subscribed(call: grpc.Call) -> bool:
    """Whether the server accepted the stream (it sends its headers once subscribed)."""
    call.initial_metadata()
    return bool(call.is_active())


def refusal(call: grpc.Call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as refused:
        next(iter(call))  # type: ignore[call-overload]
    return refused.value


@pytest.mark.parametrize(
    "open_stream", [order_stream, position_stream], ids=["orders", "positions"]
)
def test_a_stream_beyond_max_streams_is_resource_exhausted_and_submit_still_answers_promptly(
    limited: tuple[Clients, Platform], open_stream: Opener
) -> None:
    clients, _ = limited
    ready_for_market_orders(clients)
    watchers = [open_stream(clients) for _ in range(MAX_STREAMS)]
    try:
        assert all(subscribed(watcher) for watcher in watchers)
        # Far more than the workers left: without the limit each would hold one for good.
        refused = [refusal(open_stream(clients)) for _ in range(MAX_WORKERS * 2)]
        assert {error.code() for error in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
        assert refused[0].details() == (
            f"{MAX_STREAMS} streams are open, the most this service allows "
            "(services.max_streams); close one or raise it"
        )

        started = time.monotonic()
        order = submit(clients, account_id="acct-streams", quantity="0.001")
        assert order.status == types_pb2.ORDER_STATUS_SUBMITTED
        assert time.monotonic() - started < 2.0
    finally:
        for watcher in watchers:
            watcher.cancel()


def test_a_closed_stream_makes_room_for_a_new_one(limited: tuple[Clients, Platform]) -> None:
    clients, _ = limited
    watchers = [order_stream(clients) for _ in range(MAX_STREAMS)]
    assert all(subscribed(watcher) for watcher in watchers)
    assert refusal(order_stream(clients)).code() == grpc.StatusCode.RESOURCE_EXHAUSTED

    watchers.pop().cancel()

    def reopened() -> grpc.Call | None:
        call = order_stream(clients)
        if subscribed(call):
            return call
        return None

    watchers.append(wait_until(reopened, 10, "a stream to be accepted after one closed"))
    for watcher in watchers:
        watcher.cancel()
