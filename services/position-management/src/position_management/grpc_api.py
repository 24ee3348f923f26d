"""The PositionService gRPC API."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
from trading.v1 import positions_pb2, positions_pb2_grpc
from trading_core.errors import grpc_errors
from trading_core.requests import required_text

from position_management.service import PositionChange, PositionManagement


class PositionServicer(positions_pb2_grpc.PositionServiceServicer):
    def __init__(self, positions: PositionManagement) -> None:
        self._positions = positions

    @grpc_errors()
    def GetPosition(  # noqa: N802
        self, request: positions_pb2.GetPositionRequest, context: grpc.ServicerContext
    ) -> positions_pb2.GetPositionResponse:
        required_text(request.account_id, "account_id")
        required_text(request.instrument, "instrument")
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
