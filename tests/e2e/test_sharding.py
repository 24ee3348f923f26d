"""Two shards over the Pub/Sub emulator (README "Sharding by account"): each shard's processes
handle only the accounts mapped to it, a call to the wrong shard is refused naming the right one,
and tradectl, pointed at shard 0, reaches an account's shard by itself."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import pytest
from tradectl.cli import app
from trading.v1 import orders_pb2, positions_pb2, types_pb2
from trading_core.sharding import ADDRESS_METADATA, SHARD_METADATA
from typer.testing import CliRunner

from tests.e2e.conftest import ROOT, Clients, embedded_overrides, wait_serving_at, write_config
from tests.e2e.test_trading_flow import order_status, position_quantity, submit, wait_for_quote
from tests.support import free_port, wait_until

SHARDED = ("order-management", "execution-router", "position-management")
# acct-east and its warm-up account are mapped to shard 1; every other account is shard 0's.
ACCOUNTS = {0: ("acct-west", "acct-west-warmup"), 1: ("acct-east", "acct-east-warmup")}


def _addresses() -> dict[int, dict[str, str]]:
    return {shard: {name: f"127.0.0.1:{free_port()}" for name in SHARDED} for shard in (0, 1)}


@contextlib.contextmanager
def running_shards(tmp_path: Path, emulator: str) -> Iterator[tuple[Clients, Clients]]:
    """Each shard's three services in one process of its own (their messages still cross the
    emulator), and market data in a third, shared by both."""
    addresses = _addresses()
    market_data = f"127.0.0.1:{free_port()}"
    sharding = {
        "shards": 2,
        "accounts": dict.fromkeys(ACCOUNTS[1], 1),
        "endpoints": {
            shard: {name.replace("-", "_"): address for name, address in served.items()}
            for shard, served in addresses.items()
        },
    }
    messaging = {
        "backend": "pubsub",
        "project": f"shards-{uuid.uuid4().hex[:8]}",
        "emulator_host": emulator,
    }
    processes: dict[str, subprocess.Popen[bytes]] = {}
    env = {**os.environ, "PUBSUB_EMULATOR_HOST": emulator}
    configs = {}
    for shard, served in addresses.items():
        folder = tmp_path / f"shard-{shard}"
        folder.mkdir()
        overrides = embedded_overrides(folder / "data")
        ports = {**served, "market-data": market_data}
        overrides["services"] = {
            name.replace("-", "_"): {"port": int(address.rsplit(":", 1)[1])}
            for name, address in ports.items()
        }
        configs[shard] = write_config(
            folder, {**overrides, "messaging": messaging, "sharding": {**sharding, "shard": shard}}
        )
    commands = {
        f"shard-{shard}": ["-m", "tradectl", "serve", "--config", str(configs[shard])]
        + [arg for name in SHARDED for arg in ("--service", name)]
        for shard in addresses
    }
    commands["market-data"] = ["-m", "market_data", "--config", str(configs[0])]
    for name, command in commands.items():
        log = (tmp_path / f"{name}.log").open("ab")
        processes[name] = subprocess.Popen(
            [sys.executable, *command], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    clients = [Clients(served) for served in addresses.values()]
    try:
        every = {f"{n} {s}": a for s, served in addresses.items() for n, a in served.items()}
        wait_serving_at({**every, "market-data": market_data}, processes, 60, tmp_path)
        yield clients[0], clients[1]
    finally:
        for client in clients:
            client.close()
        for process in processes.values():
            process.terminate()
        codes = {name: process.wait(timeout=30) for name, process in processes.items()}
    assert codes == dict.fromkeys(processes, 0), f"not stopped cleanly: {codes}"


def _warm_up(clients: Clients, account: str) -> None:
    """The shard's order-management has quotes once a market order is no longer denied."""
    wait_for_quote(clients)

    def accepted() -> bool:
        order = submit(clients, account_id=account, quantity="0.001")
        return order.status != types_pb2.ORDER_STATUS_DENIED

    wait_until(accepted, 20, f"order-management of {account}'s shard to receive quotes")


def _accounts_with_orders(clients: Clients) -> set[str]:
    listed = clients.orders.ListOrders(orders_pb2.ListOrdersRequest(), timeout=5)
    return {order.account_id for order in listed.orders}


def _accounts_with_positions(clients: Clients) -> set[str]:
    listed = clients.positions.ListPositions(positions_pb2.ListPositionsRequest(), timeout=5)
    return {position.account_id for position in listed.positions}


def _tradectl(clients: Clients, *args: str) -> Any:
    """tradectl pointed at this shard's servers, its JSON answer."""
    servers = [
        "--orders", clients.addresses["order-management"],
        "--positions", clients.addresses["position-management"],
        "--router", clients.addresses["execution-router"],
    ]  # fmt: skip
    result = CliRunner().invoke(app, [*servers, "-o", "json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.emulator
def test_each_shard_trades_only_its_accounts_and_clients_reach_the_right_one(
    tmp_path: Path, pubsub_emulator: str
) -> None:
    with running_shards(tmp_path, pubsub_emulator) as (shard_0, shard_1):
        _warm_up(shard_0, "acct-west-warmup")
        _warm_up(shard_1, "acct-east-warmup")
        west = submit(shard_0, account_id="acct-west", quantity="0.2")
        east = submit(shard_1, account_id="acct-east", quantity="0.3")
        order_status(shard_0, west, types_pb2.ORDER_STATUS_FILLED)
        order_status(shard_1, east, types_pb2.ORDER_STATUS_FILLED)
        position_quantity(shard_0, "acct-west", "0.2")
        position_quantity(shard_1, "acct-east", "0.3")

        # Each shard's processes saw only their own accounts' orders and fills.
        assert _accounts_with_orders(shard_0) == set(ACCOUNTS[0])
        assert _accounts_with_orders(shard_1) == set(ACCOUNTS[1])
        assert _accounts_with_positions(shard_0) == set(ACCOUNTS[0])
        assert _accounts_with_positions(shard_1) == set(ACCOUNTS[1])

        # The wrong shard refuses, changes nothing, and says where to go.
        with pytest.raises(grpc.RpcError) as refused:
            submit(shard_0, account_id="acct-east", quantity="0.1")
        error: Any = refused.value  # an RpcError that is also the Call
        assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
        right = shard_1.addresses["order-management"]
        assert "shard 1" in (error.details() or "") and right in (error.details() or "")
        assert dict(error.trailing_metadata() or ()) == {
            SHARD_METADATA: "1",
            ADDRESS_METADATA: right,
        }
        assert _accounts_with_orders(shard_0) == set(ACCOUNTS[0])

        # tradectl, given shard 0's servers, follows the redirect to acct-east's shard.
        placed = _tradectl(
            shard_0, "order", "submit", "BTC-USD", "buy", "0.1", "--account", "acct-east", "--wait"
        )
        assert placed["order"]["status"] == "ORDER_STATUS_FILLED"
        assert placed["order"]["orderId"] in {
            order.order_id
            for order in shard_1.orders.ListOrders(
                orders_pb2.ListOrdersRequest(account_id="acct-east"), timeout=5
            ).orders
        }
        position_quantity(shard_1, "acct-east", "0.4")
        positions = _tradectl(shard_0, "position", "list", "--account", "acct-east")
        held = {p["instrument"]: Decimal(p["quantity"]) for p in positions}
        assert held["BTC-USD"] == Decimal("0.4")
        assert _accounts_with_orders(shard_0) == set(ACCOUNTS[0])
