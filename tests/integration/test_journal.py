"""The journal on real SQLite files: durable before visible, group commit, one process per file,
and nothing answered is lost when the process is killed."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from trading_core import journal as journal_module
from trading_core.bus.memory import InMemoryBus
from trading_core.journal import (
    Journal,
    JournalInUse,
    JournalReader,
    Record,
    Statement,
    Transaction,
)
from trading_core.outbox import Outbox

from tests.support import wait_until

SCHEMA = ("CREATE TABLE IF NOT EXISTS items (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",)


def record(number: int, topic: str = "") -> Record:
    return Record(
        record_id=f"r-{number}",
        record_type="Thing",
        is_event=True,
        payload=f"payload-{number}".encode(),
        time_us=number,
        order_id=f"o-{number % 7}",
        topic=topic,
        ordering_key=f"o-{number % 7}" if topic else "",
    )


def keep(journal: Journal, number: int) -> None:
    transaction = Transaction()
    transaction.keep(record(number))
    transaction.execute("INSERT INTO items (name, value) VALUES (?, ?)", (f"n-{number}", number))
    journal.commit(transaction).wait()


def test_a_waited_ticket_is_on_disk_for_the_next_process(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "svc.journal", SCHEMA)
    for number in range(1, 4):
        keep(journal, number)
    journal.close()

    reopened = Journal(tmp_path / "svc.journal", SCHEMA)
    kept = reopened.records_after(0, limit=10)
    assert [k.record.record_id for k in kept] == ["r-1", "r-2", "r-3"]
    assert [k.seq for k in kept] == [1, 2, 3]
    assert reopened.query("SELECT count(*) FROM items") == [(3,)]
    reopened.close()


def test_actions_after_a_commit_run_once_it_is_durable_and_in_commit_order(
    tmp_path: Path,
) -> None:
    journal = Journal(tmp_path / "svc.journal", SCHEMA)
    seen: list[tuple[int, int]] = []  # (transaction, records durable when its action ran)
    tickets = []

    def note(number: int) -> Callable[[], None]:
        return lambda: seen.append((number, len(journal.records_after(0, limit=100))))

    for number in range(1, 6):
        transaction = Transaction()
        transaction.keep(record(number))
        transaction.then(note(number))
        tickets.append(journal.commit(transaction))
    for ticket in tickets:
        ticket.wait()
    journal.close()
    assert [n for n, _ in seen] == [1, 2, 3, 4, 5]
    assert all(durable >= n for n, durable in seen)


def test_concurrent_commits_share_commits_and_each_is_durable(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "svc.journal", SCHEMA)

    def commit_fifty(thread: int) -> None:
        for number in range(50):
            keep(journal, thread * 1000 + number)

    threads = [threading.Thread(target=commit_fifty, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    journal.close()
    reopened = Journal(tmp_path / "svc.journal", SCHEMA)
    assert reopened.query("SELECT count(*) FROM items") == [(400,)]
    assert len(reopened.records_after(0, limit=1000)) == 400
    reopened.close()


def test_a_second_process_cannot_open_a_journal_in_use(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "svc.journal", SCHEMA)
    try:
        with pytest.raises(JournalInUse, match=r"svc\.journal is in use by another process"):
            Journal(tmp_path / "svc.journal", SCHEMA)
    finally:
        journal.close()


_WRITER = """
import sys
from pathlib import Path
from trading_core.journal import Journal, Record, Transaction

journal = Journal(Path(sys.argv[1]), ())
number = 0
while True:
    number += 1
    transaction = Transaction()
    transaction.keep(Record(f"r-{number}", "Thing", True, b"x" * 200, number))
    journal.commit(transaction).wait()
    print(number, flush=True)  # answered: only after the commit is durable
"""


def test_every_answered_commit_survives_a_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "svc.journal"
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None
    answered = 0
    while answered < 300:
        line = writer.stdout.readline()
        assert line, "the writer stopped early"
        answered = int(line)
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    rest = writer.stdout.read().split()
    answered = max([answered, *map(int, rest)])

    journal = Journal(path, ())
    kept = journal.records_after(0, limit=1_000_000)
    journal.close()
    assert len(kept) >= answered  # nothing answered is lost
    assert [k.record.record_id for k in kept] == [f"r-{n}" for n in range(1, len(kept) + 1)]


def test_a_reader_in_another_process_sees_each_commit_in_order_while_the_writer_goes_on(
    tmp_path: Path,
) -> None:
    """What the warehouse feed process does: it reads a journal that a service is writing,
    without its lock, and never holds the writer up."""
    path = tmp_path / "svc.journal"
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout is not None
    try:
        assert writer.stdout.readline(), "the writer did not start"
        reader = JournalReader(path)
        seen = wait_until(lambda: reader.records_after(0, limit=100_000), 10, "records")
        answered = int(wait_until(writer.stdout.readline, 10, "the writer to go on"))
        while answered < len(seen) + 100:  # the writer commits on while the reader reads
            assert reader.last_seq >= len(seen)
            answered = int(writer.stdout.readline())
        kept = reader.records_after(0, limit=100_000)
    finally:
        writer.kill()
        writer.wait()
    assert len(kept) >= answered
    assert [k.seq for k in kept] == list(range(1, len(kept) + 1))
    assert [k.record.record_id for k in kept] == [f"r-{k.seq}" for k in kept]


def test_a_reader_of_a_journal_that_is_not_there_says_so_and_makes_no_file(
    tmp_path: Path,
) -> None:
    with pytest.raises(FileNotFoundError, match=r"no journal at .*svc\.journal"):
        JournalReader(tmp_path / "svc.journal")
    assert list(tmp_path.iterdir()) == []


def test_a_journal_that_cannot_write_stops_instead_of_serving_unsaved_state(
    tmp_path: Path,
) -> None:
    failures: list[BaseException] = []
    journal = Journal(tmp_path / "svc.journal", SCHEMA, on_failure=failures.append)
    keep(journal, 1)
    transaction = Transaction()
    transaction.execute("INSERT INTO missing_table VALUES (1)")
    answered = threading.Event()
    transaction.then(answered.set)
    ticket = journal.commit(transaction)
    with pytest.raises(Exception, match="missing_table"):
        ticket.wait()
    wait_until(lambda: failures, 5, "the failure to be reported")
    assert not answered.is_set()
    assert not journal.healthy()


def test_a_wait_that_begins_after_the_journal_failed_raises_at_once(tmp_path: Path) -> None:
    """The background writer failed first; a later waiter must not take the free commit lock
    and go round for ever over a queue nothing writes again."""
    failures: list[BaseException] = []
    journal = Journal(tmp_path / "svc.journal", SCHEMA, on_failure=failures.append)
    transaction = Transaction()
    transaction.execute("INSERT INTO missing_table VALUES (1)")
    ticket = journal.commit(transaction)  # the background writer commits it, and fails
    wait_until(lambda: failures, 5, "the failure to be reported")
    raised: list[BaseException] = []

    def waiter() -> None:
        try:
            ticket.wait()
        except RuntimeError as error:
            raised.append(error)

    thread = threading.Thread(target=waiter, daemon=True)
    thread.start()
    thread.join(5)
    assert not thread.is_alive(), "the wait went on after the journal failed"
    assert len(raised) == 1 and "missing_table" in str(raised[0])


def test_a_record_committed_after_the_bus_closed_is_published_on_the_next_start(
    tmp_path: Path,
) -> None:
    path = tmp_path / "svc.journal"
    journal = Journal(path, SCHEMA)
    bus = InMemoryBus()
    Outbox(journal, bus).start()
    bus.close()
    journal.commit(_published(record(1, topic="orders"))).wait()  # as a stop's last commit
    journal.close()

    reopened = Journal(path, SCHEMA)
    restarted = InMemoryBus()
    received: list[bytes] = []
    restarted.subscribe("orders", "orders.execution-router", lambda m: received.append(m.data))
    outbox = Outbox(reopened, restarted)
    outbox.start()
    wait_until(lambda: received == [b"payload-1"], 10, "the kept record to be published")
    outbox.stop()
    restarted.close()
    reopened.close()


def _published(kept: Record) -> Transaction:
    transaction = Transaction()
    transaction.keep(kept)
    return transaction


_BATCHING_SCHEMA = (
    "CREATE TABLE a (k TEXT PRIMARY KEY, v INTEGER NOT NULL, n INTEGER NOT NULL DEFAULT 1)",
    "CREATE TABLE b (k TEXT PRIMARY KEY, v INTEGER NOT NULL)",
)
_BATCHING_STATEMENTS = (
    "INSERT INTO a (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v, n = n + 1",
    "INSERT OR REPLACE INTO b (k, v) VALUES (?, ?)",
    "INSERT OR IGNORE INTO a (k, v) VALUES (?, ?)",
    "UPDATE a SET v = v * 2 WHERE k = ? AND v > ?",
    "DELETE FROM b WHERE k = ? AND v < ?",
    "INSERT INTO progress (name, value) VALUES (?, ?) "
    "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
)


@pytest.mark.parametrize("seed", range(20))
def test_a_group_commit_in_few_statements_has_the_effect_of_each_in_turn(
    tmp_path: Path, seed: int
) -> None:
    """Statements are grouped by table and runs of one INSERT become multi-row INSERTs (each
    SQLite call waits for the GIL behind busy threads): the rows must end as if each ran alone,
    including upserts of one key twice in a commit."""
    chooser = random.Random(seed)
    statements: list[Statement] = [
        (chooser.choice(_BATCHING_STATEMENTS), (f"k{chooser.randrange(6)}", chooser.randrange(9)))
        for _ in range(chooser.randrange(1, 300))
    ]
    batched = list(journal_module.batched(statements))
    assert len(batched) <= len(statements)

    def final_rows(plan: Sequence[Statement], name: str) -> list[object]:
        connection = sqlite3.connect(tmp_path / f"{name}.db", isolation_level=None)
        for statement in (
            *_BATCHING_SCHEMA,
            "CREATE TABLE progress (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
        ):
            connection.execute(statement)
        connection.execute("BEGIN")
        for sql, parameters in plan:
            connection.execute(sql, parameters)
        connection.execute("COMMIT")
        rows: list[object] = [
            connection.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
            for table in ("a", "b", "progress")
        ]
        connection.close()
        return rows

    assert final_rows(batched, "batched") == final_rows(statements, "one_by_one")


def test_a_commit_of_many_transactions_keeps_every_record_and_row(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "many.journal", SCHEMA)
    try:
        tickets = []
        for number in range(1, 1_201):  # more rows than one multi-row INSERT takes
            transaction = Transaction()
            transaction.keep(record(number))
            transaction.execute(
                "INSERT INTO items (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (f"n-{number % 400}", number),
            )
            tickets.append(journal.commit(transaction))
        tickets[-1].wait()
        assert [k.record.record_id for k in journal.records_after(0, limit=2_000)] == [
            f"r-{number}" for number in range(1, 1_201)
        ]
        assert journal.query("SELECT count(*), min(value), max(value) FROM items") == [
            (400, 801, 1200)
        ]
    finally:
        journal.close()
