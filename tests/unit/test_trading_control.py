"""Trading states and reduce-only: the gate before every other check, what a close sends, what a
resume checks. Property tests: a reduce-only order never makes a position larger, however its
open orders fill; a close sums to the account's position and never flips a strategy."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from itertools import combinations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from order_management.domain.risk import Holding, closing_quantities, trading_gate
from order_management.domain.trading_state import (
    ACTIVE,
    HALTED,
    REDUCING,
    ResumeFacts,
    TradingState,
    TradingStates,
    loosens,
    resume_problems,
)
from order_management.domain.validation import DenialReason, OrderRequest
from trading.v1 import types_pb2

from tests.unit.test_order_validation import NOW, order_request

BUY, SELL = types_pb2.SIDE_BUY, types_pb2.SIDE_SELL


@dataclass(frozen=True)
class GateCase:
    reason: DenialReason
    state: TradingState
    request: OrderRequest
    holding: Holding
    message: str


LONG_ONE = Holding(position=Decimal(1))
GATE_CASES = [
    GateCase(
        types_pb2.DENIAL_REASON_TRADING_HALTED,
        HALTED,
        order_request(side=SELL, quantity=Decimal("0.5")),  # even a reducing order
        LONG_ONE,
        "trading is halted for account acc-1; only cancels and ClosePosition are allowed",
    ),
    GateCase(
        types_pb2.DENIAL_REASON_TRADING_REDUCING,
        REDUCING,
        order_request(side=BUY),
        LONG_ONE,
        "account acc-1 may only reduce positions, and this order could make its BTC-USD "
        "position larger (position 1, open buys 0, open sells 0)",
    ),
    GateCase(
        types_pb2.DENIAL_REASON_REDUCE_ONLY_WOULD_INCREASE,
        ACTIVE,
        order_request(side=SELL, quantity=Decimal("0.6"), reduce_only=True),
        Holding(position=Decimal(1), open_sells=Decimal("0.5")),
        "the reduce-only order could make the BTC-USD position of account acc-1 larger "
        "(position 1, open buys 0, open sells 0.5)",
    ),
]
TRADING_REASONS = frozenset(case.reason for case in GATE_CASES)


@pytest.mark.parametrize(
    "case", GATE_CASES, ids=[types_pb2.DenialReason.Name(c.reason) for c in GATE_CASES]
)
def test_the_trading_gate_denies_with_its_reason_and_the_position_it_judged(
    case: GateCase,
) -> None:
    denial = trading_gate(case.state, case.request, case.holding)
    assert denial is not None
    assert (denial.reason, denial.message) == (case.reason, case.message)


def test_a_closing_order_passes_while_halted() -> None:
    close = order_request(side=SELL, quantity=Decimal(1), reduce_only=True)
    assert trading_gate(HALTED, close, LONG_ONE, closing=True) is None


@pytest.mark.parametrize(
    ("side", "quantity", "holding"),
    [
        (SELL, "1", LONG_ONE),
        (SELL, "0.4", Holding(position=Decimal(1), open_sells=Decimal("0.6"))),
        (BUY, "2", Holding(position=Decimal(-2), open_sells=Decimal(5))),
    ],
)
def test_an_order_that_only_reduces_passes_while_reducing_and_as_reduce_only(
    side: int, quantity: str, holding: Holding
) -> None:
    request = order_request(side=side, quantity=Decimal(quantity), reduce_only=True)
    assert trading_gate(REDUCING, request, holding) is None


@pytest.mark.parametrize(
    ("side", "quantity", "holding"),
    [
        (SELL, "1.01", LONG_ONE),  # would go short
        (SELL, "0.1", Holding()),  # flat: any order opens a position
        (BUY, "0.1", Holding(position=Decimal(-1), open_buys=Decimal(1))),  # already covered
    ],
)
def test_an_order_that_could_overshoot_or_open_is_not_reducing(
    side: int, quantity: str, holding: Holding
) -> None:
    request = order_request(side=side, quantity=Decimal(quantity), reduce_only=True)
    denial = trading_gate(ACTIVE, request, holding)
    assert denial is not None
    assert denial.reason == types_pb2.DENIAL_REASON_REDUCE_ONLY_WOULD_INCREASE


_SIZES = st.integers(min_value=1, max_value=20).map(lambda n: Decimal(n) / 10)


@settings(max_examples=300, derandomize=True)
@given(
    position=st.integers(min_value=-30, max_value=30).map(lambda n: Decimal(n) / 10),
    open_orders=st.lists(st.tuples(st.sampled_from([BUY, SELL]), _SIZES), max_size=5),
    side=st.sampled_from([BUY, SELL]),
    quantity=_SIZES,
)
def test_a_reduce_only_order_never_makes_the_position_larger_whichever_open_orders_fill(
    position: Decimal, open_orders: list[tuple[int, Decimal]], side: int, quantity: Decimal
) -> None:
    """Admitted reduce-only orders are added as open orders one by one, as order-management
    does; then every subset of the reduce-only orders fills, beside any same-side orders."""
    holding = Holding(position=position)
    for open_side, size in open_orders:
        if open_side == BUY:
            holding.open_buys += size
        else:
            holding.open_sells += size
    admitted = []
    for size in (quantity, quantity / 2, quantity):
        if trading_gate(ACTIVE, order_request(side=side, quantity=size, reduce_only=True), holding):
            continue
        admitted.append(size)
        if side == BUY:
            holding.open_buys += size
        else:
            holding.open_sells += size
    sign = 1 if side == BUY else -1
    same_side = [s for o, s in open_orders if o == side]
    for count in range(len(admitted) + 1):
        for filled in combinations(admitted, count):
            for others in range(len(same_side) + 1):
                after = position + sign * (sum(filled) + sum(same_side[:others]))
                if filled:
                    assert abs(after) <= abs(position) and after * position >= 0


@settings(max_examples=300, derandomize=True)
@given(
    strategies=st.dictionaries(
        st.sampled_from(["a", "b", "c", "d"]),
        st.integers(min_value=-50, max_value=50).filter(bool).map(Decimal),
    ),
    unattributed=st.integers(min_value=-10, max_value=10).map(Decimal),
)
def test_a_close_sums_to_the_account_position_and_never_flips_a_strategy(
    strategies: dict[str, Decimal], unattributed: Decimal
) -> None:
    account = sum(strategies.values(), Decimal(0)) + unattributed
    if not account:
        return
    quantities = closing_quantities(account, strategies)
    assert sum(quantities.values()) == abs(account)
    for name, quantity in quantities.items():
        assert quantity > 0
        if name:
            assert strategies[name] * account > 0 and quantity <= abs(strategies[name])


def test_an_account_meets_the_stricter_of_its_state_and_the_platforms() -> None:
    states = TradingStates()
    assert states.effective("acc-1") == ACTIVE
    states.set("acc-1", REDUCING, "drawdown", NOW)
    assert states.effective("acc-1") == REDUCING
    before, after = states.set("", HALTED, "exchange outage", NOW)
    assert (before.state, after.state, after.version) == (ACTIVE, HALTED, 1)
    assert states.effective("acc-1") == HALTED
    assert states.effective("acc-2") == HALTED
    states.set("", ACTIVE, "resolved", NOW + timedelta(minutes=5))
    assert states.effective("acc-1") == REDUCING
    assert [r.account_id for r in states.accounts()] == ["acc-1"]
    assert states.of("").version == 2


@pytest.mark.parametrize(
    ("before", "after", "guarded"),
    [
        (HALTED, ACTIVE, True),
        (HALTED, REDUCING, True),
        (REDUCING, ACTIVE, True),
        (ACTIVE, HALTED, False),
        (REDUCING, HALTED, False),
        (HALTED, HALTED, False),
    ],
)
def test_only_a_move_to_a_less_strict_state_is_a_guarded_resume(
    before: TradingState, after: TradingState, guarded: bool
) -> None:
    assert loosens(before, after) is guarded


def test_a_refused_resume_names_every_check_that_failed() -> None:
    facts = ResumeFacts(
        unanswered_orders=[("ord-1", 12.4)],
        pending_closes=[("acc-1", "")],
        position_differences=[("acc-1", "BTC-USD", Decimal("0.5"), Decimal("0.4"))],
        stale_quotes=[("ETH-USD", 9000.0), ("SOL-USD", None)],
    )
    assert resume_problems(facts, max_quote_age_ms=5000) == [
        "order ord-1 has waited 12 s for the venue's answer (reconciliation will ask the router)",
        "account acc-1 is still closing its positions",
        "the BTC-USD position of account acc-1 is 0.5 here but 0.4 in position-management",
        "the quote of ETH-USD is 9000 ms old (at most 5000)",
        "no quote of SOL-USD yet",
    ]
    assert resume_problems(ResumeFacts(), max_quote_age_ms=5000) == []
