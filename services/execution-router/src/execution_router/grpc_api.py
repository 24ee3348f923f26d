"""The ExecutionService gRPC API: quotes, and what reconciliation asks the router."""

from __future__ import annotations

from decimal import Decimal

import grpc
from trading.v1 import execution_pb2, execution_pb2_grpc
from trading_core.decimals import format_decimal
from trading_core.errors import InvalidArgument, grpc_errors
from trading_core.requests import optional_text, page_size, required_text, time_window

from execution_router.service import ExecutionRouter, VenueState

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
    def ListVenues(  # noqa: N802
        self, request: execution_pb2.ListVenuesRequest, context: grpc.ServicerContext
    ) -> execution_pb2.ListVenuesResponse:
        return execution_pb2.ListVenuesResponse(
            venues=[venue_status(state) for state in self._router.venue_states()]
        )

    @grpc_errors()
    def GetVenueStatus(  # noqa: N802
        self, request: execution_pb2.GetVenueStatusRequest, context: grpc.ServicerContext
    ) -> execution_pb2.GetVenueStatusResponse:
        name = required_text(request.venue, "venue")
        return execution_pb2.GetVenueStatusResponse(
            status=venue_status(self._router.venue_state(name))
        )

    @grpc_errors()
    def ListChildOrders(  # noqa: N802
        self, request: execution_pb2.ListChildOrdersRequest, context: grpc.ServicerContext
    ) -> execution_pb2.ListChildOrdersResponse:
        routed, children = self._router.child_orders(
            required_text(request.order_id, "order_id"),
            required_text(request.account_id, "account_id"),
        )
        filled = sum((child.filled for child in children), Decimal(0))
        released = sum((child.order.quantity for child in children), Decimal(0))
        return execution_pb2.ListChildOrdersResponse(
            order_id=routed.order.order_id,
            algorithm=routed.submit.order.execution.algorithm,
            released_quantity=format_decimal(released),
            filled_quantity=format_decimal(filled),
            child_orders=[child.to_proto() for child in children],
        )

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


_CIRCUITS = {
    "closed": execution_pb2.CIRCUIT_STATE_CLOSED,
    "open": execution_pb2.CIRCUIT_STATE_OPEN,
    "half-open": execution_pb2.CIRCUIT_STATE_HALF_OPEN,
}


_CHANNELS = {
    "pushed": execution_pb2.REPORT_CHANNEL_PUSHED,
    "polled": execution_pb2.REPORT_CHANNEL_POLLED,
    "polled_stream_down": execution_pb2.REPORT_CHANNEL_POLLED_STREAM_DOWN,
}


def venue_status(state: VenueState) -> execution_pb2.VenueStatus:
    status = execution_pb2.VenueStatus(
        venue=state.name,
        kind=state.kind,
        connected=state.connected,
        available=state.available,
        open_order_count=state.open_orders,
        problem_count=state.problems,
        circuit_state=execution_pb2.CIRCUIT_STATE_CLOSED,
        report_channel=_CHANNELS[state.report_channel],
    )
    guard = state.guard
    if guard is None:
        return status
    status.circuit_state = _CIRCUITS[guard.circuit]
    status.consecutive_failures = guard.consecutive_failures
    status.last_error = guard.last_error
    status.call_count = guard.calls
    status.failure_count = guard.failures
    if guard.opened_at is not None:
        status.circuit_open_time.FromDatetime(guard.opened_at)
    for headroom in guard.headroom:
        status.rate_limits.add(limit=headroom.limit, remaining=headroom.remaining)
    if guard.latency_p50_ms is not None:
        status.latency_p50.FromMilliseconds(round(guard.latency_p50_ms))
    if guard.latency_p99_ms is not None:
        status.latency_p99.FromMilliseconds(round(guard.latency_p99_ms))
    return status


def _decode_page_token(token: str) -> int:
    if not token:
        return 0
    if not token.isdigit() or len(token) > 19:
        raise InvalidArgument("page_token is not one this service returned")
    return int(token)
