"""The warehouse's tables: the one definition of every table and column.

From it come DuckDB's DDL and migrations, the Arrow batches the feeder writes, BigQuery's JSON
schema, partitioning and clustering, and Terraform's inputs (`terraform/modules/bigquery/
tables.json`, written by `make schema`; a test keeps it equal).

- The raw table `<service>_events` (`EVENT_COLUMNS`): every event of a service's journal as an
  envelope with its serialized payload, for replay; its `store_sequence` is the journal
  position, and the highest one is how far the warehouse has been fed.
- The typed tables (`TABLES`): one row per event (or per fill) with the payload's values as
  columns. Every typed row carries `event_id`, `service` and `journal_position`: a row is
  stored once, with the raw row of its event, in one transaction.

Each column says how its value is read from an event (`Read`): envelope fields (`@order_id`),
payload paths tried in order, the first the payload's message type has (`order.quantity`,
`quantity`), or a function of the event and payload for one payload kind.

Money and quantities are exact: the wire's decimal strings become `DECIMAL(38, 18)` in DuckDB
and `BIGNUMERIC(38, 18)` in BigQuery (20 integer digits, 18 decimals: a wei of ether), never a
float. The rounding rule (`to_decimal`): a value with more than 18 decimal places is rounded to
18, half away from zero (as DuckDB's and BigQuery's own casts round); a value of 10^20 or
more, or text that is not a finite decimal, is stored as NULL and logged (the raw event keeps
the exact string). Enums are stored as their value's name
without the type's prefix (`BUY`, `PARTIALLY_FILLED`); timestamps as UTC microseconds.

Changes are additive: a new table or a new (NULLABLE) column at any place; never a rename, a
type change or a removal (`missing_columns` refuses those). A file or dataset made by an earlier
version gains what is missing when opened; a new table is filled from the raw events.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from operator import attrgetter
from typing import Any

import pyarrow as pa
from google.protobuf import json_format
from google.protobuf.message import Message
from trading.v1 import events_pb2, types_pb2

from trading_core.events import event_type, stamp_micros

log = logging.getLogger(__name__)

EventReader = Callable[[events_pb2.Event], Any]
# A value read from an event of one payload kind: (event, payload) -> the stored value.
Getter = Callable[[events_pb2.Event, Any], Any]

DECIMAL_PRECISION = 38
DECIMAL_SCALE = 18
_QUANTUM = Decimal(1).scaleb(-DECIMAL_SCALE)
_LIMIT = Decimal(10) ** (DECIMAL_PRECISION - DECIMAL_SCALE)
_CONTEXT = Context(prec=2 * DECIMAL_PRECISION, rounding=ROUND_HALF_UP)
_TIMESTAMP = pa.timestamp("us", tz="UTC")
# What fits as it is (at most 20 integer digits and 18 decimals): no checks, no rounding.
_FITS = re.compile(r"-?[0-9]{1,20}(?:\.[0-9]{1,18})?").fullmatch


def to_decimal(text: str) -> Decimal | None:
    """A wire decimal as stored: rounded to 18 places, half away from zero (as DuckDB's and
    BigQuery's casts round); None for empty text, for text that is not a finite decimal, and
    for a value of 10^20 or more (logged)."""
    if not text:
        return None
    if _FITS(text):
        return Decimal(text)
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = None
    return held(value, text)


def held(value: Decimal | None, text: str = "") -> Decimal | None:
    """A value as the warehouse holds it, by the rule of `to_decimal`."""
    try:
        if value is not None and value.is_finite():
            value = value.quantize(_QUANTUM, context=_CONTEXT)
    except InvalidOperation:  # too large to quantize
        value = None
    # copy_abs: exact (abs() would round to the default context's 28 digits).
    if value is None or not value.is_finite() or value.copy_abs() >= _LIMIT:
        shown = text[:40] if text else str(value)[:40]
        log.warning("warehouse: %r is not a decimal below 10^20; stored as NULL", shown)
        return None
    return value


@dataclass(frozen=True)
class ColumnType:
    duckdb: str  # as DuckDB reports it in duckdb_columns().data_type
    bigquery: str
    arrow: pa.DataType
    bigquery_precision: int | None = None
    bigquery_scale: int | None = None


TEXT = ColumnType("VARCHAR", "STRING", pa.string())
INTEGER = ColumnType("BIGINT", "INT64", pa.int64())
FLAG = ColumnType("BOOLEAN", "BOOL", pa.bool_())
TIME = ColumnType("TIMESTAMP WITH TIME ZONE", "TIMESTAMP", _TIMESTAMP)
BYTES = ColumnType("BLOB", "BYTES", pa.binary())
DECIMAL = ColumnType(
    f"DECIMAL({DECIMAL_PRECISION},{DECIMAL_SCALE})",
    "BIGNUMERIC",
    pa.decimal128(DECIMAL_PRECISION, DECIMAL_SCALE),
    DECIMAL_PRECISION,
    DECIMAL_SCALE,
)
# A message as compact JSON text (rare events: risk limit sets).
JSON_TEXT = ColumnType("VARCHAR", "STRING", pa.string())


@dataclass(frozen=True)
class Read:
    """Where a column's value is in an event: `paths` tried in order, the first that the
    payload's message type has (`@name` is an envelope field); `kinds` gives a payload kind its
    own function or constant instead."""

    paths: tuple[str, ...] = ()
    kinds: Mapping[str, Getter | str] = field(default_factory=dict)


def read(*paths: str, **kinds: Getter | str) -> Read:
    return Read(paths, kinds)


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    description: str
    read: Read | EventReader | None = None  # None: the store sets it
    required: bool = False

    @property
    def duckdb_type(self) -> str:
        return self.type.duckdb

    @property
    def bigquery_type(self) -> str:
        return self.type.bigquery

    @property
    def arrow_type(self) -> pa.DataType:
        return self.type.arrow


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: one object per table
class Table:
    name: str
    description: str
    kinds: tuple[str, ...]  # the payload kinds whose events make its rows
    columns: tuple[Column, ...]
    # Which of those events make a row (None: all).
    where: Callable[[Any], bool] | None = None
    clustering: tuple[str, ...] = ("account_id", "instrument")
    partition_column: str = "event_time"

    @property
    def arrow_schema(self) -> pa.Schema:
        return _arrow_schema(self.columns)


# The raw event table ------------------------------------------------------------------------


class _Text:
    """An envelope string; empty (unset in proto3) is stored as NULL."""

    def __init__(self, field: str) -> None:
        self.field = field

    def __call__(self, event: events_pb2.Event) -> str | None:
        return getattr(event, self.field) or None


def _text(field: str) -> EventReader:
    return _Text(field)


def _event_time(event: events_pb2.Event) -> int | None:
    if not event.HasField("event_time"):
        return None
    return stamp_micros(event.event_time)


EVENT_COLUMNS: tuple[Column, ...] = (
    Column("store_sequence", INTEGER,
           "Append order within the table, from 1, continuing across restarts: the event's "
           "position in its service's journal.", required=True),
    Column("event_id", TEXT, "The event's UUID.", lambda event: event.event_id, required=True),
    Column("event_type", TEXT, "The payload message name, such as OrderSubmitted.",
           event_type, required=True),
    Column("event_time", TIME, "When the state change happened.", _event_time),
    Column("sequence", INTEGER, "Per-order or per-position sequence number.",
           lambda event: event.sequence, required=True),
    Column("order_id", TEXT, "The order the event is about.", _text("order_id")),
    Column("signal_id", TEXT, "The signal the order was sized from.", _text("signal_id")),
    Column("parent_order_id", TEXT, "The order this child order was split from.",
           _text("parent_order_id")),
    Column("account_id", TEXT, "The trading account.", _text("account_id")),
    Column("instrument", TEXT, "The instrument symbol.", _text("instrument")),
    Column("traceparent", TEXT, "W3C trace context of the request that caused the event.",
           _text("traceparent")),
    Column("actor", TEXT, "The API key id of the call that caused the event (NULL: the "
           "platform itself).", _text("actor")),
    Column("payload", BYTES, "The serialized trading.v1.Event protobuf.",
           lambda event: event.SerializeToString(), required=True),
    Column("record_time", TIME, "When the store wrote the event.", required=True),
)  # fmt: skip

# Values are read per appended event, so `event_values` reads every envelope string in one
# call and gives them first, then the other values, then the payload: this order.
_TEXTS = tuple(c for c in EVENT_COLUMNS if isinstance(c.read, _Text))
_OTHERS = tuple(c for c in EVENT_COLUMNS if c.read is not None and c not in _TEXTS)
_PAYLOAD = next(c for c in _OTHERS if c.name == "payload")
EVENT_VALUE_COLUMNS: tuple[Column, ...] = (
    *_TEXTS,
    *(c for c in _OTHERS if c is not _PAYLOAD),
    _PAYLOAD,
)
_read_texts = attrgetter(*(c.read.field for c in _TEXTS if isinstance(c.read, _Text)))
_OTHER_READERS: tuple[EventReader, ...] = tuple(
    c.read for c in _OTHERS if callable(c.read) and c is not _PAYLOAD
)


def _arrow_schema(columns: Sequence[Column]) -> pa.Schema:
    return pa.schema([pa.field(c.name, c.arrow_type, nullable=not c.required) for c in columns])


ARROW_SCHEMA = _arrow_schema(EVENT_COLUMNS)


def event_values(event: events_pb2.Event, payload: bytes | None = None) -> tuple[Any, ...]:
    """The event's values for `EVENT_VALUE_COLUMNS`, in that order.

    `payload` is the event already serialized, when the caller has it: serializing once per
    event matters on the hot path.
    """
    values = [text or None for text in _read_texts(event)]
    values += [read(event) for read in _OTHER_READERS]
    values.append(event.SerializeToString() if payload is None else payload)
    return tuple(values)


def raw_table_name(service: str) -> str:
    """The raw events table of a service: `order-management` keeps `order_management_events`."""
    return f"{service.replace('-', '_')}_events"


RAW_TABLE_DESCRIPTION = (
    "Every event of one service's journal: the envelope and the serialized payload, for replay."
)


# The typed tables ---------------------------------------------------------------------------

_ORDER_KINDS = (
    "order_submitted", "order_denied", "order_held", "order_cancel_requested",
    "order_modify_requested", "order_amended", "order_triggered", "order_released",
    "order_withdrawn", "execution_report",
)  # fmt: skip
_STATUS_OF_REPORT = {
    types_pb2.EXECUTION_TYPE_ACCEPTED: "ACCEPTED",
    types_pb2.EXECUTION_TYPE_PARTIALLY_FILLED: "PARTIALLY_FILLED",
    types_pb2.EXECUTION_TYPE_FILLED: "FILLED",
    types_pb2.EXECUTION_TYPE_REJECTED: "REJECTED",
    types_pb2.EXECUTION_TYPE_CANCELED: "CANCELED",
    types_pb2.EXECUTION_TYPE_EXPIRED: "EXPIRED",
}


def _status_after_report(_event: events_pb2.Event, report: Any) -> str | None:
    """The order's status after a venue's report; None where the report leaves it as it was
    before a request (CANCEL_REJECTED, MODIFY_REJECTED)."""
    if report.execution_type == types_pb2.EXECUTION_TYPE_MODIFIED:
        filled = to_decimal(report.cumulative_quantity)
        return "PARTIALLY_FILLED" if filled else "ACCEPTED"
    return _STATUS_OF_REPORT.get(report.execution_type)


def _fill_notional(_event: events_pb2.Event, report: Any) -> Decimal | None:
    quantity, price = to_decimal(report.last_quantity), to_decimal(report.last_price)
    if quantity is None or price is None:
        return None
    return held(_CONTEXT.multiply(quantity, price))


def _quote_mid(_event: events_pb2.Event, payload: Any) -> Decimal | None:
    bid, ask = to_decimal(payload.quote.bid_price), to_decimal(payload.quote.ask_price)
    if bid is None or ask is None:
        return None
    return held(_CONTEXT.divide(_CONTEXT.add(bid, ask), 2))


def _id(name: str, description: str) -> Column:
    return Column(name, TEXT, description, read(f"@{name}"))


def _common(*, order: bool = False) -> tuple[Column, ...]:
    """The columns every typed table starts with: which event, where it is kept, when."""
    columns = (
        Column("event_id", TEXT, "The event's UUID (one row per event and table).",
               read("@event_id"), required=True),
        Column("service", TEXT, "The service whose journal keeps the event.", required=True),
        Column("journal_position", INTEGER,
               "The event's position in that journal (the raw table's store_sequence).",
               required=True),
        Column("event_time", TIME, "When the state change happened (UTC); the partition.",
               read("@event_time")),
    )  # fmt: skip
    if not order:
        return columns
    return (
        *columns,
        _id("order_id", "The order."),
        _id("parent_order_id", "The order it was split from (children of router algorithms)."),
    )


_ACCOUNT = _id("account_id", "The trading account.")
_ACTOR = _id("actor", "The API key id of the call that caused it (NULL: the platform itself).")
_INSTRUMENT = _id("instrument", "The instrument symbol.")
_EVENT_TYPE = Column("event_type", TEXT, "The payload message name, such as OrderSubmitted.",
                     event_type, required=True)  # fmt: skip
_SIDE = Column("side", TEXT, "BUY or SELL.", read("order.side", "side"))
_VENUE = Column("venue", TEXT, "The venue that holds the order.", read("order.venue", "venue"))


def _amount(name: str, description: str, *paths: str, **kinds: Getter | str) -> Column:
    return Column(name, DECIMAL, description, read(*paths, **kinds))


def _text_column(name: str, description: str, *paths: str, **kinds: Getter | str) -> Column:
    return Column(name, TEXT, description, read(*paths, **kinds))


# Whose order: the signal, the client's id, the strategy, the account, the instrument.
_WHOSE = (
    _id("signal_id", "The signal the order was sized from."),
    _text_column("client_order_id", "The client's id of the order.", "order.client_order_id"),
    _text_column("strategy_id", "The strategy that sent the order.", "order.strategy_id"),
    _ACCOUNT,
    _INSTRUMENT,
)

ORDERS = Table(
    "orders",
    "Each state change of an order: order-management's events about it and the venue's "
    "execution reports; the values the event states (NULL: not stated by this event).",
    _ORDER_KINDS,
    (
        *_common(order=True),
        _EVENT_TYPE,
        Column("sequence", INTEGER, "Per order and producing service, from 1.",
               read("@sequence")),
        *_WHOSE,
        _text_column(
            "status", "The order's status after the event (NULL: back to its status before a "
            "cancel or modify the venue could not apply).",
            "order.status", "status",
            order_cancel_requested="PENDING_CANCEL", order_modify_requested="PENDING_UPDATE",
            order_amended="HELD", order_triggered="HELD", order_released="SUBMITTED",
            execution_report=_status_after_report,
        ),
        _SIDE,
        _text_column("order_type", "MARKET, LIMIT, STOP_MARKET, ... (for a released order: "
                     "the type the venue holds).", "order.order_type", "venue_order_type"),
        _text_column("time_in_force", "GTC, IOC, FOK, DAY or GTD.", "order.time_in_force"),
        _amount("quantity", "The order's quantity (for a modify: the quantity asked).",
                "order.quantity", "quantity", "change.quantity"),
        _amount("limit_price", "The limit price.", "order.limit_price", "limit_price",
                "change.limit_price"),
        _amount("trigger_price", "A stop's trigger price.", "order.trigger_price",
                "trigger_price", "change.trigger_price"),
        _amount("filled_quantity", "How much has filled so far.", "order.filled_quantity",
                "cumulative_quantity"),
        _amount("leaves_quantity", "How much is still open.", "order.leaves_quantity",
                "leaves_quantity"),
        _amount("average_price", "Average fill price so far.", "order.average_fill_price",
                "average_price"),
        _amount("fees", "Fees paid so far.", "order.fees"),
        _VENUE,
        Column("reduce_only", FLAG, "Only reduces a position.", read("order.reduce_only")),
        _text_column("order_class", "BRACKET, OTO, OCO (NULL: on its own).", "order.order_class"),
        _text_column("role", "ENTRY, TAKE_PROFIT, STOP_LOSS in its class.", "order.role"),
        _text_column("algorithm", "The router's execution algorithm: TWAP, VWAP.",
                     "order.execution.algorithm"),
        _text_column("execution_type", "A venue report's type.", "execution_type"),
        _text_column("denial_reason", "Why order-management denied it.", "reason",
                     "order.denial_reason"),
        _text_column("message", "Why, for people.", "message", "order.status_message"),
        _text_column("request_id", "The request (submit, cancel, modify) behind the event.",
                     "request_id", "change.request_id", "order.request_id"),
        _ACTOR,
    ),
)  # fmt: skip

_REPORT_COLUMNS = (
    _ACCOUNT,
    _INSTRUMENT,
    _text_column("venue", "The venue that holds the order.", "venue"),
    _text_column("venue_order_id", "The venue's id of the order.", "venue_order_id"),
    _text_column("side", "BUY or SELL.", "side"),
    _text_column("trade_id", "A fill's id, unique per venue.", "trade_id"),
)
EXECUTIONS = Table(
    "executions",
    "Every execution report of the router: what a venue did with an order or a request.",
    ("execution_report",),
    (
        *_common(order=True),
        Column("sequence", INTEGER, "Per order, from 1.", read("@sequence")),
        *_REPORT_COLUMNS,
        _text_column("execution_type", "ACCEPTED, PARTIALLY_FILLED, FILLED, REJECTED, CANCELED, "
                     "EXPIRED, CANCEL_REJECTED, MODIFIED, MODIFY_REJECTED.", "execution_type"),
        _amount("last_quantity", "A fill's quantity.", "last_quantity"),
        _amount("last_price", "A fill's price.", "last_price"),
        _amount("fee", "A fill's fee.", "fee"),
        _amount("cumulative_quantity", "Filled so far.", "cumulative_quantity"),
        _amount("leaves_quantity", "Still open.", "leaves_quantity"),
        _amount("average_price", "Average fill price so far.", "average_price"),
        _amount("limit_price", "MODIFIED: the limit price after the modify.", "limit_price"),
        _amount("arrival_price", "The touch on the order's side when the router received it "
                "(first report of an order).", "arrival_price"),
        _amount("arrival_mid", "The mid of the quote the router saw when it routed the order "
                "(first report): the benchmark of slippage.", "arrival_mid"),
        Column("arrival_quote_time", TIME, "The time of that quote.",
               read("arrival_quote_time")),
        _text_column("message", "Why the venue rejected, canceled or expired it.", "message"),
        _text_column("request_id", "The cancel or modify request answered.", "request_id"),
    ),
)  # fmt: skip

FILLS = Table(
    "fills",
    "Every fill: an execution report with a trade id.",
    ("execution_report",),
    (
        *_common(order=True),
        *_REPORT_COLUMNS,
        _amount("quantity", "The fill's quantity.", "last_quantity"),
        _amount("price", "The fill's price.", "last_price"),
        _amount("notional", "quantity x price (exact, then rounded as every amount).",
                execution_report=_fill_notional),
        _amount("fee", "The fill's fee.", "fee"),
        _amount("cumulative_quantity", "The order's filled quantity after it.",
                "cumulative_quantity"),
        _amount("leaves_quantity", "The order's open quantity after it.", "leaves_quantity"),
    ),
    where=lambda report: bool(report.trade_id),
)  # fmt: skip

QUOTES = Table(
    "quotes",
    "The market-data producer's conflated quotes (one per instrument and tick).",
    ("quote_updated",),
    (
        *_common(),
        _text_column("instrument", "The instrument symbol.", "quote.instrument", "@instrument"),
        _text_column("source", "Where the quote came from: synthetic, or a venue.",
                     "quote.source"),
        Column("quote_time", TIME, "The quote's own time.", read("quote.quote_time")),
        _amount("bid_price", "Best bid.", "quote.bid_price"),
        _amount("bid_size", "Size at the best bid.", "quote.bid_size"),
        _amount("ask_price", "Best ask.", "quote.ask_price"),
        _amount("ask_size", "Size at the best ask.", "quote.ask_size"),
        _amount("mid", "(bid + ask) / 2.", quote_updated=_quote_mid),
        _amount("last_price", "The last trade's price.", "quote.last_price"),
        _text_column("status", "The venue's trading status of the instrument.",
                     "quote.status"),
    ),
    clustering=("instrument", "source"),
)  # fmt: skip

POSITIONS = Table(
    "positions",
    "Each change of a position (fills and marks) with its P&L.",
    ("position_updated",),
    (
        *_common(),
        _ACCOUNT,
        _INSTRUMENT,
        _id("order_id", "The order whose fill changed it (empty for a mark)."),
        Column("position_sequence", INTEGER, "Fills applied to the position so far.",
               read("position.sequence")),
        _amount("quantity", "Signed: positive is long.", "position.quantity"),
        _amount("average_price", "Average entry price of the open quantity.",
                "position.average_price"),
        _amount("realized_pnl", "Realized P&L.", "position.realized_pnl"),
        _amount("unrealized_pnl", "Unrealized P&L at the mark.", "position.unrealized_pnl"),
        _amount("mark_price", "The price it is marked at (the quote's mid).",
                "position.mark_price"),
        _amount("fees", "Fees paid.", "position.fees"),
        Column("update_time", TIME, "When it last changed.", read("position.update_time")),
    ),
)  # fmt: skip

DENIALS = Table(
    "denials",
    "Orders order-management refused (DENIED: they never reached a venue), with the reason.",
    ("order_denied",),
    (
        *_common(order=True),
        *_WHOSE,
        _SIDE,
        _text_column("order_type", "MARKET, LIMIT, ...", "order.order_type"),
        _amount("quantity", "The quantity asked.", "order.quantity"),
        _amount("limit_price", "The limit price asked.", "order.limit_price"),
        _text_column("reason", "The reason code, such as QUOTE_STALE.", "reason"),
        _text_column("message", "Why, for people.", "message"),
        _text_column("request_id", "The submit request.", "order.request_id"),
        _ACTOR,
    ),
)  # fmt: skip


def _limits_json(message: Message) -> str | None:
    values = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return json.dumps(values, sort_keys=True, separators=(",", ":")) if values else None


RISK_EVENTS = Table(
    "risk_events",
    "Risk actions: changes of pre-trade risk limits (SetRiskLimits) and requests to close "
    "positions (ClosePosition, EmergencyStop with flatten).",
    ("risk_limits_changed", "position_close_requested"),
    (
        *_common(),
        _EVENT_TYPE,
        _ACCOUNT,
        _text_column("instrument", "The instrument to close (NULL: every one).", "instrument"),
        _text_column("scope", "Whose limits: ACCOUNTS, ACCOUNT, STRATEGIES, STRATEGY, GROUP.",
                     "record.scope"),
        _text_column("scope_name", "The account, strategy or group named.", "record.name"),
        Column("limits", JSON_TEXT, "The scope's own limits as set, as JSON.",
               read(risk_limits_changed=lambda _e, p: _limits_json(p.record.limits))),
        Column("previous_limits", JSON_TEXT, "The scope's own limits before, as JSON.",
               read(risk_limits_changed=lambda _e, p: _limits_json(p.previous))),
        _text_column("reason", "Why, as the operator gave it.", "record.reason"),
        Column("version", INTEGER, "Counts every change of any scope.", read("record.version")),
        _text_column("request_id", "The request that made it.", "request_id"),
        _ACTOR,
    ),
)  # fmt: skip

TRADING_STATE_EVENTS = Table(
    "trading_state_events",
    "Whether trading is allowed: the trading state of the platform or an account "
    "(SetTradingState, EmergencyStop, a risk breach), and operators' instrument statuses.",
    ("trading_state_changed", "instrument_status_changed"),
    (
        *_common(),
        _EVENT_TYPE,
        _text_column("account_id", "The account (NULL: the platform or an instrument).",
                     "trading_state.account_id"),
        _text_column("instrument", "The instrument (instrument statuses).", "record.instrument"),
        _text_column("state", "ACTIVE, REDUCING, HALTED; for an instrument TRADING, "
                     "REDUCE_ONLY, HALTED, CLOSED.", "trading_state.state", "record.status"),
        _text_column("previous_state", "The state before.", "previous_state", "previous"),
        _text_column("reason", "Why, as given.", "trading_state.reason", "record.reason"),
        Column("version", INTEGER, "How many times it was set.",
               read("trading_state.version", "record.version")),
        _text_column("request_id", "The request that set it (NULL: the platform did).",
                     "request_id"),
        _ACTOR,
    ),
)  # fmt: skip

VENUE_CALLS = Table(
    "venue_calls",
    "Each call the router made to a network venue (an order's submit, cancel, modify and "
    "look-ups; reconciliation's queries of open orders and fills): what, how long, and how it "
    "ended. The paper venue makes none: it runs in the router's process. Journaled in batches: a "
    "router killed loses at most its last batch's calls, and never records one twice.",
    ("venue_called",),
    (
        *_common(order=True),
        _ACCOUNT,
        _INSTRUMENT,
        _text_column("venue", "The venue called.", "venue"),
        _text_column("operation", "SUBMIT, CANCEL, MODIFY, QUERY_ORDER, QUERY_OPEN_ORDERS, "
                     "QUERY_FILLS.", "operation"),
        Column("start_time", TIME, "When the call was made.", read("start_time")),
        Column("latency_us", INTEGER, "Until the venue answered or the call failed, in "
               "microseconds (waits for rate-limit headroom and retries included).",
               read("latency_us")),
        _text_column("outcome", "ANSWERED, REFUSED (the venue said no), FAILED (no answer: a "
                     "dropped connection, a 5xx), TIMED_OUT, RATE_LIMITED (by the venue, or our "
                     "limit of its rate left no headroom), NOT_SENT (its circuit was open).",
                     "outcome"),
        Column("attempts", INTEGER, "Attempts made: 1, more when a repeatable call was retried, "
               "0 when nothing was sent.", read("attempts")),
        _text_column("message", "The venue's refusal or the failure.", "message"),
        _text_column("error_class", "The failure's class, such as RequestTimeout (NULL: "
                     "answered).", "error_class"),
    ),
)  # fmt: skip

SHADOW_EXECUTIONS = Table(
    "shadow_executions",
    "Shadow simulation (execution.shadow): what the paper venue's model did with each order the "
    "router sent to a network venue, from the same arrival quote: one row per would-be fill, "
    "and one when the model's order ended with part unfilled (EXPIRED, REJECTED, or CANCELED "
    "when the real order finished first). order_id is the real order's.",
    ("shadow_execution",),
    (
        *_common(order=True),
        _ACCOUNT,
        _INSTRUMENT,
        _text_column("venue", "The network venue the real order went to.", "venue"),
        _text_column("execution_type", "FILLED, PARTIALLY_FILLED (a would-be fill), EXPIRED, "
                     "REJECTED, CANCELED.", "execution_type"),
        _text_column("side", "BUY or SELL.", "side"),
        _text_column("order_type", "MARKET, LIMIT, MARKET_TO_LIMIT.", "order_type"),
        _amount("order_quantity", "The order's quantity.", "order_quantity"),
        _amount("quantity", "A would-be fill's quantity.", "last_quantity"),
        _amount("price", "A would-be fill's price.", "last_price"),
        _amount("fee", "A would-be fill's fee.", "fee"),
        _amount("cumulative_quantity", "The model's filled quantity after it.",
                "cumulative_quantity"),
        Column("send_time", TIME, "When the router sent the real order (the model's start).",
               read("send_time")),
        Column("model_time", TIME, "The model's time of it: a fill's, when the model's order "
               "reached its book after the latency drawn for it (or the quote that filled it "
               "resting).", read("model_time")),
        _amount("arrival_price", "The arrival quote's touch on the order's side.",
                "arrival_price"),
        _amount("arrival_mid", "The arrival quote's mid.", "arrival_mid"),
        Column("arrival_quote_time", TIME, "The arrival quote's time.",
               read("arrival_quote_time")),
        _text_column("trade_id", "The model's id of a would-be fill.", "trade_id"),
        _text_column("message", "Why the model ended the order.", "message"),
    ),
)  # fmt: skip

TABLES: tuple[Table, ...] = (
    ORDERS, EXECUTIONS, FILLS, QUOTES, POSITIONS, DENIALS, RISK_EVENTS, TRADING_STATE_EVENTS,
    VENUE_CALLS, SHADOW_EXECUTIONS,
)  # fmt: skip


# Schemas of the stores --------------------------------------------------------------------------


def duckdb_column_definitions(columns: Sequence[Column] = EVENT_COLUMNS) -> str:
    return ", ".join(
        f"{c.name} {c.duckdb_type}{' NOT NULL' if c.required else ''}" for c in columns
    )


def bigquery_fields(columns: Sequence[Column] = EVENT_COLUMNS) -> list[dict[str, str]]:
    """A table's schema in BigQuery's JSON form (also what Terraform's `schema` takes)."""
    fields = []
    for c in columns:
        entry = {
            "name": c.name,
            "type": c.bigquery_type,
            "mode": "REQUIRED" if c.required else "NULLABLE",
            "description": c.description,
        }
        if c.type.bigquery_precision is not None:
            entry["precision"] = str(c.type.bigquery_precision)
            entry["scale"] = str(c.type.bigquery_scale)
        fields.append(entry)
    return fields


SERVICES = ("order-management", "execution-router", "position-management", "market-data")


def bigquery_tables(services: Sequence[str] = SERVICES) -> dict[str, dict[str, Any]]:
    """Every table of the BigQuery dataset: its description, JSON schema, day partitioning and
    clustering, by name. What Terraform's bigquery module creates (tables.json) and what the
    BigQuery store checks and migrates."""
    tables: dict[str, dict[str, Any]] = {}
    for service in services:
        tables[raw_table_name(service)] = {
            "description": f"{RAW_TABLE_DESCRIPTION} Service: {service}.",
            "schema": bigquery_fields(EVENT_COLUMNS),
            "partition_field": "event_time",
            "clustering": ["account_id", "instrument"],
        }
    for table in TABLES:
        tables[table.name] = {
            "description": table.description,
            "schema": bigquery_fields(table.columns),
            "partition_field": table.partition_column,
            "clustering": list(table.clustering),
        }
    return tables


def terraform_tables_json() -> str:
    """The text of terraform/modules/bigquery/tables.json."""
    return json.dumps(bigquery_tables(), indent=2) + "\n"


README_BEGIN = "<!-- warehouse tables: written by `make schema` from store/schema.py -->"
README_END = "<!-- end of warehouse tables -->"


def tables_markdown() -> str:
    """The README's list of tables and columns (between README_BEGIN and README_END)."""
    lines = [
        f"`<service>_events` (one per service): {RAW_TABLE_DESCRIPTION} Columns: "
        + ", ".join(f"`{c.name}`" for c in EVENT_COLUMNS)
        + ".",
    ]
    for table in TABLES:
        lines += [
            "",
            f"**`{table.name}`**: {table.description} BigQuery: partitioned by day on "
            f"`{table.partition_column}`, clustered by "
            + ", ".join(f"`{name}`" for name in table.clustering)
            + ".",
            "",
            "| column | DuckDB | BigQuery | |",
            "|---|---|---|---|",
            *(
                f"| `{c.name}` | {c.duckdb_type} | {c.bigquery_type}"
                f"{'' if c.type.bigquery_precision is None else '(38, 18)'}"
                f"{' REQUIRED' if c.required else ''} | {c.description} |"
                for c in table.columns
            ),
        ]
    return "\n".join(lines) + "\n"


def with_tables_markdown(readme: str) -> str:
    """The README with its list of tables written anew."""
    head, rest = readme.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    return f"{head}{README_BEGIN}\n{tables_markdown()}{README_END}{tail}"


class SchemaMismatch(ValueError):
    """A table found in a store differs from the schema in a way no additive change mends."""


def missing_columns(
    table: str,
    columns: Sequence[Column],
    found: Mapping[str, str],
    type_of: Callable[[Column], str],
) -> list[Column]:
    """The columns to add to a table found with `found` (name -> type as the store reports
    it); raises SchemaMismatch for a column whose type differs. Columns the store has and the
    schema does not (a later version's) are left alone."""
    wrong = [
        f"{c.name} is {found[c.name]}, expected {type_of(c)}"
        for c in columns
        if c.name in found and found[c.name] != type_of(c)
    ]
    if wrong:
        raise SchemaMismatch(f"table {table}: {'; '.join(wrong)} (changes must be additive)")
    return [c for c in columns if c.name not in found]
