"""The order state machine: every allowed move, every forbidden one, fills, and the wire form."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from order_management.domain import (
    FINISHED_STATUSES,
    OPEN_STATUSES,
    Denial,
    InvalidExecutionReport,
    InvalidOrderTransition,
    Order,
    OrderNotCancelable,
    OrderRequest,
    OrderStatus,
    Trigger,
)
from order_management.domain.orders import _TRANSITIONS, OrderChange, OrderNotModifiable
from trading.v1 import events_pb2, types_pb2
from trading_core.decimals import Precision

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(seconds=5)
S = types_pb2  # short for the status constants in the expected table

SUBMITTED = S.ORDER_STATUS_SUBMITTED
ACCEPTED = S.ORDER_STATUS_ACCEPTED
PARTIALLY_FILLED = S.ORDER_STATUS_PARTIALLY_FILLED
PENDING_CANCEL = S.ORDER_STATUS_PENDING_CANCEL
FILLED = S.ORDER_STATUS_FILLED
CANCELED = S.ORDER_STATUS_CANCELED
REJECTED = S.ORDER_STATUS_REJECTED
EXPIRED = S.ORDER_STATUS_EXPIRED
DENIED = S.ORDER_STATUS_DENIED
PENDING_UPDATE = S.ORDER_STATUS_PENDING_UPDATE
CHANGE = OrderChange("modify-1", quantity=Decimal("12"), limit_price=Decimal("101"))

# Written out by hand from the specification, independently of the table under test.
EXPECTED_TRANSITIONS: dict[tuple[OrderStatus, Trigger], OrderStatus] = {
    (SUBMITTED, Trigger.ACCEPTED): ACCEPTED,
    (SUBMITTED, Trigger.REJECTED): REJECTED,
    (SUBMITTED, Trigger.PARTIALLY_FILLED): PARTIALLY_FILLED,
    (SUBMITTED, Trigger.FILLED): FILLED,
    (SUBMITTED, Trigger.CANCELED): CANCELED,
    (SUBMITTED, Trigger.EXPIRED): EXPIRED,
    (SUBMITTED, Trigger.CANCEL_REQUESTED): PENDING_CANCEL,
    (ACCEPTED, Trigger.ACCEPTED): ACCEPTED,
    (ACCEPTED, Trigger.PARTIALLY_FILLED): PARTIALLY_FILLED,
    (ACCEPTED, Trigger.FILLED): FILLED,
    (ACCEPTED, Trigger.CANCELED): CANCELED,
    (ACCEPTED, Trigger.EXPIRED): EXPIRED,
    (ACCEPTED, Trigger.CANCEL_REQUESTED): PENDING_CANCEL,
    (PARTIALLY_FILLED, Trigger.ACCEPTED): PARTIALLY_FILLED,
    (PARTIALLY_FILLED, Trigger.PARTIALLY_FILLED): PARTIALLY_FILLED,
    (PARTIALLY_FILLED, Trigger.FILLED): FILLED,
    (PARTIALLY_FILLED, Trigger.CANCELED): CANCELED,
    (PARTIALLY_FILLED, Trigger.EXPIRED): EXPIRED,
    (PARTIALLY_FILLED, Trigger.CANCEL_REQUESTED): PENDING_CANCEL,
    (PENDING_CANCEL, Trigger.ACCEPTED): PENDING_CANCEL,
    (PENDING_CANCEL, Trigger.PARTIALLY_FILLED): PENDING_CANCEL,
    (PENDING_CANCEL, Trigger.FILLED): FILLED,
    (PENDING_CANCEL, Trigger.CANCELED): CANCELED,
    (PENDING_CANCEL, Trigger.EXPIRED): EXPIRED,
    (PENDING_CANCEL, Trigger.REJECTED): REJECTED,
    (ACCEPTED, Trigger.MODIFY_REQUESTED): PENDING_UPDATE,
    (PARTIALLY_FILLED, Trigger.MODIFY_REQUESTED): PENDING_UPDATE,
    (PENDING_UPDATE, Trigger.ACCEPTED): PENDING_UPDATE,
    (PENDING_UPDATE, Trigger.PARTIALLY_FILLED): PENDING_UPDATE,
    (PENDING_UPDATE, Trigger.FILLED): FILLED,
    (PENDING_UPDATE, Trigger.CANCELED): CANCELED,
    (PENDING_UPDATE, Trigger.EXPIRED): EXPIRED,
    (PENDING_UPDATE, Trigger.CANCEL_REQUESTED): PENDING_CANCEL,
}
ALL_STATUSES = [s for s in types_pb2.OrderStatus.values() if s != S.ORDER_STATUS_UNSPECIFIED]
# Answers to a cancel or modify are not in the table: they undo what is pending (tested below).
_ANSWERS = {Trigger.CANCEL_REJECTED, Trigger.MODIFIED, Trigger.MODIFY_REJECTED}
FORBIDDEN = [
    pair
    for pair in itertools.product(ALL_STATUSES, Trigger)
    if pair not in EXPECTED_TRANSITIONS and pair[1] not in _ANSWERS
]

_EXECUTION_TYPES = {
    Trigger.ACCEPTED: S.EXECUTION_TYPE_ACCEPTED,
    Trigger.PARTIALLY_FILLED: S.EXECUTION_TYPE_PARTIALLY_FILLED,
    Trigger.FILLED: S.EXECUTION_TYPE_FILLED,
    Trigger.REJECTED: S.EXECUTION_TYPE_REJECTED,
    Trigger.CANCEL_REJECTED: S.EXECUTION_TYPE_CANCEL_REJECTED,
    Trigger.CANCELED: S.EXECUTION_TYPE_CANCELED,
    Trigger.EXPIRED: S.EXECUTION_TYPE_EXPIRED,
    Trigger.MODIFIED: S.EXECUTION_TYPE_MODIFIED,
    Trigger.MODIFY_REJECTED: S.EXECUTION_TYPE_MODIFY_REJECTED,
}
_trade_ids = (f"t-{n}" for n in itertools.count(1))


def order_request(quantity: str = "10", limit_price: str | None = "100") -> OrderRequest:
    return OrderRequest(
        request_id="req-1",
        client_order_id="cl-1",
        account_id="acc-1",
        strategy_id="strat-1",
        signal_id="sig-1",
        instrument="BTC-USD",
        side=S.SIDE_BUY,
        order_type=S.ORDER_TYPE_LIMIT if limit_price else S.ORDER_TYPE_MARKET,
        time_in_force=S.TIME_IN_FORCE_GTC,
        quantity=Decimal(quantity),
        limit_price=Decimal(limit_price) if limit_price else None,
    )


def report(
    trigger: Trigger,
    *,
    quantity: str = "1",
    price: str = "100",
    fee: str = "0",
    trade_id: str | None = None,
    message: str = "",
    venue_order_id: str = "v-1",
) -> events_pb2.ExecutionReport:
    is_fill = trigger in (Trigger.PARTIALLY_FILLED, Trigger.FILLED)
    return events_pb2.ExecutionReport(
        execution_type=_EXECUTION_TYPES[trigger],
        order_id="o-1",
        venue="simulation",
        venue_order_id=venue_order_id,
        side=S.SIDE_BUY,
        trade_id=(trade_id or next(_trade_ids)) if is_fill else "",
        last_quantity=quantity if is_fill else "",
        last_price=price if is_fill else "",
        fee=fee if is_fill else "",
        message=message,
    )


def apply(order: Order, trigger: Trigger, sequence: int = 9, now: datetime = LATER) -> None:
    """Drives the order with the trigger; a FILLED report fills whatever is left (at least 1)."""
    if trigger is Trigger.CANCEL_REQUESTED:
        order.request_cancel(sequence, now)
        return
    if trigger is Trigger.MODIFY_REQUESTED:
        order.request_modify(CHANGE, sequence, now)
        return
    quantity = order.leaves_quantity if trigger is Trigger.FILLED else Decimal(1)
    order.apply_execution(report(trigger, quantity=str(quantity or 1)), sequence, now)


# How to bring a fresh order of 10 into each status through real transitions.
_PATHS: dict[OrderStatus, list[Trigger]] = {
    SUBMITTED: [],
    ACCEPTED: [Trigger.ACCEPTED],
    PARTIALLY_FILLED: [Trigger.ACCEPTED, Trigger.PARTIALLY_FILLED],
    PENDING_CANCEL: [Trigger.ACCEPTED, Trigger.CANCEL_REQUESTED],
    PENDING_UPDATE: [Trigger.ACCEPTED, Trigger.MODIFY_REQUESTED],
    FILLED: [Trigger.ACCEPTED, Trigger.FILLED],
    CANCELED: [Trigger.ACCEPTED, Trigger.CANCELED],
    REJECTED: [Trigger.REJECTED],
    EXPIRED: [Trigger.ACCEPTED, Trigger.EXPIRED],
}


def order_in(status: OrderStatus) -> Order:
    if status == DENIED:
        denial = Denial(S.DENIAL_REASON_QUANTITY_NOT_POSITIVE, "quantity 0 must be positive")
        return Order.denied(order_request(), "o-1", denial, NOW)
    if status == S.ORDER_STATUS_HELD:
        return Order.held(order_request(), "o-1", NOW)
    order = Order.accepted(order_request(), "o-1", NOW)
    for sequence, trigger in enumerate(_PATHS[status], start=2):
        apply(order, trigger, sequence, NOW)
    assert order.status == status
    return order


def transition_id(pair: tuple[OrderStatus, Trigger]) -> str:
    return f"{types_pb2.OrderStatus.Name(pair[0])}-{pair[1].name}"


# --- the table -----------------------------------------------------------------------------


@pytest.mark.parametrize("pair", list(EXPECTED_TRANSITIONS), ids=transition_id)
def test_specified_transition_moves_order_to_its_next_status(
    pair: tuple[OrderStatus, Trigger],
) -> None:
    status, trigger = pair
    order = order_in(status)
    apply(order, trigger, sequence=9, now=LATER)
    assert order.status == EXPECTED_TRANSITIONS[pair]
    assert (order.sequence, order.update_time) == (9, LATER)


@pytest.mark.parametrize("pair", list(_TRANSITIONS), ids=transition_id)
def test_every_table_entry_is_reachable_through_the_public_methods(
    pair: tuple[OrderStatus, Trigger],
) -> None:
    status, trigger = pair
    order = order_in(status)
    apply(order, trigger)
    assert order.status == _TRANSITIONS[pair]


@pytest.mark.parametrize("pair", FORBIDDEN, ids=transition_id)
def test_forbidden_transition_raises_and_changes_nothing(
    pair: tuple[OrderStatus, Trigger],
) -> None:
    status, trigger = pair
    order = order_in(status)
    before = copy.deepcopy(order)
    with pytest.raises(InvalidOrderTransition) as raised:
        apply(order, trigger)
    assert order == before
    assert raised.value.order_id == "o-1"
    assert (raised.value.status, raised.value.trigger) == (status, trigger)


def test_forbidden_transition_message_names_order_status_and_trigger() -> None:
    order = order_in(FILLED)
    with pytest.raises(InvalidOrderTransition, match=r"order o-1 .*FILLED.*accepted"):
        apply(order, Trigger.ACCEPTED)


def test_open_and_finished_statuses_partition_all_statuses() -> None:
    assert set(ALL_STATUSES) == OPEN_STATUSES | FINISHED_STATUSES
    assert not OPEN_STATUSES & FINISHED_STATUSES
    # A held order leaves HELD through its own methods (release, withdraw), never by a report.
    held = {S.ORDER_STATUS_HELD}
    assert {status for status, _ in EXPECTED_TRANSITIONS} == OPEN_STATUSES - held


@pytest.mark.parametrize("status", ALL_STATUSES, ids=types_pb2.OrderStatus.Name)
def test_open_order_can_still_trade_and_finished_order_has_nothing_left(
    status: OrderStatus,
) -> None:
    order = order_in(status)
    assert order.is_open == (status in OPEN_STATUSES)
    assert order.is_finished == (not order.is_open)
    if order.is_finished:
        assert order.leaves_quantity == 0
    else:
        assert order.leaves_quantity == order.quantity - order.filled_quantity > 0


# --- construction --------------------------------------------------------------------------


def test_accepted_order_carries_the_request_and_starts_at_sequence_one() -> None:
    order = Order.accepted(order_request(), "o-1", NOW)
    assert order.status == SUBMITTED
    assert (order.client_order_id, order.account_id, order.signal_id) == ("cl-1", "acc-1", "sig-1")
    assert (order.quantity, order.limit_price) == (Decimal(10), Decimal(100))
    assert order.filled_quantity == order.fees == 0
    assert order.average_fill_price is None
    assert (order.sequence, order.create_time, order.update_time) == (1, NOW, NOW)
    assert order.leaves_quantity == 10


def test_denied_order_keeps_reason_and_message_and_cannot_trade() -> None:
    denial = Denial(S.DENIAL_REASON_NO_MARKET_DATA, "no ask price for BTC-USD")
    order = Order.denied(order_request(), "o-1", denial, NOW)
    assert order.status == DENIED
    assert order.denial_reason == S.DENIAL_REASON_NO_MARKET_DATA
    assert order.status_message == "no ask price for BTC-USD"
    assert order.is_finished and order.leaves_quantity == 0


# --- fills ---------------------------------------------------------------------------------


def test_fills_update_quantity_volume_weighted_price_and_fees() -> None:
    order = order_in(ACCEPTED)
    order.apply_execution(
        report(Trigger.PARTIALLY_FILLED, quantity="2", price="100", fee="0.2"), 3, NOW
    )
    order.apply_execution(
        report(Trigger.PARTIALLY_FILLED, quantity="3", price="110", fee="0.33"), 4, NOW
    )
    assert order.status == PARTIALLY_FILLED
    assert order.filled_quantity == Decimal(5)
    assert order.average_fill_price == Decimal(106)  # (2*100 + 3*110) / 5
    assert order.fees == Decimal("0.53")
    assert order.leaves_quantity == Decimal(5)

    order.apply_execution(report(Trigger.FILLED, quantity="5", price="100.5", fee="0.5"), 5, NOW)
    assert order.status == FILLED
    assert order.average_fill_price == Decimal("103.25")  # (530 + 502.5) / 10
    assert order.fees == Decimal("1.03")
    assert order.leaves_quantity == 0


def test_duplicate_trade_id_is_ignored_and_changes_nothing() -> None:
    order = order_in(ACCEPTED)
    fill = report(Trigger.PARTIALLY_FILLED, quantity="2", trade_id="t-dup")
    assert order.apply_execution(fill, 3, NOW) is True
    before = copy.deepcopy(order)
    assert order.apply_execution(fill, 4, LATER) is False
    assert order == before


def test_redelivered_last_fill_of_a_filled_order_is_ignored_not_an_error() -> None:
    order = order_in(ACCEPTED)
    fill = report(Trigger.FILLED, quantity="10", trade_id="t-last")
    order.apply_execution(fill, 3, NOW)
    assert order.apply_execution(fill, 4, LATER) is False
    assert order.status == FILLED and order.sequence == 3


def test_partial_fill_that_completes_the_quantity_fills_the_order() -> None:
    order = order_in(ACCEPTED)
    order.apply_execution(report(Trigger.PARTIALLY_FILLED, quantity="10"), 3, NOW)
    assert order.status == FILLED


def test_partial_fill_while_cancel_is_pending_keeps_pending_cancel() -> None:
    order = order_in(PENDING_CANCEL)
    order.apply_execution(report(Trigger.PARTIALLY_FILLED, quantity="4"), 4, NOW)
    assert order.status == PENDING_CANCEL
    assert order.filled_quantity == 4


def test_fill_records_venue_and_venue_order_id() -> None:
    order = order_in(SUBMITTED)
    order.apply_execution(report(Trigger.PARTIALLY_FILLED, venue_order_id="v-77"), 2, NOW)
    assert (order.venue, order.venue_order_id) == ("simulation", "v-77")


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"quantity": "11"}, "over its quantity"),
        ({"quantity": "0"}, "positive quantity"),
        ({"price": "-1"}, "positive quantity and price"),
        ({"price": "abc"}, "last_price must be a decimal string .*, got 'abc'"),
        ({"fee": "x"}, "fee must be a decimal string .*, got 'x'"),
        ({"quantity": "1_0"}, "last_quantity must be a decimal string"),
        ({"quantity": "\uff11"}, "last_quantity must be a decimal string"),  # full-width 1
        ({"price": "NaN"}, "last_price must be a finite number"),
        ({"price": "1e-999"}, "last_price is out of range"),
        ({"fee": "1e-999999"}, "fee must be a decimal string"),
        ({"quantity": "1" * 10_000}, "last_quantity must be at most 40 characters, got '1{32}…'$"),
    ],
)
def test_fill_with_bad_amounts_raises_and_changes_nothing(
    changes: dict[str, str], problem: str
) -> None:
    order = order_in(ACCEPTED)
    before = copy.deepcopy(order)
    with pytest.raises(InvalidExecutionReport, match=problem):
        order.apply_execution(report(Trigger.PARTIALLY_FILLED, **changes), 3, NOW)
    assert order == before


@pytest.mark.parametrize(
    ("make_report", "problem"),
    [
        (
            lambda: events_pb2.ExecutionReport(
                execution_type=S.EXECUTION_TYPE_FILLED, order_id="o-1", last_quantity="1"
            ),
            "has no trade_id",
        ),
        (
            lambda: events_pb2.ExecutionReport(
                execution_type=S.EXECUTION_TYPE_ACCEPTED, order_id="o-2"
            ),
            "for order o-2 applied to order o-1",
        ),
        (lambda: events_pb2.ExecutionReport(order_id="o-1"), "unknown execution type 0"),
    ],
)
def test_malformed_report_raises_and_changes_nothing(
    make_report: Callable[[], events_pb2.ExecutionReport], problem: str
) -> None:
    order = order_in(ACCEPTED)
    before = copy.deepcopy(order)
    with pytest.raises(InvalidExecutionReport, match=problem):
        order.apply_execution(make_report(), 3, NOW)
    assert order == before


# --- acknowledgements, endings and cancels --------------------------------------------------


def test_acknowledgement_arriving_after_a_fill_does_not_move_the_order_back() -> None:
    order = order_in(SUBMITTED)
    order.apply_execution(report(Trigger.PARTIALLY_FILLED, quantity="3", venue_order_id=""), 2, NOW)
    order.apply_execution(report(Trigger.ACCEPTED, venue_order_id="v-9"), 3, LATER)
    assert order.status == PARTIALLY_FILLED
    assert order.filled_quantity == 3
    assert order.venue_order_id == "v-9"
    assert order.sequence == 3


def test_acknowledgement_after_cancel_request_keeps_pending_cancel() -> None:
    order = order_in(SUBMITTED)
    order.request_cancel(2, NOW)
    order.apply_execution(report(Trigger.ACCEPTED), 3, NOW)
    assert order.status == PENDING_CANCEL


@pytest.mark.parametrize("trigger", [Trigger.REJECTED, Trigger.CANCELED, Trigger.EXPIRED])
def test_ending_report_keeps_the_venue_message(trigger: Trigger) -> None:
    order = order_in(SUBMITTED)
    order.apply_execution(report(trigger, message="insufficient liquidity"), 2, NOW)
    assert order.status_message == "insufficient liquidity"
    assert order.is_finished and order.leaves_quantity == 0


def test_canceled_after_partial_fill_keeps_the_fill_and_leaves_nothing() -> None:
    order = order_in(PARTIALLY_FILLED)
    order.apply_execution(report(Trigger.CANCELED, message="canceled by user"), 4, NOW)
    assert order.status == CANCELED
    assert order.filled_quantity == 1
    assert order.leaves_quantity == 0


@pytest.mark.parametrize("status", sorted(FINISHED_STATUSES), ids=types_pb2.OrderStatus.Name)
def test_cancel_request_for_finished_order_raises_not_cancelable(status: OrderStatus) -> None:
    order = order_in(status)
    before = copy.deepcopy(order)
    with pytest.raises(OrderNotCancelable, match="can no longer be canceled"):
        order.request_cancel(9, LATER)
    assert order == before


def test_second_cancel_request_raises_not_cancelable() -> None:
    order = order_in(PENDING_CANCEL)
    with pytest.raises(OrderNotCancelable, match="already PENDING_CANCEL"):
        order.request_cancel(9, LATER)


def test_not_cancelable_is_an_invalid_transition() -> None:
    assert issubclass(OrderNotCancelable, InvalidOrderTransition)


# --- wire form -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", ALL_STATUSES, ids=types_pb2.OrderStatus.Name)
def test_order_survives_a_proto_round_trip_except_applied_trade_ids(status: OrderStatus) -> None:
    order = order_in(status)
    restored = Order.from_proto(order.to_proto())
    assert restored.applied_trade_ids == set()
    restored.applied_trade_ids = order.applied_trade_ids
    restored.venue_accepted = order.venue_accepted  # kept beside the proto, in the journal
    assert restored == order


@pytest.mark.parametrize(
    ("path", "back_to"),
    [
        ([], SUBMITTED),
        ([Trigger.ACCEPTED], ACCEPTED),
        ([Trigger.ACCEPTED, Trigger.PARTIALLY_FILLED], PARTIALLY_FILLED),
    ],
    ids=["submitted", "accepted", "partially-filled"],
)
def test_a_rejected_cancel_puts_the_order_back_in_the_status_it_had(
    path: list[Trigger], back_to: OrderStatus
) -> None:
    order = Order.accepted(order_request(), "o-1", NOW)
    for sequence, trigger in enumerate([*path, Trigger.CANCEL_REQUESTED], start=2):
        apply(order, trigger, sequence, NOW)
    assert order.status == PENDING_CANCEL

    changed = order.apply_execution(
        report(Trigger.CANCEL_REJECTED, message="too late to cancel"), 9, LATER
    )

    assert changed is True
    assert (order.status, order.status_message, order.sequence) == (
        back_to,
        "too late to cancel",
        9,
    )


def test_a_late_cancel_rejection_of_a_finished_order_changes_nothing() -> None:
    order = order_in(FILLED)
    before = copy.deepcopy(order)

    changed = order.apply_execution(report(Trigger.CANCEL_REJECTED), 9, LATER)

    assert changed is False
    assert order == before


def test_proto_carries_decimal_strings_and_leaves_quantity() -> None:
    order = order_in(ACCEPTED)
    order.apply_execution(
        report(Trigger.PARTIALLY_FILLED, quantity="2.50", price="100.10", fee="0.0100"), 3, NOW
    )
    wire = order.to_proto()
    assert (wire.quantity, wire.filled_quantity, wire.leaves_quantity) == ("10", "2.5", "7.5")
    assert (wire.average_fill_price, wire.fees, wire.limit_price) == ("100.1", "0.01", "100")
    assert wire.create_time.ToDatetime(tzinfo=UTC) == NOW


def test_market_order_without_fills_has_empty_price_fields_on_the_wire() -> None:
    order = Order.accepted(order_request(limit_price=None), "o-1", NOW)
    wire = order.to_proto()
    assert (wire.limit_price, wire.average_fill_price) == ("", "")
    restored = Order.from_proto(wire)
    assert (restored.limit_price, restored.average_fill_price) == (None, None)


def test_average_fill_price_is_rounded_half_even_to_the_orders_precision_on_the_wire() -> None:
    order = Order.accepted(
        order_request(limit_price=None),
        "o-1",
        NOW,
        precision=Precision(average_price_decimals=6, quote_decimals=2),
    )
    order.apply_execution(report(Trigger.PARTIALLY_FILLED, quantity="1", price="100"), 2, NOW)
    order.apply_execution(report(Trigger.PARTIALLY_FILLED, quantity="2", price="100.01"), 3, NOW)
    assert order.average_fill_price == Decimal("300.02") / 3  # 100.00666..., kept internally
    assert order.to_proto().average_fill_price == "100.006667"
    restored = Order.from_proto(order.to_proto(), Precision(6, 2))
    assert restored.to_proto().average_fill_price == "100.006667"


def test_average_fill_price_without_an_instruments_precision_has_eight_decimals() -> None:
    order = Order.accepted(order_request(limit_price=None), "o-1", NOW)
    order.apply_execution(report(Trigger.PARTIALLY_FILLED, quantity="3", price="100"), 2, NOW)
    order.apply_execution(report(Trigger.PARTIALLY_FILLED, quantity="4", price="59307.01"), 3, NOW)
    assert order.to_proto().average_fill_price == "33932.57714286"


# --- modify ----------------------------------------------------------------------------------


def modify_answer(
    trigger: Trigger, cumulative: str, leaves: str, limit_price: str = ""
) -> events_pb2.ExecutionReport:
    answer = report(trigger, message="as the venue said")
    answer.request_id = CHANGE.request_id
    answer.cumulative_quantity, answer.leaves_quantity = cumulative, leaves
    answer.limit_price = limit_price
    return answer


@pytest.mark.parametrize("status", [ACCEPTED, PARTIALLY_FILLED], ids=types_pb2.OrderStatus.Name)
def test_modified_takes_the_venues_quantity_and_price_and_goes_back_to_working(
    status: OrderStatus,
) -> None:
    order = order_in(status)
    order.request_modify(CHANGE, 5, NOW)
    assert (order.status, order.pending_change) == (PENDING_UPDATE, CHANGE)
    filled = order.filled_quantity
    answer = modify_answer(Trigger.MODIFIED, str(filled), str(12 - filled), "101")
    assert order.apply_execution(answer, 6, LATER)
    assert (order.status, order.quantity, order.limit_price) == (
        status,
        Decimal(12),
        Decimal("101"),
    )
    assert order.pending_change is None
    assert order.leaves_quantity == 12 - filled


def test_modify_rejected_leaves_the_order_as_it_was_with_the_venues_reason() -> None:
    order = order_in(PARTIALLY_FILLED)
    order.request_modify(CHANGE, 5, NOW)
    assert order.apply_execution(modify_answer(Trigger.MODIFY_REJECTED, "1", "9"), 6, LATER)
    assert (order.status, order.quantity, order.limit_price) == (
        PARTIALLY_FILLED,
        Decimal(10),
        Decimal("100"),
    )
    assert order.pending_change is None
    assert order.status_message == "as the venue said"


def test_modified_after_a_cancel_was_asked_changes_the_order_and_keeps_pending_cancel() -> None:
    order = order_in(PENDING_UPDATE)
    order.request_cancel(5, NOW)
    order.apply_execution(modify_answer(Trigger.MODIFIED, "0", "12", "101"), 6, LATER)
    assert (order.status, order.quantity) == (PENDING_CANCEL, Decimal(12))


@pytest.mark.parametrize("trigger", [Trigger.MODIFIED, Trigger.MODIFY_REJECTED])
def test_a_late_modify_answer_for_a_finished_order_changes_nothing(trigger: Trigger) -> None:
    order = order_in(PENDING_UPDATE)
    apply(order, Trigger.FILLED)
    before = copy.deepcopy(order)
    assert not order.apply_execution(modify_answer(trigger, "10", "0", "101"), 12, LATER)
    assert order == before


def test_a_pending_increase_counts_toward_risk_before_the_venue_answers() -> None:
    order = order_in(ACCEPTED)
    order.request_modify(CHANGE, 5, NOW)
    assert order.leaves_quantity == 10
    assert order.leaves_at_risk == 12
    smaller = order_in(ACCEPTED)
    smaller.request_modify(OrderChange("m-2", quantity=Decimal("4")), 5, NOW)
    assert smaller.leaves_at_risk == 10  # until the venue has taken the decrease


@pytest.mark.parametrize(
    ("status", "wanted"),
    [
        (SUBMITTED, "has not acknowledged it yet"),
        (PENDING_CANCEL, "wait for the venue's answer"),
        (PENDING_UPDATE, "wait for the venue's answer"),
        (FILLED, "can no longer be modified"),
    ],
    ids=["submitted", "pending-cancel", "pending-update", "filled"],
)
def test_a_modify_that_cannot_be_asked_says_why(status: OrderStatus, wanted: str) -> None:
    order = order_in(status)
    with pytest.raises(OrderNotModifiable, match=wanted):
        order.ensure_modifiable()


def test_a_pending_change_survives_a_proto_round_trip() -> None:
    order = order_in(PENDING_UPDATE)
    assert Order.from_proto(order.to_proto()).pending_change == CHANGE
