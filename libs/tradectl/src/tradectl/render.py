"""Pure helpers of the CLI: parse what people type, render what the servers answer.

Nothing here does I/O; the commands in `cli.py` print what these functions build. Decimal fields
are shown exactly as the strings received, never converted to float.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, timedelta
from decimal import Decimal
from typing import Any, Literal, Protocol

import grpc
from google.protobuf import duration_pb2, json_format, timestamp_pb2
from google.protobuf.message import Message
from rich import box
from rich.cells import cell_len
from rich.table import Table
from rich.text import Text
from trading.v1 import (
    admin_pb2,
    control_pb2,
    execution_pb2,
    market_data_pb2,
    orders_pb2,
    portfolio_pb2,
    positions_pb2,
    types_pb2,
)

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
    choices = [v for v in types_pb2.TimeInForce.values() if v]
    return types_pb2.TimeInForce.ValueType(
        parse_enum(types_pb2.TimeInForce, text, "time in force", choices)
    )


def parse_order_type(text: str) -> types_pb2.OrderType.ValueType:
    choices = [v for v in types_pb2.OrderType.values() if v]
    return types_pb2.OrderType.ValueType(parse_enum(types_pb2.OrderType, text, "type", choices))


def parse_trigger_type(text: str) -> types_pb2.TriggerType.ValueType:
    choices = [v for v in types_pb2.TriggerType.values() if v]
    return types_pb2.TriggerType.ValueType(
        parse_enum(types_pb2.TriggerType, text, "trigger type", choices)
    )


def parse_offset_type(text: str) -> types_pb2.TrailingOffsetType.ValueType:
    choices = [v for v in types_pb2.TrailingOffsetType.values() if v]
    return types_pb2.TrailingOffsetType.ValueType(
        parse_enum(types_pb2.TrailingOffsetType, text, "trailing offset unit", choices)
    )


def parse_trading_state(text: str) -> types_pb2.TradingState.ValueType:
    choices = (
        types_pb2.TRADING_STATE_ACTIVE,
        types_pb2.TRADING_STATE_REDUCING,
        types_pb2.TRADING_STATE_HALTED,
    )
    return types_pb2.TradingState.ValueType(
        parse_enum(types_pb2.TradingState, text, "trading state", choices)
    )


def parse_algorithm(text: str) -> types_pb2.ExecutionAlgorithm.ValueType:
    choices = (types_pb2.EXECUTION_ALGORITHM_TWAP, types_pb2.EXECUTION_ALGORITHM_VWAP)
    return types_pb2.ExecutionAlgorithm.ValueType(
        parse_enum(types_pb2.ExecutionAlgorithm, text, "algorithm", choices)
    )


MAX_HORIZON = timedelta(days=1)
_HORIZON = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse_horizon(text: str) -> timedelta:
    """90s, 5m, 1h or 1h30m: whole hours, minutes and seconds, in that order; more than zero
    and at most a day (the router's limit). ValueError says what is expected."""
    match = _HORIZON.fullmatch(text.strip())
    if not text.strip() or match is None:
        raise ValueError(f"expected a duration such as 90s, 5m, 1h or 1h30m; got {text!r}")
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    horizon = timedelta(hours=hours, minutes=minutes, seconds=seconds)
    if not timedelta(0) < horizon <= MAX_HORIZON:
        raise ValueError(f"must be more than 0 and at most a day (24h); got {text!r}")
    return horizon


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
    if code is grpc.StatusCode.UNAUTHENTICATED:
        return (
            f"{status}: {details}; set TRADECTL_API_KEY (or --api-key) to a key that "
            f"{server.name} at {server.address} accepts."
        )
    return f"{status}: {details}" if details else status


def _as_dict(message: Message) -> dict[str, Any]:
    # Every field, also those at their default (an empty filledQuantity, DENIAL_REASON_UNSPECIFIED),
    # so scripts see the same keys in every answer.
    return json_format.MessageToDict(message, always_print_fields_with_no_presence=True)


def to_json(message: Message, *, indent: int | None = 2) -> str:
    """Protobuf JSON (camelCase field names, enum names, decimal strings kept as strings)."""
    return json.dumps(_as_dict(message), indent=indent)


def to_json_list(messages: Iterable[Message]) -> str:
    """A JSON array of the messages, `[]` for none: what list commands print for scripts."""
    return json.dumps([_as_dict(message) for message in messages], indent=2)


def format_time(stamp: timestamp_pb2.Timestamp) -> str:
    """UTC ISO 8601 with milliseconds; empty for an unset timestamp."""
    if stamp.seconds == 0 and stamp.nanos == 0:
        return ""
    return stamp.ToDatetime(tzinfo=UTC).isoformat(timespec="milliseconds")


STATUS_STYLES = {
    types_pb2.ORDER_STATUS_DENIED: "bold red",
    types_pb2.ORDER_STATUS_REJECTED: "bold red",
    types_pb2.ORDER_STATUS_ACCEPTED: "cyan",
    types_pb2.ORDER_STATUS_FILLED: "green",
    types_pb2.ORDER_STATUS_PARTIALLY_FILLED: "yellow",
    types_pb2.ORDER_STATUS_CANCELED: "dim",
    types_pb2.ORDER_STATUS_EXPIRED: "dim",
}


def venue_has_answered(order: orders_pb2.Order) -> bool:
    """Whether the venue has answered the order: it is past SUBMITTED (accepted, or final); for
    an order that cannot rest at the venue (a market, IOC or FOK order sent at once, not worked
    by an algorithm), its answer is the fill or the end, so only a final status counts."""
    if order.status in (types_pb2.ORDER_STATUS_SUBMITTED, types_pb2.ORDER_STATUS_UNSPECIFIED):
        return False
    return not (order.status in _WORKING and _cannot_rest(order))


_WORKING = frozenset({types_pb2.ORDER_STATUS_ACCEPTED, types_pb2.ORDER_STATUS_PARTIALLY_FILLED})


def _cannot_rest(order: orders_pb2.Order) -> bool:
    worked = order.execution.algorithm != types_pb2.EXECUTION_ALGORITHM_UNSPECIFIED
    return not worked and (
        order.order_type == types_pb2.ORDER_TYPE_MARKET
        or order.time_in_force in (types_pb2.TIME_IN_FORCE_IOC, types_pb2.TIME_IN_FORCE_FOK)
    )


def cancel_has_settled(order: orders_pb2.Order) -> bool:
    """Whether the venue has answered a cancel: the order left PENDING_CANCEL."""
    return order.status != types_pb2.ORDER_STATUS_PENDING_CANCEL


def modify_has_settled(order: orders_pb2.Order) -> bool:
    """Whether the venue has answered a modify: the order left PENDING_UPDATE."""
    return order.status != types_pb2.ORDER_STATUS_PENDING_UPDATE


# The longest status name, PARTIALLY_FILLED, and event type, OrderCancelRequested, so the
# columns of `order watch` line up.
STATUS_WIDTH = 16
EVENT_TYPE_WIDTH = 20


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


def _offset_text(order: orders_pb2.Order) -> str:
    if not order.trailing_offset:
        return ""
    unit = enum_name(types_pb2.TrailingOffsetType, order.trailing_offset_type).lower()
    limit = f", limit {order.limit_offset} beyond" if order.limit_offset else ""
    return f"{order.trailing_offset} ({unit}){limit}"


def _flags_text(order: orders_pb2.Order) -> str:
    flags = [
        name
        for name, on in (("reduce-only", order.reduce_only), ("post-only", order.post_only))
        if on
    ]
    return ", ".join(flags)


def _class_text(order: orders_pb2.Order) -> str:
    if not order.order_class:
        return ""
    role = enum_name(types_pb2.OrderRole, order.role).lower().replace("_", "-")
    return f"{enum_name(types_pb2.OrderClass, order.order_class)} ({role})"


def execution_text(order: orders_pb2.Order) -> str:
    """How the router works the order, on one line: "TWAP over 0:05:00, 10 slices, max child
    0.01"; empty when it has no execution instructions (it goes at once)."""
    if not order.HasField("execution"):
        return ""
    given = order.execution
    parts = []
    if given.algorithm:
        algorithm = enum_name(types_pb2.ExecutionAlgorithm, given.algorithm)
        parts.append(f"{algorithm} over {given.horizon.ToTimedelta()}")
        if given.slice_count:
            parts.append(f"{given.slice_count} slices")
    else:
        parts.append("at once, split")
    if given.max_child_quantity:
        parts.append(f"max child {given.max_child_quantity}")
    if given.participation_rate:
        parts.append(f"participation {given.participation_rate}")
    if given.smart_routing:
        parts.append("smart routing")
    return ", ".join(parts)


def order_detail(order: orders_pb2.Order) -> Table:
    """One order as a two-column field/value table; values wrap, ids are never cut."""
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    denial = ""
    if order.denial_reason:
        denial = enum_name(types_pb2.DenialReason, order.denial_reason)
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
        ("Trigger price", order.trigger_price),
        ("Trailing offset", _offset_text(order)),
        ("Display quantity", order.display_quantity),
        ("Flags", _flags_text(order)),
        ("Expires", format_time(order.expire_time) if order.HasField("expire_time") else ""),
        ("Order class", _class_text(order)),
        ("Execution", execution_text(order)),
        ("Exits", ", ".join(order.child_order_ids)),
        ("Other exit", order.oco_order_id),
        ("Status", status_text(order.status)),
        ("Denial reason", denial),
        ("Message", order.status_message),
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


Cell = str | Text


@dataclass(frozen=True)
class Column:
    """A column of a listing. Priority 0 is always shown; on a narrow screen the columns of the
    highest priority number fold away first. A `wrap` column holds prose (an error message): it
    takes the width the others leave, at least `WRAP_MIN_WIDTH`, and its cells wrap within it."""

    header: str
    priority: int = 0
    justify: Literal["left", "right"] = "left"
    wrap: bool = False


WRAP_MIN_WIDTH = 24


@dataclass(frozen=True)
class Listing:
    """A table fitted to a width: every cell whole, columns left out rather than cut."""

    table: Table
    width: int  # what the table needs; more than asked only when its priority-0 columns need it
    hidden: tuple[str, ...]  # headers of the columns left out

    def __rich__(self) -> Table:
        return self.table

    def note(self) -> Text | None:
        """A dim line naming the columns left out, None when all are shown."""
        if not self.hidden:
            return None
        return Text(
            f"Not shown at this width: {', '.join(self.hidden)} (all with -o json).",
            style="dim",
        )


# Columns are separated by two spaces (one of padding, one of the borderless box).
COLUMN_GAP = 2


def fitted_table(columns: Sequence[Column], rows: Sequence[Sequence[Cell]], width: int) -> Listing:
    """A table at most `width` columns wide that never cuts a cell.

    Ids must stay whole so they can be copied into the next command, and decimals exact: so
    instead of cropping cells, whole columns fold away, the highest priority number first (the
    rightmost of equal priority first). When even the priority-0 columns do not fit, they are
    shown whole anyway and the listing says how wide it is.
    """
    natural = [
        max([cell_len(column.header), *(_cell_width(row[index]) for row in rows)])
        for index, column in enumerate(columns)
    ]
    # What each column needs at least: its widest cell, or for prose what it may wrap within.
    needed = [
        min(natural[index], max(WRAP_MIN_WIDTH, cell_len(column.header)))
        if column.wrap
        else natural[index]
        for index, column in enumerate(columns)
    ]
    shown = list(range(len(columns)))
    droppable = sorted(
        (index for index, column in enumerate(columns) if column.priority > 0),
        key=lambda index: (columns[index].priority, index),
    )

    def total() -> int:
        return sum(needed[index] for index in shown) + COLUMN_GAP * (len(shown) - 1)

    while droppable and total() > width:
        shown.remove(droppable.pop())
    for index in shown:  # prose takes what the others leave, up to its natural width
        if columns[index].wrap:
            needed[index] += max(0, min(natural[index] - needed[index], width - total()))
    table = Table(
        box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0), expand=False
    )
    for index in shown:
        column = columns[index]
        table.add_column(
            column.header,
            justify=column.justify,
            no_wrap=not column.wrap,
            overflow="fold",
            min_width=needed[index],
            max_width=needed[index] if column.wrap else None,
        )
    for row in rows:
        table.add_row(*(row[index] for index in shown))
    hidden = tuple(column.header for index, column in enumerate(columns) if index not in shown)
    return Listing(table, total(), hidden)


def _cell_width(cell: Cell) -> int:
    return cell.cell_len if isinstance(cell, Text) else cell_len(cell)


ORDER_COLUMNS = (
    Column("Order ID"),
    Column("Instrument", 1),
    Column("Side", 2),
    Column("Qty", 3, "right"),
    Column("Status"),
    Column("Filled", 4, "right"),
    Column("Limit", 6, "right"),
    Column("Avg price", 5, "right"),
    Column("Type", 7),
    Column("Account", 8),
    Column("Created", 9),
)


def orders_table(orders: Iterable[orders_pb2.Order], width: int = 10_000) -> Listing:
    rows = [
        (
            order.order_id,
            order.instrument,
            side_text(order.side),
            order.quantity,
            status_text(order.status),
            order.filled_quantity,
            order.limit_price,
            order.average_fill_price,
            enum_name(types_pb2.OrderType, order.order_type),
            order.account_id,
            format_time(order.create_time),
        )
        for order in orders
    ]
    return fitted_table(ORDER_COLUMNS, rows, width)


POSITION_COLUMNS = (
    Column("Account"),
    Column("Instrument"),
    Column("Quantity", 0, "right"),
    Column("Avg price", 2, "right"),
    Column("Unrealized P&L", 1, "right"),
    Column("Mark", 4, "right"),
    Column("Realized P&L", 3, "right"),
    Column("Fees", 5, "right"),
    Column("Updated", 6),
)


def positions_table(positions: Iterable[positions_pb2.Position], width: int = 10_000) -> Listing:
    rows = [
        (
            position.account_id,
            position.instrument,
            position.quantity,
            position.average_price,
            position.unrealized_pnl,
            position.mark_price,
            position.realized_pnl,
            position.fees,
            format_time(position.update_time),
        )
        for position in positions
    ]
    return fitted_table(POSITION_COLUMNS, rows, width)


QUOTE_COLUMNS = (
    Column("Instrument"),
    Column("Bid size", 1, "right"),
    Column("Bid", 0, "right"),
    Column("Ask", 0, "right"),
    Column("Ask size", 1, "right"),
    Column("Time", 2),
    Column("Source", 3),
)


def quote_table(quote: market_data_pb2.Quote, width: int = 10_000) -> Listing:
    row = (
        quote.instrument,
        quote.bid_size,
        Text(quote.bid_price, style="green"),
        Text(quote.ask_price, style="red"),
        quote.ask_size,
        format_time(quote.quote_time),
        quote.source,
    )
    return fitted_table(QUOTE_COLUMNS, [row], width)


def yes_no(value: bool, *, bad_when_no: bool = False) -> Text:
    style = "red" if bad_when_no and not value else ""
    return Text("yes" if value else "no", style=style)


_CIRCUIT_STYLES = {
    execution_pb2.CIRCUIT_STATE_CLOSED: "green",
    execution_pb2.CIRCUIT_STATE_HALF_OPEN: "yellow",
    execution_pb2.CIRCUIT_STATE_OPEN: "bold red",
}


def circuit_text(state: execution_pb2.CircuitState.ValueType) -> Text:
    return Text(enum_name(execution_pb2.CircuitState, state), style=_CIRCUIT_STYLES.get(state, ""))


def millis(duration: duration_pb2.Duration) -> str:
    """A duration in milliseconds, exactly (1.5 for 1500 µs)."""
    value = Decimal(duration.ToNanoseconds()).scaleb(-6).normalize()
    return format(value, "f")


def latency_text(
    status: execution_pb2.VenueStatus, field: Literal["latency_p50", "latency_p99"]
) -> str:
    """p50 or p99 in ms; "-" before the venue's first call."""
    return millis(getattr(status, field)) if status.HasField(field) else "-"


def headroom_text(status: execution_pb2.VenueStatus) -> str:
    """Each rate limit as remaining/limit: "5990/6000 per 1 minute"; "-" when none is set."""
    texts = [f"{limit.remaining}/{limit.limit}" for limit in status.rate_limits]
    return ", ".join(texts) or "-"


VENUE_COLUMNS = (
    Column("Venue"),
    Column("Kind", 4),
    Column("Connected", 2),
    Column("Available"),
    Column("Circuit"),
    Column("Failures", 1, "right"),
    Column("p50 ms", 5, "right"),
    Column("p99 ms", 5, "right"),
    Column("Open orders", 3, "right"),
    Column("Headroom", 6, wrap=True),  # of each rate limit: remaining/limit
)


def venues_table(venues: Iterable[execution_pb2.VenueStatus], width: int = 10_000) -> Listing:
    rows = [
        (
            status.venue,
            status.kind,
            yes_no(status.connected, bad_when_no=True),
            yes_no(status.available, bad_when_no=True),
            circuit_text(status.circuit_state),
            str(status.consecutive_failures),
            latency_text(status, "latency_p50"),
            latency_text(status, "latency_p99"),
            str(status.open_order_count),
            headroom_text(status),
        )
        for status in venues
    ]
    return fitted_table(VENUE_COLUMNS, rows, width)


def venue_detail(status: execution_pb2.VenueStatus) -> Table:
    """Every field of one venue's status as a field/value table; "-" for what is not set."""
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    opened = format_time(status.circuit_open_time) if status.HasField("circuit_open_time") else ""
    rows: list[tuple[str, Cell]] = [
        ("Venue", status.venue),
        ("Kind", status.kind),
        ("Connected", yes_no(status.connected, bad_when_no=True)),
        ("Available", yes_no(status.available, bad_when_no=True)),
        ("Circuit", circuit_text(status.circuit_state)),
        ("Consecutive failures", str(status.consecutive_failures)),
        ("Circuit opened", opened or "-"),
        ("Last error", Text(status.last_error, style="red") if status.last_error else "-"),
    ]
    rows += [("Rate limit", f"{limit.remaining}/{limit.limit}") for limit in status.rate_limits]
    if not status.rate_limits:
        rows.append(("Rate limit", "-"))
    rows += [
        ("Latency p50 (ms)", latency_text(status, "latency_p50")),
        ("Latency p99 (ms)", latency_text(status, "latency_p99")),
        ("Calls", str(status.call_count)),
        ("Failed calls", str(status.failure_count)),
        ("Open orders", str(status.open_order_count)),
        ("Reports", report_channel_text(status.report_channel)),
    ]
    for label, value in rows:
        table.add_row(label, value)
    return table


def report_channel_text(channel: execution_pb2.ReportChannel.ValueType) -> Cell:
    """How the router learns what the venue did: pushed, or polled (red while a stream is down)."""
    if channel == execution_pb2.REPORT_CHANNEL_POLLED_STREAM_DOWN:
        return Text("polled (stream down)", style="red")
    return {
        execution_pb2.REPORT_CHANNEL_PUSHED: "pushed",
        execution_pb2.REPORT_CHANNEL_POLLED: "polled",
    }.get(channel, "-")


def algorithm_text(algorithm: types_pb2.ExecutionAlgorithm.ValueType) -> str:
    """TWAP or VWAP; an order split without an algorithm goes "at once"."""
    if algorithm == types_pb2.EXECUTION_ALGORITHM_UNSPECIFIED:
        return "none (at once)"
    return enum_name(types_pb2.ExecutionAlgorithm, algorithm)


def children_summary(response: execution_pb2.ListChildOrdersResponse) -> Table:
    """The parent as the router works it: algorithm, released and filled quantity."""
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for label, value in (
        ("Order ID", response.order_id),
        ("Algorithm", algorithm_text(response.algorithm)),
        ("Released", response.released_quantity or "0"),
        ("Filled", response.filled_quantity or "0"),
        ("Children", str(len(response.child_orders))),
    ):
        table.add_row(label, value)
    return table


_CHILD_STYLES = {
    types_pb2.EXECUTION_TYPE_FILLED: "green",
    types_pb2.EXECUTION_TYPE_PARTIALLY_FILLED: "yellow",
    types_pb2.EXECUTION_TYPE_ACCEPTED: "cyan",
    types_pb2.EXECUTION_TYPE_REJECTED: "bold red",
    types_pb2.EXECUTION_TYPE_CANCELED: "dim",
    types_pb2.EXECUTION_TYPE_EXPIRED: "dim",
}


def child_state_text(state: types_pb2.ExecutionType.ValueType) -> Text:
    """The venue's last word on a child; PENDING until it answers."""
    if state == types_pb2.EXECUTION_TYPE_UNSPECIFIED:
        return Text("PENDING", style="dim")
    return Text(enum_name(types_pb2.ExecutionType, state), style=_CHILD_STYLES.get(state, ""))


CHILD_COLUMNS = (
    Column("Child ID"),
    Column("Slice", 2, "right"),
    Column("Venue", 1),
    Column("Qty", 0, "right"),
    Column("Limit", 5, "right"),
    Column("State"),
    Column("Filled", 3, "right"),
    Column("Avg price", 4, "right"),
    Column("Created", 6),
)
# Why a child was rejected, canceled or expired: a column only when one has a message.
CHILD_MESSAGE_COLUMN = Column("Message", 7, wrap=True)


def child_orders_table(
    children: Sequence[execution_pb2.ChildOrder], width: int = 10_000
) -> Listing:
    with_message = any(child.message for child in children)
    columns = (*CHILD_COLUMNS, CHILD_MESSAGE_COLUMN) if with_message else CHILD_COLUMNS
    rows = [
        (
            child.child_order_id,
            str(child.slice),
            child.venue,
            child.quantity,
            child.limit_price,
            child_state_text(child.last_execution_type),
            child.filled_quantity or "0",
            child.average_price,
            format_time(child.create_time),
            *((child.message,) if with_message else ()),
        )
        for child in children
    ]
    return fitted_table(columns, rows, width)


DEAD_LETTER_COLUMNS = (
    Column("ID", 0, "right"),
    Column("Topic", 1),
    Column("Ordering key"),
    Column("Attempts", 3, "right"),
    Column("Error", 0, wrap=True),
    Column("Parked", 2),
    Column("Size", 4, "right"),
    Column("Message ID", 5),
)


def topic_of(subscription: str, service: str) -> str:
    """executions for executions.order-management: the service is the one asked about."""
    return subscription.removesuffix(f".{service}")


def dead_letters_table(
    letters: Iterable[admin_pb2.DeadLetter], service: str, width: int = 10_000
) -> Listing:
    rows = [
        (
            str(letter.id),
            topic_of(letter.subscription, service),
            letter.ordering_key,
            str(letter.attempts),
            Text(letter.error, style="red"),
            format_time(letter.create_time),
            f"{letter.payload_size} B",
            letter.message_id,
        )
        for letter in letters
    ]
    return fitted_table(DEAD_LETTER_COLUMNS, rows, width)


TRADING_STATE_COLUMNS = (
    Column("Scope"),
    Column("State"),
    Column("Reason", 0, wrap=True),
    Column("Since", 1),
    Column("Version", 2, "right"),
)
_STATE_STYLES = {
    types_pb2.TRADING_STATE_ACTIVE: "green",
    types_pb2.TRADING_STATE_REDUCING: "yellow",
    types_pb2.TRADING_STATE_HALTED: "bold red",
}


def trading_state_text(state: types_pb2.TradingState.ValueType) -> Text:
    return Text(enum_name(types_pb2.TradingState, state), style=_STATE_STYLES.get(state, ""))


def trading_states_table(
    records: Iterable[control_pb2.TradingStateRecord], width: int = 10_000
) -> Listing:
    """The platform's row first ("platform"), then each account's; never set: "-"."""
    rows = [
        (
            f"account {record.account_id}" if record.account_id else "platform",
            trading_state_text(record.state),
            record.reason or "-",
            format_time(record.update_time) if record.version else "-",
            str(record.version),
        )
        for record in records
    ]
    return fitted_table(TRADING_STATE_COLUMNS, rows, width)


INSTRUMENT_STATUS_COLUMNS = (
    Column("Instrument"),
    Column("Status"),
    Column("Reason", 0, wrap=True),
    Column("Since", 1),
    Column("Version", 2, "right"),
)


def parse_instrument_status(text: str) -> types_pb2.InstrumentStatus.ValueType:
    choices = [v for v in types_pb2.InstrumentStatus.values() if v]
    return types_pb2.InstrumentStatus.ValueType(
        parse_enum(types_pb2.InstrumentStatus, text, "instrument status", choices)
    )


def instrument_statuses_table(
    records: Iterable[control_pb2.InstrumentStatusRecord], width: int = 10_000
) -> Listing:
    rows = [
        (
            record.instrument,
            enum_name(types_pb2.InstrumentStatus, record.status),
            record.reason or "-",
            format_time(record.update_time),
            str(record.version),
        )
        for record in records
    ]
    return fitted_table(INSTRUMENT_STATUS_COLUMNS, rows, width)


LIMIT_COLUMNS = (Column("Limit"), Column("Account"), Column("Strategy"))
LIMIT_CHANGE_COLUMNS = (
    Column("Scope"),
    Column("Limits", 0, wrap=True),
    Column("Reason", 1, wrap=True),
    Column("Since", 2),
    Column("Version", 2, "right"),
)


def parse_risk_scope(text: str) -> control_pb2.RiskScope.ValueType:
    return control_pb2.RiskScope.ValueType(
        parse_enum(control_pb2.RiskScope, text, "risk scope", _RISK_SCOPES)
    )


_RISK_SCOPES = (
    control_pb2.RISK_SCOPE_ACCOUNTS,
    control_pb2.RISK_SCOPE_ACCOUNT,
    control_pb2.RISK_SCOPE_STRATEGIES,
    control_pb2.RISK_SCOPE_STRATEGY,
    control_pb2.RISK_SCOPE_GROUP,
)


def parse_limit_assignments(texts: Iterable[str]) -> control_pb2.RiskLimitSet:
    """`name=value` pairs as limits (ints and true/false where the field wants them); raises
    ValueError naming a pair that is not one."""
    limits = control_pb2.RiskLimitSet()
    fields = limits.DESCRIPTOR.fields_by_name
    for text in texts:
        name, _, value = text.partition("=")
        field = fields.get(name.strip())
        if field is None or not value:
            known = ", ".join(fields)
            raise ValueError(f"{text!r} is not NAME=VALUE with NAME one of: {known}")
        if field.type == field.TYPE_BOOL:
            setattr(limits, field.name, value.strip().lower() in ("true", "yes", "1"))
        elif field.type == field.TYPE_INT64:
            setattr(limits, field.name, int(value))
        else:
            setattr(limits, field.name, value.strip())
    return limits


def _limit_values(limits: control_pb2.RiskLimitSet) -> dict[str, str]:
    """The limits set, as text: {name: value}."""
    return {field.name: str(value).lower() for field, value in limits.ListFields()}


def limits_table(
    account: control_pb2.RiskLimitSet, strategy: control_pb2.RiskLimitSet, width: int = 10_000
) -> Listing:
    """Every limit set for the account or the strategy; "-" where not set."""
    mine, theirs = _limit_values(account), _limit_values(strategy)
    names = [f.name for f in account.DESCRIPTOR.fields if f.name in mine or f.name in theirs]
    rows = [(name, mine.get(name, "-"), theirs.get(name, "-")) for name in names]
    return fitted_table(LIMIT_COLUMNS, rows, width)


def limit_changes_table(
    records: Iterable[control_pb2.RiskLimitsRecord], width: int = 10_000
) -> Listing:
    rows = [
        (
            enum_name(control_pb2.RiskScope, record.scope).lower()
            + (f" {record.name}" if record.name else ""),
            " ".join(f"{k}={v}" for k, v in _limit_values(record.limits).items()) or "(none)",
            record.reason or "-",
            format_time(record.update_time) if record.version else "-",
            str(record.version),
        )
        for record in records
    ]
    return fitted_table(LIMIT_CHANGE_COLUMNS, rows, width)


UNRESOLVED_COLUMNS = (
    Column("Kind"),
    Column("Subject"),
    Column("Detail", 0, wrap=True),
    Column("Reported", 2),
)


def unresolved_table(issues: Iterable[admin_pb2.UnresolvedIssue], width: int = 10_000) -> Listing:
    rows = [
        (issue.kind, issue.subject, issue.detail, format_time(issue.create_time))
        for issue in issues
    ]
    return fitted_table(UNRESOLVED_COLUMNS, rows, width)


def replayed_line(letter: admin_pb2.DeadLetter, service: str) -> str:
    return (
        f"Replayed dead letter {letter.id} of {service} ({letter.subscription}, message "
        f"{letter.message_id}, ordering key {letter.ordering_key or '-'}); it is no longer listed."
    )


def event_line(event: orders_pb2.StreamOrderEventsResponse) -> Text:
    """time, event type, order id, instrument and side, status, filled/quantity and average
    price on one line (wrapped between words on a narrow screen, so the id stays whole)."""
    order = event.order
    line = Text()
    line.append(format_time(event.event_time) or "-", style="dim")
    line.append(f"  {event.event_type:<{EVENT_TYPE_WIDTH}}  {order.order_id}  ")
    line.append(f"{order.instrument} ")
    line.append_text(side_text(order.side))
    line.append("  ")
    status = status_text(order.status)
    status.align("left", STATUS_WIDTH)
    line.append_text(status)
    line.append(f"  {filled_of_quantity(order)}")
    if order.average_fill_price:
        line.append(f" @ {order.average_fill_price}")
    if order.status_message:
        line.append(f"  ({order.status_message})", style="dim")
    return line


def portfolio_tables(portfolio: portfolio_pb2.Portfolio) -> list[Table]:
    """An account's summary, its holdings and its limits in use, amounts at two decimals."""
    summary = Table(show_header=False, box=None, pad_edge=False)
    summary.add_column(style="bold", no_wrap=True)
    summary.add_column(justify="right")
    for label, value in (
        ("Account", portfolio.account_id),
        ("Trading state", enum_name(types_pb2.TradingState, portfolio.trading_state)),
        ("Cash", money(portfolio.cash)),
        ("Equity", money(portfolio.equity)),
        ("Total P&L", money(portfolio.total_pnl)),
        ("Daily P&L", money(portfolio.daily_pnl)),
        ("Fees", money(portfolio.fees)),
        ("High-water mark", money(portfolio.high_water_mark)),
        ("Drawdown", f"{portfolio.drawdown_percent}%"),
        ("Gross exposure", money(portfolio.gross_exposure)),
        ("Net exposure", money(portfolio.net_exposure)),
        ("Buying power", money(portfolio.buying_power)),
    ):
        summary.add_row(label, value)
    tables = [summary]
    if portfolio.holdings:
        holdings = Table(title="Holdings", title_justify="left")
        for name in ("Instrument", "Position", "Open buys", "Open sells", "Mark", "Value"):
            holdings.add_column(name, justify="left" if name == "Instrument" else "right")
        for h in portfolio.holdings:
            holdings.add_row(
                h.instrument, h.position, h.open_buys, h.open_sells, money(h.mark), money(h.value)
            )
        tables.append(holdings)
    if portfolio.limits:
        limits = Table(title="Limits in use", title_justify="left")
        for name in ("Limit", "Set at", "Used", "%"):
            limits.add_column(name, justify="left" if name == "Limit" else "right")
        for use in portfolio.limits:
            limits.add_row(use.name, use.limit, use.used, use.percent)
        tables.append(limits)
    return tables


def money(text: str) -> str:
    """A decimal amount at two decimals, rounded half-even, for people; empty stays empty."""
    return "" if not text else f"{Decimal(text).quantize(Decimal('0.01')):,}"
