"""Position-management: positions and P&L built from fills, marked to the latest quote."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal

import grpc
from trading.v1 import events_pb2, positions_pb2, positions_pb2_grpc
from trading_core.bus.base import EventBus
from trading_core.clock import Clock
from trading_core.config import PlatformConfig
from trading_core.errors import InvalidArgument, NotFound, grpc_errors
from trading_core.events import event_kind, event_time
from trading_core.quotes import QuoteBook
from trading_core.service import EventSourcedService
from trading_core.store.base import EventStore
from trading_core.streams import Broadcaster

from position_management.domain.positions import Fill, Position, PositionBook

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PositionChange:
    event: events_pb2.Event
    position: positions_pb2.Position


def fill_of(event: events_pb2.Event) -> Fill | None:
    """The fill an event carries, or None for any other event or a report without a fill."""
    if event_kind(event) != "execution_report":
        return None
    report = event.execution_report
    if not report.trade_id or not report.last_quantity:
        return None
    return Fill(
        trade_id=report.trade_id,
        order_id=event.order_id,
        account_id=event.account_id,
        instrument=event.instrument,
        side=report.side,
        quantity=Decimal(report.last_quantity),
        price=Decimal(report.last_price),
        fee=Decimal(report.fee or "0"),
        time=event_time(event),
    )


class PositionManagement(EventSourcedService):
    name = "position-management"

    def __init__(
        self, config: PlatformConfig, bus: EventBus, store: EventStore, clock: Clock
    ) -> None:
        super().__init__(config, bus, store, clock)
        self._book = PositionBook()
        self._quotes = QuoteBook()
        self.changes: Broadcaster[PositionChange] = Broadcaster()

    def register(self, server: grpc.Server) -> Sequence[str]:
        positions_pb2_grpc.add_PositionServiceServicer_to_server(PositionServicer(self), server)
        return [positions_pb2.DESCRIPTOR.services_by_name["PositionService"].full_name]

    def start(self) -> None:
        self.replay(self._replay_fill)
        self.consume("executions", self._on_execution)
        self.consume("market-data", self._on_quote, dedupe=False)

    def stop(self) -> None:
        self.changes.close()

    def position(self, account_id: str, instrument: str) -> positions_pb2.Position:
        with self.lock:
            position = self._book.get(account_id, instrument)
            if position is None:
                raise NotFound(f"account {account_id!r} has no position in {instrument!r}")
            return position.to_proto()

    def positions(self, account_id: str | None) -> list[positions_pb2.Position]:
        with self.lock:
            return [p.to_proto() for p in self._book.positions(account_id)]

    def _replay_fill(self, event: events_pb2.Event) -> None:
        fill = fill_of(event)
        if fill is not None:
            self._book.apply_fill(fill)

    def _on_execution(self, event: events_pb2.Event) -> None:
        fill = fill_of(event)
        if fill is None:
            return
        position = self._book.apply_fill(fill)
        self.record(event)
        if position is not None:
            self._mark_to_latest(position)
            self._announce(position, event)

    def _mark_to_latest(self, position: Position) -> None:
        quote = self._quotes.get(position.instrument)
        if quote is not None:
            position.mark(quote.mid, quote.time)

    def _announce(self, position: Position, cause: events_pb2.Event) -> None:
        snapshot = position.to_proto()
        event = self.new_event(
            sequence=position.sequence,
            order_id=cause.order_id,
            account_id=position.account_id,
            instrument=position.instrument,
            position_updated=events_pb2.PositionUpdated(position=snapshot),
        )
        self.record_and_publish("positions", event, f"{position.account_id}|{position.instrument}")
        if self.changes.has_subscribers:
            self.changes.publish(PositionChange(event, snapshot))

    def _on_quote(self, event: events_pb2.Event) -> None:
        quote = self._quotes.apply(event)
        if quote is not None:
            self._book.mark(quote)


class PositionServicer(positions_pb2_grpc.PositionServiceServicer):
    def __init__(self, positions: PositionManagement) -> None:
        self._positions = positions

    @grpc_errors()
    def GetPosition(  # noqa: N802
        self, request: positions_pb2.GetPositionRequest, context: grpc.ServicerContext
    ) -> positions_pb2.GetPositionResponse:
        for field in ("account_id", "instrument"):
            if not getattr(request, field).strip():
                raise InvalidArgument(f"{field} is required")
        position = self._positions.position(request.account_id, request.instrument)
        return positions_pb2.GetPositionResponse(position=position)

    @grpc_errors()
    def ListPositions(  # noqa: N802
        self, request: positions_pb2.ListPositionsRequest, context: grpc.ServicerContext
    ) -> positions_pb2.ListPositionsResponse:
        positions = self._positions.positions(request.account_id or None)
        return positions_pb2.ListPositionsResponse(positions=positions)

    def StreamPositionEvents(  # noqa: N802
        self, request: positions_pb2.StreamPositionEventsRequest, context: grpc.ServicerContext
    ) -> Iterator[positions_pb2.StreamPositionEventsResponse]:
        def accept(change: PositionChange) -> bool:
            return not request.account_id or change.position.account_id == request.account_id

        changes = self._positions.changes.stream(context, accept)
        context.send_initial_metadata(())  # tells the client it is subscribed
        for change in changes:
            yield positions_pb2.StreamPositionEventsResponse(
                event_id=change.event.event_id,
                event_time=change.event.event_time,
                position=change.position,
            )
