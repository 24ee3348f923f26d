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
from typing import Any, TypeAlias

from trading.v1 import orders_pb2, types_pb2
from trading_core.config import Instrument, OrderDefaults, PlatformConfig
from trading_core.decimals import (
    ZERO,
    format_decimal,
    is_multiple,
    multiply,
    parse_decimal,
    shorten,
)
from trading_core.quotes import Quote
from trading_core.requests import text_problem

Side: TypeAlias = types_pb2.Side.ValueType
OrderType: TypeAlias = types_pb2.OrderType.ValueType
TimeInForce: TypeAlias = types_pb2.TimeInForce.ValueType
DenialReason: TypeAlias = types_pb2.DenialReason.ValueType
TriggerType: TypeAlias = types_pb2.TriggerType.ValueType
OffsetType: TypeAlias = types_pb2.TrailingOffsetType.ValueType
OrderClass: TypeAlias = types_pb2.OrderClass.ValueType
OrderRole: TypeAlias = types_pb2.OrderRole.ValueType

_MARKET = types_pb2.ORDER_TYPE_MARKET
_LIMIT = types_pb2.ORDER_TYPE_LIMIT
_STOP_MARKET = types_pb2.ORDER_TYPE_STOP_MARKET
_STOP_LIMIT = types_pb2.ORDER_TYPE_STOP_LIMIT
_TRAILING_MARKET = types_pb2.ORDER_TYPE_TRAILING_STOP_MARKET
_TRAILING_LIMIT = types_pb2.ORDER_TYPE_TRAILING_STOP_LIMIT
_MARKET_TO_LIMIT = types_pb2.ORDER_TYPE_MARKET_TO_LIMIT
# Order types with a trigger, held and triggered by order-management's emulator.
STOP_TYPES = frozenset({_STOP_MARKET, _STOP_LIMIT, _TRAILING_MARKET, _TRAILING_LIMIT})
TRAILING_TYPES = frozenset({_TRAILING_MARKET, _TRAILING_LIMIT})
# Order types that need a limit price from the client.
_PRICED_TYPES = frozenset({_LIMIT, _STOP_LIMIT})
_IMMEDIATE = frozenset({types_pb2.TIME_IN_FORCE_IOC, types_pb2.TIME_IN_FORCE_FOK})

# Larger quantities and prices cannot be real orders (the wire grammar allows 21 digits).
MAX_INTEGER_DIGITS = 15

_ORDER_TYPES = {"market": _MARKET, "limit": _LIMIT}
_TIMES_IN_FORCE = {
    "gtc": types_pb2.TIME_IN_FORCE_GTC,
    "ioc": types_pb2.TIME_IN_FORCE_IOC,
    "fok": types_pb2.TIME_IN_FORCE_FOK,
    "day": types_pb2.TIME_IN_FORCE_DAY,
}


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
    trigger_price: Decimal | None = None
    trigger_type: TriggerType = types_pb2.TRIGGER_TYPE_BID_ASK
    trailing_offset: Decimal | None = None
    trailing_offset_type: OffsetType = types_pb2.TRAILING_OFFSET_TYPE_PRICE
    limit_offset: Decimal | None = None
    display_quantity: Decimal | None = None
    expire_time: datetime | None = None
    post_only: bool = False
    order_class: OrderClass = types_pb2.ORDER_CLASS_UNSPECIFIED
    exits: Exits | None = None
    execution: Execution | None = None


@dataclass(frozen=True)
class Execution:
    """How the router works the order (ExecutionInstructions): an algorithm over a horizon,
    child orders of at most `max_child_quantity`, a participation cap."""

    algorithm: types_pb2.ExecutionAlgorithm.ValueType = types_pb2.EXECUTION_ALGORITHM_UNSPECIFIED
    horizon: timedelta = timedelta(0)
    slice_count: int = 0
    max_child_quantity: Decimal | None = None
    participation_rate: Decimal | None = None

    def to_proto(self) -> orders_pb2.ExecutionInstructions:
        instructions = orders_pb2.ExecutionInstructions(
            algorithm=self.algorithm,
            slice_count=self.slice_count,
            max_child_quantity=format_decimal(self.max_child_quantity),
            participation_rate=format_decimal(self.participation_rate),
        )
        if self.horizon:
            instructions.horizon.FromTimedelta(self.horizon)
        return instructions

    @classmethod
    def from_proto(cls, instructions: orders_pb2.ExecutionInstructions) -> Execution:
        """From our own snapshot (trusted)."""
        return cls(
            algorithm=instructions.algorithm,
            horizon=instructions.horizon.ToTimedelta(),
            slice_count=instructions.slice_count,
            max_child_quantity=(
                Decimal(instructions.max_child_quantity)
                if instructions.max_child_quantity
                else None
            ),
            participation_rate=(
                Decimal(instructions.participation_rate)
                if instructions.participation_rate
                else None
            ),
        )


@dataclass(frozen=True)
class Exits:
    """An entry's take-profit and stop-loss (a bracket has both, an OTO one, an OCO's order is
    the take-profit itself)."""

    take_profit: Decimal | None = None
    stop_loss_trigger: Decimal | None = None
    stop_loss_limit: Decimal | None = None
    stop_loss_trigger_type: TriggerType = types_pb2.TRIGGER_TYPE_BID_ASK

    @property
    def has_stop_loss(self) -> bool:
        return self.stop_loss_trigger is not None


@dataclass(frozen=True)
class Denial:
    reason: DenialReason
    message: str


@dataclass(frozen=True)
class ExitLevel:
    """A signal's take-profit or stop-loss as asked: exactly one of a price, a distance from the
    entry's price, or that distance in basis points of it (see domain.sizing)."""

    price: Decimal | None = None
    distance: Decimal | None = None
    distance_bps: Decimal | None = None


@dataclass(frozen=True)
class Signal:
    """A well-formed signal. Its order is not sized yet (quantity 0); with exits it is a bracket's
    or an OTO's entry, their prices set only when every exit was given as a price (a distance is
    priced when the signal is sized, from the market then)."""

    order: OrderRequest
    confidence: Decimal = Decimal(1)
    take_profit: ExitLevel | None = None
    stop_loss: ExitLevel | None = None


# --- parsing -------------------------------------------------------------------------------


def parse_submit_order(
    request: orders_pb2.SubmitOrderRequest, defaults: OrderDefaults, now: datetime
) -> OrderRequest:
    """Turns a SubmitOrderRequest into an OrderRequest; raises InvalidRequest if malformed.

    An unspecified order type is a limit order when a limit price is given (as in a signal),
    otherwise the configured default type."""
    has_price = bool(request.limit_price.strip())
    order_type = _order_type(request.order_type, has_price, defaults)
    time_in_force = _time_in_force(request.time_in_force, defaults)
    order_class = _enum(request.order_class, types_pb2.OrderClass, "order_class")
    quantity = amount(request.quantity, "quantity")
    return OrderRequest(
        request_id=_required_text(request.request_id, "request_id"),
        client_order_id=_required_text(request.client_order_id, "client_order_id"),
        account_id=_required_text(request.account_id, "account_id"),
        strategy_id=_optional_text(request.strategy_id, "strategy_id"),
        signal_id="",
        instrument=_required_text(request.instrument, "instrument"),
        side=_side(request.side),
        order_type=order_type,
        time_in_force=time_in_force,
        quantity=quantity,
        limit_price=_limit_price(request.limit_price, order_type),
        reduce_only=request.reduce_only or order_class == types_pb2.ORDER_CLASS_OCO,
        **_trigger_fields(request, order_type),
        display_quantity=_display_quantity(request.display_quantity, order_type, quantity),
        expire_time=_expire_time(request, time_in_force, now),
        post_only=_post_only(request.post_only, order_type, time_in_force),
        order_class=order_class,
        exits=_exits(request, order_class, order_type),
        execution=_execution(request, order_type, time_in_force, order_class),
    )


def parse_submit_signal(
    request: orders_pb2.SubmitSignalRequest, signal_id: str, defaults: OrderDefaults
) -> Signal:
    """Turns a SubmitSignalRequest into a Signal, its order not sized yet: a limit order when it
    names a limit price, otherwise a market order; time in force from the defaults; the entry
    of a bracket with both exits, of an OTO with one. Raises InvalidRequest."""
    has_price = bool(request.limit_price.strip())
    order_type = types_pb2.ORDER_TYPE_LIMIT if has_price else types_pb2.ORDER_TYPE_MARKET
    take_profit = _exit_level(request, "take_profit")
    stop_loss = _exit_level(request, "stop_loss")
    levels = [level for level in (take_profit, stop_loss) if level is not None]
    order_class = {
        0: types_pb2.ORDER_CLASS_UNSPECIFIED,
        1: types_pb2.ORDER_CLASS_OTO,
        2: types_pb2.ORDER_CLASS_BRACKET,
    }[len(levels)]
    priced = bool(levels) and all(level.price is not None for level in levels)
    order = OrderRequest(
        request_id=_required_text(request.request_id, "request_id"),
        client_order_id=_required_text(request.client_order_id, "client_order_id"),
        account_id=_required_text(request.account_id, "account_id"),
        strategy_id=_optional_text(request.strategy_id, "strategy_id"),
        signal_id=_required_text(signal_id, "signal_id"),
        instrument=_required_text(request.instrument, "instrument"),
        side=_side(request.side),
        order_type=order_type,
        time_in_force=_TIMES_IN_FORCE[defaults.time_in_force],
        quantity=ZERO,
        limit_price=_limit_price(request.limit_price, order_type),
        order_class=order_class,
        exits=Exits(
            take_profit=None if take_profit is None else take_profit.price,
            stop_loss_trigger=None if stop_loss is None else stop_loss.price,
        )
        if priced
        else None,
    )
    return Signal(order, _confidence(request.confidence), take_profit, stop_loss)


def _confidence(text: str) -> Decimal:
    if not text.strip():
        return Decimal(1)
    value = amount(text, "confidence")
    if not ZERO <= value <= 1:
        raise InvalidRequest(
            "confidence", f"confidence must be from 0 to 1 (empty means 1), got {shorten(text)!r}"
        )
    return value


def _exit_level(request: orders_pb2.SubmitSignalRequest, field: str) -> ExitLevel | None:
    if not request.HasField(field):  # type: ignore[arg-type]
        return None
    level: orders_pb2.ExitLevel = getattr(request, field)
    which = level.WhichOneof("level")
    if which is None:
        raise InvalidRequest(field, f"{field} needs a price, a distance or a distance_bps")
    name = f"{field}.{which}"
    value = amount(getattr(level, which), name)
    if value <= 0:
        raise InvalidRequest(
            name, f"{name} must be greater than zero, got {shorten(getattr(level, which))!r}"
        )
    return ExitLevel(**{which: value})


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
    return types_pb2.OrderType.ValueType(_enum(value, types_pb2.OrderType, "order_type"))


def _time_in_force(value: int, defaults: OrderDefaults) -> TimeInForce:
    if value == types_pb2.TIME_IN_FORCE_UNSPECIFIED:
        return _TIMES_IN_FORCE[defaults.time_in_force]
    return types_pb2.TimeInForce.ValueType(_enum(value, types_pb2.TimeInForce, "time_in_force"))


def amount(text: str, field: str) -> Decimal:
    """A request's decimal field, on the grammar and within the digits an order may have."""
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
    return _price_for(text, "limit_price", order_type, needed_by=_PRICED_TYPES)


def _price_for(
    text: str, field: str, order_type: OrderType, *, needed_by: frozenset[int]
) -> Decimal | None:
    """A price the order types `needed_by` require and every other type must leave empty."""
    name = type_name(order_type)
    if order_type in needed_by:
        if not text.strip():
            raise InvalidRequest(field, f"{field} is required for a {name} order")
        return amount(text, field)
    if text.strip():
        raise InvalidRequest(
            field, f"{field} must be empty for a {name} order, got {shorten(text)!r}"
        )
    return None


def type_name(order_type: OrderType) -> str:
    """stop-limit for ORDER_TYPE_STOP_LIMIT: for messages."""
    name = types_pb2.OrderType.Name(order_type).removeprefix("ORDER_TYPE_")
    return name.lower().replace("_", "-")


def _enum(value: int, enum: Any, field: str) -> Any:
    """A known value of a proto enum (UNSPECIFIED included), or InvalidRequest listing them."""
    if value in enum.values():
        return value
    known = ", ".join(n for n in enum.keys() if not n.endswith("UNSPECIFIED"))  # noqa: SIM118
    raise InvalidRequest(field, f"{field} {value} is not known: use one of {known}")


def _trigger_fields(
    request: orders_pb2.SubmitOrderRequest, order_type: OrderType
) -> dict[str, Any]:
    """trigger_price, trigger_type, trailing_offset(_type) and limit_offset: each required by
    the stop types that use it and refused by every other type."""
    trailing = order_type in TRAILING_TYPES
    trigger_price = request.trigger_price
    if trailing and trigger_price.strip():  # a trailing stop's first trigger is optional
        trigger_price_value: Decimal | None = amount(trigger_price, "trigger_price")
    else:
        needed = frozenset({_STOP_MARKET, _STOP_LIMIT})
        trigger_price_value = _price_for(
            trigger_price, "trigger_price", order_type, needed_by=needed
        )
    offset = _price_for(
        request.trailing_offset, "trailing_offset", order_type, needed_by=TRAILING_TYPES
    )
    if offset is not None and offset <= 0:
        raise InvalidRequest(
            "trailing_offset", f"trailing_offset must be greater than zero, got {offset}"
        )
    limit_offset = _price_for(
        request.limit_offset, "limit_offset", order_type, needed_by=frozenset({_TRAILING_LIMIT})
    )
    if limit_offset is not None and limit_offset < 0:
        raise InvalidRequest(
            "limit_offset", f"limit_offset must be zero or more, got {limit_offset}"
        )
    trigger_type = _enum(request.trigger_type, types_pb2.TriggerType, "trigger_type")
    offset_type = _enum(
        request.trailing_offset_type, types_pb2.TrailingOffsetType, "trailing_offset_type"
    )
    if order_type not in STOP_TYPES and trigger_type:
        raise InvalidRequest("trigger_type", "trigger_type is for stop orders only")
    if not trailing and offset_type:
        raise InvalidRequest("trailing_offset_type", "trailing_offset_type is for trailing stops")
    return {
        "trigger_price": trigger_price_value,
        "trigger_type": trigger_type or types_pb2.TRIGGER_TYPE_BID_ASK,
        "trailing_offset": offset,
        "trailing_offset_type": offset_type or types_pb2.TRAILING_OFFSET_TYPE_PRICE,
        "limit_offset": limit_offset,
    }


def _display_quantity(text: str, order_type: OrderType, quantity: Decimal) -> Decimal | None:
    if not text.strip():
        return None
    if order_type != _LIMIT:
        raise InvalidRequest(
            "display_quantity", "display_quantity (an iceberg) is for limit orders only"
        )
    display = amount(text, "display_quantity")
    if not ZERO < display <= quantity:
        raise InvalidRequest(
            "display_quantity",
            f"display_quantity must be greater than zero and at most the quantity "
            f"{format_decimal(quantity)}, got {format_decimal(display)}",
        )
    return display


def _expire_time(
    request: orders_pb2.SubmitOrderRequest, time_in_force: TimeInForce, now: datetime
) -> datetime | None:
    gtd = time_in_force == types_pb2.TIME_IN_FORCE_GTD
    if not request.HasField("expire_time"):
        if gtd:
            raise InvalidRequest("expire_time", "expire_time is required for TIME_IN_FORCE_GTD")
        return None
    if not gtd:
        raise InvalidRequest("expire_time", "expire_time is for TIME_IN_FORCE_GTD orders only")
    try:
        expire = request.expire_time.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise InvalidRequest("expire_time", "expire_time is not a valid time") from None
    if expire <= now:
        raise InvalidRequest(
            "expire_time",
            f"expire_time {expire.isoformat()} is in the past (now {now.isoformat()})",
        )
    return expire


def _post_only(post_only: bool, order_type: OrderType, time_in_force: TimeInForce) -> bool:
    if not post_only:
        return False
    if order_type != _LIMIT:
        raise InvalidRequest(
            "post_only",
            f"post_only is for limit orders only: a {type_name(order_type)} order takes",
        )
    if time_in_force in _IMMEDIATE:
        raise InvalidRequest(
            "post_only", "post_only cannot be IOC or FOK: a post-only order must rest"
        )
    return True


_MAX_HORIZON = timedelta(days=1)
_MAX_SLICES = 1000


def _execution(
    request: orders_pb2.SubmitOrderRequest,
    order_type: OrderType,
    time_in_force: TimeInForce,
    order_class: OrderClass,
) -> Execution | None:
    """The router's instructions; None when the order goes at once, whole."""
    if not request.HasField("execution"):
        return None
    given = request.execution
    field = "execution"
    algorithm = _enum(given.algorithm, types_pb2.ExecutionAlgorithm, f"{field}.algorithm")
    timed = algorithm != types_pb2.EXECUTION_ALGORITHM_UNSPECIFIED
    if order_type not in (_MARKET, _LIMIT) or order_class or request.display_quantity.strip():
        raise InvalidRequest(
            field,
            "execution: instructions are for market and limit orders on their own: not stops, "
            "icebergs, brackets, OTO or OCO",
        )
    if time_in_force in _IMMEDIATE:
        raise InvalidRequest(field, "execution: instructions cannot be IOC or FOK: children rest")
    try:
        horizon = given.horizon.ToTimedelta()
    except (ValueError, OverflowError):
        raise InvalidRequest(
            f"{field}.horizon", "execution.horizon is not a valid duration"
        ) from None
    if timed and not timedelta(0) < horizon <= _MAX_HORIZON:
        raise InvalidRequest(
            f"{field}.horizon",
            f"execution.horizon: TWAP and VWAP need a horizon greater than zero and at most a "
            f"day, got {horizon}",
        )
    if not timed and (horizon or given.slice_count or given.participation_rate.strip()):
        raise InvalidRequest(
            field,
            "execution: horizon, slice_count and participation_rate need algorithm TWAP or VWAP",
        )
    if not 0 <= given.slice_count <= _MAX_SLICES:
        raise InvalidRequest(
            f"{field}.slice_count", f"execution.slice_count must be 0-{_MAX_SLICES}"
        )
    max_child = _optional_positive(given.max_child_quantity, f"{field}.max_child_quantity")
    participation = _optional_positive(given.participation_rate, f"{field}.participation_rate")
    if participation is not None and participation > 1:
        raise InvalidRequest(
            f"{field}.participation_rate",
            f"execution.participation_rate is a fraction of the displayed size, at most 1, "
            f"got {format_decimal(participation)}",
        )
    if not timed and max_child is None:
        return None
    return Execution(algorithm, horizon, given.slice_count, max_child, participation)


def _optional_positive(text: str, field: str) -> Decimal | None:
    if not text.strip():
        return None
    value = amount(text, field)
    if value <= ZERO:
        raise InvalidRequest(field, f"{field} must be greater than zero, got {text}")
    return value


def _exits(
    request: orders_pb2.SubmitOrderRequest, order_class: OrderClass, order_type: OrderType
) -> Exits | None:
    """The exits an order class asks for; InvalidRequest for a missing or stray one."""
    has_take_profit, has_stop_loss = request.HasField("take_profit"), request.HasField("stop_loss")
    if order_class == types_pb2.ORDER_CLASS_UNSPECIFIED:
        stray = "take_profit" if has_take_profit else "stop_loss" if has_stop_loss else ""
        if stray:
            raise InvalidRequest(stray, f"{stray} needs an order_class: BRACKET, OTO or OCO")
        return None
    if order_class == types_pb2.ORDER_CLASS_OCO:
        if order_type != _LIMIT:
            raise InvalidRequest(
                "order_type", "an OCO's order is its take-profit: it must be a limit order"
            )
        if has_take_profit:
            raise InvalidRequest(
                "take_profit", "an OCO's take-profit is the order itself: leave take_profit empty"
            )
        wanted = {"stop_loss"}
    else:
        if order_type not in (_MARKET, _LIMIT):
            raise InvalidRequest(
                "order_type", "the entry of a bracket or OTO must be a market or limit order"
            )
        bracket = order_class == types_pb2.ORDER_CLASS_BRACKET
        if not bracket and has_take_profit == has_stop_loss:
            raise InvalidRequest("take_profit", "an OTO has one exit: take_profit or stop_loss")
        wanted = {"take_profit", "stop_loss"} if bracket else set()
    for field in wanted:
        if not request.HasField(field):  # type: ignore[arg-type]
            raise InvalidRequest(field, f"{field} is required for this order_class")
    take_profit = None
    if has_take_profit:
        take_profit = amount(request.take_profit.limit_price, "take_profit.limit_price")
    if not has_stop_loss:
        return Exits(take_profit=take_profit)
    stop = request.stop_loss
    limit = stop.limit_price
    return Exits(
        take_profit=take_profit,
        stop_loss_trigger=amount(stop.trigger_price, "stop_loss.trigger_price"),
        stop_loss_limit=amount(limit, "stop_loss.limit_price") if limit.strip() else None,
        stop_loss_trigger_type=_enum(
            stop.trigger_type, types_pb2.TriggerType, "stop_loss.trigger_type"
        )
        or types_pb2.TRIGGER_TYPE_BID_ASK,
    )


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
    activity: AccountActivity | None
    now: datetime
    sizing: Denial | None = None


class PreTradeValidator:
    """Checks a well-formed request against config, account limits and market data.

    Returns the first rule broken as a Denial, or None. It does not record anything: the caller
    records accepted orders in AccountActivity. The limit price is checked before the quantity,
    since a signal's quantity is derived from its price: a signal priced at -5 is denied for
    its price, not for the zero quantity that price sizes to. Why a signal sized to nothing
    (domain.sizing) is given as `sizing`, and stands in for the quantity check.

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
        activity: AccountActivity | None,
        now: datetime,
        *,
        sizing: Denial | None = None,
    ) -> Denial | None:
        """`activity` None: the daily and rate limits are not checked (a held order released
        was counted when it was submitted). `sizing`: why a signal sized to nothing."""
        instrument = self._config.instrument(request.instrument)
        if instrument is None:
            configured = ", ".join(i.symbol for i in self._config.instruments)
            return Denial(
                types_pb2.DENIAL_REASON_INSTRUMENT_NOT_CONFIGURED,
                f"instrument {shorten(request.instrument)!r} is not configured; "
                f"configured instruments: {configured}",
            )
        context = _Context(request, instrument, quote, activity, now, sizing)
        return next((d for d in (check(context) for check in self._checks) if d), None)

    @staticmethod
    def _quantity_positive(c: _Context) -> Denial | None:
        if c.sizing is not None:
            return c.sizing
        quantity = c.request.quantity
        if quantity > 0:
            return None
        return Denial(
            types_pb2.DENIAL_REASON_QUANTITY_NOT_POSITIVE,
            f"quantity {format_decimal(quantity)} must be greater than zero",
        )

    @staticmethod
    def _quantity_on_step(c: _Context) -> Denial | None:
        step = c.instrument.step_size
        display = ("display quantity", c.request.display_quantity)
        execution = c.request.execution
        child = ("max child quantity", execution.max_child_quantity if execution else None)
        for name, quantity in (("quantity", c.request.quantity), display, child):
            if quantity is None or is_multiple(quantity, step):
                continue
            return Denial(
                types_pb2.DENIAL_REASON_QUANTITY_NOT_ON_STEP,
                f"{name} {format_decimal(quantity)} is not a multiple of the step size "
                f"{format_decimal(step)} for {c.instrument.symbol}",
            )
        return None

    @staticmethod
    def _limit_price_valid(c: _Context) -> Denial | None:
        """The limit and trigger prices: positive, on the tick."""
        tick = c.instrument.tick_size
        for name, price in (("limit", c.request.limit_price), ("trigger", c.request.trigger_price)):
            if price is None:
                continue
            if price <= 0:
                return Denial(
                    types_pb2.DENIAL_REASON_PRICE_NOT_POSITIVE,
                    f"{name} price {format_decimal(price)} must be greater than zero",
                )
            if not is_multiple(price, tick):
                return Denial(
                    types_pb2.DENIAL_REASON_PRICE_NOT_ON_TICK,
                    f"{name} price {format_decimal(price)} is not a multiple of the tick size "
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
        largest = (self._config.account_limits.max_order_value, "the maximum order value")
        if not request.signal_id:
            return largest
        sizing = self._config.signal_sizing.for_strategy(request.strategy_id)
        notional = sizing.notional if sizing.method == "fixed_notional" else None
        for bound, what in (
            (notional, "the signal notional"),
            (sizing.max_notional, "the signal max_notional"),
        ):
            if bound is not None and bound < largest[0]:
                largest = (bound, what)
        return largest

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
        if c.activity is None or c.activity.orders_on_day(c.request.account_id, c.now) < limit:
            return None
        return Denial(
            types_pb2.DENIAL_REASON_DAILY_ORDER_LIMIT_EXCEEDED,
            f"account {shorten(c.request.account_id)} has reached its limit of {limit} orders "
            f"for {c.now.astimezone(UTC).date().isoformat()} (UTC)",
        )

    def _rate(self, c: _Context) -> Denial | None:
        defaults = self._config.order_defaults
        window = timedelta(milliseconds=defaults.rate_limit_window_ms)
        if c.activity is None or c.activity.orders_in_window(
            c.request.account_id, c.now, window
        ) < (defaults.rate_limit_orders):
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
