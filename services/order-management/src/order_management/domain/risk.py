"""Pre-trade risk: limits per account and per strategy, open orders counted as if they filled.

Plain data and arithmetic, no I/O; prices and the clock are passed in. Order-management keeps
one `ExposureBook`: for each scope (an account, and each strategy within an account) and each
instrument, the position its applied fills made and the open quantity of its open orders. The
`RiskEngine` asks the book what an order would make of them and refuses the first limit it
would break, with that limit's reason code.

The worst case of a holding: every open buy fills (long case: position + open buys), or every
open sell does (short case: position - open sells); its size is the larger magnitude. Values
are at the instrument's mark (its latest mid, else its latest fill price). Gross exposure adds
the worst-case values over instruments; net exposure is the larger magnitude of the long-case
and short-case sums. The book keeps those sums as holdings and marks change, so a check costs
the same with a thousand open orders as with none.

A limit refuses only an order that makes its measure larger: an order that reduces a position
beyond a limit (after the limit was lowered, say) always passes. So do the rules on how an
order may grow a position: a stop-loss attached (`require_stop_loss`) and a pause after the
scope last traded the instrument (`cooldown_ms`) or realized a loss in it (`loss_cooldown_ms`,
realized P&L by `trading_core.lots.Lot`), as `TradeHistory` keeps them.

Before any limit, `trading_gate` applies the account's trading state and the reduce-only flag:
both judge an order by the account's position with every open order on the order's side
counted as if it filled, so that no mix of fills can take the position past zero.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from trading.v1 import types_pb2
from trading_core.config import Risk, RiskLimits
from trading_core.decimals import ZERO, format_decimal, shorten
from trading_core.lots import Lot
from trading_core.quotes import Quote

from order_management.domain.trading_state import TradingState
from order_management.domain.validation import (
    STOP_TYPES,
    Denial,
    DenialReason,
    OrderRequest,
    Side,
)

_BPS = Decimal(10_000)


@dataclass
class Holding:
    """One scope's position in one instrument and the open quantity of its orders."""

    position: Decimal = ZERO  # signed: long above zero
    open_buys: Decimal = ZERO
    open_sells: Decimal = ZERO
    # Its values at the mark they were last computed at (kept in the scope's sums).
    worst_value: Decimal = ZERO
    long_value: Decimal = ZERO
    short_value: Decimal = ZERO

    def worst(self, buys: Decimal = ZERO, sells: Decimal = ZERO) -> Decimal:
        """The position's largest size if every open order (and `buys`, `sells`) filled."""
        return max(
            abs(self.position + self.open_buys + buys), abs(self.position - self.open_sells - sells)
        )

    @property
    def is_empty(self) -> bool:
        return not (self.position or self.open_buys or self.open_sells)

    @property
    def has_open_orders(self) -> bool:
        return bool(self.open_buys or self.open_sells)

    def reduced_by(self, side: Side, quantity: Decimal) -> bool:
        """Whether an order only reduces the position, even if every open order on its side
        fills too: a sale of at most what is long and not already being sold, or the reverse."""
        if side == types_pb2.SIDE_SELL:
            return self.position > 0 and self.position - self.open_sells - quantity >= 0
        return self.position < 0 and self.position + self.open_buys + quantity <= 0


@dataclass
class Exposure:
    """One scope's holdings and the sums over them."""

    holdings: dict[str, Holding] = field(default_factory=dict)
    open_orders: int = 0
    gross: Decimal = ZERO
    net_long: Decimal = ZERO
    net_short: Decimal = ZERO

    @property
    def net(self) -> Decimal:
        return max(abs(self.net_long), abs(self.net_short))

    def holding(self, instrument: str) -> Holding:
        return self.holdings.get(instrument) or Holding()


@dataclass(frozen=True)
class _OpenOrder:
    scopes: tuple[tuple[str, ...], ...]
    instrument: str
    side: Side
    leaves: Decimal


@dataclass(frozen=True)
class LastTrade:
    """What a scope's fills in one instrument made: its lot, when it last traded, and when a
    fill last realized a loss."""

    lot: Lot
    traded_at: datetime
    lost_at: datetime | None = None


def group_scope(name: str) -> tuple[str, ...]:
    """A portfolio group's scope: three parts, never an account's (one) or a strategy's (two)."""
    return ("", "group", name)


class TradeHistory:
    """Each scope's last trade in each instrument: what cooldowns are judged by."""

    def __init__(self) -> None:
        self._last: dict[tuple[tuple[str, ...], str], LastTrade] = {}

    def get(self, scope: tuple[str, ...], instrument: str) -> LastTrade | None:
        return self._last.get((scope, instrument))

    def put(self, scope: tuple[str, ...], instrument: str, last: LastTrade) -> None:
        self._last[(scope, instrument)] = last

    def fill(
        self,
        scope: tuple[str, ...],
        instrument: str,
        quantity: Decimal,
        price: Decimal,
        now: datetime,
    ) -> LastTrade:
        before = self.get(scope, instrument)
        lot, realized = (before.lot if before else Lot()).fill(quantity, price)
        lost_at = now if realized < 0 else (before.lost_at if before else None)
        last = LastTrade(lot, now, lost_at)
        self.put(scope, instrument, last)
        return last


class ExposureBook:
    """Every scope's exposure, kept up to date order by order, fill by fill and mark by mark,
    and the last trade of each (`trades`)."""

    def __init__(self, groups: Callable[[str, str], list[str]] | None = None) -> None:
        """`groups(account, strategy)`: the portfolio groups an order of theirs counts toward."""
        self.trades = TradeHistory()
        self._groups = groups or (lambda _account, _strategy: [])
        self._scopes: dict[tuple[str, ...], Exposure] = {}
        self._open: dict[str, _OpenOrder] = {}
        self._marks: dict[str, Decimal] = {}
        self._holders: dict[str, set[tuple[str, ...]]] = {}  # instrument -> scopes holding it

    def scopes_of(self, account_id: str, strategy_id: str) -> tuple[tuple[str, ...], ...]:
        """The account's scope, its strategy's, and each portfolio group's it counts toward."""
        groups = tuple(group_scope(name) for name in self._groups(account_id, strategy_id))
        return ((account_id,), (account_id, strategy_id), *groups)

    def exposure(self, scope: tuple[str, ...]) -> Exposure:
        return self._scopes.get(scope) or Exposure()

    def mark(self, instrument: str) -> Decimal | None:
        return self._marks.get(instrument)

    def position_value(self, account_id: str) -> Decimal:
        """The account's positions at their marks (signed: shorts count against it)."""
        holdings = self.exposure((account_id,)).holdings
        return sum((h.position * self._marks.get(i, ZERO) for i, h in holdings.items()), start=ZERO)

    def holders(self, instrument: str) -> list[str]:
        """The accounts that hold a position or an open order in the instrument."""
        return sorted(s[0] for s in self._holders.get(instrument, ()) if len(s) == 1)

    def accounts(self) -> list[str]:
        """The accounts that hold a position or an open order."""
        return sorted(s[0] for s, e in self._scopes.items() if len(s) == 1 and e.holdings)

    def strategy_positions(self, account_id: str, instrument: str) -> dict[str, Decimal]:
        """Each strategy's position in an instrument within an account (non-zero ones)."""
        positions = {}
        for scope in self._holders.get(instrument, ()):
            if len(scope) == 2 and scope[0] == account_id:
                position = self._scopes[scope].holding(instrument).position
                if position:
                    positions[scope[1]] = position
        return positions

    def track(
        self,
        order_id: str,
        *,
        account_id: str,
        strategy_id: str,
        instrument: str,
        side: Side,
        leaves: Decimal,
    ) -> None:
        """An order's open quantity now (zero once it is no longer open)."""
        before = self._open.pop(order_id, None)
        if before is not None:
            self._add_open(before, -before.leaves, -1)
        if leaves > 0:
            now = _OpenOrder(self.scopes_of(account_id, strategy_id), instrument, side, leaves)
            self._open[order_id] = now
            self._add_open(now, leaves, 1)

    def fill(
        self,
        account_id: str,
        strategy_id: str,
        instrument: str,
        quantity: Decimal,
        price: Decimal,
        *,
        now: datetime,
    ) -> list[tuple[tuple[str, ...], LastTrade]]:
        """A fill of `quantity` (signed: a sale is negative) at `price`; returns each scope's
        last trade as it made it (to be saved)."""
        if instrument not in self._marks:
            self.set_mark(instrument, price)  # revalues what open orders already hold in it
        self.add_position(account_id, strategy_id, instrument, quantity)
        return [
            (scope, self.trades.fill(scope, instrument, quantity, price, now))
            for scope in self.scopes_of(account_id, strategy_id)
        ]

    def add_position(
        self, account_id: str, strategy_id: str, instrument: str, quantity: Decimal
    ) -> None:
        """Adds to a strategy's position and its account's (also as positions load on start)."""
        for scope in self.scopes_of(account_id, strategy_id):
            self._change(scope, instrument, lambda h: _add_position(h, quantity))

    def set_mark(self, instrument: str, price: Decimal) -> None:
        """Revalues every holding of the instrument at `price`."""
        if self._marks.get(instrument) == price:
            return
        self._marks[instrument] = price
        for scope in self._holders.get(instrument, ()):
            self._change(scope, instrument, lambda _h: None)

    def _add_open(self, order: _OpenOrder, quantity: Decimal, count: int) -> None:
        buying = order.side == types_pb2.SIDE_BUY
        for scope in order.scopes:
            self._scopes.setdefault(scope, Exposure()).open_orders += count
            self._change(scope, order.instrument, lambda h: _add_open(h, buying, quantity))

    def _change(
        self, scope: tuple[str, ...], instrument: str, change: Callable[[Holding], None]
    ) -> None:
        """Applies `change` to a holding and revalues it at the instrument's mark."""
        exposure = self._scopes.setdefault(scope, Exposure())
        holding = exposure.holdings.setdefault(instrument, Holding())
        change(holding)
        mark = self._marks.get(instrument, ZERO)
        worst = holding.worst() * mark
        long = (holding.position + holding.open_buys) * mark
        short = (holding.position - holding.open_sells) * mark
        exposure.gross += worst - holding.worst_value
        exposure.net_long += long - holding.long_value
        exposure.net_short += short - holding.short_value
        holding.worst_value, holding.long_value, holding.short_value = worst, long, short
        holders = self._holders.setdefault(instrument, set())
        if holding.is_empty:
            del exposure.holdings[instrument]
            holders.discard(scope)
        else:
            holders.add(scope)


def _add_position(holding: Holding, quantity: Decimal) -> None:
    holding.position += quantity


def _add_open(holding: Holding, buying: bool, quantity: Decimal) -> None:
    if buying:
        holding.open_buys += quantity
    else:
        holding.open_sells += quantity


def trading_gate(
    state: TradingState, request: OrderRequest, account: Holding, *, closing: bool = False
) -> Denial | None:
    """The trading state's verdict and the reduce-only flag's, on the account's holding of the
    order's instrument. `closing`: a ClosePosition order, which every state lets through."""
    if state == types_pb2.TRADING_STATE_HALTED and not closing:
        return Denial(
            types_pb2.DENIAL_REASON_TRADING_HALTED,
            f"trading is halted for account {shorten(request.account_id)}; only cancels and "
            "ClosePosition are allowed",
        )
    reduces = account.reduced_by(request.side, request.quantity)
    if state == types_pb2.TRADING_STATE_REDUCING and not reduces:
        return Denial(
            types_pb2.DENIAL_REASON_TRADING_REDUCING,
            f"account {shorten(request.account_id)} may only reduce positions, and this order "
            f"could make its {request.instrument} position larger{_with_open(account)}",
        )
    if request.reduce_only and not reduces:
        return Denial(
            types_pb2.DENIAL_REASON_REDUCE_ONLY_WOULD_INCREASE,
            f"the reduce-only order could make the {request.instrument} position of account "
            f"{shorten(request.account_id)} larger{_with_open(account)}",
        )
    return None


def _with_open(account: Holding) -> str:
    return (
        f" (position {format_decimal(account.position)}, open buys "
        f"{format_decimal(account.open_buys)}, open sells {format_decimal(account.open_sells)})"
    )


def closing_quantities(
    account_position: Decimal, strategies: dict[str, Decimal]
) -> dict[str, Decimal]:
    """How to close an account's position by strategy: each strategy holding the account's side
    closes its own, largest first, until the account's position is covered; what no strategy
    holds is closed under the empty strategy. Sums to the account's position's size; opposite
    strategy positions net against it and stay."""
    remaining = abs(account_position)
    sign = 1 if account_position > 0 else -1
    quantities: dict[str, Decimal] = {}
    same_side = sorted(
        ((abs(q), name) for name, q in strategies.items() if q * sign > 0), reverse=True
    )
    for size, name in same_side:
        if remaining <= 0:
            break
        quantities[name] = min(size, remaining)
        remaining -= quantities[name]
    if remaining > 0:
        quantities[""] = quantities.get("", ZERO) + remaining
    return quantities


class RiskEngine:
    """Checks an order against the limits of its account and of its strategy, the price collar
    and the market-data gates; returns the first limit broken, or None."""

    def __init__(self, risk: Risk) -> None:
        self._risk = risk
        # The limits of the accounts and strategies that have their own, resolved once.
        self._account_limits = {name: risk.account_limits(name) for name in risk.accounts}
        self._strategy_limits = {name: risk.strategy_limits(name) for name in risk.strategies}

    def check(
        self,
        request: OrderRequest,
        quote: Quote | None,
        book: ExposureBook,
        price: Decimal,
        now: datetime,
        *,
        equity: Decimal | None = None,
        halt: InstrumentHalt | None = None,
    ) -> Denial | None:
        """`price`: the price the order is valued at (`validation.valuation_price`); `equity`:
        the account's, for its leverage and concentration limits; `halt`: an operator's status
        for the instrument, when one is set."""
        denial = self._market_data(request, quote, now) or self._collar(request, quote)
        denial = denial or _instrument_status(request, quote, book, halt)
        if denial is not None:
            return denial
        mark = book.mark(request.instrument) or price
        for scope, limits, what in self._scopes(request):
            exposure = book.exposure(scope)
            last = book.trades.get(scope, request.instrument)
            denial = _limits(request, exposure, limits, what, mark)
            denial = denial or _growth_rules(request, exposure, limits, what, last=last, now=now)
            if denial is None and len(scope) == 1 and equity is not None:
                denial = _equity_limits(request, exposure, limits, what, mark, equity=equity)
            if denial is not None:
                return denial
        return None

    def limits_of(self, account_id: str) -> RiskLimits:
        """The limits an account's orders meet: its own over the defaults."""
        return self._account_limits.get(account_id, self._risk.account)

    def strategy_limits_of(self, strategy_id: str) -> RiskLimits:
        """The limits a strategy's orders meet (within each account)."""
        return self._strategy_limits.get(strategy_id, self._risk.strategy)

    def _scopes(self, request: OrderRequest) -> Iterator[tuple[tuple[str, ...], RiskLimits, str]]:
        account, strategy = request.account_id, request.strategy_id
        yield (account,), self.limits_of(account), f"account {shorten(account)}"
        yield (
            (account, strategy),
            self.strategy_limits_of(strategy),
            f"strategy {shorten(strategy)!r} of account {shorten(account)}",
        )
        for name in self._risk.groups_of(account, strategy):
            limits = self._risk.groups[name].limits
            yield group_scope(name), limits, f"portfolio group {shorten(name)!r}"

    def _market_data(
        self, request: OrderRequest, quote: Quote | None, now: datetime
    ) -> Denial | None:
        if quote is None:
            return None  # a market order is denied for it already; a limit order may rest
        max_age_ms = self._risk.max_quote_age_ms
        if max_age_ms is not None:
            age_ms = (now - quote.time).total_seconds() * 1000
            if age_ms > max_age_ms:
                return Denial(
                    types_pb2.DENIAL_REASON_QUOTE_STALE,
                    f"the quote of {request.instrument} is {age_ms:.0f} ms old, older than "
                    f"{max_age_ms} ms; retry when market data is fresh",
                )
        max_spread = self._risk.max_spread_bps
        if max_spread is not None and quote.bid > 0 and quote.ask > 0:
            spread = (quote.ask - quote.bid) / quote.mid * _BPS
            if spread > max_spread:
                return Denial(
                    types_pb2.DENIAL_REASON_SPREAD_TOO_WIDE,
                    f"the spread of {request.instrument} is {spread:.1f} bps, wider than "
                    f"{format_decimal(max_spread)} bps; retry when it narrows",
                )
        return None

    def _collar(self, request: OrderRequest, quote: Quote | None) -> Denial | None:
        collar, limit = self._risk.price_collar_bps, request.limit_price
        # A stop's limit is judged when it is released, as the limit order it then becomes.
        if collar is None or limit is None or quote is None or request.order_type in STOP_TYPES:
            return None
        if request.side == types_pb2.SIDE_BUY and quote.ask > 0:
            bound = quote.ask * (1 + collar / _BPS)
            if limit > bound:
                return _outside_collar(request, limit, "above the ask", quote.ask, collar)
        if request.side == types_pb2.SIDE_SELL and quote.bid > 0:
            bound = quote.bid * (1 - collar / _BPS)
            if limit < bound:
                return _outside_collar(request, limit, "below the bid", quote.bid, collar)
        return None


@dataclass(frozen=True)
class InstrumentHalt:
    """An operator's status for an instrument (SetInstrumentStatus), and why."""

    status: types_pb2.InstrumentStatus.ValueType
    reason: str


_STATUS_STRICTNESS = {
    types_pb2.INSTRUMENT_STATUS_TRADING: 0,
    types_pb2.INSTRUMENT_STATUS_REDUCE_ONLY: 1,
    types_pb2.INSTRUMENT_STATUS_HALTED: 2,
    types_pb2.INSTRUMENT_STATUS_CLOSED: 3,
}


def _instrument_status(
    request: OrderRequest, quote: Quote | None, book: ExposureBook, halt: InstrumentHalt | None
) -> Denial | None:
    """The stricter of the venue's word on the instrument (its latest quote) and an operator's:
    no new orders while it is halted or closed; while reduce-only, only orders that reduce the
    account's position."""
    status = quote.status if quote is not None else types_pb2.INSTRUMENT_STATUS_TRADING
    where = "at its venue"
    if halt is not None and _STATUS_STRICTNESS[halt.status] > _STATUS_STRICTNESS[status]:
        status, where = halt.status, f"by an operator ({shorten(halt.reason)})"
    if status == types_pb2.INSTRUMENT_STATUS_TRADING:
        return None
    name = types_pb2.InstrumentStatus.Name(status).removeprefix("INSTRUMENT_STATUS_")
    if status == types_pb2.INSTRUMENT_STATUS_REDUCE_ONLY:
        holding = book.exposure((request.account_id,)).holding(request.instrument)
        if holding.reduced_by(request.side, request.quantity):
            return None
        return Denial(
            types_pb2.DENIAL_REASON_INSTRUMENT_NOT_TRADING,
            f"{request.instrument} is {name} {where}: only orders that reduce the position "
            "are taken",
        )
    return Denial(
        types_pb2.DENIAL_REASON_INSTRUMENT_NOT_TRADING,
        f"{request.instrument} is {name} {where}: no new orders until it trades again",
    )


def _outside_collar(
    request: OrderRequest, limit: Decimal, where: str, touch: Decimal, collar: Decimal
) -> Denial:
    return Denial(
        types_pb2.DENIAL_REASON_PRICE_OUTSIDE_COLLAR,
        f"limit price {format_decimal(limit)} is more than {format_decimal(collar)} bps "
        f"{where} ({format_decimal(touch)}) for {request.instrument}",
    )


def _limits(
    request: OrderRequest, exposure: Exposure, limits: RiskLimits, what: str, mark: Decimal
) -> Denial | None:
    """The first of one scope's limits the order would break. Each measure is computed only
    when its limit is set."""
    quantity = request.quantity
    if _over(quantity, limits.max_order_quantity):
        return Denial(
            types_pb2.DENIAL_REASON_ORDER_QUANTITY_EXCEEDS_LIMIT,
            f"quantity {format_decimal(quantity)} exceeds the maximum order quantity "
            f"{format_decimal(limits.max_order_quantity or ZERO)} of {what}",
        )
    if limits.max_open_orders is not None and exposure.open_orders >= limits.max_open_orders:
        return Denial(
            types_pb2.DENIAL_REASON_OPEN_ORDER_LIMIT_EXCEEDED,
            f"{what} has {exposure.open_orders} open orders, its limit is {limits.max_open_orders}",
        )
    holding = exposure.holding(request.instrument)
    buys, sells = _added(request)
    worst = holding.worst(buys, sells)
    growing = worst > holding.worst()
    if growing and _over(worst, limits.max_position_quantity):
        return _denial(
            types_pb2.DENIAL_REASON_POSITION_LIMIT_EXCEEDED,
            f"the {request.instrument} position of {what} could reach a quantity of",
            worst,
            limits.max_position_quantity,
        )
    if growing and _over(worst * mark, limits.max_position_value):
        return _denial(
            types_pb2.DENIAL_REASON_POSITION_VALUE_EXCEEDS_LIMIT,
            f"the {request.instrument} position of {what} could reach a value of",
            worst * mark,
            limits.max_position_value,
        )
    if limits.max_gross_exposure is not None:
        gross = exposure.gross - holding.worst_value + worst * mark
        if gross > exposure.gross and gross > limits.max_gross_exposure:
            return _denial(
                types_pb2.DENIAL_REASON_GROSS_EXPOSURE_EXCEEDS_LIMIT,
                f"the gross exposure of {what} could reach",
                gross,
                limits.max_gross_exposure,
            )
    if limits.max_net_exposure is not None:
        long = exposure.net_long - holding.long_value
        long += (holding.position + holding.open_buys + buys) * mark
        short = exposure.net_short - holding.short_value
        short += (holding.position - holding.open_sells - sells) * mark
        net = max(abs(long), abs(short))
        if net > exposure.net and net > limits.max_net_exposure:
            return _denial(
                types_pb2.DENIAL_REASON_NET_EXPOSURE_EXCEEDS_LIMIT,
                f"the net exposure of {what} could reach",
                net,
                limits.max_net_exposure,
            )
    return None


def _added(request: OrderRequest) -> tuple[Decimal, Decimal]:
    """What an order adds to its holding's open buys and open sells."""
    quantity = request.quantity
    return (quantity, ZERO) if request.side == types_pb2.SIDE_BUY else (ZERO, quantity)


def _growth_rules(
    request: OrderRequest,
    exposure: Exposure,
    limits: RiskLimits,
    what: str,
    *,
    last: LastTrade | None,
    now: datetime,
) -> Denial | None:
    """How an order may make a position larger: with a stop-loss, and not too soon after the
    scope last traded the instrument or realized a loss in it."""
    holding = exposure.holding(request.instrument)
    buys, sells = _added(request)
    worst = holding.worst(buys, sells)
    if worst <= holding.worst():
        return None
    stop_loss = request.exits is not None and request.exits.stop_loss_trigger is not None
    if limits.require_stop_loss and not stop_loss:
        return Denial(
            types_pb2.DENIAL_REASON_STOP_LOSS_REQUIRED,
            f"{what} requires a stop-loss on an order that makes a position larger: attach "
            "one (stop_loss)",
        )
    if last is None:
        return None
    for pause_ms, since, event in (
        (limits.cooldown_ms, last.traded_at, "traded"),
        (limits.loss_cooldown_ms, last.lost_at, "realized a loss in"),
    ):
        if pause_ms is not None and since is not None:
            until = since + timedelta(milliseconds=pause_ms)
            if now < until:
                return Denial(
                    types_pb2.DENIAL_REASON_COOLDOWN_ACTIVE,
                    f"{what} {event} {request.instrument} "
                    f"{(now - since).total_seconds() * 1000:.0f} ms ago, within its "
                    f"{pause_ms} ms cooldown; retry after {until.isoformat()}",
                )
    return None


def _equity_limits(
    request: OrderRequest,
    exposure: Exposure,
    limits: RiskLimits,
    what: str,
    mark: Decimal,
    *,
    equity: Decimal,
) -> Denial | None:
    """An account's limits measured against its equity: leverage and concentration."""
    holding = exposure.holding(request.instrument)
    buys, sells = _added(request)
    worst = holding.worst(buys, sells)
    if worst <= holding.worst():
        return None  # it does not grow the position: neither measure grows
    value = worst * mark
    gross = exposure.gross - holding.worst_value + value
    if limits.max_leverage is not None and gross > equity * limits.max_leverage:
        return Denial(
            types_pb2.DENIAL_REASON_LEVERAGE_EXCEEDS_LIMIT,
            f"the gross exposure of {what} could reach {format_decimal(gross)} with this order "
            f"and its open orders, beyond its equity {format_decimal(equity)} times the "
            f"leverage limit {format_decimal(limits.max_leverage)}",
        )
    percent = limits.max_concentration_percent
    if percent is not None and value > equity * percent / 100:
        return Denial(
            types_pb2.DENIAL_REASON_CONCENTRATION_EXCEEDS_LIMIT,
            f"the {request.instrument} position of {what} could be worth {format_decimal(value)}"
            f" with this order and its open orders, beyond {format_decimal(percent)}% of its "
            f"equity {format_decimal(equity)}",
        )
    return None


def _over(value: Decimal, limit: Decimal | None) -> bool:
    return limit is not None and value > limit


def _denial(reason: DenialReason, what: str, value: Decimal, limit: Decimal | None) -> Denial:
    return Denial(
        reason,
        f"{what} {format_decimal(value)} with this order and its open orders, beyond its limit "
        f"{format_decimal(limit or ZERO)}",
    )
