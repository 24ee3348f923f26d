"""The execution router: owns the venue sessions, decides each order's one fate.

Commands arrive on `orders` (SubmitOrder, CancelOrder, ModifyOrder). The router journals what
it received before the venue hears of it, and the venue's reports before anyone else does:

- The order id is the client order id the venue sees. A SubmitOrder for an order the router
  knows is answered with that order's reports again, never routed twice.
- A CancelOrder the venue cannot apply gets a CANCEL_REJECTED report, a ModifyOrder a
  MODIFY_REJECTED one; a repeated cancel or modify request id is answered with the order's
  reports again. A MODIFIED report changes the order the router keeps (and restores).
- Reconciliation asks over gRPC, not the bus: QueryOrder (order-management) is answered with
  the order's reports, and an order the router never received is rejected for good, so a late
  SubmitOrder cannot route it; CountFills and ListFills (position-management) tell the fills.

Venue calls run on the venue worker thread, never on the bus dispatcher or under the lock.
On start the router restores its open orders, puts the resting ones back into a simulated
venue, sends the venue what it received but had no answer of (orders, and the cancels and
modifies of open orders whose answer it had not journaled: their request ids are known, so
neither the redelivered command nor reconciliation would send them), then reconciles with the
venue. Such an order may have reached a network venue before the stop: its adapter looks it up
before it ever sends it (`submit_after_restart`).
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal

from opentelemetry.context import Context
from trading.v1 import events_pb2, orders_pb2, types_pb2
from trading_core.config import SIMULATION_VENUE
from trading_core.decimals import format_decimal
from trading_core.errors import NotFound
from trading_core.events import event_kind
from trading_core.journal import Transaction
from trading_core.prices import ceil_to_tick, floor_to_tick
from trading_core.quotes import Quote, QuoteBook
from trading_core.service import JournaledService, ServiceContext
from trading_core.telemetry import stage
from trading_core.tracing import current_context, within

from execution_router.domain.smart_routing import VenueBook
from execution_router.domain.venue_types import Report, VenueOrder
from execution_router.parents import SCHEMA as PARENT_SCHEMA
from execution_router.parents import Child, ParentDesk
from execution_router.recorder import CallJournal, ShadowDesk, set_arrival
from execution_router.venues.base import ExecutionClient, ReportChannel, VenueWorker
from execution_router.venues.factory import build_clients
from execution_router.venues.resilience import GuardStatus, VenueBusy, VenueUnavailable

log = logging.getLogger(__name__)
T = types_pb2

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS routed_orders (
        order_id TEXT PRIMARY KEY,
        is_open INTEGER NOT NULL,
        report_sequence INTEGER NOT NULL,
        submit BLOB,
        last_report BLOB
    )""",
    "CREATE INDEX IF NOT EXISTS routed_open ON routed_orders (is_open) WHERE is_open = 1",
    """CREATE TABLE IF NOT EXISTS cancel_requests (
        request_id TEXT PRIMARY KEY,
        order_id TEXT NOT NULL
    )""",
    # With what each modify asks (empty: unchanged), to ask the venue again after a restart.
    """CREATE TABLE IF NOT EXISTS modify_requests (
        request_id TEXT PRIMARY KEY,
        order_id TEXT NOT NULL,
        quantity TEXT NOT NULL DEFAULT '',
        limit_price TEXT NOT NULL DEFAULT ''
    )""",
    # Every fill, by the time of its report: what position-management's counts are checked on.
    """CREATE TABLE IF NOT EXISTS router_fills (
        trade_id TEXT PRIMARY KEY,
        order_id TEXT NOT NULL,
        time_us INTEGER NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS router_fills_by_time ON router_fills (time_us)",
    "CREATE INDEX IF NOT EXISTS router_fills_by_order ON router_fills (order_id)",
    *PARENT_SCHEMA,
)

_FINISHED = frozenset(
    {
        types_pb2.EXECUTION_TYPE_FILLED,
        types_pb2.EXECUTION_TYPE_REJECTED,
        types_pb2.EXECUTION_TYPE_CANCELED,
        types_pb2.EXECUTION_TYPE_EXPIRED,
    }
)
# The report of a cancel or modify the venue could not apply, by the table of its request ids.
_REQUEST_TABLES = {
    types_pb2.EXECUTION_TYPE_CANCEL_REJECTED: "cancel_requests",
    types_pb2.EXECUTION_TYPE_MODIFY_REJECTED: "modify_requests",
}
_REJECTIONS = {table: (kind, table.split("_")[0]) for kind, table in _REQUEST_TABLES.items()}
_NEVER_RECEIVED = (
    "the router never received this order (lost on the way); it was not sent to the venue "
    "and never will be: submit a new order"
)


@dataclass
class RoutedOrder:
    """An order the router has received, while it is open."""

    order: VenueOrder
    submit: events_pb2.SubmitOrder
    report_sequence: int = 0
    last: events_pb2.ExecutionReport | None = None
    # The quote the router had when the order reached it (its first report tells it).
    arrival: Quote | None = None
    is_open: bool = True
    # The trade ids of its fills the router has published: a fill reported again (an
    # adapter after a restart, a venue's repeat) is applied once.
    trade_ids: set[str] = field(default_factory=set)
    # The trace of the command that brought it (none after a restart, or with tracing off):
    # its venue's reports continue it.
    trace: Context | None = None

    @property
    def is_parent(self) -> bool:
        """Worked by the router itself as child orders (parents.py)."""
        return self.submit.order.HasField("execution")

    @property
    def venue(self) -> str:
        """The venue the router chose (kept in the journaled command); orders journaled before
        there were several venues went to the paper venue."""
        return self.submit.order.venue or SIMULATION_VENUE


@dataclass
class Venue:
    """One venue's adapter and the worker thread that makes every call to it."""

    name: str
    client: ExecutionClient
    worker: VenueWorker

    def ready(self) -> bool:
        return self.worker.alive() and self.client.available()


@dataclass(frozen=True)
class VenueState:
    """What GetVenueStatus tells of a venue."""

    name: str
    kind: str
    connected: bool
    available: bool
    open_orders: int
    problems: int
    guard: GuardStatus | None
    report_channel: ReportChannel = "pushed"


class ExecutionRouter(JournaledService):
    name = "execution-router"

    def __init__(self, context: ServiceContext):
        super().__init__(context)
        config, clock = context.config, context.clock
        self.quotes = QuoteBook()
        clients = build_clients(config, self._report_sink, clock)
        self.venues = {name: Venue(name, c, VenueWorker(c)) for name, c in clients.items()}
        # For analysts, beside the order path: the network venues' calls (none in the simulation
        # mode: the paper venue records nothing, so no thread waits for its calls), the shadow
        # model.
        self.calls: CallJournal | None = None
        if SIMULATION_VENUE not in clients:
            calls = self.calls = CallJournal(self)
            for client in clients.values():
                client.record_call = calls.record
        self.shadow = ShadowDesk(self, config, clock) if config.execution.shadow.enabled else None
        self._open: dict[str, RoutedOrder] = {}
        # What changed in memory but is not durable yet, which the journal cannot show: a command
        # delivered in that window must find it all the same (a finished order must not be
        # routed again, a second insert would fail the journal's commit). Orders that finished
        # (None: rejected as never received) by their order id; cancels by their request id.
        self._settling: dict[str, tuple[RoutedOrder | None, object]] = {}
        # Cancel and modify request ids received, until durable (then in their tables).
        self._queued: dict[str, set[str]] = {"cancel_requests": set(), "modify_requests": set()}
        # Orders never sent before a restart, waiting for their instrument's first quote.
        self._unpriced: dict[str, list[tuple[str, VenueOrder]]] = {}
        # The latest quote of each source and instrument, for smart routing.
        self._venue_quotes: dict[tuple[str, str], Quote] = {}
        self._stopping = threading.Event()
        self._reconciler = threading.Thread(target=self._reconcile_periodically, daemon=True)
        self._replays = itertools.count(1)
        self.desk = ParentDesk(self)

    # Life cycle -------------------------------------------------------------------------------

    def start(self) -> None:
        unsent = self._restore()
        unanswered = self._unanswered()
        super().start()
        if self.calls is not None:
            self.calls.start()
        if self.shadow is not None:
            self.shadow.start()
        for venue in self.venues.values():
            venue.worker.start()
        self.consume("market-data", events_pb2.Event, self._on_quote)
        self.consume("orders", events_pb2.Command, self._on_command)
        for venue_name, order in unsent:
            self._send_when_priced(venue_name, order)
        for order_id, ask in unanswered:
            self._at_venue_of(order_id, ask)
        self._reconciler.start()
        self.desk.start()

    def stop(self) -> None:
        self._stopping.set()
        self.desk.stop()
        if self._reconciler.is_alive():
            self._reconciler.join()
        for venue in self.venues.values():
            venue.worker.stop()
        if self.shadow is not None:
            self.shadow.stop()
        if self.calls is not None:
            self.calls.stop()

    def ready(self) -> bool:
        """Also needs its venue workers, and a quote for every instrument (a simulated venue
        matches against them; routing and protection prices need them). A venue that is down
        (its circuit open) does not make the router unready: its own health says so, and its
        orders are rerouted or rejected."""
        return (
            super().ready()
            and all(venue.worker.alive() for venue in self.venues.values())
            and all(self.quotes.get(i.symbol) for i in self.config.instruments)
        )

    def health_details(self) -> dict[str, bool]:
        """Each venue's own health, served as `venue/<name>`."""
        return {f"venue/{name}": venue.ready() for name, venue in self.venues.items()}

    def venue_states(self) -> list[VenueState]:
        with self.lock:
            counts = self.desk.open_children_by_venue()
            for routed in self._open.values():
                if not routed.is_parent:
                    counts[routed.venue] += 1
        return [
            VenueState(
                name=name,
                kind=venue.client.kind,
                connected=venue.worker.alive() and venue.client.connected(),
                available=venue.ready(),
                problems=venue.client.problems,
                open_orders=counts.get(name, 0),
                guard=venue.client.guard.status() if venue.client.guard else None,
                report_channel=venue.client.report_channel(),
            )
            for name, venue in self.venues.items()
        ]

    def child_orders(self, order_id: str, account_id: str) -> tuple[RoutedOrder, list[Child]]:
        """A parent order of the account and its children (ListChildOrders); another account's
        order is not found, as one that does not exist."""
        with self.lock:
            routed = self._open.get(order_id) or self._finished(order_id)
            if routed is None or not routed.is_parent or routed.order.account_id != account_id:
                raise NotFound(
                    f"account {account_id} has no order {order_id!r} the router works as child "
                    "orders (it works those submitted with execution instructions)"
                )
            return routed, self.desk.children_of(order_id)

    def venue_state(self, name: str) -> VenueState:
        for state in self.venue_states():
            if state.name == name:
                return state
        raise NotFound(f"no venue {name!r}; configured: {', '.join(self.venues)}")

    def quote(self, instrument: str) -> Quote:
        with self.lock:
            quote = self.quotes.get(instrument)
        if quote is None:
            known = ", ".join(i.symbol for i in self.config.instruments)
            raise NotFound(f"no quote for instrument {instrument!r}; configured: {known}")
        return quote

    # Consumed ---------------------------------------------------------------------------------

    def _on_quote(self, event: events_pb2.Event, _transaction: Transaction) -> None:
        if event_kind(event) != "quote_updated":
            return
        quote = Quote.from_proto(event.quote_updated.quote)
        self._venue_quotes[(quote.source, quote.instrument)] = quote
        if self.quotes.update(quote):
            for venue in self.venues.values():
                if venue.client.wants_quotes:
                    client = venue.client
                    venue.worker.call(lambda client=client: client.on_quote(quote))  # type: ignore[misc]
            for venue_name, order in self._unpriced.pop(quote.instrument, ()):
                self.send(venue_name, order, restarted=True)
            if self.shadow is not None:
                self.shadow.on_quote(quote)

    def _on_command(self, command: events_pb2.Command, transaction: Transaction) -> None:
        kind = command.WhichOneof("command")
        if kind == "submit_order":
            self._on_submit(command, transaction)
        elif kind == "cancel_order":
            self._on_cancel(command, transaction)
        elif kind == "modify_order":
            self._on_modify(command, transaction)
        else:
            raise ValueError(f"unknown command {kind!r}")

    def _on_submit(self, command: events_pb2.Command, transaction: Transaction) -> None:
        order_id = command.submit_order.order.order_id
        if order_id != command.order_id or not order_id:
            raise ValueError(f"SubmitOrder for {order_id!r} in a command for {command.order_id!r}")
        if self._known(order_id):
            self._republish_after(transaction, order_id)
            return
        order = self.protected(VenueOrder.from_proto(command.submit_order.order))
        routed = RoutedOrder(
            order,
            command.submit_order,
            arrival=self.quotes.get(order.instrument),
            trace=current_context(),
        )
        self._open[order_id] = routed
        with stage("route"):
            venue, refusal, shared = self._route(command.submit_order.order)
        routed.submit.order.venue = venue
        if shared:  # smart routing: its children go where the price is best
            routed.submit.order.execution.smart_routing = True
        if refusal:
            report = Report.nothing_filled(T.EXECUTION_TYPE_REJECTED, order_id, order.side, refusal)
            self.publish_report(routed, report.to_proto(venue), transaction)
            return
        self._save(transaction, routed)
        if routed.is_parent:
            self.desk.accept(routed, transaction)
        else:
            transaction.then(lambda: self.send(venue, order, routed.trace))
            self._shadow_after(transaction, venue, routed)

    def _shadow_after(self, transaction: Transaction, venue: str, routed: RoutedOrder) -> None:
        """Shadow simulation: an order sent to a network venue goes to the model too, from the
        same arrival quote, once its routing is durable (after the real order's send)."""
        shadow, arrival = self.shadow, routed.arrival
        if shadow is None or arrival is None or venue == SIMULATION_VENUE:
            return
        transaction.then(lambda: shadow.submit(routed.order, venue, arrival, self.clock.now()))

    def order_owner(self, order_id: str) -> tuple[str, str]:
        """The account and instrument of an open order (any thread: one dict read), empty
        for another id (a child order, a reconciliation query)."""
        routed = self._open.get(order_id)
        return (routed.order.account_id, routed.order.instrument) if routed else ("", "")

    def _route(self, order: orders_pb2.Order) -> tuple[str, str, bool]:
        """The venue an order goes to: the first of its route (routing rules) that lists the
        instrument and is up; with a refusal when none is (then the first, for the record);
        and whether it is shared across the venues that are up (smart routing)."""
        names, listing, up, smart = self._candidates(
            order.account_id, order.strategy_id, order.instrument
        )
        if up:
            return up[0], "", smart and len(up) > 1
        if not listing:
            refusal = (
                f"no venue of this order's route ({', '.join(names)}) lists {order.instrument}"
            )
            return names[0], refusal, False
        down = "; ".join(self._why_down(name) for name in listing)
        return listing[0], f"no venue can take the order now: {down}", False

    def _candidates(
        self, account: str, strategy: str, instrument: str
    ) -> tuple[list[str], list[str], list[str], bool]:
        """An order's route (routing rules), those of it that list the instrument, those of
        these that are up; and whether the route shares orders (smart routing)."""
        names, smart = self.config.execution.route(account, strategy, instrument)
        listing = [n for n in names if self.venues[n].client.lists(instrument)]
        up = [n for n in listing if self.venues[n].client.available()]
        return names, listing, up, smart

    def venue_books(self, order: VenueOrder, strategy_id: str) -> tuple[list[VenueBook], list[str]]:
        """Smart routing's view: the book levels each venue of the order's route that is up
        shows on the side the order takes from (from its own quotes), and those venues in route
        order."""
        *_, up, _ = self._candidates(order.account_id, strategy_id, order.instrument)
        buying = order.side == T.SIDE_BUY
        books = []
        for name in up:
            quote = self._venue_quote(name, order.instrument)
            if quote is not None:
                books.append(VenueBook(name, quote.offered(buying), self._taker_fee_bps(name)))
        return books, up

    def _venue_quote(self, name: str, instrument: str) -> Quote | None:
        """A venue's own quote (by its source); the paper venue trades on the feed's."""
        venue = self.config.execution.venues.get(name)
        if venue is None:
            return self.quotes.get(instrument)
        return self._venue_quotes.get((venue.quote_source or venue.kind, instrument))

    def _taker_fee_bps(self, name: str) -> Decimal:
        venue = self.config.execution.venues.get(name)
        return venue.taker_fee_bps if venue else self.config.execution.simulation.taker_fee

    def _why_down(self, name: str) -> str:
        venue = self.venues[name]
        if venue.client.guard is not None and not venue.client.guard.available:
            return venue.client.guard.why_unavailable()
        return f"venue {name} is not connected"

    def _on_cancel(self, command: events_pb2.Command, transaction: Transaction) -> None:
        order_id, request_id = command.order_id, command.cancel_order.request_id
        if not self._taken(command, "cancel_requests", request_id, transaction):
            return
        if self.desk.is_parent(order_id):
            self.desk.cancel(order_id, request_id, transaction)
        else:
            cancel = self._cancel_at_venue(order_id, request_id)
            transaction.then(lambda: self._at_venue_of(order_id, cancel))

    def _on_modify(self, command: events_pb2.Command, transaction: Transaction) -> None:
        order_id, modify = command.order_id, command.modify_order
        asked = {"quantity": modify.quantity, "limit_price": modify.limit_price}
        if not self._taken(command, "modify_requests", modify.request_id, transaction, asked):
            return
        if self.desk.is_parent(order_id):
            self.desk.reject_modify(order_id, modify.request_id, transaction)
        else:
            change = self._modify_at_venue(
                order_id, modify.request_id, modify.quantity, modify.limit_price
            )
            transaction.then(lambda: self._at_venue_of(order_id, change))

    def _cancel_at_venue(self, order_id: str, request_id: str) -> Callable[[], None]:
        client = self.venues[self._open[order_id].venue].client
        return lambda: client.cancel_order(order_id, request_id)

    def _modify_at_venue(
        self, order_id: str, request_id: str, quantity: str, limit_price: str
    ) -> Callable[[], None]:
        client = self.venues[self._open[order_id].venue].client
        new_quantity = Decimal(quantity) if quantity else None
        new_limit_price = Decimal(limit_price) if limit_price else None
        return lambda: client.modify_order(order_id, request_id, new_quantity, new_limit_price)

    def _at_venue_of(self, order_id: str, call: Callable[[], None]) -> None:
        self.venues[self._open[order_id].venue].worker.call(call)

    def _taken(
        self,
        command: events_pb2.Command,
        table: str,
        request_id: str,
        transaction: Transaction,
        details: dict[str, str] | None = None,
    ) -> bool:
        """Whether a cancel or modify goes to the venue: a repeated request id is answered with
        the order's reports again, one of an order the router never received rejects that
        order, and one of a finished order is rejected naming how it finished."""
        order_id = command.order_id
        if self._request_known(table, request_id):
            self._republish_after(transaction, order_id)
            return False
        if order_id not in self._open:
            if not self._known(order_id):
                self._reject_unknown(command, transaction)
            else:
                self._answer_finished(order_id, request_id, table, transaction)
            return False
        row = {"request_id": request_id, "order_id": order_id, **(details or {})}
        transaction.execute(
            f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",  # noqa: S608
            tuple(row.values()),
        )
        queued = self._queued[table]
        queued.add(request_id)
        transaction.then(lambda: queued.discard(request_id))
        return True

    # Reports ----------------------------------------------------------------------------------

    def _report_sink(self, venue: str) -> Callable[[Report], None]:
        return lambda report: self._on_report(venue, report)

    def _on_report(self, venue: str, report: Report) -> None:
        """A venue report (its worker or adapter thread): journaled, then published."""
        with self.lock:
            routed = self._open.get(report.order_id)
            if routed is not None and routed.venue != venue:
                routed = None  # another venue's report of our order id: not this order's
            transaction = Transaction()
            if self.desk.on_report(venue, report, transaction):
                pass
            elif routed is not None and self._repeated(routed, venue, report):
                log.info(
                    "%s reported %s of %s again (trade %s): applied once",
                    venue,
                    types_pb2.ExecutionType.Name(report.execution_type),
                    report.order_id,
                    report.trade_id or "-",
                )
            elif routed is None:
                table = _REQUEST_TABLES.get(report.execution_type)
                if table is not None:
                    self._answer_finished(report.order_id, report.request_id, table, transaction)
                else:
                    self.report_unresolved(
                        transaction,
                        "venue-report",
                        report.order_id,
                        f"{types_pb2.ExecutionType.Name(report.execution_type)} from "
                        f"{venue} for an order the router has no open record of",
                    )
            else:
                proto = report.to_proto(venue)
                proto.trade_id = self.trade_id(venue, report.trade_id)
                with within(routed.trace):
                    self.publish_report(routed, proto, transaction)
            self.commit(transaction)

    def _repeated(self, routed: RoutedOrder, venue: str, report: Report) -> bool:
        """A report the router has applied already: a fill by its trade id, or an ACCEPTED of
        an order the venue had accepted (after a restart an adapter may report again what its
        venue shows, and a venue may deliver a report twice or late)."""
        if report.trade_id:
            return self.trade_id(venue, report.trade_id) in routed.trade_ids
        return report.execution_type == T.EXECUTION_TYPE_ACCEPTED and routed.last is not None

    @staticmethod
    def trade_id(venue: str, trade_id: str) -> str:
        """A fill's trade id as published: a network venue's qualified by the venue's name, so
        that two venues' ids never meet (the paper venue's are the router's own)."""
        if not trade_id or venue == SIMULATION_VENUE:
            return trade_id
        return f"{venue}/{trade_id}"

    def publish_report(
        self,
        routed: RoutedOrder,
        report: events_pb2.ExecutionReport,
        transaction: Transaction,
    ) -> None:
        order = routed.order
        rejection = report.execution_type in _REQUEST_TABLES
        if report.execution_type == types_pb2.EXECUTION_TYPE_MODIFIED:
            self._modified(routed, report)
        if rejection and routed.last:
            # The venue's rejection does not restate the order; the router does.
            state = routed.last
            report.side = order.side
            report.venue_order_id = report.venue_order_id or state.venue_order_id
            report.cumulative_quantity = state.cumulative_quantity
            report.leaves_quantity = state.leaves_quantity
            report.average_price = state.average_price
        if routed.report_sequence == 0 and routed.arrival is not None:
            set_arrival(report, order.side, routed.arrival)
        routed.report_sequence += 1
        if not rejection:
            routed.last = report
        event = self.new_event(
            sequence=routed.report_sequence,
            order_id=order.order_id,
            account_id=order.account_id,
            instrument=order.instrument,
            execution_report=report,
        )
        record = self.event_record(event, "executions", order.order_id)
        transaction.keep(record)
        if report.trade_id:
            transaction.execute(
                "INSERT INTO router_fills (trade_id, order_id, time_us) VALUES (?, ?, ?)",
                (report.trade_id, order.order_id, record.time_us),
            )
            routed.trade_ids.add(report.trade_id)
        if report.execution_type in _FINISHED:
            routed.is_open = False
            self._open.pop(order.order_id, None)
            if self.shadow is not None:
                self.shadow.close(order.order_id)
        self._save(transaction, routed)
        if not routed.is_open:
            self._hold_until_durable(transaction, order.order_id, routed)

    @staticmethod
    def _modified(routed: RoutedOrder, report: events_pb2.ExecutionReport) -> None:
        """The order as the venue now holds it: kept for a restart's restore."""
        quantity = Decimal(report.cumulative_quantity or "0") + Decimal(report.leaves_quantity)
        limit_price = Decimal(report.limit_price) if report.limit_price else None
        routed.order = replace(routed.order, quantity=quantity, limit_price=limit_price)
        routed.submit.order.quantity = format_decimal(quantity)
        routed.submit.order.limit_price = report.limit_price

    def _answer_finished(
        self, order_id: str, request_id: str, table: str, transaction: Transaction
    ) -> None:
        """A cancel or modify of an order that has finished: rejected with its final state."""
        routed = self._finished(order_id)
        if routed is None:
            return  # rejected as never received: there is no order to speak of
        status = types_pb2.ExecutionType.Name(routed.last.execution_type) if routed.last else ""
        rejection, action = _REJECTIONS[table]
        report = events_pb2.ExecutionReport(
            execution_type=rejection,
            order_id=order_id,
            venue=routed.venue,
            message=f"cannot {action}: the order has finished "
            f"({status.removeprefix('EXECUTION_TYPE_')})",
            request_id=request_id,
        )
        self.publish_report(routed, report, transaction)

    def _reject_unknown(self, command: events_pb2.Command, transaction: Transaction) -> None:
        """Rejects for good an order the router never received, keeping a tombstone."""
        order_id = command.order_id
        log.warning("order %s was never received; rejecting it", order_id)
        event = self.new_event(
            sequence=1,
            order_id=order_id,
            account_id=command.account_id,
            instrument=command.instrument,
            execution_report=events_pb2.ExecutionReport(
                execution_type=types_pb2.EXECUTION_TYPE_REJECTED,
                order_id=order_id,
                message=_NEVER_RECEIVED,
            ),
        )
        transaction.keep(self.event_record(event, "executions", order_id))
        transaction.execute(
            "INSERT INTO routed_orders (order_id, is_open, report_sequence) VALUES (?, 0, 1)",
            (order_id,),
        )
        self._hold_until_durable(transaction, order_id, None)

    # Reconciliation (gRPC) ----------------------------------------------------------------------

    def query_order(
        self,
        order_id: str,
        account_id: str,
        instrument: str,
        cancel_request_id: str = "",
        pending_modify: events_pb2.ModifyOrder | None = None,
    ) -> list[events_pb2.Event]:
        """Every report of the order, once durable. An order never received is rejected for
        good first; a pending cancel or modify the router has not had is applied."""
        command = events_pb2.Command(
            order_id=order_id, account_id=account_id, instrument=instrument
        )
        transaction = Transaction()
        with self.lock:
            if not self._known(order_id):
                self._reject_unknown(command, transaction)
            elif cancel_request_id and not self._request_known(
                "cancel_requests", cancel_request_id
            ):
                command.cancel_order.request_id = cancel_request_id
                self._on_cancel(command, transaction)
            elif pending_modify is not None and not self._request_known(
                "modify_requests", pending_modify.request_id
            ):
                command.modify_order.CopyFrom(pending_modify)
                self._on_modify(command, transaction)
            ticket = self.commit(transaction, waited=True)
        ticket.wait()
        kept = self.journal.records_of_order(order_id, "ExecutionReport")
        return [events_pb2.Event.FromString(k.record.payload) for k in kept]

    def count_fills(self, since_us: int, until_us: int) -> int:
        self.journal.sync_point().wait()
        ((count,),) = self.journal.query(
            "SELECT count(*) FROM router_fills WHERE time_us >= ? AND time_us < ?",
            (since_us, until_us),
        )
        return int(count)

    def list_fills(
        self, since_us: int, until_us: int, after_seq: int, limit: int
    ) -> tuple[list[events_pb2.Event], int | None]:
        """The reports of the orders filled in [since, until), after journal position
        `after_seq`; and the position to go on from when more follow."""
        self.journal.sync_point().wait()
        rows = self.journal.query(
            "SELECT seq, payload FROM journal WHERE record_type = 'ExecutionReport' AND seq > ? "
            "AND order_id IN (SELECT order_id FROM router_fills WHERE time_us >= ? "
            "AND time_us < ?) ORDER BY seq LIMIT ?",
            (after_seq, since_us, until_us, limit + 1),
        )
        reports = [events_pb2.Event.FromString(payload) for _, payload in rows[:limit]]
        return reports, (int(rows[limit - 1][0]) if len(rows) > limit else None)

    # State ------------------------------------------------------------------------------------

    def _known(self, order_id: str) -> bool:
        return (
            order_id in self._open
            or order_id in self._settling
            or bool(
                self.journal.query("SELECT 1 FROM routed_orders WHERE order_id = ?", (order_id,))
            )
        )

    def _request_known(self, table: str, request_id: str) -> bool:
        return request_id in self._queued[table] or bool(
            self.journal.query(f"SELECT 1 FROM {table} WHERE request_id = ?", (request_id,))  # noqa: S608
        )

    def _finished(self, order_id: str) -> RoutedOrder | None:
        """A finished order as it is now: in memory until its last change is durable, then in
        the journal. None for an order rejected as never received."""
        if order_id in self._settling:
            return self._settling[order_id][0]
        rows = self.journal.query(
            "SELECT report_sequence, submit, last_report FROM routed_orders WHERE order_id = ?",
            (order_id,),
        )
        if not rows or rows[0][1] is None:
            return None
        sequence, submit, last = rows[0]
        command = events_pb2.SubmitOrder.FromString(submit)
        return RoutedOrder(
            VenueOrder.from_proto(command.order),
            command,
            report_sequence=sequence,
            last=events_pb2.ExecutionReport.FromString(last) if last else None,
            is_open=False,
        )

    def _hold_until_durable(
        self, transaction: Transaction, order_id: str, routed: RoutedOrder | None
    ) -> None:
        """Keeps a finished order in memory until the transaction that finished it is durable
        (a later change of it keeps it longer)."""
        token = object()
        self._settling[order_id] = (routed, token)

        def settled() -> None:
            with self.lock:
                if self._settling.get(order_id, (None, None))[1] is token:
                    del self._settling[order_id]

        transaction.then(settled)

    def _save(self, transaction: Transaction, routed: RoutedOrder) -> None:
        transaction.execute(
            "INSERT INTO routed_orders (order_id, is_open, report_sequence, submit, last_report) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (order_id) DO UPDATE SET "
            "is_open = excluded.is_open, report_sequence = excluded.report_sequence, "
            "submit = excluded.submit, last_report = excluded.last_report",
            (
                routed.order.order_id,
                int(routed.is_open),
                routed.report_sequence,
                routed.submit.SerializeToString(),
                routed.last.SerializeToString() if routed.last else None,
            ),
        )

    def _republish_after(self, transaction: Transaction, order_id: str) -> None:
        """Publishes the order's reports again once the triggering message is durable."""
        transaction.then(lambda: self._republish(order_id))

    def _republish(self, order_id: str) -> None:
        if self._stopping.is_set():
            return  # the bus closes next; whoever asked will ask again
        # A replay is the order's whole history in order, on an ordering key of its own: it
        # needs no order against the live key (consumers skip what they applied, by report
        # sequence and trade id), and a message stuck on the live key cannot hold it back
        # (nor can the emulator, which strands a restarted subscriber's keys: review F1).
        replay_key = f"{order_id}/replay-{next(self._replays)}"
        for kept in self.journal.records_of_order(order_id, "ExecutionReport"):
            attributes = self.outbox.attributes(kept.record)  # the shard's subscriptions want it
            self.bus.publish(
                "executions", kept.record.payload, ordering_key=replay_key, attributes=attributes
            )

    def _send_when_priced(self, venue_name: str, order: VenueOrder) -> None:
        """After a restart: an order with no answer (maybe sent) goes to its venue at once,
        or, for a simulated venue (which prices orders on quotes), once the instrument's first
        quote is on its way to it, not to be rejected for want of one."""
        if not self.venues[venue_name].client.wants_quotes:
            self.send(venue_name, order, restarted=True)
            return
        with self.lock:
            if self.quotes.get(order.instrument) is None:
                self._unpriced.setdefault(order.instrument, []).append((venue_name, order))
                return
        self.send(venue_name, order, restarted=True)

    def send(
        self,
        venue_name: str,
        order: VenueOrder,
        trace: Context | None = None,
        *,
        restarted: bool = False,
    ) -> None:
        """Sends an order to its venue (its worker thread); once it is durable. `trace`: the
        trace the call continues; `restarted`: taken before a restart, maybe sent then."""
        venue = self.venues[venue_name]
        client = venue.client
        submit_order = client.submit_after_restart if restarted else client.submit_order

        def submit() -> None:
            try:
                with within(trace), stage("venue.submit"):
                    submit_order(order)
            except (VenueUnavailable, VenueBusy) as error:  # nothing was sent: see base.py
                venue.client.emit(
                    Report.nothing_filled(
                        T.EXECUTION_TYPE_REJECTED, order.order_id, order.side, str(error)
                    )
                )

        venue.worker.call(submit)

    def cancel_child(self, venue_name: str, child_id: str, request_id: str) -> None:
        """Asks a venue to cancel a parent's child order (its worker thread)."""
        client = self.venues[venue_name].client
        self.venues[venue_name].worker.call(lambda: client.cancel_order(child_id, request_id))

    def _restore(self) -> list[tuple[str, VenueOrder]]:
        """Loads the open orders and parents' children; restores a simulated venue's book;
        returns the orders the venue was never sent (no report yet), with their venue."""
        unsent: list[tuple[str, VenueOrder]] = []
        parents: list[RoutedOrder] = []
        resting: dict[str, list[tuple[VenueOrder, Report]]] = {name: [] for name in self.venues}
        rows = self.journal.query(
            "SELECT report_sequence, submit, last_report FROM routed_orders WHERE is_open = 1"
        )
        for sequence, submit, last in rows:
            command = events_pb2.SubmitOrder.FromString(submit)
            order = self.protected(VenueOrder.from_proto(command.order))
            routed = RoutedOrder(order, command, sequence)
            self._open[routed.order.order_id] = routed
            if last:
                routed.last = events_pb2.ExecutionReport.FromString(last)
            if routed.is_parent:
                parents.append(routed)
            elif routed.last is not None:
                restored = (self._as_restored(routed.order), Report.restored(routed.last))
                resting.setdefault(routed.venue, []).append(restored)
            else:
                unsent.append((routed.venue, routed.order))
        fills = self.journal.query(
            "SELECT f.order_id, f.trade_id FROM routed_orders o "
            "JOIN router_fills f ON f.order_id = o.order_id WHERE o.is_open = 1"
        )
        for order_id, trade_id in fills:
            self._open[order_id].trade_ids.add(trade_id)
        unsent += [(child.venue, child.order) for child in self.desk.restore(parents)]
        for name, children in self.desk.resting().items():
            resting.setdefault(name, []).extend(children)
        for name, orders in resting.items():
            if name not in self.venues:
                raise RuntimeError(
                    f"{len(orders)} open orders are at venue {name!r}, which the config no "
                    f"longer has (execution.venues: {', '.join(self.venues)}): put it back "
                    f"until they are finished"
                )
            self.venues[name].client.restore(orders)
        log.info("%s restored %d open orders (%d not yet sent)", self.name, len(rows), len(unsent))
        return unsent

    def _unanswered(self) -> list[tuple[str, Callable[[], None]]]:
        """The cancels and modifies of open orders that the router took but whose venue answer it
        had not journaled when it stopped, to ask the venue again with the same request ids: a
        simulated venue restored from the journal never had them, and the redelivered command
        or reconciliation's question finds them known. Modifies first: order-management sends a
        cancel after a pending modify, never a modify after a pending cancel."""
        asks: list[tuple[str, Callable[[], None]]] = []
        answered: dict[str, set[str]] = {}
        rows = self.journal.query(
            "SELECT m.order_id, m.request_id, m.quantity, m.limit_price FROM modify_requests m "
            "JOIN routed_orders o ON o.order_id = m.order_id WHERE o.is_open = 1"
        )
        for order_id, request_id, quantity, limit_price in rows:
            if request_id not in self._answered_requests(order_id, answered):
                ask = self._modify_at_venue(order_id, request_id, quantity, limit_price)
                asks.append((order_id, ask))
        rows = self.journal.query(
            "SELECT c.order_id, c.request_id FROM cancel_requests c "
            "JOIN routed_orders o ON o.order_id = c.order_id WHERE o.is_open = 1"
        )
        for order_id, request_id in rows:
            if request_id in self._answered_requests(order_id, answered):
                continue
            if self._open[order_id].is_parent:
                asks.append((order_id, self._resume_parent_cancel(order_id, request_id)))
            else:
                asks.append((order_id, self._cancel_at_venue(order_id, request_id)))
        if asks:
            log.info(
                "%s asks the venue again %d unanswered cancels or modifies", self.name, len(asks)
            )
        return asks

    def _resume_parent_cancel(self, order_id: str, request_id: str) -> Callable[[], None]:
        def resume() -> None:
            with self.lock:
                self.desk.resume_cancel(order_id, request_id)

        return resume

    def _answered_requests(self, order_id: str, answered: dict[str, set[str]]) -> set[str]:
        """The cancel and modify request ids the order's journaled reports answer."""
        if order_id not in answered:
            kept = self.journal.records_of_order(order_id, "ExecutionReport")
            reports = (events_pb2.Event.FromString(k.record.payload).execution_report for k in kept)
            answered[order_id] = {report.request_id for report in reports if report.request_id}
        return answered[order_id]

    def _as_restored(self, order: VenueOrder) -> VenueOrder:
        """The order as a simulated venue puts it back: a market-to-limit order that traded
        rests at the price of its first fill, which its reports show only in that fill (the
        average moves once the remainder fills at a better touch)."""
        if order.order_type != types_pb2.ORDER_TYPE_MARKET_TO_LIMIT:
            return order
        for kept in self.journal.records_of_order(order.order_id, "ExecutionReport"):
            report = events_pb2.Event.FromString(kept.record.payload).execution_report
            if report.trade_id:
                return replace(order, limit_price=Decimal(report.last_price))
        return order

    # Prices -----------------------------------------------------------------------------------

    def protected(self, order: VenueOrder) -> VenueOrder:
        """A market order gets a protection price: the touch when it reaches the router, moved
        by `order_defaults.max_slippage_bps` against the trader."""
        quote = self.quotes.get(order.instrument)
        instrument = self.config.instrument(order.instrument)
        if order.order_type != types_pb2.ORDER_TYPE_MARKET or quote is None or instrument is None:
            return order
        band = self.config.order_defaults.max_slippage_bps / Decimal(10_000)
        if order.side == types_pb2.SIDE_BUY:
            protection = ceil_to_tick(quote.ask * (1 + band), instrument.tick_size)
        else:
            protection = floor_to_tick(quote.bid * (1 - band), instrument.tick_size)
        return replace(order, protection_price=protection)

    # Reconciliation ---------------------------------------------------------------------------

    def _reconcile_periodically(self) -> None:
        interval = self.config.reconciliation.interval_ms / 1000
        while not self._stopping.wait(interval):
            for venue in self.venues.values():
                venue.worker.call(lambda venue=venue: self._reconcile_with_venue(venue))  # type: ignore[misc]

    def _reconcile_with_venue(self, venue: Venue) -> None:
        """Compares a venue's open orders with the router's (its worker thread)."""
        if not venue.client.available():
            return  # its circuit is open: asked again once it closes
        at_venue = {report.order_id for report in venue.client.open_orders()}
        with self.lock:
            children = self.desk.open_child_ids(venue.name)
            resting = children | {
                order_id
                for order_id, routed in self._open.items()
                if routed.venue == venue.name
                and not routed.is_parent
                and routed.last is not None
                and routed.last.execution_type != types_pb2.EXECUTION_TYPE_CANCEL_REJECTED
            }
            transaction = Transaction()
            for order_id in at_venue - set(self._open) - children:
                self.report_unresolved(
                    transaction,
                    "venue-order",
                    order_id,
                    f"open at {venue.name}, unknown to the router",
                )
            for order_id in resting - at_venue:
                self.report_unresolved(
                    transaction, "venue-order", order_id, f"open in the router, not at {venue.name}"
                )
            if transaction:
                self.commit(transaction)
