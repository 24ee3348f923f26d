"""The warehouse contract: every adapter passes the same suite, on real storage, fed from a real
journal: DuckDB files, and BigQuery as bqemulator serves it (tests/bqemulator_support.py). Each
event stored once, raw and typed, in journal order; resuming where the store says it stopped;
additive migrations; a feeder killed mid-feed loses and duplicates nothing. What a warehouse
stored is read as an analyst reads it (the DuckDB file read-only; the BigQuery dataset through
google-cloud-bigquery), never through the adapter. The DuckDB file's own cases (an analyst's
session holding it, a file of the previous version) run on DuckDB only."""

from __future__ import annotations

import gzip
import importlib
import json
import signal
import subprocess
import sys
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
from trading.v1 import events_pb2
from trading_core.config import BigQueryDatabase, DuckDBDatabase
from trading_core.events import new_id, timestamp
from trading_core.journal import Journal, Record, Transaction
from trading_core.service import JournaledService
from trading_core.store import DuckDBWarehouse, Warehouse, WarehouseFeeder, create_warehouse
from trading_core.store.schema import EVENT_COLUMNS, TABLES, SchemaMismatch

from tests.bqemulator_support import BQEmulator, bqemulator  # noqa: F401 (the fixture)
from tests.support import wait_until
from tests.warehouse_support import expected_rows, keep, one_order

# As Any: its partial type information would hide google.cloud.pubsub_v1 from mypy.
bigquery: Any = importlib.import_module("google.cloud.bigquery")

SERVICE = "order-management"
TABLE = "order_management_events"
FIXTURES = Path(__file__).parents[1] / "fixtures"
Row = tuple[Any, ...]


class Store(ABC):
    """One warehouse's storage in a test: warehouse objects made on it as the platform makes
    them (`create_warehouse` of its `database` config), and what it holds, read and changed as
    an analyst or an earlier version would, not through the adapter. SQL names the tables
    bare."""

    database: DuckDBDatabase | BigQueryDatabase
    atomic: bool  # a batch's rows appear in every table at once (one transaction)
    float_type: str  # a float column's type, as the store reports it

    def __init__(self) -> None:
        self._opened: list[Warehouse] = []

    def open(self) -> Warehouse:
        """A new warehouse object on this storage (as a restarted service makes it)."""
        warehouse = create_warehouse(self.database, SERVICE)
        self._opened.append(warehouse)
        return warehouse

    def close(self) -> None:
        for warehouse in self._opened:
            warehouse.close()

    @abstractmethod
    def rows(self, sql: str, *parameters: str | int) -> list[Row]:
        """The answer to a query (`?` marks each parameter)."""

    @abstractmethod
    def drop_column(self, table: str, column: str) -> None:
        """Drops a column (the table as an earlier version made it), keeping the rows."""

    @abstractmethod
    def make_float(self, table: str, column: str) -> None:
        """Gives a column a float type (an earlier version's, say)."""

    @abstractmethod
    def descriptions(self, table: str) -> tuple[str, list[tuple[str, str]]]:
        """The table's description, and each column's name and description, in order."""


class DuckDBStore(Store):
    atomic = True
    float_type = "DOUBLE"

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.database = DuckDBDatabase(backend="duckdb", path=folder)
        self.path = folder / f"{SERVICE}.duckdb"

    def rows(self, sql: str, *parameters: str | int) -> list[Row]:
        with duckdb.connect(str(self.path), read_only=True) as connection:
            return connection.execute(sql, list(parameters)).fetchall()

    def drop_column(self, table: str, column: str) -> None:
        self._execute(f"ALTER TABLE {table} DROP COLUMN {column}")

    def make_float(self, table: str, column: str) -> None:
        self._execute(f"ALTER TABLE {table} ALTER {column} TYPE DOUBLE")

    def _execute(self, sql: str) -> None:
        with duckdb.connect(str(self.path)) as connection:
            connection.execute(sql)

    def descriptions(self, table: str) -> tuple[str, list[tuple[str, str]]]:
        ((description,),) = self.rows(
            "SELECT comment FROM duckdb_tables() WHERE table_name = ?", table
        )
        columns = self.rows(
            "SELECT column_name, comment FROM duckdb_columns() WHERE table_name = ?"
            " ORDER BY column_index",
            table,
        )
        return description, [(name, comment) for name, comment in columns]


class BigQueryStore(Store):
    atomic = False  # no transaction across tables: each table's rows appear once, in turn
    float_type = "FLOAT64"

    def __init__(self, emulator: BQEmulator, state_path: Path) -> None:
        super().__init__()
        self.database = emulator.database(state_path)
        self.dataset = f"{self.database.project}.{self.database.dataset}"
        self._client = emulator.client()

    def rows(self, sql: str, *parameters: str | int) -> list[Row]:
        job = bigquery.QueryJobConfig(
            default_dataset=self.dataset,
            query_parameters=[
                bigquery.ScalarQueryParameter(None, _BIGQUERY_TYPES[type(p)], p) for p in parameters
            ],
        )
        return [tuple(row.values()) for row in self._client.query(sql, job_config=job).result()]

    def drop_column(self, table: str, column: str) -> None:
        """By DDL. bqemulator drops the column from the table's rows but not from its catalog
        (tables.get still lists it, and an append then fails with "Binder Error: table ... has
        25 columns but 26 values were supplied"): the schema is written back without it,
        which BigQuery, whose tables.get no longer lists it, takes as no change."""
        self.rows(f"ALTER TABLE {table} DROP COLUMN {column}")
        found = self._client.get_table(f"{self.dataset}.{table}")
        found.schema = [f for f in found.schema if f.name != column]
        self._client.update_table(found, ["schema"])

    def make_float(self, table: str, column: str) -> None:
        """The table made anew with the column FLOAT64: BigQuery changes no column's type to
        a narrower one in place."""
        found = self._client.get_table(f"{self.dataset}.{table}")
        made = bigquery.Table(
            found.reference,
            schema=[
                bigquery.SchemaField(f.name, "FLOAT64") if f.name == column else f
                for f in found.schema
            ],
        )
        self._client.delete_table(found)
        self._client.create_table(made)

    def descriptions(self, table: str) -> tuple[str, list[tuple[str, str]]]:
        found = self._client.get_table(f"{self.dataset}.{table}")
        return found.description, [(f.name, f.description) for f in found.schema]

    def close(self) -> None:
        super().close()
        self._client.close()


_BIGQUERY_TYPES = {str: "STRING", int: "INT64"}


@pytest.fixture(params=["duckdb", "bigquery"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Empty storage of the adapter; bqemulator is started by the first test that needs it."""
    made: Store
    if request.param == "bigquery":
        made = BigQueryStore(request.getfixturevalue("bqemulator"), tmp_path)
    else:
        made = DuckDBStore(tmp_path)
    yield made
    made.close()


@pytest.fixture
def warehouse(store: Store) -> Warehouse:
    return store.open()


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    opened = Journal(tmp_path / "order-management.journal")
    yield opened
    opened.close()


def stored(store: Store) -> list[tuple[int, str]]:
    rows = store.rows(f"SELECT store_sequence, event_id FROM {TABLE} ORDER BY store_sequence")
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


def feeder(journal: Journal, warehouse: Warehouse) -> WarehouseFeeder:
    return WarehouseFeeder(journal, warehouse, interval_s=3600, batch_size=7)


def test_feeding_stores_every_event_once_in_journal_order(
    journal: Journal, store: Store, warehouse: Warehouse
) -> None:
    ids = keep_events(journal, 20, command_every=5)

    assert feeder(journal, warehouse).feed_all() == 20
    assert feeder(journal, warehouse).feed_all() == 0  # a second feeder finds nothing new

    rows = stored(store)
    assert [event_id for _, event_id in rows] == ids  # commands are not events: not stored
    assert [seq for seq, _ in rows] == sorted(seq for seq, _ in rows)


def test_a_new_warehouse_object_resumes_where_the_store_says_it_stopped(
    journal: Journal, store: Store, warehouse: Warehouse
) -> None:
    keep_events(journal, 5)
    feeder(journal, warehouse).feed_all()
    later = keep_events(journal, 3)

    assert feeder(journal, store.open()).feed_all() == 3
    assert [event_id for _, event_id in stored(store)][-3:] == later


def test_an_analyst_session_holding_the_file_delays_the_feed_and_loses_nothing(
    journal: Journal, tmp_path: Path
) -> None:
    warehouse = DuckDBWarehouse(tmp_path / "order-management.duckdb", SERVICE)
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
    analyst = duckdb.connect(str(warehouse.path), read_only=True)
    with analyst:
        rows = analyst.execute(f"SELECT event_id FROM {TABLE} ORDER BY store_sequence").fetchall()
    assert [str(event_id) for (event_id,) in rows][-4:] == ids


_MAKE_FILES = """
import sys
from pathlib import Path
from trading_core.store import DuckDBWarehouse
for number in range(1000):
    path = Path(sys.argv[1]) / f"{number}.duckdb"
    print(path, flush=True)  # it begins making this file
    DuckDBWarehouse(path, "order-management").fed_through()
"""


def test_a_file_killed_while_it_was_made_is_not_there_or_whole_and_made_again(
    tmp_path: Path,
) -> None:
    """An analyst never finds a file DuckDB cannot read (or one without its tables): a new
    file is made under another name, then renamed into place."""
    child = subprocess.Popen(
        [sys.executable, "-c", _MAKE_FILES, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    for _ in range(4):
        being_made = Path(child.stdout.readline().strip())
    # Killed as soon as the file appears under its own name: made in place, that is while it
    # is being made.
    wait_until(being_made.exists, 30, "the file to appear")
    kill(child)
    made = sorted(tmp_path.glob("*.duckdb"), key=lambda path: int(path.stem))
    assert len(made) >= 4
    for path in made:
        with duckdb.connect(str(path), read_only=True) as analyst:
            tables = {name for (name,) in analyst.execute("SHOW TABLES").fetchall()}
        assert tables == {TABLE, *(table.name for table in TABLES)}, path
    last = tmp_path / f"{len(made)}.duckdb"  # being made when killed, or not begun
    assert not last.exists()
    assert DuckDBWarehouse(last, SERVICE).fed_through() == 0  # made again, from the start
    assert [path.name for path in tmp_path.iterdir() if "making" in path.name] == []


def test_every_table_and_column_is_described(
    journal: Journal, store: Store, warehouse: Warehouse
) -> None:
    keep_events(journal, 1)
    feeder(journal, warehouse).feed_all()
    for name, columns in ((TABLE, EVENT_COLUMNS), *((t.name, t.columns) for t in TABLES)):
        description, described = store.descriptions(name)
        assert [column for column, _ in described] == [c.name for c in columns], name
        assert all(text for _, text in described), name
        assert description, name


def test_the_feeder_thread_feeds_on_its_interval(
    journal: Journal, store: Store, warehouse: Warehouse
) -> None:
    running = WarehouseFeeder(journal, warehouse, interval_s=0.02, batch_size=100)
    running.start()
    try:
        ids = keep_events(journal, 5)
        # Its own account of progress: reading a DuckDB file meanwhile would hold it from the
        # feeder.
        wait_until(
            lambda: warehouse.fed_through() >= journal.last_seq, 20, "the feeder to catch up"
        )
    finally:
        running.stop()
    assert [event_id for _, event_id in stored(store)] == ids


def test_a_feed_stops_at_what_the_journal_held_when_it_began(
    journal: Journal, warehouse: Warehouse
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


def counts(store: Store) -> dict[str, int]:
    """Rows per typed table, and the raw table's, read as an analyst reads them."""
    found = {table.name: _count(store, table.name) for table in TABLES}
    found["raw"] = _count(store, TABLE)
    return found


def _count(store: Store, table: str) -> int:
    return scalar(store, f"SELECT count(*) FROM {table}")


def scalar(store: Store, sql: str) -> int:
    ((value,),) = store.rows(sql)
    return int(value)


def without_empty(found: dict[str, int]) -> dict[str, int]:
    return {name: count for name, count in found.items() if count}


def test_a_feed_stores_each_event_raw_and_typed_with_its_id_and_journal_position(
    journal: Journal, store: Store, warehouse: Warehouse
) -> None:
    events = [event for number in range(3) for event in one_order(number)]
    keep(journal, events)

    assert feeder(journal, warehouse).feed_all() == len(events)

    assert without_empty(counts(store)) == {
        "raw": len(events),
        **without_empty(dict(expected_rows(events))),
    }
    (fill,) = store.rows(
        "SELECT f.event_id, f.service, f.journal_position, f.side, f.quantity, f.price,"
        " f.notional, f.fee, r.store_sequence FROM fills f"
        f" JOIN {TABLE} r ON r.event_id = f.event_id ORDER BY f.journal_position LIMIT 1"
    )
    statuses = store.rows(
        "SELECT status FROM orders WHERE order_id = ? ORDER BY journal_position",
        events[0].order_id,
    )
    (arrival,) = store.rows(
        "SELECT arrival_mid, arrival_quote_time FROM executions WHERE sequence = 1 LIMIT 1"
    )
    event_id, service, position, side, quantity, price, notional, fee, sequence = fill
    assert (service, side, position) == (SERVICE, "BUY", sequence)
    assert event_id == events[2].event_id  # the order's FILLED report
    assert (quantity, price, fee) == (Decimal("0.015"), Decimal("64121.7"), Decimal("0.961825"))
    assert notional == Decimal("961.8255")  # exact: 0.015 x 64121.7
    assert [status for (status,) in statuses] == ["SUBMITTED", "ACCEPTED", "FILLED"]
    assert arrival == (Decimal("64121.2"), datetime(2026, 1, 5, 14, 30, tzinfo=UTC))


def test_events_no_table_takes_or_this_version_does_not_know_are_kept_raw(
    journal: Journal, store: Store, warehouse: Warehouse
) -> None:
    newer = events_pb2.Event(event_id=new_id()).SerializeToString() + b"\xba\x3e\x00"  # field 999
    transaction = Transaction()
    transaction.keep(Record(new_id(), "SomethingNew", True, newer, 1_700_000_000_000_000))
    transaction.keep(Record(new_id(), "Garbled", True, b"\xff\xff\xff", 1_700_000_000_000_000))
    journal.commit(transaction).wait()
    keep(journal, one_order(0))

    assert feeder(journal, warehouse).feed_all() == 2 + len(one_order(0))

    kinds = store.rows(f"SELECT event_type FROM {TABLE} ORDER BY store_sequence LIMIT 2")
    assert kinds == [("SomethingNew",), ("Garbled",)]
    assert counts(store)["fills"] == 1  # and the events after them were typed


def test_a_file_of_the_previous_version_gains_the_typed_tables_filled_from_its_events(
    journal: Journal, tmp_path: Path
) -> None:
    """order-management-v1.duckdb.gz was made by the feeder of 84aa334 (one events table):
    3 orders' events (submitted, accepted, filled, position, quote) and a denial."""
    store = DuckDBStore(tmp_path)
    store.path.write_bytes(
        gzip.decompress((FIXTURES / "order-management-v1.duckdb.gz").read_bytes())
    )

    migrated = store.open()
    assert migrated.fed_through() == 16

    assert without_empty(counts(store)) == {
        "raw": 16, "orders": 10, "executions": 6, "fills": 3, "positions": 3, "quotes": 3,
        "denials": 1,
    }  # fmt: skip
    assert store.rows("SELECT reason FROM denials") == [("QUOTE_STALE",)]
    # The raw table gained the envelope's later field.
    assert store.rows(f"SELECT DISTINCT actor FROM {TABLE}") == [(None,)]
    keep(journal, [event for number in range(4) for event in one_order(number)])  # 20 events
    assert feeder(journal, migrated).feed_all() == 4  # positions 17..20: after the file's 16
    migrated.close()


def test_a_column_missing_from_a_table_is_added_and_old_rows_read_null(
    journal: Journal, store: Store, warehouse: Warehouse
) -> None:
    keep(journal, one_order(0))
    feeder(journal, warehouse).feed_all()
    warehouse.close()
    store.drop_column("executions", "arrival_mid")  # as an earlier version made it
    keep(journal, one_order(1))

    assert feeder(journal, store.open()).feed_all() == 5

    mids = store.rows(
        "SELECT arrival_mid FROM executions WHERE sequence = 1 ORDER BY journal_position"
    )
    assert mids == [(None,), (Decimal("64121.2"),)]


def test_a_column_of_another_type_is_refused_and_nothing_is_stored(
    journal: Journal, store: Store, warehouse: Warehouse
) -> None:
    keep(journal, one_order(0))
    feeder(journal, warehouse).feed_all()
    warehouse.close()
    store.make_float("fills", "price")
    keep(journal, one_order(1))
    reopened = store.open()

    with pytest.raises(SchemaMismatch, match=f"fills: price is {store.float_type}, expected"):
        reopened.fed_through()
    assert feeder(journal, reopened).feed_all() == 0  # logged, not raised: the journal keeps them
    assert counts(store)["raw"] == 5


_FEED_IN_A_CHILD = """
import sys
from pathlib import Path
from pydantic import TypeAdapter
from trading_core.config import BigQueryDatabase, DuckDBDatabase
from trading_core.journal import Journal
from trading_core.store import create_warehouse
journal = Journal(Path(sys.argv[1]))
database = TypeAdapter(DuckDBDatabase | BigQueryDatabase).validate_json(sys.argv[2])
warehouse = create_warehouse(database, "order-management")
while (after := warehouse.fed_through()) < journal.last_seq:
    print(after, flush=True)  # a feed begins: the test kills it somewhere in it
    try:
        warehouse.feed(journal.records_after(after, limit=int(sys.argv[3])))
    except Exception as error:  # as the platform's feeder: tried again
        print(error, file=sys.stderr, flush=True)
"""


def feeding_child(journal: Journal, store: Store, batch_size: int) -> subprocess.Popen[str]:
    """A process feeding the store from the journal (closed here: one process at a time),
    `batch_size` events per feed, saying when each feed begins."""
    journal.close()
    database = store.database.model_dump_json()
    return subprocess.Popen(
        [sys.executable, "-c", _FEED_IN_A_CHILD, str(journal.path), database, str(batch_size)],
        stdout=subprocess.PIPE,
        text=True,
    )


def kill(child: subprocess.Popen[str]) -> None:
    child.kill()  # SIGKILL
    child.wait()
    if child.stdout is not None:
        child.stdout.close()


def duplicates(store: Store) -> dict[str, int]:
    """Per table, the rows beyond one per journal position (0: none stored twice)."""
    positions = {"raw": (TABLE, "store_sequence")}
    positions.update({table.name: (table.name, "journal_position") for table in TABLES})
    return {
        name: scalar(store, f"SELECT count(*) - count(DISTINCT {column}) FROM {table}")
        for name, (table, column) in positions.items()
    }


def feed_the_rest(journal: Journal, store: Store) -> None:
    """Feeds what the journal holds (after the child), with a new warehouse object."""
    resumed = Journal(journal.path)
    try:
        WarehouseFeeder(resumed, store.open(), interval_s=3600, batch_size=500).feed_all()
    finally:
        resumed.close()


def assert_stored_once(store: Store, events: list[events_pb2.Event]) -> None:
    found = counts(store)
    assert duplicates(store) == dict.fromkeys(found, 0)
    assert without_empty(found) == {
        "raw": len(events),
        **without_empty(dict(expected_rows(events))),
    }


def test_a_feeder_killed_mid_feed_loses_and_duplicates_nothing(
    journal: Journal, store: Store
) -> None:
    """Killed in whatever it is doing: the store keeps no event twice, and holds every event
    through what it says it was fed (one that commits a batch in one transaction, exactly
    those; BigQuery perhaps part of the batch in flight, which the next feed completes)."""
    events = [event for number in range(60) for event in one_order(number)]
    keep(journal, events)
    batch = 7
    for kill_after in (3, 15):  # feeds begun (of 43); then killed in whatever it is doing
        child = feeding_child(journal, store, batch)
        assert child.stdout is not None
        for _ in range(kill_after):
            assert child.stdout.readline(), "the child stopped feeding"
        kill(child)

        through = store.open().fed_through()
        assert through > 0
        found = counts(store)
        assert duplicates(store) == dict.fromkeys(found, 0)
        fed = {"raw": through, **expected_rows(events[:through])}
        if store.atomic:
            assert without_empty(found) == without_empty(fed)
        else:
            ahead = through + batch
            in_flight = {"raw": ahead, **expected_rows(events[:ahead])}
            assert all(fed.get(t, 0) <= n <= in_flight.get(t, 0) for t, n in found.items())
    feed_the_rest(journal, store)
    assert_stored_once(store, events)


@pytest.mark.parametrize("store", ["bigquery"], indirect=True)
def test_a_bigquery_batch_killed_between_its_appends_is_completed_at_the_same_offsets(
    journal: Journal, store: Store, tmp_path: Path
) -> None:
    """What a kill between feeds does not reach: the batch's intent saved and some of its
    appends landed (the raw table's first), others not. The next feed appends the batch
    again at the same offsets: BigQuery refuses what landed (ALREADY_EXISTS), the rest lands.
    The child is frozen (SIGSTOP) to look at its progress file and the dataset, and killed
    there; an append it had sent may still land after, as it would in the cloud."""
    progress = tmp_path / f"{SERVICE}.bigquery.json"  # store/bigquery.py's file
    events = [event for number in range(60) for event in one_order(number)]
    keep(journal, events)
    child = feeding_child(journal, store, 50)

    def intent() -> dict[str, Any] | None:
        saved: dict[str, Any] = json.loads(progress.read_text()) if progress.exists() else {}
        return saved if saved.get("pending_through") else None

    def frozen_between_appends() -> dict[str, Any] | None:
        """The progress file while an intent stands, once the child is frozen there with
        the raw table's rows of its batch landed (the file then holds still)."""
        if not intent():
            return None
        child.send_signal(signal.SIGSTOP)
        if (saved := intent()) and _count(store, TABLE) > saved["fed_through"]:
            return saved
        child.send_signal(signal.SIGCONT)
        return None

    try:
        saved = wait_until(frozen_between_appends, 60, "the child between a batch's appends")
    finally:
        kill(child)
    assert counts(store)["raw"] > saved["fed_through"]  # a part of the batch landed

    feed_the_rest(journal, store)
    assert_stored_once(store, events)


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
