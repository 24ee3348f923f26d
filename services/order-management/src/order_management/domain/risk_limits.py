"""Risk limits changed while the platform runs (SetRiskLimits): the wire form of a scope's
limits, and the changes in force over the config's `risk` section.

A change replaces one scope's own limits whole, as if its config entry had been rewritten:
`risk.account` or `risk.strategy` (the defaults), `risk.accounts.<id>` or
`risk.strategies.<id>` (whose fields replace the defaults' one by one), or the `limits` of a
configured portfolio group `risk.groups.<name>` (its members stay as configured). Plain data,
no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeAlias

from pydantic import ValidationError
from trading.v1 import control_pb2
from trading_core.config import Risk, RiskGroup, RiskLimits
from trading_core.decimals import format_decimal, parse_decimal
from trading_core.events import timestamp

from order_management.domain.validation import InvalidRequest

RiskScope: TypeAlias = control_pb2.RiskScope.ValueType
# Each scope: its config field in `Risk`, and whether it is one named account's, strategy's or
# group's.
_SCOPES: dict[int, tuple[str, bool]] = {
    control_pb2.RISK_SCOPE_ACCOUNTS: ("account", False),
    control_pb2.RISK_SCOPE_ACCOUNT: ("accounts", True),
    control_pb2.RISK_SCOPE_STRATEGIES: ("strategy", False),
    control_pb2.RISK_SCOPE_STRATEGY: ("strategies", True),
    control_pb2.RISK_SCOPE_GROUP: ("groups", True),
}


def parse_limit_set(limits: control_pb2.RiskLimitSet) -> RiskLimits:
    """The limits a request sets; raises InvalidRequest naming the field (`limits.<name>`)."""
    values: dict[str, Any] = {}
    for name in RiskLimits.model_fields:
        value = getattr(limits, name)
        if isinstance(value, str) and value:
            try:
                values[name] = parse_decimal(value, f"limits.{name}")
            except ValueError as error:
                raise InvalidRequest(f"limits.{name}", str(error)) from None
        elif value:
            values[name] = value
    try:
        return RiskLimits.model_validate(values)
    except ValidationError as error:
        problem = error.errors()[0]
        field = f"limits.{'.'.join(str(part) for part in problem['loc'])}"
        raise InvalidRequest(field, f"{field}: {problem['msg']}") from None


def limit_set(limits: RiskLimits) -> control_pb2.RiskLimitSet:
    """The wire form of limits: decimals as strings, what is not set left empty."""
    message = control_pb2.RiskLimitSet()
    for name in RiskLimits.model_fields:
        value = getattr(limits, name)
        if isinstance(value, Decimal):
            setattr(message, name, format_decimal(value))
        elif value is not None:
            setattr(message, name, value)
    return message


def check_scope(scope: int, name: str) -> None:
    """Raises InvalidRequest unless `scope` is known and `name` is given exactly when needed."""
    if scope not in _SCOPES:
        raise InvalidRequest(
            "scope", "scope must be RISK_SCOPE_ACCOUNTS, _ACCOUNT, _STRATEGIES, _STRATEGY or _GROUP"
        )
    named = _SCOPES[scope][1]
    if named and not name:
        raise InvalidRequest(
            "name", "name is required: the account, strategy or group whose limits"
        )
    if not named and name:
        raise InvalidRequest("name", "name must be empty for the defaults of every one")


@dataclass(frozen=True)
class LimitsChange:
    scope: RiskScope
    name: str
    limits: RiskLimits
    reason: str
    time: datetime
    version: int

    @classmethod
    def from_proto(cls, record: control_pb2.RiskLimitsRecord) -> LimitsChange:
        """A change from its record (our own, as kept)."""
        return cls(
            record.scope,
            record.name,
            parse_limit_set(record.limits),
            record.reason,
            record.update_time.ToDatetime(tzinfo=UTC),
            record.version,
        )

    def to_proto(self) -> control_pb2.RiskLimitsRecord:
        return control_pb2.RiskLimitsRecord(
            scope=self.scope,
            name=self.name,
            limits=limit_set(self.limits),
            reason=self.reason,
            update_time=timestamp(self.time),
            version=self.version,
        )


class RiskLimitChanges:
    """The changes in force, one per scope (the latest), over the config's `risk`."""

    def __init__(self, configured: Risk) -> None:
        self._configured = configured
        self._changes: dict[tuple[int, str], LimitsChange] = {}
        self.version = 0

    def put(self, change: LimitsChange) -> None:
        """Keeps a change (as one loads on start, in version order)."""
        self._changes[(change.scope, change.name)] = change
        self.version = max(self.version, change.version)

    def change(
        self, scope: RiskScope, name: str, limits: RiskLimits, reason: str, now: datetime
    ) -> tuple[LimitsChange, RiskLimits]:
        """The next change, kept, and the scope's own limits before it. Raises InvalidRequest
        for a group not configured, or limits a group cannot have."""
        if scope == control_pb2.RISK_SCOPE_GROUP:
            self._check_group(name, limits)
        previous = self.own(scope, name)
        change = LimitsChange(scope, name, limits, reason, now, self.version + 1)
        self.put(change)
        return change, previous

    def latest(self, scope: int, name: str) -> LimitsChange | None:
        return self._changes.get((scope, name))

    def _check_group(self, name: str, limits: RiskLimits) -> None:
        group = self._configured.groups.get(name)
        if group is None:
            known = ", ".join(sorted(self._configured.groups)) or "none"
            raise InvalidRequest("name", f"no portfolio group {name!r} is configured ({known})")
        try:
            RiskGroup.model_validate({**group.model_dump(), "limits": limits})
        except ValidationError as error:
            raise InvalidRequest("limits", f"limits: {error.errors()[0]['msg']}") from None

    def own(self, scope: int, name: str) -> RiskLimits:
        """A scope's own limits now: its change's, else the config's."""
        change = self._changes.get((scope, name))
        if change is not None:
            return change.limits
        field, named = _SCOPES[scope]
        configured = getattr(self._configured, field)
        if scope == control_pb2.RISK_SCOPE_GROUP:
            group: RiskGroup = configured[name]
            return group.limits
        limits: RiskLimits = configured.get(name, RiskLimits()) if named else configured
        return limits

    def risk(self) -> Risk:
        """The config's `risk` with every change in force applied."""
        update: dict[str, Any] = {
            "accounts": dict(self._configured.accounts),
            "strategies": dict(self._configured.strategies),
            "groups": dict(self._configured.groups),
        }
        for change in self.changes():
            field, named = _SCOPES[change.scope]
            if change.scope == control_pb2.RISK_SCOPE_GROUP:
                group = update["groups"].get(change.name)
                if group is not None:  # a group no longer configured: its change lapses
                    update["groups"][change.name] = group.model_copy(
                        update={"limits": change.limits}
                    )
            elif named:
                update[field][change.name] = change.limits
            else:
                update[field] = change.limits
        return self._configured.model_copy(update=update)

    def changes(self) -> list[LimitsChange]:
        return sorted(self._changes.values(), key=lambda change: change.version)
