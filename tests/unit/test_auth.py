"""The rules of trading_core.auth: every RPC the platform serves has one; roles and accounts
decide; the development key and unauthenticated access stay in environment local; the services'
own key comes from the environment and is needed once they run apart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf.message_factory import GetMessageClass
from order_management.service import OrderManagement
from tradectl import credentials
from tradectl.credentials import new_key
from tradectl.serve import service_specs
from trading.v1 import (
    admin_pb2,
    analytics_pb2,
    control_pb2,
    execution_pb2,
    orders_pb2,
    portfolio_pb2,
    positions_pb2,
)
from trading_core.auth import RULES, Caller, Keyring, denial, key_sha256
from trading_core.config import DEVELOPMENT_KEY, DEVELOPMENT_KEY_SHA256, ConfigError, load_config
from trading_core.runtime import build_platform

ROOT = Path(__file__).resolve().parents[2]


def served_methods() -> dict[str, Any]:
    """Each RPC the platform serves, with the class of its request."""
    modules = [
        admin_pb2, analytics_pb2, control_pb2, execution_pb2, orders_pb2, portfolio_pb2,
        positions_pb2,
    ]  # fmt: skip
    return {
        f"/{service.full_name}/{method.name}": GetMessageClass(method.input_type)
        for module in modules
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }


def test_every_rpc_the_platform_serves_has_a_rule_and_no_rule_names_another() -> None:
    assert set(RULES) == set(served_methods())


def test_each_rule_reads_the_account_its_request_carries() -> None:
    for method, request_class in served_methods().items():
        rule = RULES[method]
        if rule.account is not None:
            assert rule.account(request_class()) in ("", None), method


def caller(roles: set[str], accounts: set[str]) -> Caller:
    return Caller("k", frozenset(roles), frozenset(accounts))


SUBMIT = "/trading.v1.OrderService/SubmitOrder"
LIST = "/trading.v1.OrderService/ListOrders"


@pytest.mark.parametrize(
    ("method", "request_", "who", "allowed"),
    [
        (SUBMIT, orders_pb2.SubmitOrderRequest(account_id="a"), caller({"trader"}, {"a"}), True),
        (SUBMIT, orders_pb2.SubmitOrderRequest(account_id="b"), caller({"trader"}, {"a"}), False),
        (SUBMIT, orders_pb2.SubmitOrderRequest(account_id="a"), caller({"reader"}, {"a"}), False),
        (SUBMIT, orders_pb2.SubmitOrderRequest(account_id="a"), caller({"operator"}, {"*"}), False),
        (LIST, orders_pb2.ListOrdersRequest(account_id="a"), caller({"reader"}, {"a"}), True),
        (LIST, orders_pb2.ListOrdersRequest(), caller({"reader"}, {"a"}), False),
        (LIST, orders_pb2.ListOrdersRequest(), caller({"operator"}, {"*"}), True),
        (
            "/trading.v1.TradingControlService/GetRiskLimits",
            control_pb2.GetRiskLimitsRequest(),  # the defaults: no account's data
            caller({"reader"}, {"a"}),
            True,
        ),
        (
            "/trading.v1.TradingControlService/SetRiskLimits",
            control_pb2.SetRiskLimitsRequest(scope=control_pb2.RISK_SCOPE_ACCOUNT, name="a"),
            caller({"operator"}, {"a"}),
            True,
        ),
        (
            "/trading.v1.TradingControlService/SetRiskLimits",
            control_pb2.SetRiskLimitsRequest(scope=control_pb2.RISK_SCOPE_STRATEGY, name="s"),
            caller({"operator"}, {"a"}),
            False,
        ),
        (
            "/trading.v1.ExecutionService/QueryOrder",
            execution_pb2.QueryOrderRequest(account_id="a"),
            caller({"trader"}, {"*"}),
            False,
        ),
        (
            "/trading.v1.ExecutionService/ListVenues",
            execution_pb2.ListVenuesRequest(),
            caller({"reader"}, {"a"}),
            True,
        ),
        (
            "/trading.v1.AdminService/ListDeadLetters",
            admin_pb2.ListDeadLettersRequest(),
            caller({"operator"}, {"a"}),
            False,
        ),
    ],
)
def test_roles_and_accounts_decide(method: str, request_: Any, who: Caller, allowed: bool) -> None:
    assert (denial(RULES[method], method, who, request_) is None) is allowed


def test_an_rpc_without_a_rule_is_refused() -> None:
    why = denial(None, "/trading.v1.New/Thing", caller({"operator"}, {"*"}), object())
    assert why is not None and "not open" in why


def test_a_key_is_known_by_its_hash_and_a_header_must_be_one_bearer_key() -> None:
    key, digest = new_key()
    config = load_config(ROOT / "config" / "local.yaml")
    security = config.security.model_copy(
        update={
            "api_keys": [
                *config.security.api_keys,
                type(config.security.api_keys[0])(id="new", sha256=digest, accounts=["a"]),
            ]
        }
    )
    keyring = Keyring(security)
    found = keyring.caller_of([("authorization", f"Bearer {key}")])
    assert isinstance(found, Caller) and found.key_id == "new" and found.roles == {"trader"}
    assert isinstance(keyring.caller_of([("authorization", f"bearer {key}")]), Caller)
    assert "unknown" in str(keyring.caller_of([("authorization", "Bearer tk.other")]))
    assert "no API key" in str(keyring.caller_of([]))
    twice = [("authorization", f"Bearer {key}"), ("authorization", f"Bearer {key}")]
    assert "malformed" in str(keyring.caller_of(twice))
    assert key_sha256(key) == digest


def test_tradectl_and_the_server_agree_on_the_development_key() -> None:
    assert credentials.DEVELOPMENT_KEY == DEVELOPMENT_KEY
    assert key_sha256(DEVELOPMENT_KEY) == DEVELOPMENT_KEY_SHA256


def write(tmp_path: Path, document: dict[str, Any]) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def local_with(tmp_path: Path, **top: Any) -> dict[str, Any]:
    return {"extends": str(ROOT / "config" / "local.yaml"), **top}


@pytest.mark.parametrize(
    ("security", "says"),
    [
        ({"authentication": "none"}, "security.authentication: none is for environment local"),
        (
            {"api_keys": [{"id": "dev", "sha256": DEVELOPMENT_KEY_SHA256, "accounts": ["*"]}]},
            "public development key",
        ),
    ],
)
def test_development_access_is_refused_outside_local(
    tmp_path: Path, security: dict[str, Any], says: str
) -> None:
    path = write(tmp_path, local_with(tmp_path, environment="staging", security=security))
    with pytest.raises(ConfigError, match=says):
        load_config(path)


def test_a_service_key_written_in_the_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, local_with(tmp_path, security={"service_key": "tk.written-down"}))
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert "security.service_key" in str(refused.value)
    assert "tk.written-down" not in str(refused.value)


def test_services_apart_outside_local_need_the_service_key(tmp_path: Path) -> None:
    _, digest = new_key()
    keys = [{"id": "ops", "sha256": digest, "accounts": ["*"], "roles": ["operator"]}]
    document = local_with(tmp_path, environment="staging", security={"api_keys": keys})
    document["journal"] = {"path": str(tmp_path / "data")}
    config = load_config(write(tmp_path, document))
    order_management = [s for s in service_specs() if s.name == "order-management"]
    with pytest.raises(ConfigError) as refused:
        build_platform(config, order_management)
    assert "security.service_key" in str(refused.value)
    assert "execution-router, position-management" in str(refused.value)


def test_one_process_of_every_service_needs_no_service_key(tmp_path: Path) -> None:
    _, digest = new_key()
    keys = [{"id": "ops", "sha256": digest, "accounts": ["*"], "roles": ["operator"]}]
    document = local_with(tmp_path, environment="staging", security={"api_keys": keys})
    document["journal"] = {"path": str(tmp_path / "data")}
    document["database"] = {"backend": "duckdb", "path": str(tmp_path / "data")}
    platform = build_platform(load_config(write(tmp_path, document)), service_specs())
    try:
        service = platform.service("order-management")
        assert isinstance(service, OrderManagement)
        assert service.peers.key  # a key made for this process
    finally:
        platform.stop()
