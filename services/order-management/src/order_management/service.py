"""Order-management: intake, validation, order state. Owns the orders.

Every change of an order is one journal transaction: its event, the command to the router
when there is one, and the order's row in the `orders` table (its current state, which is what
a restart loads and what queries read). A reply waits until that transaction is durable.

Idempotency, per account: a repeated request_id with the same body returns the original
order; with a different body, ALREADY_EXISTS names the fields that differ. A client_order_id
is one order for good. A denial binds both ids, except a transient one (rate limit, no market
data): its retry is decided afresh.

Reconciliation asks the router over gRPC (ExecutionService.QueryOrder), never through the bus
it repairs: about an order the venue has not answered after `reconciliation.order_age_ms`, a
pending cancel (with its request id, applied if the router never had it), an order whose
reports came with a gap, and on start every open order. The router answers with the order's
reports, which are applied as if delivered; an order it never received it rejects for good.

A report that cannot be applied as it stands (InvalidExecutionReport) is redelivered, then
dead-lettered, and the order's report count moves past it; one that does not fit the order's
status (InvalidOrderTransition) is a fact kept as unresolved.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import Decimal

import grpc
from trading.v1 import control_pb2, events_pb2, orders_pb2, portfolio_pb2, types_pb2
from trading_core import metrics
from trading_core.config import RiskLimits
from trading_core.decimals import DEFAULT_PRECISION, ZERO, Precision, format_decimal
from trading_core.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from trading_core.events import event_time, from_micros, micros, new_id, timestamp
from trading_core.journal import Record, Ticket, Transaction
from trading_core.lots import Lot
from trading_core.peers import PeerUnavailable, PositionClient, RouterClient
from trading_core.quotes import QuoteBook
from trading_core.service import JournaledService, ServiceContext
from trading_core.streams import Broadcaster
from trading_core.telemetry import stage

from order_management.domain.account import Account, limit_uses
from order_management.domain.emulator import (
    exit_price_problem,
    exit_requests,
    expired,
    reached,
    session_end,
    trailed,
    trigger_source,
)
from order_management.domain.modify import parse_modify_order
from order_management.domain.orders import (
    InvalidOrderTransition,
    Order,
    OrderChange,
    OrderNotModifiable,
    OrderStatus,
    status_name,
)
from order_management.domain.risk import (
    ExposureBook,
    Holding,
    InstrumentHalt,
    LastTrade,
    RiskEngine,
    closing_quantities,
    trading_gate,
)
from order_management.domain.risk_limits import (
    LimitsChange,
    RiskLimitChanges,
    RiskScope,
    limit_set,
)
from order_management.domain.sizing import size_signal
from order_management.domain.trading_state import (
    HALTED,
    ResumeFacts,
    StateRecord,
    TradingState,
    TradingStates,
    loosens,
    resume_problems,
    state_name,
    stricter,
    strictness,
)
from order_management.domain.validation import (
    STOP_TYPES,
    TRAILING_TYPES,
    AccountActivity,
    Denial,
    OrderRequest,
    PreTradeValidator,
    Signal,
    parse_submit_order,
    parse_submit_signal,
    valuation_price,
)

log = logging.getLogger(__name__)


SCHEMA = (
    """CREATE TABLE IF NOT EXISTS orders (
        order_id TEXT PRIMARY KEY,
        account_id TEXT NOT NULL,
        instrument TEXT NOT NULL,
        status INTEGER NOT NULL,
        is_open INTEGER NOT NULL,
        create_time_us INTEGER NOT NULL,
        update_time_us INTEGER NOT NULL,
        request_id TEXT,
        client_order_id TEXT,
        own_sequence INTEGER NOT NULL,
        report_sequence INTEGER NOT NULL,
        venue_accepted INTEGER NOT NULL,
        snapshot BLOB NOT NULL
    )""",
    "CREATE UNIQUE INDEX IF NOT EXISTS orders_by_request ON orders (account_id, request_id)",
    "CREATE UNIQUE INDEX IF NOT EXISTS orders_by_client_id ON orders (account_id, client_order_id)",
    "CREATE INDEX IF NOT EXISTS orders_open ON orders (is_open) WHERE is_open = 1",
    "CREATE INDEX IF NOT EXISTS orders_newest ON orders (create_time_us DESC, order_id DESC)",
    # Each strategy's position in each instrument from the fills applied (pre-trade risk).
    """CREATE TABLE IF NOT EXISTS risk_positions (
        account_id TEXT NOT NULL,
        strategy_id TEXT NOT NULL,
        instrument TEXT NOT NULL,
        quantity TEXT NOT NULL,
        PRIMARY KEY (account_id, strategy_id, instrument)
    )""",
    # Each scope's (an account, an account's strategy: its ids joined by a 0x1f) last trade in
    # each instrument, for cooldowns: its lot, when it traded, when it last realized a loss.
    """CREATE TABLE IF NOT EXISTS risk_trades (
        scope TEXT NOT NULL,
        instrument TEXT NOT NULL,
        quantity TEXT NOT NULL,
        average_price TEXT,
        traded_us INTEGER NOT NULL,
        lost_us INTEGER,
        PRIMARY KEY (scope, instrument)
    )""",
    # What operators set besides trading states, the latest record of each subject: the risk
    # limits of a scope (kind 'risk_limits', SetRiskLimits) and an instrument's status (kind
    # 'instrument_status', SetInstrumentStatus). Versions count the changes of each kind.
    """CREATE TABLE IF NOT EXISTS operator_records (
        kind TEXT NOT NULL,
        subject TEXT NOT NULL,
        record BLOB NOT NULL,
        version INTEGER NOT NULL,
        PRIMARY KEY (kind, subject)
    )""",
    # The trading state of the platform (account '') and of each account that was ever set.
    """CREATE TABLE IF NOT EXISTS trading_states (
        account_id TEXT PRIMARY KEY,
        state INTEGER NOT NULL,
        reason TEXT NOT NULL,
        update_time_us INTEGER NOT NULL,
        version INTEGER NOT NULL
    )""",
    # The request ids of SetTradingState and EmergencyStop, each carried out once.
    "CREATE TABLE IF NOT EXISTS control_requests (request_id TEXT PRIMARY KEY)",
    # ClosePosition and EmergencyStop's flattening: pending until the orders it canceled are
    # finished, then the ids of the closing orders it sent.
    """CREATE TABLE IF NOT EXISTS position_closes (
        account_id TEXT NOT NULL,
        request_id TEXT NOT NULL,
        instrument TEXT NOT NULL,
        pending INTEGER NOT NULL,
        order_ids TEXT NOT NULL,
        instruments_done TEXT NOT NULL,
        PRIMARY KEY (account_id, request_id)
    )""",
    # Each account's cash and fees (written with each fill), its day's start and high-water mark.
    """CREATE TABLE IF NOT EXISTS accounts (
        account_id TEXT PRIMARY KEY,
        cash TEXT NOT NULL,
        fees TEXT NOT NULL,
        day TEXT,
        day_start_equity TEXT NOT NULL,
        high_water_mark TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS cancel_requests (
        account_id TEXT NOT NULL,
        request_id TEXT NOT NULL,
        order_id TEXT NOT NULL,
        PRIMARY KEY (account_id, request_id)
    )""",
    # When each account's clients canceled (daily and rate limits count cancels).
    """CREATE TABLE IF NOT EXISTS counted_cancels (
        account_id TEXT NOT NULL,
        time_us INTEGER NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS counted_cancels_by_time ON counted_cancels (time_us)",
    # Each ModifyOrder request: its order, when (daily and rate limits count it), and the
    # refusal of our checks if they refused it (a repeat answers the same).
    """CREATE TABLE IF NOT EXISTS modify_requests (
        account_id TEXT NOT NULL,
        request_id TEXT NOT NULL,
        order_id TEXT NOT NULL,
        time_us INTEGER NOT NULL,
        refusal_reason INTEGER NOT NULL,
        refusal_message TEXT NOT NULL,
        PRIMARY KEY (account_id, request_id)
    )""",
)

# Denials a retry may not get: they do not bind the request's ids.
TRANSIENT_DENIALS = frozenset(
    {
        types_pb2.DENIAL_REASON_RATE_LIMIT_EXCEEDED,
        types_pb2.DENIAL_REASON_NO_MARKET_DATA,
        types_pb2.DENIAL_REASON_QUOTE_STALE,
        types_pb2.DENIAL_REASON_SPREAD_TOO_WIDE,
    }
)

# Where an order stands in the newest-first listing: (create time in µs, order id).
OrderCursor = tuple[int, str]


@dataclass(frozen=True)
class OrderUpdate:
    """One applied event and a snapshot of the order after it, for StreamOrderEvents."""

    event: events_pb2.Event
    order: orders_pb2.Order


@dataclass(frozen=True)
class OrderFilter:
    account_id: str = ""
    instrument: str = ""
    statuses: frozenset[int] = frozenset()
    open_only: bool = False


@dataclass
class _Close:
    """A close of an account's position in one instrument ("" for every one)."""

    account_id: str
    request_id: str
    instrument: str
    pending: bool = True  # waiting for the orders it canceled to finish, or for market data
    order_ids: list[str] = field(default_factory=list)  # the closing orders, once sent
    done: set[str] = field(default_factory=set)  # instruments it has sent a closing order for


@dataclass(frozen=True)
class CloseAnswer:
    canceled: list[orders_pb2.Order]
    closing: list[orders_pb2.Order]
    pending: bool


@dataclass(frozen=True)
class ModifyAnswer:
    order: orders_pb2.Order
    refusal: Denial | None


@dataclass(frozen=True)
class _EarlierModify:
    order_id: str
    refusal: Denial | None


@dataclass(frozen=True)
class StopAnswer:
    trading_state: StateRecord
    canceled: list[orders_pb2.Order]
    flattening_accounts: list[str]


@dataclass(frozen=True)
class CancelFilter:
    """Which open orders of an account CancelAllOrders covers; empty matches every value."""

    account_id: str
    instrument: str = ""
    strategy_id: str = ""
    side: int = types_pb2.SIDE_UNSPECIFIED

    def covers(self, order: Order) -> bool:
        return (
            self.account_id in ("", order.account_id)
            and self.instrument in ("", order.instrument)
            and self.strategy_id in ("", order.strategy_id)
            and self.side in (types_pb2.SIDE_UNSPECIFIED, order.side)
        )


@dataclass
class _Tracked:
    """What order-management keeps per order beyond the domain order."""

    order: Order
    own_sequence: int = 1
    report_sequence: int = 0
    binds_ids: bool = True
    asked_at: datetime | None = None  # when the router was last asked about it
    gap: bool = False  # a report came before one it follows: ask the router
    counted_status: int = 0  # the status trading_orders_total last counted it in


class OrderManagement(JournaledService):
    name = "order-management"

    def __init__(self, context: ServiceContext):
        super().__init__(context)
        config = context.config
        self._validator = PreTradeValidator(config)
        self._activity = AccountActivity()
        self._orders: dict[str, _Tracked] = {}
        # instrument -> ids of its HELD orders, which the emulator looks at on each quote
        self._held: dict[str, set[str]] = {}
        self._by_request: dict[tuple[str, str], str] = {}
        self._by_client_order: dict[tuple[str, str], str] = {}
        # (account, cancel request id) -> order id, until its row is durable
        self._pending_cancels: dict[tuple[str, str], str] = {}
        self._pending_modifies: dict[tuple[str, str], _EarlierModify] = {}
        self.quotes = QuoteBook()
        self.exposure = ExposureBook(config.risk.groups_of)
        self._accounts: dict[str, Account] = {}
        self._limit_changes = RiskLimitChanges(config.risk)
        self._instrument_statuses: dict[str, control_pb2.InstrumentStatusRecord] = {}
        self._risk = RiskEngine(config.risk)
        self.trading = TradingStates()
        self._control_requests: set[str] = set()
        # Pending closes, (account, request id) -> close; a finished one is in the journal only.
        self._closes: dict[tuple[str, str], _Close] = {}
        # Closes finished in a transaction not yet durable (the journal cannot show them yet).
        self._finishing_closes: dict[tuple[str, str], _Close] = {}
        self._positions = PositionClient(self.peers)
        self.updates: Broadcaster[OrderUpdate] = Broadcaster(
            max_streams=config.services.max_streams
        )
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._ask_everything = False
        self._router = RouterClient(self.peers)
        self._reconciler = threading.Thread(target=self._reconcile_periodically, daemon=True)

    # Life cycle -------------------------------------------------------------------------------

    def start(self) -> None:
        self._load()
        super().start()
        self.consume("market-data", events_pb2.Event, self._on_quote)
        self.consume(
            "executions",
            events_pb2.Event,
            self._on_execution,
            on_dead_letter=self._passed_execution,
        )
        # On start every open order is asked about, by the reconciler: the router may be down.
        self._ask_everything = True
        self._reconciler.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._reconciler.is_alive():
            self._reconciler.join()
        self._router.close()
        self._positions.close()
        self.updates.close()

    def ready(self) -> bool:
        """Also needs a quote for every instrument: without one, market orders are denied."""
        return super().ready() and all(self.quotes.get(i.symbol) for i in self.config.instruments)

    def _load(self) -> None:
        """Loads open orders and recently finished ones; rebuilds the account activity."""
        horizon = micros(self.clock.now() - self._retention)
        # Two indexed reads (open orders; orders created within the retention), not one scan:
        # a finished order older than that is read from the journal when asked for.
        rows = self.journal.query(
            f"SELECT {_TRACKED_COLUMNS} FROM orders WHERE is_open = 1 UNION "  # noqa: S608
            f"SELECT {_TRACKED_COLUMNS} FROM orders WHERE create_time_us >= ?",
            (horizon,),
        )
        for row in rows:
            tracked = self._tracked_of(row)
            self._remember(tracked)
            self._track(tracked.order)
        self._load_risk_positions()
        self._load_risk_limit_changes()
        self._load_instrument_statuses()
        self._load_accounts()
        self._load_trading_control()
        day_ago = micros(self.clock.now() - timedelta(days=1))
        for account_id, created in self.journal.query(
            "SELECT account_id, create_time_us FROM orders WHERE create_time_us >= ? "
            "AND status != ? ORDER BY create_time_us",
            (day_ago, types_pb2.ORDER_STATUS_DENIED),
        ):
            self._activity.record(account_id, from_micros(created))
        for account_id, counted in self.journal.query(
            "SELECT account_id, time_us FROM modify_requests WHERE time_us >= ? "
            "AND refusal_reason = 0 UNION ALL "
            "SELECT account_id, time_us FROM counted_cancels WHERE time_us >= ?",
            (day_ago, day_ago),
        ):
            self._activity.record(account_id, from_micros(counted))
        log.info("%s loaded %d orders", self.name, len(rows))

    def _load_instrument_statuses(self) -> None:
        for blob in self._operator_records(_INSTRUMENT_STATUS):
            record = control_pb2.InstrumentStatusRecord.FromString(blob)
            self._instrument_statuses[record.instrument] = record

    def _load_risk_limit_changes(self) -> None:
        for blob in self._operator_records(_RISK_LIMITS):
            record = control_pb2.RiskLimitsRecord.FromString(blob)
            self._limit_changes.put(LimitsChange.from_proto(record))
        if self._limit_changes.changes():
            self._risk = RiskEngine(self._limit_changes.risk())

    def _operator_records(self, kind: str) -> list[bytes]:
        """The latest record of each subject of a kind, oldest change first."""
        rows = self.journal.query(
            "SELECT record FROM operator_records WHERE kind = ? ORDER BY version", (kind,)
        )
        return [bytes(blob) for (blob,) in rows]

    def _keep_operator_record(
        self,
        kind: str,
        subject: str,
        record: control_pb2.RiskLimitsRecord | control_pb2.InstrumentStatusRecord,
        transaction: Transaction,
    ) -> None:
        transaction.execute(
            "INSERT INTO operator_records (kind, subject, record, version) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (kind, subject) DO UPDATE SET record = excluded.record, "
            "version = excluded.version",
            (kind, subject, record.SerializeToString(), record.version),
        )

    def _load_risk_positions(self) -> None:
        for account, strategy, instrument, quantity in self.journal.query(
            "SELECT account_id, strategy_id, instrument, quantity FROM risk_positions"
        ):
            self.exposure.add_position(account, strategy, instrument, Decimal(quantity))
        for scope, instrument, quantity, average, traded, lost in self.journal.query(
            "SELECT scope, instrument, quantity, average_price, traded_us, lost_us FROM risk_trades"
        ):
            lot = Lot(Decimal(quantity), Decimal(average) if average else None)
            last = LastTrade(lot, from_micros(traded), from_micros(lost) if lost else None)
            self.exposure.trades.put(tuple(scope.split(_SCOPE_SEPARATOR)), instrument, last)

    def _load_accounts(self) -> None:
        starting = self.config.accounts.starting_cash_of
        for account_id, cash, fees, day, day_start, high in self.journal.query(
            "SELECT account_id, cash, fees, day, day_start_equity, high_water_mark FROM accounts"
        ):
            self._accounts[account_id] = Account(
                account_id,
                starting(account_id),
                Decimal(cash),
                Decimal(fees),
                date.fromisoformat(day) if day else None,
                Decimal(day_start),
                Decimal(high),
            )

    def _load_trading_control(self) -> None:
        for account, state, reason, updated, version in self.journal.query(
            "SELECT account_id, state, reason, update_time_us, version FROM trading_states"
        ):
            self.trading.load(StateRecord(account, state, reason, from_micros(updated), version))
            metrics.trading_state(account or "platform", strictness(state))
        self._control_requests = {
            str(r[0]) for r in self.journal.query("SELECT request_id FROM control_requests")
        }
        for account, request_id, instrument, order_ids, done in self.journal.query(
            "SELECT account_id, request_id, instrument, order_ids, instruments_done "
            "FROM position_closes WHERE pending = 1"
        ):
            close = _Close(
                account, request_id, instrument, True, _split(order_ids), set(_split(done))
            )
            self._closes[(account, request_id)] = close

    @property
    def _retention(self) -> timedelta:
        return timedelta(seconds=self.config.state.finished_order_retention_s)

    # Commands: each answers with a snapshot taken under the lock once it is durable -----------

    def submit_order(
        self, request: orders_pb2.SubmitOrderRequest
    ) -> tuple[orders_pb2.Order, list[orders_pb2.Order]]:
        """The order, and the exits order-management holds for it (a bracket, OTO or OCO)."""
        parsed = parse_submit_order(request, self.config.order_defaults, self.clock.now())
        stored = self._stored(parsed)
        with self.lock:
            answer, ticket = self._existing_or(parsed, stored, lambda: self._decide(parsed))
            legs = self._legs(answer)
        ticket.wait()
        return answer, legs

    def submit_signal(
        self, request: orders_pb2.SubmitSignalRequest
    ) -> tuple[orders_pb2.Order, list[orders_pb2.Order]]:
        """The signal's order, and the exits held for it when it has a take-profit or stop-loss
        (then it is a bracket's or an OTO's entry, as in submit_order)."""
        signal_id = request.signal_id or new_id()
        signal = parse_submit_signal(request, signal_id, self.config.order_defaults)
        stored = self._stored(signal.order)
        with self.lock:
            answer, ticket = self._existing_or(signal.order, stored, lambda: self._sized(signal))
            legs = self._legs(answer)
        ticket.wait()
        return answer, legs

    def _legs(self, answer: orders_pb2.Order) -> list[orders_pb2.Order]:
        """An entry's exits as they are now."""
        account = answer.account_id
        return [self._tracked(account, i).order.to_proto() for i in answer.child_order_ids]

    def cancel_order(self, request: orders_pb2.CancelOrderRequest) -> orders_pb2.Order:
        with self.lock:
            tracked = self._tracked(request.account_id, request.order_id)
            earlier = self._canceled_by(request.account_id, request.request_id)
            if earlier is not None and earlier != request.order_id:
                raise AlreadyExists(
                    f"request_id {request.request_id!r} already canceled order {earlier}"
                )
            order = tracked.order
            if earlier is not None or order.status == types_pb2.ORDER_STATUS_PENDING_CANCEL:
                ticket = self.journal.sync_point()  # answered as it is now, once that is durable
            elif not order.is_open:
                raise FailedPrecondition(
                    f"order {order.order_id} is {status_name(order.status)} and can no longer "
                    "be canceled"
                )
            else:
                transaction = Transaction()
                self._request_cancel(tracked, request.request_id, transaction)
                self._count_cancel(order.account_id, transaction)
                ticket = self.commit(transaction, waited=True)
            answer = order.to_proto()
        ticket.wait()
        return answer

    def modify_order(self, request: orders_pb2.ModifyOrderRequest) -> ModifyAnswer:
        """Changes an open order as `request` asks, checked as a new order would be: held,
        changed at once; at a venue, PENDING_UPDATE until the venue answers."""
        with self.lock:
            tracked = self._tracked(request.account_id, request.order_id)
            earlier = self._modified_by(request.account_id, request.request_id)
            if earlier is not None:
                if earlier.order_id != request.order_id:
                    raise AlreadyExists(
                        f"request_id {request.request_id!r} already modified order "
                        f"{earlier.order_id}"
                    )
                refusal, ticket = earlier.refusal, self.journal.sync_point()
            else:
                change = parse_modify_order(request, tracked.order)
                transaction = Transaction()
                refusal = self._modify(tracked, change, transaction)
                ticket = self.commit(transaction, waited=True)
            answer = ModifyAnswer(tracked.order.to_proto(), refusal)
        ticket.wait()
        return answer

    def _modify(
        self, tracked: _Tracked, change: OrderChange, transaction: Transaction
    ) -> Denial | None:
        order = tracked.order
        try:
            order.ensure_modifiable()
        except OrderNotModifiable as error:
            raise FailedPrecondition(str(error)) from None
        refusal = self._check_change(order, change)
        now = self.clock.now()
        transaction.execute(
            "INSERT INTO modify_requests (account_id, request_id, order_id, time_us, "
            "refusal_reason, refusal_message) VALUES (?, ?, ?, ?, ?, ?)",
            (
                order.account_id,
                change.request_id,
                order.order_id,
                micros(now),
                refusal.reason if refusal else types_pb2.DENIAL_REASON_UNSPECIFIED,
                refusal.message if refusal else "",
            ),
        )
        key = (order.account_id, change.request_id)
        self._pending_modifies[key] = _EarlierModify(order.order_id, refusal)
        transaction.then(lambda: self._settled_modify(key))
        if refusal is not None:
            return refusal
        self._activity.record(order.account_id, now)
        if order.is_held:
            self._amend_held(tracked, change, transaction)
        else:
            requested = events_pb2.OrderModifyRequested(change=change.to_proto())
            self._own_change(
                tracked,
                lambda sequence, at: order.request_modify(change, sequence, at),
                transaction,
                order_modify_requested=requested,
            )
            transaction.keep(self._modify_command(order, change))
        return None

    def _check_change(self, order: Order, change: OrderChange) -> Denial | None:
        """The changed order checked as a new one, without its own open quantity counted (its
        remaining quantity after the change is what risk adds)."""
        amended = replace(
            order.as_submitted(),
            quantity=change.quantity or order.quantity,
            limit_price=change.limit_price or order.limit_price,
            trigger_price=change.trigger_price or order.trigger_price,
        )
        self._track_open(order, Decimal(0))
        try:
            closing = bool(order.parent_order_id) and order.role in _EXIT_ROLES
            at_risk = amended.quantity - order.filled_quantity
            return self._check(amended, closing=closing, at_risk=at_risk)
        finally:
            self._track(order)

    def _amend_held(self, tracked: _Tracked, change: OrderChange, transaction: Transaction) -> None:
        """A held order changes at once (it is at no venue); its new trigger may be reached."""
        order = tracked.order
        amended = events_pb2.OrderAmended(
            quantity=format_decimal(change.quantity),
            trigger_price=format_decimal(change.trigger_price),
            limit_price=format_decimal(change.limit_price),
            message=f"modified (request {change.request_id})",
        )
        self._own_change(
            tracked,
            lambda sequence, at: order.amend(
                sequence,
                at,
                quantity=change.quantity,
                trigger_price=change.trigger_price,
                limit_price=change.limit_price,
            ),
            transaction,
            order_amended=amended,
        )
        self._emulate_one(tracked, transaction)

    def _modify_command(self, order: Order, change: OrderChange) -> Record:
        command = self.new_command(
            order_id=order.order_id,
            account_id=order.account_id,
            instrument=order.instrument,
            modify_order=_modify_message(change),
        )
        return self.command_record(command, "orders", order.order_id)

    def _modified_by(self, account_id: str, request_id: str) -> _EarlierModify | None:
        """An earlier ModifyOrder of `request_id`: in memory until durable, then in the journal."""
        pending = self._pending_modifies.get((account_id, request_id))
        if pending is not None:
            return pending
        rows = self.journal.query(
            "SELECT order_id, refusal_reason, refusal_message FROM modify_requests "
            "WHERE account_id = ? AND request_id = ?",
            (account_id, request_id),
        )
        if not rows:
            return None
        order_id, reason, message = rows[0]
        refusal = Denial(reason, str(message)) if reason else None
        return _EarlierModify(str(order_id), refusal)

    def _settled_modify(self, key: tuple[str, str]) -> None:
        self._pending_modifies.pop(key, None)

    def _count_cancel(self, account_id: str, transaction: Transaction) -> None:
        """A client's cancel counts toward the daily and rate limits (it is never refused by
        them), also after a restart."""
        now = self.clock.now()
        self._activity.record(account_id, now)
        transaction.execute(
            "INSERT INTO counted_cancels (account_id, time_us) VALUES (?, ?)",
            (account_id, micros(now)),
        )
        day_ago = micros(now - timedelta(days=1))  # older ones count for nothing: kept bounded
        transaction.execute("DELETE FROM counted_cancels WHERE time_us < ?", (day_ago,))

    def _canceled_by(self, account_id: str, request_id: str) -> str | None:
        """The order a cancel request id canceled: in memory until that is durable (the journal
        cannot show it yet, and a second row would fail its commit), then in the journal."""
        pending = self._pending_cancels.get((account_id, request_id))
        if pending is not None:
            return pending
        rows = self.journal.query(
            "SELECT order_id FROM cancel_requests WHERE account_id = ? AND request_id = ?",
            (account_id, request_id),
        )
        return str(rows[0][0]) if rows else None

    def _settled_cancel(self, key: tuple[str, str]) -> None:
        self._pending_cancels.pop(key, None)

    # Trading control ---------------------------------------------------------------------------

    def cancel_all(self, request: orders_pb2.CancelAllOrdersRequest) -> list[orders_pb2.Order]:
        chosen = CancelFilter(
            request.account_id, request.instrument, request.strategy_id, request.side
        )
        with self.lock:
            transaction = Transaction()
            covered = self._cancel_matching(chosen, request.request_id, transaction)
            ticket = self.commit(transaction, waited=True)
            answer = [tracked.order.to_proto() for tracked in covered]
        ticket.wait()
        return answer

    def _cancel_matching(
        self, chosen: CancelFilter, request_id: str, transaction: Transaction
    ) -> list[_Tracked]:
        """Asks to cancel every open order `chosen` covers, each under a cancel request id of its
        own made from `request_id`; an order already asked under that id is left as it is.
        Returns the orders covered."""
        covered = [t for t in self._orders.values() if t.order.is_open and chosen.covers(t.order)]
        for tracked in covered:
            order = tracked.order
            if order.status == types_pb2.ORDER_STATUS_PENDING_CANCEL:
                continue
            cancel_id = _derived_id("cancel", request_id, order.order_id)
            if self._canceled_by(order.account_id, cancel_id) is None:
                self._request_cancel(tracked, cancel_id, transaction)
        return covered

    def close_position(self, request: orders_pb2.ClosePositionRequest) -> CloseAnswer:
        account, instrument = request.account_id, request.instrument
        with self.lock:
            key = (account, request.request_id)
            close = (
                self._closes.get(key)
                or self._finishing_closes.get(key)
                or self._finished_close(*key)
            )
            canceled: list[orders_pb2.Order] = []
            if close is None:
                transaction = Transaction()
                chosen = CancelFilter(account, instrument)
                covered = self._cancel_matching(chosen, request.request_id, transaction)
                canceled = [tracked.order.to_proto() for tracked in covered]
                close = self._start_close(account, instrument, request.request_id, transaction)
                ticket = self.commit(transaction, waited=True)
            else:
                ticket = self.journal.sync_point()
            closing = [self._tracked(account, i).order.to_proto() for i in close.order_ids]
            answer = CloseAnswer(canceled, closing, close.pending)
        ticket.wait()
        return answer

    def _start_close(
        self, account_id: str, instrument: str, request_id: str, transaction: Transaction
    ) -> _Close:
        close = _Close(account_id, request_id, instrument)
        self._closes[(account_id, request_id)] = close
        event = self.new_event(
            sequence=1,
            account_id=account_id,
            instrument=instrument,
            position_close_requested=events_pb2.PositionCloseRequested(
                request_id=request_id, instrument=instrument
            ),
        )
        transaction.keep(self.event_record(event))
        self._save_close(close, transaction)
        self._close_if_settled(close, transaction)  # saves it again if it goes ahead now
        return close

    def _forget_close(self, key: tuple[str, str]) -> None:
        self._finishing_closes.pop(key, None)

    def _finished_close(self, account_id: str, request_id: str) -> _Close | None:
        rows = self.journal.query(
            "SELECT instrument, order_ids FROM position_closes "
            "WHERE account_id = ? AND request_id = ?",
            (account_id, request_id),
        )
        if not rows:
            return None
        instrument, order_ids = rows[0]
        return _Close(account_id, request_id, str(instrument), False, _split(order_ids))

    def _close_if_settled(self, close: _Close, transaction: Transaction) -> None:
        """Sends a pending close's orders once no order is open where it closes: then what the
        account holds is final, and the closing orders cannot overshoot. An instrument whose
        closing order is refused for a transient reason (no quote yet, say) is tried again on
        its next quote; any other refusal is reported as unresolved."""
        account = self.exposure.exposure((close.account_id,))
        if close.instrument:
            settled = not account.holding(close.instrument).has_open_orders
            held = [close.instrument]
        else:
            settled = account.open_orders == 0
            held = sorted(account.holdings)
        if not settled:
            return
        waiting, sent = False, False
        for instrument in held:
            if instrument in close.done:
                continue
            orders = self._closing_orders(close, instrument)
            if any(_transient(self._check(o, closing=True)) for o in orders):
                waiting = True
                continue
            close.done.add(instrument)
            sent = True
            for order in orders:
                self._send_closing_order(close, order, transaction)
        close.pending = waiting
        if not waiting:
            key = (close.account_id, close.request_id)
            self._finishing_closes[key] = self._closes.pop(key)
            transaction.then(lambda: self._forget_close(key))
        if sent or not waiting:  # a close still waiting for the same quotes is saved as it was
            self._save_close(close, transaction)

    def _closing_orders(self, close: _Close, instrument: str) -> list[OrderRequest]:
        position = self.exposure.exposure((close.account_id,)).holding(instrument).position
        if not position:
            return []
        strategies = self.exposure.strategy_positions(close.account_id, instrument)
        return [
            self._closing_order(close, instrument, strategy, position, quantity)
            for strategy, quantity in closing_quantities(position, strategies).items()
        ]

    def _send_closing_order(
        self, close: _Close, request: OrderRequest, transaction: Transaction
    ) -> None:
        denial = self._check(request, closing=True)
        if denial is None:
            snapshot = self._submitted(request, transaction)
        else:
            snapshot = self._denied(request, denial, transaction)
            self.report_unresolved(
                transaction,
                "position-close",
                f"{close.account_id}|{request.instrument}",
                f"the closing order {snapshot.order_id} was denied: {denial.message}",
            )
        close.order_ids.append(snapshot.order_id)

    def _closing_order(
        self, close: _Close, instrument: str, strategy: str, position: Decimal, quantity: Decimal
    ) -> OrderRequest:
        ids = _derived_id("close", close.account_id, close.request_id, instrument, strategy)
        return OrderRequest(
            request_id=ids,
            client_order_id=ids,
            account_id=close.account_id,
            strategy_id=strategy,
            signal_id="",
            instrument=instrument,
            side=types_pb2.SIDE_SELL if position > 0 else types_pb2.SIDE_BUY,
            order_type=types_pb2.ORDER_TYPE_MARKET,
            time_in_force=types_pb2.TIME_IN_FORCE_IOC,
            quantity=quantity,
            limit_price=None,
            reduce_only=True,
        )

    def _save_close(self, close: _Close, transaction: Transaction) -> None:
        transaction.execute(
            "INSERT INTO position_closes (account_id, request_id, instrument, pending, order_ids,"
            " instruments_done) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (account_id, request_id) "
            "DO UPDATE SET pending = excluded.pending, order_ids = excluded.order_ids, "
            "instruments_done = excluded.instruments_done",
            (
                close.account_id,
                close.request_id,
                close.instrument,
                int(close.pending),
                ",".join(close.order_ids),
                ",".join(sorted(close.done)),
            ),
        )

    def _settle_closes(self, account_id: str | None, transaction: Transaction) -> None:
        """Tries the pending closes of an account (of every account for None)."""
        for close in list(self._closes.values()):
            if account_id in (None, close.account_id):
                self._close_if_settled(close, transaction)

    def trading_states(
        self, account_id: str
    ) -> tuple[StateRecord, list[StateRecord], TradingState]:
        """The platform's record, the account's (every account's set, without one), and what
        the account's orders meet (the platform's state, without one)."""
        with self.lock:
            platform = self.trading.of("")
            accounts = [self.trading.of(account_id)] if account_id else self.trading.accounts()
            return platform, accounts, self.trading.effective(account_id)

    def instrument_statuses(self) -> list[control_pb2.InstrumentStatusRecord]:
        """The statuses operators set, TRADING ones left out."""
        with self.lock:
            records = self._instrument_statuses.values()
            return [r for r in records if r.status != types_pb2.INSTRUMENT_STATUS_TRADING]

    def set_instrument_status(
        self,
        request_id: str,
        instrument: str,
        status: types_pb2.InstrumentStatus.ValueType,
        reason: str,
    ) -> control_pb2.InstrumentStatusRecord:
        """An operator's status for an instrument's new orders: durable, an event. A repeated
        request answers the status as it is now."""
        if self.config.instrument(instrument) is None:
            known = ", ".join(i.symbol for i in self.config.instruments)
            raise InvalidArgument(
                f"instrument {instrument!r} is not configured; configured: {known}"
            )
        with self.lock:
            before = self._instrument_statuses.get(instrument)
            if request_id in self._control_requests:
                return before or control_pb2.InstrumentStatusRecord(
                    instrument=instrument, status=types_pb2.INSTRUMENT_STATUS_TRADING
                )
            version = 1 + max((r.version for r in self._instrument_statuses.values()), default=0)
            record = control_pb2.InstrumentStatusRecord(
                instrument=instrument,
                status=status,
                reason=reason,
                update_time=timestamp(self.clock.now()),
                version=version,
            )
            self._instrument_statuses[instrument] = record
            previous = before.status if before else types_pb2.INSTRUMENT_STATUS_TRADING
            changed = events_pb2.InstrumentStatusChanged(
                record=record, previous=previous, request_id=request_id
            )
            event = self.new_event(
                sequence=version, instrument=instrument, instrument_status_changed=changed
            )
            transaction = Transaction()
            self._control_change(request_id, event, transaction)
            self._keep_operator_record(_INSTRUMENT_STATUS, instrument, record, transaction)
            ticket = self.commit(transaction, waited=True)
        log.warning(
            "status of %s set to %s by an operator (%s)",
            instrument,
            types_pb2.InstrumentStatus.Name(status),
            reason,
        )
        ticket.wait()
        return record

    def _halt_of(self, instrument: str) -> InstrumentHalt | None:
        record = self._instrument_statuses.get(instrument)
        return None if record is None else InstrumentHalt(record.status, record.reason)

    def risk_limits(
        self, account_id: str, strategy_id: str
    ) -> tuple[RiskLimits, RiskLimits, list[LimitsChange]]:
        """The limits an account's and a strategy's orders meet, and the changes in force."""
        with self.lock:
            account = self._risk.limits_of(account_id)
            strategy = self._risk.strategy_limits_of(strategy_id)
            return account, strategy, self._limit_changes.changes()

    def set_risk_limits(
        self, request_id: str, scope: RiskScope, name: str, limits: RiskLimits, reason: str
    ) -> LimitsChange:
        """Replaces a scope's own limits, for the next order on: durable, an event. A repeated
        request answers the scope's latest change."""
        with self.lock:
            if request_id in self._control_requests:
                latest = self._limit_changes.latest(scope, name)
                if latest is None:
                    raise AlreadyExists(
                        f"request_id {request_id!r} was used by another control request"
                    )
                return latest
            change, previous = self._limit_changes.change(
                scope, name, limits, reason, self.clock.now()
            )
            self._risk = RiskEngine(self._limit_changes.risk())
            transaction = Transaction()
            record = change.to_proto()
            changed = events_pb2.RiskLimitsChanged(
                record=record, previous=limit_set(previous), request_id=request_id
            )
            event = self.new_event(sequence=change.version, risk_limits_changed=changed)
            self._control_change(request_id, event, transaction)
            self._keep_operator_record(_RISK_LIMITS, f"{scope}:{name}", record, transaction)
            ticket = self.commit(transaction, waited=True)
        log.warning(
            "risk limits of %s changed: %s (%s)",
            _limit_scope_name(scope, name),
            limits.model_dump(mode="json", exclude_defaults=True),
            reason,
        )
        ticket.wait()
        return change

    def set_trading_state(
        self, request_id: str, account_id: str, state: TradingState, reason: str
    ) -> StateRecord:
        """Sets a state; a resume only once every check passes (FailedPrecondition naming
        each that did not)."""
        with self.lock:
            before = self.trading.of(account_id)
        if request_id not in self._control_requests and loosens(before.state, state):
            theirs = self._position_management_positions(account_id)
            with self.lock:
                problems = resume_problems(
                    self._resume_facts(account_id, theirs),
                    self.config.trading_control.resume_max_quote_age_ms,
                )
            if problems:
                raise FailedPrecondition(
                    f"cannot move {_scope_name(account_id)} to {state_name(state)}: "
                    + "; ".join(problems)
                )
        with self.lock:
            if request_id in self._control_requests:
                ticket = self.journal.sync_point()
            else:
                transaction = Transaction()
                self._set_state(request_id, account_id, state, reason, transaction)
                ticket = self.commit(transaction, waited=True)
            answer = self.trading.of(account_id)
        ticket.wait()
        return answer

    def emergency_stop(
        self, request_id: str, account_id: str, reason: str, *, flatten: bool
    ) -> StopAnswer:
        """Halts the platform or an account, asks to cancel every open order there and, with
        `flatten`, closes every position once its orders are finished: one transaction."""
        with self.lock:
            canceled: list[orders_pb2.Order] = []
            flattening: list[str] = []
            if request_id in self._control_requests:
                ticket = self.journal.sync_point()
            else:
                transaction = Transaction()
                self._set_state(request_id, account_id, HALTED, reason, transaction)
                covered = self._cancel_matching(CancelFilter(account_id), request_id, transaction)
                canceled = [tracked.order.to_proto() for tracked in covered]
                if flatten:
                    accounts = [account_id] if account_id else self.exposure.accounts()
                    for account in accounts:
                        self._start_close(account, "", request_id, transaction)
                    flattening = accounts
                ticket = self.commit(transaction, waited=True)
            answer = StopAnswer(self.trading.of(account_id), canceled, flattening)
        ticket.wait()
        return answer

    def _set_state(
        self,
        request_id: str,
        account_id: str,
        state: TradingState,
        reason: str,
        transaction: Transaction,
    ) -> None:
        before, after = self.trading.set(account_id, state, reason, self.clock.now())
        metrics.trading_state(account_id or "platform", strictness(state))
        changed = events_pb2.TradingStateChanged(
            trading_state=after.to_proto(), previous_state=before.state, request_id=request_id
        )
        event = self.new_event(
            sequence=after.version, account_id=account_id, trading_state_changed=changed
        )
        self._control_change(request_id, event, transaction)
        transaction.execute(
            "INSERT INTO trading_states (account_id, state, reason, update_time_us, version) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (account_id) DO UPDATE SET state = "
            "excluded.state, reason = excluded.reason, update_time_us = excluded.update_time_us,"
            " version = excluded.version",
            (account_id, state, reason, micros(after.update_time), after.version),
        )
        log.warning(
            "trading state of %s: %s -> %s (%s)",
            _scope_name(account_id),
            state_name(before.state),
            state_name(state),
            reason,
        )

    def _control_change(
        self, request_id: str, event: events_pb2.Event, transaction: Transaction
    ) -> None:
        """An operator's change: its event, and its request id, so a repeat changes nothing."""
        transaction.keep(self.event_record(event))
        self._control_requests.add(request_id)
        transaction.execute("INSERT INTO control_requests (request_id) VALUES (?)", (request_id,))

    def _position_management_positions(self, account_id: str) -> dict[tuple[str, str], Decimal]:
        """Position-management's non-zero positions (account, instrument) -> quantity; raises
        FailedPrecondition when it does not answer."""
        try:
            positions = self._positions.positions(account_id)
        except PeerUnavailable as error:
            raise FailedPrecondition(
                f"cannot resume {_scope_name(account_id)}: positions could not be reconciled, "
                f"position-management did not answer ({error})"
            ) from None
        theirs = {(p.account_id, p.instrument): Decimal(p.quantity) for p in positions}
        return {key: quantity for key, quantity in theirs.items() if quantity}

    def _resume_facts(self, account_id: str, theirs: dict[tuple[str, str], Decimal]) -> ResumeFacts:
        """What a resume of the platform ("") or an account checks, under the lock."""
        now = self.clock.now()
        facts = ResumeFacts()
        age = timedelta(milliseconds=self.config.reconciliation.order_age_ms)
        for tracked in self._orders.values():
            order = tracked.order
            if not order.is_open or account_id not in ("", order.account_id):
                continue
            waited = now - order.update_time
            waiting = order.status in _AWAITING_VENUE and waited >= age
            if waiting or tracked.gap:
                facts.unanswered_orders.append((order.order_id, waited.total_seconds()))
        facts.pending_closes = [
            (c.account_id, c.instrument)
            for c in self._closes.values()
            if c.pending and account_id in ("", c.account_id)
        ]
        accounts = [account_id] if account_id else self.exposure.accounts()
        ours = {
            (account, instrument): holding.position
            for account in accounts
            for instrument, holding in self.exposure.exposure((account,)).holdings.items()
            if holding.position
        }
        for account, symbol in sorted(ours.keys() | theirs.keys()):
            here = ours.get((account, symbol), ZERO)
            there = theirs.get((account, symbol), ZERO)
            if here != there:
                facts.position_differences.append((account, symbol, here, there))
        for book in self._accounts.values():
            if account_id in ("", book.account_id):
                why = book.breach(self._equity(book), self._risk.limits_of(book.account_id))
                if why is not None:
                    facts.breaches.append((book.account_id, why))
        max_age = self.config.trading_control.resume_max_quote_age_ms
        for instrument in self.config.instruments:
            quote = self.quotes.get(instrument.symbol)
            age_ms = None if quote is None else (now - quote.time).total_seconds() * 1000
            if age_ms is None or age_ms > max_age:
                facts.stale_quotes.append((instrument.symbol, age_ms))
        return facts

    # Queries ----------------------------------------------------------------------------------

    def portfolio(self, account_id: str) -> portfolio_pb2.Portfolio:
        """The account's cash, equity, exposure, P&L, drawdown and limits in use, as it is now
        (an account that never traded: its starting cash)."""
        with self.lock:
            account = self._account(account_id)
            equity = self._equity(account)
            exposure = self.exposure.exposure((account_id,))
            limits = self._risk.limits_of(account_id)
            leverage = limits.max_leverage if limits.max_leverage is not None else Decimal(1)
            answer = portfolio_pb2.Portfolio(
                account_id=account_id,
                starting_cash=format_decimal(account.starting_cash),
                cash=format_decimal(account.cash),
                fees=format_decimal(account.fees),
                equity=format_decimal(equity),
                total_pnl=format_decimal(equity - account.starting_cash),
                daily_pnl=format_decimal(account.daily_pnl(equity)),
                day_start_equity=format_decimal(account.day_start_equity),
                high_water_mark=format_decimal(account.high_water_mark),
                drawdown_percent=format_decimal(
                    account.drawdown_percent(equity).quantize(Decimal("0.01"))
                ),
                gross_exposure=format_decimal(exposure.gross),
                net_exposure=format_decimal(exposure.net),
                buying_power=format_decimal(max(equity * leverage - exposure.gross, ZERO)),
                holdings=[
                    self._holding(instrument, holding)
                    for instrument, holding in sorted(exposure.holdings.items())
                    if not holding.is_empty
                ],
                limits=[
                    portfolio_pb2.LimitUse(
                        name=use.name,
                        limit=format_decimal(use.limit),
                        used=format_decimal(use.used),
                        percent=format_decimal(use.percent),
                    )
                    for use in limit_uses(limits, account, equity, exposure)
                ],
                trading_state=self.trading.effective(account_id),
            )
            ticket = self.journal.sync_point()
        ticket.wait()
        return answer

    def _holding(self, instrument: str, holding: Holding) -> portfolio_pb2.Holding:
        mark = self.exposure.mark(instrument)
        return portfolio_pb2.Holding(
            instrument=instrument,
            position=format_decimal(holding.position),
            open_buys=format_decimal(holding.open_buys),
            open_sells=format_decimal(holding.open_sells),
            mark=format_decimal(mark),
            value=format_decimal(None if mark is None else holding.position * mark),
        )

    def get_order(self, account_id: str, order_id: str) -> orders_pb2.Order:
        with self.lock:
            snapshot = self._tracked(account_id, order_id).order.to_proto()
            # Shown once all it shows is durable; waited for outside the lock.
            ticket = self.journal.sync_point()
        ticket.wait()
        return snapshot

    def list_orders(
        self, chosen: OrderFilter, after: OrderCursor | None, size: int
    ) -> tuple[list[orders_pb2.Order], OrderCursor | None]:
        """A page of the matching orders, newest first, after `after`; and the cursor of the
        page's last order when more follow. Read from the journal, without the service lock."""
        self.journal.sync_point().wait()
        where: list[str] = ["1 = 1"]
        parameters: list[object] = []
        if chosen.account_id:
            where.append("account_id = ?")
            parameters.append(chosen.account_id)
        if chosen.instrument:
            where.append("instrument = ?")
            parameters.append(chosen.instrument)
        if chosen.statuses:
            where.append(f"status IN ({', '.join('?' * len(chosen.statuses))})")
            parameters.extend(sorted(chosen.statuses))
        if chosen.open_only:
            where.append("is_open = 1")
        if after is not None:
            where.append("(create_time_us, order_id) < (?, ?)")
            parameters.extend(after)
        rows = self.journal.query(
            "SELECT create_time_us, order_id, snapshot FROM orders "  # noqa: S608
            f"WHERE {' AND '.join(where)} ORDER BY create_time_us DESC, order_id DESC LIMIT ?",
            (*parameters, size + 1),
        )
        page = [orders_pb2.Order.FromString(snapshot) for _, _, snapshot in rows[:size]]
        more = len(rows) > size
        return page, (rows[size - 1][0], rows[size - 1][1]) if more else None

    def stream_updates(
        self, context: grpc.ServicerContext, accept: Callable[[OrderUpdate], bool]
    ) -> Iterator[OrderUpdate]:
        return self.updates.stream(context, accept)

    def _tracked(self, account_id: str, order_id: str) -> _Tracked:
        tracked = self._orders.get(order_id) or self._load_one("order_id = ?", (order_id,))
        if tracked is None or tracked.order.account_id != account_id:
            raise NotFound(f"account {account_id!r} has no order {order_id!r}")
        return tracked

    def _tracked_of(self, row: tuple[object, ...]) -> _Tracked:
        snapshot, own_sequence, report_sequence, venue_accepted, request_id = row
        wire = orders_pb2.Order.FromString(snapshot)  # type: ignore[arg-type]
        order = Order.from_proto(wire, self._precision(wire.instrument))
        order.venue_accepted = bool(venue_accepted)
        return _Tracked(
            order,
            own_sequence=int(own_sequence),  # type: ignore[call-overload]
            report_sequence=int(report_sequence),  # type: ignore[call-overload]
            binds_ids=request_id is not None,
        )

    def _load_one(self, where: str, parameters: tuple[str, ...]) -> _Tracked | None:
        rows = self.journal.query(
            f"SELECT {_TRACKED_COLUMNS} FROM orders WHERE {where}",  # noqa: S608
            parameters,
        )
        return self._tracked_of(rows[0]) if rows else None

    # Decisions --------------------------------------------------------------------------------

    def _existing_or(
        self,
        request: OrderRequest,
        stored: _Tracked | None,
        decide: Callable[[], tuple[orders_pb2.Order, Ticket]],
    ) -> tuple[orders_pb2.Order, Ticket]:
        """The order an earlier request with these ids made (in memory, else `stored`), checked
        to be the same request; else the decision on this one."""
        existing = self._in_memory(request) or stored
        if existing is None:
            return decide()
        differences = _differences(existing.order, request)
        if differences:
            raise AlreadyExists(
                f"account {request.account_id} already has order {existing.order.order_id} for "
                f"request_id {existing.order.request_id!r} / client_order_id "
                f"{existing.order.client_order_id!r}, with a different {', '.join(differences)}"
            )
        return existing.order.to_proto(), self.journal.sync_point()

    def _in_memory(self, request: OrderRequest) -> _Tracked | None:
        account = request.account_id
        order_id = self._by_request.get((account, request.request_id)) or self._by_client_order.get(
            (account, request.client_order_id)
        )
        return None if order_id is None else self._orders[order_id]

    def _stored(self, request: OrderRequest) -> _Tracked | None:
        """The durable order these ids made, read before taking the lock (a read must not hold
        up every other request). Safe: an order made since is in memory, where the lock looks
        first; an order leaves memory only long after it was durable."""
        return self._load_one(
            "account_id = ? AND (request_id = ? OR client_order_id = ?)",
            (request.account_id, request.request_id, request.client_order_id),
        )

    def _sized(self, signal: Signal) -> tuple[orders_pb2.Order, Ticket]:
        """Sizes a signal's order by its strategy's sizing, prices its exits, and decides on it
        as on any order (a signal that sizes to nothing is denied saying why)."""
        unsized = signal.order
        instrument = self.config.instrument(unsized.instrument)
        if instrument is None:
            return self._decide(unsized)  # denied: instrument not configured
        sizing = self.config.signal_sizing.for_strategy(unsized.strategy_id)
        equity = self._equity(self._account(unsized.account_id)) if sizing.uses_equity else None
        quote = self.quotes.get(unsized.instrument)
        sized = size_signal(signal, sizing, instrument, quote, equity)
        return self._committed(
            lambda transaction: self._new_order(sized.request, transaction, sizing=sized.denial)
        )

    def _decide(self, request: OrderRequest) -> tuple[orders_pb2.Order, Ticket]:
        return self._committed(lambda transaction: self._new_order(request, transaction))

    def _committed(
        self, decide: Callable[[Transaction], orders_pb2.Order]
    ) -> tuple[orders_pb2.Order, Ticket]:
        """A request's decision in a transaction of its own, and the ticket it waits on."""
        transaction = Transaction()
        snapshot = decide(transaction)
        return snapshot, self.commit(transaction, waited=True)

    def _new_order(
        self, request: OrderRequest, transaction: Transaction, *, sizing: Denial | None = None
    ) -> orders_pb2.Order:
        """Checks a new order and adds it to `transaction`: submitted, held (a stop, the exits
        of a bracket) or denied. `sizing`: why a signal's order sized to nothing."""
        request = self._with_day_expiry(request)
        with stage("validate"):
            denial = self._check(request, sizing=sizing)
            if denial is None and request.exits is not None:
                denial = exit_price_problem(request, self.quotes.get(request.instrument))
        if denial is not None:
            return self._denied(request, denial, transaction)
        order = self._new(request)
        legs = self._exits(request, order)
        snapshot = self._accept(order, transaction)
        for leg in legs:
            self._accept(leg, transaction, binds_ids=False)
        if order.is_held:  # a stop: it may trail or trigger at once
            self._emulate_one(self._orders[order.order_id], transaction)
            snapshot = order.to_proto()
        return snapshot

    def _check(
        self,
        request: OrderRequest,
        *,
        closing: bool = False,
        releasing: bool = False,
        at_risk: Decimal | None = None,
        sizing: Denial | None = None,
    ) -> Denial | None:
        """The trading state, the rules, then risk: the first refusal, or None. `closing`: an
        order of ClosePosition, or a held exit, allowed while halted. `releasing`: a held order
        released, its daily and rate limits counted when it was submitted. `at_risk`: the
        quantity risk adds, when not the request's (a modified order's remaining quantity).
        `sizing`: why a signal sized to nothing, given in place of the quantity check."""
        now = self.clock.now()
        quote = self.quotes.get(request.instrument)
        account = self.exposure.exposure((request.account_id,)).holding(request.instrument)
        state = self.trading.effective(request.account_id)
        denial = trading_gate(state, request, account, closing=closing)
        activity = None if releasing else self._activity
        denial = denial or self._validator.check(request, quote, activity, now, sizing=sizing)
        if denial is None:
            price = valuation_price(request, quote)
            assert price is not None  # the validator denies an order it cannot value
            limits = self._risk.limits_of(request.account_id)
            measured = (limits.max_leverage, limits.max_concentration_percent) != (None, None)
            # Equity only for the limits measured against it: it sums every holding.
            equity = self._equity(self._account(request.account_id)) if measured else None
            if at_risk is not None:
                request = replace(request, quantity=at_risk)
            halt = self._halt_of(request.instrument)
            denial = self._risk.check(
                request, quote, self.exposure, price, now, equity=equity, halt=halt
            )
        return denial

    def _with_day_expiry(self, request: OrderRequest) -> OrderRequest:
        """A DAY order expires at its instrument's next session end."""
        instrument = self.config.instrument(request.instrument)
        if request.time_in_force != types_pb2.TIME_IN_FORCE_DAY or instrument is None:
            return request
        return replace(request, expire_time=session_end(self.clock.now(), instrument.session_end))

    def _new(self, request: OrderRequest) -> Order:
        """A checked order: HELD when it is a stop (the emulator triggers it), else SUBMITTED;
        also a stop the venues of its route hold natively (`_venue_holds`)."""
        held = request.order_type in STOP_TYPES and not self._venue_holds(request)
        make = Order.held if held else Order.accepted
        return make(
            request, new_id(), self.clock.now(), precision=self._precision(request.instrument)
        )

    def _venue_holds(self, request: OrderRequest) -> bool:
        """Whether a stop goes to the venue as it is: a plain stop-market or stop-limit that
        triggers on the last trade (as exchanges' stops do), routed only to venues whose config
        says they hold stops (`native_stops`). Trailing stops, other triggers and the exits of
        brackets, OTOs and OCOs (held, for one-cancels-the-other) stay with the emulator."""
        return (
            request.order_type not in TRAILING_TYPES
            and request.trigger_type == types_pb2.TRIGGER_TYPE_LAST
            and request.exits is None
            and self.config.execution.holds_stops(
                request.account_id, request.strategy_id, request.instrument
            )
        )

    def _exits(self, request: OrderRequest, entry: Order) -> list[Order]:
        """The held exits of a bracket, OTO or OCO, linked to their entry and to each other."""
        if request.exits is None:
            return []
        oco = request.order_class == types_pb2.ORDER_CLASS_OCO
        entry.role = types_pb2.ORDER_ROLE_TAKE_PROFIT if oco else types_pb2.ORDER_ROLE_ENTRY
        legs = []
        for role, leg_request in exit_requests(request):
            name = types_pb2.OrderRole.Name(role).removeprefix("ORDER_ROLE_").lower()
            leg_id = _derived_id("exit", entry.order_id, name)
            client_order_id = f"{request.client_order_id}/{name}"
            leg = Order.held(
                replace(leg_request, client_order_id=client_order_id),
                leg_id,
                self.clock.now(),
                precision=entry.precision,
            )
            leg.role, leg.parent_order_id = role, entry.order_id
            entry.child_order_ids.append(leg_id)
            legs.append(leg)
        pair = [entry, *legs] if oco else legs
        if len(pair) == 2:  # one-cancels-the-other
            pair[0].oco_order_id, pair[1].oco_order_id = pair[1].order_id, pair[0].order_id
        return legs

    def _submitted(self, request: OrderRequest, transaction: Transaction) -> orders_pb2.Order:
        """A checked order, sent to the router: its event, command and row in `transaction`."""
        return self._accept(self._new(request), transaction)

    def _accept(
        self, order: Order, transaction: Transaction, *, binds_ids: bool = True
    ) -> orders_pb2.Order:
        """A new checked order: its event (and its command, unless held) and its row."""
        tracked = _Tracked(order, binds_ids=binds_ids)
        if order.is_held:
            event = self._order_event(tracked, order_held=events_pb2.OrderHeld())
        else:
            event = self._order_event(tracked, order_submitted=events_pb2.OrderSubmitted())
            transaction.keep(self._submit_command(order))
        transaction.keep(self.event_record(event))
        self._activity.record(order.account_id, order.create_time)
        return self._created(tracked, event, transaction)

    def _submit_command(self, order: Order) -> Record:
        command = self.new_command(
            order_id=order.order_id,
            account_id=order.account_id,
            instrument=order.instrument,
            submit_order=events_pb2.SubmitOrder(order=order.venue_proto()),
        )
        return self.command_record(command, "orders", order.order_id)

    def _denied(
        self, request: OrderRequest, denial: Denial, transaction: Transaction
    ) -> orders_pb2.Order:
        precision = self._precision(request.instrument)
        order = Order.denied(request, new_id(), denial, self.clock.now(), precision=precision)
        tracked = _Tracked(order, binds_ids=denial.reason not in TRANSIENT_DENIALS)
        payload = events_pb2.OrderDenied(reason=denial.reason, message=denial.message)
        event = self._order_event(tracked, order_denied=payload)
        transaction.keep(self.event_record(event))
        return self._created(tracked, event, transaction)

    def _request_cancel(self, tracked: _Tracked, request_id: str, transaction: Transaction) -> None:
        """Asks the venue to cancel the order; a held order, at no venue, is canceled at once."""
        order = tracked.order
        if order.is_held:
            message = f"canceled before it was sent (request {request_id})"
            self._withdraw(tracked, types_pb2.ORDER_STATUS_CANCELED, message, transaction)
        else:
            cancel = events_pb2.OrderCancelRequested(order_id=order.order_id, request_id=request_id)
            self._own_change(
                tracked, order.request_cancel, transaction, order_cancel_requested=cancel
            )
            transaction.keep(self._cancel_command(order, request_id))
        transaction.execute(
            "INSERT INTO cancel_requests (account_id, request_id, order_id) VALUES (?, ?, ?)",
            (order.account_id, request_id, order.order_id),
        )
        key = (order.account_id, request_id)
        self._pending_cancels[key] = order.order_id
        transaction.then(lambda: self._settled_cancel(key))

    def _own_change(
        self,
        tracked: _Tracked,
        change: Callable[[int, datetime], None],
        transaction: Transaction,
        **payload: object,
    ) -> None:
        """A change order-management makes to an order: `change(version, now)`, then its event
        (the order's next own sequence) and its row in `transaction`."""
        tracked.own_sequence += 1
        change(tracked.order.sequence + 1, self.clock.now())
        event = self._order_event(tracked, **payload)
        transaction.keep(self.event_record(event))
        self._changed(tracked, event, transaction)

    def _withdraw(
        self, tracked: _Tracked, status: OrderStatus, message: str, transaction: Transaction
    ) -> None:
        """Finishes a held order without a venue: CANCELED or EXPIRED."""
        order = tracked.order
        self._own_change(
            tracked,
            lambda version, now: order.withdraw(status, message, version, now),
            transaction,
            order_withdrawn=events_pb2.OrderWithdrawn(status=status, message=message),
        )

    def _cancel_command(self, order: Order, request_id: str) -> Record:
        command = self.new_command(
            order_id=order.order_id,
            account_id=order.account_id,
            instrument=order.instrument,
            cancel_order=events_pb2.CancelOrder(request_id=request_id),
        )
        return self.command_record(command, "orders", order.order_id)

    def _precision(self, symbol: str) -> Precision:
        instrument = self.config.instrument(symbol)
        return DEFAULT_PRECISION if instrument is None else Precision.of(instrument)

    # Events -----------------------------------------------------------------------------------

    def _order_event(self, tracked: _Tracked, **payload: object) -> events_pb2.Event:
        """The next of this service's own events of an order, numbered 1, 2, ... (A11)."""
        order = tracked.order
        event = self.new_event(
            sequence=tracked.own_sequence,
            order_id=order.order_id,
            signal_id=order.signal_id,
            account_id=order.account_id,
            instrument=order.instrument,
            **payload,
        )
        kind = event.WhichOneof("payload")
        if kind in _CARRIES_ORDER:
            getattr(event, kind).order.CopyFrom(order.to_proto())
        return event

    def _changed(
        self,
        tracked: _Tracked,
        event: events_pb2.Event,
        transaction: Transaction,
        snapshot: orders_pb2.Order | None = None,
    ) -> orders_pb2.Order:
        """Saves the order's row in the transaction, and streams the change once durable.
        Returns the order's snapshot (`snapshot` when the caller has one already)."""
        if snapshot is None:
            snapshot = tracked.order.to_proto()
        if snapshot.status != tracked.counted_status and metrics.enabled():
            tracked.counted_status = snapshot.status
            _count(snapshot)
        transaction.execute(_SAVE_ORDER, _order_row(tracked, snapshot))
        self._track(tracked.order)
        if self.updates.has_subscribers:
            update = OrderUpdate(event, snapshot)
            transaction.then(lambda: self.updates.publish(update))
        return snapshot

    def _created(
        self, tracked: _Tracked, event: events_pb2.Event, transaction: Transaction
    ) -> orders_pb2.Order:
        """A new order's snapshot (the one its first event carries)."""
        self._remember(tracked)
        first = getattr(event, event.WhichOneof("payload") or "").order
        return self._changed(tracked, event, transaction, first)

    def _remember(self, tracked: _Tracked) -> None:
        order = tracked.order
        self._orders[order.order_id] = tracked
        if tracked.binds_ids:
            self._by_request[(order.account_id, order.request_id)] = order.order_id
            self._by_client_order[(order.account_id, order.client_order_id)] = order.order_id

    def _forget(self, tracked: _Tracked) -> None:
        order = tracked.order
        del self._orders[order.order_id]
        self._by_request.pop((order.account_id, order.request_id), None)
        self._by_client_order.pop((order.account_id, order.client_order_id), None)

    # Consumed ---------------------------------------------------------------------------------

    def _on_execution(self, event: events_pb2.Event, transaction: Transaction) -> None:
        tracked = self._orders.get(event.order_id) or self._load_one(
            "order_id = ?", (event.order_id,)
        )
        if tracked is None:
            self.report_unresolved(
                transaction, "execution-report", event.order_id, "a report for an unknown order"
            )
            return
        # A replayed dead letter was never applied, whatever the order's count says.
        if not self.replaying:
            if event.sequence <= tracked.report_sequence:
                return  # applied before
            if event.sequence > tracked.report_sequence + 1:
                log.warning(
                    "order %s: report %d arrived after %d; asking the router",
                    event.order_id,
                    event.sequence,
                    tracked.report_sequence,
                )
                tracked.gap = True
                self._wake.set()
                return
        order = tracked.order
        filled_before, fees_before = order.filled_quantity, order.fees
        try:
            order.apply_execution(event.execution_report, order.sequence + 1, event_time(event))
        except InvalidOrderTransition as error:
            # The venue's word is a fact even when it does not fit: an operator must see it.
            self.report_unresolved(transaction, "execution-report", event.event_id, str(error))
        # An InvalidExecutionReport (a decimal that is not one, a fill without a trade id, more
        # than the order's quantity) raises: redelivered, then dead-lettered (_passed_execution).
        tracked.report_sequence = max(tracked.report_sequence, event.sequence)
        if event.order_id not in self._orders:
            self._remember(tracked)
        if order.filled_quantity != filled_before:
            price = Decimal(event.execution_report.last_price)  # applied: on the grammar
            fill = _Fill(order.filled_quantity - filled_before, price, order.fees - fees_before)
            self._filled(order, fill, transaction)
        self._changed(tracked, event, transaction)
        if order.oco_order_id and (order.filled_quantity != filled_before or order.is_finished):
            self._other_exit_changed(order, transaction)
        if order.is_finished and order.role == types_pb2.ORDER_ROLE_ENTRY:
            self._entry_finished(order, transaction)
        if not order.is_open and self._closes:
            self._settle_closes(order.account_id, transaction)

    def _filled(self, order: Order, fill: _Fill, transaction: Transaction) -> None:
        """Adds a fill to the risk view and the account, and saves both."""
        signed = fill.quantity if order.side == types_pb2.SIDE_BUY else -fill.quantity
        account = self._account(order.account_id)
        account.observe(self._equity(account), self.clock.now())  # a new day starts before it
        account.fill(signed, fill.price, fill.fee)
        trades = self.exposure.fill(
            order.account_id,
            order.strategy_id,
            order.instrument,
            signed,
            fill.price,
            now=self.clock.now(),
        )
        for traded_scope, last in trades:
            transaction.execute(_SAVE_TRADE, _trade_row(traded_scope, order.instrument, last))
        scope = (order.account_id, order.strategy_id)
        position = self.exposure.exposure(scope).holding(order.instrument).position
        transaction.execute(
            "INSERT INTO risk_positions (account_id, strategy_id, instrument, quantity) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (account_id, strategy_id, instrument) "
            "DO UPDATE SET quantity = excluded.quantity",
            (*scope, order.instrument, str(position)),
        )
        self._observe(account, transaction, changed=True)

    def _account(self, account_id: str) -> Account:
        account = self._accounts.get(account_id)
        if account is None:
            starting = self.config.accounts.starting_cash_of(account_id)
            account = self._accounts[account_id] = Account.opened(account_id, starting)
        return account

    def _equity(self, account: Account) -> Decimal:
        return account.cash + self.exposure.position_value(account.account_id)

    def _observe(self, account: Account, transaction: Transaction, *, changed: bool) -> None:
        """Notes the account's equity now (saving the account when it changed) and moves it to
        risk.on_breach when its daily loss or drawdown reaches its limit."""
        equity = self._equity(account)
        if account.observe(equity, self.clock.now()) or changed:
            transaction.execute(
                "INSERT INTO accounts (account_id, cash, fees, day, day_start_equity, "
                "high_water_mark) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (account_id) DO UPDATE "
                "SET cash = excluded.cash, fees = excluded.fees, day = excluded.day, "
                "day_start_equity = excluded.day_start_equity, "
                "high_water_mark = excluded.high_water_mark",
                (
                    account.account_id,
                    str(account.cash),
                    str(account.fees),
                    account.day.isoformat() if account.day else None,
                    str(account.day_start_equity),
                    str(account.high_water_mark),
                ),
            )
        why = account.breach(equity, self._risk.limits_of(account.account_id))
        target = _BREACH_STATES[self.config.risk.on_breach]
        current = self.trading.of(account.account_id)
        if why is not None and stricter(current.state, target) != current.state:
            breach_id = _derived_id("breach", account.account_id, str(current.version))
            self._set_state(breach_id, account.account_id, target, why, transaction)

    def _track(self, order: Order) -> None:
        """Keeps the risk view and the index of held orders up to date. A held order is at no
        venue and cannot fill: it counts toward exposure once released (and checked again)."""
        held = self._held.setdefault(order.instrument, set())
        if order.is_held:
            held.add(order.order_id)
        else:
            held.discard(order.order_id)
        leaves = order.leaves_at_risk if order.is_open and not order.is_held else Decimal(0)
        self._track_open(order, leaves)

    def _track_open(self, order: Order, leaves: Decimal) -> None:
        """The order's open quantity as the risk view counts it."""
        self.exposure.track(
            order.order_id,
            account_id=order.account_id,
            strategy_id=order.strategy_id,
            instrument=order.instrument,
            side=order.side,
            leaves=leaves,
        )

    def _passed_execution(self, event: events_pb2.Event, transaction: Transaction) -> None:
        """A report that was dead-lettered: the order's count moves past it, so its later reports
        apply (a replay still applies it). Otherwise the next report would look like a gap, the
        router would be asked, and its resend would be dead-lettered again, for ever."""
        tracked = self._orders.get(event.order_id) or self._load_one(
            "order_id = ?", (event.order_id,)
        )
        if tracked is None or event.sequence != tracked.report_sequence + 1:
            return
        tracked.report_sequence = event.sequence
        transaction.execute(_SAVE_ORDER, _order_row(tracked, tracked.order.to_proto()))

    def _on_quote(self, event: events_pb2.Event, transaction: Transaction) -> None:
        quote = self.quotes.apply(event)
        if quote is not None and quote.bid > 0 and quote.ask > 0:
            self.exposure.set_mark(quote.instrument, quote.mid)
            for account_id in self.exposure.holders(quote.instrument):
                self._observe(self._account(account_id), transaction, changed=False)
        if quote is not None and self._held.get(quote.instrument):
            self._emulate(quote.instrument, transaction)
        if self._closes:  # a close may be waiting for market data
            self._settle_closes(None, transaction)

    # The order emulator ------------------------------------------------------------------------

    def _emulate(self, instrument: str, transaction: Transaction) -> None:
        for order_id in sorted(self._held.get(instrument, ())):
            tracked = self._orders[order_id]
            if tracked.order.is_held:  # an earlier one's release may have withdrawn it
                self._emulate_one(tracked, transaction)

    def _emulate_one(self, tracked: _Tracked, transaction: Transaction) -> None:
        """Expires a held order, trails it, triggers it and releases it, as the quote says."""
        order = tracked.order
        if expired(order, self.clock.now()):
            assert order.expire_time is not None
            message = f"expired at {order.expire_time.isoformat()} before it was sent"
            self._withdraw(tracked, types_pb2.ORDER_STATUS_EXPIRED, message, transaction)
            return
        quote = self.quotes.get(order.instrument)
        entry = self._working_entry(order)
        guarding = entry is not None and self._guards_fills_of(order, entry.order)
        if not order.is_stop or quote is None or (entry is not None and not guarding):
            return
        if order.trigger_time is None:
            price = trigger_source(order.side, order.trigger_type, quote)
            if price is None:
                return
            if order.order_type in TRAILING_TYPES:
                self._trail(tracked, price, transaction)
            if order.trigger_price is None or not reached(order.side, order.trigger_price, price):
                return
            triggered = events_pb2.OrderTriggered(price=format_decimal(price))
            self._own_change(tracked, order.triggered, transaction, order_triggered=triggered)
        if entry is not None:
            # What the entry filled is at risk now: its remainder is canceled, and the stop goes
            # for all it filled once it has finished (`_entry_finished`).
            self._cancel_entry_remainder(entry, order, transaction)
            return
        self._release(tracked, transaction)

    def _trail(self, tracked: _Tracked, price: Decimal, transaction: Transaction) -> None:
        order = tracked.order
        instrument = self.config.instrument(order.instrument)
        assert instrument is not None  # a held order passed the validator
        moved = trailed(order, price, instrument.tick_size)
        if moved is None:
            return
        trigger, limit = moved
        amended = events_pb2.OrderAmended(
            trigger_price=format_decimal(trigger),
            limit_price=format_decimal(limit),
            message=f"trailing the market at {format_decimal(price)}",
        )
        self._own_change(
            tracked,
            lambda version, now: order.amend(
                version, now, trigger_price=trigger, limit_price=limit
            ),
            transaction,
            order_amended=amended,
        )

    def _working_entry(self, order: Order) -> _Tracked | None:
        """The entry of a bracket's or OTO's exit while the entry still works, else None."""
        parent = self._orders.get(order.parent_order_id) if order.parent_order_id else None
        if parent is None or parent.order.role != types_pb2.ORDER_ROLE_ENTRY:
            return None
        return parent if parent.order.is_open else None

    @staticmethod
    def _guards_fills_of(order: Order, entry: Order) -> bool:
        """A stop-loss watches its trigger from its entry's first fill: what filled is held,
        even while the rest of the entry still works (a take-profit waits for the entry)."""
        return order.role == types_pb2.ORDER_ROLE_STOP_LOSS and entry.filled_quantity > 0

    def _cancel_entry_remainder(
        self, entry: _Tracked, stop: Order, transaction: Transaction
    ) -> None:
        if entry.order.status == types_pb2.ORDER_STATUS_PENDING_CANCEL:
            return
        cancel_id = _derived_id("stop-loss-triggered", stop.order_id, entry.order.order_id)
        if self._canceled_by(entry.order.account_id, cancel_id) is None:
            self._request_cancel(entry, cancel_id, transaction)

    def _release(self, tracked: _Tracked, transaction: Transaction) -> None:
        """Sends a held order to the venue once its checks pass again. Of a one-cancels-the-other
        pair only one is ever at a venue: the other is canceled first, and this one waits for
        that (`_other_exit_changed`). A transient refusal waits for the next quote."""
        order = tracked.order
        other = self._orders.get(order.oco_order_id) if order.oco_order_id else None
        if other is not None and other.order.is_open and not other.order.is_held:
            if other.order.status != types_pb2.ORDER_STATUS_PENDING_CANCEL:
                version = str(other.order.sequence)
                cancel_id = _derived_id("one-cancels-the-other", order.order_id, version)
                self._request_cancel(other, cancel_id, transaction)
            return
        exit_ = order.role in (types_pb2.ORDER_ROLE_TAKE_PROFIT, types_pb2.ORDER_ROLE_STOP_LOSS)
        denial = self._check(order.as_request(), closing=exit_, releasing=True)
        if _transient(denial):
            return
        if denial is not None:
            log.warning("held order %s denied on release: %s", order.order_id, denial.message)
            payload = events_pb2.OrderDenied(reason=denial.reason, message=denial.message)
            self._own_change(
                tracked,
                lambda version, now: order.deny_release(denial, version, now),
                transaction,
                order_denied=payload,
            )
            return
        released = events_pb2.OrderReleased(
            venue_order_type=order.venue_order_type, limit_price=format_decimal(order.limit_price)
        )
        self._own_change(tracked, order.release, transaction, order_released=released)
        transaction.keep(self._submit_command(order))

    def _entry_finished(self, entry: Order, transaction: Transaction) -> None:
        """An entry finished: its held exits take what it filled and go to work (the take-profit
        to the venue, the stop-loss to the emulator), or are canceled when nothing filled."""
        filled = entry.filled_quantity
        exits = [self._orders.get(i) for i in entry.child_order_ids]
        held = [t for t in exits if t is not None and t.order.is_held]
        for tracked in held:
            if not filled:
                message = f"its entry {entry.order_id} finished with nothing filled"
                self._withdraw(tracked, types_pb2.ORDER_STATUS_CANCELED, message, transaction)
            else:
                self._set_quantity(
                    tracked, filled, f"its entry {entry.order_id} filled", transaction
                )
        for tracked in sorted(held, key=lambda t: t.order.is_stop):  # the take-profit first
            if not tracked.order.is_held:
                continue
            if tracked.order.is_stop:
                self._emulate_one(tracked, transaction)
            else:
                self._release(tracked, transaction)

    def _other_exit_changed(self, order: Order, transaction: Transaction) -> None:
        """One of a one-cancels-the-other pair filled or finished at the venue: the held other
        is canceled once this one filled completely, else takes what this one left (and, when
        it was triggered, is released now that this one is finished)."""
        other = self._orders.get(order.oco_order_id)
        if other is None or not other.order.is_held:
            return
        left = order.quantity - order.filled_quantity
        if not left:
            message = f"its one-cancels-the-other order {order.order_id} filled"
            self._withdraw(other, types_pb2.ORDER_STATUS_CANCELED, message, transaction)
            return
        message = f"its one-cancels-the-other order {order.order_id} left {format_decimal(left)}"
        self._set_quantity(other, left, message, transaction)
        if order.is_finished and other.order.trigger_time is not None:
            self._release(other, transaction)

    def _set_quantity(
        self, tracked: _Tracked, quantity: Decimal, message: str, transaction: Transaction
    ) -> None:
        order = tracked.order
        if order.quantity == quantity:
            return
        amended = events_pb2.OrderAmended(quantity=format_decimal(quantity), message=message)
        self._own_change(
            tracked,
            lambda version, now: order.amend(version, now, quantity=quantity),
            transaction,
            order_amended=amended,
        )

    # Reconciliation ---------------------------------------------------------------------------

    def reconcile(self, *, everything: bool = False) -> int:
        """Asks the router about open orders it has not answered for a while, about pending
        cancels, and about orders whose reports came with a gap (all open orders when
        `everything`); applies what it answers; forgets finished orders past their retention.
        Returns how many orders were asked about."""
        asked = 0
        for question in self._questions(everything=everything):
            try:
                reports = self._router.query_order(
                    question.order_id,
                    question.account_id,
                    question.instrument,
                    question.cancel_request_id,
                    question.pending_modify,
                )
            except PeerUnavailable as error:
                # Asked again next round, with every other open order (as on start).
                self._router.report_unavailable("reconciling orders", error)
                self._ask_everything = True
                break
            self._apply_answer(reports)
            asked += 1
        return asked

    def _questions(self, *, everything: bool) -> list[_Question]:
        """Each order to ask the router about, with its pending cancel and modify."""
        now = self.clock.now()
        age = timedelta(milliseconds=self.config.reconciliation.order_age_ms)
        questions = []
        with self.lock:
            for tracked in list(self._orders.values()):
                order = tracked.order
                if order.is_finished:
                    if now - order.update_time > self._retention:
                        self._forget(tracked)
                    continue
                if order.is_held:  # at no venue: the router never had it
                    continue
                waiting = order.status in _AWAITING_VENUE
                last_asked = tracked.asked_at or order.update_time
                due = waiting and now - last_asked >= age
                if everything or tracked.gap or due:
                    tracked.asked_at, tracked.gap = now, False
                    change = order.pending_change
                    questions.append(
                        _Question(
                            order.order_id,
                            order.account_id,
                            order.instrument,
                            self._pending(order),
                            _modify_message(change) if change else None,
                        )
                    )
        return questions

    def _pending(self, order: Order) -> str:
        """The request id of the order's pending cancel, or ""."""
        if order.status != types_pb2.ORDER_STATUS_PENDING_CANCEL:
            return ""
        rows = self.journal.query(
            "SELECT request_id FROM cancel_requests WHERE account_id = ? AND order_id = ?",
            (order.account_id, order.order_id),
        )
        return str(rows[-1][0]) if rows else ""

    def _apply_answer(self, reports: list[events_pb2.Event]) -> None:
        """The router's reports of an order, applied as if delivered (those applied before are
        skipped by their sequence); durable before the next question."""
        transaction = Transaction()
        with self.lock:
            for report in reports:
                self._on_execution(report, transaction)
            ticket = self.commit(transaction, waited=True)
        ticket.wait()

    def _reconcile_periodically(self) -> None:
        interval = self.config.reconciliation.interval_ms / 1000
        while not self._stopping.is_set():
            try:
                everything, self._ask_everything = self._ask_everything, False
                self.reconcile(everything=everything)
            except Exception:
                log.exception("reconciliation failed")
            self._wake.wait(interval)
            self._wake.clear()


@dataclass(frozen=True)
class _Question:
    """An order reconciliation asks the router about, with what it has pending there."""

    order_id: str
    account_id: str
    instrument: str
    cancel_request_id: str
    pending_modify: events_pb2.ModifyOrder | None


def _modify_message(change: OrderChange) -> events_pb2.ModifyOrder:
    """A change as the router's ModifyOrder command carries it (a trigger never goes there)."""
    return events_pb2.ModifyOrder(
        request_id=change.request_id,
        quantity=format_decimal(change.quantity),
        limit_price=format_decimal(change.limit_price),
    )


@dataclass(frozen=True)
class _Fill:
    """What one execution report filled."""

    quantity: Decimal
    price: Decimal
    fee: Decimal


_BREACH_STATES = {"reducing": types_pb2.TRADING_STATE_REDUCING, "halted": HALTED}
_AWAITING_VENUE = frozenset(
    {
        types_pb2.ORDER_STATUS_SUBMITTED,
        types_pb2.ORDER_STATUS_PENDING_CANCEL,
        types_pb2.ORDER_STATUS_PENDING_UPDATE,
    }
)
_EXIT_ROLES = frozenset({types_pb2.ORDER_ROLE_TAKE_PROFIT, types_pb2.ORDER_ROLE_STOP_LOSS})
# The namespace of the ids order-management makes from a request's (cancels of CancelAllOrders,
# closing orders): the same request always makes the same ids.
_DERIVED_IDS = uuid.UUID("6f1c8a9e-3b54-4d47-9a1e-0c5b7d2e4f10")


def _transient(denial: Denial | None) -> bool:
    return denial is not None and denial.reason in TRANSIENT_DENIALS


def _split(joined: object) -> list[str]:
    return [part for part in str(joined).split(",") if part]


def _derived_id(*parts: str) -> str:
    return str(uuid.uuid5(_DERIVED_IDS, "|".join(parts)))


def _count(order: orders_pb2.Order) -> None:
    """An order's new status in trading_orders_total (and a denial's reason)."""
    metrics.order_status(types_pb2.OrderStatus.Name(order.status).removeprefix("ORDER_STATUS_"))
    if order.status == types_pb2.ORDER_STATUS_DENIED:
        reason = types_pb2.DenialReason.Name(order.denial_reason).removeprefix("DENIAL_REASON_")
        metrics.order_denied(reason)


def _scope_name(account_id: str) -> str:
    return f"account {account_id}" if account_id else "the platform"


def _limit_scope_name(scope: RiskScope, name: str) -> str:
    kind = control_pb2.RiskScope.Name(scope).removeprefix("RISK_SCOPE_").lower()
    return f"{kind} {name}" if name else f"every {kind.rstrip('s')}"


_SCOPE_SEPARATOR = "\x1f"
# The kinds of operator_records.
_RISK_LIMITS, _INSTRUMENT_STATUS = "risk_limits", "instrument_status"
_SAVE_TRADE = (
    "INSERT INTO risk_trades (scope, instrument, quantity, average_price, traded_us, lost_us) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (scope, instrument) DO UPDATE SET "
    "quantity = excluded.quantity, average_price = excluded.average_price, "
    "traded_us = excluded.traded_us, lost_us = excluded.lost_us"
)


def _trade_row(scope: tuple[str, ...], instrument: str, last: LastTrade) -> tuple[object, ...]:
    lost = last.lost_at
    return (
        _SCOPE_SEPARATOR.join(scope),
        instrument,
        str(last.lot.quantity),
        format_decimal(last.lot.average_price) or None,
        micros(last.traded_at),
        micros(lost) if lost else None,
    )


# The payloads that carry the order's whole snapshot: the first event of each order.
_CARRIES_ORDER = frozenset({"order_submitted", "order_denied", "order_held"})
_TRACKED_COLUMNS = "snapshot, own_sequence, report_sequence, venue_accepted, request_id"
_SAVE_ORDER = (
    "INSERT INTO orders (order_id, account_id, instrument, status, is_open, create_time_us, "
    "update_time_us, request_id, client_order_id, own_sequence, report_sequence, venue_accepted,"
    " snapshot) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (order_id) DO UPDATE "
    "SET status = excluded.status, is_open = excluded.is_open, update_time_us = "
    "excluded.update_time_us, own_sequence = excluded.own_sequence, report_sequence = "
    "excluded.report_sequence, venue_accepted = excluded.venue_accepted, snapshot = "
    "excluded.snapshot"
)


def _order_row(tracked: _Tracked, snapshot: orders_pb2.Order) -> tuple[object, ...]:
    order = tracked.order
    return (
        order.order_id,
        order.account_id,
        order.instrument,
        order.status,
        int(order.is_open),
        micros(order.create_time),
        micros(order.update_time),
        order.request_id if tracked.binds_ids else None,
        order.client_order_id if tracked.binds_ids else None,
        tracked.own_sequence,
        tracked.report_sequence,
        int(order.venue_accepted),
        snapshot.SerializeToString(),
    )


# The request fields that make two submits the same request. A signal's quantity is sized by
# us, and its signal id may be generated, so neither counts for a signal; nor do the prices of
# its exits when one was asked at a distance (priced from the market when it was sized).
_SAME_REQUEST_FIELDS = (
    "client_order_id",
    "request_id",
    "strategy_id",
    "instrument",
    "side",
    "order_type",
    "time_in_force",
    "limit_price",
    "reduce_only",
    "trigger_type",
    "trailing_offset",
    "trailing_offset_type",
    "limit_offset",
    "display_quantity",
    "post_only",
    "order_class",
    "exits",
)


def _differences(order: Order, request: OrderRequest) -> list[str]:
    """The request fields in which `request` differs from the one that made `order`. A held
    order's trigger and an exit's quantity change as it works, so are compared as asked
    (a trailing stop's first trigger is not kept); a DAY order's expiry is ours."""
    fields: tuple[str, ...] = _SAME_REQUEST_FIELDS
    if not request.signal_id:
        fields = (*fields, "quantity")
    elif request.exits is None:
        fields = tuple(name for name in fields if name != "exits")
    if request.order_type not in TRAILING_TYPES:
        fields = (*fields, "trigger_price")
    if request.time_in_force == types_pb2.TIME_IN_FORCE_GTD:
        fields = (*fields, "expire_time")
    return [name for name in fields if getattr(order, name) != getattr(request, name)]
