"""Position-management: positions and P&L built from fills, marked to the latest quote.

Each fill is applied once (by trade id): the fill, the position it changed and the
PositionUpdated event are one journal transaction, published after it is durable. The
`fills` table is the record positions are checked against: on start and periodically every
position is rebuilt from its fills and compared; a difference is reported, never hidden.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from decimal import Decimal

from trading.v1 import events_pb2, positions_pb2
from trading_core.decimals import parse_decimal
from trading_core.errors import NotFound
from trading_core.events import event_time, from_micros, micros
from trading_core.journal import Transaction
from trading_core.peers import PeerUnavailable, RouterClient
from trading_core.quotes import QuoteBook
from trading_core.service import JournaledService, ServiceContext
from trading_core.streams import Broadcaster
from trading_core.telemetry import stage

from position_management.domain.positions import Fill, Position, PositionBook

log = logging.getLogger(__name__)

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS fills (
        seq INTEGER PRIMARY KEY,
        trade_id TEXT NOT NULL UNIQUE,
        order_id TEXT NOT NULL,
        account_id TEXT NOT NULL,
        instrument TEXT NOT NULL,
        side INTEGER NOT NULL,
        quantity TEXT NOT NULL,
        price TEXT NOT NULL,
        fee TEXT NOT NULL,
        time_us INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS positions (
        account_id TEXT NOT NULL,
        instrument TEXT NOT NULL,
        quantity TEXT NOT NULL,
        average_price TEXT,
        realized_pnl TEXT NOT NULL,
        fees TEXT NOT NULL,
        sequence INTEGER NOT NULL,
        update_time_us INTEGER,
        PRIMARY KEY (account_id, instrument)
    )""",
)


@dataclass(frozen=True)
class PositionChange:
    event: events_pb2.Event
    position: positions_pb2.Position


def fill_of(event: events_pb2.Event) -> Fill | None:
    """The fill an event carries, or None for any other event or a report without a fill.
    Decimals are parsed with the one wire grammar, as order-management does: a report that
    breaks it raises ValueError (redelivered, then dead-lettered)."""
    if event.WhichOneof("payload") != "execution_report":
        return None
    report = event.execution_report
    if not report.trade_id or not report.last_quantity:
        return None

    def amount(text: str, name: str) -> Decimal:
        try:
            value = parse_decimal(text, name)
        except ValueError as error:
            raise ValueError(f"fill {report.trade_id} of order {event.order_id}: {error}") from None
        assert value is not None  # required
        return value

    return Fill(
        trade_id=report.trade_id,
        order_id=event.order_id,
        account_id=event.account_id,
        instrument=event.instrument,
        side=report.side,
        quantity=amount(report.last_quantity, "last_quantity"),
        price=amount(report.last_price, "last_price"),
        fee=amount(report.fee or "0", "fee"),
        time=event_time(event),
    )


class PositionManagement(JournaledService):
    name = "position-management"

    def __init__(self, context: ServiceContext):
        super().__init__(context)
        config = context.config
        self._book = PositionBook(config.instruments)
        self._quotes = QuoteBook()
        self.changes: Broadcaster[PositionChange] = Broadcaster(
            max_streams=config.services.max_streams
        )
        self._stopping = threading.Event()
        self._router = RouterClient(self.peers)
        self._checker = threading.Thread(target=self._check_periodically, daemon=True)

    def start(self) -> None:
        self._load()
        super().start()
        self.consume("market-data", events_pb2.Event, self._on_quote)
        self.consume("executions", events_pb2.Event, self._on_execution)
        self.check_positions()
        self._checker.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._checker.is_alive():
            self._checker.join()
        self._router.close()
        self.changes.close()

    def position(self, account_id: str, instrument: str) -> positions_pb2.Position:
        with self.lock:
            position = self._book.get(account_id, instrument)
            if position is None:
                raise NotFound(f"account {account_id!r} has no position in {instrument!r}")
            snapshot = position.to_proto()
        self.journal.sync_point().wait()
        return snapshot

    def positions(self, account_id: str | None) -> list[positions_pb2.Position]:
        with self.lock:
            snapshots = [p.to_proto() for p in self._book.positions(account_id)]
        self.journal.sync_point().wait()
        return snapshots

    # Consumed ---------------------------------------------------------------------------------

    def _on_execution(self, event: events_pb2.Event, transaction: Transaction) -> None:
        fill = fill_of(event)
        if fill is None or self._applied(fill.trade_id):
            return
        with stage("apply_fill"):
            position = self._book.apply_fill(fill)
        if position is None:
            return
        transaction.execute(_SAVE_FILL, _fill_row(fill))
        transaction.execute(_SAVE_POSITION, _position_row(position))
        quote = self._quotes.get(position.instrument)
        if quote is not None:
            position.mark(quote.mid, quote.time)
        snapshot = position.to_proto()
        change = self.new_event(
            sequence=position.sequence,
            order_id=event.order_id,
            account_id=position.account_id,
            instrument=position.instrument,
            position_updated=events_pb2.PositionUpdated(position=snapshot),
        )
        key = f"{position.account_id}|{position.instrument}"
        transaction.keep(self.event_record(change, "positions", key))
        if self.changes.has_subscribers:
            update = PositionChange(change, snapshot)
            transaction.then(lambda: self.changes.publish(update))

    def _applied(self, trade_id: str) -> bool:
        return bool(self.journal.query("SELECT 1 FROM fills WHERE trade_id = ?", (trade_id,)))

    def _on_quote(self, event: events_pb2.Event, _transaction: Transaction) -> None:
        quote = self._quotes.apply(event)
        if quote is not None:
            self._book.mark(quote)

    # State ------------------------------------------------------------------------------------

    def _load(self) -> None:
        for row in self.journal.query(f"SELECT {_POSITION_COLUMNS} FROM positions"):  # noqa: S608
            self._book.put(_position(row))

    def check_positions(self) -> list[str]:
        """Rebuilds every durable position from the durable fills and compares; returns what
        differs (also reported as unresolved). Memory is not compared: it runs ahead of the
        journal by what is being committed; it is what `positions` holds once loaded."""
        with self.journal.snapshot():
            held_rows = self.journal.query(f"SELECT {_POSITION_COLUMNS} FROM positions")  # noqa: S608
            fill_rows = self.journal.query(f"SELECT {_FILL_COLUMNS} FROM fills ORDER BY seq")  # noqa: S608
        rebuilt = PositionBook()
        for row in fill_rows:
            rebuilt.apply_fill(_fill(row))
        held = {(p.account_id, p.instrument): p for p in map(_position, held_rows)}
        problems: list[str] = []
        transaction = Transaction()
        for expected in rebuilt.positions():
            key = (expected.account_id, expected.instrument)
            actual = held.pop(key, None)
            subject = "|".join(key)
            if actual is None or _state(actual) != _state(expected):
                detail = f"position {_state(actual)} but its fills give {_state(expected)}"
                self.report_unresolved(transaction, "position", subject, detail)
                problems.append(subject)
            else:
                self.resolved(transaction, "position", subject)
        for key, actual in held.items():
            if actual.quantity or actual.fees:
                subject = "|".join(key)
                self.report_unresolved(transaction, "position", subject, "no fills")
                problems.append(subject)
        self.commit(transaction, waited=True).wait()
        return problems

    def catch_up_fills(self, since_us: int, until_us: int) -> int:
        """Counts its fills in [since, until) against the router's (which owns them); when they
        differ, fetches the router's reports of that window and applies each fill it lacks.
        Returns how many it applied."""
        ((count,),) = self.journal.query(
            "SELECT count(*) FROM fills WHERE time_us >= ? AND time_us < ?", (since_us, until_us)
        )
        made = self._router.count_fills(since_us, until_us)
        if made == count:
            return 0
        log.warning("position-management has %d of the %d fills in its window", count, made)
        applied = 0
        for page in self._router.fills(since_us, until_us):
            transaction = Transaction()
            with self.lock:
                for report in page:
                    self._on_execution(report, transaction)
                ticket = self.commit(transaction, waited=True)
            applied += len(transaction.records)  # a PositionUpdated per fill applied
            ticket.wait()
        return applied

    def _check_periodically(self) -> None:
        """Catches up with the router's fills: all of them once on start, then those of a
        trailing window each interval (up to `order_age_ms` ago); checks positions against
        fills every twelve."""
        settings = self.config.reconciliation
        lookback_us = settings.fill_lookback_ms * 1000
        # Fills younger than this may still be on their way on the bus: left to a later round
        # (else, under load, every round would fetch the whole window).
        age_us = settings.order_age_ms * 1000
        since_start = True
        checks = 0
        while True:
            try:
                until = micros(self.clock.now()) - age_us
                self.catch_up_fills(0 if since_start else until - lookback_us, until)
                since_start = False
                checks += 1
                if checks % 12 == 0:
                    self.check_positions()
            except PeerUnavailable as error:
                self._router.report_unavailable("checking fills", error)
            except Exception:
                log.exception("reconciling fills and positions failed")
            if self._stopping.wait(settings.interval_ms / 1000):
                return


def _state(position: Position | None) -> tuple[Decimal, Decimal, Decimal] | None:
    if position is None:
        return None
    return (position.quantity, position.realized_pnl, position.fees)


_FILL_COLUMNS = "trade_id, order_id, account_id, instrument, side, quantity, price, fee, time_us"
_SAVE_FILL = f"INSERT INTO fills ({_FILL_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"  # noqa: S608
_POSITION_COLUMNS = (
    "account_id, instrument, quantity, average_price, realized_pnl, fees, sequence, update_time_us"
)
_SAVE_POSITION = (
    f"INSERT OR REPLACE INTO positions ({_POSITION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"  # noqa: S608
)


def _fill_row(fill: Fill) -> tuple[object, ...]:
    return (
        fill.trade_id,
        fill.order_id,
        fill.account_id,
        fill.instrument,
        fill.side,
        str(fill.quantity),
        str(fill.price),
        str(fill.fee),
        micros(fill.time),
    )


def _fill(row: tuple[object, ...]) -> Fill:
    trade_id, order_id, account_id, instrument, side, quantity, price, fee, time_us = row
    return Fill(
        trade_id=str(trade_id),
        order_id=str(order_id),
        account_id=str(account_id),
        instrument=str(instrument),
        side=side,  # type: ignore[arg-type]
        quantity=Decimal(str(quantity)),
        price=Decimal(str(price)),
        fee=Decimal(str(fee)),
        time=from_micros(int(time_us)),  # type: ignore[call-overload]
    )


def _position_row(position: Position) -> tuple[object, ...]:
    return (
        position.account_id,
        position.instrument,
        str(position.quantity),
        None if position.average_price is None else str(position.average_price),
        str(position.realized_pnl),
        str(position.fees),
        position.sequence,
        None if position.update_time is None else micros(position.update_time),
    )


def _position(row: tuple[object, ...]) -> Position:
    account_id, instrument, quantity, average, realized, fees, sequence, update_us = row
    return Position(
        account_id=str(account_id),
        instrument=str(instrument),
        quantity=Decimal(str(quantity)),
        average_price=None if average is None else Decimal(str(average)),
        realized_pnl=Decimal(str(realized)),
        fees=Decimal(str(fees)),
        sequence=int(sequence),  # type: ignore[call-overload]
        update_time=None if update_us is None else from_micros(int(update_us)),  # type: ignore[call-overload]
    )
