"""Risk limits changed without a restart, over gRPC and with tradectl: the next order meets
them, GetRiskLimits shows them, bad requests are refused naming the field and change nothing,
and a change survives a SIGKILL of the process right after it was answered."""

from __future__ import annotations

import uuid
from pathlib import Path

import grpc
import pytest
from trading.v1 import control_pb2, types_pb2
from trading_core.runtime import Platform

from tests.crash.test_crash import embedded_process, processes_alive
from tests.e2e.conftest import Clients, wait_serving_at
from tests.e2e.test_cli import as_json, tradectl
from tests.e2e.test_trading_flow import ready_for_market_orders, submit

C = control_pb2
ACCOUNT = "acct-e2e"


def set_limits(clients: Clients, request_id: str = "", **fields: object) -> C.SetRiskLimitsResponse:
    request = C.SetRiskLimitsRequest(
        request_id=request_id or str(uuid.uuid4()),
        scope=C.RISK_SCOPE_ACCOUNT,
        name=ACCOUNT,
        limits=C.RiskLimitSet(max_order_quantity="0.005"),
        reason="testing a lower limit",
    )
    for name, value in fields.items():
        field = getattr(request, name)
        if isinstance(value, C.RiskLimitSet):
            field.CopyFrom(value)
        else:
            setattr(request, name, value)
    response: C.SetRiskLimitsResponse = clients.control.SetRiskLimits(request, timeout=10)
    return response


def get_limits(clients: Clients) -> C.GetRiskLimitsResponse:
    request = C.GetRiskLimitsRequest(account_id=ACCOUNT)
    response: C.GetRiskLimitsResponse = clients.control.GetRiskLimits(request, timeout=10)
    return response


def test_a_lowered_limit_applies_to_the_next_order_and_a_repeat_changes_nothing(
    embedded: tuple[Clients, Platform],
) -> None:
    clients, _ = embedded
    ready_for_market_orders(clients)
    assert submit(clients).status != types_pb2.ORDER_STATUS_DENIED  # 0.01 passes today

    request_id = str(uuid.uuid4())
    record = set_limits(clients, request_id).record
    assert (record.scope, record.name, record.version) == (C.RISK_SCOPE_ACCOUNT, ACCOUNT, 1)
    assert record.limits.max_order_quantity == "0.005"

    denied = submit(clients)
    assert denied.denial_reason == types_pb2.DENIAL_REASON_ORDER_QUANTITY_EXCEEDS_LIMIT
    assert set_limits(clients, request_id).record.version == 1  # a repeat: no second change
    shown = get_limits(clients)
    assert shown.account.max_order_quantity == "0.005"
    assert [c.reason for c in shown.changes] == ["testing a lower limit"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"limits": C.RiskLimitSet(max_order_quantity="-1")}, "limits.max_order_quantity"),
        ({"scope": C.RISK_SCOPE_UNSPECIFIED}, "scope"),
        ({"name": ""}, "name"),
        ({"reason": ""}, "reason"),
    ],
    ids=["negative", "no-scope", "no-name", "no-reason"],
)
def test_a_bad_change_is_refused_naming_the_field_and_changes_nothing(
    embedded: tuple[Clients, Platform], fields: dict[str, object], field: str
) -> None:
    clients, _ = embedded
    with pytest.raises(grpc.RpcError) as raised:
        set_limits(clients, "", **fields)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (raised.value.details() or "")
    assert not get_limits(clients).changes


def test_tradectl_sets_and_shows_the_limits(embedded: tuple[Clients, Platform]) -> None:
    clients, _ = embedded
    result = tradectl(
        clients,
        "risk",
        "set",
        "account",
        ACCOUNT,
        "--limit",
        "max_order_quantity=0.5",
        "--limit",
        "require_stop_loss=true",
        "--reason",
        "from the CLI",
        "-o",
        "json",
    )
    record = as_json(result)["record"]
    assert isinstance(record, dict)
    limits = record["limits"]
    assert isinstance(limits, dict)
    assert (limits["maxOrderQuantity"], limits["requireStopLoss"]) == ("0.5", True)
    assert limits["maxLeverage"] == ""  # not set
    shown = tradectl(clients, "risk", "show", "--account", ACCOUNT)
    assert shown.exit_code == 0, shown.output
    assert "max_order_quantity" in shown.stdout
    assert "from the CLI" in shown.stdout
    bad = tradectl(clients, "risk", "set", "accounts", "--limit", "nonsense=1", "--reason", "x")
    assert bad.exit_code == 2
    assert "nonsense=1" in bad.output


def test_a_change_survives_a_sigkill_right_after_it_was_answered(tmp_path: Path) -> None:
    process, addresses = embedded_process(tmp_path)
    process.start()
    clients = Clients(addresses)
    try:
        wait_serving_at(addresses, processes_alive({"platform": process}), 60)
        set_limits(clients)
        process.kill()
        process.start()
        wait_serving_at(addresses, processes_alive({"platform": process}), 60)
        assert get_limits(clients).account.max_order_quantity == "0.005"
        ready_for_market_orders(clients)
        denied = submit(clients)
        assert denied.denial_reason == types_pb2.DENIAL_REASON_ORDER_QUANTITY_EXCEEDS_LIMIT
    finally:
        clients.close()
        process.stop()
