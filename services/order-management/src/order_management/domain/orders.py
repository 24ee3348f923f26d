"""The order and its state machine: one transition table, plain data, the clock passed in.

Decimals of an execution report are parsed with the one wire grammar (`parse_decimal`); a report
that breaks it is an InvalidExecutionReport. On the wire the average fill price, a division, is
rounded to the order's `Precision` (its instrument's tick decimals + 4, half-even); quantities,
prices and fees are exact and shown exactly.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import TypeAlias, TypeVar

from google.protobuf.timestamp_pb2 import Timestamp
from trading.v1 import events_pb2, orders_pb2, types_pb2
from trading_core.decimals import DEFAULT_PRECISION, ZERO, Precision, format_decimal, parse_decimal
from trading_core.events import timestamp

from order_management.domain.validation import (
    STOP_TYPES,
    Denial,
    DenialReason,
    Execution,
    Exits,
    OffsetType,
    OrderClass,
    OrderRequest,
    OrderRole,
    OrderType,
    Side,
    TimeInForce,
    TriggerType,
)

OrderStatus: TypeAlias = types_pb2.OrderStatus.ValueType
_E = TypeVar("_E", bound=int)


class Trigger(enum.Enum):
    """What moves an order: the venue's execution types, plus our own cancel request."""

    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially filled"
    FILLED = "filled"
    REJECTED = "rejected"
    CANCELED = "canceled"
    EXPIRED = "expired"
    CANCEL_REQUESTED = "cancel requested"
    CANCEL_REJECTED = "cancel rejected"
    MODIFY_REQUESTED = "modify requested"
    MODIFIED = "modified"
    MODIFY_REJECTED = "modify rejected"


_TRIGGER_OF_EXECUTION_TYPE = {
    types_pb2.EXECUTION_TYPE_ACCEPTED: Trigger.ACCEPTED,
    types_pb2.EXECUTION_TYPE_PARTIALLY_FILLED: Trigger.PARTIALLY_FILLED,
    types_pb2.EXECUTION_TYPE_FILLED: Trigger.FILLED,
    types_pb2.EXECUTION_TYPE_REJECTED: Trigger.REJECTED,
    types_pb2.EXECUTION_TYPE_CANCELED: Trigger.CANCELED,
    types_pb2.EXECUTION_TYPE_EXPIRED: Trigger.EXPIRED,
    types_pb2.EXECUTION_TYPE_CANCEL_REJECTED: Trigger.CANCEL_REJECTED,
    types_pb2.EXECUTION_TYPE_MODIFIED: Trigger.MODIFIED,
    types_pb2.EXECUTION_TYPE_MODIFY_REJECTED: Trigger.MODIFY_REJECTED,
}
_FILL_TRIGGERS = frozenset({Trigger.PARTIALLY_FILLED, Trigger.FILLED})
# Reports whose message tells a person why the order stopped.
_ENDING_TRIGGERS = frozenset({Trigger.REJECTED, Trigger.CANCELED, Trigger.EXPIRED})

_DENIED = types_pb2.ORDER_STATUS_DENIED
_SUBMITTED = types_pb2.ORDER_STATUS_SUBMITTED
_ACCEPTED = types_pb2.ORDER_STATUS_ACCEPTED
_PARTIALLY_FILLED = types_pb2.ORDER_STATUS_PARTIALLY_FILLED
_FILLED = types_pb2.ORDER_STATUS_FILLED
_PENDING_CANCEL = types_pb2.ORDER_STATUS_PENDING_CANCEL
_CANCELED = types_pb2.ORDER_STATUS_CANCELED
_REJECTED = types_pb2.ORDER_STATUS_REJECTED
_EXPIRED = types_pb2.ORDER_STATUS_EXPIRED
_HELD = types_pb2.ORDER_STATUS_HELD
_PENDING_UPDATE = types_pb2.ORDER_STATUS_PENDING_UPDATE
_NO_TRIGGER_TYPE = types_pb2.TRIGGER_TYPE_UNSPECIFIED
_NO_OFFSET_TYPE = types_pb2.TRAILING_OFFSET_TYPE_UNSPECIFIED

# Every allowed move; anything else raises InvalidOrderTransition. Decisions beyond the obvious:
# - A late or repeated ACCEPTED never moves an order back: ACCEPTED, PARTIALLY_FILLED and
#   PENDING_CANCEL keep their status (an ack often arrives after we asked to cancel).
# - A partial fill while a cancel is pending keeps PENDING_CANCEL; the venue still owes the answer.
# - REJECTED while PENDING_CANCEL: the cancel was requested before the venue answered the order
#   at all, and the venue then refused the order itself.
# - DENIED, FILLED, CANCELED, REJECTED and EXPIRED are terminal. PENDING_CANCEL never is: a
#   CANCEL_REJECTED report puts the order back where it was (see `_cancel_rejected`).
# - PENDING_UPDATE (a modify at the venue) is left by MODIFIED or MODIFY_REJECTED, back to what
#   the order was (see `_modify_answered`); it keeps filling meanwhile, and a cancel overrides
#   it (PENDING_CANCEL: a MODIFIED arriving then still changes the quantity and price).
# - A modify needs the venue to have acknowledged the order (ACCEPTED, PARTIALLY_FILLED).
_TRANSITIONS: dict[tuple[OrderStatus, Trigger], OrderStatus] = {
    (_SUBMITTED, Trigger.ACCEPTED): _ACCEPTED,
    (_SUBMITTED, Trigger.REJECTED): _REJECTED,
    (_SUBMITTED, Trigger.PARTIALLY_FILLED): _PARTIALLY_FILLED,
    (_SUBMITTED, Trigger.FILLED): _FILLED,
    (_SUBMITTED, Trigger.CANCELED): _CANCELED,
    (_SUBMITTED, Trigger.EXPIRED): _EXPIRED,
    (_SUBMITTED, Trigger.CANCEL_REQUESTED): _PENDING_CANCEL,
    (_ACCEPTED, Trigger.ACCEPTED): _ACCEPTED,
    (_ACCEPTED, Trigger.PARTIALLY_FILLED): _PARTIALLY_FILLED,
    (_ACCEPTED, Trigger.FILLED): _FILLED,
    (_ACCEPTED, Trigger.CANCELED): _CANCELED,
    (_ACCEPTED, Trigger.EXPIRED): _EXPIRED,
    (_ACCEPTED, Trigger.CANCEL_REQUESTED): _PENDING_CANCEL,
    (_PARTIALLY_FILLED, Trigger.ACCEPTED): _PARTIALLY_FILLED,
    (_PARTIALLY_FILLED, Trigger.PARTIALLY_FILLED): _PARTIALLY_FILLED,
    (_PARTIALLY_FILLED, Trigger.FILLED): _FILLED,
    (_PARTIALLY_FILLED, Trigger.CANCELED): _CANCELED,
    (_PARTIALLY_FILLED, Trigger.EXPIRED): _EXPIRED,
    (_PARTIALLY_FILLED, Trigger.CANCEL_REQUESTED): _PENDING_CANCEL,
    (_PENDING_CANCEL, Trigger.ACCEPTED): _PENDING_CANCEL,
    (_PENDING_CANCEL, Trigger.PARTIALLY_FILLED): _PENDING_CANCEL,
    (_PENDING_CANCEL, Trigger.FILLED): _FILLED,
    (_PENDING_CANCEL, Trigger.CANCELED): _CANCELED,
    (_PENDING_CANCEL, Trigger.EXPIRED): _EXPIRED,
    (_PENDING_CANCEL, Trigger.REJECTED): _REJECTED,
    (_ACCEPTED, Trigger.MODIFY_REQUESTED): _PENDING_UPDATE,
    (_PARTIALLY_FILLED, Trigger.MODIFY_REQUESTED): _PENDING_UPDATE,
    (_PENDING_UPDATE, Trigger.ACCEPTED): _PENDING_UPDATE,
    (_PENDING_UPDATE, Trigger.PARTIALLY_FILLED): _PENDING_UPDATE,
    (_PENDING_UPDATE, Trigger.FILLED): _FILLED,
    (_PENDING_UPDATE, Trigger.CANCELED): _CANCELED,
    (_PENDING_UPDATE, Trigger.EXPIRED): _EXPIRED,
    (_PENDING_UPDATE, Trigger.CANCEL_REQUESTED): _PENDING_CANCEL,
}

# HELD: order-management holds it (a stop before its trigger, an exit before its entry); it
# leaves HELD only through `release` (to SUBMITTED), `withdraw` (CANCELED, EXPIRED) or
# `deny_release` (DENIED), never through a venue's report.
OPEN_STATUSES = frozenset(
    {_HELD, _SUBMITTED, _ACCEPTED, _PARTIALLY_FILLED, _PENDING_CANCEL, _PENDING_UPDATE}
)
FINISHED_STATUSES = frozenset({_DENIED, _FILLED, _CANCELED, _REJECTED, _EXPIRED})


def status_name(status: OrderStatus) -> str:
    """FILLED for ORDER_STATUS_FILLED: short enough for messages."""
    return types_pb2.OrderStatus.Name(status).removeprefix("ORDER_STATUS_")


class InvalidOrderTransition(Exception):
    """The order cannot take this trigger in its current status; nothing was changed."""

    def __init__(
        self, order_id: str, status: OrderStatus, trigger: Trigger, message: str = ""
    ) -> None:
        super().__init__(
            message or f"order {order_id} in status {status_name(status)} cannot be {trigger.value}"
        )
        self.order_id = order_id
        self.status = status
        self.trigger = trigger


class OrderNotCancelable(InvalidOrderTransition):
    """A cancel was requested for an order that is finished or already pending cancel."""


class OrderNotModifiable(InvalidOrderTransition):
    """A modify was asked of an order that is finished, not yet acknowledged by its venue, or
    already being canceled or modified."""


@dataclass(frozen=True)
class OrderChange:
    """A change of an open order (ModifyOrder); None keeps each value."""

    request_id: str
    quantity: Decimal | None = None
    limit_price: Decimal | None = None
    trigger_price: Decimal | None = None

    def to_proto(self) -> orders_pb2.OrderChange:
        return orders_pb2.OrderChange(
            request_id=self.request_id,
            quantity=format_decimal(self.quantity),
            limit_price=format_decimal(self.limit_price),
            trigger_price=format_decimal(self.trigger_price),
        )

    @classmethod
    def from_proto(cls, change: orders_pb2.OrderChange) -> OrderChange:
        return cls(
            request_id=change.request_id,
            quantity=_optional_decimal(change.quantity),
            limit_price=_optional_decimal(change.limit_price),
            trigger_price=_optional_decimal(change.trigger_price),
        )


class InvalidExecutionReport(ValueError):
    """A report that cannot be applied as it stands (wrong order, missing or bad fill data)."""


@dataclass(kw_only=True)
class Order:
    order_id: str
    client_order_id: str
    request_id: str
    account_id: str
    strategy_id: str
    signal_id: str
    instrument: str
    side: Side
    order_type: OrderType
    time_in_force: TimeInForce
    quantity: Decimal
    limit_price: Decimal | None
    status: OrderStatus
    reduce_only: bool = False
    denial_reason: DenialReason = types_pb2.DENIAL_REASON_UNSPECIFIED
    filled_quantity: Decimal = ZERO
    average_fill_price: Decimal | None = None
    fees: Decimal = ZERO
    status_message: str = ""
    venue: str = ""
    venue_order_id: str = ""
    sequence: int = 0
    create_time: datetime
    update_time: datetime
    # Whether the venue has said it has the order (an ACCEPTED report or a fill).
    venue_accepted: bool = False
    # Fills already applied, so a redelivered fill is applied once (not carried by the proto).
    applied_trade_ids: set[str] = field(default_factory=set)
    # How derived amounts are shown on the wire; the instrument's (not carried by the proto).
    precision: Precision = field(default=DEFAULT_PRECISION, compare=False)
    trigger_price: Decimal | None = None
    trigger_type: TriggerType = types_pb2.TRIGGER_TYPE_BID_ASK
    trailing_offset: Decimal | None = None
    trailing_offset_type: OffsetType = types_pb2.TRAILING_OFFSET_TYPE_PRICE
    limit_offset: Decimal | None = None
    display_quantity: Decimal | None = None
    expire_time: datetime | None = None
    post_only: bool = False
    order_class: OrderClass = types_pb2.ORDER_CLASS_UNSPECIFIED
    exits: Exits | None = None
    role: OrderRole = types_pb2.ORDER_ROLE_UNSPECIFIED
    parent_order_id: str = ""
    oco_order_id: str = ""
    child_order_ids: list[str] = field(default_factory=list)
    trigger_time: datetime | None = None
    # PENDING_UPDATE: the modify the venue has not answered yet.
    pending_change: OrderChange | None = None
    # How the router works it (an algorithm, splitting); None: at once, whole.
    execution: Execution | None = None

    # --- construction --------------------------------------------------------------------

    @classmethod
    def accepted(
        cls,
        request: OrderRequest,
        order_id: str,
        now: datetime,
        *,
        sequence: int = 1,
        precision: Precision = DEFAULT_PRECISION,
    ) -> Order:
        return cls._from_request(request, order_id, _SUBMITTED, now, sequence, precision=precision)

    @classmethod
    def held(
        cls,
        request: OrderRequest,
        order_id: str,
        now: datetime,
        *,
        precision: Precision = DEFAULT_PRECISION,
    ) -> Order:
        """An order order-management keeps until its trigger or its entry: status HELD."""
        return cls._from_request(request, order_id, _HELD, now, 1, precision=precision)

    @classmethod
    def denied(
        cls,
        request: OrderRequest,
        order_id: str,
        denial: Denial,
        now: datetime,
        *,
        sequence: int = 1,
        precision: Precision = DEFAULT_PRECISION,
    ) -> Order:
        order = cls._from_request(request, order_id, _DENIED, now, sequence, precision=precision)
        order.denial_reason = denial.reason
        order.status_message = denial.message
        return order

    @classmethod
    def _from_request(
        cls,
        request: OrderRequest,
        order_id: str,
        status: OrderStatus,
        now: datetime,
        sequence: int,
        *,
        precision: Precision,
    ) -> Order:
        return cls(
            order_id=order_id,
            status=status,
            sequence=sequence,
            create_time=now,
            update_time=now,
            precision=precision,
            **{name: getattr(request, name) for name in _REQUEST_FIELDS},
        )

    # --- state ---------------------------------------------------------------------------

    @property
    def leaves_quantity(self) -> Decimal:
        """What can still trade: nothing once the order is finished."""
        return ZERO if self.is_finished else self.quantity - self.filled_quantity

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def is_held(self) -> bool:
        return self.status == _HELD

    @property
    def is_stop(self) -> bool:
        """Whether it has a trigger (a stop or trailing stop, emulated by order-management, or
        held by a venue that holds stops natively)."""
        return self.order_type in STOP_TYPES

    @property
    def stop_at_venue(self) -> bool:
        """A stop sent on untriggered, for a venue to hold natively: never HELD here, so never
        triggered here (an emulated stop is released only once triggered)."""
        return self.is_stop and not self.is_held and self.trigger_time is None

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def leaves_at_risk(self) -> Decimal:
        """What may still trade as far as risk is concerned: the larger of the leaves before
        and after a pending modify (the venue may apply it any moment, or refuse it)."""
        change = self.pending_change
        if change is None or change.quantity is None or self.is_finished:
            return self.leaves_quantity
        return max(self.leaves_quantity, change.quantity - self.filled_quantity)

    # --- transitions ---------------------------------------------------------------------

    def apply_execution(
        self, report: events_pb2.ExecutionReport, sequence: int, now: datetime
    ) -> bool:
        """Applies a venue report. False (and nothing changed) for a fill already applied.

        Raises InvalidOrderTransition or InvalidExecutionReport, changing nothing.
        """
        if report.order_id and report.order_id != self.order_id:
            raise InvalidExecutionReport(
                f"execution report for order {report.order_id} applied to order {self.order_id}"
            )
        trigger = _TRIGGER_OF_EXECUTION_TYPE.get(report.execution_type)
        if trigger is None:
            raise InvalidExecutionReport(
                f"execution report for order {self.order_id} has unknown execution type "
                f"{report.execution_type}"
            )
        if trigger is Trigger.CANCEL_REJECTED:
            return self._cancel_rejected(report, sequence, now)
        if trigger in (Trigger.MODIFIED, Trigger.MODIFY_REJECTED):
            return self._modify_answered(report, trigger, sequence, now)
        if trigger in _FILL_TRIGGERS:
            return self._apply_fill(report, trigger, sequence, now)
        self.status = self._next_status(trigger)
        self.venue_accepted = self.venue_accepted or trigger is Trigger.ACCEPTED
        if trigger in _ENDING_TRIGGERS:
            self.status_message = report.message
        self._record_venue(report)
        self._touch(sequence, now)
        return True

    def release(self, sequence: int, now: datetime) -> None:
        """A held order goes to the venue: HELD to SUBMITTED."""
        self._require_held("released")
        self.status = _SUBMITTED
        self._touch(sequence, now)

    def withdraw(self, status: OrderStatus, message: str, sequence: int, now: datetime) -> None:
        """A held order finished by order-management itself: CANCELED or EXPIRED."""
        self._require_held("withdrawn")
        if status not in (_CANCELED, _EXPIRED):
            raise ValueError(f"a held order is withdrawn as CANCELED or EXPIRED, not {status}")
        self.status = status
        self.status_message = message
        self._touch(sequence, now)

    def deny_release(self, denial: Denial, sequence: int, now: datetime) -> None:
        """A held order whose release the checks refused: DENIED."""
        self._require_held("denied")
        self.status = _DENIED
        self.denial_reason = denial.reason
        self.status_message = denial.message
        self._touch(sequence, now)

    def amend(
        self,
        sequence: int,
        now: datetime,
        *,
        quantity: Decimal | None = None,
        trigger_price: Decimal | None = None,
        limit_price: Decimal | None = None,
    ) -> None:
        """Changes a held order's quantity, trigger or limit (None keeps each)."""
        self._require_held("amended")
        self.quantity = self.quantity if quantity is None else quantity
        self.trigger_price = self.trigger_price if trigger_price is None else trigger_price
        self.limit_price = self.limit_price if limit_price is None else limit_price
        self._touch(sequence, now)

    def triggered(self, sequence: int, now: datetime) -> None:
        """A held stop's trigger was reached (it stays HELD until released)."""
        self._require_held("triggered")
        self.trigger_time = now
        self._touch(sequence, now)

    def _require_held(self, what: str) -> None:
        if self.status != _HELD:
            raise InvalidOrderTransition(
                self.order_id,
                self.status,
                Trigger.CANCEL_REQUESTED,
                f"order {self.order_id} is {status_name(self.status)}: only a HELD order "
                f"can be {what}",
            )

    def request_cancel(self, sequence: int, now: datetime) -> None:
        """Marks the order PENDING_CANCEL; raises OrderNotCancelable when it cannot be."""
        if (self.status, Trigger.CANCEL_REQUESTED) not in _TRANSITIONS:
            raise OrderNotCancelable(
                self.order_id,
                self.status,
                Trigger.CANCEL_REQUESTED,
                self._not_cancelable_message(),
            )
        self.status = _TRANSITIONS[(self.status, Trigger.CANCEL_REQUESTED)]
        self._touch(sequence, now)

    def _cancel_rejected(
        self, report: events_pb2.ExecutionReport, sequence: int, now: datetime
    ) -> bool:
        """The venue could not cancel: a pending cancel goes back to the status the order had.
        A late rejection (the order finished meanwhile) changes nothing."""
        if self.status != _PENDING_CANCEL:
            return False
        self.status = self._working_status()
        self.status_message = report.message
        self._touch(sequence, now)
        return True

    def _working_status(self) -> OrderStatus:
        """What an open order at a venue is when no cancel or modify is pending."""
        if self.filled_quantity > 0:
            return _PARTIALLY_FILLED
        return _ACCEPTED if self.venue_accepted else _SUBMITTED

    def ensure_modifiable(self) -> None:
        """Raises OrderNotModifiable unless a modify may be asked now: of a held order (changed
        at once), or of one its venue has acknowledged with nothing pending."""
        if not self.is_held and (self.status, Trigger.MODIFY_REQUESTED) not in _TRANSITIONS:
            raise OrderNotModifiable(
                self.order_id,
                self.status,
                Trigger.MODIFY_REQUESTED,
                self._not_modifiable_message(),
            )

    def request_modify(self, change: OrderChange, sequence: int, now: datetime) -> None:
        """PENDING_UPDATE with `change`; raises OrderNotModifiable when the order cannot be."""
        if self.is_held:
            raise OrderNotModifiable(
                self.order_id, self.status, Trigger.MODIFY_REQUESTED, "a held order is amended"
            )
        self.ensure_modifiable()
        self.status = _TRANSITIONS[(self.status, Trigger.MODIFY_REQUESTED)]
        self.pending_change = change
        self._touch(sequence, now)

    def _not_modifiable_message(self) -> str:
        name = status_name(self.status)
        if self.status == _SUBMITTED:
            return (
                f"order {self.order_id} is {name}: its venue has not acknowledged it yet; "
                "modify it once it is ACCEPTED"
            )
        if self.status in (_PENDING_CANCEL, _PENDING_UPDATE):
            return f"order {self.order_id} is {name}: wait for the venue's answer first"
        return f"order {self.order_id} is {name} and can no longer be modified"

    def _modify_answered(
        self, report: events_pb2.ExecutionReport, trigger: Trigger, sequence: int, now: datetime
    ) -> bool:
        """The venue's answer to a modify. MODIFIED takes its quantity (cumulative + leaves)
        and limit price from the report, the venue's word; MODIFY_REJECTED keeps the order as
        it was. A PENDING_UPDATE goes back to the working status; an answer after a cancel was
        asked (PENDING_CANCEL) or the order finished changes only what is still open."""
        if self.is_finished or self.pending_change is None:
            return False
        if trigger is Trigger.MODIFIED:
            cumulative = self._report_decimal(
                report, "cumulative_quantity", report.cumulative_quantity or "0"
            )
            leaves = self._report_decimal(report, "leaves_quantity", report.leaves_quantity)
            self.quantity = cumulative + leaves
            self.limit_price = _optional_decimal(report.limit_price) or self.limit_price
        self.pending_change = None
        if self.status == _PENDING_UPDATE:
            self.status = self._working_status()
        self.status_message = report.message
        self._record_venue(report)
        self._touch(sequence, now)
        return True

    def _not_cancelable_message(self) -> str:
        name = status_name(self.status)
        if self.status == _PENDING_CANCEL:
            return f"order {self.order_id} is already {name}: a cancel was requested"
        return f"order {self.order_id} is {name} and can no longer be canceled"

    def _apply_fill(
        self, report: events_pb2.ExecutionReport, trigger: Trigger, sequence: int, now: datetime
    ) -> bool:
        if not report.trade_id:
            raise InvalidExecutionReport(f"fill for order {self.order_id} has no trade_id")
        if report.trade_id in self.applied_trade_ids:
            return False
        self._next_status(trigger)  # a fill on a finished order is a bad transition first
        quantity, price, fee = self._fill_amounts(report)
        filled = self.filled_quantity + quantity
        if filled > self.quantity:
            raise InvalidExecutionReport(
                f"fill {report.trade_id} of {format_decimal(quantity)} would take order "
                f"{self.order_id} to {format_decimal(filled)}, over its quantity "
                f"{format_decimal(self.quantity)}"
            )
        # A fill that completes the quantity finishes the order whatever the report calls it.
        self.status = self._next_status(Trigger.FILLED if filled == self.quantity else trigger)
        previous_value = (self.average_fill_price or ZERO) * self.filled_quantity
        self.average_fill_price = (previous_value + price * quantity) / filled
        self.filled_quantity = filled
        self.fees += fee
        self.venue_accepted = True
        self.applied_trade_ids.add(report.trade_id)
        self._record_venue(report)
        self._touch(sequence, now)
        return True

    def _fill_amounts(self, report: events_pb2.ExecutionReport) -> tuple[Decimal, Decimal, Decimal]:
        quantity = self._report_decimal(report, "last_quantity", report.last_quantity)
        price = self._report_decimal(report, "last_price", report.last_price)
        fee = self._report_decimal(report, "fee", report.fee or "0")
        if quantity <= 0 or price <= 0:
            raise InvalidExecutionReport(
                f"fill {report.trade_id} for order {self.order_id} needs a positive quantity "
                f"and price, got {report.last_quantity!r} at {report.last_price!r}"
            )
        return quantity, price, fee

    def _report_decimal(self, report: events_pb2.ExecutionReport, name: str, text: str) -> Decimal:
        try:
            value = parse_decimal(text, name)
        except ValueError as error:
            what = f"fill {report.trade_id}" if report.trade_id else "report"
            raise InvalidExecutionReport(f"{what} for order {self.order_id}: {error}") from None
        assert value is not None  # required=True never returns None
        return value

    def _next_status(self, trigger: Trigger) -> OrderStatus:
        next_status = _TRANSITIONS.get((self.status, trigger))
        if next_status is None:
            raise InvalidOrderTransition(self.order_id, self.status, trigger)
        return next_status

    def _record_venue(self, report: events_pb2.ExecutionReport) -> None:
        self.venue = report.venue or self.venue
        self.venue_order_id = report.venue_order_id or self.venue_order_id

    def _touch(self, sequence: int, now: datetime) -> None:
        self.sequence = sequence
        self.update_time = now

    # --- wire form -----------------------------------------------------------------------

    def to_proto(self) -> orders_pb2.Order:
        return orders_pb2.Order(
            order_id=self.order_id,
            client_order_id=self.client_order_id,
            request_id=self.request_id,
            account_id=self.account_id,
            strategy_id=self.strategy_id,
            signal_id=self.signal_id,
            instrument=self.instrument,
            side=self.side,
            order_type=self.order_type,
            time_in_force=self.time_in_force,
            quantity=format_decimal(self.quantity),
            limit_price=format_decimal(self.limit_price),
            status=self.status,
            filled_quantity=format_decimal(self.filled_quantity),
            leaves_quantity=format_decimal(self.leaves_quantity),
            average_fill_price=format_decimal(
                self.precision.average_price(self.average_fill_price)
            ),
            fees=format_decimal(self.fees),
            denial_reason=self.denial_reason,
            status_message=self.status_message,
            venue=self.venue,
            venue_order_id=self.venue_order_id,
            version=self.sequence,
            create_time=timestamp(self.create_time),
            update_time=timestamp(self.update_time),
            reduce_only=self.reduce_only,
            trigger_price=format_decimal(self.trigger_price),
            trigger_type=self.trigger_type if self.is_stop else _NO_TRIGGER_TYPE,
            trailing_offset=format_decimal(self.trailing_offset),
            trailing_offset_type=(
                self.trailing_offset_type if self.trailing_offset else _NO_OFFSET_TYPE
            ),
            limit_offset=format_decimal(self.limit_offset),
            display_quantity=format_decimal(self.display_quantity),
            expire_time=_optional_timestamp(self.expire_time),
            post_only=self.post_only,
            order_class=self.order_class,
            role=self.role,
            parent_order_id=self.parent_order_id,
            oco_order_id=self.oco_order_id,
            child_order_ids=self.child_order_ids,
            trigger_time=_optional_timestamp(self.trigger_time),
            take_profit=_take_profit(self.exits),
            stop_loss=_stop_loss(self.exits),
            pending_change=self.pending_change.to_proto() if self.pending_change else None,
            execution=self.execution.to_proto() if self.execution else None,
        )

    @classmethod
    def from_proto(cls, order: orders_pb2.Order, precision: Precision = DEFAULT_PRECISION) -> Order:
        """The order from its wire form (our own snapshot, trusted); which fills were applied
        is not on the wire."""
        return cls(
            order_id=order.order_id,
            client_order_id=order.client_order_id,
            request_id=order.request_id,
            account_id=order.account_id,
            strategy_id=order.strategy_id,
            signal_id=order.signal_id,
            instrument=order.instrument,
            side=order.side,
            order_type=order.order_type,
            time_in_force=order.time_in_force,
            quantity=Decimal(order.quantity),
            limit_price=_optional_decimal(order.limit_price),
            status=order.status,
            reduce_only=order.reduce_only,
            denial_reason=order.denial_reason,
            filled_quantity=_optional_decimal(order.filled_quantity) or ZERO,
            average_fill_price=_optional_decimal(order.average_fill_price),
            fees=_optional_decimal(order.fees) or ZERO,
            status_message=order.status_message,
            venue=order.venue,
            venue_order_id=order.venue_order_id,
            sequence=order.version,
            create_time=order.create_time.ToDatetime(tzinfo=UTC),
            update_time=order.update_time.ToDatetime(tzinfo=UTC),
            precision=precision,
            trigger_price=_optional_decimal(order.trigger_price),
            trigger_type=_or_default(order.trigger_type, types_pb2.TRIGGER_TYPE_BID_ASK),
            trailing_offset=_optional_decimal(order.trailing_offset),
            trailing_offset_type=_or_default(
                order.trailing_offset_type, types_pb2.TRAILING_OFFSET_TYPE_PRICE
            ),
            limit_offset=_optional_decimal(order.limit_offset),
            display_quantity=_optional_decimal(order.display_quantity),
            expire_time=_optional_time(order, "expire_time"),
            post_only=order.post_only,
            order_class=order.order_class,
            exits=_exits_of(order),
            role=order.role,
            parent_order_id=order.parent_order_id,
            oco_order_id=order.oco_order_id,
            child_order_ids=list(order.child_order_ids),
            trigger_time=_optional_time(order, "trigger_time"),
            pending_change=(
                OrderChange.from_proto(order.pending_change)
                if order.HasField("pending_change")
                else None
            ),
            execution=Execution.from_proto(order.execution)
            if order.HasField("execution")
            else None,
        )

    def as_submitted(self) -> OrderRequest:
        """The order as the request that made it, with its current quantity and prices."""
        return OrderRequest(**{name: getattr(self, name) for name in _REQUEST_FIELDS})

    def as_request(self) -> OrderRequest:
        """The order as a request of the kind the venue gets: a stop as the market or limit
        order it becomes once triggered (what its release is checked as)."""
        return replace(
            self.as_submitted(),
            order_type=self.venue_order_type,
            trigger_price=None,
            trailing_offset=None,
            limit_offset=None,
            exits=None,
        )

    @property
    def venue_order_type(self) -> OrderType:
        """What the venue holds: a stop-market becomes a market order, a stop-limit a limit
        (a stop the venue holds natively stays what it is)."""
        if not self.is_stop or self.stop_at_venue:
            return self.order_type
        limited = self.order_type in (
            types_pb2.ORDER_TYPE_STOP_LIMIT,
            types_pb2.ORDER_TYPE_TRAILING_STOP_LIMIT,
        )
        return types_pb2.ORDER_TYPE_LIMIT if limited else types_pb2.ORDER_TYPE_MARKET

    def venue_proto(self) -> orders_pb2.Order:
        """The order as the venue holds it, for the SubmitOrder command: a stop is sent as the
        market order (stop-market) or limit order (stop-limit) it becomes once triggered, or
        with its trigger price to a venue that holds stops natively."""
        order = self.to_proto()
        order.order_type = self.venue_order_type
        order.ClearField("trigger_type")
        order.ClearField("trailing_offset_type")
        return order


# The fields an order takes from its request as they are.
_REQUEST_FIELDS = (
    "client_order_id",
    "request_id",
    "account_id",
    "strategy_id",
    "signal_id",
    "instrument",
    "side",
    "order_type",
    "time_in_force",
    "quantity",
    "limit_price",
    "reduce_only",
    "trigger_price",
    "trigger_type",
    "trailing_offset",
    "trailing_offset_type",
    "limit_offset",
    "display_quantity",
    "expire_time",
    "post_only",
    "order_class",
    "exits",
    "execution",
)


def _or_default(value: _E, default: _E) -> _E:
    """An enum's value, or `default` for UNSPECIFIED (0)."""
    return value if value else default


def _optional_decimal(text: str) -> Decimal | None:
    return Decimal(text) if text else None


def _optional_timestamp(moment: datetime | None) -> Timestamp | None:
    return None if moment is None else timestamp(moment)


def _optional_time(order: orders_pb2.Order, name: str) -> datetime | None:
    if not order.HasField(name):  # type: ignore[arg-type]
        return None
    moment: datetime = getattr(order, name).ToDatetime(tzinfo=UTC)
    return moment


def _take_profit(exits: Exits | None) -> orders_pb2.TakeProfit | None:
    if exits is None or exits.take_profit is None:
        return None
    return orders_pb2.TakeProfit(limit_price=format_decimal(exits.take_profit))


def _stop_loss(exits: Exits | None) -> orders_pb2.StopLoss | None:
    if exits is None or exits.stop_loss_trigger is None:
        return None
    return orders_pb2.StopLoss(
        trigger_price=format_decimal(exits.stop_loss_trigger),
        limit_price=format_decimal(exits.stop_loss_limit),
        trigger_type=exits.stop_loss_trigger_type,
    )


def _exits_of(order: orders_pb2.Order) -> Exits | None:
    has_take_profit, has_stop_loss = order.HasField("take_profit"), order.HasField("stop_loss")
    if not (has_take_profit or has_stop_loss):
        return None
    stop = order.stop_loss
    return Exits(
        take_profit=_optional_decimal(order.take_profit.limit_price),
        stop_loss_trigger=_optional_decimal(stop.trigger_price),
        stop_loss_limit=_optional_decimal(stop.limit_price),
        stop_loss_trigger_type=_or_default(stop.trigger_type, types_pb2.TRIGGER_TYPE_BID_ASK),
    )
