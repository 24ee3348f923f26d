"""tradectl against a running embedded platform: what a person types, what they see."""

from __future__ import annotations

import json
import threading
from decimal import Decimal

from tradectl.cli import app
from trading_core.runtime import Platform
from typer.testing import CliRunner, Result

from tests.e2e.conftest import Clients, order_management
from tests.e2e.test_trading_flow import ready_for_market_orders, submit
from tests.support import wait_until


def tradectl(clients: Clients, *args: str) -> Result:
    addresses = [
        "--orders", clients.addresses["order-management"],
        "--positions", clients.addresses["position-management"],
        "--router", clients.addresses["execution-router"],
    ]  # fmt: skip
    return CliRunner().invoke(app, [*addresses, *args])


def as_json(result: Result) -> dict[str, object]:
    assert result.exit_code == 0, result.output
    parsed: dict[str, object] = json.loads(result.stdout)
    return parsed


def test_quote_shows_bid_and_ask_exactly(embedded: tuple[Clients, Platform]) -> None:
    clients, _ = embedded
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
    submitted = as_json(
        tradectl(clients, "--output", "json", "order", "submit", "BTC-USD", "buy", "0.25",
                 "--account", "acct-cli")
    )["order"]  # fmt: skip
    assert isinstance(submitted, dict)
    order_id = submitted["orderId"]

    def filled() -> bool:
        shown = as_json(
            tradectl(clients, "--output", "json", "order", "get", order_id, "--account", "acct-cli")
        )["order"]
        return isinstance(shown, dict) and shown["status"] == "ORDER_STATUS_FILLED"

    wait_until(filled, 20, "the order to fill")
    listed = tradectl(clients, "order", "list", "--account", "acct-cli")
    assert listed.exit_code == 0 and order_id in listed.stdout and "FILLED" in listed.stdout
    positions = tradectl(clients, "position", "list", "--account", "acct-cli")
    assert positions.exit_code == 0 and "0.25" in positions.stdout


def test_denied_order_shows_the_reason_code(embedded: tuple[Clients, Platform]) -> None:
    clients, _ = embedded
    result = tradectl(clients, "order", "submit", "BTC-USD", "buy", "0.00015")
    assert result.exit_code == 0
    assert "QUANTITY_NOT_ON_STEP" in result.output


def test_cancel_of_an_unknown_order_says_not_found_and_exits_1(
    embedded: tuple[Clients, Platform],
) -> None:
    clients, _ = embedded
    result = tradectl(clients, "order", "cancel", "no-such-order", "--account", "acct-cli")
    assert result.exit_code == 1
    assert "NOT_FOUND" in result.output


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
