"""The warehouse contract: every adapter passes the same suite, on real storage, fed from a real
journal. (BigQuery joins with its adapter.)"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
from trading.v1 import events_pb2
from trading_core.events import new_id, timestamp
from trading_core.journal import Journal, Record, Transaction
from trading_core.service import JournaledService
from trading_core.store import DuckDBWarehouse, WarehouseFeeder
from trading_core.store.schema import EVENT_COLUMNS

from tests.support import wait_until

TABLE = "order_management_events"


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    opened = Journal(tmp_path / "order-management.journal")
    yield opened
    opened.close()


@pytest.fixture(params=["duckdb"])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> DuckDBWarehouse:
    assert request.param == "duckdb"
    return DuckDBWarehouse(tmp_path / "order-management.duckdb", TABLE)


def stored(warehouse: DuckDBWarehouse) -> list[tuple[int, str]]:
    with duckdb.connect(str(warehouse.path), read_only=True) as connection:
        rows = connection.execute(
            f"SELECT store_sequence, event_id FROM {TABLE} ORDER BY store_sequence"
        ).fetchall()
    return [(int(seq), str(event_id)) for seq, event_id in rows]


def keep_events(journal: Journal, count: int, *, command_every: int = 0) -> list[str]:
    """Commits `count` events (and a command every `command_every`); returns the event ids."""
    ids = []
    for number in range(count):
        event = events_pb2.Event(event_id=new_id(), order_id=f"o-{number}", account_id="ACC-1")
        event.event_time.CopyFrom(timestamp(datetime.now(UTC)))
        event.order_submitted.order.order_id = event.order_id
        transaction = Transaction()
        transaction.keep(JournaledService.event_record(event))
        if command_every and number % command_every == 0:
            transaction.keep(Record(new_id(), "SubmitOrder", False, b"command", 1, "o-1"))
        journal.commit(transaction).wait()
        ids.append(event.event_id)
    return ids


def feeder(journal: Journal, warehouse: DuckDBWarehouse) -> WarehouseFeeder:
    return WarehouseFeeder(journal, warehouse, interval_s=3600, batch_size=7)


def test_feeding_stores_every_event_once_in_journal_order(
    journal: Journal, warehouse: DuckDBWarehouse
) -> None:
    ids = keep_events(journal, 20, command_every=5)

    assert feeder(journal, warehouse).feed_all() == 20
    assert feeder(journal, warehouse).feed_all() == 0  # a second feeder finds nothing new

    rows = stored(warehouse)
    assert [event_id for _, event_id in rows] == ids  # commands are not events: not stored
    assert [seq for seq, _ in rows] == sorted(seq for seq, _ in rows)


def test_a_new_warehouse_object_resumes_where_the_file_says_it_stopped(
    journal: Journal, warehouse: DuckDBWarehouse, tmp_path: Path
) -> None:
    keep_events(journal, 5)
    feeder(journal, warehouse).feed_all()
    later = keep_events(journal, 3)

    reopened = DuckDBWarehouse(warehouse.path, TABLE)
    assert feeder(journal, reopened).feed_all() == 3
    assert [event_id for _, event_id in stored(warehouse)][-3:] == later


def test_an_analyst_session_holding_the_file_delays_the_feed_and_loses_nothing(
    journal: Journal, warehouse: DuckDBWarehouse
) -> None:
    keep_events(journal, 3)
    feeder(journal, warehouse).feed_all()
    ids = keep_events(journal, 4)
    analyst = duckdb.connect(str(warehouse.path), read_only=True)
    try:
        assert feeder(journal, warehouse).feed_all() == 0  # locked: nothing stored, no error
        assert len(analyst.execute(f"SELECT * FROM {TABLE}").fetchall()) == 3
    finally:
        analyst.close()
    assert feeder(journal, warehouse).feed_all() == 4
    assert [event_id for _, event_id in stored(warehouse)][-4:] == ids


def test_the_table_describes_every_column(journal: Journal, warehouse: DuckDBWarehouse) -> None:
    keep_events(journal, 1)
    feeder(journal, warehouse).feed_all()
    with duckdb.connect(str(warehouse.path), read_only=True) as connection:
        comments = connection.execute(
            "SELECT column_name, comment FROM duckdb_columns() WHERE table_name = ?", [TABLE]
        ).fetchall()
    assert [name for name, _ in comments] == [column.name for column in EVENT_COLUMNS]
    assert all(comment for _, comment in comments)


def test_the_feeder_thread_feeds_on_its_interval(
    journal: Journal, warehouse: DuckDBWarehouse
) -> None:
    running = WarehouseFeeder(journal, warehouse, interval_s=0.02, batch_size=100)
    running.start()
    try:
        ids = keep_events(journal, 5)
        # Its own account of progress: reading the file meanwhile would hold it from the feeder.
        wait_until(
            lambda: warehouse.fed_through() >= journal.last_seq, 20, "the feeder to catch up"
        )
    finally:
        running.stop()
    assert [event_id for _, event_id in stored(warehouse)] == ids


def test_a_feed_stops_at_what_the_journal_held_when_it_began(
    journal: Journal, warehouse: DuckDBWarehouse
) -> None:
    """On a busy journal the end moves while a feed runs: chasing it kept the feeder thread
    opening the file again and again for good (found by `make bench`)."""
    before = keep_events(journal, 20)
    feeding_done = threading.Event()
    cap = 20_000
    meanwhile: list[str] = []

    def keep_committing() -> None:
        while not feeding_done.is_set() and len(meanwhile) < cap:
            meanwhile.extend(keep_events(journal, 1))

    committer = threading.Thread(target=keep_committing)
    committer.start()
    try:
        wait_until(lambda: len(meanwhile) >= 5, 20, "commits to run beside the feed")
        first_feed = feeder(journal, warehouse).feed_all()
    finally:
        feeding_done.set()
        committer.join()

    assert len(meanwhile) < cap  # the feed ended while the journal still grew
    assert len(before) + 5 <= first_feed < len(before) + len(meanwhile)
    the_rest = WarehouseFeeder(journal, warehouse, interval_s=3600, batch_size=cap).feed_all()
    assert first_feed + the_rest == len(before) + len(meanwhile)
