"""The event store contract: every adapter passes the same suite, on real storage.

An adapter is how to open a store for a (service, table) and how to read what is really stored
(store_sequence, event_id), bypassing the store, to see what reached storage without a flush.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from trading.v1 import events_pb2, orders_pb2, types_pb2
from trading_core.config import BigQueryDatabase, ConfigError, DuckDBDatabase
from trading_core.events import new_id, timestamp
from trading_core.store import (
    DuckDBEventStore,
    EventStore,
    EventStoreWriteError,
    create_store,
    table_name,
)

from tests.support import wait_until

StoredRow = tuple[int, str]  # (store_sequence, event_id)


@dataclass(frozen=True)
class Adapter:
    open: Callable[..., EventStore]  # (service, table, *, batch_size, flush_interval_ms)
    stored_rows: Callable[[str, str], list[StoredRow]]  # (service, table)


def _duckdb_adapter(root: Path) -> Adapter:
    def open_store(
        service: str, table: str, *, batch_size: int = 5000, flush_interval_ms: int = 50
    ) -> EventStore:
        return DuckDBEventStore(
            root / f"{service}.duckdb",
            table,
            batch_size=batch_size,
            flush_interval_ms=flush_interval_ms,
        )

    def stored_rows(service: str, table: str) -> list[StoredRow]:
        # A second connection in this process shares the open database, so it sees commits.
        with duckdb.connect(str(root / f"{service}.duckdb")) as connection:
            query = f"SELECT store_sequence, event_id FROM {table} ORDER BY store_sequence"
            return [(int(seq), str(event_id)) for seq, event_id in connection.sql(query).fetchall()]

    return Adapter(open_store, stored_rows)


ADAPTERS: dict[str, Callable[[Path], Adapter]] = {"duckdb": _duckdb_adapter}
SERVICE = "order-management"
TABLE = "order_management_events"
START = datetime(2025, 1, 2, 9, 30, tzinfo=UTC)


@pytest.fixture(params=sorted(ADAPTERS))
def adapter(request: pytest.FixtureRequest, tmp_path: Path) -> Adapter:
    return ADAPTERS[request.param](tmp_path)


@pytest.fixture
def store(adapter: Adapter) -> Iterator[EventStore]:
    opened = adapter.open(SERVICE, TABLE)
    yield opened
    opened.close()


def order_submitted(number: int, account_id: str = "ACC-1") -> events_pb2.Event:
    order = orders_pb2.Order(
        order_id=new_id(),
        client_order_id=f"client-{number}",
        account_id=account_id,
        instrument="BTC-USD",
        side=types_pb2.SIDE_BUY,
        order_type=types_pb2.ORDER_TYPE_LIMIT,
        time_in_force=types_pb2.TIME_IN_FORCE_GTC,
        quantity="0.015",
        limit_price="64250.50",
        status=types_pb2.ORDER_STATUS_SUBMITTED,
        version=1,
    )
    return events_pb2.Event(
        event_id=new_id(),
        event_time=timestamp(START + timedelta(milliseconds=number)),
        sequence=1,
        order_id=order.order_id,
        account_id=account_id,
        instrument=order.instrument,
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        order_submitted=events_pb2.OrderSubmitted(order=order),
    )


def test_appended_events_replay_equal_and_in_append_order(store: EventStore) -> None:
    events = [order_submitted(n) for n in range(50)]
    for event in events:
        store.append(event)
    store.flush()

    assert list(store.replay()) == events


def test_replay_sees_events_appended_before_it_without_a_flush(store: EventStore) -> None:
    events = [order_submitted(n) for n in range(3)]
    for event in events:
        store.append(event)

    assert list(store.replay()) == events


def test_events_replay_after_close_and_reopen(adapter: Adapter) -> None:
    events = [order_submitted(n) for n in range(10)]
    first = adapter.open(SERVICE, TABLE)
    for event in events:
        first.append(event)
    first.close()

    reopened = adapter.open(SERVICE, TABLE)
    try:
        assert list(reopened.replay()) == events
    finally:
        reopened.close()


def test_store_sequence_continues_after_reopen(adapter: Adapter) -> None:
    for count in (3, 2):
        opened = adapter.open(SERVICE, TABLE)
        for n in range(count):
            opened.append(order_submitted(n))
        opened.close()

    assert [seq for seq, _ in adapter.stored_rows(SERVICE, TABLE)] == [1, 2, 3, 4, 5]


def test_appends_from_many_threads_lose_nothing_and_keep_each_threads_order(
    adapter: Adapter,
) -> None:
    threads, per_thread = 8, 500
    store = adapter.open(SERVICE, TABLE, batch_size=300, flush_interval_ms=5)
    sent = {
        f"ACC-{t}": [order_submitted(n, f"ACC-{t}") for n in range(per_thread)]
        for t in range(threads)
    }
    start = threading.Barrier(threads)

    def append_all(events: list[events_pb2.Event]) -> None:
        start.wait()
        for event in events:
            store.append(event)

    workers = [threading.Thread(target=append_all, args=(events,)) for events in sent.values()]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    replayed = list(store.replay())
    store.close()

    assert len(replayed) == threads * per_thread
    for account_id, events in sent.items():
        assert [e for e in replayed if e.account_id == account_id] == events


def test_flusher_stores_events_without_an_explicit_flush(adapter: Adapter) -> None:
    store = adapter.open(SERVICE, TABLE, batch_size=1000, flush_interval_ms=20)
    try:
        event = order_submitted(1)
        store.append(event)

        wait_until(
            lambda: [e for _, e in adapter.stored_rows(SERVICE, TABLE)] == [event.event_id],
            timeout=5,
            message="the background flusher wrote the appended event",
        )
    finally:
        store.close()


def test_a_full_batch_is_written_before_the_interval_elapses(adapter: Adapter) -> None:
    store = adapter.open(SERVICE, TABLE, batch_size=10, flush_interval_ms=60_000)
    try:
        for n in range(10):
            store.append(order_submitted(n))

        wait_until(
            lambda: len(adapter.stored_rows(SERVICE, TABLE)) == 10,
            timeout=5,
            message="a full batch was written long before the one-minute interval",
        )
    finally:
        store.close()


def test_two_tables_in_one_file_stay_separate(adapter: Adapter) -> None:
    orders = adapter.open(SERVICE, "orders_events")
    audits = adapter.open(SERVICE, "audit_events")
    try:
        order_event, audit_event = order_submitted(1), order_submitted(2)
        orders.append(order_event)
        audits.append(audit_event)

        assert list(orders.replay()) == [order_event]
        assert list(audits.replay()) == [audit_event]
    finally:
        orders.close()
        audits.close()


def test_two_services_in_two_files_stay_separate(adapter: Adapter) -> None:
    orders = adapter.open("order-management", TABLE)
    positions = adapter.open("position-management", TABLE)
    try:
        order_event, position_event = order_submitted(1), order_submitted(2)
        orders.append(order_event)
        positions.append(position_event)

        assert list(orders.replay()) == [order_event]
        assert list(positions.replay()) == [position_event]
    finally:
        orders.close()
        positions.close()


def test_closing_twice_is_harmless_and_appending_after_close_is_refused(
    adapter: Adapter,
) -> None:
    store = adapter.open(SERVICE, TABLE)
    store.append(order_submitted(1))
    store.close()
    store.close()

    with pytest.raises(RuntimeError, match="closed"):
        store.append(order_submitted(2))
    assert len(adapter.stored_rows(SERVICE, TABLE)) == 1


def test_a_large_batch_is_written_in_one_flush(adapter: Adapter) -> None:
    count = 20_000
    store = adapter.open(SERVICE, TABLE, batch_size=50_000, flush_interval_ms=60_000)
    try:
        events = [order_submitted(n) for n in range(count)]
        for event in events:
            store.append(event)
        store.flush()

        rows = adapter.stored_rows(SERVICE, TABLE)
        assert [seq for seq, _ in rows] == list(range(1, count + 1))
        assert [event_id for _, event_id in rows] == [e.event_id for e in events]
    finally:
        store.close()


# DuckDB specifics: where the configured store lives, and what a failed write does.


def test_create_store_puts_each_service_in_its_own_file_and_table(tmp_path: Path) -> None:
    database = DuckDBDatabase(
        backend="duckdb", path=tmp_path / "data", flush_interval_ms=50, batch_size=1000
    )
    store = create_store(database, "position-management")
    event = order_submitted(1)
    store.append(event)
    store.close()

    assert table_name("position-management") == "position_management_events"
    with duckdb.connect(str(tmp_path / "data" / "position-management.duckdb")) as connection:
        query = "SELECT event_id, event_type FROM position_management_events"
        assert connection.sql(query).fetchall() == [(event.event_id, "OrderSubmitted")]


def test_create_store_for_bigquery_is_refused_with_a_config_error() -> None:
    database = BigQueryDatabase(backend="bigquery", project="trading-dev", dataset="events")

    with pytest.raises(ConfigError, match="later release"):
        create_store(database, "order-management")


def test_a_failed_write_keeps_the_events_and_the_next_flush_stores_them(tmp_path: Path) -> None:
    path = tmp_path / "order-management.duckdb"
    store = DuckDBEventStore(path, TABLE, flush_interval_ms=60_000)
    events = [order_submitted(n) for n in range(3)]
    with duckdb.connect(str(path)) as saboteur:
        saboteur.execute(f"ALTER TABLE {TABLE} RENAME TO hidden")
        for event in events:
            store.append(event)

        with pytest.raises(EventStoreWriteError, match="could not write 3 events"):
            store.flush()

        saboteur.execute(f"ALTER TABLE hidden RENAME TO {TABLE}")
    store.flush()

    assert list(store.replay()) == events
    store.close()


def test_opening_a_table_with_other_columns_is_refused_and_changes_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "order-management.duckdb"
    with duckdb.connect(str(path)) as connection:
        connection.execute(f"CREATE TABLE {TABLE} (id BIGINT, body VARCHAR)")

    with pytest.raises(ValueError, match="expected"):
        DuckDBEventStore(path, TABLE)

    with duckdb.connect(str(path)) as connection:
        columns = connection.execute(f"DESCRIBE {TABLE}").fetchall()
        assert [name for name, *_ in columns] == ["id", "body"]
