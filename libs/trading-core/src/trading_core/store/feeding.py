"""Feeding the warehouse: a journal's new events copied into its warehouse every interval.

`WarehouseFeeder` is one journal's feed, on a thread. The platform runs its services' feeders
in a process of their own (`FeedProcess`, `python -m trading_core.store.feeding`), beside the
services: there they have their own interpreter lock and the machine's other core, where in
the services' process a loaded platform starved them (make bench, warehouse_feed: waits of up
to 3.8 s from journal to table, against under 2 s). The feed process reads the journals
(`JournalReader`) while the services write them, and writes the warehouse; it never writes a
journal, and the warehouse records how far it was fed, so killing either process anywhere
loses and duplicates nothing.

Life of the feed process: the platform starts it once its journals are open and sends it what
to feed as one JSON line on its stdin; the process feeds until its stdin ends (the platform
stopped, or died: then the feed still stores every event the journals hold), feeds the rest and
exits. The platform closes that pipe after its journals have committed their last transaction
and waits, so a platform that stopped has fed the warehouse everything. A feed process that
dies is started again. One feed process per journal at a time: it locks `<journal>.feed.lock`,
so a platform restarted while the previous one's feed finishes waits for it.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType
from typing import IO, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from trading_core.config import BigQueryDatabase, DuckDBDatabase, Logging
from trading_core.journal import JournalReader
from trading_core.periodic import Periodic
from trading_core.store.base import Warehouse

log = logging.getLogger(__name__)

# How long a stopping platform waits for the feed process's last feed; then it kills it (the
# next start feeds the rest).
FINAL_FEED_TIMEOUT_S = 60.0
# A feed process that died is started again after this wait, doubled while it keeps dying.
RESTART_BACKOFF_S = (1.0, 60.0)
# What the feed process says once its warehouses are open (made, migrated).
READY = "ready"


class WarehouseFeeder:
    """Copies a journal's new events into a warehouse every interval, on its own thread."""

    def __init__(
        self, journal: JournalReader, warehouse: Warehouse, *, interval_s: float, batch_size: int
    ) -> None:
        self._journal = journal
        self._warehouse = warehouse
        self._batch_size = batch_size
        self._failing = False
        # At once, then every interval: the first feed takes what the journal gained while the
        # feed started.
        self._loop = Periodic(
            f"warehouse-{warehouse.service}", self.feed_all, interval_s, at_once=True
        )

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        """Feeds what is left, then stops."""
        self._loop.stop()
        self.feed_all()
        self._warehouse.close()

    def open(self) -> None:
        """Opens the warehouse ahead of the first feed: makes or migrates its tables."""
        self._trying(self._warehouse.fed_through)

    def feed_all(self) -> int:
        """Feeds what the journal held when called; returns how many events were stored.

        Not "until caught up": on a busy journal that target moves while a feed runs, and the
        feeder would open the file again and again (each open and close costs tens of ms)."""
        stored = 0

        def feed() -> None:
            nonlocal stored
            target = self._journal.last_seq
            while (after := self._warehouse.fed_through()) < target:
                batch = self._journal.records_after(after, limit=self._batch_size)
                if not batch:
                    break
                stored += self._warehouse.feed(batch)

        self._trying(feed)
        return stored

    def _trying(self, work: Callable[[], object]) -> None:
        """Runs `work`; a transient error is logged (once while it lasts) and left to the next
        interval: nothing of the failed batch is stored, and the journal keeps it."""
        try:
            work()
        except self._warehouse.transient_errors as error:
            if not self._failing:
                log.warning(
                    "warehouse %s: cannot write now (%s); will retry", self._warehouse, error
                )
            self._failing = True
            return
        self._failing = False


class FeedSpec(BaseModel):
    """What the feed process feeds: the JSON line the platform sends it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    database: DuckDBDatabase | BigQueryDatabase = Field(discriminator="backend")
    journals: dict[str, Path]  # service -> its journal file
    logging: Logging
    project: str | None = None  # the traces' project, for the log lines (telemetry.project)


class Feed(Protocol):
    """The platform's warehouse feed: `FeedProcess`, or `FeedThreads` (`database.feed`)."""

    @property
    def pid(self) -> int | None:
        """Its process, when it has one of its own."""

    def start(self) -> None: ...

    def wait_ready(self, timeout: float) -> bool:
        """Whether it opened the warehouse within `timeout` seconds."""

    def watch(self) -> None:
        """Mends what died (the platform's health loop calls it)."""

    def stop(self) -> None:
        """Feeds what the journals hold, then stops."""


def create_feed(spec: FeedSpec) -> Feed:
    """The feed `database.feed` names."""
    return FeedProcess(spec) if spec.database.feed == "process" else FeedThreads(spec)


class FeedProcess:
    """The platform's side of the feed process: starts it, starts it again when it died (the
    platform's health loop calls `watch`), and stops it after the journals closed."""

    def __init__(self, spec: FeedSpec) -> None:
        self._spec = spec
        self._process: subprocess.Popen[str] | None = None
        self._restarts = 0  # since it last ran for long
        self._restart_at = 0.0
        self._started_at = 0.0
        self._lock = threading.Lock()
        self._stopped = False

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self) -> None:
        with self._lock:
            self._spawn()

    def watch(self) -> None:
        """Starts the process again if it died, after a backoff that grows while it keeps dying."""
        with self._lock:
            process = self._process
            if self._stopped or process is None or process.poll() is None:
                return
            now = time.monotonic()
            low, high = RESTART_BACKOFF_S
            if not self._restart_at:
                if now - self._started_at > high:  # it ran for long: not a crash loop
                    self._restarts = 0
                wait = min(high, low * 2**self._restarts)
                log.error(
                    "the warehouse feed process exited with status %s; starting it again in %.0f s",
                    process.returncode,
                    wait,
                )
                self._restart_at = now + wait
            if now >= self._restart_at:
                self._restarts += 1
                self._restart_at = 0.0
                self._spawn()

    def wait_ready(self, timeout: float) -> bool:
        """Waits until the process has opened its warehouses, up to `timeout` seconds: the
        platform's first events are then not fed behind its start-up."""
        with self._lock:
            process = self._process
        assert process is not None and process.stdout is not None
        answered, _, _ = select.select([process.stdout], [], [], timeout)
        if answered and process.stdout.readline().strip() == READY:
            return True
        log.warning(
            "the warehouse feed process is not ready after %.0f s; serving without waiting "
            "(it feeds the journals' events once it is)",
            timeout,
        )
        return False

    def stop(self, timeout: float = FINAL_FEED_TIMEOUT_S) -> None:
        """Ends its input, so it feeds what the journals hold and exits; waits for that."""
        with self._lock:
            self._stopped = True
            process = self._process
        if process is None:
            return
        if process.stdin is not None:
            with contextlib.suppress(BrokenPipeError):  # it died: nothing to end
                process.stdin.close()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.error(
                "the warehouse feed process did not finish its last feed in %.0f s; killed it "
                "(the next start feeds the rest)",
                timeout,
            )
            process.kill()
            process.wait()

    def _spawn(self) -> None:
        # A session of its own: Ctrl-C in a terminal reaches the platform, which ends the feed
        # in order, and not the feed process itself.
        process = subprocess.Popen(  # noqa: S603 (this interpreter, this module)
            [sys.executable, "-c", f"from {__name__} import main; main()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert process.stdin is not None
        try:
            process.stdin.write(self._spec.model_dump_json(by_alias=True) + "\n")
            process.stdin.flush()
        except BrokenPipeError:  # it died at once: `watch` starts it again
            log.error("the warehouse feed process exited as it started")
        self._process = process
        self._started_at = time.monotonic()


class FeedThreads:
    """Every journal's feeder of `spec` on a thread of this process, each journal's feed lock
    held meanwhile: the feed process's work, and the platform's feed itself with
    `database.feed: thread`. The same interface as `FeedProcess`."""

    pid = None

    def __init__(self, spec: FeedSpec) -> None:
        self._spec = spec
        self._locks: list[Any] = []
        self._feeders: list[WarehouseFeeder] = []

    def start(self) -> None:
        """Opens every warehouse (made, migrated), then starts feeding."""
        from trading_core.store import create_warehouse  # here: the package imports this module

        database = self._spec.database
        self._locks = [_lock_feed(path) for path in self._spec.journals.values()]
        self._feeders = [
            WarehouseFeeder(
                JournalReader(path),
                create_warehouse(database, service),
                interval_s=database.flush_interval_ms / 1000,
                batch_size=database.batch_size,
            )
            for service, path in self._spec.journals.items()
        ]
        with ThreadPoolExecutor(len(self._feeders)) as opening:  # each waits on its file's syncs
            list(opening.map(WarehouseFeeder.open, self._feeders))
        for feeder in self._feeders:
            feeder.start()

    def wait_ready(self, _timeout: float) -> bool:
        return True  # `start` returned: open

    def watch(self) -> None:
        pass  # a thread that fails ends the feed process (`main`); here it is logged

    def stop(self) -> None:
        """Feeds what the journals hold, then lets go of them."""
        for feeder in self._feeders:
            feeder.stop()
        for lock in self._locks:
            lock.close()


def feed_until_input_ends(spec: FeedSpec, stdin: IO[str], stdout: IO[str]) -> None:
    """The feed process: opens every warehouse of `spec` and says so on `stdout`, feeds each
    journal on its interval until `stdin` ends (or SIGTERM), then feeds what the journals hold
    and returns."""
    feed = FeedThreads(spec)
    feed.start()
    stdout.write(READY + "\n")
    stdout.flush()
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        stdin.read()  # nothing more comes: it ends when the platform closes it, or dies
    except _Terminated:
        log.info("signalled to stop")
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second one ends the last feed at once
    feed.stop()


class _Terminated(Exception):  # SIGTERM or SIGINT
    pass


def _on_signal(_signum: int, _frame: FrameType | None) -> None:
    raise _Terminated


def _lock_feed(journal: Path) -> Any:
    """Waits for, then holds, the journal's feed lock (released when the process ends)."""
    handle = journal.with_name(journal.name + ".feed.lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log.info("%s: waiting for the previous feed process to finish", journal)
        fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


def _exit_on_failure(failure: threading.ExceptHookArgs) -> None:
    """A feeder that failed otherwise than `transient_errors` (a bug) ends the process, which
    the platform starts again, rather than leave its warehouse unfed."""
    log.critical(
        "%s failed; the feed process exits",
        failure.thread.name if failure.thread else "a thread",
        exc_info=(failure.exc_type, failure.exc_value, failure.exc_traceback),  # type: ignore[arg-type]
    )
    logging.shutdown()
    os._exit(1)


def main() -> None:
    from trading_core.telemetry import configure_logging

    spec = FeedSpec.model_validate_json(sys.stdin.readline())
    configure_logging("warehouse-feed", spec.logging.level, spec.logging.json_format, spec.project)
    threading.excepthook = _exit_on_failure
    feed_until_input_ends(spec, sys.stdin, sys.stdout)


if __name__ == "__main__":
    main()
