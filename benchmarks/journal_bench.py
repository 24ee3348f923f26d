"""How long a durable commit takes, for choosing the journal: SQLite (WAL, synchronous=FULL) and
DuckDB, one row per commit and batches, and the journal itself under concurrent committers
(group commit). Run: `uv run python -m benchmarks.journal_bench`; prints JSON."""

from __future__ import annotations

import json
import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
from trading_core.journal import Journal, Record, Transaction

ROUNDS = 1000
PAYLOAD = b"x" * 300


def _p50_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 3)


def _timed(commit: Callable[[], None], rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        commit()
        samples.append(time.perf_counter() - start)
    return samples


def sqlite_commits(folder: Path, rows: int) -> float:
    connection = sqlite3.connect(folder / f"bench-{rows}.sqlite", isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = FULL")
    connection.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY, payload BLOB)")

    def commit() -> None:
        connection.execute("BEGIN")
        connection.executemany("INSERT INTO t (payload) VALUES (?)", [(PAYLOAD,)] * rows)
        connection.execute("COMMIT")

    return _p50_ms(_timed(commit, ROUNDS))


def duckdb_commits(folder: Path, rows: int) -> float:
    connection = duckdb.connect(str(folder / f"bench-{rows}.duckdb"))
    connection.execute("CREATE TABLE t (seq BIGINT, payload BLOB)")

    def commit() -> None:
        connection.execute("BEGIN TRANSACTION")
        connection.executemany("INSERT INTO t VALUES (?, ?)", [(1, PAYLOAD)] * rows)
        connection.execute("COMMIT")

    return _p50_ms(_timed(commit, ROUNDS // 5))


def journal_group_commit(folder: Path, threads: int, per_thread: int) -> dict[str, float]:
    journal = Journal(folder / f"group-{threads}.journal")
    latencies: list[float] = []
    lock = threading.Lock()

    def work() -> None:
        mine = []
        for number in range(per_thread):
            transaction = Transaction()
            transaction.keep(Record(f"r-{number}", "Bench", True, PAYLOAD, number))
            start = time.perf_counter()
            journal.commit(transaction).wait()
            mine.append(time.perf_counter() - start)
        with lock:
            latencies.extend(mine)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - start
    journal.close()
    return {
        "threads": threads,
        "commits_per_s": round(threads * per_thread / elapsed),
        "p50_ms": _p50_ms(latencies),
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        results = {
            "sqlite_wal_full_p50_ms": {n: sqlite_commits(folder, n) for n in (1, 10, 200)},
            "duckdb_p50_ms": {n: duckdb_commits(folder, n) for n in (1, 10, 200)},
            "journal": [journal_group_commit(folder, t, 400) for t in (1, 8, 32)],
        }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
