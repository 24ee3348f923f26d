"""Order-management's domain: the order state machine, pre-trade validation and signal
sizing. No I/O."""

from order_management.domain.orders import (
    FINISHED_STATUSES,
    OPEN_STATUSES,
    InvalidExecutionReport,
    InvalidOrderTransition,
    Order,
    OrderNotCancelable,
    OrderStatus,
    Trigger,
    status_name,
)
from order_management.domain.sizing import SizedSignal, size_signal
from order_management.domain.validation import (
    AccountActivity,
    Denial,
    DenialReason,
    InvalidRequest,
    OrderRequest,
    PreTradeValidator,
    parse_submit_order,
    parse_submit_signal,
)

__all__ = [
    "FINISHED_STATUSES",
    "OPEN_STATUSES",
    "AccountActivity",
    "Denial",
    "DenialReason",
    "InvalidExecutionReport",
    "InvalidOrderTransition",
    "InvalidRequest",
    "Order",
    "OrderNotCancelable",
    "OrderRequest",
    "OrderStatus",
    "PreTradeValidator",
    "SizedSignal",
    "Trigger",
    "parse_submit_order",
    "parse_submit_signal",
    "size_signal",
    "status_name",
]
