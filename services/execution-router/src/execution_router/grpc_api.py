"""The ExecutionService gRPC API: quotes, and what reconciliation asks the router."""

from __future__ import annotations

import grpc
from trading.v1 import execution_pb2, execution_pb2_grpc
from trading_core.errors import InvalidArgument, grpc_errors
from trading_core.requests import optional_text, page_size, required_text, time_window

from execution_router.service import ExecutionRouter

_DEFAULT_PAGE = 500
_MAX_PAGE = 1000


class ExecutionServicer(execution_pb2_grpc.ExecutionServiceServicer):
    def __init__(self, router: ExecutionRouter) -> None:
        self._router = router

    @grpc_errors()
    def GetQuote(  # noqa: N802
        self, request: execution_pb2.GetQuoteRequest, context: grpc.ServicerContext
    ) -> execution_pb2.GetQuoteResponse:
        if not request.instrument.strip():
            raise InvalidArgument("instrument is required, such as BTC-USD")
        if len(request.instrument) > 64:
            raise InvalidArgument("instrument must be at most 64 characters")
        quote = self._router.quote(request.instrument)
        return execution_pb2.GetQuoteResponse(quote=quote.to_proto())

    @grpc_errors()
    def QueryOrder(  # noqa: N802
        self, request: execution_pb2.QueryOrderRequest, context: grpc.ServicerContext
    ) -> execution_pb2.QueryOrderResponse:
        reports = self._router.query_order(
            required_text(request.order_id, "order_id"),
            required_text(request.account_id, "account_id"),
            required_text(request.instrument, "instrument"),
            optional_text(request.cancel_request_id, "cancel_request_id"),
            request.pending_modify if request.HasField("pending_modify") else None,
        )
        return execution_pb2.QueryOrderResponse(reports=reports)

    @grpc_errors()
    def CountFills(  # noqa: N802
        self, request: execution_pb2.CountFillsRequest, context: grpc.ServicerContext
    ) -> execution_pb2.CountFillsResponse:
        since, until = time_window(request)
        return execution_pb2.CountFillsResponse(fill_count=self._router.count_fills(since, until))

    @grpc_errors()
    def ListFills(  # noqa: N802
        self, request: execution_pb2.ListFillsRequest, context: grpc.ServicerContext
    ) -> execution_pb2.ListFillsResponse:
        since, until = time_window(request)
        size = page_size(request.page_size, default=_DEFAULT_PAGE, largest=_MAX_PAGE)
        after = _decode_page_token(request.page_token)
        reports, last = self._router.list_fills(since, until, after, size)
        token = "" if last is None else str(last)
        return execution_pb2.ListFillsResponse(reports=reports, next_page_token=token)


def _decode_page_token(token: str) -> int:
    if not token:
        return 0
    if not token.isdigit() or len(token) > 19:
        raise InvalidArgument("page_token is not one this service returned")
    return int(token)
