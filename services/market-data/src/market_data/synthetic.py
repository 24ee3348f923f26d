"""A seeded synthetic market-data feed: one random walk per instrument, quoted on its tick.

The walk is kept in Decimal; the RNG's float is turned into a Decimal at once (rounded to 8
places) and never kept, so the same seed and the same number of ticks give identical quotes.
Each quote also prints a last trade: the walk's mid rounded half-even to the tick, kept within
the bid and the ask (it draws nothing from the RNG, so the walk is the same with or without it).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal

from trading.v1 import types_pb2
from trading_core.config import Instrument, MarketData
from trading_core.prices import ceil_to_tick, floor_to_tick
from trading_core.quotes import Quote

_BPS = Decimal(10_000)
# Half the spread on each side of the mid: spread_bps / 2 / 10000.
_HALF_SPREAD_DIVISOR = Decimal(20_000)
# However large the configured volatility, one step at most halves the mid: it stays positive.
_MIN_STEP = Decimal("-0.5")


class SyntheticFeed:
    """Quotes every configured instrument once per `tick`, in config order.

    The first tick quotes around each instrument's `initial_price`; every later tick moves the
    mid one step of the walk: mid *= 1 + gauss(0, 1) * volatility_bps / 10000. The bid and ask
    sit half the spread either side of the mid, rounded away from it to the tick; the last trade
    price is the mid on the tick, within [bid, ask].
    """

    def __init__(
        self,
        instruments: Sequence[Instrument],
        settings: MarketData,
        mids: dict[str, Decimal] | None = None,
        ticks: int = 0,
    ) -> None:
        """`mids` and `ticks` continue an earlier walk (after a restart) where it stopped."""
        self._instruments = tuple(instruments)
        self._settings = settings
        # Seeded with the tick count too: a continued walk does not repeat the earlier steps.
        self._random = random.Random(f"{settings.seed}/{ticks}")
        self.ticks = ticks
        self._mids: dict[str, Decimal] = dict(mids or {})
        self._latest: dict[str, Quote] = {}

    def tick(self, now: datetime) -> list[Quote]:
        quotes = [
            self._quote(instrument, self._advance(instrument), now)
            for instrument in self._instruments
        ]
        self._latest.update((quote.instrument, quote) for quote in quotes)
        self.ticks += 1
        return quotes

    @property
    def mids(self) -> dict[str, Decimal]:
        """Where each instrument's walk stands, to continue it after a restart."""
        return dict(self._mids)

    def latest(self, instrument: str) -> Quote | None:
        return self._latest.get(instrument)

    def _advance(self, instrument: Instrument) -> Decimal:
        previous = self._mids.get(instrument.symbol)
        mid = instrument.initial_price if previous is None else previous * (1 + self._step())
        mid = max(mid, instrument.tick_size)
        self._mids[instrument.symbol] = mid
        return mid

    def _step(self) -> Decimal:
        draw = Decimal(str(round(self._random.gauss(0.0, 1.0), 8)))
        return max(draw * self._settings.volatility_bps / _BPS, _MIN_STEP)

    def _quote(self, instrument: Instrument, mid: Decimal, now: datetime) -> Quote:
        tick = instrument.tick_size
        half_spread = self._settings.spread_bps / _HALF_SPREAD_DIVISOR
        bid = max(floor_to_tick(mid * (1 - half_spread), tick), tick)
        ask = max(ceil_to_tick(mid * (1 + half_spread), tick), bid + tick)
        size = self._settings.quote_size
        last = _last_trade_price(mid, tick, bid, ask)
        status = _STATUSES[instrument.status]
        return Quote(instrument.symbol, bid, ask, size, size, time=now, last=last, status=status)


_STATUSES = {
    "trading": types_pb2.INSTRUMENT_STATUS_TRADING,
    "reduce_only": types_pb2.INSTRUMENT_STATUS_REDUCE_ONLY,
    "halted": types_pb2.INSTRUMENT_STATUS_HALTED,
    "closed": types_pb2.INSTRUMENT_STATUS_CLOSED,
}


def _last_trade_price(mid: Decimal, tick: Decimal, bid: Decimal, ask: Decimal) -> Decimal:
    """The mid rounded half-even to the tick, within [bid, ask]. The bid and ask are rounded
    away from the mid, so it lies between them already; the clamp keeps the guarantee should
    the quoting rules change."""
    on_tick = (mid / tick).to_integral_value(rounding=ROUND_HALF_EVEN) * tick
    return min(max(on_tick, bid), ask)
