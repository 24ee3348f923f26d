"""Requests racing each other with the same ids, against the platform as its own process (a
conflict that reached the journal would stop it: it must be caught before).

- Concurrent submits with one request_id make one order; every caller gets it.
- Concurrent cancels of two orders with one cancel request_id: one cancels, the other is
  ALREADY_EXISTS, and the platform goes on serving.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from trading.v1 import orders_pb2, types_pb2

from tests.e2e.conftest import (
    ROOT,
    SERVICE_MODULES,
    Clients,
    embedded_overrides,
    wait_serving_at,
    write_config,
)
from tests.e2e.test_trading_flow import order_status, ready_for_market_orders, submit
from tests.support import free_port

RACERS = 8


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Clients, subprocess.Popen[bytes]]]:
    ports = {name: free_port() for name in SERVICE_MODULES}
    overrides = embedded_overrides(tmp_path / "data")
    overrides["services"] = {n.replace("-", "_"): {"port": p} for n, p in ports.items()}
    config = write_config(tmp_path, overrides)
    with (tmp_path / "platform.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tradectl", "serve", "--config", str(config)],
            cwd=ROOT,
            env=dict(os.environ),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    addresses = {name: f"127.0.0.1:{port}" for name, port in ports.items()}
    clients = Clients(addresses)
    try:
        wait_serving_at(addresses, {"platform": process}, 60)
        yield clients, process
    finally:
        clients.close()
        process.send_signal(signal.SIGTERM)
        process.wait(30)


def race(calls: list[Callable[[], object]]) -> list[object]:
    """Runs the calls at the same moment, one thread each; their results or errors."""
    start = threading.Barrier(len(calls))
    results: list[object] = [None] * len(calls)

    def run(index: int) -> None:
        start.wait()
        try:
            results[index] = calls[index]()
        except grpc.RpcError as error:
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_concurrent_submits_with_one_request_id_make_one_order(
    served: tuple[Clients, subprocess.Popen[bytes]],
) -> None:
    clients, _ = served
    ready_for_market_orders(clients)
    ids = {"request_id": str(uuid.uuid4()), "client_order_id": str(uuid.uuid4())}
    answers = race([lambda: submit(clients, account_id="acct-race", **ids)] * RACERS)
    assert all(isinstance(a, orders_pb2.Order) for a in answers), answers
    assert len({a.order_id for a in answers if isinstance(a, orders_pb2.Order)}) == 1
    listed = clients.orders.ListOrders(orders_pb2.ListOrdersRequest(account_id="acct-race"))
    assert len(listed.orders) == 1


def test_one_cancel_request_id_for_two_orders_at_once_cancels_one_and_keeps_serving(
    served: tuple[Clients, subprocess.Popen[bytes]],
) -> None:
    clients, process = served
    resting = {"order_type": types_pb2.ORDER_TYPE_LIMIT, "limit_price": "1000"}
    for _ in range(5):  # a few rounds: the conflict must be caught whatever the timing
        first = submit(clients, account_id="acct-race-cancel", **resting)
        second = submit(clients, account_id="acct-race-cancel", **resting)
        for order in (first, second):
            order_status(clients, order, types_pb2.ORDER_STATUS_ACCEPTED)
        request_id = str(uuid.uuid4())

        def cancel(order: orders_pb2.Order, request_id: str = request_id) -> object:
            request = orders_pb2.CancelOrderRequest(
                order_id=order.order_id, account_id=order.account_id, request_id=request_id
            )
            return clients.orders.CancelOrder(request, timeout=10).order

        answers = race([functools.partial(cancel, first), functools.partial(cancel, second)])
        refused = [a for a in answers if isinstance(a, grpc.RpcError)]
        assert len(refused) == 1, answers
        assert refused[0].code() == grpc.StatusCode.ALREADY_EXISTS
        assert process.poll() is None, "the platform stopped"
