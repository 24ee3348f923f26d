"""Pre-trade validation: parsing requests into plain data, then checking them against config.

Two kinds of refusal, kept apart on purpose:
- `InvalidRequest` is malformed input (missing ids, unknown enum numbers, text where a decimal
  belongs). It creates no order; the API answers INVALID_ARGUMENT.
- `Denial` is a well-formed order that breaks a rule (size, price, limits, market data). It
  becomes an order in status DENIED with a reason code.

Decimals are parsed with the one wire grammar of `trading_core.decimals`, so an unbounded
number is malformed, never a stored order. A message quotes at most 32 characters of any value
the caller sent.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import TypeAlias

from trading.v1 import orders_pb2, types_pb2
from trading_core.config import Instrument, OrderDefaults, PlatformConfig, SignalSizing
from trading_core.decimals import (
    ZERO,
    format_decimal,
    is_multiple,
    multiply,
    parse_decimal,
    shorten,
    whole_multiples,
)
from trading_core.quotes import Quote
from trading_core.requests import text_problem

Side: TypeAlias = types_pb2.Side.ValueType
OrderType: TypeAlias = types_pb2.OrderType.ValueType
TimeInForce: TypeAlias = types_pb2.TimeInForce.ValueType
DenialReason: TypeAlias = types_pb2.DenialReason.ValueType

# Larger quantities and prices cannot be real orders (the wire grammar allows 21 digits).
MAX_INTEGER_DIGITS = 15

_ORDER_TYPES = {"market": types_pb2.ORDER_TYPE_MARKET, "limit": types_pb2.ORDER_TYPE_LIMIT}
_TIMES_IN_FORCE = {"gtc": types_pb2.TIME_IN_FORCE_GTC, "ioc": types_pb2.TIME_IN_FORCE_IOC}


class InvalidRequest(ValueError):
    """A request that is malformed; `field` names the offending request field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class OrderRequest:
    """A well-formed order request, defaults applied; not yet checked against any rule."""

    request_id: str
    client_order_id: str
    account_id: str
    strategy_id: str
    signal_id: str  # set only for the order of a signal
    instrument: str
    side: Side
    order_type: OrderType
    time_in_force: TimeInForce
    quantity: Decimal
    limit_price: Decimal | None
    reduce_only: bool = False


@dataclass(frozen=True)
class Denial:
    reason: DenialReason
    message: str


# --- parsing -------------------------------------------------------------------------------


def parse_submit_order(
    request: orders_pb2.SubmitOrderRequest, defaults: OrderDefaults
) -> OrderRequest:
    """Turns a SubmitOrderRequest into an OrderRequest; raises InvalidRequest if malformed.

    An unspecified order type is a limit order when a limit price is given (as in a signal),
    otherwise the configured default type."""
    has_price = bool(request.limit_price.strip())
    order_type = _order_type(request.order_type, has_price, defaults)
    return OrderRequest(
        request_id=_required_text(request.request_id, "request_id"),
        client_order_id=_required_text(request.client_order_id, "client_order_id"),
        account_id=_required_text(request.account_id, "account_id"),
        strategy_id=_optional_text(request.strategy_id, "strategy_id"),
        signal_id="",
        instrument=_required_text(request.instrument, "instrument"),
        side=_side(request.side),
        order_type=order_type,
        time_in_force=_time_in_force(request.time_in_force, defaults),
        quantity=_amount(request.quantity, "quantity"),
        limit_price=_limit_price(request.limit_price, order_type),
        reduce_only=request.reduce_only,
    )


def parse_submit_signal(
    request: orders_pb2.SubmitSignalRequest,
    quantity: Decimal,
    signal_id: str,
    defaults: OrderDefaults,
) -> OrderRequest:
    """Turns a sized signal into an OrderRequest: a limit order when it names a limit price,
    otherwise a market order; time in force from the defaults. Raises InvalidRequest."""
    has_price = bool(request.limit_price.strip())
    order_type = types_pb2.ORDER_TYPE_LIMIT if has_price else types_pb2.ORDER_TYPE_MARKET
    return OrderRequest(
        request_id=_required_text(request.request_id, "request_id"),
        client_order_id=_required_text(request.client_order_id, "client_order_id"),
        account_id=_required_text(request.account_id, "account_id"),
        strategy_id=_optional_text(request.strategy_id, "strategy_id"),
        signal_id=_required_text(signal_id, "signal_id"),
        instrument=_required_text(request.instrument, "instrument"),
        side=_side(request.side),
        order_type=order_type,
        time_in_force=_TIMES_IN_FORCE[defaults.time_in_force],
        quantity=quantity,
        limit_price=_limit_price(request.limit_price, order_type),
    )


def size_signal(sizing: SignalSizing, instrument: Instrument, price: Decimal) -> Decimal:
    """The quantity a signal trades: the fixed quantity, or the fixed notional divided by the
    price and rounded down to the instrument's step. Size at `valuation_price`, so that a limit
    signal is never oversized. May be 0 (the validator then denies it); it is 0 for a price
    that is not positive, where no notional-based size is meaningful. Exact for any digits and
    never raises."""
    if sizing.method == "fixed_quantity":
        assert sizing.quantity is not None  # guaranteed by SignalSizing's validator
        return sizing.quantity
    assert sizing.notional is not None
    if not price.is_finite() or price <= 0:
        return ZERO
    steps = whole_multiples(sizing.notional, multiply(price, instrument.step_size))
    return multiply(Decimal(steps), instrument.step_size)


def _required_text(value: str, field: str) -> str:
    return _checked_text(value, field, required=True)


def _optional_text(value: str, field: str) -> str:
    return _checked_text(value, field, required=False)


def _checked_text(value: str, field: str, *, required: bool) -> str:
    problem = text_problem(value, field, required=required)
    if problem is not None:
        raise InvalidRequest(field, problem)
    return value


def _side(value: int) -> Side:
    if value in (types_pb2.SIDE_BUY, types_pb2.SIDE_SELL):
        return types_pb2.Side.ValueType(value)
    what = "is required" if value == types_pb2.SIDE_UNSPECIFIED else f"{value} is not known"
    raise InvalidRequest("side", f"side {what}: use SIDE_BUY or SIDE_SELL")


def _order_type(value: int, has_price: bool, defaults: OrderDefaults) -> OrderType:
    if value == types_pb2.ORDER_TYPE_UNSPECIFIED and has_price:
        return types_pb2.ORDER_TYPE_LIMIT
    if value == types_pb2.ORDER_TYPE_UNSPECIFIED:
        return _ORDER_TYPES[defaults.default_order_type]
    if value in _ORDER_TYPES.values():
        return types_pb2.OrderType.ValueType(value)
    raise InvalidRequest(
        "order_type", f"order_type {value} is not known: use ORDER_TYPE_MARKET or ORDER_TYPE_LIMIT"
    )


def _time_in_force(value: int, defaults: OrderDefaults) -> TimeInForce:
    if value == types_pb2.TIME_IN_FORCE_UNSPECIFIED:
        return _TIMES_IN_FORCE[defaults.time_in_force]
    if value in _TIMES_IN_FORCE.values():
        return types_pb2.TimeInForce.ValueType(value)
    raise InvalidRequest(
        "time_in_force",
        f"time_in_force {value} is not known: use TIME_IN_FORCE_GTC or TIME_IN_FORCE_IOC",
    )


def _amount(text: str, field: str) -> Decimal:
    try:
        value = parse_decimal(text, field)
    except ValueError as error:
        raise InvalidRequest(field, str(error)) from None
    assert value is not None  # required=True never returns None
    if value.adjusted() >= MAX_INTEGER_DIGITS:
        raise InvalidRequest(
            field,
            f"{field} is out of range: at most {MAX_INTEGER_DIGITS} digits before the decimal "
            f"point, got {shorten(text)!r}",
        )
    return value


def _limit_price(text: str, order_type: OrderType) -> Decimal | None:
    if order_type == types_pb2.ORDER_TYPE_LIMIT:
        if not text.strip():
            raise InvalidRequest("limit_price", "limit_price is required for a limit order")
        return _amount(text, "limit_price")
    if text.strip():
        raise InvalidRequest(
            "limit_price",
            f"limit_price must be empty for a market order, got {shorten(text)!r}",
        )
    return None


# --- account activity ----------------------------------------------------------------------


class AccountActivity:
    """When each account's accepted orders were accepted, for daily and rate limits.

    Times must be timezone-aware. Entries older than `retention` (at least a day, so that the
    whole current UTC day is always kept) are pruned as new ones are recorded. Replay restores
    the history by calling `record` with each accepted order's time.
    """

    def __init__(self, retention: timedelta = timedelta(days=1)) -> None:
        if retention < timedelta(days=1):
            raise ValueError(f"retention must be at least one day, got {retention}")
        self._retention = retention
        self._times: dict[str, list[datetime]] = {}

    def record(self, account_id: str, now: datetime) -> None:
        times = self._times.setdefault(account_id, [])
        bisect.insort(times, now)
        del times[: bisect.bisect_left(times, now - self._retention)]

    def orders_on_day(self, account_id: str, now: datetime) -> int:
        """Accepted orders on the UTC day of `now`."""
        day_start = datetime.combine(now.astimezone(UTC).date(), time(), tzinfo=UTC)
        return self._count(account_id, day_start, day_start + timedelta(days=1))

    def orders_in_window(self, account_id: str, now: datetime, window: timedelta) -> int:
        """Accepted orders in the `window` up to and including `now`."""
        if window > self._retention:
            raise ValueError(f"window {window} is longer than the retention {self._retention}")
        return self._count(account_id, now - window, now, include_end=True, include_start=False)

    def _count(
        self,
        account_id: str,
        start: datetime,
        end: datetime,
        *,
        include_start: bool = True,
        include_end: bool = False,
    ) -> int:
        times = self._times.get(account_id, [])
        first = (bisect.bisect_left if include_start else bisect.bisect_right)(times, start)
        last = (bisect.bisect_right if include_end else bisect.bisect_left)(times, end)
        return max(0, last - first)


# --- rule checks ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    request: OrderRequest
    instrument: Instrument
    quote: Quote | None
    activity: AccountActivity
    now: datetime


class PreTradeValidator:
    """Checks a well-formed request against config, account limits and market data.

    Returns the first rule broken as a Denial, or None. It does not record anything: the caller
    records accepted orders in AccountActivity. The limit price is checked before the quantity,
    since a signal's quantity is derived from its price: a signal priced at -5 is denied for
    its price, not for the zero quantity that price sizes to.

    Order values (min_notional, max_order_value) are judged at `valuation_price`: the highest
    price the order may trade at, never its limit alone.
    """

    def __init__(self, config: PlatformConfig) -> None:
        self._config = config
        self._checks: tuple[Callable[[_Context], Denial | None], ...] = (
            self._limit_price_valid,
            self._limit_price_in_range,
            self._quantity_positive,
            self._quantity_on_step,
            self._min_order_size,
            self._notional,
            self._daily_orders,
            self._rate,
        )

    def check(
        self,
        request: OrderRequest,
        quote: Quote | None,
        activity: AccountActivity,
        now: datetime,
    ) -> Denial | None:
        instrument = self._config.instrument(request.instrument)
        if instrument is None:
            configured = ", ".join(i.symbol for i in self._config.instruments)
            return Denial(
                types_pb2.DENIAL_REASON_INSTRUMENT_NOT_CONFIGURED,
                f"instrument {shorten(request.instrument)!r} is not configured; "
                f"configured instruments: {configured}",
            )
        context = _Context(request, instrument, quote, activity, now)
        return next((d for d in (check(context) for check in self._checks) if d), None)

    @staticmethod
    def _quantity_positive(c: _Context) -> Denial | None:
        quantity = c.request.quantity
        if quantity > 0:
            return None
        return Denial(
            types_pb2.DENIAL_REASON_QUANTITY_NOT_POSITIVE,
            f"quantity {format_decimal(quantity)} must be greater than zero",
        )

    @staticmethod
    def _quantity_on_step(c: _Context) -> Denial | None:
        quantity, step = c.request.quantity, c.instrument.step_size
        if is_multiple(quantity, step):
            return None
        return Denial(
            types_pb2.DENIAL_REASON_QUANTITY_NOT_ON_STEP,
            f"quantity {format_decimal(quantity)} is not a multiple of the step size "
            f"{format_decimal(step)} for {c.instrument.symbol}",
        )

    @staticmethod
    def _limit_price_valid(c: _Context) -> Denial | None:
        price, tick = c.request.limit_price, c.instrument.tick_size
        if price is None:
            return None
        if price <= 0:
            return Denial(
                types_pb2.DENIAL_REASON_PRICE_NOT_POSITIVE,
                f"limit price {format_decimal(price)} must be greater than zero",
            )
        if not is_multiple(price, tick):
            return Denial(
                types_pb2.DENIAL_REASON_PRICE_NOT_ON_TICK,
                f"limit price {format_decimal(price)} is not a multiple of the tick size "
                f"{format_decimal(tick)} for {c.instrument.symbol}",
            )
        return None

    def _limit_price_in_range(self, c: _Context) -> Denial | None:
        """Out of range: one step at the limit price is worth more than the largest order the
        request may become, so no quantity could pass (a signal would size to nothing)."""
        price, step = c.request.limit_price, c.instrument.step_size
        if price is None:
            return None
        one_step = multiply(price, step)
        largest, what = self._largest_order(c.request)
        if one_step <= largest:
            return None
        return Denial(
            types_pb2.DENIAL_REASON_PRICE_OUT_OF_RANGE,
            f"limit price {format_decimal(price)} is out of range for {c.instrument.symbol}: "
            f"one step ({format_decimal(step)}) at that price is worth "
            f"{format_decimal(one_step)}, more than {what} {format_decimal(largest)}",
        )

    def _largest_order(self, request: OrderRequest) -> tuple[Decimal, str]:
        """The largest value the request's order may have, and what sets it."""
        limit = self._config.account_limits.max_order_value
        notional = self._config.signal_sizing.notional
        sized_by_notional = self._config.signal_sizing.method == "fixed_notional"
        if request.signal_id and sized_by_notional and notional is not None and notional < limit:
            return notional, "the signal notional"
        return limit, "the maximum order value"

    def _min_order_size(self, c: _Context) -> Denial | None:
        minimum = self._config.account_limits.min_order_size
        if c.request.quantity >= minimum:
            return None
        return Denial(
            types_pb2.DENIAL_REASON_BELOW_MIN_ORDER_SIZE,
            f"quantity {format_decimal(c.request.quantity)} is below the minimum order size "
            f"{format_decimal(minimum)}",
        )

    def _notional(self, c: _Context) -> Denial | None:
        reference = valuation_price(c.request, c.quote)
        if reference is None:
            return _no_market_data(c.request)
        notional = multiply(c.request.quantity, reference)
        if notional < c.instrument.min_notional:
            return Denial(
                types_pb2.DENIAL_REASON_BELOW_MIN_NOTIONAL,
                f"order value {format_decimal(notional)} (quantity "
                f"{format_decimal(c.request.quantity)} at {format_decimal(reference)}) is below "
                f"the minimum notional {format_decimal(c.instrument.min_notional)} "
                f"for {c.instrument.symbol}",
            )
        limit = self._config.account_limits.max_order_value
        if notional > limit:
            return Denial(
                types_pb2.DENIAL_REASON_ORDER_VALUE_EXCEEDS_LIMIT,
                f"order value {format_decimal(notional)} (quantity "
                f"{format_decimal(c.request.quantity)} at {format_decimal(reference)}) exceeds "
                f"the maximum order value {format_decimal(limit)}",
            )
        return None

    def _daily_orders(self, c: _Context) -> Denial | None:
        limit = self._config.account_limits.max_daily_orders
        if c.activity.orders_on_day(c.request.account_id, c.now) < limit:
            return None
        return Denial(
            types_pb2.DENIAL_REASON_DAILY_ORDER_LIMIT_EXCEEDED,
            f"account {shorten(c.request.account_id)} has reached its limit of {limit} orders "
            f"for {c.now.astimezone(UTC).date().isoformat()} (UTC)",
        )

    def _rate(self, c: _Context) -> Denial | None:
        defaults = self._config.order_defaults
        window = timedelta(milliseconds=defaults.rate_limit_window_ms)
        if c.activity.orders_in_window(c.request.account_id, c.now, window) < (
            defaults.rate_limit_orders
        ):
            return None
        return Denial(
            types_pb2.DENIAL_REASON_RATE_LIMIT_EXCEEDED,
            f"account {shorten(c.request.account_id)} has reached its rate limit of "
            f"{defaults.rate_limit_orders} orders per {defaults.rate_limit_window_ms} ms; "
            "retry shortly",
        )


def valuation_price(request: OrderRequest, quote: Quote | None) -> Decimal | None:
    """The price an order's value is judged at, and a signal is sized at: the highest price the
    order may trade at, so that neither the value checks nor a signal's size understate it.

    - A market order: the touch it trades at (the ask to buy, the bid to sell); None when
      there is none.
    - A buy limit: its limit. It never pays more (a marketable one pays the lower ask).
    - A sell limit: the higher of its limit and the bid. A sell limit below the bid fills at
      the bid, so its limit understates it: 1000 BTC offered at 0.01 with the bid near 59,000
      is worth about 59 million, not 10.
    - A limit order without a touch to compare: its limit.
    """
    touch = _touch(request.side, quote)
    limit = request.limit_price
    if limit is None:
        return touch
    if request.side == types_pb2.SIDE_SELL and touch is not None:
        return max(limit, touch)
    return limit


def _touch(side: Side, quote: Quote | None) -> Decimal | None:
    """The ask to buy, the bid to sell; None without a positive one."""
    if quote is None:
        return None
    price = quote.ask if side == types_pb2.SIDE_BUY else quote.bid
    return price if price > 0 else None


def _no_market_data(request: OrderRequest) -> Denial:
    book_side = "ask" if request.side == types_pb2.SIDE_BUY else "bid"
    return Denial(
        types_pb2.DENIAL_REASON_NO_MARKET_DATA,
        f"no {book_side} price for {request.instrument}: a market order needs a current "
        "quote to check its value; retry when market data is available or send a limit order",
    )
