"""Poison messages are parked, not retried for ever (review A8): an execution report that cannot
be applied is dead-lettered after `messaging.max_delivery_attempts`, the later reports of its
order go on, and an operator lists and replays it through the admin API or `tradectl`."""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import grpc
import pytest
from tradectl.cli import EXIT_REFUSED, app
from trading.v1 import admin_pb2, admin_pb2_grpc, events_pb2, orders_pb2, positions_pb2, types_pb2
from trading_core.journal import Transaction, now_us
from trading_core.runtime import Platform
from trading_core.service import JournaledService
from typer.testing import CliRunner, Result

from tests.e2e.conftest import (
    SERVICE_MODULES,
    Clients,
    embedded_overrides,
    start_embedded,
    write_config,
)
from tests.e2e.test_trading_flow import order_status, submit, wait_for_quote
from tests.support import wait_until

MAX_ATTEMPTS = 3
CONSUMERS = ("order-management", "position-management")
ACCOUNT = "acct-poison"
TIMEOUT = 20


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[tuple[Clients, Platform]]:
    overrides = embedded_overrides(tmp_path / "data")
    overrides["messaging"] = {"backend": "memory", "max_delivery_attempts": MAX_ATTEMPTS}
    started = start_embedded(write_config(tmp_path, overrides))
    clients = Clients({name: started.address(name) for name in SERVICE_MODULES})
    yield clients, started
    clients.close()
    started.stop()


def admin(clients: Clients, service: str) -> admin_pb2_grpc.AdminServiceStub:
    return admin_pb2_grpc.AdminServiceStub(clients.channel(service))


def tradectl(clients: Clients, *args: str) -> Result:
    addresses = [
        "--orders", clients.addresses["order-management"],
        "--positions", clients.addresses["position-management"],
        "--router", clients.addresses["execution-router"],
        "--market-data", clients.addresses["market-data"],
    ]  # fmt: skip
    return CliRunner().invoke(app, [*addresses, *args])


def resting_buy(clients: Clients, quantity: str = "0.01") -> orders_pb2.Order:
    """A limit buy far below the market: the venue holds it and never fills it by itself."""
    bid = Decimal(wait_for_quote(clients).bid_price)
    order = submit(
        clients,
        account_id=ACCOUNT,
        order_type=types_pb2.ORDER_TYPE_LIMIT,
        time_in_force=types_pb2.TIME_IN_FORCE_GTC,
        limit_price=str((bid / 2).quantize(Decimal("0.01"))),
        quantity=quantity,
    )
    return order_status(clients, order, types_pb2.ORDER_STATUS_ACCEPTED)  # the router's report 1


def fill(
    order: orders_pb2.Order, sequence: int, trade_id: str, quantity: str, price: str = "100"
) -> events_pb2.Event:
    """The router's execution report `sequence` of `order`: a partial fill."""
    event = events_pb2.Event(
        event_id=str(uuid.uuid4()),
        sequence=sequence,
        order_id=order.order_id,
        account_id=order.account_id,
        instrument=order.instrument,
        execution_report=events_pb2.ExecutionReport(
            execution_type=types_pb2.EXECUTION_TYPE_PARTIALLY_FILLED,
            order_id=order.order_id,
            venue="simulation",
            side=order.side,
            trade_id=trade_id,
            last_quantity=quantity,
            last_price=price,
            fee="0.01",
        ),
    )
    event.event_time.GetCurrentTime()
    return event


def publish(platform: Platform, event: events_pb2.Event) -> None:
    platform.bus.publish("executions", event.SerializeToString(), ordering_key=event.order_id)


def dead_letters(clients: Clients, service: str) -> list[admin_pb2.DeadLetter]:
    response = admin(clients, service).ListDeadLetters(
        admin_pb2.ListDeadLettersRequest(), timeout=5
    )
    return list(response.dead_letters)


def filled(clients: Clients, order: orders_pb2.Order, quantity: str) -> orders_pb2.Order | None:
    shown = clients.orders.GetOrder(
        orders_pb2.GetOrderRequest(order_id=order.order_id, account_id=order.account_id), timeout=5
    ).order
    return shown if Decimal(shown.filled_quantity or "0") == Decimal(quantity) else None


def held(clients: Clients, quantity: str) -> positions_pb2.Position | None:
    try:
        position = clients.positions.GetPosition(
            positions_pb2.GetPositionRequest(account_id=ACCOUNT, instrument="BTC-USD"), timeout=5
        ).position
    except grpc.RpcError:
        return None
    return position if Decimal(position.quantity) == Decimal(quantity) else None


def test_poison_report_is_dead_lettered_after_max_attempts_and_later_reports_of_its_order_apply(
    platform: tuple[Clients, Platform],
) -> None:
    clients, embedded = platform
    order = resting_buy(clients)
    poison = fill(order, 2, "trade-poison", "abc")
    publish(embedded, poison)
    publish(embedded, fill(order, 3, "trade-3", "0.004"))
    publish(embedded, fill(order, 4, "trade-4", "0.002"))

    # The later reports of the order were applied by both consumers, after the poison.
    shown = wait_until(lambda: filled(clients, order, "0.006"), TIMEOUT, "reports 3 and 4 applied")
    assert shown.status == types_pb2.ORDER_STATUS_PARTIALLY_FILLED
    wait_until(lambda: held(clients, "0.006"), TIMEOUT, "the position of trades 3 and 4")

    for service in CONSUMERS:
        [letter] = wait_until(
            functools.partial(dead_letters, clients, service), TIMEOUT, f"{service} to park it"
        )
        assert letter.subscription == f"executions.{service}"
        assert letter.ordering_key == order.order_id
        assert letter.attempts == MAX_ATTEMPTS
        assert "last_quantity" in letter.error and "abc" in letter.error
        assert letter.payload_size == len(poison.SerializeToString())
        assert letter.payload == b""  # only in the FULL view
        assert letter.create_time.seconds > 0

    # An operator sees it with tradectl, in a table and as JSON, the payload left out.
    table = tradectl(clients, "deadletter", "list", "--service", "position-management")
    assert table.exit_code == 0, table.output
    assert order.order_id in table.stdout and "executions" in table.stdout
    listed = tradectl(clients, "deadletter", "list", "--service", "order-management", "-o", "json")
    assert listed.exit_code == 0, listed.output
    [shown_letter] = json.loads(listed.stdout)
    assert shown_letter["orderingKey"] == order.order_id
    assert shown_letter["payloadSize"] == str(len(poison.SerializeToString()))
    assert shown_letter["payload"] == ""

    # Replayed, it still fails: FAILED_PRECONDITION with the error, and it stays parked.
    for service in CONSUMERS:
        [letter] = dead_letters(clients, service)
        with pytest.raises(grpc.RpcError) as refused:
            admin(clients, service).ReplayDeadLetter(
                admin_pb2.ReplayDeadLetterRequest(id=letter.id), timeout=5
            )
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert f"dead letter {letter.id} still fails" in (refused.value.details() or "")
        assert "abc" in (refused.value.details() or "")
        assert [d.id for d in dead_letters(clients, service)] == [letter.id]
    [letter] = dead_letters(clients, "position-management")
    replayed = tradectl(
        clients, "deadletter", "replay", str(letter.id), "--service", "position-management"
    )
    assert replayed.exit_code == EXIT_REFUSED
    assert "FAILED_PRECONDITION" in replayed.stderr and "stays parked" in replayed.stderr
    # Nothing of the poison was applied anywhere.
    assert filled(clients, order, "0.006") is not None
    assert held(clients, "0.006") is not None


def test_the_full_view_returns_the_payload_as_it_was_delivered(
    platform: tuple[Clients, Platform],
) -> None:
    clients, embedded = platform
    order = resting_buy(clients)
    poison = fill(order, 2, "trade-poison", "1_0")  # Python's Decimal takes it, the wire does not
    publish(embedded, poison)
    wait_until(lambda: dead_letters(clients, "position-management"), TIMEOUT, "a dead letter")
    full = admin(clients, "position-management").ListDeadLetters(
        admin_pb2.ListDeadLettersRequest(view=admin_pb2.DEAD_LETTER_VIEW_FULL), timeout=5
    )
    [letter] = full.dead_letters
    assert events_pb2.Event.FromString(letter.payload) == poison


def park(platform: Platform, service: str, event: events_pb2.Event) -> None:
    """Parks `event` in the service's dead-letter table, as a release that failed on it did."""
    hosted = platform.service(service)
    assert isinstance(hosted, JournaledService)
    transaction = Transaction()
    transaction.execute(
        "INSERT INTO dead_letters (subscription, message_id, ordering_key, attributes, data,"
        " error, attempts, time_us) VALUES (?, ?, ?, '{}', ?, ?, ?, ?)",
        (
            f"executions.{service}",
            "m-1",
            event.order_id,
            event.SerializeToString(),
            "ValueError('a bug since fixed')",
            MAX_ATTEMPTS,
            now_us(),
        ),
    )
    hosted.commit(transaction).wait()


def test_a_dead_letter_whose_cause_was_fixed_replays_applies_and_leaves_the_list(
    platform: tuple[Clients, Platform],
) -> None:
    clients, embedded = platform
    order = resting_buy(clients)
    # Report 1 (ACCEPTED) was applied, so order-management's count is past this report: the
    # count moved on when it was parked. A replay applies it all the same.
    parked = fill(order, 1, "trade-parked", "0.004")
    for service in CONSUMERS:
        park(embedded, service, parked)

    [letter] = dead_letters(clients, "order-management")
    answer = admin(clients, "order-management").ReplayDeadLetter(
        admin_pb2.ReplayDeadLetterRequest(id=letter.id), timeout=5
    )
    assert answer.dead_letter.id == letter.id
    assert answer.dead_letter.ordering_key == order.order_id
    shown = filled(clients, order, "0.004")
    assert shown is not None and shown.status == types_pb2.ORDER_STATUS_PARTIALLY_FILLED
    assert dead_letters(clients, "order-management") == []

    [letter] = dead_letters(clients, "position-management")
    replayed = tradectl(
        clients, "deadletter", "replay", str(letter.id), "--service", "position-management"
    )
    assert replayed.exit_code == 0, replayed.output
    assert f"Replayed dead letter {letter.id} of position-management" in replayed.stdout
    assert held(clients, "0.004") is not None
    assert dead_letters(clients, "position-management") == []

    # Gone once applied: a second replay finds nothing, and applies nothing twice.
    again = tradectl(
        clients, "deadletter", "replay", str(letter.id), "--service", "position-management"
    )
    assert again.exit_code == 1
    assert f"NOT_FOUND: position-management has no dead letter {letter.id}" in again.stderr
    assert held(clients, "0.004") is not None
    assert filled(clients, order, "0.004") is not None


@pytest.mark.parametrize("letter_id", [0, -7])
def test_replay_of_an_id_that_cannot_be_one_is_invalid_argument(
    platform: tuple[Clients, Platform], letter_id: int
) -> None:
    clients, _ = platform
    with pytest.raises(grpc.RpcError) as refused:
        admin(clients, "execution-router").ReplayDeadLetter(
            admin_pb2.ReplayDeadLetterRequest(id=letter_id), timeout=5
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "above 0" in (refused.value.details() or "")


def test_replay_of_an_unknown_id_is_not_found_on_every_service(
    platform: tuple[Clients, Platform],
) -> None:
    clients, _ = platform
    for service in SERVICE_MODULES:
        with pytest.raises(grpc.RpcError) as refused:
            admin(clients, service).ReplayDeadLetter(
                admin_pb2.ReplayDeadLetterRequest(id=424242), timeout=5
            )
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND
        assert refused.value.details() == f"{service} has no dead letter 424242"


def test_list_with_a_page_size_out_of_range_or_a_foreign_token_is_invalid_argument(
    platform: tuple[Clients, Platform],
) -> None:
    clients, _ = platform
    stub = admin(clients, "order-management")
    for request in (
        admin_pb2.ListDeadLettersRequest(page_size=1001),
        admin_pb2.ListDeadLettersRequest(page_token="not-a-token"),
    ):
        with pytest.raises(grpc.RpcError) as refused:
            stub.ListDeadLetters(request, timeout=5)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as refused:
        stub.ListUnresolved(admin_pb2.ListUnresolvedRequest(page_size=-1), timeout=5)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_dead_letters_are_listed_oldest_first_page_by_page(
    platform: tuple[Clients, Platform],
) -> None:
    clients, embedded = platform
    order = resting_buy(clients)
    for sequence in (2, 3, 4):
        publish(embedded, fill(order, sequence, f"trade-{sequence}", "abc"))
    wait_until(
        lambda: len(dead_letters(clients, "position-management")) == 3, TIMEOUT, "3 dead letters"
    )
    stub = admin(clients, "position-management")
    full = admin_pb2.DEAD_LETTER_VIEW_FULL
    first = stub.ListDeadLetters(
        admin_pb2.ListDeadLettersRequest(page_size=2, view=full), timeout=5
    )
    second = stub.ListDeadLetters(
        admin_pb2.ListDeadLettersRequest(page_size=2, page_token=first.next_page_token, view=full),
        timeout=5,
    )
    assert second.next_page_token == ""
    letters = [*first.dead_letters, *second.dead_letters]
    assert [events_pb2.Event.FromString(d.payload).sequence for d in letters] == [2, 3, 4]


def test_a_report_for_an_unknown_order_is_listed_as_unresolved_by_tradectl(
    platform: tuple[Clients, Platform],
) -> None:
    clients, embedded = platform
    shown = tradectl(clients, "unresolved", "list", "--service", "order-management")
    assert shown.exit_code == 0, shown.output
    assert "Nothing unresolved in order-management." in shown.stdout

    stray = orders_pb2.Order(
        order_id=str(uuid.uuid4()),
        account_id="acct-stray",
        instrument="BTC-USD",
        side=types_pb2.SIDE_BUY,
    )
    publish(embedded, fill(stray, 1, "trade-stray", "0.001"))

    def listed() -> list[admin_pb2.UnresolvedIssue]:
        answer = admin(clients, "order-management").ListUnresolved(
            admin_pb2.ListUnresolvedRequest(), timeout=5
        )
        return list(answer.issues)

    [issue] = wait_until(listed, TIMEOUT, "the stray report to be unresolved")
    assert (issue.kind, issue.subject) == ("execution-report", stray.order_id)
    assert issue.detail == "a report for an unknown order"
    table = tradectl(clients, "unresolved", "list", "--service", "order-management")
    assert table.exit_code == 0, table.output
    assert stray.order_id in table.stdout and "execution-report" in table.stdout
    as_json = tradectl(clients, "unresolved", "list", "--service", "order-management", "-o", "json")
    assert json.loads(as_json.stdout)[0]["subject"] == stray.order_id
    empty = tradectl(clients, "unresolved", "list", "--service", "market-data", "-o", "json")
    assert empty.exit_code == 0, empty.output
    assert json.loads(empty.stdout) == []
