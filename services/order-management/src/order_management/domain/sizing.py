"""Signal sizing: how much a signal trades, and where its exits sit. Plain functions of the
signal, its sizing config, a quote and the account's equity; no I/O, exact arithmetic.

The methods (`signal_sizing.method`), at `price`, the price the signal is valued at
(validation.valuation_price: its limit, the touch for a market signal, and the bid for a sell
limit below it, so that a signal is never oversized):

- fixed_quantity:    quantity
- fixed_notional:    notional / price
- percent_of_equity: equity * percent_of_equity / 100 / price
- risk_per_trade:    equity * risk_percent / 100 / stop distance, the stop distance being how
  far the stop-loss is from the entry's price: what each unit loses if the stop is hit, so the
  whole order loses at most equity * risk_percent / 100 there (a stop-market exit may slip past
  its trigger). Needs a stop-loss on the signal.

Then times the signal's confidence (0 to 1) when `scale_by_confidence`, capped at `max_quantity`
and at `max_notional` / price, and rounded down to the instrument's step. A size of nothing is a
denial that says why and what to change, never an order of zero.

The entry's price is the signal's limit price, or for a market signal the touch it is sized at
(the ask to buy, the bid to sell). An exit given as a distance from it becomes a price on the
exit's side of it, rounded to the tick away from it: an exit is never nearer than asked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from decimal import Decimal
from fractions import Fraction

from trading.v1 import types_pb2
from trading_core.config import SIZING_AMOUNTS, Instrument, SignalSizing
from trading_core.decimals import format_decimal, multiply, shorten
from trading_core.quotes import Quote

from order_management.domain.emulator import exit_price_problem
from order_management.domain.validation import (
    Denial,
    ExitLevel,
    Exits,
    OrderRequest,
    Signal,
    valuation_price,
)

_BPS = 10_000


@dataclass(frozen=True)
class SizedSignal:
    """A signal's order, sized and with its exits priced, or why it sizes to nothing (`denial`,
    the order's quantity then 0); the validator gives the denial in place of its quantity
    check (PreTradeValidator.check's `sizing`)."""

    request: OrderRequest
    denial: Denial | None = None


def size_signal(
    signal: Signal,
    sizing: SignalSizing,
    instrument: Instrument,
    quote: Quote | None,
    equity: Decimal | None,
) -> SizedSignal:
    """Sizes a signal by `sizing` (its strategy's) and prices its exits. `equity`: the account's,
    needed by the methods sized from it (`sizing.uses_equity`)."""
    unsized = signal.order
    price = valuation_price(unsized, quote)
    if price is None:
        return SizedSignal(unsized, _no_price(unsized))
    entry = unsized.limit_price if unsized.limit_price is not None else price
    exits = exit_prices(signal, entry, instrument.tick_size)
    if isinstance(exits, Denial):
        return SizedSignal(unsized, exits)
    request = replace(unsized, exits=exits)
    if exits is not None:
        problem = exit_price_problem(request, quote)
        if problem is not None:
            return SizedSignal(request, problem)
    stop = None if exits is None else exits.stop_loss_trigger
    size = signal_quantity(
        sizing,
        instrument,
        price,
        confidence=signal.confidence,
        equity=equity,
        stop_distance=None if stop is None else abs(entry - stop),
        strategy_id=unsized.strategy_id,
    )
    if isinstance(size, Denial):
        return SizedSignal(request, size)
    return SizedSignal(replace(request, quantity=size))


def signal_quantity(
    sizing: SignalSizing,
    instrument: Instrument,
    price: Decimal,
    *,
    confidence: Decimal = Decimal(1),
    equity: Decimal | None = None,
    stop_distance: Decimal | None = None,
    strategy_id: str = "",
) -> Decimal | Denial:
    """The quantity `sizing` gives a signal valued at `price`: more than zero and on the
    instrument's step, or a Denial saying why there is none. Exact for any digits, never
    raises. `stop_distance`: from the entry's price to the stop-loss, for risk_per_trade."""
    if not price.is_finite() or price <= 0:
        return Denial(
            types_pb2.DENIAL_REASON_PRICE_NOT_POSITIVE,
            f"price {format_decimal(price) if price.is_finite() else price} must be greater "
            "than zero to size a signal",
        )
    method = sizing.method
    if sizing.uses_equity:
        assert equity is not None  # the caller gives it to the methods that use it
        if equity <= 0:
            return Denial(
                types_pb2.DENIAL_REASON_QUANTITY_NOT_POSITIVE,
                f"the account's equity {format_decimal(equity)} is not positive: {method} "
                "sizes a signal from it, so there is nothing to trade",
            )
    if method == "risk_per_trade" and stop_distance is None:
        return Denial(
            types_pb2.DENIAL_REASON_STOP_LOSS_REQUIRED,
            f"signals of strategy {shorten(strategy_id)!r} are sized by risk_per_trade (the "
            "amount risked divided by the distance to the stop-loss): give the signal a "
            "stop_loss, as a price or a distance",
        )
    if method == "risk_per_trade" and stop_distance is not None and stop_distance <= 0:
        return Denial(
            types_pb2.DENIAL_REASON_EXIT_PRICE_WRONG_SIDE,
            "the stop-loss is not away from the entry's price on the losing side: "
            "risk_per_trade divides the amount risked by that distance",
        )
    amount, basis = _amount(sizing, price, equity, stop_distance)
    scaled = sizing.scale_by_confidence and confidence != 1
    if scaled:
        amount *= Fraction(confidence)
        basis += f" times confidence {format_decimal(confidence)}"
    cap = None
    if sizing.max_quantity is not None and amount > Fraction(sizing.max_quantity):
        amount, cap = Fraction(sizing.max_quantity), "max_quantity"
        basis += f", capped by max_quantity {format_decimal(sizing.max_quantity)}"
    if sizing.max_notional is not None and amount * Fraction(price) > Fraction(sizing.max_notional):
        amount, cap = Fraction(sizing.max_notional) / Fraction(price), "max_notional"
        basis += f", capped by max_notional {format_decimal(sizing.max_notional)}"
    step = instrument.step_size
    steps = math.floor(amount / Fraction(step))
    if steps > 0:
        return multiply(Decimal(steps), step)
    if scaled and confidence == 0:
        hint = (
            "a confidence of 0 sizes to nothing: send one above 0, or set "
            "signal_sizing.scale_by_confidence to false"
        )
    elif cap is not None:
        hint = f"raise signal_sizing.{cap}"
    else:
        hint = f"raise signal_sizing.{SIZING_AMOUNTS[method]}"
        hint += ", or send a higher confidence" if scaled else ""
    return Denial(
        types_pb2.DENIAL_REASON_QUANTITY_NOT_POSITIVE,
        f"the signal sizes to nothing: {basis} is less than one step "
        f"({format_decimal(step)}) of {instrument.symbol}; {hint}",
    )


def _amount(
    sizing: SignalSizing, price: Decimal, equity: Decimal | None, stop_distance: Decimal | None
) -> tuple[Fraction, str]:
    """The method's quantity before confidence and caps, and how it was reached (for people)."""
    at = f" at {format_decimal(price)}"
    if sizing.method == "fixed_quantity":
        assert sizing.quantity is not None  # guaranteed by SignalSizing's validator
        return Fraction(sizing.quantity), f"quantity {format_decimal(sizing.quantity)}"
    if sizing.method == "fixed_notional":
        assert sizing.notional is not None
        return (
            Fraction(sizing.notional) / Fraction(price),
            f"notional {format_decimal(sizing.notional)}{at}",
        )
    assert equity is not None
    if sizing.method == "percent_of_equity":
        assert sizing.percent_of_equity is not None
        percent = sizing.percent_of_equity
        return (
            Fraction(equity) * Fraction(percent) / 100 / Fraction(price),
            f"{format_decimal(percent)}% of equity {format_decimal(equity)}{at}",
        )
    assert sizing.risk_percent is not None and stop_distance is not None
    risk = sizing.risk_percent
    return (
        Fraction(equity) * Fraction(risk) / 100 / Fraction(stop_distance),
        f"{format_decimal(risk)}% of equity {format_decimal(equity)} risked over a stop-loss "
        f"{format_decimal(stop_distance)} away",
    )


def exit_prices(signal: Signal, entry: Decimal, tick: Decimal) -> Exits | Denial | None:
    """The signal's exits at prices: a distance from `entry` (the entry's price) becomes a
    price on the exit's side of it, rounded to `tick` away from it. None without exits; a
    Denial when a distance reaches past zero."""
    if signal.take_profit is None and signal.stop_loss is None:
        return None
    buy = signal.order.side == types_pb2.SIDE_BUY
    prices: dict[str, Decimal | None] = {}
    for name, level, above in (
        ("take-profit", signal.take_profit, buy),
        ("stop-loss", signal.stop_loss, not buy),
    ):
        if level is None:
            prices[name] = None
            continue
        price = _price_of(level, entry, tick, above=above)
        if price <= 0:
            return Denial(
                types_pb2.DENIAL_REASON_PRICE_NOT_POSITIVE,
                f"the {name} {_distance_text(level)} below the entry's price "
                f"{format_decimal(entry)} would be at {format_decimal(price)}: an exit's price "
                "must be greater than zero; give a shorter distance or a price",
            )
        prices[name] = price
    return Exits(take_profit=prices["take-profit"], stop_loss_trigger=prices["stop-loss"])


def _price_of(level: ExitLevel, entry: Decimal, tick: Decimal, *, above: bool) -> Decimal:
    if level.price is not None:
        return level.price
    if level.distance is not None:
        distance = Fraction(level.distance)
    else:
        assert level.distance_bps is not None
        distance = Fraction(entry) * Fraction(level.distance_bps) / _BPS
    exact = Fraction(entry) + distance if above else Fraction(entry) - distance
    ticks = exact / Fraction(tick)
    return multiply(Decimal(math.ceil(ticks) if above else math.floor(ticks)), tick)


def _distance_text(level: ExitLevel) -> str:
    if level.distance_bps is not None:
        return f"{format_decimal(level.distance_bps)} bps"
    return format_decimal(level.distance) if level.distance is not None else ""


def _no_price(request: OrderRequest) -> Denial:
    return Denial(
        types_pb2.DENIAL_REASON_NO_MARKET_DATA,
        f"no quote for {request.instrument} yet to size the signal; retry shortly or give a "
        "limit price",
    )
