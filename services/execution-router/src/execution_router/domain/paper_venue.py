"""The paper-trading venue: a matching engine against the synthetic quote, no I/O.

Prices: a market order pays the touch plus slippage, rounded to the tick against the trader; a
limit order that crosses fills at the touch (price improvement, no slippage) up to the quote's
displayed size, resting orders sharing that size in time priority.

Fees are money actually charged: fill notional * fee_bps / 10000, computed exactly, then rounded
up (ceiling) to the instrument's `quote_decimals`, against the trader as prices are. The average
price is the VWAP of the fills, computed at the decimal context's precision (28 significant
digits).

Terminal reports (FILLED, CANCELED, EXPIRED) carry leaves_quantity 0, as FIX does; an expiry's
or a cancel's message says how much was left unfilled.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import ROUND_CEILING, Decimal

from trading.v1 import types_pb2
from trading_core.config import Instrument, SimulationVenue
from trading_core.decimals import ZERO, format_decimal, multiply, quantize
from trading_core.events import new_id as random_id
from trading_core.prices import ceil_to_tick, floor_to_tick
from trading_core.quotes import Quote

from execution_router.domain.venue_types import Report, VenueOrder

VENUE_NAME = "simulation"

_BPS = Decimal(10_000)
_BUY = types_pb2.SIDE_BUY
_SELL = types_pb2.SIDE_SELL
_MARKET = types_pb2.ORDER_TYPE_MARKET
_LIMIT = types_pb2.ORDER_TYPE_LIMIT
_GTC = types_pb2.TIME_IN_FORCE_GTC
_IOC = types_pb2.TIME_IN_FORCE_IOC


@dataclass
class _WorkingOrder:
    """An accepted order and what has filled of it so far."""

    order: VenueOrder
    venue_order_id: str
    cumulative_quantity: Decimal = ZERO
    filled_notional: Decimal = ZERO

    @property
    def leaves_quantity(self) -> Decimal:
        return self.order.quantity - self.cumulative_quantity

    @property
    def average_price(self) -> Decimal | None:
        if not self.cumulative_quantity:
            return None
        return self.filled_notional / self.cumulative_quantity

    def report(
        self, execution_type: types_pb2.ExecutionType.ValueType, message: str = ""
    ) -> Report:
        """A report without a fill; a finished order (canceled, expired) leaves nothing."""
        finished = execution_type in (
            types_pb2.EXECUTION_TYPE_CANCELED,
            types_pb2.EXECUTION_TYPE_EXPIRED,
        )
        return Report(
            execution_type=execution_type,
            order_id=self.order.order_id,
            venue_order_id=self.venue_order_id,
            side=self.order.side,
            cumulative_quantity=self.cumulative_quantity,
            leaves_quantity=ZERO if finished else self.leaves_quantity,
            average_price=self.average_price,
            message=message,
        )

    def fill(self, quantity: Decimal, price: Decimal, fee: Decimal, trade_id: str) -> Report:
        self.cumulative_quantity += quantity
        self.filled_notional += quantity * price
        done = self.leaves_quantity == 0
        return Report(
            execution_type=(
                types_pb2.EXECUTION_TYPE_FILLED
                if done
                else types_pb2.EXECUTION_TYPE_PARTIALLY_FILLED
            ),
            order_id=self.order.order_id,
            venue_order_id=self.venue_order_id,
            side=self.order.side,
            trade_id=trade_id,
            last_quantity=quantity,
            last_price=price,
            fee=fee,
            cumulative_quantity=self.cumulative_quantity,
            leaves_quantity=self.leaves_quantity,
            average_price=self.average_price,
        )


def _crosses(order: VenueOrder, quote: Quote) -> bool:
    assert order.limit_price is not None
    if order.side == _BUY:
        return order.limit_price >= quote.ask
    return order.limit_price <= quote.bid


def _touch(side: types_pb2.Side.ValueType, quote: Quote) -> Decimal:
    return quote.ask if side == _BUY else quote.bid


def _beyond_protection(order: VenueOrder, price: Decimal) -> bool:
    protection = order.protection_price
    if protection is None:
        return False
    return price > protection if order.side == _BUY else price < protection


def _displayed_size(side: types_pb2.Side.ValueType, quote: Quote) -> Decimal:
    return quote.ask_size if side == _BUY else quote.bid_size


class PaperVenue:
    """Matches orders against the latest synthetic quote; keeps resting GTC limit orders."""

    name = VENUE_NAME

    def __init__(
        self,
        settings: SimulationVenue,
        instruments: Mapping[str, Instrument],
        new_id: Callable[[], str] = random_id,
    ) -> None:
        self._settings = settings
        self._instruments = dict(instruments)
        self._new_id = new_id
        self._seen_order_ids: set[str] = set()
        # Insertion order is time priority.
        self._resting: dict[str, _WorkingOrder] = {}

    def submit(self, order: VenueOrder, quote: Quote | None, now: datetime) -> list[Report]:
        """Acknowledges and matches a new order; a repeated order id changes nothing."""
        if order.order_id in self._seen_order_ids:
            return []
        self._seen_order_ids.add(order.order_id)
        problem = self._problem(order, quote)
        if problem:
            return [self._rejection(order, problem)]
        working = _WorkingOrder(order, venue_order_id=self._new_id())
        accepted = working.report(types_pb2.EXECUTION_TYPE_ACCEPTED)
        if order.order_type == _MARKET:
            assert quote is not None
            return [accepted, self._execute_market(working, quote)]
        return [accepted, *self._match_arriving_limit(working, quote)]

    def _execute_market(self, working: _WorkingOrder, quote: Quote) -> Report:
        """A market order's fill of what is left of it, or its expiry beyond its protection."""
        order = working.order
        price = self._market_price(order, quote)
        if _beyond_protection(order, price):
            message = (
                f"price protection: the fill price {price} is beyond the protection price "
                f"{order.protection_price}; nothing filled"
            )
            return working.report(types_pb2.EXECUTION_TYPE_EXPIRED, message)
        return self._fill(working, working.leaves_quantity, price)

    def on_quote(self, quote: Quote, now: datetime) -> list[Report]:
        """Fills resting orders the quote crosses, sharing its displayed size in time priority."""
        available = {_BUY: quote.ask_size, _SELL: quote.bid_size}
        reports: list[Report] = []
        for working in list(self._resting.values()):
            order = working.order
            if order.instrument != quote.instrument:
                continue
            if order.order_type == _MARKET:  # restored: accepted, then a restart before its fill
                del self._resting[order.order_id]
                reports.append(self._execute_market(working, quote))
                continue
            if not _crosses(order, quote):
                continue
            quantity = min(working.leaves_quantity, available[order.side])
            if quantity <= 0:
                continue
            available[order.side] -= quantity
            reports.append(self._fill(working, quantity, _touch(order.side, quote)))
            if working.leaves_quantity == 0:
                del self._resting[order.order_id]
        return reports

    def cancel(self, order_id: str, request_id: str, now: datetime) -> list[Report]:
        """Cancels a resting order; an unknown or finished order gets a cancel rejection."""
        working = self._resting.pop(order_id, None)
        if working is None:
            known = "has already finished" if order_id in self._seen_order_ids else "is not known"
            message = f"cannot cancel: the order {known} at the venue"
            rejected = types_pb2.EXECUTION_TYPE_CANCEL_REJECTED
            unknown_side = types_pb2.SIDE_UNSPECIFIED
            return [Report.nothing_filled(rejected, order_id, unknown_side, message, request_id)]
        remainder = format_decimal(working.leaves_quantity)
        canceled = working.report(
            types_pb2.EXECUTION_TYPE_CANCELED, f"canceled; {remainder} unfilled"
        )
        return [replace(canceled, request_id=request_id)]

    def restore(
        self,
        order: VenueOrder,
        *,
        venue_order_id: str,
        cumulative_quantity: Decimal,
        average_price: Decimal | None,
    ) -> None:
        """Puts back a resting order after a restart, with what had filled of it."""
        self._seen_order_ids.add(order.order_id)
        self._resting[order.order_id] = _WorkingOrder(
            order,
            venue_order_id=venue_order_id,
            cumulative_quantity=cumulative_quantity,
            filled_notional=cumulative_quantity * (average_price or ZERO),
        )

    def open_orders(self) -> list[Report]:
        """Each resting order as its latest state."""
        return [w.report(types_pb2.EXECUTION_TYPE_ACCEPTED) for w in self._resting.values()]

    def _problem(self, order: VenueOrder, quote: Quote | None) -> str:
        """Why the venue refuses the order, or "" when it takes it."""
        if order.instrument not in self._instruments:
            known = ", ".join(sorted(self._instruments)) or "none"
            return f"instrument {order.instrument!r} is not traded here; tradable: {known}"
        if order.side not in (_BUY, _SELL):
            return "side must be BUY or SELL"
        if order.quantity <= 0:
            return f"quantity must be positive, got {format_decimal(order.quantity)}"
        if order.order_type == _MARKET:
            if quote is None:
                return (
                    f"no quote for {order.instrument} yet; a market order needs a price, "
                    "retry once market data arrives or send a limit order"
                )
            return ""
        if order.order_type != _LIMIT:
            return "order type must be MARKET or LIMIT"
        if order.limit_price is None or order.limit_price <= 0:
            return "a limit order needs a positive limit price"
        if order.time_in_force not in (_GTC, _IOC):
            return "time in force of a limit order must be GTC or IOC"
        return ""

    def _rejection(self, order: VenueOrder, message: str) -> Report:
        rejected = types_pb2.EXECUTION_TYPE_REJECTED
        return Report.nothing_filled(rejected, order.order_id, order.side, message)

    def _market_price(self, order: VenueOrder, quote: Quote) -> Decimal:
        """The touch moved by slippage, rounded to the tick against the trader."""
        tick = self._instruments[order.instrument].tick_size
        slippage = self._settings.slippage_bps / _BPS
        if order.side == _BUY:
            return ceil_to_tick(quote.ask * (1 + slippage), tick)
        return max(floor_to_tick(quote.bid * (1 - slippage), tick), tick)

    def _match_arriving_limit(self, working: _WorkingOrder, quote: Quote | None) -> list[Report]:
        order = working.order
        reports: list[Report] = []
        if quote is not None and _crosses(order, quote):
            quantity = min(order.quantity, _displayed_size(order.side, quote))
            if quantity > 0:
                reports.append(self._fill(working, quantity, _touch(order.side, quote)))
        if working.leaves_quantity == 0:
            return reports
        if order.time_in_force == _IOC:
            remainder = format_decimal(working.leaves_quantity)
            message = f"immediate-or-cancel: unfilled remainder {remainder} expired"
            reports.append(working.report(types_pb2.EXECUTION_TYPE_EXPIRED, message))
        else:
            self._resting[order.order_id] = working
        return reports

    def _fill(self, working: _WorkingOrder, quantity: Decimal, price: Decimal) -> Report:
        decimals = self._instruments[working.order.instrument].quote_decimals
        exact = multiply(multiply(quantity, price), self._settings.fee_bps / _BPS)
        fee = quantize(exact, decimals, ROUND_CEILING)
        return working.fill(quantity, price, fee, trade_id=self._new_id())
