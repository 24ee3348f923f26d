"""The quote: the shared market-data fact, as plain data with exact prices."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC as UTC_TZ
from datetime import datetime
from decimal import Decimal

from trading.v1 import events_pb2, market_data_pb2, types_pb2

from trading_core.decimals import format_decimal
from trading_core.events import event_kind, timestamp

# A price level of a book: (price, size).
Level = tuple[Decimal, Decimal]


@dataclass(frozen=True)
class Quote:
    instrument: str
    bid: Decimal
    ask: Decimal
    bid_size: Decimal
    ask_size: Decimal
    time: datetime
    source: str = "synthetic"
    # The last trade's price; None when the source has none.
    last: Decimal | None = None
    status: types_pb2.InstrumentStatus.ValueType = types_pb2.INSTRUMENT_STATUS_TRADING
    # The book's levels, best first, when the source reads deeper than the top.
    bids: tuple[Level, ...] = ()
    asks: tuple[Level, ...] = ()

    @property
    def mid(self) -> Decimal:
        return (self.bid + self.ask) / 2

    def offered(self, buying: bool) -> tuple[Level, ...]:
        """The levels an order takes from (asks for a buy, bids for a sell), best first; the
        top alone when the source gives no depth."""
        levels = self.asks if buying else self.bids
        if levels:
            return levels
        return ((self.ask, self.ask_size),) if buying else ((self.bid, self.bid_size),)

    def to_proto(self) -> market_data_pb2.Quote:
        return market_data_pb2.Quote(
            instrument=self.instrument,
            bid_price=format_decimal(self.bid),
            bid_size=format_decimal(self.bid_size),
            ask_price=format_decimal(self.ask),
            ask_size=format_decimal(self.ask_size),
            quote_time=timestamp(self.time),
            source=self.source,
            last_price=format_decimal(self.last),
            status=self.status,
            bids=_levels_proto(self.bids),
            asks=_levels_proto(self.asks),
        )

    @classmethod
    def from_proto(cls, quote: market_data_pb2.Quote) -> Quote:
        return cls(
            instrument=quote.instrument,
            bid=Decimal(quote.bid_price),
            ask=Decimal(quote.ask_price),
            bid_size=Decimal(quote.bid_size),
            ask_size=Decimal(quote.ask_size),
            time=quote.quote_time.ToDatetime(tzinfo=UTC_TZ),
            source=quote.source,
            last=Decimal(quote.last_price) if quote.last_price else None,
            status=quote.status or types_pb2.INSTRUMENT_STATUS_TRADING,
            bids=_levels(quote.bids),
            asks=_levels(quote.asks),
        )


def _levels_proto(levels: tuple[Level, ...]) -> list[market_data_pb2.BookLevel]:
    return [
        market_data_pb2.BookLevel(price=format_decimal(price), size=format_decimal(size))
        for price, size in levels
    ]


def _levels(levels: Iterable[market_data_pb2.BookLevel]) -> tuple[Level, ...]:
    return tuple((Decimal(level.price), Decimal(level.size)) for level in levels)


class QuoteBook:
    """The latest quote of each instrument. A redelivered older quote never replaces a newer one."""

    def __init__(self) -> None:
        self._latest: dict[str, Quote] = {}

    def get(self, instrument: str) -> Quote | None:
        return self._latest.get(instrument)

    def update(self, quote: Quote) -> bool:
        """Keeps the quote when it is the newest; says whether it did."""
        latest = self._latest.get(quote.instrument)
        if latest is not None and quote.time < latest.time:
            return False
        self._latest[quote.instrument] = quote
        return True

    def apply(self, event: events_pb2.Event) -> Quote | None:
        """The quote a QuoteUpdated event carries, when it is the newest."""
        if event_kind(event) != "quote_updated":
            return None
        quote = Quote.from_proto(event.quote_updated.quote)
        return quote if self.update(quote) else None
