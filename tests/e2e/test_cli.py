"""tradectl against a running embedded platform: what a person types, what they see, and the exit
codes scripts rely on (0 done, 1 gRPC error or lost stream, 2 usage, 3 refused, 4 --wait ran out).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from tradectl.cli import app
from trading.v1 import orders_pb2, types_pb2
from trading_core.runtime import Platform
from typer.testing import CliRunner, Result

from tests.e2e.conftest import (
    ROOT,
    SERVICE_MODULES,
    Clients,
    embedded_overrides,
    order_management,
    running_embedded,
    start_embedded,
    write_config,
)
from tests.e2e.test_trading_flow import (
    order_status,
    position_quantity,
    ready_for_market_orders,
    submit,
    wait_for_quote,
)
from tests.support import wait_until

UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")


def addresses(clients: Clients) -> list[str]:
    return [
        "--orders", clients.addresses["order-management"],
        "--positions", clients.addresses["position-management"],
        "--router", clients.addresses["execution-router"],
    ]  # fmt: skip


def tradectl(clients: Clients, *args: str, columns: int | None = None) -> Result:
    # No COLUMNS: output to a pipe, unfolded (whatever the test runner's environment has).
    env = {"COLUMNS": str(columns) if columns is not None else None}
    return CliRunner().invoke(app, [*addresses(clients), *args], env=env)


def as_json(result: Result) -> dict[str, object]:
    assert result.exit_code == 0, result.output
    parsed: dict[str, object] = json.loads(result.stdout)
    return parsed


def json_order(result: Result) -> dict[str, str]:
    order = json.loads(result.stdout)["order"]
    assert isinstance(order, dict)
    return order


def test_quote_shows_bid_and_ask_exactly(embedded: tuple[Clients, Platform]) -> None:
    clients, _ = embedded
    wait_for_quote(clients)
    quote = as_json(tradectl(clients, "--output", "json", "quote", "BTC-USD"))["quote"]
    assert isinstance(quote, dict)
    assert Decimal(quote["bidPrice"]) < Decimal(quote["askPrice"])
    table = tradectl(clients, "quote", "BTC-USD")
    assert table.exit_code == 0
    assert quote["instrument"] in table.stdout


def test_submitted_order_is_listed_filled_and_shows_in_positions(
    embedded: tuple[Clients, Platform],
) -> None:
    clients, _ = embedded
    ready_for_market_orders(clients)
    submitted = tradectl(
        clients, "order", "submit", "BTC-USD", "buy", "0.25", "--account", "acct-cli", "-o", "json"
    )
    assert submitted.exit_code == 0, submitted.output
    order_id = json_order(submitted)["orderId"]

    def filled() -> bool:
        shown = tradectl(clients, "order", "get", order_id, "--account", "acct-cli", "-o", "json")
        return json_order(shown)["status"] == "ORDER_STATUS_FILLED"

    wait_until(filled, 20, "the order to fill")
    listed = tradectl(clients, "order", "list", "--account", "acct-cli")
    assert listed.exit_code == 0 and order_id in listed.stdout and "FILLED" in listed.stdout
    positions = tradectl(clients, "position", "list", "--account", "acct-cli")
    assert positions.exit_code == 0 and "0.25" in positions.stdout


def test_submit_answers_submitted_once_the_platforms_checks_passed(
    embedded: tuple[Clients, Platform],
) -> None:
    clients, _ = embedded
    wait_for_quote(clients)
    result = tradectl(
        clients, "-o", "json", "order", "submit", "ETH-USD", "sell", "1.5", "--limit", "9999.5"
    )
    assert result.exit_code == 0, result.output
    order = json_order(result)
    assert order["status"] == "ORDER_STATUS_SUBMITTED"
    assert (order["quantity"], order["limitPrice"]) == ("1.5", "9999.5")


def test_decimals_are_printed_exactly_as_the_server_sent_them(
    embedded: tuple[Clients, Platform],
) -> None:
    clients, _ = embedded
    ready_for_market_orders(clients)
    order = submit(clients, account_id="acct-exact", quantity="0.0123")

    def filled() -> orders_pb2.Order | None:
        request = orders_pb2.GetOrderRequest(order_id=order.order_id, account_id="acct-exact")
        got = clients.orders.GetOrder(request, timeout=5).order
        return got if got.status == types_pb2.ORDER_STATUS_FILLED else None

    sent = wait_until(filled, 20, "the order to fill")
    shown = tradectl(clients, "order", "get", order.order_id, "--account", "acct-exact")
    assert shown.exit_code == 0, shown.output
    for label, value in (("Avg fill price", sent.average_fill_price), ("Fees", sent.fees)):
        assert re.search(rf"^{label}\s+{re.escape(value)}\s*$", shown.stdout, re.MULTILINE)
    listed = tradectl(clients, "order", "list", "--account", "acct-exact")
    assert sent.average_fill_price in listed.stdout
    as_json_order = json_order(
        tradectl(clients, "order", "get", order.order_id, "--account", "acct-exact", "-o", "json")
    )
    assert as_json_order["averageFillPrice"] == sent.average_fill_price
    assert as_json_order["fees"] == sent.fees


def test_submit_with_wait_prints_the_venues_answer_accepted_for_a_resting_order(
    embedded: tuple[Clients, Platform],
) -> None:
    clients, _ = embedded
    wait_for_quote(clients)
    result = tradectl(
        clients,
        "order",
        "submit",
        "ETH-USD",
        "sell",
        "1",
        "--limit",
        "9999",
        "--wait",
        "-o",
        "json",
    )
    assert result.exit_code == 0, result.output
    order = json_order(result)
    assert order["status"] == "ORDER_STATUS_ACCEPTED"
    assert order["venueOrderId"]


def test_submit_with_wait_of_a_market_order_prints_its_fill(
    embedded: tuple[Clients, Platform],
) -> None:
    clients, _ = embedded
    ready_for_market_orders(clients)
    result = tradectl(clients, "order", "submit", "BTC-USD", "buy", "0.01", "--wait")
    assert result.exit_code == 0, result.output
    status = re.search(r"^Status\s+(\S+)", result.stdout, re.MULTILINE)
    assert status is not None, result.stdout
    assert status.group(1) == "FILLED"


@pytest.fixture
def venue_holding_orders(tmp_path: Path) -> Iterator[Clients]:
    """An embedded platform whose paper venue receives an order only a minute after its submit."""
    overrides = embedded_overrides(tmp_path / "data")
    overrides["execution"] = {"simulation": {"fill_delay_ms": 60_000}}
    platform = start_embedded(write_config(tmp_path, overrides))
    clients = Clients({name: platform.address(name) for name in SERVICE_MODULES})
    yield clients
    clients.close()
    platform.stop()


def test_submit_with_wait_exits_4_when_the_venue_has_not_answered_in_time(
    venue_holding_orders: Clients,
) -> None:
    clients = venue_holding_orders
    wait_for_quote(clients)
    result = tradectl(
        clients, "--timeout", "0.5", "order", "submit", "BTC-USD", "buy", "0.01",
        "--limit", "1000", "--wait",
    )  # fmt: skip
    assert result.exit_code == 4, result.output
    assert re.search(r"^Status\s+SUBMITTED", result.stdout, re.MULTILINE)
    assert result.stderr.startswith("still SUBMITTED after 0.5s")
    assert result.stderr.count("\n") == 1


def test_denied_submit_prints_the_order_and_exits_3_with_the_reason_on_stderr(
    embedded: tuple[Clients, Platform],
) -> None:
    clients, _ = embedded
    result = tradectl(clients, "order", "submit", "BTC-USD", "buy", "0.00015")
    assert result.exit_code == 3
    assert re.search(r"^Status\s+DENIED", result.stdout, re.MULTILINE)
    assert "QUANTITY_NOT_ON_STEP" in result.stdout
    assert result.stderr.startswith("DENIED QUANTITY_NOT_ON_STEP: quantity 0.00015")
    as_json_too = tradectl(clients, "order", "submit", "BTC-USD", "buy", "0.00015", "-o", "json")
    assert as_json_too.exit_code == 3
    assert json_order(as_json_too)["denialReason"] == "DENIAL_REASON_QUANTITY_NOT_ON_STEP"
    assert as_json_too.stderr.startswith("DENIED QUANTITY_NOT_ON_STEP")


def test_cancel_of_an_unknown_order_says_not_found_and_exits_1(
    embedded: tuple[Clients, Platform],
) -> None:
    clients, _ = embedded
    result = tradectl(clients, "order", "cancel", "no-such-order", "--account", "acct-cli")
    assert result.exit_code == 1
    assert "NOT_FOUND" in result.output


def test_order_id_copied_from_an_80_column_list_cancels_the_order(
    embedded: tuple[Clients, Platform],
) -> None:
    clients, _ = embedded
    wait_for_quote(clients)
    for price in ("9999", "9998.50", "9997.25"):
        placed = tradectl(
            clients, "order", "submit", "ETH-USD", "sell", "1", "--limit", price,
            "--account", "acct-narrow", "--client-order-id", f"a-long-client-order-id-{price}",
        )  # fmt: skip
        assert placed.exit_code == 0, placed.output

    listed = tradectl(clients, "order", "list", "--account", "acct-narrow", columns=80)
    assert listed.exit_code == 0, listed.output
    assert "…" not in listed.stdout
    assert max(len(line) for line in listed.stdout.splitlines()) <= 80
    ids = UUID.findall(listed.stdout)
    assert len(ids) == 3
    expected = json.loads(tradectl(clients, "order", "list", "--account", "acct-narrow",
                                   "-o", "json").stdout)  # fmt: skip
    assert sorted(ids) == sorted(order["orderId"] for order in expected)

    canceled = tradectl(
        clients, "order", "cancel", ids[0], "--account", "acct-narrow", "--wait", "-o", "json"
    )
    assert canceled.exit_code == 0, canceled.output
    assert json_order(canceled)["status"] == "ORDER_STATUS_CANCELED"


def test_cancel_with_wait_of_a_filled_order_is_refused_by_the_server(
    embedded: tuple[Clients, Platform],
) -> None:
    clients, _ = embedded
    ready_for_market_orders(clients)
    filled = tradectl(clients, "-o", "json", "order", "submit", "BTC-USD", "buy", "0.01", "--wait")
    order = json_order(filled)
    wait_until(
        lambda: (
            json_order(tradectl(clients, "-o", "json", "order", "get", order["orderId"]))["status"]
            == "ORDER_STATUS_FILLED"
        ),
        20,
        "the market order to fill",
    )
    result = tradectl(clients, "order", "cancel", order["orderId"], "--wait")
    assert result.exit_code == 1
    assert result.stderr.startswith("FAILED_PRECONDITION")


def test_output_json_is_accepted_before_and_after_the_command_alike(
    embedded: tuple[Clients, Platform],
) -> None:
    clients, _ = embedded
    resting = submit(
        clients, account_id="acct-json", order_type=types_pb2.ORDER_TYPE_LIMIT, limit_price="1000"
    )
    order_status(clients, resting, types_pb2.ORDER_STATUS_ACCEPTED)  # settled: lists agree
    before = tradectl(clients, "--output", "json", "order", "list", "--account", "acct-json")
    after = tradectl(clients, "order", "list", "--account", "acct-json", "--output", "json")
    short = tradectl(clients, "order", "list", "-o", "JSON", "--account", "acct-json")
    assert before.exit_code == after.exit_code == short.exit_code == 0
    assert json.loads(before.stdout) == json.loads(after.stdout) == json.loads(short.stdout)
    [order] = json.loads(after.stdout)
    assert order["accountId"] == "acct-json"


def test_empty_lists_print_an_empty_json_array_or_a_line_saying_so(
    embedded: tuple[Clients, Platform],
) -> None:
    clients, _ = embedded
    for command in (("order", "list"), ("position", "list")):
        as_array = tradectl(clients, *command, "--account", "nobody", "-o", "json")
        assert as_array.exit_code == 0
        assert json.loads(as_array.stdout) == []
    orders = tradectl(clients, "order", "list", "--account", "nobody")
    assert orders.stdout == "No orders for account nobody.\n"
    positions = tradectl(clients, "position", "list", "--account", "nobody")
    assert positions.stdout == "No positions for account nobody.\n"


def test_watch_prints_each_event_of_an_order_as_it_happens(
    embedded: tuple[Clients, Platform],
) -> None:
    clients, platform = embedded
    oms = order_management(platform)
    ready_for_market_orders(clients)
    watched: list[Result] = []
    watcher = threading.Thread(
        target=lambda: watched.append(
            tradectl(clients, "--output", "json", "order", "watch", "--account", "acct-watch",
                     "--count", "3")
        )
    )  # fmt: skip
    watcher.start()
    wait_until(lambda: oms.updates.has_subscribers, 10, "the watch to subscribe")
    # Through gRPC, not a second CliRunner: each swaps the process-wide sys.stdout, so the
    # watch's lines printed while a concurrent CLI call runs would land in that call's output.
    submit(clients, account_id="acct-watch")
    watcher.join(timeout=20)
    assert not watcher.is_alive(), "watch did not stop after --count events"
    [result] = watched
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["eventType"] for e in events] == [
        "OrderSubmitted",
        "ExecutionReport",
        "ExecutionReport",
    ]
    assert events[-1]["order"]["status"] == "ORDER_STATUS_FILLED"


def test_watch_of_one_order_without_its_account_is_a_usage_error(
    embedded: tuple[Clients, Platform],
) -> None:
    clients, _ = embedded
    result = tradectl(clients, "order", "watch", "--order", "some-order")
    assert result.exit_code == 2
    assert "--order needs --account" in result.output


def start_watch(clients: Clients, stderr: Path) -> subprocess.Popen[bytes]:
    """`tradectl order watch` as its own process, once it says it is watching."""
    with stderr.open("wb") as errors:
        process = subprocess.Popen(
            [sys.executable, "-m", "tradectl", *addresses(clients), "order", "watch"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )

    def watching() -> bool:
        assert process.poll() is None, stderr.read_text()
        return "Watching order events" in stderr.read_text()

    wait_until(watching, 30, "the watch to subscribe")
    return process


def test_watch_exits_1_with_a_red_line_when_the_server_stops(
    embedded: tuple[Clients, Platform], tmp_path: Path
) -> None:
    clients, platform = embedded
    stderr = tmp_path / "watch.err"
    process = start_watch(clients, stderr)
    platform.stop()
    assert process.wait(timeout=30) == 1
    last = stderr.read_text().splitlines()[-1]
    assert "order-management at" in last
    assert "no more events" in last


def test_watch_stopped_with_ctrl_c_exits_0(
    embedded: tuple[Clients, Platform], tmp_path: Path
) -> None:
    clients, _ = embedded
    stderr = tmp_path / "watch.err"
    process = start_watch(clients, stderr)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0
    assert "Traceback" not in stderr.read_text()


def test_cli_modules_import_nothing_of_the_server_side() -> None:
    code = "import sys, tradectl.cli; print(sorted({m.split('.')[0] for m in sys.modules}))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    for server_side in ("trading_core", *SERVICE_MODULES.values(), "duckdb", "pyarrow"):
        assert f"'{server_side}'" not in loaded
    assert "'google'" in loaded  # protobuf, but not google.cloud:
    assert "google.cloud" not in subprocess.run(
        [sys.executable, "-c", "import sys, tradectl.cli; print(list(sys.modules))"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip


def uv() -> str:
    found = os.environ.get("UV") or shutil.which("uv")
    assert found, "uv is needed to install tradectl on its own (make setup installs it)"
    return found


def test_tradectl_installed_alone_has_no_server_stack_and_serve_says_how_to_get_it(
    tmp_path: Path,
) -> None:
    environment = tmp_path / "venv"
    subprocess.run(
        [uv(), "sync", "--frozen", "--offline", "--package", "tradectl", "--no-dev", "--quiet"],
        cwd=ROOT,
        env={**os.environ, "UV_PROJECT_ENVIRONMENT": str(environment)},
        check=True,
    )
    python = environment / "bin" / "python"
    installed = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; "
         "print(sorted(d.metadata['Name'].lower() for d in m.distributions()))"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "'tradectl'" in installed
    for server_side in ("trading-core", *SERVICE_MODULES, "duckdb", "pyarrow"):
        assert f"'{server_side}'" not in installed
    assert "google-cloud-pubsub" not in installed

    serve = subprocess.run(
        [str(environment / "bin" / "tradectl"), "serve"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert serve.returncode == 2
    assert serve.stdout == ""
    assert serve.stderr.count("\n") == 1
    assert "tradectl[server]" in serve.stderr

    usage = subprocess.run(
        [str(environment / "bin" / "tradectl"), "order", "watch", "--order", "x"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert usage.returncode == 2  # the client commands work without the server stack

    report = subprocess.run(
        [str(environment / "bin" / "tradectl"), "report"], capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert report.returncode == 2 and "tradectl[analytics]" in report.stderr


def test_an_operator_halts_the_platform_stops_an_account_with_flatten_and_resumes(
    embedded: tuple[Clients, Platform],
) -> None:
    clients, _ = embedded
    ready_for_market_orders(clients)
    filled = submit(clients, account_id="acct-ops", quantity="0.02")
    order_status(clients, filled, types_pb2.ORDER_STATUS_FILLED)

    halted = tradectl(clients, "trading", "set", "halted", "--reason", "desk review")
    assert halted.exit_code == 0, halted.output
    assert "platform" in halted.stdout and "HALTED" in halted.stdout
    denied = tradectl(clients, "order", "submit", "BTC-USD", "buy", "0.01", "--account", "a")
    assert denied.exit_code == 3
    assert "TRADING_HALTED" in denied.stderr

    stop = tradectl(
        clients, "trading", "stop", "--account", "acct-ops", "--flatten", "--reason", "limit"
    )
    assert stop.exit_code == 0, stop.output
    assert "Closing the positions of: acct-ops." in stop.stdout
    position_quantity(clients, "acct-ops", "0")
    listed = tradectl(clients, "-o", "json", "position", "list", "--account", "acct-ops")
    assert [p["quantity"] for p in json.loads(listed.stdout)] == ["0"]

    shown = tradectl(clients, "trading", "show", "--account", "acct-ops")
    assert shown.exit_code == 0, shown.output
    assert "account acct-ops" in shown.stdout and "limit" in shown.stdout
    assert "Orders of this account meet: HALTED" in shown.stdout

    # The platform resumes (its checks pass); the account stays halted by its own state.
    assert tradectl(clients, "trading", "set", "active", "--reason", "ok").exit_code == 0
    still = tradectl(clients, "trading", "show", "--account", "acct-ops")
    assert "Orders of this account meet: HALTED" in still.stdout
    unknown = tradectl(clients, "trading", "set", "paused", "--reason", "x")
    assert unknown.exit_code == 2
    assert "trading state must be one of" in unknown.output


def test_a_resume_while_an_order_waits_for_the_venue_exits_3_naming_the_check(
    tmp_path: Path,
) -> None:
    overrides = embedded_overrides(tmp_path / "data")
    overrides["execution"] = {"simulation": {"fill_delay_ms": 60_000}}  # the venue is slow
    overrides["reconciliation"] = {"order_age_ms": 0}  # so an order is overdue at once
    with running_embedded(write_config(tmp_path, overrides)) as clients:
        wait_for_quote(clients)
        held = submit(
            clients,
            account_id="acct-held",
            order_type=types_pb2.ORDER_TYPE_LIMIT,
            limit_price="1000",
        )
        assert held.status == types_pb2.ORDER_STATUS_SUBMITTED
        halt = tradectl(
            clients, "trading", "set", "halted", "--account", "acct-held", "--reason", "x"
        )
        assert halt.exit_code == 0, halt.output
        refused = tradectl(
            clients, "trading", "set", "active", "--account", "acct-held", "--reason", "resume"
        )
        assert refused.exit_code == 3, refused.output
        assert refused.stderr.startswith(
            "FAILED_PRECONDITION: cannot move account acct-held to ACTIVE: order "
            f"{held.order_id} has waited"
        )
        shown = tradectl(clients, "-o", "json", "trading", "show", "--account", "acct-held")
        assert json.loads(shown.stdout)["effectiveState"] == "TRADING_STATE_HALTED"


def test_a_bracket_from_the_cli_shows_its_held_exits_and_the_portfolio_its_holding(
    embedded: tuple[Clients, Platform],
) -> None:
    clients, _ = embedded
    ready_for_market_orders(clients)
    bracket = tradectl(
        clients,
        "order",
        "submit",
        "BTC-USD",
        "buy",
        "0.01",
        "--account",
        "acct-cli-bracket",
        "--limit",
        "1000",
        "--take-profit",
        "1100",
        "--stop-loss",
        "900",
        columns=200,
    )
    assert bracket.exit_code == 0, bracket.output
    assert "BRACKET (entry)" in bracket.stdout
    assert bracket.stdout.count("HELD") == 2
    assert "BRACKET (take-profit)" in bracket.stdout and "BRACKET (stop-loss)" in bracket.stdout

    tradectl(clients, "order", "submit", "BTC-USD", "buy", "0.02", "--account", "acct-cli-pf")
    position_quantity(clients, "acct-cli-pf", "0.02")
    shown = tradectl(clients, "portfolio", "show", "acct-cli-pf", columns=120)
    assert shown.exit_code == 0, shown.output
    assert "Equity" in shown.stdout and "Holdings" in shown.stdout
    assert "BTC-USD" in shown.stdout and "0.02" in shown.stdout
    as_data = as_json(tradectl(clients, "-o", "json", "portfolio", "show", "acct-cli-pf"))
    portfolio = as_data["portfolio"]
    assert isinstance(portfolio, dict) and portfolio["startingCash"] == "100000"


def test_a_signal_with_exits_from_the_cli_is_a_bracket_and_a_signed_distance_a_usage_error(
    embedded: tuple[Clients, Platform],
) -> None:
    clients, _ = embedded
    ready_for_market_orders(clients)
    account = ("--account", "acct-cli-signal")
    bracket = tradectl(
        clients,
        "order",
        "signal",
        "BTC-USD",
        "buy",
        *account,
        "--confidence",
        "0.5",
        "--take-profit",
        "+1%",
        "--stop-loss",
        "+600",
        columns=200,
    )
    assert bracket.exit_code == 0, bracket.output
    assert "BRACKET (entry)" in bracket.stdout
    assert bracket.stdout.count("HELD") == 2
    assert "BRACKET (take-profit)" in bracket.stdout and "BRACKET (stop-loss)" in bracket.stdout

    as_data = as_json(
        tradectl(
            clients, "-o", "json", "order", "signal", "BTC-USD", "sell", *account,
            "--limit", "90000", "--stop-loss", "90500",
        )
    )  # fmt: skip
    order, legs = as_data["order"], as_data["legs"]
    assert isinstance(order, dict) and isinstance(legs, list)
    assert order["orderClass"] == "ORDER_CLASS_OTO"
    assert [leg["role"] for leg in legs] == ["ORDER_ROLE_STOP_LOSS"]
    assert legs[0]["triggerPrice"] == "90500"

    signed = tradectl(clients, "order", "signal", "BTC-USD", "buy", *account, "--stop-loss", "-2")
    assert signed.exit_code == 2
    assert "write a distance with +, such as +2" in signed.output


def test_venue_list_shows_the_paper_venue_available_with_its_circuit_closed(
    embedded: tuple[Clients, Platform],
) -> None:
    clients, _ = embedded
    listed = tradectl(clients, "venue", "list")
    assert listed.exit_code == 0, listed.output
    row = next(line for line in listed.stdout.splitlines() if line.startswith("simulation"))
    assert row.split()[:5] == ["simulation", "simulation", "yes", "yes", "CLOSED"]

    [venue] = json.loads(tradectl(clients, "venue", "list", "-o", "json").stdout)
    assert (venue["venue"], venue["available"]) == ("simulation", True)
    assert venue["circuitState"] == "CIRCUIT_STATE_CLOSED"
    shown = tradectl(clients, "venue", "status", "simulation")
    assert shown.exit_code == 0, shown.output
    assert re.search(r"^Circuit\s+CLOSED\s*$", shown.stdout, re.MULTILINE)
    assert re.search(r"^Reports\s+pushed\s*$", shown.stdout, re.MULTILINE)
    assert venue["reportChannel"] == "REPORT_CHANNEL_PUSHED"


def test_venue_status_of_an_unknown_venue_exits_1_naming_the_configured_ones(
    embedded: tuple[Clients, Platform],
) -> None:
    clients, _ = embedded
    result = tradectl(clients, "venue", "status", "nasdaq")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == "NOT_FOUND: no venue 'nasdaq'; configured: simulation\n"


def test_a_twap_from_the_cli_fills_and_its_two_children_are_listed(
    embedded: tuple[Clients, Platform],
) -> None:
    clients, _ = embedded
    ready_for_market_orders(clients)
    account = ("--account", "acct-cli-twap")
    submitted = tradectl(
        clients, "order", "submit", "BTC-USD", "buy", "0.02", *account,
        "--algo", "twap", "--horizon", "2s", "--slices", "2", "--wait", "-o", "json",
    )  # fmt: skip
    assert submitted.exit_code == 0, submitted.output
    order = json_order(submitted)
    execution = json.loads(submitted.stdout)["order"]["execution"]
    assert execution == {
        "algorithm": "EXECUTION_ALGORITHM_TWAP",
        "horizon": "2s",
        "sliceCount": 2,
        "maxChildQuantity": "",
        "participationRate": "",
        "smartRouting": False,
    }

    def filled() -> bool:
        shown = tradectl(clients, "-o", "json", "order", "get", order["orderId"], *account)
        return json_order(shown)["status"] == "ORDER_STATUS_FILLED"

    wait_until(filled, 20, "the TWAP to fill")
    shown = tradectl(clients, "order", "get", order["orderId"], *account)
    assert re.search(r"^Execution\s+TWAP over 0:00:02, 2 slices\s*$", shown.stdout, re.MULTILINE)
    children = tradectl(clients, "order", "children", order["orderId"], *account)
    assert children.exit_code == 0, children.output
    assert re.search(r"^Algorithm\s+TWAP\s*$", children.stdout, re.MULTILINE)
    assert re.search(r"^Filled\s+0\.02\s*$", children.stdout, re.MULTILINE)
    as_data = as_json(
        tradectl(clients, "order", "children", order["orderId"], *account, "-o", "json")
    )
    listed = as_data["childOrders"]
    assert isinstance(listed, list) and [c["slice"] for c in listed] == [0, 1]
    for child in listed:  # each child whole in the table, with its venue's last word on it
        assert re.search(rf"^{child['childOrderId']}\s+\d\s+simulation\s+", children.stdout, re.M)
    assert children.stdout.count("FILLED") == 2

    unknown = tradectl(clients, "order", "children", "no-such-order")
    assert unknown.exit_code == 1
    assert unknown.stderr.startswith("NOT_FOUND: account default has no order 'no-such-order'")
    # Another account's order is not found either: the router does not say it exists.
    elsewhere = tradectl(clients, "order", "children", order["orderId"], "--account", "other")
    assert elsewhere.exit_code == 1 and elsewhere.stderr.startswith("NOT_FOUND: account other")


@pytest.mark.parametrize("horizon", ["5 minutes", "2d", "25h", "0s", "1.5s", "-5m"])
def test_a_bad_horizon_is_a_usage_error_naming_the_option(
    embedded: tuple[Clients, Platform], horizon: str
) -> None:
    clients, _ = embedded
    result = tradectl(
        clients, "order", "submit", "BTC-USD", "buy", "0.02", "--algo", "twap",
        "--horizon", horizon,
    )  # fmt: skip
    assert result.exit_code == 2
    assert "--horizon" in result.output
    assert horizon in result.output


def test_execution_options_the_server_refuses_exit_1_with_its_message(
    embedded: tuple[Clients, Platform],
) -> None:
    clients, _ = embedded
    result = tradectl(clients, "order", "submit", "BTC-USD", "buy", "0.02", "--slices", "4")
    assert result.exit_code == 1
    assert result.stderr.startswith("INVALID_ARGUMENT: execution: horizon, slice_count")
