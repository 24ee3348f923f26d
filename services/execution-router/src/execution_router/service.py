"""The execution router: owns the venue session and market data, turns orders into reports."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import grpc
from trading.v1 import events_pb2, market_data_pb2, market_data_pb2_grpc, orders_pb2, types_pb2
from trading_core.bus.base import EventBus
from trading_core.clock import Clock
from trading_core.config import PlatformConfig
from trading_core.errors import InvalidArgument, NotFound, grpc_errors
from trading_core.events import event_kind, event_time
from trading_core.quotes import Quote
from trading_core.service import EventSourcedService
from trading_core.store.base import EventStore

from execution_router.domain.market_data import SyntheticFeed, ceil_to_tick, floor_to_tick
from execution_router.domain.paper_venue import PaperVenue, Report, VenueOrder

log = logging.getLogger(__name__)

# How far back from the end of its log the router resends execution reports on start.
RESEND_WINDOW = timedelta(minutes=1)

_FINISHED = {
    types_pb2.EXECUTION_TYPE_FILLED,
    types_pb2.EXECUTION_TYPE_REJECTED,
    types_pb2.EXECUTION_TYPE_CANCELED,
    types_pb2.EXECUTION_TYPE_EXPIRED,
}


def venue_order(order: orders_pb2.Order) -> VenueOrder:
    return VenueOrder(
        order_id=order.order_id,
        account_id=order.account_id,
        instrument=order.instrument,
        side=order.side,
        order_type=order.order_type,
        time_in_force=order.time_in_force,
        quantity=Decimal(order.quantity),
        limit_price=Decimal(order.limit_price) if order.limit_price else None,
    )


class ExecutionRouter(EventSourcedService):
    name = "execution-router"

    def __init__(
        self, config: PlatformConfig, bus: EventBus, store: EventStore, clock: Clock
    ) -> None:
        super().__init__(config, bus, store, clock)
        self._feed = SyntheticFeed(config.instruments, config.market_data)
        self._venue = PaperVenue(
            config.execution.simulation, {i.symbol: i for i in config.instruments}
        )
        self._fill_delay = config.execution.simulation.fill_delay_ms / 1000
        self._orders: dict[str, VenueOrder] = {}
        self._report_sequence: dict[str, int] = {}
        # Orders waiting out the simulated fill delay, not yet at the venue.
        self._delayed: dict[str, threading.Timer] = {}
        self._stopping = threading.Event()
        self._feed_thread = threading.Thread(target=self._run_feed, name="market-data", daemon=True)

    # Life cycle -------------------------------------------------------------------------------

    def register(self, server: grpc.Server) -> Sequence[str]:
        market_data_pb2_grpc.add_ExecutionServiceServicer_to_server(ExecutionServicer(self), server)
        return [market_data_pb2.DESCRIPTOR.services_by_name["ExecutionService"].full_name]

    def start(self) -> None:
        unrouted, recent_reports = self._replay_orders()
        self.consume("orders", self._on_order)
        self._tick()  # a first quote before the first order can arrive
        with self.lock:
            # Reports the last run published may have been lost in transit (an in-memory bus
            # loses what it held); consumers skip the event ids they have applied.
            for report in recent_reports:
                self.publish("executions", report, report.order_id)
            for order in unrouted:
                self._route(self._protected(order))
        self._feed_thread.start()

    def ready(self) -> bool:
        """Also needs its market data: a stopped feed means stale quotes and no fills."""
        return super().ready() and self._feed_thread.is_alive()

    def stop(self) -> None:
        self._stopping.set()
        if self._feed_thread.is_alive():
            self._feed_thread.join()
        with self.lock:
            for timer in self._delayed.values():
                timer.cancel()

    # Market data ------------------------------------------------------------------------------

    def quote(self, instrument: str) -> Quote:
        with self.lock:
            quote = self._feed.latest(instrument)
        if quote is None:
            known = ", ".join(i.symbol for i in self.config.instruments)
            raise NotFound(f"no quote for instrument {instrument!r}; configured: {known}")
        return quote

    def _run_feed(self) -> None:
        interval = self.config.market_data.interval_ms / 1000
        while not self._stopping.wait(interval):
            try:
                self._tick()
            except Exception:
                log.exception("market data tick failed")

    def _tick(self) -> None:
        """One conflated quote per instrument; resting orders the quotes cross get filled."""
        with self.lock:
            now = self.clock.now()
            for quote in self._feed.tick(now):
                event = self.new_event(
                    instrument=quote.instrument,
                    quote_updated=events_pb2.QuoteUpdated(quote=quote.to_proto()),
                )
                self.publish("market-data", event, quote.instrument)
                self._report(self._venue.on_quote(quote, now))

    # Orders -----------------------------------------------------------------------------------

    def _on_order(self, event: events_pb2.Event) -> None:
        kind = event_kind(event)
        if kind not in ("order_submitted", "order_cancel_requested"):
            return
        if kind == "order_submitted":
            order = self._protected(venue_order(event.order_submitted.order))
            self._orders[order.order_id] = order
            self._route(order)
        else:
            self._cancel(event.order_cancel_requested.order_id)
        # Recorded (and so marked applied) only once handled: a handler that fails gets the
        # event again, and the venue ignores an order id it already has.
        self.record(event)

    def _protected(self, order: VenueOrder) -> VenueOrder:
        """A market order gets a protection price: the touch when it reaches the router, moved
        by `order_defaults.max_slippage_bps` against the trader."""
        quote = self._feed.latest(order.instrument)
        instrument = self.config.instrument(order.instrument)
        if order.order_type != types_pb2.ORDER_TYPE_MARKET or quote is None or instrument is None:
            return order
        band = self.config.order_defaults.max_slippage_bps / Decimal(10_000)
        if order.side == types_pb2.SIDE_BUY:
            protection = ceil_to_tick(quote.ask * (1 + band), instrument.tick_size)
        else:
            protection = floor_to_tick(quote.bid * (1 - band), instrument.tick_size)
        return replace(order, protection_price=protection)

    def _route(self, order: VenueOrder) -> None:
        if self._fill_delay <= 0:
            self._submit(order)
            return
        timer = threading.Timer(self._fill_delay, self._submit_delayed, args=(order,))
        timer.daemon = True
        self._delayed[order.order_id] = timer
        timer.start()

    def _submit_delayed(self, order: VenueOrder) -> None:
        with self.lock:
            if self._delayed.pop(order.order_id, None) is not None:
                self._submit(order)

    def _submit(self, order: VenueOrder) -> None:
        now = self.clock.now()
        self._report(self._venue.submit(order, self._feed.latest(order.instrument), now))

    def _cancel(self, order_id: str) -> None:
        timer = self._delayed.pop(order_id, None)
        if timer is not None:
            timer.cancel()
            order = self._orders[order_id]
            self._report([_canceled_before_venue(order)])
            return
        self._report(self._venue.cancel(order_id, self.clock.now()))

    def _report(self, reports: list[Report]) -> None:
        for report in reports:
            order = self._orders[report.order_id]
            sequence = self._report_sequence.get(order.order_id, 0) + 1
            self._report_sequence[order.order_id] = sequence
            event = self.new_event(
                sequence=sequence,
                order_id=order.order_id,
                account_id=order.account_id,
                instrument=order.instrument,
                execution_report=report.to_proto(),
            )
            self.record_and_publish("executions", event, order.order_id)

    # Replay -----------------------------------------------------------------------------------

    def _replay_orders(self) -> tuple[list[VenueOrder], list[events_pb2.Event]]:
        """Rebuilds the venue's working orders. Returns the orders that never reached the
        venue, and the reports of the last RESEND_WINDOW of the log."""
        last_report: dict[str, events_pb2.ExecutionReport] = {}
        recent: deque[events_pb2.Event] = deque()

        def apply(event: events_pb2.Event) -> None:
            kind = event_kind(event)
            if kind == "order_submitted":
                order = venue_order(event.order_submitted.order)
                self._orders[order.order_id] = order
            elif kind == "execution_report":
                last_report[event.order_id] = event.execution_report
                self._report_sequence[event.order_id] = event.sequence
                recent.append(event)
                while event_time(event) - event_time(recent[0]) > RESEND_WINDOW:
                    recent.popleft()

        self.replay(apply)
        unrouted = []
        for order_id, order in self._orders.items():
            report = last_report.get(order_id)
            if report is None:
                unrouted.append(order)
            elif report.execution_type not in _FINISHED:
                self._venue.restore(
                    order,
                    venue_order_id=report.venue_order_id,
                    cumulative_quantity=Decimal(report.cumulative_quantity or "0"),
                    average_price=Decimal(report.average_price) if report.average_price else None,
                )
        return unrouted, list(recent)


def _canceled_before_venue(order: VenueOrder) -> Report:
    return Report(
        execution_type=types_pb2.EXECUTION_TYPE_CANCELED,
        order_id=order.order_id,
        venue_order_id="",
        side=order.side,
        cumulative_quantity=Decimal(0),
        leaves_quantity=Decimal(0),
        average_price=None,
        message=f"canceled before it reached the venue; {order.quantity} unfilled",
    )


class ExecutionServicer(market_data_pb2_grpc.ExecutionServiceServicer):
    def __init__(self, router: ExecutionRouter) -> None:
        self._router = router

    @grpc_errors()
    def GetQuote(  # noqa: N802
        self, request: market_data_pb2.GetQuoteRequest, context: grpc.ServicerContext
    ) -> market_data_pb2.GetQuoteResponse:
        if not request.instrument.strip():
            raise InvalidArgument("instrument is required, such as BTC-USD")
        quote = self._router.quote(request.instrument)
        return market_data_pb2.GetQuoteResponse(quote=quote.to_proto())
