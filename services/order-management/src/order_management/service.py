"""Order-management: intake, validation, order state. Owns the orders."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

import grpc
from trading.v1 import events_pb2, orders_pb2, orders_pb2_grpc, positions_pb2, types_pb2
from trading_core.bus.base import EventBus
from trading_core.clock import Clock
from trading_core.config import PlatformConfig
from trading_core.errors import FailedPrecondition, NotFound
from trading_core.events import event_kind, event_time, event_type, new_id
from trading_core.quotes import QuoteBook
from trading_core.service import EventSourcedService
from trading_core.store.base import EventStore
from trading_core.streams import Broadcaster

from order_management.domain.orders import InvalidExecutionReport, InvalidOrderTransition, Order
from order_management.domain.validation import (
    AccountActivity,
    Denial,
    OrderRequest,
    PreTradeValidator,
    parse_submit_order,
    parse_submit_signal,
    size_signal,
)

log = logging.getLogger(__name__)


# Where an order stands in the newest-first listing.
OrderCursor = tuple[datetime, str]


def order_cursor(order: Order) -> OrderCursor:
    return (order.create_time, order.order_id)


def _before(order: Order, cursor: OrderCursor | None) -> bool:
    return cursor is None or order_cursor(order) < cursor


@dataclass(frozen=True)
class OrderUpdate:
    """One applied event and a snapshot of the order after it, for StreamOrderEvents."""

    event: events_pb2.Event
    order: orders_pb2.Order


class OrderManagement(EventSourcedService):
    name = "order-management"

    def __init__(
        self, config: PlatformConfig, bus: EventBus, store: EventStore, clock: Clock
    ) -> None:
        super().__init__(config, bus, store, clock)
        self._validator = PreTradeValidator(config)
        self._activity = AccountActivity()
        self._orders: dict[str, Order] = {}
        self._by_request: dict[str, str] = {}
        self._by_client_order: dict[tuple[str, str], str] = {}
        self._quotes = QuoteBook()
        # Pre-trade risk view: the latest position of each account and instrument.
        self.positions: dict[tuple[str, str], positions_pb2.Position] = {}
        self.updates: Broadcaster[OrderUpdate] = Broadcaster()

    # Life cycle -------------------------------------------------------------------------------

    def register(self, server: grpc.Server) -> Sequence[str]:
        from order_management.grpc_api import OrderServicer

        orders_pb2_grpc.add_OrderServiceServicer_to_server(OrderServicer(self), server)
        return [orders_pb2.DESCRIPTOR.services_by_name["OrderService"].full_name]

    def start(self) -> None:
        unanswered = self._replay_orders()
        self.consume("executions", self._on_execution)
        self.consume("market-data", self._quotes.apply, dedupe=False)
        self.consume("positions", self._on_position, dedupe=False)
        self._resend(unanswered)

    def _replay_orders(self) -> dict[str, events_pb2.Event]:
        """Rebuilds the orders; returns the last request the venue has not answered yet, per
        order: an OrderSubmitted with no execution report, or a cancel request still pending."""
        unanswered: dict[str, events_pb2.Event] = {}

        def apply(event: events_pb2.Event) -> None:
            self._apply(event)
            kind = event_kind(event)
            if kind in ("order_submitted", "order_cancel_requested"):
                unanswered[event.order_id] = event
            elif kind == "execution_report":
                order = self._orders.get(event.order_id)
                if order is None or order.status != types_pb2.ORDER_STATUS_PENDING_CANCEL:
                    unanswered.pop(event.order_id, None)

        self.replay(apply)
        return unanswered

    def _resend(self, unanswered: dict[str, events_pb2.Event]) -> None:
        """Publishes again what may have been lost when the last run stopped (an in-memory bus
        loses what it held): the router skips an event id it has applied and an order id its
        venue knows, so a request it did get changes nothing."""
        for order_id, event in unanswered.items():
            if self._orders[order_id].is_open:
                log.info("resending %s of order %s", event_type(event), order_id)
                self.publish("orders", event, order_id)

    def stop(self) -> None:
        self.updates.close()

    # Commands: each answers with a snapshot of the order taken under the lock, since the live
    # order may change as soon as the lock is released. -----------------------------------------

    def submit_order(self, request: orders_pb2.SubmitOrderRequest) -> orders_pb2.Order:
        parsed = parse_submit_order(request, self.config.order_defaults)
        with self.lock:
            return (self._existing(parsed) or self._decide(parsed)).to_proto()

    def submit_signal(self, request: orders_pb2.SubmitSignalRequest) -> orders_pb2.Order:
        signal_id = request.signal_id or new_id()
        unsized = parse_submit_signal(request, Decimal(0), signal_id, self.config.order_defaults)
        with self.lock:
            return self._sized(unsized).to_proto()

    def _sized(self, unsized: OrderRequest) -> Order:
        """Sizes a signal's order from the configured policy and decides on it."""
        existing = self._existing(unsized)
        if existing is not None:
            return existing
        instrument = self.config.instrument(unsized.instrument)
        if instrument is None:
            return self._decide(unsized)  # denied: instrument not configured
        price = unsized.limit_price or self._touch(unsized)
        if price is None:
            no_price = Denial(
                types_pb2.DENIAL_REASON_NO_MARKET_DATA,
                f"no quote for {unsized.instrument} yet to size the signal; retry shortly "
                "or give a limit price",
            )
            return self._deny(unsized, no_price)
        quantity = size_signal(self.config.signal_sizing, instrument, price)
        return self._decide(replace(unsized, quantity=quantity))

    def cancel_order(self, order_id: str) -> orders_pb2.Order:
        with self.lock:
            order = self._order(order_id)
            if order.status == types_pb2.ORDER_STATUS_PENDING_CANCEL:
                return order.to_proto()
            if not order.is_open:
                status = types_pb2.OrderStatus.Name(order.status).removeprefix("ORDER_STATUS_")
                raise FailedPrecondition(
                    f"order {order_id} is {status} and can no longer be canceled"
                )
            event = self._order_event(
                order, order_cancel_requested=events_pb2.OrderCancelRequested(order_id=order_id)
            )
            self._apply(event)
            self.record_and_publish("orders", event, order.order_id)
            return order.to_proto()

    # Queries ----------------------------------------------------------------------------------

    def get_order(self, order_id: str) -> orders_pb2.Order:
        with self.lock:
            return self._order(order_id).to_proto()

    def list_orders(
        self, accept: Callable[[Order], bool], after: OrderCursor | None, size: int
    ) -> tuple[list[orders_pb2.Order], OrderCursor | None]:
        """A page of the matching orders, newest first, starting after `after`; and the
        cursor of the page's last order when more follow."""
        with self.lock:
            matching = sorted(
                (o for o in self._orders.values() if accept(o) and _before(o, after)),
                key=order_cursor,
                reverse=True,
            )
            page = matching[:size]
            more = len(matching) > size
            return [o.to_proto() for o in page], order_cursor(page[-1]) if more else None

    def _order(self, order_id: str) -> Order:
        order = self._orders.get(order_id)
        if order is None:
            raise NotFound(f"no order with order_id {order_id!r}")
        return order

    def stream_updates(
        self, context: grpc.ServicerContext, accept: Callable[[OrderUpdate], bool]
    ) -> Iterator[OrderUpdate]:
        return self.updates.stream(context, accept)

    # Decisions --------------------------------------------------------------------------------

    def _existing(self, request: OrderRequest) -> Order | None:
        """The order an earlier submit with this request id or client order id created."""
        order_id = self._by_request.get(request.request_id) or self._by_client_order.get(
            (request.account_id, request.client_order_id)
        )
        return self._orders[order_id] if order_id else None

    def _decide(self, request: OrderRequest) -> Order:
        now = self.clock.now()
        denial = self._validator.check(
            request, self._quotes.get(request.instrument), self._activity, now
        )
        if denial is not None:
            return self._deny(request, denial)
        order = Order.accepted(request, new_id(), now)
        event = self._order_event(order, order_submitted=events_pb2.OrderSubmitted())
        self._apply(event, order)
        self.record_and_publish("orders", event, order.order_id)
        return self._orders[order.order_id]

    def _deny(self, request: OrderRequest, denial: Denial) -> Order:
        order = Order.denied(request, new_id(), denial, self.clock.now())
        payload = events_pb2.OrderDenied(reason=denial.reason, message=denial.message)
        event = self._order_event(order, order_denied=payload)
        self._apply(event, order)
        self.record(event)
        return self._orders[order.order_id]

    def _touch(self, request: OrderRequest) -> Decimal | None:
        """The price a market order would trade at now: the ask to buy, the bid to sell."""
        quote = self._quotes.get(request.instrument)
        if quote is None:
            return None
        return quote.ask if request.side == types_pb2.SIDE_BUY else quote.bid

    # Events -----------------------------------------------------------------------------------

    def _order_event(self, order: Order, **payload: object) -> events_pb2.Event:
        """The next event of an order; the event creating an order is its first (sequence 1)."""
        created = "order_submitted" in payload or "order_denied" in payload
        event = self.new_event(
            sequence=order.sequence if created else order.sequence + 1,
            order_id=order.order_id,
            signal_id=order.signal_id,
            account_id=order.account_id,
            instrument=order.instrument,
            **payload,
        )
        if created:
            getattr(event, event_kind(event)).order.CopyFrom(order.to_proto())
        return event

    def _apply(self, event: events_pb2.Event, created: Order | None = None) -> None:
        """Applies one of this service's events to its state; used live and on replay.

        `created` is the order an OrderSubmitted or OrderDenied made live, which spares
        rebuilding it from the event's snapshot.
        """
        kind = event_kind(event)
        if kind in ("order_submitted", "order_denied"):
            order = created or Order.from_proto(getattr(event, kind).order)
            self._orders[order.order_id] = order
            self._by_request[order.request_id] = order.order_id
            self._by_client_order[(order.account_id, order.client_order_id)] = order.order_id
            if kind == "order_submitted":
                self._activity.record(order.account_id, order.create_time)
        elif kind == "order_cancel_requested":
            self._orders[event.order_id].request_cancel(event.sequence, event_time(event))
        elif kind == "execution_report":
            order = self._orders[event.order_id]
            try:
                order.apply_execution(event.execution_report, order.sequence + 1, event_time(event))
            except (InvalidOrderTransition, InvalidExecutionReport) as error:
                # Kept in the store anyway: the venue's word is a fact even when it does not
                # fit our state, and an operator must see it.
                log.error("%s: %s", event_type(event), error)
                return
        else:
            return
        if self.updates.has_subscribers:
            self.updates.publish(OrderUpdate(event, self._orders[event.order_id].to_proto()))

    def _on_execution(self, event: events_pb2.Event) -> None:
        if event.order_id not in self._orders:
            log.warning("execution report for unknown order %s ignored", event.order_id)
            return
        self._apply(event)
        self.record(event)

    def _on_position(self, event: events_pb2.Event) -> None:
        if event_kind(event) != "position_updated":
            return
        position = event.position_updated.position
        key = (position.account_id, position.instrument)
        latest = self.positions.get(key)
        if latest is None or position.sequence > latest.sequence:
            self.positions[key] = position
