"""The simulation venue: the paper-trading matching engine behind the execution-client template.

Its book is what the router's journal holds: on start the router restores the resting orders
with what had filled of them. A fill the engine made but the router never journaled (the
process died in between) did not happen, consistently for everyone.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from trading_core.clock import Clock
from trading_core.config import Instrument, SimulationVenue
from trading_core.quotes import Quote, QuoteBook

from execution_router.domain.paper_venue import VENUE_NAME, PaperVenue
from execution_router.domain.venue_types import Report, VenueOrder
from execution_router.venues.base import ExecutionClient, ReportSink

# Fills kept for `fills_since`: more than a reconciliation looks back over.
_RECENT_FILLS = 10_000


class SimulationClient(ExecutionClient):
    name = VENUE_NAME

    def __init__(
        self,
        emit: ReportSink,
        settings: SimulationVenue,
        instruments: Sequence[Instrument],
        clock: Clock,
    ) -> None:
        super().__init__(emit)
        self._venue = PaperVenue(settings, {i.symbol: i for i in instruments})
        self._clock = clock
        self._quotes = QuoteBook()
        self._fills: deque[Report] = deque(maxlen=_RECENT_FILLS)

    def submit_order(self, order: VenueOrder) -> None:
        now = self._clock.now()
        self._emit_all(self._venue.submit(order, self._quotes.get(order.instrument), now), now)

    def cancel_order(self, order_id: str, request_id: str) -> None:
        now = self._clock.now()
        self._emit_all(self._venue.cancel(order_id, request_id, now), now)

    def open_orders(self) -> list[Report]:
        return self._venue.open_orders()

    def fills_since(self, moment: datetime) -> list[Report]:
        return [fill for fill in self._fills if fill.time is not None and fill.time >= moment]

    def on_quote(self, quote: Quote) -> None:
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
            if report.trade_id:
                self._fills.append(report)
            self.emit(replace(report, time=now))
