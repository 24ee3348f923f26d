"""The outbox: what a journal kept for a topic is published after it is durable, in log order.

Each commit hands its records to the bus at once (the fast path). The bus says when it has
taken a message for good (Pub/Sub accepted it; the in-memory bus, when every subscription
acknowledged it). The highest log position up to which everything is taken is saved with the
next commit (`published_through`); a restart publishes again what follows it, so a crash loses
nothing (consumers skip what they have applied).

Each message carries its record's id and type and the publishing shard (`shard`: a shard's
services handle only their own accounts, so the shard of the message's account; broadcast
topics carry none). With tracing on, each publish is a PRODUCER span continuing the trace its
record keeps, and the message's attributes carry that span's context
(`trading_core.tracing.publishing`).

Memory stays bounded when the bus is slow or down: at most `max_in_flight` messages are handed
to the bus and not yet taken. Beyond that, records wait in the journal and a catch-up thread
reads them back in order once the bus takes messages again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence

from trading_core import metrics
from trading_core.bus.base import PER_INSTANCE_TOPICS, SHARD_ATTRIBUTE, EventBus
from trading_core.journal import Journal, KeptRecord, Record, Statement, set_progress
from trading_core.tracing import publishing

log = logging.getLogger(__name__)

PROGRESS_NAME = "published_through"
_PAGE = 500


class Outbox:
    def __init__(
        self, journal: Journal, bus: EventBus, *, max_in_flight: int = 5_000, shard: int = 0
    ) -> None:
        self._journal = journal
        self._bus = bus
        self._shard = str(shard)
        self._max_in_flight = max_in_flight
        self._lock = threading.Condition()
        self._in_flight: deque[int] = deque()  # log positions handed to the bus, in order
        self._taken: set[int] = set()  # of those, the ones the bus has taken
        self._published_through = journal.progress(PROGRESS_NAME)
        self._saved_through = self._published_through
        self._handed_through = self._published_through  # the highest position given to the bus
        # None while commits go straight to the bus; else the position after which records wait
        # in the journal for the catch-up thread.
        self._behind_after: int | None = self._published_through
        self._stopping = False
        self._catch_up = threading.Thread(target=self._catch_up_loop, daemon=True)
        self._catch_up.name = f"outbox-{journal.path.stem}"
        journal.add_listener(self._on_commit)
        journal.add_statement_source(self._progress_statements)

    def start(self) -> None:
        """Publishes again what the last run may not have published, then keeps up."""
        self._catch_up.start()

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        if self._catch_up.is_alive():
            self._catch_up.join()

    @property
    def backlog(self) -> int:
        """Messages handed to the bus and not yet taken."""
        with self._lock:
            return len(self._in_flight)

    def _on_commit(self, kept: Sequence[KeptRecord]) -> None:
        with self._lock:
            if self._behind_after is not None:
                return  # the catch-up thread publishes them in order
            # What the catch-up thread already read back is not handed over twice.
            to_publish = [k for k in kept if k.record.topic and k.seq > self._handed_through]
            if not to_publish:
                return
            if len(self._in_flight) + len(to_publish) > self._max_in_flight:
                self._behind_after = to_publish[0].seq - 1
                log.warning("outbox: %d messages in flight; later ones wait", len(self._in_flight))
                self._lock.notify_all()
                return
            self._in_flight.extend(k.seq for k in to_publish)
            self._handed_through = to_publish[-1].seq
        self._publish(to_publish)

    def _publish(self, kept: Iterable[KeptRecord]) -> None:
        for item in kept:
            record = item.record
            attributes = self.attributes(record)
            try:
                with publishing(record.topic, record.traceparent, attributes):
                    self._bus.publish(
                        record.topic,
                        record.payload,
                        ordering_key=record.ordering_key,
                        attributes=attributes,
                        on_taken=self._taker(item.seq),
                    )
            except RuntimeError:
                if self._bus.healthy():
                    raise
                # Stopping: a commit after the bus closed (the last ones before the journal
                # closes) stays in the journal, past `published_through`: the next start
                # publishes it.
                log.info(
                    "outbox: the bus is closed; position %d on is published on start", item.seq
                )
                return

    def attributes(self, record: Record) -> dict[str, str]:
        """The attributes a message of this record carries (a republish gives them again)."""
        attributes = {"record_id": record.record_id, "record_type": record.record_type}
        if record.topic not in PER_INSTANCE_TOPICS:
            attributes[SHARD_ATTRIBUTE] = self._shard
        return attributes

    def _taker(self, seq: int) -> Callable[[], None]:
        # The publish stage: from the hand-over to the bus taking it for good.
        handed = time.perf_counter() if metrics.enabled() else None

        def taken() -> None:
            if handed is not None:
                metrics.stage_took("publish", time.perf_counter() - handed)
            with self._lock:
                self._taken.add(seq)
                while self._in_flight and self._in_flight[0] in self._taken:
                    done = self._in_flight.popleft()
                    self._taken.discard(done)
                    self._published_through = max(self._published_through, done)
                if len(self._in_flight) <= self._max_in_flight // 2:
                    self._lock.notify_all()

        return taken

    def _progress_statements(self) -> list[Statement]:
        """Saves how far the bus has taken the log, with each commit that follows progress."""
        with self._lock:
            through = self._published_through
            if self._in_flight:
                through = max(through, self._in_flight[0] - 1)
            if through <= self._saved_through:
                return []
            self._saved_through = through
        return [set_progress(PROGRESS_NAME, through)]

    def _catch_up_loop(self) -> None:
        while True:
            with self._lock:
                self._lock.wait_for(
                    lambda: (
                        self._stopping
                        or (
                            self._behind_after is not None
                            and len(self._in_flight) <= self._max_in_flight // 2
                        )
                    )
                )
                if self._stopping:
                    return
                after = self._behind_after
                room = self._max_in_flight - len(self._in_flight)
            assert after is not None
            page = self._journal.records_after(after, limit=min(room, _PAGE), to_publish=True)
            with self._lock:
                if not page:
                    # Caught up: the rest is published by the commits themselves. Checked under
                    # the lock that commits take to hand over, so nothing falls between.
                    if self._journal.last_seq <= after or not self._journal.records_after(
                        after, limit=1, to_publish=True
                    ):
                        self._behind_after = None
                    continue
                self._in_flight.extend(k.seq for k in page)
                self._behind_after = self._handed_through = page[-1].seq
            if after == self._published_through and page:
                log.info("outbox: publishing %d kept messages from position %d", len(page), after)
            self._publish(page)
