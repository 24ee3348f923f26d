"""Authentication and authorization on the embedded platform, over real gRPC: a call without a
key, with a malformed header or an unknown key is UNAUTHENTICATED; a key acts only on its
accounts and within its roles (PERMISSION_DENIED otherwise); a refused call changes nothing;
health and reflection answer anyone; operator actions name the key that made them; no key or
hash ever reaches a log line; tradectl presents its key and says what to do when refused."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from tradectl.cli import app
from tradectl.credentials import new_key
from trading.v1 import control_pb2, events_pb2, orders_pb2, positions_pb2, types_pb2
from trading_core.auth import key_sha256
from trading_core.config import DEVELOPMENT_KEY, DEVELOPMENT_KEY_SHA256
from trading_core.runtime import Platform
from typer.testing import CliRunner

from tests.e2e.conftest import (
    SERVICE_MODULES,
    Clients,
    embedded_overrides,
    start_embedded,
    write_config,
)
from tests.e2e.test_trading_flow import TIMEOUT, order_status, ready_for_market_orders, submit

TRADER_A, _ = new_key()
READER_A, _ = new_key()
OPERATOR, _ = new_key()
UNKNOWN, _ = new_key()


def key_entry(key_id: str, key: str, accounts: list[str], roles: list[str]) -> dict[str, object]:
    return {"id": key_id, "sha256": key_sha256(key), "accounts": accounts, "roles": roles}


KEYS = [
    {
        "id": "development",
        "sha256": DEVELOPMENT_KEY_SHA256,
        "accounts": ["*"],
        "roles": ["trader", "operator", "service"],
    },
    key_entry("trader-a", TRADER_A, ["acct-a"], ["trader"]),
    key_entry("reader-a", READER_A, ["acct-a"], ["reader"]),
    key_entry("ops", OPERATOR, ["*"], ["operator"]),
]
SECRETS = [TRADER_A, READER_A, OPERATOR, UNKNOWN, DEVELOPMENT_KEY]


@dataclasses.dataclass
class Secured:
    clients: Clients  # the development key: every account, every role
    logs: list[str]
    platform: Platform

    def events(self, record_type: str, service: str = "order-management") -> list[events_pb2.Event]:
        """A service's journaled events of one type, oldest first."""
        rows = self.platform.service(service).journal.query(
            "SELECT payload FROM journal WHERE record_type = ? ORDER BY seq", (record_type,)
        )
        return [events_pb2.Event.FromString(payload) for (payload,) in rows]

    def as_key(self, key: str | None) -> Clients:
        return Clients(self.clients.addresses, key=key)


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    directory = tmp_path_factory.mktemp("secured")
    overrides = embedded_overrides(directory / "data")
    overrides["security"] = {"api_keys": KEYS}
    overrides["logging"] = {"level": "DEBUG", "json": True}
    handler = _Lines()
    logging.getLogger().addHandler(handler)
    platform = start_embedded(write_config(directory, overrides))
    clients = Clients({name: platform.address(name) for name in SERVICE_MODULES})
    ready_for_market_orders(clients)
    try:
        yield Secured(clients, handler.lines, platform)
    finally:
        clients.close()
        platform.stop()
        logging.getLogger().removeHandler(handler)


def order_count(secured: Secured, account: str) -> int:
    request = orders_pb2.ListOrdersRequest(account_id=account, page_size=1000)
    return len(secured.clients.orders.ListOrders(request, timeout=TIMEOUT).orders)


def refusal(call: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as refused:
        call()  # type: ignore[operator]
    return refused.value


@pytest.mark.parametrize(
    ("metadata", "says"),
    [
        ((), "no API key"),
        ((("authorization", f"Bearer {UNKNOWN}"),), "unknown API key"),
        ((("authorization", f"Basic {TRADER_A}"),), "malformed authorization"),
        ((("authorization", "Bearer "),), "malformed authorization"),
    ],
)
def test_a_call_without_a_known_key_is_unauthenticated_and_changes_nothing(
    secured: Secured, metadata: tuple[tuple[str, str], ...], says: str
) -> None:
    before = order_count(secured, "acct-a")
    anonymous = secured.as_key(None).orders
    request = orders_pb2.SubmitOrderRequest(
        request_id=str(uuid.uuid4()),
        client_order_id=str(uuid.uuid4()),
        account_id="acct-a",
        instrument="BTC-USD",
        side=types_pb2.SIDE_BUY,
        order_type=types_pb2.ORDER_TYPE_MARKET,
        quantity="0.01",
    )
    error = refusal(lambda: anonymous.SubmitOrder(request, timeout=TIMEOUT, metadata=metadata))
    assert error.code() is grpc.StatusCode.UNAUTHENTICATED
    assert says in (error.details() or "")
    assert UNKNOWN not in (error.details() or "")
    assert order_count(secured, "acct-a") == before


def test_a_trader_trades_and_reads_its_own_account(secured: Secured) -> None:
    trader = secured.as_key(TRADER_A)
    order = submit(trader, account_id="acct-a")
    assert order.status == types_pb2.ORDER_STATUS_SUBMITTED
    request = orders_pb2.GetOrderRequest(order_id=order.order_id, account_id="acct-a")
    assert trader.orders.GetOrder(request, timeout=TIMEOUT).order.order_id == order.order_id
    positions = positions_pb2.ListPositionsRequest(account_id="acct-a")
    trader.positions.ListPositions(positions, timeout=TIMEOUT)


def test_a_key_cannot_trade_or_read_another_account_and_nothing_changes(secured: Secured) -> None:
    other = submit(secured.clients, account_id="acct-b")
    before = order_count(secured, "acct-b")
    trader = secured.as_key(TRADER_A)

    submitted = refusal(lambda: submit(trader, account_id="acct-b"))
    assert submitted.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "does not hold account acct-b" in (submitted.details() or "")
    get = orders_pb2.GetOrderRequest(order_id=other.order_id, account_id="acct-b")
    read = refusal(lambda: trader.orders.GetOrder(get, timeout=TIMEOUT))
    assert read.code() is grpc.StatusCode.PERMISSION_DENIED
    cancel = orders_pb2.CancelOrderRequest(
        request_id=str(uuid.uuid4()), order_id=other.order_id, account_id="acct-b"
    )
    canceled = refusal(lambda: trader.orders.CancelOrder(cancel, timeout=TIMEOUT))
    assert canceled.code() is grpc.StatusCode.PERMISSION_DENIED
    everyone = orders_pb2.ListOrdersRequest()  # no account: every account's orders
    listed = refusal(lambda: trader.orders.ListOrders(everyone, timeout=TIMEOUT))
    assert listed.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "name one of them" in (listed.details() or "")
    assert order_count(secured, "acct-b") == before


def test_a_reader_reads_but_cannot_trade(secured: Secured) -> None:
    reader = secured.as_key(READER_A)
    reader.orders.ListOrders(orders_pb2.ListOrdersRequest(account_id="acct-a"), timeout=TIMEOUT)
    denied = refusal(lambda: submit(reader, account_id="acct-a"))
    assert denied.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "needs the trader role" in (denied.details() or "")


def set_state(
    account: str, state: types_pb2.TradingState.ValueType, reason: str
) -> control_pb2.SetTradingStateRequest:
    return control_pb2.SetTradingStateRequest(
        request_id=str(uuid.uuid4()), account_id=account, state=state, reason=reason
    )


def test_an_operator_action_by_a_trader_is_denied_and_the_state_stays(secured: Secured) -> None:
    trader = secured.as_key(TRADER_A)
    halt = set_state("acct-a", types_pb2.TRADING_STATE_HALTED, "not mine to halt")
    denied = refusal(lambda: trader.control.SetTradingState(halt, timeout=TIMEOUT))
    assert denied.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "needs the operator role" in (denied.details() or "")
    state = secured.clients.control.GetTradingState(
        control_pb2.GetTradingStateRequest(account_id="acct-a"), timeout=TIMEOUT
    )
    assert all(r.state != types_pb2.TRADING_STATE_HALTED for r in state.accounts)


def test_an_operator_sets_trading_state_for_any_account(secured: Secured) -> None:
    operator = secured.as_key(OPERATOR)
    reducing = set_state("acct-ops", types_pb2.TRADING_STATE_REDUCING, "incident 42")
    record = operator.control.SetTradingState(reducing, timeout=TIMEOUT).trading_state
    assert record.state == types_pb2.TRADING_STATE_REDUCING
    # The audit trail: the event of the change names the key that made it.
    (changed,) = [e for e in secured.events("TradingStateChanged") if e.account_id == "acct-ops"]
    assert changed.actor == "ops"


def test_each_event_a_call_causes_names_the_key_that_made_it(secured: Secured) -> None:
    order = submit(secured.as_key(TRADER_A), account_id="acct-a")
    submitted = [e for e in secured.events("OrderSubmitted") if e.order_id == order.order_id]
    assert [e.actor for e in submitted] == ["trader-a"]
    # The router reports the venue's fill from a command it took off the bus, not a call: no key.
    order_status(secured.clients, order, types_pb2.ORDER_STATUS_FILLED)
    reports = [
        e
        for e in secured.events("ExecutionReport", "execution-router")
        if e.order_id == order.order_id
    ]
    assert reports and all(e.actor == "" for e in reports)


def test_health_and_reflection_answer_without_a_key(secured: Secured) -> None:
    for address in secured.clients.addresses.values():
        with grpc.insecure_channel(address) as channel:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=TIMEOUT
            )
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
            reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
            ask = reflection_pb2.ServerReflectionRequest(list_services="")
            [listed] = list(reflection.ServerReflectionInfo(iter([ask]), timeout=TIMEOUT))
            assert listed.list_services_response.service  # the API, to anyone


def test_tradectl_presents_its_key_and_says_what_to_do_when_refused(secured: Secured) -> None:
    addresses = secured.clients.addresses
    common = ["--orders", addresses["order-management"]]
    runner = CliRunner()
    refused = runner.invoke(
        app, [*common, "order", "list", "--account", "acct-a"], env={"TRADECTL_API_KEY": UNKNOWN}
    )
    assert refused.exit_code == 1
    assert "UNAUTHENTICATED" in refused.stderr and "TRADECTL_API_KEY" in refused.stderr
    assert UNKNOWN not in refused.output
    listed = runner.invoke(
        app, [*common, "order", "list", "--account", "acct-a"], env={"TRADECTL_API_KEY": TRADER_A}
    )
    assert listed.exit_code == 0, listed.output


def test_no_key_nor_its_hash_reaches_a_log_line(secured: Secured) -> None:
    unknown = secured.as_key(UNKNOWN).orders
    everyone = orders_pb2.ListOrdersRequest()
    refusal(lambda: unknown.ListOrders(everyone, timeout=TIMEOUT))
    refusal(lambda: secured.as_key(TRADER_A).orders.ListOrders(everyone, timeout=TIMEOUT))
    submit(secured.as_key(TRADER_A), account_id="acct-a")
    assert any("refused" in line for line in secured.logs), "the refusal was logged"
    assert any("denied" in line and "trader-a" in line for line in secured.logs)
    leaked = [
        line
        for line in secured.logs
        for secret in SECRETS
        if secret in line or key_sha256(secret) in line
    ]
    assert leaked == []
