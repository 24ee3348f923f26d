"""`make bench`: latency and throughput of the embedded platform against a bare gRPC echo server
measured in the same run (these machines are noisy: compare ratios, not absolute numbers).

Both servers run in their own process; this process is the client. Every change is durable
(each service's journal commits before it answers). Each round measures the echo server, then
the platform; the ratios are the medians over `BENCH_ROUNDS` rounds (3), and each concurrent
phase reports the server process's CPU time per call (from /proc) beside its wall-clock rate.
The front door is measured too: order-management (with market data and positions) but no
router, so nothing is routed or filled behind the answers: the floor under the platform's
figures; once more without authentication, for what checking every call's API key costs. The
execution router is measured with a network venue on loopback
(`benchmarks.router_bench`: command to venue call p50/p99 against the adapter's own call,
reports per second, CPU per order). The pre-trade risk engine is measured in this process too
(`benchmarks.risk_bench`: one order through every check against 1,000 open orders and 100
positions). The analytics queries run over a million fills on DuckDB (`benchmarks.analytics_bench`),
and the warehouse feed's lag is measured under a minute of orders (`benchmarks.feed_lag_bench`).
Results go to benchmarks/results/<time>.json and benchmarks/results/latest.json.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tradectl.credentials import DEVELOPMENT_KEY, authorized
from trading.v1 import orders_pb2, orders_pb2_grpc, positions_pb2, positions_pb2_grpc, types_pb2

from benchmarks import analytics_bench, auth_bench, feed_lag_bench, risk_bench, router_bench
from benchmarks.echo_server import SERVICE

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SEQUENTIAL_CALLS = int(os.environ.get("BENCH_SEQUENTIAL", "2000"))
CONCURRENT_CALLS = int(os.environ.get("BENCH_CONCURRENT", "5000"))
IN_FLIGHT = 50
# gRPC worker threads, the same for the echo server and the platform's services.
WORKERS = int(os.environ.get("BENCH_WORKERS", "32"))
POSITION_ROUNDS = int(os.environ.get("BENCH_POSITION_ROUNDS", "300"))
WARMUP = 200
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process and its live children (the platform's warehouse feed
    process) have used, from /proc."""
    proc = Path(f"/proc/{pid}")
    fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / _TICKS_PER_S
    children = {child for task in proc.glob("task/*") for child in _children(task)}
    return own + sum(cpu_seconds(child) for child in children)


def _children(task: Path) -> list[int]:
    try:
        return [int(child) for child in (task / "children").read_text().split()]
    except FileNotFoundError:  # the thread ended
        return []


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_healthy(address: str, deadline_s: float = 60) -> None:
    deadline = time.monotonic() + deadline_s
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                answer = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                time.sleep(0.1)  # polling a process that is still starting, not synchronisation
    raise RuntimeError(f"{address} did not become healthy in {deadline_s}s")


def percentiles(samples_s: list[float]) -> dict[str, float]:
    ordered = sorted(samples_s)
    return {
        "count": len(ordered),
        "p50_us": round(statistics.median(ordered) * 1e6, 1),
        "p99_us": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e6, 1),
        "mean_us": round(statistics.fmean(ordered) * 1e6, 1),
    }


def sequential(call: Callable[[], object], count: int) -> dict[str, float]:
    for _ in range(WARMUP):
        call()
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return percentiles(samples)


def concurrent(
    start_call: Callable[[], grpc.Future[Any]], count: int, server_pid: int
) -> dict[str, float]:
    """`count` calls keeping IN_FLIGHT outstanding; calls per second, and the server's CPU time
    per call (for the platform: everything an order costs, in all its services)."""
    cpu_before = cpu_seconds(server_pid)
    slots = threading.Semaphore(IN_FLIGHT)
    done = threading.Event()
    finished = 0
    lock = threading.Lock()

    def on_done(_future: grpc.Future[Any]) -> None:
        nonlocal finished
        slots.release()
        with lock:
            finished += 1
            if finished == count:
                done.set()

    started = time.perf_counter()
    for _ in range(count):
        slots.acquire()
        start_call().add_done_callback(on_done)
    done.wait()
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds(server_pid) - cpu_before
    return {
        "calls": count,
        "in_flight": IN_FLIGHT,
        "calls_per_s": round(count / elapsed, 1),
        "server_cpu_us_per_call": round(cpu / count * 1e6, 1),
    }


def order_request(account: str = "bench") -> orders_pb2.SubmitOrderRequest:
    return orders_pb2.SubmitOrderRequest(
        request_id=str(uuid.uuid4()),
        client_order_id=str(uuid.uuid4()),
        account_id=account,
        strategy_id="bench",
        instrument="BTC-USD",
        side=types_pb2.SIDE_BUY,
        order_type=types_pb2.ORDER_TYPE_MARKET,
        quantity="0.001",
    )


def bench_echo() -> dict[str, dict[str, float]]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.echo_server",
            "--port",
            str(port),
            "--workers",
            str(WORKERS),
        ],
        cwd=ROOT,
    )
    try:
        address = f"127.0.0.1:{port}"
        with grpc.insecure_channel(address) as channel:
            echo: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
                f"/{SERVICE}/Echo"
            )
            grpc.channel_ready_future(channel).result(timeout=30)
            payload = order_request().SerializeToString()
            return {
                "sequential": sequential(lambda: echo(payload, timeout=10), SEQUENTIAL_CALLS),
                "concurrent": concurrent(
                    lambda: echo.future(payload, timeout=60), CONCURRENT_CALLS, process.pid
                ),
            }
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def platform_config(
    directory: Path, authentication: str = "api_keys", database: dict[str, Any] | None = None
) -> tuple[Path, dict[str, str]]:
    ports = {
        name: free_port()
        for name in ("order_management", "execution_router", "position_management", "market_data")
    }
    config = {
        "extends": str(ROOT / "config" / "local.yaml"),
        "services": {
            **{name: {"port": port} for name, port in ports.items()},
            "max_workers": WORKERS,
        },
        "database": {"backend": "duckdb", "path": str(directory / "data"), **(database or {})},
        "journal": {"path": str(directory / "data")},
        "account_limits": {"max_order_value": "1000000000", "max_daily_orders": 10_000_000},
        "order_defaults": {"rate_limit_orders": 10_000_000},
        "logging": {"level": "WARNING"},
        "security": {"authentication": authentication},
    }
    path = directory / "bench.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path, {name: f"127.0.0.1:{port}" for name, port in ports.items()}


# Order-management with what it needs to answer, but no router: no order is routed or filled.
FRONT_DOOR = ("order-management", "market-data", "position-management")


def bench_platform(
    services: tuple[str, ...] = (), authentication: str = "api_keys"
) -> dict[str, dict[str, float]]:
    """The whole embedded platform, or only `services` (then SubmitOrder alone is measured);
    every call presents the development key (`authentication: none`: no key is checked)."""
    with tempfile.TemporaryDirectory() as directory:
        config, addresses = platform_config(Path(directory), authentication)
        chosen = [argument for name in services for argument in ("--service", name)]
        process = subprocess.Popen(
            [sys.executable, "-m", "tradectl", "serve", "--config", str(config), *chosen],
            cwd=ROOT,
        )
        try:
            for address in [addresses["order_management"]] if services else addresses.values():
                wait_healthy(address)
            return measure_platform(addresses, process.pid, with_positions=not services)
        finally:
            process.send_signal(signal.SIGTERM)
            exit_code = process.wait(timeout=60)
            if exit_code != 0:
                raise RuntimeError(f"the platform exited with {exit_code}")


def measure_platform(
    addresses: dict[str, str], pid: int, *, with_positions: bool = True
) -> dict[str, dict[str, float]]:
    with (
        grpc.insecure_channel(addresses["order_management"]) as channel,
        grpc.insecure_channel(addresses["position_management"]) as position_channel,
    ):
        orders = orders_pb2_grpc.OrderServiceStub(authorized(channel, DEVELOPMENT_KEY))

        requests = iter([order_request() for _ in range(WARMUP + SEQUENTIAL_CALLS)])
        concurrent_requests = iter([order_request() for _ in range(CONCURRENT_CALLS)])

        def submit() -> None:
            order = orders.SubmitOrder(next(requests), timeout=10).order
            if order.status != types_pb2.ORDER_STATUS_SUBMITTED:
                raise RuntimeError(f"order not accepted: {order.status_message}")

        measured = {
            "submit_accepted_sequential": sequential(submit, SEQUENTIAL_CALLS),
            "submit_accepted_concurrent": concurrent(
                lambda: orders.SubmitOrder.future(next(concurrent_requests), timeout=60),
                CONCURRENT_CALLS,
                pid,
            ),
        }
        if with_positions:
            measured["submit_to_position_updated"] = submit_to_position(
                orders,
                positions_pb2_grpc.PositionServiceStub(
                    authorized(position_channel, DEVELOPMENT_KEY)
                ),
            )
        return measured


def submit_to_position(
    orders: orders_pb2_grpc.OrderServiceStub, positions: positions_pb2_grpc.PositionServiceStub
) -> dict[str, float]:
    """From SubmitOrder sent to the PositionUpdated event of its fill received."""
    account = "bench-positions"
    stream = positions.StreamPositionEvents(
        positions_pb2.StreamPositionEventsRequest(account_id=account), timeout=300
    )
    stream.initial_metadata()  # the server answers its headers once it has subscribed
    updates = iter(stream)
    samples = []
    requests = [order_request(account) for _ in range(POSITION_ROUNDS)]
    try:
        for request in requests:
            start = time.perf_counter()
            orders.SubmitOrder(request, timeout=10)
            next(updates)
            samples.append(time.perf_counter() - start)
    finally:
        stream.cancel()
    return percentiles(samples)


def one_round(number: int = 0) -> dict[str, Any]:
    echo = bench_echo()
    trading = bench_platform()
    # The front door with and without authentication (what checking every call's key costs),
    # one first in even rounds, the other in odd ones: whichever runs second gains or loses
    # from what the machine did just before.
    if number % 2:
        unauthenticated = bench_platform(FRONT_DOOR, authentication="none")
        front_door = bench_platform(FRONT_DOOR)
    else:
        front_door = bench_platform(FRONT_DOOR)
        unauthenticated = bench_platform(FRONT_DOOR, authentication="none")
    echo_seq, echo_conc = echo["sequential"], echo["concurrent"]
    accepted = trading["submit_accepted_sequential"]
    throughput = trading["submit_accepted_concurrent"]
    front_seq, front_conc = (
        front_door["submit_accepted_sequential"],
        front_door["submit_accepted_concurrent"],
    )
    return {
        "echo": echo,
        "platform": trading,
        "front_door": front_door,
        "front_door_unauthenticated": unauthenticated["submit_accepted_concurrent"],
        "ratios": {
            "submitted_p50_over_echo_p50": accepted["p50_us"] / echo_seq["p50_us"],
            "submitted_p99_over_echo_p99": accepted["p99_us"] / echo_seq["p99_us"],
            "throughput_over_echo": throughput["calls_per_s"] / echo_conc["calls_per_s"],
            "position_p50_over_echo_p50": trading["submit_to_position_updated"]["p50_us"]
            / echo_seq["p50_us"],
            "cpu_per_order_over_echo_call": throughput["server_cpu_us_per_call"]
            / echo_conc["server_cpu_us_per_call"],
            # The floor: order-management's durable answer with nothing routed behind it.
            "front_door_p50_over_echo_p50": front_seq["p50_us"] / echo_seq["p50_us"],
            "front_door_p99_over_echo_p99": front_seq["p99_us"] / echo_seq["p99_us"],
            "front_door_throughput_over_echo": front_conc["calls_per_s"] / echo_conc["calls_per_s"],
            "front_door_cpu_per_order_over_echo_call": front_conc["server_cpu_us_per_call"]
            / echo_conc["server_cpu_us_per_call"],
            # Authentication's cost: the front door's throughput with keys checked over without
            # (bar: >= 0.95), and its CPU per order with over without.
            "authenticated_throughput_over_unauthenticated": front_conc["calls_per_s"]
            / unauthenticated["submit_accepted_concurrent"]["calls_per_s"],
            "authenticated_cpu_over_unauthenticated": front_conc["server_cpu_us_per_call"]
            / unauthenticated["submit_accepted_concurrent"]["server_cpu_us_per_call"],
        },
    }


def _auth_share(check: dict[str, Any], rounds: list[dict[str, Any]]) -> dict[str, Any]:
    front_door_cpu = statistics.median(
        r["front_door"]["submit_accepted_concurrent"]["server_cpu_us_per_call"] for r in rounds
    )
    share = check["us_per_call_median"] / front_door_cpu
    return {**check, "share_of_front_door_cpu": round(share, 4)}


def _router_medians(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    def median(*path: str) -> float:
        values = []
        for measured in rounds:
            value: Any = measured
            for key in path:
                value = value[key]
            values.append(value)
        return float(round(statistics.median(values), 3))

    return {
        "rounds": rounds,
        "median_command_to_venue_p50_us": median("command_to_venue_us", "p50_us"),
        "median_command_to_venue_p99_us": median("command_to_venue_us", "p99_us"),
        "median_venue_call_p50_us": median("venue_call_us", "p50_us"),
        "median_command_to_venue_p50_over_venue_call_p50": median(
            "command_to_venue_p50_over_venue_call_p50"
        ),
        "median_reports_per_s": median("reports_per_s"),
        "median_cpu_us_per_order": median("cpu_us_per_order"),
    }


def main() -> None:
    rounds = [one_round(number) for number in range(ROUNDS)]
    medians = {
        name: round(statistics.median(r["ratios"][name] for r in rounds), 3)
        for name in rounds[0]["ratios"]
    }
    result = {
        "time": datetime.now(UTC).isoformat(),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "rounds": rounds,
        "median_ratios": medians,
        "median_platform_cpu_us_per_order": statistics.median(
            r["platform"]["submit_accepted_concurrent"]["server_cpu_us_per_call"] for r in rounds
        ),
        "median_echo_cpu_us_per_call": statistics.median(
            r["echo"]["concurrent"]["server_cpu_us_per_call"] for r in rounds
        ),
        # In process, no baseline needed: microseconds of one pre-trade risk check.
        "risk_check": risk_bench.measure(),
        # In process too: the API key check of one call (the interceptor), in microseconds, and
        # its share of the front door's CPU per order: what keys cost a CPU-bound server's
        # throughput, which the pair of front-door runs is too noisy to resolve.
        "auth_check": _auth_share(auth_bench.measure(), rounds),
        # The router with a network venue on loopback (Binance's fake behind CCXT), medians of
        # the rounds' figures; its baseline is the adapter's own call, measured in the same run.
        "router": _router_medians([router_bench.measure() for _ in range(ROUNDS)]),
        # The analytics queries over one million fills on DuckDB (bar: each under 5 s).
        "analytics": analytics_bench.measure(),
        # The warehouse feed under a minute of sustained SubmitOrder (bar: lag under 2 s,
        # nothing lost or duplicated).
        "warehouse_feed": feed_lag_bench.measure(),
        "bars": {
            "risk_check_p99_us": "<= 50",
            "submitted_p50_over_echo_p50": "<= 2.0",
            "throughput_over_echo": ">= 0.35",
            "submitted_p99_over_echo_p99": "<= 4.0",
            "authenticated_throughput_over_unauthenticated": ">= 0.95",
            "auth_check_share_of_front_door_cpu": "<= 0.05",
            "analytics_slowest_query_s": "< 5",
            "warehouse_feed_worst_lag_s": "< 2, nothing lost or duplicated",
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=2)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"{stamp}.json").write_text(text + "\n", encoding="utf-8")
    (RESULTS / "latest.json").write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
