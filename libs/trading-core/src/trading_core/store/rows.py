"""Events into the warehouse's rows, as Arrow tables: what every store writes (DuckDB now,
BigQuery next), read as `schema.py` says.

The feed shares the machine with the services, so reading is compiled once per payload kind and
table (`_Plan`): one C-level getter for the envelope's fields and one for the payload's, then
each column converted as a whole list. A payload kind no table takes, or one this version does
not know, makes only its raw row.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import pyarrow as pa
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError
from trading.v1 import events_pb2

from trading_core.events import event_type, stamp_micros
from trading_core.journal import KeptRecord
from trading_core.store.schema import (
    ARROW_SCHEMA,
    DECIMAL,
    EVENT_VALUE_COLUMNS,
    FLAG,
    INTEGER,
    JSON_TEXT,
    TABLES,
    TEXT,
    TIME,
    Column,
    Getter,
    Read,
    Table,
    event_values,
    to_decimal,
)

log = logging.getLogger(__name__)

_PAYLOAD_TYPES: dict[str, Descriptor | None] = {
    f.name: f.message_type for f in events_pb2.Event.DESCRIPTOR.oneofs_by_name["payload"].fields
}
_PAYLOAD_NAMES = {kind: message.name for kind, message in _PAYLOAD_TYPES.items() if message}
_ENVELOPE = events_pb2.Event.DESCRIPTOR
_RECORD_TIME_TYPE = ARROW_SCHEMA.field("record_time").type
_EVENT_TYPE = [c.name for c in EVENT_VALUE_COLUMNS].index("event_type")
# A column's Arrow array from its values as read.
ArrayOf = Callable[[Sequence[Any]], "pa.Array[Any]"]
_INTEGERS = (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_INT32)
_BOOL = FieldDescriptor.TYPE_BOOL

# Where a column's values come from in a plan's raw row.
_ENVELOPE_VALUE, _PAYLOAD_VALUE, _COMPUTED, _CONSTANT = range(4)


def event_columns(table: Table) -> tuple[Column, ...]:
    """The table's columns read from the event (the others the store sets)."""
    return tuple(c for c in table.columns if c.read is not None)


def _resolve(descriptor: Descriptor | None, path: str) -> FieldDescriptor | None:
    """The field a dotted path names in a message type, or None when it has no such path."""
    leaf: FieldDescriptor | None = None
    for name in path.split("."):
        if descriptor is None or name not in descriptor.fields_by_name:
            return None
        leaf = descriptor.fields_by_name[name]
        descriptor = leaf.message_type
    return leaf


def _texts(values: Sequence[Any]) -> pa.Array[Any]:
    # Unset in proto3 is empty: NULL. (A list, not pyarrow.compute: its calls cost ~100 us.)
    return pa.array([value or None for value in values], pa.string())


def _decimals(values: Sequence[Any]) -> pa.Array[Any]:
    try:
        return _texts(values).cast(DECIMAL.arrow)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        # A value to round, or one that cannot be held: the schema's rule, value by value.
        return pa.array([to_decimal(value) for value in values], DECIMAL.arrow)


def _stamps(values: Sequence[Any]) -> pa.Array[Any]:
    micros = [stamp_micros(v) if v.seconds or v.nanos else None for v in values]
    return pa.array(micros, TIME.arrow)


def _as_is(kind: pa.DataType) -> ArrayOf:
    return lambda values: pa.array(values, kind)


def _enum_names(leaf: FieldDescriptor) -> ArrayOf:
    """Value names without the type's prefix (SIDE_BUY -> BUY); unspecified is NULL; a value
    a later version added is kept as its number."""
    enum = leaf.enum_type
    assert enum is not None  # _converter: an enum field
    snake = "".join(f"_{c}" if c.isupper() and i else c for i, c in enumerate(enum.name))
    prefix = f"{snake.upper()}_"
    names: dict[int, str | None] = {v.number: v.name.removeprefix(prefix) for v in enum.values}
    names[0] = None
    return lambda values: pa.array(
        [names[v] if v in names else str(v) for v in values], pa.string()
    )


def _converter(leaf: FieldDescriptor, column: Column, where: str) -> ArrayOf:
    """How a field's values become the column's array; checked at import."""
    kind = column.type
    if leaf.message_type is not None:
        if leaf.message_type.full_name == "google.protobuf.Timestamp" and kind is TIME:
            return _stamps
    elif leaf.enum_type is not None and kind is TEXT:
        return _enum_names(leaf)
    elif leaf.type == FieldDescriptor.TYPE_STRING and kind in (TEXT, JSON_TEXT):
        return _texts
    elif leaf.type == FieldDescriptor.TYPE_STRING and kind is DECIMAL:
        return _decimals
    elif (leaf.type in _INTEGERS and kind is INTEGER) or (
        leaf.type == FieldDescriptor.TYPE_BOOL and kind is FLAG
    ):
        return _as_is(kind.arrow)
    raise TypeError(f"{where}: field {leaf.full_name} cannot fill a {kind.duckdb} column")


def _tuple_getter(paths: Sequence[str]) -> Callable[[Any], tuple[Any, ...]]:
    if not paths:
        return lambda _message: ()
    if len(paths) == 1:
        single = attrgetter(paths[0])
        return lambda message: (single(message),)
    return attrgetter(*paths)


@dataclass(frozen=True, eq=False)
class _Plan:
    """How the events of one payload kind fill one table."""

    table: Table
    where: Callable[[Any], bool] | None
    envelope: Callable[[events_pb2.Event], tuple[Any, ...]]
    payload: Callable[[Any], tuple[Any, ...]]
    computed: tuple[Getter, ...]
    # Per event column: (source, index or constant, its array from the source's values).
    layout: tuple[tuple[int, Any, ArrayOf], ...]

    def columns(self, rows: _Rows) -> list[pa.Array[Any]]:
        """The event columns' arrays of the rows this plan read."""
        count = len(rows.positions)
        sources = (
            list(zip(*rows.envelope, strict=True)) if rows.envelope[0] else [],
            list(zip(*rows.payload, strict=True)) if rows.payload[0] else [],
            list(zip(*rows.computed, strict=True)) if rows.computed[0] else [],
        )
        return [
            array([index] * count) if source == _CONSTANT else array(sources[source][index])
            for source, index, array in self.layout
        ]


@dataclass
class _Rows:
    """What one plan read from a batch's events, row by row."""

    positions: list[int] = field(default_factory=list)
    envelope: list[tuple[Any, ...]] = field(default_factory=list)
    payload: list[tuple[Any, ...]] = field(default_factory=list)
    computed: list[tuple[Any, ...]] = field(default_factory=list)


def _plan(table: Table, kind: str) -> _Plan:
    envelope_paths: list[str] = []
    payload_paths: list[str] = []
    computed: list[Getter] = []
    layout: list[tuple[int, Any, ArrayOf]] = []
    for column in event_columns(table):
        where = f"{table.name}.{column.name} ({kind})"
        spec = column.read
        if spec is event_type:  # the same for every event of the kind
            layout.append((_CONSTANT, _PAYLOAD_NAMES[kind], _as_is(column.arrow_type)))
            continue
        if not isinstance(spec, Read):
            reader = spec
            assert reader is not None  # event_columns: read from the event
            computed.append(lambda event, _payload, reader=reader: reader(event))  # type: ignore[misc]
            layout.append((_COMPUTED, len(computed) - 1, _as_is(column.arrow_type)))
            continue
        if kind in spec.kinds:
            own = spec.kinds[kind]
            if callable(own):
                computed.append(own)
                layout.append((_COMPUTED, len(computed) - 1, _as_is(column.arrow_type)))
            else:
                layout.append((_CONSTANT, own, _as_is(column.arrow_type)))
            continue
        for path in spec.paths:
            on_envelope = path.startswith("@")
            name = path.removeprefix("@")
            leaf = _resolve(_ENVELOPE if on_envelope else _PAYLOAD_TYPES[kind], name)
            if leaf is None:
                continue
            paths = envelope_paths if on_envelope else payload_paths
            paths.append(name)
            source = _ENVELOPE_VALUE if on_envelope else _PAYLOAD_VALUE
            layout.append((source, len(paths) - 1, _converter(leaf, column, where)))
            break
        else:
            layout.append((_CONSTANT, None, _as_is(column.arrow_type)))
    return _Plan(
        table,
        table.where,
        _tuple_getter(envelope_paths),
        _tuple_getter(payload_paths),
        tuple(computed),
        tuple(layout),
    )


def _plans() -> dict[str, tuple[_Plan, ...]]:
    plans: dict[str, list[_Plan]] = {}
    for table in TABLES:
        for kind in table.kinds:
            if kind not in _PAYLOAD_TYPES:
                raise TypeError(f"{table.name}: no payload kind {kind!r} in trading.v1.Event")
            plans.setdefault(kind, []).append(_plan(table, kind))
    return {kind: tuple(found) for kind, found in plans.items()}


_PLANS = _plans()


def typed_batches(
    service: str,
    events: Iterable[tuple[int, events_pb2.Event]],
    only: set[Table] | None = None,
) -> dict[str, pa.Table]:
    """The typed rows of (journal position, event) pairs as Arrow tables by table name, of
    the tables `only` when given."""
    found: dict[_Plan, _Rows] = {}
    for position, event in events:
        kind = event.WhichOneof("payload")
        if kind is None:
            continue
        payload = None
        for plan in _PLANS.get(kind, ()):
            if only is not None and plan.table not in only:
                continue
            if payload is None:
                payload = getattr(event, kind)
            if plan.where is None or plan.where(payload):
                rows = found.get(plan)
                if rows is None:
                    rows = found[plan] = _Rows()
                rows.positions.append(position)
                rows.envelope.append(plan.envelope(event))
                rows.payload.append(plan.payload(payload))
                rows.computed.append(tuple(get(event, payload) for get in plan.computed))
    parts: dict[Table, list[pa.Table]] = {}
    for plan, rows in found.items():
        parts.setdefault(plan.table, []).append(_arrow(service, plan, rows))
    return {table.name: pa.concat_tables(tables) for table, tables in parts.items()}


def _arrow(service: str, plan: _Plan, rows: _Rows) -> pa.Table:
    schema = plan.table.arrow_schema
    arrays = dict(zip((c.name for c in event_columns(plan.table)), plan.columns(rows), strict=True))
    arrays["service"] = pa.array([service] * len(rows.positions), pa.string())
    arrays["journal_position"] = pa.array(rows.positions, pa.int64())
    return pa.Table.from_arrays([arrays[name] for name in schema.names], schema=schema)


def parse(payload: bytes, where: str) -> events_pb2.Event:
    """The event of a journal record; an empty one (raw row only) when it cannot be read."""
    try:
        return events_pb2.Event.FromString(payload)
    except DecodeError:
        log.warning("warehouse: the event at %s is not a trading.v1.Event; kept raw", where)
        return events_pb2.Event()


def arrow_batches(
    raw_table: str, service: str, records: Sequence[KeptRecord]
) -> dict[str, pa.Table]:
    """The raw and typed rows of a batch of journal events, as Arrow tables by table name."""
    parsed = []
    rows = []
    for kept in records:
        record = kept.record
        event = parse(record.payload, f"{service} journal position {kept.seq}")
        if not event.event_id:  # unreadable: the envelope from the journal's own columns
            event.event_id = record.record_id
            event.event_time.FromMicroseconds(record.time_us)
        values = event_values(event, record.payload)
        if not values[_EVENT_TYPE]:  # a payload this version does not know: as its producer
            values = (*values[:_EVENT_TYPE], record.record_type, *values[_EVENT_TYPE + 1 :])
        rows.append(values)
        parsed.append((kept.seq, event))
    columns: dict[str, Any] = {"store_sequence": pa.array([k.seq for k in records], pa.int64())}
    for column, values in zip(EVENT_VALUE_COLUMNS, zip(*rows, strict=True), strict=True):
        columns[column.name] = pa.array(values, column.arrow_type)
    record_time = time.time_ns() // 1_000
    columns["record_time"] = pa.array([record_time] * len(records), _RECORD_TIME_TYPE)
    raw = pa.Table.from_arrays([columns[name] for name in ARROW_SCHEMA.names], schema=ARROW_SCHEMA)
    return {raw_table: raw, **typed_batches(service, parsed)}
