"""The warehouse feed process (`trading_core.store.feeding`) beside the platform: killed with
SIGKILL it is started again, the platform killed with SIGKILL leaves it to feed what the journals
hold and exit, and one feed process at a time feeds a journal. Each run ends by comparing every
service's journal with its DuckDB file: every event stored once."""

from __future__ import annotations

import fcntl
import os
import signal
import threading
from collections import Counter
from pathlib import Path

import duckdb
import grpc
import pytest
from tradectl.serve import service_specs
from trading_core.config import DuckDBDatabase, Logging, load_config
from trading_core.journal import Journal, JournalReader
from trading_core.runtime import build_platform
from trading_core.store import FeedProcess, FeedSpec

from tests.crash.test_crash import embedded_process, processes_alive
from tests.e2e.conftest import (
    SERVICE_MODULES,
    Clients,
    embedded_overrides,
    start_embedded,
    wait_serving_at,
    write_config,
)
from tests.e2e.test_trading_flow import TIMEOUT, ready_for_market_orders, submit
from tests.support import wait_until
from tests.warehouse_support import keep, one_order


def stored_once(data: Path, service: str) -> tuple[int, set[int], dict[int, int]]:
    """A service's journal events against its DuckDB file (neither written now): how many the
    journal holds, the positions missing from the file, and those the file holds twice."""
    made = {
        seq
        for (seq,) in JournalReader(data / f"{service}.journal").query(
            "SELECT seq FROM journal WHERE is_event = 1"
        )
    }
    table = f"{service.replace('-', '_')}_events"
    with duckdb.connect(str(data / f"{service}.duckdb"), read_only=True) as connection:
        rows = connection.execute(f"SELECT store_sequence FROM {table}").fetchall()
    stored = Counter(int(seq) for (seq,) in rows)
    return len(made), made - set(stored), {seq: n for seq, n in stored.items() if n > 1}


def assert_every_event_stored_once(data: Path) -> None:
    for service in SERVICE_MODULES:
        events, lost, twice = stored_once(data, service)
        assert events > 0, f"{service} journaled no event"
        assert (lost, twice) == (set(), {}), f"{service}: lost {sorted(lost)}, twice {twice}"


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A child that exited but is not reaped yet is a zombie: not running.
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


def children(pid: int) -> list[int]:
    return [
        int(child)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for child in (task / "children").read_text().split()
    ]


class OrderStream:
    """Market orders, one after another, until stopped."""

    def __init__(self, clients: Clients) -> None:
        self._clients = clients
        self._stopping = threading.Event()
        self.sent = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> OrderStream:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopping.set()
        self._thread.join(TIMEOUT)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                submit(self._clients, account_id="acct-feed", quantity="0.001")
            except grpc.RpcError:  # the platform was killed
                return
            self.sent += 1


def test_the_warehouse_is_open_before_the_services_start(tmp_path: Path) -> None:
    """The platform waits for its feed process to make the warehouse's files, so the services'
    first events are fed at once, not behind the feed process's start-up."""
    data = tmp_path / "data"
    config = load_config(write_config(tmp_path, embedded_overrides(data, feed="process")))
    platform = build_platform(config, service_specs())
    try:
        platform.start()
        made = {path.name for path in data.glob("*.duckdb")}
    finally:
        platform.stop()
    assert made == {f"{service}.duckdb" for service in SERVICE_MODULES}


def test_a_feed_process_killed_is_started_again_and_the_warehouse_loses_and_duplicates_nothing(
    tmp_path: Path,
) -> None:
    overrides = embedded_overrides(tmp_path / "data", feed="process")
    overrides["database"] = {**overrides["database"], "flush_interval_ms": 50}  # type: ignore[dict-item]
    platform = start_embedded(write_config(tmp_path, overrides))
    feed = platform.feed
    assert feed is not None
    clients = Clients({name: platform.address(name) for name in SERVICE_MODULES})
    killed: list[int] = []
    try:
        ready_for_market_orders(clients)
        with OrderStream(clients) as stream:
            for _ in range(2):
                pid, sent = feed.pid, stream.sent
                assert pid is not None and pid != os.getpid()
                wait_until(lambda: stream.sent >= sent + 20, TIMEOUT, "20 more orders")  # noqa: B023
                os.kill(pid, signal.SIGKILL)  # in whatever it is doing, a feed most likely
                killed.append(pid)
                wait_until(lambda: feed.pid not in (None, *killed), 30, "the feed to restart")
    finally:
        clients.close()
        platform.stop()
    last = feed.pid
    assert last is not None and last not in killed
    assert not running(last), "the feed process outlived the platform's stop"
    assert_every_event_stored_once(tmp_path / "data")


@pytest.mark.timeout(180)
def test_a_platform_killed_leaves_its_feed_process_to_store_what_the_journals_hold_and_exit(
    tmp_path: Path,
) -> None:
    process, addresses = embedded_process(tmp_path)
    process.start()
    assert process.popen is not None
    clients = Clients(addresses)
    try:
        wait_serving_at(addresses, processes_alive({"platform": process}), 60)
        (feed,) = wait_until(lambda: children(process.popen.pid), 30, "the feed process")  # type: ignore[union-attr]
        ready_for_market_orders(clients)
        with OrderStream(clients) as stream:
            wait_until(lambda: stream.sent >= 30, TIMEOUT, "30 orders")
            process.kill()  # SIGKILL, orders in flight
        wait_until(lambda: not running(feed), 60, "the orphaned feed process to finish and exit")
        assert_every_event_stored_once(tmp_path / "data")

        process.start()  # on the same data: it starts, and stops cleanly
        wait_serving_at(addresses, processes_alive({"platform": process}), 60)
    finally:
        clients.close()
        code = process.stop()
    assert code == 0


def test_a_feed_process_waits_for_the_one_feeding_the_journal_before_it(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "order-management.journal")
    try:
        events = [event for number in range(5) for event in one_order(number)]
        keep(journal, events)
    finally:
        journal.close()
    warehouse = tmp_path / "order-management.duckdb"
    feed = FeedProcess(
        FeedSpec(
            database=DuckDBDatabase(backend="duckdb", path=tmp_path, flush_interval_ms=20),
            journals={"order-management": journal.path},
            logging=Logging(level="WARNING"),
        )
    )
    with (tmp_path / "order-management.journal.feed.lock").open("a+") as earlier:
        fcntl.flock(earlier, fcntl.LOCK_EX)  # as a feed process still finishing would hold it
        feed.start()
        try:
            pid = feed.pid
            wait_until(lambda: waiting_for_a_lock(pid), 30, "the feed process to wait for the lock")
            assert not warehouse.exists()  # it has not begun
        finally:
            fcntl.flock(earlier, fcntl.LOCK_UN)
            feed.stop()
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        ((stored,),) = connection.execute(
            "SELECT count(DISTINCT store_sequence) FROM order_management_events"
        ).fetchall()
    assert stored == len(events)


def waiting_for_a_lock(pid: int | None) -> bool:
    """Whether the process is blocked on a file lock (/proc/locks lists its waiters with ->)."""
    return any(
        line.split()[1] == "->" and line.split()[5] == str(pid)
        for line in Path("/proc/locks").read_text().splitlines()
    )
