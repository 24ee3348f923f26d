"""What the router journals for analysts beside the order path: the network venues' calls
(VenueCalled, the warehouse's venue_calls) and the shadow model's reports (ShadowExecution,
shadow_executions; `execution.shadow`).

Neither may slow or endanger a real order. Each has a thread of its own:

- `CallJournal` takes the adapters' `VenueCall`s (from their threads and event loops: one append
  to a queue) and journals them in batches, one transaction every `interval_s` (and what is left
  on stop). A process killed loses the calls of its last batch; none is ever journaled twice
  (each is one event, journaled once: the warehouse takes it once by its journal position).
- `ShadowDesk` runs the shadow model (domain/shadow.py) on its thread: the router hands it
  each order it sends to a network venue, once that order's routing is durable, every quote,
  and each real order that finished. What the model does is journaled as it happens. An order is
  shadowed once: when the router first sends it (after a restart the model starts empty, and
  orders open at it are not followed further; a process killed loses the reports not journaled
  yet). A failure of the model is logged and counted (`failures`), never raised into the
  router.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from trading.v1 import events_pb2, types_pb2
from trading_core.clock import Clock
from trading_core.config import PlatformConfig
from trading_core.decimals import format_decimal
from trading_core.events import timestamp
from trading_core.journal import Transaction
from trading_core.periodic import Periodic
from trading_core.quotes import Quote

from execution_router.domain.shadow import ShadowModel, ShadowReport
from execution_router.domain.venue_types import VenueOrder
from execution_router.venues.base import VenueCall

if TYPE_CHECKING:
    from execution_router.service import ExecutionRouter

log = logging.getLogger(__name__)


class CallJournal:
    """Journals venue calls in batches; see the module docstring."""

    def __init__(self, router: ExecutionRouter, interval_s: float = 0.2) -> None:
        self._router = router
        # Each call with its order's account and instrument, looked up when it is taken.
        self._calls: queue.SimpleQueue[tuple[VenueCall, tuple[str, str]]] = queue.SimpleQueue()
        self._loop = Periodic("venue-calls", self._flush, interval_s)

    def record(self, call: VenueCall) -> None:
        """Takes one call (any thread; the order is still open when its call returns)."""
        self._calls.put((call, self._router.order_owner(call.order_id)))

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        """Journals what is left, once the venues have stopped calling."""
        self._loop.stop()
        self._flush()

    def _flush(self) -> None:
        transaction = Transaction()
        while True:
            try:
                call, owner = self._calls.get_nowait()
            except queue.Empty:
                break
            transaction.keep(self._router.event_record(self._event(call, *owner)))
        if transaction:
            try:
                self._router.commit(transaction)
            except Exception:
                log.exception("journaling venue calls failed")

    def _event(self, call: VenueCall, account_id: str, instrument: str) -> events_pb2.Event:
        called = events_pb2.VenueCalled(
            venue=call.venue,
            operation=call.operation,
            latency_us=call.latency_us,
            outcome=call.outcome,
            attempts=call.attempts,
            message=call.message,
            error_class=call.error_class,
        )
        called.start_time.CopyFrom(timestamp(call.start_time))
        return self._router.new_event(
            order_id=call.order_id,
            account_id=account_id,
            instrument=instrument,
            venue_called=called,
        )


class ShadowDesk:
    """Runs the shadow model on its own thread and journals its reports; see the module
    docstring."""

    def __init__(self, router: ExecutionRouter, config: PlatformConfig, clock: Clock) -> None:
        self._router = router
        self._clock = clock
        instruments = {i.symbol: i for i in config.instruments}
        self._model = ShadowModel(config.execution.simulation, instruments)
        self._tasks: queue.SimpleQueue[Callable[[], list[ShadowReport]] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._run, name="shadow", daemon=True)
        self._failures = 0
        self._failures_lock = threading.Lock()

    @property
    def failures(self) -> int:
        """Tasks of the model that failed (each logged)."""
        with self._failures_lock:
            return self._failures

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._tasks.put(None)
            self._thread.join()

    def submit(self, order: VenueOrder, venue: str, arrival: Quote, sent: datetime) -> None:
        """The real order was sent to a network venue at `sent`, from the arrival quote."""
        if ShadowModel.models(order):
            self._tasks.put(lambda: self._model.submit(order, venue, arrival, sent))

    def on_quote(self, quote: Quote) -> None:
        self._tasks.put(lambda: self._model.on_quote(quote, self._clock.now()))

    def close(self, order_id: str) -> None:
        """The real order finished."""
        self._tasks.put(lambda: self._model.close(order_id, self._clock.now()))

    def _run(self) -> None:
        while (task := self._tasks.get()) is not None:
            try:
                reports = task()
                if reports:
                    self._journal(reports)
            except Exception:
                with self._failures_lock:
                    self._failures += 1
                log.exception("shadow simulation failed (the real order is not affected)")

    def _journal(self, reports: list[ShadowReport]) -> None:
        transaction = Transaction()
        for shadow in reports:
            order = shadow.shadowed.order
            event = self._router.new_event(
                order_id=order.order_id,
                account_id=order.account_id,
                instrument=order.instrument,
                shadow_execution=shadow_execution(shadow),
            )
            transaction.keep(self._router.event_record(event))
        self._router.commit(transaction)


def shadow_execution(shadow: ShadowReport) -> events_pb2.ShadowExecution:
    """The event payload of one model report; decimals as exact strings."""
    shadowed, report = shadow.shadowed, shadow.report
    order = shadowed.order
    message = events_pb2.ShadowExecution(
        venue=shadowed.venue,
        execution_type=report.execution_type,
        side=order.side,
        order_type=order.order_type,
        order_quantity=format_decimal(order.quantity),
        last_quantity=_text(report.last_quantity),
        last_price=_text(report.last_price),
        fee=format_decimal(report.fee) if report.trade_id else "",
        cumulative_quantity=format_decimal(report.cumulative_quantity),
        trade_id=report.trade_id,
        message=report.message,
    )
    message.send_time.CopyFrom(timestamp(shadowed.send_time))
    message.model_time.CopyFrom(timestamp(shadow.model_time))
    set_arrival(message, order.side, shadowed.arrival)
    return message


def set_arrival(
    message: events_pb2.ExecutionReport | events_pb2.ShadowExecution, side: int, quote: Quote
) -> None:
    """An order's arrival, as its first execution report and the model's reports carry it: the
    touch on its side and the quote's mid (the benchmark of slippage), with the quote's time."""
    message.arrival_price = format_decimal(quote.ask if side == types_pb2.SIDE_BUY else quote.bid)
    message.arrival_mid = format_decimal(quote.mid)
    message.arrival_quote_time.CopyFrom(timestamp(quote.time))


def _text(value: Decimal | None) -> str:
    return "" if value is None else format_decimal(value)
