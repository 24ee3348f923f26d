"""The warehouse contract: every adapter passes the same suite, on real storage, fed from a real
journal: each event stored once, raw and typed, in one transaction; additive migrations of
files made by earlier versions; a feeder killed mid-feed loses and duplicates nothing.
(BigQuery joins with its adapter.)"""

from __future__ import annotations

import gzip
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from trading.v1 import events_pb2
from trading_core.events import new_id, timestamp
from trading_core.journal import Journal, Record, Transaction
from trading_core.service import JournaledService
from trading_core.store import DuckDBWarehouse, WarehouseFeeder
from trading_core.store.schema import EVENT_COLUMNS, TABLES, SchemaMismatch

from tests.support import wait_until
from tests.warehouse_support import expected_rows, keep, one_order

SERVICE = "order-management"
TABLE = "order_management_events"
FIXTURES = Path(__file__).parents[1] / "fixtures"


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    opened = Journal(tmp_path / "order-management.journal")
    yield opened
    opened.close()


@pytest.fixture(params=["duckdb"])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> DuckDBWarehouse:
    assert request.param == "duckdb"
    return DuckDBWarehouse(tmp_path / "order-management.duckdb", SERVICE)


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

    reopened = DuckDBWarehouse(warehouse.path, SERVICE)
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


def test_every_table_and_column_is_described(journal: Journal, warehouse: DuckDBWarehouse) -> None:
    keep_events(journal, 1)
    feeder(journal, warehouse).feed_all()
    with duckdb.connect(str(warehouse.path), read_only=True) as connection:
        for name, columns in ((TABLE, EVENT_COLUMNS), *((t.name, t.columns) for t in TABLES)):
            comments = connection.execute(
                "SELECT column_name, comment FROM duckdb_columns() WHERE table_name = ?", [name]
            ).fetchall()
            assert [column for column, _ in comments] == [c.name for c in columns], name
            assert all(comment for _, comment in comments), name
            ((table_comment,),) = connection.execute(
                "SELECT comment FROM duckdb_tables() WHERE table_name = ?", [name]
            ).fetchall()
            assert table_comment, name


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


# Typed tables ----------------------------------------------------------------------------------


def counts(path: Path) -> dict[str, int]:
    """Rows per typed table, and the raw table's, read as an analyst reads them."""
    with duckdb.connect(str(path), read_only=True) as connection:
        found = {
            table.name: int(connection.execute(f"SELECT count(*) FROM {table.name}").fetchone()[0])  # type: ignore[index]
            for table in TABLES
        }
        found["raw"] = int(connection.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0])  # type: ignore[index]
    return found


def without_empty(found: dict[str, int]) -> dict[str, int]:
    return {name: count for name, count in found.items() if count}


def test_a_feed_stores_each_event_raw_and_typed_with_its_id_and_journal_position(
    journal: Journal, warehouse: DuckDBWarehouse
) -> None:
    events = [event for number in range(3) for event in one_order(number)]
    keep(journal, events)

    assert feeder(journal, warehouse).feed_all() == len(events)

    assert without_empty(counts(warehouse.path)) == {
        "raw": len(events),
        **without_empty(dict(expected_rows(events))),
    }
    with duckdb.connect(str(warehouse.path), read_only=True) as connection:
        fill = connection.execute(
            "SELECT f.event_id, f.service, f.journal_position, f.side, f.quantity, f.price,"
            " f.notional, f.fee, r.store_sequence FROM fills f"
            f" JOIN {TABLE} r ON r.event_id = f.event_id ORDER BY f.journal_position LIMIT 1"
        ).fetchone()
        statuses = connection.execute(
            "SELECT status FROM orders WHERE order_id = ? ORDER BY journal_position",
            [events[0].order_id],
        ).fetchall()
        arrival = connection.execute(
            "SELECT arrival_mid, arrival_quote_time FROM executions WHERE sequence = 1 LIMIT 1"
        ).fetchone()
    assert fill is not None
    event_id, service, position, side, quantity, price, notional, fee, sequence = fill
    assert (service, side, position) == (SERVICE, "BUY", sequence)
    assert event_id == events[2].event_id  # the order's FILLED report
    assert (quantity, price, fee) == (Decimal("0.015"), Decimal("64121.7"), Decimal("0.961825"))
    assert notional == Decimal("961.8255")  # exact: 0.015 x 64121.7
    assert [status for (status,) in statuses] == ["SUBMITTED", "ACCEPTED", "FILLED"]
    assert arrival == (Decimal("64121.2"), datetime(2026, 1, 5, 14, 30, tzinfo=UTC))


def test_events_no_table_takes_or_this_version_does_not_know_are_kept_raw(
    journal: Journal, warehouse: DuckDBWarehouse
) -> None:
    newer = events_pb2.Event(event_id=new_id()).SerializeToString() + b"\xba\x3e\x00"  # field 999
    transaction = Transaction()
    transaction.keep(Record(new_id(), "SomethingNew", True, newer, 1_700_000_000_000_000))
    transaction.keep(Record(new_id(), "Garbled", True, b"\xff\xff\xff", 1_700_000_000_000_000))
    journal.commit(transaction).wait()
    keep(journal, one_order(0))

    assert feeder(journal, warehouse).feed_all() == 2 + len(one_order(0))

    with duckdb.connect(str(warehouse.path), read_only=True) as connection:
        kinds = connection.execute(
            f"SELECT event_type FROM {TABLE} ORDER BY store_sequence LIMIT 2"
        ).fetchall()
    assert kinds == [("SomethingNew",), ("Garbled",)]
    assert counts(warehouse.path)["fills"] == 1  # and the events after them were typed


def test_a_file_of_the_previous_version_gains_the_typed_tables_filled_from_its_events(
    journal: Journal, tmp_path: Path
) -> None:
    """order-management-v1.duckdb.gz was made by the feeder of 84aa334 (one events table):
    3 orders' events (submitted, accepted, filled, position, quote) and a denial."""
    path = tmp_path / "order-management.duckdb"
    path.write_bytes(gzip.decompress((FIXTURES / "order-management-v1.duckdb.gz").read_bytes()))

    migrated = DuckDBWarehouse(path, SERVICE)
    assert migrated.fed_through() == 16

    assert without_empty(counts(path)) == {
        "raw": 16, "orders": 10, "executions": 6, "fills": 3, "positions": 3, "quotes": 3,
        "denials": 1,
    }  # fmt: skip
    with duckdb.connect(str(path), read_only=True) as connection:
        (reason,) = connection.execute("SELECT reason FROM denials").fetchone()  # type: ignore[misc]
        actors = connection.execute(f"SELECT DISTINCT actor FROM {TABLE}").fetchall()
    assert reason == "QUOTE_STALE"
    assert actors == [(None,)]  # the raw table gained the envelope's later field
    keep(journal, [event for number in range(4) for event in one_order(number)])  # 20 events
    assert feeder(journal, migrated).feed_all() == 4  # positions 17..20: after the file's 16


def test_a_column_missing_from_a_table_is_added_and_old_rows_read_null(
    journal: Journal, warehouse: DuckDBWarehouse
) -> None:
    keep(journal, one_order(0))
    feeder(journal, warehouse).feed_all()
    with duckdb.connect(str(warehouse.path)) as connection:  # as an earlier version made it
        connection.execute("ALTER TABLE executions DROP COLUMN arrival_mid")
    keep(journal, one_order(1))

    assert feeder(journal, DuckDBWarehouse(warehouse.path, SERVICE)).feed_all() == 5

    with duckdb.connect(str(warehouse.path), read_only=True) as connection:
        mids = connection.execute(
            "SELECT arrival_mid FROM executions WHERE sequence = 1 ORDER BY journal_position"
        ).fetchall()
    assert mids == [(None,), (Decimal("64121.2"),)]


def test_a_column_of_another_type_is_refused_and_nothing_is_stored(
    journal: Journal, warehouse: DuckDBWarehouse
) -> None:
    keep(journal, one_order(0))
    feeder(journal, warehouse).feed_all()
    with duckdb.connect(str(warehouse.path)) as connection:
        connection.execute("ALTER TABLE fills ALTER price TYPE DOUBLE")
    keep(journal, one_order(1))
    reopened = DuckDBWarehouse(warehouse.path, SERVICE)

    with pytest.raises(SchemaMismatch, match="fills: price is DOUBLE, expected DECIMAL"):
        reopened.fed_through()
    assert feeder(journal, reopened).feed_all() == 0  # logged, not raised: the journal keeps them
    assert counts(warehouse.path)["raw"] == 5


_FEED_IN_A_CHILD = """
import sys
from pathlib import Path
from trading_core.journal import Journal
from trading_core.store import DuckDBWarehouse
journal = Journal(Path(sys.argv[1]))
warehouse = DuckDBWarehouse(Path(sys.argv[2]), "order-management")
while (after := warehouse.fed_through()) < journal.last_seq:
    warehouse.feed(journal.records_after(after, limit=7))
    print(after, flush=True)
"""


def test_a_feeder_killed_mid_feed_loses_and_duplicates_nothing(
    journal: Journal, warehouse: DuckDBWarehouse, tmp_path: Path
) -> None:
    events = [event for number in range(60) for event in one_order(number)]
    keep(journal, events)
    journal.close()  # the child takes it (one process at a time)
    for kill_after in (3, 15):  # feeds seen (of 43); then killed in whatever it is doing
        child = subprocess.Popen(
            [sys.executable, "-c", _FEED_IN_A_CHILD, str(journal.path), str(warehouse.path)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        for _ in range(kill_after):
            assert child.stdout.readline(), "the child stopped feeding"
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()

        reopened = DuckDBWarehouse(warehouse.path, SERVICE)
        through = reopened.fed_through()
        reopened.close()
        stored = counts(warehouse.path)
        assert stored["raw"] == through > 0
        assert without_empty(stored) == {
            "raw": through,
            **without_empty(dict(expected_rows(events[:through]))),
        }
    with duckdb.connect(str(warehouse.path), read_only=True) as connection:
        ((rows, distinct),) = connection.execute(
            "SELECT count(*), count(DISTINCT journal_position) FROM orders"
        ).fetchall()
    assert rows == distinct
    resumed = Journal(journal.path)
    try:
        WarehouseFeeder(resumed, DuckDBWarehouse(warehouse.path, SERVICE), interval_s=3600,
                        batch_size=500).feed_all()  # fmt: skip
    finally:
        resumed.close()
    assert without_empty(counts(warehouse.path)) == {
        "raw": len(events),
        **without_empty(dict(expected_rows(events))),
    }


def test_the_readmes_example_queries_run_on_the_warehouse_files(
    journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("## For analysts: the warehouse", 1)[1]
    sql = section.split("```sql\n", 1)[1].split("```", 1)[0]
    events = one_order(0)  # all of them in the router's file, for the example
    keep(journal, events)
    monkeypatch.chdir(tmp_path)
    for service in ("order-management", "execution-router", "position-management", "market-data"):
        made = DuckDBWarehouse(Path("data") / f"{service}.duckdb", service)
        if service == "execution-router":
            feeder(journal, made).feed_all()
        made.fed_through()  # creates the tables
        made.close()

    with duckdb.connect() as analyst:
        statements = sql.replace("<order id>", events[0].order_id).split(";")
        results = [analyst.execute(s).fetchall() for s in statements if s.strip()]

    *_, life, slippage = results
    assert [row[2] for row in life] == ["SUBMITTED", "ACCEPTED", "FILLED"]
    ((venue, _, price, arrival_mid, bps),) = slippage
    assert (venue, price, arrival_mid) == ("simulation", Decimal("64121.7"), Decimal("64121.2"))
    assert bps == pytest.approx(0.5 / 64121.2 * 10_000)
