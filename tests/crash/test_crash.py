"""The crash suite: each process killed with SIGKILL during a steady stream of orders (cancels
and modifies among them), restarted, and nothing answered lost, duplicated or left open, no
modified order holding values nobody asked for; positions equal the fills.

Embedded: the one process. Distributed: one service process at a time, over a Pub/Sub emulator
of the test's own (review F1: a restarted subscriber may stop receiving from the emulator, so no
emulator is shared between crash runs). `CRASH_ORDERS` and `CRASH_KILLS` make a run longer
(`make chaos`).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import grpc
import pytest
from trading.v1 import control_pb2, orders_pb2, types_pb2

from tests.conftest import start_emulator, stop_emulator
from tests.crash.harness import OrderStream, Report, settle_and_check
from tests.e2e.conftest import (
    ROOT,
    SERVICE_MODULES,
    Clients,
    embedded_overrides,
    wait_serving_at,
    write_config,
)
from tests.e2e.test_trading_flow import position_quantity, ready_for_market_orders, wait_for_quote
from tests.support import free_port, wait_until

CENT = Decimal("0.01")
ORDERS_PER_KILL = int(os.environ.get("CRASH_ORDERS", "150"))
KILLS = int(os.environ.get("CRASH_KILLS", "1"))
# The services killed in the distributed runs. `make test` kills the two whose restart has the
# most to recover (the router's venue state, position-management's catch-up), to stay within
# its time; `make chaos` kills each of the three.
DISTRIBUTED_VICTIMS = os.environ.get("CRASH_VICTIMS", "execution-router,position-management").split(
    ","
)
ACTIVE, HALTED = types_pb2.TRADING_STATE_ACTIVE, types_pb2.TRADING_STATE_HALTED


@dataclass
class Process:
    """A platform process started from the command line a person would use."""

    command: list[str]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.popen = subprocess.Popen(
                self.command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    def kill(self) -> None:
        assert self.popen is not None
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait()

    def dump_stacks(self) -> None:
        """Every thread's stack into the process's log (faulthandler on SIGUSR1)."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGUSR1)

    def stop(self) -> int:
        if self.popen is None or self.popen.poll() is not None:
            return self.popen.returncode if self.popen else 0
        self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(30)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait()


def _crash_run(
    clients: Clients,
    processes: dict[str, Process],
    victims: list[str],
    seed: int,
    addresses: dict[str, str],
) -> Report:
    chooser = random.Random(seed)
    stream = OrderStream(lambda: clients, f"acct-crash-{seed}", seed)
    stream.start()
    failed = True
    try:
        for kill in range(KILLS):
            target = stream.answered_count() + chooser.randint(
                ORDERS_PER_KILL // 2, ORDERS_PER_KILL
            )
            stream.wait_for_answers(target, 120)
            victim = victims[kill % len(victims)]
            killed_at, answered = time.monotonic(), stream.answered_count()
            processes[victim].kill()
            processes[victim].start()
            wait_serving_at(addresses, processes_alive(processes), 60, processes[victim].log.parent)
            print(  # noqa: T201 - the run's timeline, for a failure
                f"{victim} killed after {answered} answers, serving again after "
                f"{time.monotonic() - killed_at:.1f} s"
            )
        stream.wait_for_answers(stream.answered_count() + ORDERS_PER_KILL // 2, 120)
        failed = False
    finally:
        if failed:  # stuck: show where, in the processes' logs
            for process in processes.values():
                process.dump_stacks()
        stream.stop()
    stream.retry_unanswered()
    return settle_and_check(clients, stream)


def processes_alive(processes: dict[str, Process]) -> dict[str, subprocess.Popen[bytes]]:
    return {name: p.popen for name, p in processes.items() if p.popen is not None}


def _assert_clean(report: Report, least_answered: int = ORDERS_PER_KILL // 2 * (KILLS + 1)) -> None:
    modifies = report.modifies
    summary = (
        f"answered {report.answered}: lost {len(report.lost)}, duplicated "
        f"{len(report.duplicated)}, stuck {len(report.stuck)}, inconsistent "
        f"{len(report.inconsistent)}, positions wrong {len(report.wrong_positions)}, unexpected "
        f"errors {len(report.unexpected)}; rejected "
        f"by reconciliation as never received {len(report.repaired)}; modifies answered "
        f"{modifies.answered} (applied {modifies.applied}, {modifies.filled} of them filled), "
        f"refused {_counts(modifies.refused)}, FAILED_PRECONDITION {_counts(modifies.not_now)}, "
        f"retried after the restart {modifies.retried}"
    )
    print(summary)  # noqa: T201 - the figures the crash suite reports
    # By default each kill waits for at least half of CRASH_ORDERS more answers, and so does
    # the end.
    assert report.answered >= least_answered
    assert report.clean, f"{summary}\n{report}"


def _counts(by_name: dict[str, int]) -> str:
    """How many, and how many of each name: "12 (SUBMITTED 10, FILLED 2)"."""
    named = ", ".join(f"{name.removeprefix('DENIAL_REASON_')} {n}" for name, n in by_name.items())
    return f"{sum(by_name.values())}" + (f" ({named})" if named else "")


def embedded_process(tmp_path: Path) -> tuple[Process, dict[str, str]]:
    """The one process of `tradectl serve` on its own ports, and their addresses."""
    ports = {name: free_port() for name in SERVICE_MODULES}
    overrides = embedded_overrides(tmp_path / "data", feed="process")
    overrides["services"] = {n.replace("-", "_"): {"port": p} for n, p in ports.items()}
    overrides["reconciliation"] = {"interval_ms": 500, "order_age_ms": 1000}
    config = write_config(tmp_path, overrides)
    process = Process(
        [sys.executable, "-m", "tradectl", "serve", "--config", str(config)],
        dict(os.environ),
        tmp_path / "platform.log",
    )
    return process, {name: f"127.0.0.1:{port}" for name, port in ports.items()}


@pytest.mark.timeout(600)  # bounded by the run's own waits
def test_embedded_process_killed_mid_stream_loses_duplicates_and_strands_nothing(
    tmp_path: Path,
) -> None:
    process, addresses = embedded_process(tmp_path)
    process.start()
    clients = Clients(addresses)
    try:
        wait_serving_at(addresses, processes_alive({"platform": process}), 60)
        report = _crash_run(clients, {"platform": process}, ["platform"], 7, addresses)
    finally:
        clients.close()
        code = process.stop()
    _assert_clean(report)
    assert code == 0


@pytest.mark.timeout(600)  # bounded by the run's own waits
def test_an_emergency_stop_killed_in_flight_halts_cancels_and_closes_each_position_once(
    tmp_path: Path,
) -> None:
    """SIGKILL right after EmergencyStop answered, while its cancels and closes are in flight:
    after the restart the halt holds, nothing is lost, duplicated or stuck, every position is
    flat with at most one closing order per instrument, and the resume's checks pass (the risk
    view equals position-management's positions, no close pending)."""
    process, addresses = embedded_process(tmp_path)
    process.start()
    clients = Clients(addresses)
    account = "acct-stop-crash"
    try:
        wait_serving_at(addresses, processes_alive({"platform": process}), 60)
        stream = OrderStream(lambda: clients, account, 13)
        stream.start()
        stream.wait_for_answers(ORDERS_PER_KILL // 2, 120)
        stop = control_pb2.EmergencyStopRequest(
            request_id=str(uuid.uuid4()), account_id=account, reason="crash test", flatten=True
        )
        answer = clients.control.EmergencyStop(stop, timeout=10)
        process.kill()
        stream.stop()
        process.start()
        wait_serving_at(addresses, processes_alive({"platform": process}), 60)
        stream.retry_unanswered()
        report = settle_and_check(clients, stream)
        state = clients.control.GetTradingState(
            control_pb2.GetTradingStateRequest(account_id=account), timeout=10
        )
        closing = _closing_orders_by_instrument(clients, account)
        resumed = clients.control.SetTradingState(
            control_pb2.SetTradingStateRequest(
                request_id=str(uuid.uuid4()), account_id=account, state=ACTIVE, reason="checked"
            ),
            timeout=10,
        )
    finally:
        clients.close()
        code = process.stop()
    assert answer.trading_state.state == HALTED
    assert [(a.state, a.version) for a in state.accounts] == [(HALTED, 1)]
    _assert_clean(report, ORDERS_PER_KILL // 2)
    assert closing, "the stream left no position to close"
    assert all(len(orders) == 1 for orders in closing.values()), closing
    assert resumed.trading_state.state == ACTIVE
    assert code == 0


@pytest.mark.timeout(600)  # bounded by the run's own waits
def test_brackets_killed_in_flight_each_end_with_exactly_one_exit_and_a_flat_position(
    tmp_path: Path,
) -> None:
    """SIGKILL while brackets' exits are held, triggering and working: after the restart every
    bracket's entry is filled once and exactly one of its exits fills (the other canceled), no
    order is duplicated or stuck, and the account is flat."""
    process, addresses = embedded_process(tmp_path)
    process.start()
    clients = Clients(addresses)
    account = "acct-bracket-crash"
    chosen = random.Random(17)
    try:
        wait_serving_at(addresses, processes_alive({"platform": process}), 60)
        ready_for_market_orders(clients)
        brackets = [_bracket(clients, account, chosen) for _ in range(12)]
        wait_until(lambda: _exits_filled(clients, brackets) >= 2, 120, "two brackets to exit")
        process.kill()
        process.start()
        wait_serving_at(addresses, processes_alive({"platform": process}), 60)
        wait_until(
            lambda: _exits_filled(clients, brackets) == len(brackets), 180, "every exit to fill"
        )
        ended = [[_order(clients, o) for o in (b.order, *b.legs)] for b in brackets]
        listed = clients.orders.ListOrders(
            orders_pb2.ListOrdersRequest(account_id=account, page_size=1000), timeout=10
        ).orders
        position_quantity(clients, account, "0")
    finally:
        clients.close()
        code = process.stop()
    filled, canceled = types_pb2.ORDER_STATUS_FILLED, types_pb2.ORDER_STATUS_CANCELED
    for entry, *exits in ended:
        assert entry.status == filled, entry
        assert sorted(e.status for e in exits) == [filled, canceled], exits
        assert all(Decimal(e.filled_quantity) in (0, Decimal(entry.quantity)) for e in exits)
    assert len(listed) == 3 * len(brackets)  # nothing sent twice
    assert code == 0


def _bracket(
    clients: Clients, account: str, chosen: random.Random
) -> orders_pb2.SubmitOrderResponse:
    """A market buy with exits 15-40 basis points away: the walk (5 bps a tick) reaches one
    within a second or two, and moves too little before the checks for either to be on the
    wrong side."""
    quote = wait_for_quote(clients)
    ask, bid = Decimal(quote.ask_price), Decimal(quote.bid_price)
    up = Decimal(1) + Decimal(chosen.randint(15, 40)) / 10_000
    down = Decimal(1) - Decimal(chosen.randint(15, 40)) / 10_000
    request = orders_pb2.SubmitOrderRequest(
        request_id=str(uuid.uuid4()),
        client_order_id=str(uuid.uuid4()),
        account_id=account,
        strategy_id="brackets",
        instrument="BTC-USD",
        side=types_pb2.SIDE_BUY,
        order_type=types_pb2.ORDER_TYPE_MARKET,
        quantity="0.01",
        order_class=types_pb2.ORDER_CLASS_BRACKET,
        take_profit=orders_pb2.TakeProfit(limit_price=str((ask * up).quantize(CENT))),
        stop_loss=orders_pb2.StopLoss(trigger_price=str((bid * down).quantize(CENT))),
    )
    response: orders_pb2.SubmitOrderResponse = clients.orders.SubmitOrder(request, timeout=10)
    assert response.order.status == types_pb2.ORDER_STATUS_SUBMITTED, response.order
    return response


def _order(clients: Clients, order: orders_pb2.Order) -> orders_pb2.Order:
    request = orders_pb2.GetOrderRequest(order_id=order.order_id, account_id=order.account_id)
    shown: orders_pb2.Order = clients.orders.GetOrder(request, timeout=10).order
    return shown


def _exits_filled(clients: Clients, brackets: list[orders_pb2.SubmitOrderResponse]) -> int:
    """How many brackets have an exit FILLED (asked of the platform; 0 while it is down)."""
    try:
        return sum(
            any(_order(clients, leg).status == types_pb2.ORDER_STATUS_FILLED for leg in b.legs)
            for b in brackets
        )
    except grpc.RpcError:
        return 0


def _closing_orders_by_instrument(clients: Clients, account: str) -> dict[str, list[str]]:
    listed = clients.orders.ListOrders(
        orders_pb2.ListOrdersRequest(account_id=account, page_size=1000), timeout=10
    ).orders
    closing: dict[str, list[str]] = {}
    for order in listed:
        if order.reduce_only:
            closing.setdefault(order.instrument, []).append(order.order_id)
    return closing


@pytest.mark.emulator
@pytest.mark.timeout(600)  # bounded by the run's own waits
@pytest.mark.parametrize("victim", DISTRIBUTED_VICTIMS)
def test_distributed_service_killed_mid_stream_loses_duplicates_and_strands_nothing(
    tmp_path: Path, victim: str
) -> None:
    emulator, host = start_emulator(tmp_path / "emulator.log")
    ports = {name: free_port() for name in SERVICE_MODULES}
    overrides = embedded_overrides(tmp_path / "data", feed="process")
    overrides["services"] = {n.replace("-", "_"): {"port": p} for n, p in ports.items()}
    overrides["reconciliation"] = {"interval_ms": 500, "order_age_ms": 1000}
    # Quotes at the default pace: four processes and the emulator share two cores here.
    overrides["market_data"] = {"interval_ms": 100}
    overrides["logging"] = {"level": "INFO", "json": False}  # a restart's steps, for a failure
    overrides["messaging"] = {
        "backend": "pubsub",
        "project": f"crash-{uuid.uuid4().hex[:8]}",
        "emulator_host": host,
    }
    config = write_config(tmp_path, overrides)
    env = {**os.environ, "PUBSUB_EMULATOR_HOST": host}
    processes = {
        name: Process(
            [sys.executable, "-m", module, "--config", str(config)], env, tmp_path / f"{name}.log"
        )
        for name, module in SERVICE_MODULES.items()
    }
    addresses = {name: f"127.0.0.1:{port}" for name, port in ports.items()}
    for process in processes.values():
        process.start()
    clients = Clients(addresses)
    try:
        wait_serving_at(addresses, processes_alive(processes), 90, tmp_path)
        report = _crash_run(clients, processes, [victim], 11, addresses)
    finally:
        clients.close()
        codes = {name: process.stop() for name, process in processes.items()}
        stop_emulator(emulator)
    _assert_clean(report)
    assert set(codes.values()) == {0}, codes
