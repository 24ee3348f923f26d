"""Trading states of the platform and of each account, and what a resume checks first.

ACTIVE < REDUCING < HALTED by strictness; an account's orders meet the stricter of its own state
and the platform's. Moving to a stricter state is always allowed. Moving to a less strict one (a
resume) is guarded: `resume_problems` names every reason not to, from facts order-management
gathers (orders the venue has not answered, pending closes, positions that disagree with
position-management's, stale quotes). Plain data, the clock passed in, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TypeAlias

from trading.v1 import control_pb2, types_pb2
from trading_core.decimals import format_decimal, shorten
from trading_core.events import timestamp

TradingState: TypeAlias = types_pb2.TradingState.ValueType

ACTIVE = types_pb2.TRADING_STATE_ACTIVE
REDUCING = types_pb2.TRADING_STATE_REDUCING
HALTED = types_pb2.TRADING_STATE_HALTED
_STRICTNESS = {ACTIVE: 0, REDUCING: 1, HALTED: 2}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_REASON_LENGTH = 512


def state_name(state: TradingState) -> str:
    """REDUCING for TRADING_STATE_REDUCING."""
    return types_pb2.TradingState.Name(state).removeprefix("TRADING_STATE_")


def strictness(state: TradingState) -> int:
    """0 ACTIVE, 1 REDUCING, 2 HALTED."""
    return _STRICTNESS[state]


def stricter(first: TradingState, second: TradingState) -> TradingState:
    return first if _STRICTNESS[first] >= _STRICTNESS[second] else second


def loosens(before: TradingState, after: TradingState) -> bool:
    """Whether moving from `before` to `after` is a resume, which is guarded."""
    return _STRICTNESS[after] < _STRICTNESS[before]


@dataclass(frozen=True)
class StateRecord:
    """The trading state of the platform (account_id "") or of one account."""

    account_id: str
    state: TradingState = ACTIVE
    reason: str = ""
    update_time: datetime = _EPOCH
    version: int = 0

    def to_proto(self) -> control_pb2.TradingStateRecord:
        record = control_pb2.TradingStateRecord(
            account_id=self.account_id, state=self.state, reason=self.reason, version=self.version
        )
        if self.version:
            record.update_time.CopyFrom(timestamp(self.update_time))
        return record


class TradingStates:
    """The platform's state and every account's that was ever set."""

    def __init__(self) -> None:
        self._records: dict[str, StateRecord] = {"": StateRecord("")}

    def of(self, account_id: str) -> StateRecord:
        """The record of an account ("" for the platform); ACTIVE at version 0 if never set."""
        return self._records.get(account_id) or StateRecord(account_id)

    def effective(self, account_id: str) -> TradingState:
        """What an account's orders meet: the stricter of its state and the platform's."""
        return stricter(self.of("").state, self.of(account_id).state)

    def accounts(self) -> list[StateRecord]:
        return sorted((r for a, r in self._records.items() if a), key=lambda r: r.account_id)

    def set(
        self, account_id: str, state: TradingState, reason: str, now: datetime
    ) -> tuple[StateRecord, StateRecord]:
        """Sets a state (the caller checked a resume first); returns (before, after)."""
        before = self.of(account_id)
        after = StateRecord(account_id, state, reason, now, before.version + 1)
        self._records[account_id] = after
        return before, after

    def load(self, record: StateRecord) -> None:
        self._records[record.account_id] = record


@dataclass
class ResumeFacts:
    """What order-management found before a resume; each list names what is wrong."""

    # (order id, seconds) of open orders the venue has not answered for longer than allowed.
    unanswered_orders: list[tuple[str, float]] = field(default_factory=list)
    # (account, instrument or "" for all) of closes whose orders have not been sent yet.
    pending_closes: list[tuple[str, str]] = field(default_factory=list)
    # (account, instrument, ours, position-management's) where the positions disagree.
    position_differences: list[tuple[str, str, Decimal, Decimal]] = field(default_factory=list)
    # Why position-management could not be asked, if it could not.
    positions_unavailable: str = ""
    # (instrument, age in ms, or None without a quote) of quotes older than allowed.
    stale_quotes: list[tuple[str, float | None]] = field(default_factory=list)
    # (account, why) of accounts whose daily loss or drawdown breaks its limit now.
    breaches: list[tuple[str, str]] = field(default_factory=list)


def resume_problems(facts: ResumeFacts, max_quote_age_ms: int) -> list[str]:
    """Every reason a resume is refused, for people; empty when it may go ahead."""
    problems = [
        f"order {order_id} has waited {seconds:.0f} s for the venue's answer "
        "(reconciliation will ask the router)"
        for order_id, seconds in facts.unanswered_orders
    ]
    problems += [
        f"account {shorten(account)} is still closing "
        f"{('its ' + instrument + ' position') if instrument else 'its positions'}"
        for account, instrument in facts.pending_closes
    ]
    if facts.positions_unavailable:
        problems.append(
            f"positions could not be reconciled: position-management did not answer "
            f"({facts.positions_unavailable})"
        )
    problems += [
        f"the {instrument} position of account {shorten(account)} is {format_decimal(ours)} "
        f"here but {format_decimal(theirs)} in position-management"
        for account, instrument, ours, theirs in facts.position_differences
    ]
    problems += [
        f"no quote of {instrument} yet"
        if age_ms is None
        else f"the quote of {instrument} is {age_ms:.0f} ms old (at most {max_quote_age_ms})"
        for instrument, age_ms in facts.stale_quotes
    ]
    problems += [
        f"account {shorten(account)}: {why}; raise the limit or wait for the next UTC day"
        for account, why in facts.breaches
    ]
    return problems
