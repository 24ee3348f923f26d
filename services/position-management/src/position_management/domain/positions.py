"""Net positions and P&L, built fill by fill, each fill applied once (by trade id).

P&L conventions:
- Average price and realized P&L follow `trading_core.lots.Lot` (the VWAP of the fills that
  opened the position; a reduction realizes against it; a fill through zero reopens at its
  price; flat has no average price).
- Fees accumulate in `fees` and are not subtracted from `realized_pnl`, so trading P&L and
  costs stay separately visible; `net_realized_pnl` is realized P&L after fees.
- Averages are divisions, computed at the decimal context's precision (28 significant digits);
  everything else is exact.
- On the wire (`to_proto`) the average price is rounded to the position's `Precision` (its
  instrument's tick decimals + 4) and realized and unrealized P&L, which multiply an average,
  to the quote currency's decimals (`quote_decimals`), half-even. Internally they keep their
  full precision, so rounding never compounds from fill to fill. Quantity, mark and fees are
  exact and shown exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from trading.v1 import positions_pb2, types_pb2
from trading_core.config import Instrument
from trading_core.decimals import DEFAULT_PRECISION, ZERO, Precision, format_decimal
from trading_core.events import timestamp
from trading_core.lots import Lot
from trading_core.quotes import Quote


@dataclass(frozen=True)
class Fill:
    """One execution of an order, as position-management applies it."""

    trade_id: str
    order_id: str
    account_id: str
    instrument: str
    side: types_pb2.Side.ValueType
    quantity: Decimal
    price: Decimal
    fee: Decimal
    time: datetime

    @property
    def signed_quantity(self) -> Decimal:
        if self.side == types_pb2.SIDE_BUY:
            return self.quantity
        if self.side == types_pb2.SIDE_SELL:
            return -self.quantity
        raise ValueError(f"fill {self.trade_id} has no side (BUY or SELL)")


RECENT_TRADE_IDS = 1_000


@dataclass
class Position:
    """The net position of one account in one instrument; quantity is signed (short < 0)."""

    account_id: str
    instrument: str
    quantity: Decimal = ZERO
    average_price: Decimal | None = None
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO
    mark_price: Decimal | None = None
    sequence: int = 0
    update_time: datetime | None = None
    # The trade ids of its latest fills (insertion ordered), at most RECENT_TRADE_IDS: memory
    # stays bounded however long it trades. Older repeats are the keeper's to refuse: position-
    # management checks every trade id against its journal's fills first.
    recent_trade_ids: dict[str, None] = field(default_factory=dict, compare=False)
    # How derived amounts are shown on the wire: the instrument's.
    precision: Precision = field(default=DEFAULT_PRECISION, compare=False)

    @property
    def net_realized_pnl(self) -> Decimal:
        return self.realized_pnl - self.fees

    @property
    def unrealized_pnl(self) -> Decimal:
        if self.mark_price is None or self.average_price is None or not self.quantity:
            return ZERO
        return (self.mark_price - self.average_price) * self.quantity

    def apply_fill(self, fill: Fill) -> bool:
        """Applies a fill once; False, and nothing changes, when its trade id was applied."""
        if (fill.account_id, fill.instrument) != (self.account_id, self.instrument):
            raise ValueError(
                f"fill {fill.trade_id} is for {fill.account_id}/{fill.instrument}, "
                f"not this position {self.account_id}/{self.instrument}"
            )
        if fill.trade_id in self.recent_trade_ids:
            return False
        if fill.quantity <= 0:
            raise ValueError(f"fill {fill.trade_id} has quantity {fill.quantity}; must be positive")
        lot, realized = Lot(self.quantity, self.average_price).fill(
            fill.signed_quantity, fill.price
        )
        self.quantity, self.average_price = lot.quantity, lot.average_price
        self.realized_pnl += realized
        self.fees += fill.fee
        self.recent_trade_ids[fill.trade_id] = None
        if len(self.recent_trade_ids) > RECENT_TRADE_IDS:
            del self.recent_trade_ids[next(iter(self.recent_trade_ids))]
        self._touch(fill.time)
        return True

    def mark(self, price: Decimal, now: datetime) -> bool:
        """Marks the position to `price`; False when it was already marked there. A mark is not
        a change of the position: its sequence stays (review A7)."""
        if price == self.mark_price:
            return False
        self.mark_price = price
        self._advance_time(now)
        return True

    def to_proto(self) -> positions_pb2.Position:
        shown = self.precision
        position = positions_pb2.Position(
            account_id=self.account_id,
            instrument=self.instrument,
            quantity=format_decimal(self.quantity),
            average_price=format_decimal(shown.average_price(self.average_price)),
            realized_pnl=format_decimal(shown.money(self.realized_pnl)),
            unrealized_pnl=format_decimal(shown.money(self.unrealized_pnl)),
            mark_price=format_decimal(self.mark_price),
            fees=format_decimal(self.fees),
            sequence=self.sequence,
        )
        if self.update_time is not None:
            position.update_time.CopyFrom(timestamp(self.update_time))
        return position

    def _touch(self, now: datetime) -> None:
        self.sequence += 1
        self._advance_time(now)

    def _advance_time(self, now: datetime) -> None:
        """The update time never goes backwards (a fill's time may precede the last mark's)."""
        if self.update_time is None or now > self.update_time:
            self.update_time = now


class PositionBook:
    """Every position, by account and instrument. Returned positions are the live objects.

    Positions in the given instruments are shown at their precision, others at the default."""

    def __init__(self, instruments: Iterable[Instrument] = ()) -> None:
        self._by_instrument: dict[str, dict[str, Position]] = {}
        self._precisions = {i.symbol: Precision.of(i) for i in instruments}

    def apply_fill(self, fill: Fill) -> Position | None:
        """The position the fill changed, or None when the fill was applied before."""
        accounts = self._by_instrument.setdefault(fill.instrument, {})
        position = accounts.get(fill.account_id)
        if position is None:
            precision = self._precisions.get(fill.instrument, DEFAULT_PRECISION)
            position = Position(fill.account_id, fill.instrument, precision=precision)
        if not position.apply_fill(fill):
            return None
        accounts[fill.account_id] = position
        return position

    def put(self, position: Position) -> None:
        """Puts back a position as it was saved."""
        position.precision = self._precisions.get(position.instrument, DEFAULT_PRECISION)
        self._by_instrument.setdefault(position.instrument, {})[position.account_id] = position

    def mark(self, quote: Quote) -> list[Position]:
        """Marks every position in the quote's instrument at its mid; returns the changed ones."""
        accounts = self._by_instrument.get(quote.instrument, {})
        return [position for position in accounts.values() if position.mark(quote.mid, quote.time)]

    def get(self, account_id: str, instrument: str) -> Position | None:
        return self._by_instrument.get(instrument, {}).get(account_id)

    def positions(self, account_id: str | None = None) -> list[Position]:
        """Positions sorted by account then instrument, optionally of one account."""
        every = (p for accounts in self._by_instrument.values() for p in accounts.values())
        chosen = [p for p in every if account_id is None or p.account_id == account_id]
        return sorted(chosen, key=lambda p: (p.account_id, p.instrument))
