"""Pure helpers of the CLI: parse what people type, render what the servers answer.

Nothing here does I/O; the commands in `cli.py` print what these functions build. Decimal fields
are shown exactly as the strings received, never converted to float.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC
from typing import Any, Protocol

import grpc
from google.protobuf import json_format, timestamp_pb2
from google.protobuf.message import Message
from rich.table import Table
from rich.text import Text
from trading.v1 import market_data_pb2, orders_pb2, positions_pb2, types_pb2

START_HINT = "Start the platform with `make run` or `tradectl serve`"


class ProtoEnum(Protocol):
    """A generated protobuf enum such as `types_pb2.Side`."""

    def Name(self, number: Any, /) -> str: ...  # noqa: N802 (protobuf's name)


def enum_name(enum: ProtoEnum, value: int) -> str:
    """The value's name without the enum's prefix: SIDE_BUY -> BUY, unknown numbers as digits."""
    try:
        name = enum.Name(value)
    except ValueError:
        return str(value)
    prefix = enum.Name(0).removesuffix("UNSPECIFIED")
    return name.removeprefix(prefix)


def parse_enum(enum: ProtoEnum, text: str, what: str, choices: Iterable[int]) -> int:
    """The value named by `text` (case-insensitive, prefix optional); ValueError lists choices."""
    by_name = {enum_name(enum, value): value for value in choices}
    wanted = text.strip().upper().replace("-", "_")
    wanted = wanted.removeprefix(enum.Name(0).removesuffix("UNSPECIFIED"))
    if wanted not in by_name:
        allowed = ", ".join(name.lower() for name in by_name)
        raise ValueError(f"{what} must be one of {allowed}; got {text!r}")
    return by_name[wanted]


def parse_side(text: str) -> types_pb2.Side.ValueType:
    return types_pb2.Side.ValueType(
        parse_enum(types_pb2.Side, text, "side", (types_pb2.SIDE_BUY, types_pb2.SIDE_SELL))
    )


def parse_time_in_force(text: str) -> types_pb2.TimeInForce.ValueType:
    choices = (types_pb2.TIME_IN_FORCE_GTC, types_pb2.TIME_IN_FORCE_IOC)
    return types_pb2.TimeInForce.ValueType(
        parse_enum(types_pb2.TimeInForce, text, "time in force", choices)
    )


@dataclass(frozen=True)
class Server:
    """A server the CLI talks to: its name, the global option that sets it, its address."""

    name: str
    option: str
    address: str


def format_rpc_error(code: grpc.StatusCode, details: str, server: Server, timeout: float) -> str:
    """One line a person can act on: `<STATUS>: <details>`, with a hint where one helps."""
    status = code.name
    if code is grpc.StatusCode.UNAVAILABLE:
        return (
            f"{status}: cannot reach {server.name} at {server.address} ({details}). "
            f"{START_HINT}, or pass {server.option} HOST:PORT."
        )
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return (
            f"{status}: {server.name} at {server.address} did not answer within {timeout:g}s; "
            "raise --timeout or check that the platform is healthy."
        )
    return f"{status}: {details}" if details else status


def to_json(message: Message, *, indent: int | None = 2) -> str:
    """Protobuf JSON (camelCase field names, enum names, decimal strings kept as strings)."""
    return json.dumps(json_format.MessageToDict(message), indent=indent)


def format_time(stamp: timestamp_pb2.Timestamp) -> str:
    """UTC ISO 8601 with milliseconds; empty for an unset timestamp."""
    if stamp.seconds == 0 and stamp.nanos == 0:
        return ""
    return stamp.ToDatetime(tzinfo=UTC).isoformat(timespec="milliseconds")


STATUS_STYLES = {
    types_pb2.ORDER_STATUS_DENIED: "bold red",
    types_pb2.ORDER_STATUS_REJECTED: "bold red",
    types_pb2.ORDER_STATUS_FILLED: "green",
    types_pb2.ORDER_STATUS_PARTIALLY_FILLED: "yellow",
    types_pb2.ORDER_STATUS_CANCELED: "dim",
    types_pb2.ORDER_STATUS_EXPIRED: "dim",
}


# The longest status name, PARTIALLY_FILLED, so the columns of `order watch` line up.
STATUS_WIDTH = 16


def status_text(status: types_pb2.OrderStatus.ValueType) -> Text:
    return Text(enum_name(types_pb2.OrderStatus, status), style=STATUS_STYLES.get(status, ""))


def side_text(side: types_pb2.Side.ValueType) -> Text:
    style = {types_pb2.SIDE_BUY: "green", types_pb2.SIDE_SELL: "red"}.get(side, "")
    return Text(enum_name(types_pb2.Side, side), style=style)


def filled_of_quantity(order: orders_pb2.Order) -> str:
    return f"{order.filled_quantity or '0'}/{order.quantity}"


def denial_line(order: orders_pb2.Order) -> Text | None:
    """Why an order was refused, in red; None for an order that was not refused."""
    if order.status == types_pb2.ORDER_STATUS_DENIED:
        reason = enum_name(types_pb2.DenialReason, order.denial_reason)
        return Text(f"DENIED {reason}: {order.status_message}", style="bold red")
    if order.status == types_pb2.ORDER_STATUS_REJECTED:
        return Text(f"REJECTED by the venue: {order.status_message}", style="bold red")
    return None


def order_detail(order: orders_pb2.Order) -> Table:
    """One order as a two-column field/value table."""
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    rows: list[tuple[str, str | Text]] = [
        ("Order ID", order.order_id),
        ("Client order ID", order.client_order_id),
        ("Account", order.account_id),
        ("Strategy", order.strategy_id),
        ("Signal ID", order.signal_id),
        ("Instrument", order.instrument),
        ("Side", side_text(order.side)),
        ("Type", enum_name(types_pb2.OrderType, order.order_type)),
        ("Time in force", enum_name(types_pb2.TimeInForce, order.time_in_force)),
        ("Quantity", order.quantity),
        ("Limit price", order.limit_price),
        ("Status", status_text(order.status)),
        ("Filled", order.filled_quantity),
        ("Leaves", order.leaves_quantity),
        ("Avg fill price", order.average_fill_price),
        ("Fees", order.fees),
        ("Venue", order.venue),
        ("Venue order ID", order.venue_order_id),
        ("Created", format_time(order.create_time)),
        ("Updated", format_time(order.update_time)),
    ]
    for label, value in rows:
        if value:
            table.add_row(label, value)
    return table


def orders_table(orders: Iterable[orders_pb2.Order]) -> Table:
    table = Table(title="Orders")
    for column in ("Order ID", "Created", "Account", "Instrument", "Side", "Type"):
        table.add_column(column, no_wrap=True)
    for column in ("Quantity", "Limit", "Filled", "Avg price"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("Status", no_wrap=True)
    for order in orders:
        table.add_row(
            order.order_id,
            format_time(order.create_time),
            order.account_id,
            order.instrument,
            side_text(order.side),
            enum_name(types_pb2.OrderType, order.order_type),
            order.quantity,
            order.limit_price,
            order.filled_quantity,
            order.average_fill_price,
            status_text(order.status),
        )
    return table


def positions_table(positions: Iterable[positions_pb2.Position]) -> Table:
    table = Table(title="Positions")
    table.add_column("Account", no_wrap=True)
    table.add_column("Instrument", no_wrap=True)
    for column in ("Quantity", "Avg price", "Mark", "Unrealized P&L", "Realized P&L", "Fees"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("Updated", no_wrap=True)
    for position in positions:
        table.add_row(
            position.account_id,
            position.instrument,
            position.quantity,
            position.average_price,
            position.mark_price,
            position.unrealized_pnl,
            position.realized_pnl,
            position.fees,
            format_time(position.update_time),
        )
    return table


def quote_table(quote: market_data_pb2.Quote) -> Table:
    table = Table(title=f"Quote {quote.instrument}")
    for column in ("Bid size", "Bid", "Ask", "Ask size"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("Time", no_wrap=True)
    table.add_column("Source", no_wrap=True)
    table.add_row(
        quote.bid_size,
        Text(quote.bid_price, style="green"),
        Text(quote.ask_price, style="red"),
        quote.ask_size,
        format_time(quote.quote_time),
        quote.source,
    )
    return table


def event_line(event: orders_pb2.StreamOrderEventsResponse) -> Text:
    """time, event type, order id, status, filled/quantity and average price on one line."""
    order = event.order
    line = Text()
    line.append(format_time(event.event_time) or "-", style="dim")
    line.append(f"  {event.event_type:<22} {order.order_id}  ")
    status = status_text(order.status)
    status.align("left", STATUS_WIDTH)
    line.append_text(status)
    line.append(f"  {filled_of_quantity(order)}")
    if order.average_fill_price:
        line.append(f" @ {order.average_fill_price}")
    if order.status_message:
        line.append(f"  ({order.status_message})", style="dim")
    return line
