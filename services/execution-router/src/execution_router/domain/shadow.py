"""Shadow simulation's model: what the paper venue would have done with the orders the router
sends to network venues (`execution.shadow`). Plain Python over plain data, no I/O, the clock
passed in.

The model is a `PaperVenue` of its own, configured as `execution.simulation`, that sees only
the shadowed orders and the quotes: it never touches a real order. An order enters it when the
router sends the real one (`send_time`), priced on the quote the router had when the order
reached it (its arrival quote, the one the real order's slippage is measured from): it reaches
the model's book after the latency the venue draws for it, and fills there as it would on the
paper venue. What rests fills on later quotes, never before it reached the book. When the real
order finishes (filled, canceled, expired, rejected) the model's order is canceled: both live
as long, so their fill rates compare.

The model reports would-be fills and how an order ended with part unfilled (EXPIRED, REJECTED,
CANCELED); its ACCEPTED reports say nothing a comparison needs and are left out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from trading.v1 import types_pb2
from trading_core.config import Instrument, SimulationVenue
from trading_core.events import new_id as random_id
from trading_core.quotes import Quote

from execution_router.domain.paper_venue import PaperVenue
from execution_router.domain.venue_types import Report, VenueOrder

# The order types the paper venue takes; a stop a network venue holds natively is not modelled.
SHADOWED_TYPES = frozenset(
    {
        types_pb2.ORDER_TYPE_MARKET,
        types_pb2.ORDER_TYPE_LIMIT,
        types_pb2.ORDER_TYPE_MARKET_TO_LIMIT,
    }
)
_ENDS = frozenset(
    {
        types_pb2.EXECUTION_TYPE_FILLED,
        types_pb2.EXECUTION_TYPE_EXPIRED,
        types_pb2.EXECUTION_TYPE_REJECTED,
        types_pb2.EXECUTION_TYPE_CANCELED,
    }
)
_REAL_ORDER_FINISHED = "the real order finished first"


@dataclass(frozen=True)
class Shadowed:
    """An order in the model: the real order as sent, where it went, and where the model's
    clock and prices start."""

    order: VenueOrder
    venue: str
    send_time: datetime
    arrival: Quote
    # When the model's order reached its book (send time + the latency drawn for it).
    book_time: datetime


@dataclass(frozen=True)
class ShadowReport:
    """One thing the model did with a shadowed order: a would-be fill, or its end."""

    shadowed: Shadowed
    report: Report
    model_time: datetime


class ShadowModel:
    """The paper venue's model of the orders sent to network venues; see the module docstring."""

    def __init__(
        self,
        settings: SimulationVenue,
        instruments: Mapping[str, Instrument],
        new_id: Callable[[], str] = random_id,
    ) -> None:
        self._venue = PaperVenue(settings, instruments, new_id)
        self._open: dict[str, Shadowed] = {}

    @staticmethod
    def models(order: VenueOrder) -> bool:
        """Whether the model takes this kind of order at all."""
        return order.order_type in SHADOWED_TYPES

    @property
    def open_orders(self) -> int:
        return len(self._open)

    def submit(
        self, order: VenueOrder, venue: str, arrival: Quote, now: datetime
    ) -> list[ShadowReport]:
        """The real order was sent to `venue` at `now`: the model's order reaches its book
        after the latency drawn for it, priced on the arrival quote."""
        book_time = self._venue.arrival_time(order, now)
        shadowed = Shadowed(order, venue, now, arrival, book_time)
        self._open[order.order_id] = shadowed
        return self._kept(self._venue.submit(order, arrival, book_time), book_time)

    def on_quote(self, quote: Quote, now: datetime) -> list[ShadowReport]:
        """A new quote: resting model orders it crosses fill (at the earliest when they reached
        the book)."""
        return self._kept(self._venue.on_quote(quote, now), now)

    def close(self, order_id: str, now: datetime) -> list[ShadowReport]:
        """The real order finished: the model's order, if still working, is canceled."""
        if order_id not in self._open:
            return []
        reports = self._venue.cancel(order_id, "", now)
        ended = [
            _with_message(r, _REAL_ORDER_FINISHED)
            for r in reports
            if r.execution_type == types_pb2.EXECUTION_TYPE_CANCELED
        ]
        kept = self._kept(ended, now)
        self._open.pop(order_id, None)
        return kept

    def _kept(self, reports: list[Report], now: datetime) -> list[ShadowReport]:
        """Fills and ends, each with its model time; ends take the order out of the model."""
        kept = []
        for report in reports:
            shadowed = self._open.get(report.order_id)
            if shadowed is None:
                continue
            if report.execution_type not in _ENDS and not report.trade_id:
                continue  # ACCEPTED, and anything else that is neither a fill nor an end
            kept.append(ShadowReport(shadowed, report, max(now, shadowed.book_time)))
            if report.execution_type in _ENDS:
                del self._open[report.order_id]
        return kept


def _with_message(report: Report, message: str) -> Report:
    return replace(report, message=f"{message}; {report.message}" if report.message else message)
