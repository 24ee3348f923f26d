"""The simulation venue: the paper-trading matching engine behind the execution-client template.

Its book is what the router's journal holds: on start the router restores the resting orders
with what had filled of them. A fill the engine made but the router never journaled (the
process died in between) did not happen, consistently for everyone.

Latency (`execution.simulation.latency`, or `fill_delay_ms` as a fixed one) holds each new
order back for a time the engine draws for it: a cancel meanwhile cancels it before it reaches
the book. Delayed orders arrive on timer threads, in the order they were sent per instrument: a
timer that fires first delivers the orders of its instrument sent before its own (the engine
never gives them a later arrival time, so they are due), and a later order never overtakes an
earlier one. The engine is used under the client's own lock, and reports are emitted under it
too, keeping each order's reports in order.
"""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from trading.v1 import types_pb2
from trading_core.clock import Clock
from trading_core.config import Instrument, SimulationVenue
from trading_core.decimals import format_decimal
from trading_core.quotes import Quote, QuoteBook

from execution_router.domain.paper_venue import VENUE_NAME, PaperVenue
from execution_router.domain.venue_types import Report, VenueOrder
from execution_router.venues.base import ExecutionClient, ReportSink

# Fills kept for `fills_since`: more than a reconciliation looks back over.
_RECENT_FILLS = 10_000


class SimulationClient(ExecutionClient):
    name = VENUE_NAME
    kind = VENUE_NAME
    wants_quotes = True

    def __init__(
        self,
        emit: ReportSink,
        settings: SimulationVenue,
        instruments: Sequence[Instrument],
        clock: Clock,
    ) -> None:
        super().__init__(emit)
        self.symbols = {i.symbol: i.symbol for i in instruments}
        self._venue = PaperVenue(settings, {i.symbol: i for i in instruments})
        self._clock = clock
        self._quotes = QuoteBook()
        self._fills: deque[Report] = deque(maxlen=_RECENT_FILLS)
        self._delayed: dict[str, tuple[VenueOrder, threading.Timer]] = {}
        # The ids of each instrument's delayed orders, in the order they were sent.
        self._in_flight: defaultdict[str, deque[str]] = defaultdict(deque)
        self._lock = threading.RLock()

    def submit_order(self, order: VenueOrder) -> None:
        with self._lock:
            now = self._clock.now()
            arrival = self._venue.arrival_time(order, now)
            in_flight = self._in_flight[order.instrument]
            if arrival <= now and not in_flight:
                self._submit_now(order)
                return
            delay_s = max((arrival - now).total_seconds(), 0.0)
            timer = threading.Timer(delay_s, self._arrive, args=(order,))
            timer.daemon = True
            self._delayed[order.order_id] = (order, timer)
            in_flight.append(order.order_id)
            timer.start()

    def cancel_order(self, order_id: str, request_id: str) -> None:
        with self._lock:
            delayed = self._delayed.pop(order_id, None)
            now = self._clock.now()
            if delayed is None:
                self._emit_all(self._venue.cancel(order_id, request_id, now), now)
                return
            order, timer = delayed
            timer.cancel()
            self._in_flight[order.instrument].remove(order_id)
            self._emit_all([_canceled_before_arrival(order, request_id)], now)

    def modify_order(
        self,
        order_id: str,
        request_id: str,
        quantity: Decimal | None,
        limit_price: Decimal | None,
    ) -> None:
        # An order still on its way (fill_delay_ms) is not at the venue: rejected as unknown,
        # as a venue would (order-management only modifies what the venue acknowledged).
        with self._lock:
            reports = self._venue.modify(
                order_id, request_id, quantity, limit_price, self._quotes.get
            )
            self._emit_all(reports, self._clock.now())

    def stop(self) -> None:
        with self._lock:
            for _, timer in self._delayed.values():
                timer.cancel()

    def open_orders(self) -> list[Report]:
        with self._lock:
            return self._venue.open_orders()

    def _arrive(self, order: VenueOrder) -> None:
        """The order's timer fired: it reaches the book, after the orders of its instrument
        sent before it (their timers may not have fired yet, or may be about to)."""
        with self._lock:
            if order.order_id not in self._delayed:
                return  # canceled, or already delivered by an earlier order's timer
            in_flight = self._in_flight[order.instrument]
            while in_flight:
                order_id = in_flight.popleft()
                earlier, timer = self._delayed.pop(order_id)
                timer.cancel()
                self._submit_now(earlier)
                if order_id == order.order_id:
                    return

    def _submit_now(self, order: VenueOrder) -> None:
        with self._lock:
            now = self._clock.now()
            quote = self._quotes.get(order.instrument)
            self._emit_all(self._venue.submit(order, quote, now), now)

    def fills_since(self, moment: datetime) -> list[Report]:
        return [fill for fill in self._fills if fill.time is not None and fill.time >= moment]

    def on_quote(self, quote: Quote) -> None:
        with self._lock:
            if self._quotes.update(quote):
                now = self._clock.now()
                self._emit_all(self._venue.on_quote(quote, now), now)

    def restore(self, orders: Sequence[tuple[VenueOrder, Report]]) -> None:
        for order, last in orders:
            self._venue.restore(
                order,
                venue_order_id=last.venue_order_id,
                cumulative_quantity=last.cumulative_quantity,
                average_price=last.average_price,
            )

    def _emit_all(self, reports: list[Report], now: datetime) -> None:
        for report in reports:
            timed = replace(report, time=now)
            if report.trade_id:
                self._fills.append(timed)  # with its time, or fills_since never finds it
            self.emit(timed)


def _canceled_before_arrival(order: VenueOrder, request_id: str) -> Report:
    unfilled = format_decimal(order.quantity)
    message = f"canceled before it reached the venue; {unfilled} unfilled"
    canceled = types_pb2.EXECUTION_TYPE_CANCELED
    return Report.nothing_filled(canceled, order.order_id, order.side, message, request_id)
