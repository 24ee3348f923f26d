"""Risk limits changed while running: the wire form of a scope's limits, read strictly, and the
changes in force over the config's `risk`."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from order_management.domain.risk import RiskEngine
from order_management.domain.risk_limits import (
    RiskLimitChanges,
    check_scope,
    limit_set,
    parse_limit_set,
)
from order_management.domain.validation import InvalidRequest
from trading.v1 import control_pb2
from trading_core.config import Risk, RiskGroup, RiskLimits

NOW = datetime(2026, 12, 3, 9, tzinfo=UTC)
C = control_pb2
CONFIGURED = Risk.model_validate(
    {
        "account": {"max_order_quantity": "10", "max_open_orders": 50},
        "accounts": {"acct-big": {"max_order_quantity": "100"}},
    }
)


def test_every_limit_survives_the_wire_both_ways() -> None:
    wire = C.RiskLimitSet(
        max_order_quantity="1.5",
        max_position_quantity="20",
        max_position_value="1000000",
        max_gross_exposure="2000000",
        max_net_exposure="500000",
        max_open_orders=40,
        max_leverage="3",
        max_concentration_percent="25",
        max_daily_loss="5000",
        max_drawdown_percent="10",
        cooldown_ms=500,
        loss_cooldown_ms=60000,
        require_stop_loss=True,
    )
    assert [f.name for f, _ in wire.ListFields()] == list(RiskLimits.model_fields)
    assert limit_set(parse_limit_set(wire)) == wire


@pytest.mark.parametrize(
    ("wire", "field"),
    [
        (C.RiskLimitSet(max_order_quantity="-1"), "limits.max_order_quantity"),
        (C.RiskLimitSet(max_leverage="lots"), "limits.max_leverage"),
        (C.RiskLimitSet(max_open_orders=-3), "limits.max_open_orders"),
        (C.RiskLimitSet(cooldown_ms=-1), "limits.cooldown_ms"),
    ],
)
def test_a_bad_limit_is_refused_naming_its_field(wire: C.RiskLimitSet, field: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_limit_set(wire)
    assert raised.value.field == field
    assert field in str(raised.value)


@pytest.mark.parametrize(
    ("scope", "name", "field"),
    [
        (C.RISK_SCOPE_UNSPECIFIED, "", "scope"),
        (C.RISK_SCOPE_ACCOUNT, "", "name"),
        (C.RISK_SCOPE_ACCOUNTS, "acct-1", "name"),
    ],
)
def test_a_scope_needs_a_name_exactly_when_it_is_one_accounts(
    scope: int, name: str, field: str
) -> None:
    with pytest.raises(InvalidRequest) as raised:
        check_scope(scope, name)
    assert raised.value.field == field


def test_a_change_replaces_its_scopes_own_limits_and_the_rest_stay_configured() -> None:
    changes = RiskLimitChanges(CONFIGURED)
    lowered = RiskLimits(max_order_quantity=Decimal("2"))
    change, previous = changes.change(C.RISK_SCOPE_ACCOUNTS, "", lowered, "volatile", NOW)
    assert (change.version, previous) == (1, CONFIGURED.account)
    engine = RiskEngine(changes.risk())
    # The defaults changed whole: max_open_orders is no longer set.
    assert engine.limits_of("acct-1") == lowered
    # One account's own limits still replace the defaults field by field.
    assert engine.limits_of("acct-big").max_order_quantity == Decimal("100")
    assert changes.own(C.RISK_SCOPE_ACCOUNT, "acct-big") == CONFIGURED.accounts["acct-big"]


def test_one_accounts_change_is_kept_beside_the_config_and_the_latest_wins() -> None:
    changes = RiskLimitChanges(CONFIGURED)
    first = RiskLimits(max_order_quantity=Decimal("3"))
    second = RiskLimits(require_stop_loss=True)
    changes.change(C.RISK_SCOPE_ACCOUNT, "acct-1", first, "one", NOW)
    change, previous = changes.change(C.RISK_SCOPE_ACCOUNT, "acct-1", second, "two", NOW)
    assert (change.version, previous) == (2, first)
    limits = RiskEngine(changes.risk()).limits_of("acct-1")
    assert limits.require_stop_loss
    assert limits.max_order_quantity == Decimal("10")  # from the defaults again
    assert [c.reason for c in changes.changes()] == ["two"]


def test_changes_loaded_in_version_order_rebuild_the_same_limits() -> None:
    made = RiskLimitChanges(CONFIGURED)
    made.change(C.RISK_SCOPE_STRATEGY, "mr", RiskLimits(cooldown_ms=100), "a", NOW)
    made.change(C.RISK_SCOPE_ACCOUNTS, "", RiskLimits(max_leverage=Decimal(2)), "b", NOW)
    loaded = RiskLimitChanges(CONFIGURED)
    for change in made.changes():
        loaded.put(change)
    assert loaded.risk() == made.risk()
    assert loaded.version == made.version == 2


GROUPED = CONFIGURED.model_copy(
    update={
        "groups": {
            "desk": RiskGroup(accounts=["acct-1", "acct-2"], limits=RiskLimits(max_open_orders=9))
        }
    }
)


def test_a_groups_limits_change_and_its_members_stay_as_configured() -> None:
    changes = RiskLimitChanges(GROUPED)
    lowered = RiskLimits(max_position_quantity=Decimal("1"))
    _, previous = changes.change(C.RISK_SCOPE_GROUP, "desk", lowered, "desk limit", NOW)
    assert previous == RiskLimits(max_open_orders=9)
    group = changes.risk().groups["desk"]
    assert (group.accounts, group.limits) == (["acct-1", "acct-2"], lowered)


@pytest.mark.parametrize(
    ("name", "limits", "field"),
    [
        ("nobody", RiskLimits(), "name"),
        ("desk", RiskLimits(max_leverage=Decimal(2)), "limits"),
    ],
    ids=["not-configured", "an-equity-limit"],
)
def test_a_group_change_is_refused_for_an_unknown_group_or_an_equity_limit(
    name: str, limits: RiskLimits, field: str
) -> None:
    changes = RiskLimitChanges(GROUPED)
    with pytest.raises(InvalidRequest) as raised:
        changes.change(C.RISK_SCOPE_GROUP, name, limits, "no", NOW)
    assert raised.value.field == field
    assert not changes.changes()
