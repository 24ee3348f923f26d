"""Parent orders the router works itself: an algorithm (TWAP, VWAP) over a horizon, or one order
split into children of at most a size (see domain/algorithms.py for how much is due when).

The parent is the order order-management knows: the router publishes its reports (ACCEPTED on
arrival, a fill for each child fill, and how it ends) and never its children's. A child is a
venue order of its own, its id the client order id the venue sees (a UUID made from the parent's
id and the child's number, so a child made again after a crash has the same id). A child is
journaled (table child_orders) in the transaction that releases it and sent only once durable;
each child report is journaled with the parent report it makes, so a fill is applied once.

A parent ends when all of it has filled (FILLED), when a cancel of it has canceled every working
child (CANCELED, carrying the cancel's request id), when a child is rejected by its venue (the
rest is canceled; CANCELED with the venue's reason: the parent itself was ACCEPTED), or when
its expire time has passed and no child works (EXPIRED). A child that expires or is canceled by
its venue frees its unfilled quantity for later slices. A modify of a parent is rejected.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from trading.v1 import events_pb2, execution_pb2, orders_pb2, types_pb2
from trading_core.decimals import ZERO, format_decimal
from trading_core.events import timestamp
from trading_core.journal import Transaction
from trading_core.periodic import Periodic

from execution_router.domain.algorithms import Plan, plan
from execution_router.domain.smart_routing import allocate
from execution_router.domain.venue_types import Report, VenueOrder

if TYPE_CHECKING:
    from execution_router.service import ExecutionRouter, RoutedOrder

log = logging.getLogger(__name__)
T = types_pb2

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS child_orders (
        child_id TEXT PRIMARY KEY,
        parent_id TEXT NOT NULL,
        number INTEGER NOT NULL,
        slice INTEGER NOT NULL,
        venue TEXT NOT NULL,
        is_open INTEGER NOT NULL,
        create_time_us INTEGER NOT NULL,
        child BLOB NOT NULL,
        last_report BLOB
    )""",
    "CREATE INDEX IF NOT EXISTS child_orders_by_parent ON child_orders (parent_id, number)",
)

_CHILD_IDS = uuid.UUID("7d3f4a52-6a3e-4c1e-9a57-2f4f3c1b8e11")
_ENDS = frozenset({T.EXECUTION_TYPE_FILLED, T.EXECUTION_TYPE_CANCELED, T.EXECUTION_TYPE_EXPIRED})


def child_id(parent_id: str, number: int) -> str:
    return str(uuid.uuid5(_CHILD_IDS, f"{parent_id}/{number}"))


@dataclass
class Child:
    child_id: str
    parent_id: str
    number: int
    slice: int
    venue: str
    order: VenueOrder
    created: datetime
    last: events_pb2.ExecutionReport | None = None
    is_open: bool = True

    @property
    def filled(self) -> Decimal:
        return Decimal(self.last.cumulative_quantity or "0") if self.last else ZERO

    @property
    def working(self) -> Decimal:
        """What may still fill."""
        return self.order.quantity - self.filled if self.is_open else ZERO

    def to_proto(self) -> execution_pb2.ChildOrder:
        last = self.last
        return execution_pb2.ChildOrder(
            child_order_id=self.child_id,
            parent_order_id=self.parent_id,
            slice=self.slice,
            venue=self.venue,
            venue_order_id=last.venue_order_id if last else "",
            quantity=format_decimal(self.order.quantity),
            limit_price=format_decimal(self.order.limit_price),
            last_execution_type=last.execution_type if last else T.EXECUTION_TYPE_UNSPECIFIED,
            filled_quantity=format_decimal(self.filled),
            average_price=last.average_price if last else "",
            create_time=timestamp(self.created),
            message=last.message if last else "",
        )


@dataclass
class Parent:
    routed: RoutedOrder
    plan: Plan
    children: list[Child] = field(default_factory=list)
    # The request id of a cancel of the parent being applied to its children.
    canceling: str = ""
    # Why the parent stops early (a child rejected); the rest of it is canceled.
    stopping: str = ""

    @property
    def order_id(self) -> str:
        return self.routed.order.order_id

    @property
    def filled(self) -> Decimal:
        return sum((c.filled for c in self.children), ZERO)

    @property
    def released(self) -> Decimal:
        return sum((c.order.quantity for c in self.children), ZERO)

    @property
    def committed(self) -> Decimal:
        """Filled, or working at a venue: what a release must not send again."""
        return sum((c.filled + c.working for c in self.children), ZERO)

    def open_children(self) -> list[Child]:
        return [c for c in self.children if c.is_open]


class ParentDesk:
    """The parents an ExecutionRouter works; every method runs under the router's lock."""

    def __init__(self, router: ExecutionRouter) -> None:
        self._router = router
        self._parents: dict[str, Parent] = {}
        self._children: dict[str, Child] = {}
        interval_s = router.config.execution.algorithms.check_interval_ms / 1000
        self._loop = Periodic("parents", self._release_due_logged, interval_s)

    # Life cycle -------------------------------------------------------------------------------

    def restore(self, parents: list[RoutedOrder]) -> list[Child]:
        """Puts back the open parents and their children; returns the children never sent."""
        unsent: list[Child] = []
        for routed in parents:
            parent = Parent(routed, self._plan(routed))
            self._parents[parent.order_id] = parent
            parent.children = self._journaled_children(parent.order_id)
            for child in parent.children:
                if child.is_open:
                    self._children[child.child_id] = child
                    if child.last is None:
                        unsent.append(child)
        return unsent

    def resting(self) -> dict[str, list[tuple[VenueOrder, Report]]]:
        """The open children a venue has had, by venue: for a simulated venue's restore."""
        by_venue: dict[str, list[tuple[VenueOrder, Report]]] = {}
        for child in self._children.values():
            if child.last is not None:
                restored = (child.order, Report.restored(child.last))
                by_venue.setdefault(child.venue, []).append(restored)
        return by_venue

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()

    # Parents ----------------------------------------------------------------------------------

    def is_parent(self, order_id: str) -> bool:
        return order_id in self._parents

    def open_children_by_venue(self) -> Counter[str]:
        return Counter(child.venue for child in self._children.values())

    def open_child_ids(self, venue: str) -> set[str]:
        return {c.child_id for c in self._children.values() if c.venue == venue and c.last}

    def accept(self, routed: RoutedOrder, transaction: Transaction) -> None:
        """A new parent: ACCEPTED (the router has it), then what is due now."""
        parent = Parent(routed, self._plan(routed))
        self._parents[parent.order_id] = parent
        order = routed.order
        accepted = Report(
            execution_type=T.EXECUTION_TYPE_ACCEPTED,
            order_id=order.order_id,
            venue_order_id="",
            side=order.side,
            cumulative_quantity=ZERO,
            leaves_quantity=order.quantity,
            average_price=None,
            message=f"worked by the router: {self._describe(parent.plan)}",
        )
        self._publish(parent, accepted, transaction)
        self._release(parent, transaction)

    def cancel(self, order_id: str, request_id: str, transaction: Transaction) -> None:
        """Cancels the parent: every working child first, then the parent."""
        parent = self._parents[order_id]
        parent.canceling = request_id
        self._cancel_children(parent, transaction)
        self._settle(parent, transaction)

    def reject_modify(self, order_id: str, request_id: str, transaction: Transaction) -> None:
        parent = self._parents[order_id]
        rejected = Report.nothing_filled(
            T.EXECUTION_TYPE_MODIFY_REJECTED,
            order_id,
            parent.routed.order.side,
            "an order worked by an execution algorithm cannot be modified: cancel it and "
            "submit a new one",
            request_id,
        )
        self._publish(parent, rejected, transaction)

    def resume_cancel(self, order_id: str, request_id: str) -> None:
        """After a restart: a cancel of the parent that had not finished goes on."""
        parent = self._parents.get(order_id)
        if parent is not None and not parent.canceling:
            parent.canceling = request_id
            transaction = Transaction()
            self._cancel_children(parent, transaction)
            self._settle(parent, transaction)
            self._router.commit(transaction)

    def children_of(self, order_id: str) -> list[Child]:
        """Every child of a parent, open or finished (ListChildOrders)."""
        parent = self._parents.get(order_id)
        if parent is not None:
            return list(parent.children)
        return self._journaled_children(order_id)

    def _journaled_children(self, order_id: str) -> list[Child]:
        rows = self._router.journal.query(
            "SELECT child_id, number, slice, venue, is_open, create_time_us, child, last_report "
            "FROM child_orders WHERE parent_id = ? ORDER BY number",
            (order_id,),
        )
        return [
            Child(
                cid,
                order_id,
                number,
                slice_,
                venue,
                VenueOrder.from_proto(orders_pb2.Order.FromString(body)),
                datetime.fromtimestamp(created_us / 1e6, UTC),
                events_pb2.ExecutionReport.FromString(last) if last else None,
                bool(is_open),
            )
            for cid, number, slice_, venue, is_open, created_us, body, last in rows
        ]

    # Child reports ----------------------------------------------------------------------------

    def on_report(self, venue: str, report: Report, transaction: Transaction) -> bool:
        """A venue's report of one of our children (False: not a child of an open parent)."""
        child = self._children.get(report.order_id)
        if child is None or child.venue != venue:
            return False
        parent = self._parents[child.parent_id]
        kind = report.execution_type
        if kind in (T.EXECUTION_TYPE_CANCEL_REJECTED, T.EXECUTION_TYPE_MODIFY_REJECTED):
            return True  # a cancel that found the child finished: its end comes by itself
        if report.trade_id and self._trade_id(child, report) in parent.routed.trade_ids:
            return True  # reported again (a restart, a venue's repeat): applied once
        if kind == T.EXECUTION_TYPE_ACCEPTED and child.last is not None:
            return True
        before = child.filled
        child.last = report.to_proto(venue)
        if report.trade_id and report.last_quantity:
            self._fill(parent, child, report, transaction)
        elif child.filled != before:
            log.warning("child %s of %s filled without a trade id", child.child_id, parent.order_id)
        if kind in _ENDS or kind == T.EXECUTION_TYPE_REJECTED:
            child.is_open = False
            self._children.pop(child.child_id, None)
        if kind == T.EXECUTION_TYPE_REJECTED and not parent.stopping:
            parent.stopping = f"child {child.child_id} rejected by {venue}: {report.message}"
            self._cancel_children(parent, transaction)
        self._save(child, transaction)
        self._settle(parent, transaction)
        return True

    def _fill(self, parent: Parent, child: Child, report: Report, transaction: Transaction) -> None:
        order = parent.routed.order
        filled = parent.filled
        cost = sum(
            (c.filled * Decimal(c.last.average_price or "0") for c in parent.children if c.last),
            ZERO,
        )
        whole = filled == order.quantity
        fill = Report(
            execution_type=T.EXECUTION_TYPE_FILLED if whole else T.EXECUTION_TYPE_PARTIALLY_FILLED,
            order_id=order.order_id,
            venue_order_id="",
            side=order.side,
            trade_id=self._trade_id(child, report),
            last_quantity=report.last_quantity,
            last_price=report.last_price,
            fee=report.fee,
            cumulative_quantity=filled,
            leaves_quantity=order.quantity - filled,
            average_price=cost / filled if filled else None,
            time=report.time,
        )
        self._publish(parent, fill, transaction)

    @staticmethod
    def _trade_id(child: Child, report: Report) -> str:
        return f"{child.venue}/{report.trade_id}"

    # Releasing --------------------------------------------------------------------------------

    def _release_due_logged(self) -> None:
        try:
            self.release_due()
        except Exception:
            log.exception("releasing the slices that are due failed")

    def release_due(self) -> None:
        """Releases what is due of every parent, and ends those whose time is up."""
        with self._router.lock:
            transaction = Transaction()
            for parent in list(self._parents.values()):
                self._release(parent, transaction)
                self._settle(parent, transaction)
            if transaction:
                self._router.commit(transaction)

    def _release(self, parent: Parent, transaction: Transaction) -> None:
        if parent.canceling or parent.stopping or self._expired(parent):
            return
        now = self._router.clock.now()
        order = parent.routed.order
        quote = self._router.quotes.get(order.instrument)
        opposite = None
        if quote is not None:
            opposite = quote.ask_size if order.side == T.SIDE_BUY else quote.bid_size
        quantity = parent.plan.release(now, parent.committed, opposite)
        if not quantity:
            return
        slice_ = max(parent.plan.slices_due(now) - 1, 0)
        for venue, share in self._shares(parent, quantity):
            for part in parent.plan.children(share):
                self._new_child(
                    parent, venue, part, slice_=slice_, now=now, transaction=transaction
                )

    def _shares(self, parent: Parent, quantity: Decimal) -> list[tuple[str, Decimal]]:
        """Where a release goes: the parent's venue, or with smart routing shared across the
        venues of its route that are up, on their books' prices net of fees (none up: nothing
        now)."""
        routed = parent.routed
        if not routed.submit.order.execution.smart_routing:
            return [(routed.venue, quantity)]
        books, up = self._router.venue_books(routed.order, routed.submit.order.strategy_id)
        if not up:
            return []
        return allocate(routed.order.side, quantity, books, up, parent.plan.step)

    def _new_child(
        self,
        parent: Parent,
        venue: str,
        quantity: Decimal,
        *,
        slice_: int,
        now: datetime,
        transaction: Transaction,
    ) -> None:
        number = len(parent.children)
        cid = child_id(parent.order_id, number)
        order = self._router.protected(
            replace(parent.routed.order, order_id=cid, quantity=quantity, protection_price=None)
        )
        child = Child(cid, parent.order_id, number, slice_, venue, order, now)
        parent.children.append(child)
        self._children[cid] = child
        body = replace_proto(parent.routed.submit.order, cid, quantity)
        transaction.execute(
            "INSERT INTO child_orders (child_id, parent_id, number, slice, venue, is_open, "
            "create_time_us, child) VALUES (?, ?, ?, ?, ?, 1, ?, ?)",
            (cid, parent.order_id, number, slice_, child.venue, _micros(now), body),
        )
        transaction.then(lambda: self._router.send(venue, order))

    # Ending -----------------------------------------------------------------------------------

    def _cancel_children(self, parent: Parent, transaction: Transaction) -> None:
        reason = parent.canceling or "stop"
        for child in parent.open_children():
            transaction.then(self._canceler(child, f"{reason}/{child.number}"))

    def _canceler(self, child: Child, request_id: str) -> Callable[[], None]:
        venue, cid = child.venue, child.child_id
        return lambda: self._router.cancel_child(venue, cid, request_id)

    def _settle(self, parent: Parent, transaction: Transaction) -> None:
        """Ends a parent that is done: all filled, or nothing works and nothing more will."""
        order = parent.routed.order
        filled = parent.filled
        if filled == order.quantity:
            self._drop(parent)
            return
        if parent.open_children():
            return
        if parent.canceling:
            kind, message = T.EXECUTION_TYPE_CANCELED, "canceled"
        elif parent.stopping:  # the parent was ACCEPTED: it ends CANCELED, with the reason
            kind, message = T.EXECUTION_TYPE_CANCELED, parent.stopping
        elif self._expired(parent):
            kind, message = T.EXECUTION_TYPE_EXPIRED, "expired"
        else:
            return
        ended = Report(
            execution_type=kind,
            order_id=order.order_id,
            venue_order_id="",
            side=order.side,
            cumulative_quantity=filled,
            leaves_quantity=ZERO,
            average_price=None,
            message=f"{message}; {format_decimal(filled)} of {format_decimal(order.quantity)} "
            f"filled by {len(parent.children)} child orders",
            request_id=parent.canceling if kind == T.EXECUTION_TYPE_CANCELED else "",
        )
        self._publish(parent, ended, transaction)
        self._drop(parent)

    def _expired(self, parent: Parent) -> bool:
        expire = parent.routed.order.expire_time
        return expire is not None and self._router.clock.now() >= expire

    def _drop(self, parent: Parent) -> None:
        self._parents.pop(parent.order_id, None)
        for child in parent.children:
            self._children.pop(child.child_id, None)

    # Helpers ----------------------------------------------------------------------------------

    def _publish(self, parent: Parent, report: Report, transaction: Transaction) -> None:
        routed = parent.routed
        proto = report.to_proto(routed.venue)
        if report.average_price is None and routed.last is not None:
            proto.average_price = routed.last.average_price
        self._router.publish_report(routed, proto, transaction)

    def _save(self, child: Child, transaction: Transaction) -> None:
        transaction.execute(
            "UPDATE child_orders SET is_open = ?, last_report = ? WHERE child_id = ?",
            (
                int(child.is_open),
                child.last.SerializeToString() if child.last else None,
                child.child_id,
            ),
        )

    def _plan(self, routed: RoutedOrder) -> Plan:
        config = self._router.config
        instructions = routed.submit.order.execution
        instrument = config.instrument(routed.order.instrument)
        step = instrument.step_size if instrument else Decimal("1e-8")
        created = routed.submit.order.create_time
        start = created.ToDatetime(tzinfo=UTC) if created.seconds else self._router.clock.now()
        algorithms = config.execution.algorithms
        return plan(
            instructions.algorithm,
            routed.order.quantity,
            start,
            horizon=instructions.horizon.ToTimedelta(),
            slice_count=instructions.slice_count,
            slice_interval=timedelta(milliseconds=algorithms.slice_interval_ms),
            profile=algorithms.volume_profile,
            step=step,
            max_child=_optional(instructions.max_child_quantity),
            participation=_optional(instructions.participation_rate),
        )

    @staticmethod
    def _describe(plan: Plan) -> str:
        name = T.ExecutionAlgorithm.Name(plan.algorithm).removeprefix("EXECUTION_ALGORITHM_")
        if plan.algorithm == T.EXECUTION_ALGORITHM_UNSPECIFIED:
            if plan.max_child is None:
                return "smart routing across venues"
            return f"split into children of at most {format_decimal(plan.max_child)}"
        return f"{name} over {plan.horizon}, {plan.slices} slices"


def replace_proto(order: orders_pb2.Order, cid: str, quantity: Decimal) -> bytes:
    child = orders_pb2.Order()
    child.CopyFrom(order)
    child.order_id = cid
    child.parent_order_id = order.order_id
    child.quantity = format_decimal(quantity)
    child.ClearField("execution")
    return child.SerializeToString()


def _optional(text: str) -> Decimal | None:
    return Decimal(text) if text else None


def _micros(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)
