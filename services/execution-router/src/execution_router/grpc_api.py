"""The ExecutionService gRPC API."""

from __future__ import annotations

import grpc
from trading.v1 import market_data_pb2, market_data_pb2_grpc
from trading_core.errors import InvalidArgument, grpc_errors

from execution_router.service import ExecutionRouter


class ExecutionServicer(market_data_pb2_grpc.ExecutionServiceServicer):
    def __init__(self, router: ExecutionRouter) -> None:
        self._router = router

    @grpc_errors()
    def GetQuote(  # noqa: N802
        self, request: market_data_pb2.GetQuoteRequest, context: grpc.ServicerContext
    ) -> market_data_pb2.GetQuoteResponse:
        if not request.instrument.strip():
            raise InvalidArgument("instrument is required, such as BTC-USD")
        if len(request.instrument) > 64:
            raise InvalidArgument("instrument must be at most 64 characters")
        quote = self._router.quote(request.instrument)
        return market_data_pb2.GetQuoteResponse(quote=quote.to_proto())
