"""The market-data producer: one source, its quotes published to the topic `market-data`.

Its own producer, not a thread of the router, so routers can be sharded and still share one
feed. Each tick's quotes are journaled and published through the outbox (the warehouse keeps
them for analysts). The source is `market_data.source`:

- `synthetic`: a restart continues the walk where the last quote left it, so resting orders see
  no jump back to the initial price.
- `venue`: an exchange's public market data, polled every `poll_interval_ms` and conflated
  (`venue_feed`). Start-up stops when the exchange does not list an instrument. While any
  instrument is stale the producer is not ready (health NOT_SERVING) and keeps polling.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from trading.v1 import events_pb2
from trading_core.journal import Transaction, set_progress
from trading_core.quotes import Quote
from trading_core.service import JournaledService, ServiceContext

from market_data.synthetic import SyntheticFeed

if TYPE_CHECKING:
    from market_data.venue_feed import VenueFeed

log = logging.getLogger(__name__)

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS walk (
        instrument TEXT PRIMARY KEY,
        mid TEXT NOT NULL
    )""",
)


class MarketDataProducer(JournaledService):
    name = "market-data"

    def __init__(self, context: ServiceContext):
        super().__init__(context)
        config = context.config
        self._feed = SyntheticFeed(config.instruments, config.market_data)
        self.venue_feed: VenueFeed | None = None
        if config.market_data.source == "venue":
            # Imported only when used: CCXT takes seconds to import, which every start of the
            # synthetic feed (each test's platform, each pod) would pay for nothing.
            from market_data.venue_feed import VenueFeed

            self.venue_feed = VenueFeed(config.instruments, config.market_data, self.clock)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="market-data", daemon=True)

    def start(self) -> None:
        super().start()
        if self.venue_feed is not None:
            self.venue_feed.connect()
        else:
            walk = self.journal.query("SELECT * FROM walk")
            mids = {symbol: Decimal(mid) for symbol, mid in walk}
            ticks = self.journal.progress("ticks")
            self._feed = SyntheticFeed(
                self.config.instruments, self.config.market_data, mids, ticks
            )
        self.tick()  # a first quote at once: consumers wait for one to be ready
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()

    def ready(self) -> bool:
        """Also needs its polling thread, and a fresh quote of every instrument (venue)."""
        return super().ready() and self._thread.is_alive() and not self.stale_instruments()

    def stale_instruments(self) -> list[str]:
        """The instruments whose venue quotes are older than market_data.stale_after_ms."""
        return [] if self.venue_feed is None else self.venue_feed.stale()

    def tick(self) -> None:
        if self.venue_feed is not None:
            # The exchange is asked outside the lock: a slow answer holds nothing else up.
            quotes = self.venue_feed.poll()
            if quotes:
                with self.lock:
                    self.commit(self._publication(quotes, walk=False))
            return
        with self.lock:
            quotes = self._feed.tick(self.clock.now())
            self.commit(self._publication(quotes))

    def _publication(self, quotes: Sequence[Quote], *, walk: bool = True) -> Transaction:
        transaction = Transaction()
        for quote in quotes:
            event = self.new_event(
                instrument=quote.instrument,
                quote_updated=events_pb2.QuoteUpdated(quote=quote.to_proto()),
            )
            transaction.keep(self.event_record(event, "market-data", quote.instrument))
        if not walk:
            return transaction
        for symbol, mid in self._feed.mids.items():
            transaction.execute(
                "INSERT INTO walk (instrument, mid) VALUES (?, ?) "
                "ON CONFLICT (instrument) DO UPDATE SET mid = excluded.mid",
                (symbol, str(mid)),
            )
        transaction.execute(*set_progress("ticks", self._feed.ticks))
        return transaction

    def _run(self) -> None:
        settings = self.config.market_data
        interval_ms = settings.poll_interval_ms if self.venue_feed else settings.interval_ms
        interval = interval_ms / 1000
        while not self._stopping.wait(interval):
            try:
                self.tick()
            except Exception:
                log.exception("market data tick failed")
