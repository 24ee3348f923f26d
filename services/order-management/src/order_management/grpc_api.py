"""The OrderService and TradingControlService gRPC APIs: check requests, call
order-management, shape answers."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator

import grpc
from trading.v1 import (
    control_pb2,
    control_pb2_grpc,
    orders_pb2,
    orders_pb2_grpc,
    portfolio_pb2,
    portfolio_pb2_grpc,
    types_pb2,
)
from trading_core.errors import InvalidArgument, NotFound, grpc_errors
from trading_core.events import event_type
from trading_core.requests import optional_text, required_text

from order_management.domain.risk_limits import (
    check_scope,
    limit_set,
    parse_limit_set,
)
from order_management.domain.trading_state import (
    ACTIVE,
    HALTED,
    MAX_REASON_LENGTH,
    REDUCING,
)
from order_management.domain.validation import InvalidRequest
from order_management.service import OrderCursor, OrderFilter, OrderManagement, OrderUpdate

_ERRORS = grpc_errors({InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT})
_DEFAULT_PAGE = 100
_MAX_PAGE = 1000


class OrderServicer(orders_pb2_grpc.OrderServiceServicer):
    def __init__(self, orders: OrderManagement) -> None:
        self._orders = orders

    @_ERRORS
    def SubmitOrder(  # noqa: N802
        self, request: orders_pb2.SubmitOrderRequest, context: grpc.ServicerContext
    ) -> orders_pb2.SubmitOrderResponse:
        order, legs = self._orders.submit_order(request)
        return orders_pb2.SubmitOrderResponse(order=order, legs=legs)

    @_ERRORS
    def SubmitSignal(  # noqa: N802
        self, request: orders_pb2.SubmitSignalRequest, context: grpc.ServicerContext
    ) -> orders_pb2.SubmitSignalResponse:
        order, legs = self._orders.submit_signal(request)
        return orders_pb2.SubmitSignalResponse(signal_id=order.signal_id, order=order, legs=legs)

    @_ERRORS
    def CancelOrder(  # noqa: N802
        self, request: orders_pb2.CancelOrderRequest, context: grpc.ServicerContext
    ) -> orders_pb2.CancelOrderResponse:
        for field in ("order_id", "account_id", "request_id"):
            required_text(getattr(request, field), field)
        return orders_pb2.CancelOrderResponse(order=self._orders.cancel_order(request))

    @_ERRORS
    def ModifyOrder(  # noqa: N802
        self, request: orders_pb2.ModifyOrderRequest, context: grpc.ServicerContext
    ) -> orders_pb2.ModifyOrderResponse:
        for field in ("order_id", "account_id", "request_id"):
            required_text(getattr(request, field), field)
        answer = self._orders.modify_order(request)
        refusal = answer.refusal
        return orders_pb2.ModifyOrderResponse(
            order=answer.order,
            refusal_reason=refusal.reason if refusal else types_pb2.DENIAL_REASON_UNSPECIFIED,
            refusal_message=refusal.message if refusal else "",
        )

    @_ERRORS
    def CancelAllOrders(  # noqa: N802
        self, request: orders_pb2.CancelAllOrdersRequest, context: grpc.ServicerContext
    ) -> orders_pb2.CancelAllOrdersResponse:
        for field in ("request_id", "account_id"):
            required_text(getattr(request, field), field)
        for field in ("instrument", "strategy_id"):
            optional_text(getattr(request, field), field)
        if request.side not in types_pb2.Side.values():
            raise InvalidArgument(f"side: {request.side} is not a side (BUY, SELL or unspecified)")
        return orders_pb2.CancelAllOrdersResponse(orders=self._orders.cancel_all(request))

    @_ERRORS
    def ClosePosition(  # noqa: N802
        self, request: orders_pb2.ClosePositionRequest, context: grpc.ServicerContext
    ) -> orders_pb2.ClosePositionResponse:
        for field in ("request_id", "account_id"):
            required_text(getattr(request, field), field)
        instrument = optional_text(request.instrument, "instrument")
        if instrument and self._orders.config.instrument(instrument) is None:
            raise InvalidArgument(f"instrument {instrument!r} is not configured")
        answer = self._orders.close_position(request)
        return orders_pb2.ClosePositionResponse(
            canceled_orders=answer.canceled, closing_orders=answer.closing, pending=answer.pending
        )

    @_ERRORS
    def GetOrder(  # noqa: N802
        self, request: orders_pb2.GetOrderRequest, context: grpc.ServicerContext
    ) -> orders_pb2.GetOrderResponse:
        order = self._orders.get_order(
            required_text(request.account_id, "account_id"),
            required_text(request.order_id, "order_id"),
        )
        return orders_pb2.GetOrderResponse(order=order)

    @_ERRORS
    def ListOrders(  # noqa: N802
        self, request: orders_pb2.ListOrdersRequest, context: grpc.ServicerContext
    ) -> orders_pb2.ListOrdersResponse:
        if request.page_size < 0 or request.page_size > _MAX_PAGE:
            raise InvalidArgument(f"page_size must be between 0 and {_MAX_PAGE}")
        for status in request.statuses:
            if status not in types_pb2.OrderStatus.values() or status == 0:
                raise InvalidArgument(f"statuses: {status} is not an order status")
        size = request.page_size or _DEFAULT_PAGE
        after = _decode_page_token(request.page_token)
        chosen = OrderFilter(
            account_id=optional_text(request.account_id, "account_id"),
            instrument=optional_text(request.instrument, "instrument"),
            statuses=frozenset(request.statuses),
            open_only=request.open_only,
        )
        page, last = self._orders.list_orders(chosen, after, size)
        token = _encode_page_token(last) if last is not None else ""
        return orders_pb2.ListOrdersResponse(orders=page, next_page_token=token)

    def StreamOrderEvents(  # noqa: N802
        self, request: orders_pb2.StreamOrderEventsRequest, context: grpc.ServicerContext
    ) -> Iterator[orders_pb2.StreamOrderEventsResponse]:
        if request.order_id:
            try:
                self._orders.get_order(
                    required_text(request.account_id, "account_id"), request.order_id
                )
            except (NotFound, InvalidArgument) as error:
                context.abort(error.code, str(error))

        def accept(update: OrderUpdate) -> bool:
            event = update.event
            return (not request.account_id or event.account_id == request.account_id) and (
                not request.order_id or event.order_id == request.order_id
            )

        updates = self._orders.stream_updates(context, accept)
        context.send_initial_metadata(())  # tells the client it is subscribed
        for update in updates:
            yield orders_pb2.StreamOrderEventsResponse(
                event_id=update.event.event_id,
                event_type=event_type(update.event),
                event_time=update.event.event_time,
                order=update.order,
            )


class PortfolioServicer(portfolio_pb2_grpc.PortfolioServiceServicer):
    def __init__(self, orders: OrderManagement) -> None:
        self._orders = orders

    @_ERRORS
    def GetPortfolio(  # noqa: N802
        self, request: portfolio_pb2.GetPortfolioRequest, context: grpc.ServicerContext
    ) -> portfolio_pb2.GetPortfolioResponse:
        account_id = required_text(request.account_id, "account_id")
        return portfolio_pb2.GetPortfolioResponse(portfolio=self._orders.portfolio(account_id))


class TradingControlServicer(control_pb2_grpc.TradingControlServiceServicer):
    def __init__(self, orders: OrderManagement) -> None:
        self._orders = orders

    @_ERRORS
    def GetTradingState(  # noqa: N802
        self, request: control_pb2.GetTradingStateRequest, context: grpc.ServicerContext
    ) -> control_pb2.GetTradingStateResponse:
        account_id = optional_text(request.account_id, "account_id")
        platform, accounts, effective = self._orders.trading_states(account_id)
        return control_pb2.GetTradingStateResponse(
            platform=platform.to_proto(),
            accounts=[a.to_proto() for a in accounts],
            effective_state=effective if account_id else types_pb2.TRADING_STATE_UNSPECIFIED,
            instruments=self._orders.instrument_statuses(),
        )

    @_ERRORS
    def SetTradingState(  # noqa: N802
        self, request: control_pb2.SetTradingStateRequest, context: grpc.ServicerContext
    ) -> control_pb2.SetTradingStateResponse:
        if request.state not in _STATES:
            raise InvalidArgument("state must be ACTIVE, REDUCING or HALTED")
        record = self._orders.set_trading_state(
            required_text(request.request_id, "request_id"),
            optional_text(request.account_id, "account_id"),
            request.state,
            required_text(request.reason, "reason", MAX_REASON_LENGTH),
        )
        return control_pb2.SetTradingStateResponse(trading_state=record.to_proto())

    @_ERRORS
    def EmergencyStop(  # noqa: N802
        self, request: control_pb2.EmergencyStopRequest, context: grpc.ServicerContext
    ) -> control_pb2.EmergencyStopResponse:
        answer = self._orders.emergency_stop(
            required_text(request.request_id, "request_id"),
            optional_text(request.account_id, "account_id"),
            required_text(request.reason, "reason", MAX_REASON_LENGTH),
            flatten=request.flatten,
        )
        return control_pb2.EmergencyStopResponse(
            trading_state=answer.trading_state.to_proto(),
            canceled_orders=answer.canceled,
            flattening_accounts=answer.flattening_accounts,
        )

    @_ERRORS
    def SetInstrumentStatus(  # noqa: N802
        self, request: control_pb2.SetInstrumentStatusRequest, context: grpc.ServicerContext
    ) -> control_pb2.SetInstrumentStatusResponse:
        if request.status not in _INSTRUMENT_STATUSES:
            raise InvalidArgument(
                "status must be INSTRUMENT_STATUS_TRADING, _REDUCE_ONLY, _HALTED or _CLOSED"
            )
        record = self._orders.set_instrument_status(
            required_text(request.request_id, "request_id"),
            required_text(request.instrument, "instrument"),
            request.status,
            required_text(request.reason, "reason", MAX_REASON_LENGTH),
        )
        return control_pb2.SetInstrumentStatusResponse(record=record)

    @_ERRORS
    def GetRiskLimits(  # noqa: N802
        self, request: control_pb2.GetRiskLimitsRequest, context: grpc.ServicerContext
    ) -> control_pb2.GetRiskLimitsResponse:
        account, strategy, changes = self._orders.risk_limits(
            optional_text(request.account_id, "account_id"),
            optional_text(request.strategy_id, "strategy_id"),
        )
        return control_pb2.GetRiskLimitsResponse(
            account=limit_set(account),
            strategy=limit_set(strategy),
            changes=[change.to_proto() for change in changes],
        )

    @_ERRORS
    def SetRiskLimits(  # noqa: N802
        self, request: control_pb2.SetRiskLimitsRequest, context: grpc.ServicerContext
    ) -> control_pb2.SetRiskLimitsResponse:
        request_id = required_text(request.request_id, "request_id")
        name = optional_text(request.name, "name")
        check_scope(request.scope, name)
        reason = required_text(request.reason, "reason", MAX_REASON_LENGTH)
        answer = self._orders.set_risk_limits(
            request_id, request.scope, name, parse_limit_set(request.limits), reason
        )
        return control_pb2.SetRiskLimitsResponse(record=answer.to_proto())


_STATES = frozenset({ACTIVE, REDUCING, HALTED})
_INSTRUMENT_STATUSES = frozenset(
    v for v in types_pb2.InstrumentStatus.values() if v != types_pb2.INSTRUMENT_STATUS_UNSPECIFIED
)


def _encode_page_token(cursor: OrderCursor) -> str:
    created_us, order_id = cursor
    return base64.urlsafe_b64encode(f"{created_us}|{order_id}".encode()).decode()


def _decode_page_token(token: str) -> OrderCursor | None:
    if not token:
        return None
    try:
        created, order_id = base64.urlsafe_b64decode(token.encode()).decode().split("|", 1)
        return (int(created), order_id)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidArgument("page_token is not one this service returned") from None
