"""The journal: a service's durable log and state tables, in one SQLite file of its own.

Durable before visible. A service changes its state in memory under its lock and describes the
change as a `Transaction`: records to keep (events and commands, some to publish), rows of its
state tables, and what to do once they are durable (reply, publish, acknowledge). `commit`
queues the transaction in order and returns a `Ticket`; nothing of it is visible until the
ticket is done.

Group commit. Transactions queued while a commit runs share the next one: one SQLite
transaction, one fsync (WAL with synchronous=FULL: a commit that returned survives a power cut).
A caller that waits on its ticket commits the queue itself when no commit is running (no
thread hand-off on the request path); a background thread commits what nobody waits for
(acknowledgements of consumed messages). After-commit actions run in commit order, on the
committing thread, while the next commit waits: they must be quick.

A commit that fails leaves memory ahead of the disk. Nothing of it became visible, but the
process cannot go on serving that state, so it stops (fail-stop, like a database whose fsync
failed); on restart it rebuilds from what is durable.

Readers (queries, start-up) use connections of their own and see only committed data; a
`JournalReader` reads the same from another process (the warehouse feed), without the lock.
"""

from __future__ import annotations

import fcntl
import functools
import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Exit status of a process whose journal cannot write: its supervisor restarts it.
JOURNAL_FAILED_EXIT = 3

_BASE_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS journal (
        seq INTEGER PRIMARY KEY,
        record_id TEXT NOT NULL,
        record_type TEXT NOT NULL,
        is_event INTEGER NOT NULL,
        order_id TEXT,
        account_id TEXT,
        instrument TEXT,
        time_us INTEGER NOT NULL,
        topic TEXT,
        ordering_key TEXT,
        payload BLOB NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS journal_by_order ON journal (order_id) WHERE order_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS journal_to_publish ON journal (seq) WHERE topic IS NOT NULL",
    "CREATE TABLE IF NOT EXISTS progress (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS dead_letters (
        id INTEGER PRIMARY KEY,
        subscription TEXT NOT NULL,
        message_id TEXT NOT NULL,
        ordering_key TEXT NOT NULL,
        attributes TEXT NOT NULL,
        data BLOB NOT NULL,
        error TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        time_us INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS unresolved (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        subject TEXT NOT NULL,
        detail TEXT NOT NULL,
        time_us INTEGER NOT NULL,
        UNIQUE (kind, subject)
    )""",
)


class JournalInUse(OSError):
    """Another process has the journal open."""


@dataclass(frozen=True, slots=True)
class Record:
    """An event or a command to keep, and to publish when `topic` is set."""

    record_id: str
    record_type: str
    is_event: bool
    payload: bytes
    time_us: int
    order_id: str = ""
    account_id: str = ""
    instrument: str = ""
    topic: str = ""
    ordering_key: str = ""
    # The trace context the payload keeps, for the message's attributes (not a column: a
    # record read back from the journal is published without it).
    traceparent: str = ""


@dataclass(frozen=True, slots=True)
class KeptRecord:
    """A record as the journal holds it, with its place in the log."""

    seq: int
    record: Record


Statement = tuple[str, Sequence[Any]]


@dataclass
class Transaction:
    """What one change makes durable at once, and what becomes visible after."""

    records: list[Record] = field(default_factory=list)
    statements: list[Statement] = field(default_factory=list)
    after: list[Callable[[], None]] = field(default_factory=list)

    def keep(self, record: Record) -> None:
        self.records.append(record)

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> None:
        self.statements.append((sql, parameters))

    def then(self, action: Callable[[], None]) -> None:
        """Runs `action` once the transaction is durable."""
        self.after.append(action)

    def __bool__(self) -> bool:
        return bool(self.records or self.statements or self.after)


class Ticket:
    """A queued transaction; done once it is durable."""

    __slots__ = ("_callbacks", "_journal", "done", "number")

    def __init__(self, journal: Journal, number: int) -> None:
        self._journal = journal
        self.number = number
        self.done = False
        self._callbacks: list[Callable[[], None]] = []

    def wait(self) -> None:
        """Returns once durable; commits the queue itself when no commit is running."""
        if not self.done:
            self._journal.wait(self)

    def add_done_callback(self, callback: Callable[[], None]) -> None:
        """Runs `callback` once durable: now when it already is, else on the committing thread."""
        with self._journal.queue_lock:
            if not self.done:
                self._callbacks.append(callback)
                return
        callback()


# Hooks the journal calls on the committing thread: with the records a commit kept (to publish
# them), and for extra statements to add to each commit (progress of the publisher).
CommitListener = Callable[[Sequence[KeptRecord]], None]
StatementSource = Callable[[], Iterable[Statement]]


class JournalReader:
    """Reads a journal's committed data, on a connection per calling thread; never writes, and
    takes no lock: a process of its own may read the journal a service is writing (the
    warehouse feed does, `trading_core.store.feeding`)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():  # connecting would make an empty one
            raise FileNotFoundError(f"no journal at {self.path}")
        self._readers = threading.local()

    @property
    def last_seq(self) -> int:
        """The position of the last committed record (0: none)."""
        ((last,),) = self.query("SELECT coalesce(max(seq), 0) FROM journal")
        return int(last)

    def query(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of committed data, read on a connection of the calling thread."""
        return self._reader().execute(sql, parameters).fetchall()

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """The calling thread's queries inside see one committed state of the journal."""
        reader = self._reader()
        reader.execute("BEGIN")
        try:
            yield
        finally:
            reader.execute("COMMIT")

    def records_after(
        self, seq: int, *, limit: int, to_publish: bool = False, events_only: bool = False
    ) -> list[KeptRecord]:
        """Kept records after `seq`, in log order."""
        where = ["seq > ?"]
        if to_publish:
            where.append("topic IS NOT NULL")
        if events_only:
            where.append("is_event = 1")
        rows = self.query(
            f"SELECT {_RECORD_COLUMNS} FROM journal WHERE {' AND '.join(where)} "  # noqa: S608
            "ORDER BY seq LIMIT ?",
            (seq, limit),
        )
        return [_kept(row) for row in rows]

    def records_of_order(self, order_id: str, record_type: str) -> list[KeptRecord]:
        rows = self.query(
            f"SELECT {_RECORD_COLUMNS} FROM journal "  # noqa: S608
            "WHERE order_id = ? AND record_type = ? ORDER BY seq",
            (order_id, record_type),
        )
        return [_kept(row) for row in rows]

    def progress(self, name: str) -> int:
        rows = self.query("SELECT value FROM progress WHERE name = ?", (name,))
        return int(rows[0][0]) if rows else 0

    def _reader(self) -> sqlite3.Connection:
        reader: sqlite3.Connection | None = getattr(self._readers, "connection", None)
        if reader is None:
            reader = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            reader.execute("PRAGMA query_only = ON")
            self._readers.connection = reader
        return reader


class Journal(JournalReader):
    """One service's SQLite journal; see the module docstring."""

    def __init__(
        self,
        path: Path,
        schema: Sequence[str] = (),
        *,
        on_failure: Callable[[BaseException], None] | None = None,
    ) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_file = _lock_exclusively(path.with_name(path.name + ".lock"))
        self._connection = _connect(path)  # makes the file: the reader's connections need it
        super().__init__(path)
        with self._connection:
            for statement in (*_BASE_SCHEMA, *schema):
                self._connection.execute(statement)
        ((last,),) = self._connection.execute("SELECT coalesce(max(seq), 0) FROM journal")
        self._next_seq = int(last) + 1
        self._on_failure = on_failure or _stop_the_process
        self.queue_lock = threading.Lock()
        self._queued = threading.Condition(self.queue_lock)  # wakes the background writer
        self._committed = threading.Condition(self.queue_lock)  # wakes those waiting on tickets
        self._queue: list[tuple[Transaction, Ticket]] = []
        self._tickets = 0
        self._durable_through = 0  # the highest ticket number committed
        self._commit_lock = threading.Lock()  # one commit at a time, after-actions in order
        self._listeners: list[CommitListener] = []
        self._statement_sources: list[StatementSource] = []
        self._failed: BaseException | None = None
        self._closed = False
        self._writer = threading.Thread(target=self._write_in_background, daemon=True)
        self._writer.name = f"journal-{self.path.stem}"
        self._writer.start()

    # Writing ----------------------------------------------------------------------------------

    def commit(self, transaction: Transaction, *, waited: bool = False) -> Ticket:
        """Queues the transaction (in call order) and returns its ticket. `waited`: the caller
        will wait on the ticket, and commits the queue itself then; the background writer is
        not woken for it (a wake-up that loses the race costs a GIL round trip per request)."""
        with self.queue_lock:
            if self._closed:
                raise RuntimeError(f"journal {self.path} is closed")
            self._tickets += 1
            ticket = Ticket(self, self._tickets)
            self._queue.append((transaction, ticket))
            if not waited:
                self._queued.notify()
        return ticket

    def sync_point(self) -> Ticket:
        """A ticket, to wait on, done once everything queued so far is durable: for replies
        built from state that other requests changed."""
        return self.commit(Transaction(), waited=True)

    def wait(self, ticket: Ticket) -> None:
        while not ticket.done:
            # Checked first: once a write failed, the queue is never written again, and a waiter
            # that takes the free commit lock would otherwise go round for ever.
            if self._failed is not None:
                raise RuntimeError(f"the journal failed: {self._failed!r}") from self._failed
            if self._commit_lock.acquire(blocking=False):
                try:
                    self._commit_queued()
                finally:
                    self._commit_lock.release()
                continue
            with self.queue_lock:
                if not ticket.done:
                    self._committed.wait(0.05)

    def add_listener(self, listener: CommitListener) -> None:
        self._listeners.append(listener)

    def add_statement_source(self, source: StatementSource) -> None:
        self._statement_sources.append(source)

    @property
    def last_seq(self) -> int:
        return self._next_seq - 1

    def healthy(self) -> bool:
        return not self._closed and self._failed is None and self._writer.is_alive()

    def close(self) -> None:
        """Commits what is queued, then closes."""
        with self.queue_lock:
            if self._closed:
                return
            self._closed = True
            self._queued.notify_all()
            self._committed.notify_all()
        self._writer.join()
        with self._commit_lock:
            self._commit_queued()
        self._connection.close()
        self._lock_file.close()

    def _write_in_background(self) -> None:
        while True:
            with self.queue_lock:
                self._queued.wait_for(lambda: self._queue or self._closed)
                if self._closed:
                    return
            with self._commit_lock:
                try:
                    self._commit_queued()
                except BaseException:
                    return  # reported by _commit_queued; the process is stopping

    def _commit_queued(self) -> None:
        """Writes every queued transaction in one SQLite transaction. The commit lock is held."""
        with self.queue_lock:
            batch, self._queue = self._queue, []
        if not batch or self._failed is not None:
            return
        try:
            kept = self._write(transaction for transaction, _ in batch)
        except BaseException as error:
            self._failed = error
            log.critical("journal %s cannot write: %r; stopping", self.path, error)
            self._on_failure(error)
            raise
        with self.queue_lock:
            self._durable_through = batch[-1][1].number
            for _, ticket in batch:
                ticket.done = True
            self._committed.notify_all()
        for listener in self._listeners:
            listener(kept)
        for transaction, ticket in batch:
            for action in (*transaction.after, *ticket._callbacks):
                try:
                    action()
                except Exception:
                    log.exception("an action after a journal commit failed")

    def _write(self, transactions: Iterable[Transaction]) -> list[KeptRecord]:
        kept: list[KeptRecord] = []
        seq = self._next_seq
        statements: list[Statement] = []
        for transaction in transactions:
            for record in transaction.records:
                statements.append((_INSERT_RECORD, _row(seq, record)))
                kept.append(KeptRecord(seq, record))
                seq += 1
            statements.extend(transaction.statements)
        for source in self._statement_sources:
            statements.extend(source())
        connection = self._connection
        connection.execute("BEGIN")
        try:
            for sql, parameters in batched(statements):
                connection.execute(sql, parameters)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        self._next_seq = seq
        return kept


# Rows of one multi-row INSERT at most (SQLite allows 250,000 parameters here; 500 rows of the
# widest table use 6,500).
MAX_ROWS_PER_INSERT = 500

_TABLE_OF = re.compile(r"^(?:INSERT (?:OR \w+ )?INTO|UPDATE|DELETE FROM) (\w+)\b")
_INSERT_VALUES = re.compile(
    r"^(INSERT (?:OR \w+ )?INTO \w+ \([^)]*\) VALUES )(\((?:\?, )*\?\))(.*)$", re.S
)


def batched(statements: Sequence[Statement]) -> Iterator[Statement]:
    """The statements of one commit in as few SQLite calls as possible, to the same effect.

    Each call gives the GIL up and then waits for it behind every busy thread: measured here, a
    50-row executemany beside two busy threads took 21 ms, one 50-row INSERT 1.5 ms. Statements
    on different tables commute (the journal has no triggers and no foreign keys), so they are
    grouped by table, in their order within a table; a run of one `INSERT ... VALUES (?, ...)`
    becomes one multi-row INSERT (SQLite applies its rows, and their ON CONFLICT clauses, in
    order). A statement on no table it recognises keeps its place among the others.
    """
    runs: dict[str, list[tuple[str, list[Any], int]]] = {}
    for sql, parameters in statements:
        table = _table_of(sql)
        if table is None:
            yield from _merged(runs)
            runs.clear()
            yield sql, parameters
            continue
        table_runs = runs.setdefault(table, [])
        if table_runs and table_runs[-1][0] == sql and _values_clause(sql) is not None:
            last_sql, last_parameters, rows = table_runs[-1]
            if rows < MAX_ROWS_PER_INSERT:
                last_parameters.extend(parameters)
                table_runs[-1] = (last_sql, last_parameters, rows + 1)
                continue
        table_runs.append((sql, list(parameters), 1))
    yield from _merged(runs)


def _merged(runs: dict[str, list[tuple[str, list[Any], int]]]) -> Iterator[Statement]:
    for table_runs in runs.values():
        for sql, parameters, rows in table_runs:
            yield (_multi_row(sql, rows) if rows > 1 else sql), parameters


@functools.lru_cache(maxsize=256)
def _table_of(sql: str) -> str | None:
    match = _TABLE_OF.match(sql)
    return None if match is None else match.group(1)


@functools.lru_cache(maxsize=256)
def _values_clause(sql: str) -> tuple[str, str, str] | None:
    """An INSERT's text before its VALUES tuple, the tuple, and the text after; None when it
    is not a single `VALUES (?, ...)` INSERT."""
    match = _INSERT_VALUES.match(sql)
    return None if match is None else (match.group(1), match.group(2), match.group(3))


@functools.lru_cache(maxsize=1024)
def _multi_row(sql: str, rows: int) -> str:
    clause = _values_clause(sql)
    assert clause is not None
    head, values, tail = clause
    return head + ", ".join([values] * rows) + tail


def set_progress(name: str, value: int) -> Statement:
    """A statement that records how far a consumer of the journal got."""
    return (
        "INSERT INTO progress (name, value) VALUES (?, ?) "
        "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        (name, value),
    )


def now_us() -> int:
    return time.time_ns() // 1_000


_RECORD_COLUMNS = (
    "seq, record_id, record_type, is_event, payload, time_us, order_id, account_id, instrument, "
    "topic, ordering_key"
)
_INSERT_RECORD = f"INSERT INTO journal ({_RECORD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"  # noqa: S608


def _row(seq: int, record: Record) -> tuple[Any, ...]:
    return (
        seq,
        record.record_id,
        record.record_type,
        int(record.is_event),
        record.payload,
        record.time_us,
        record.order_id or None,
        record.account_id or None,
        record.instrument or None,
        record.topic or None,
        record.ordering_key or None,
    )


def _kept(row: tuple[Any, ...]) -> KeptRecord:
    seq, record_id, record_type, is_event, payload, time_us, *ids, topic, key = row
    order_id, account_id, instrument = (value or "" for value in ids)
    return KeptRecord(
        seq,
        Record(
            record_id,
            record_type,
            bool(is_event),
            bytes(payload),
            time_us,
            order_id,
            account_id,
            instrument,
            topic or "",
            key or "",
        ),
    )


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode = WAL")
    # FULL: every commit is fsynced before it returns; NORMAL would lose the last commits on a
    # power cut, which is exactly what must not happen to an answered order.
    connection.execute("PRAGMA synchronous = FULL")
    return connection


def _lock_exclusively(path: Path) -> Any:
    """Holds an exclusive lock on `path` for the life of the journal: one process per journal."""
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise JournalInUse(
            f"{path.with_suffix('')} is in use by another process (pid {holder}); stop it, or "
            "give this one another database.path"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def _stop_the_process(error: BaseException) -> None:
    logging.shutdown()
    os._exit(JOURNAL_FAILED_EXIT)
