"""Crash runs: a steady stream of orders (market orders, resting limit orders, cancels, and
modifies of the resting ones: their quantity, their limit price or both, sometimes to a
marketable price so that they fill; some orders worked by the router as child orders: split,
or a TWAP) from a few client threads, processes killed with SIGKILL
mid-run and restarted, every unanswered request retried with the same ids, then every order
and position checked through the API.

What is counted, and must be zero:
- lost: an order answered (SUBMITTED or DENIED) that the platform no longer knows;
- duplicated: a client order id that became more than one order;
- stuck: an order still open after settling (PENDING_UPDATE and PENDING_CANCEL included),
  other than a limit order resting at a price the market does not reach;
- inconsistent: a resting order whose quantity and limit price are neither those it was placed
  with nor, when a modify of it was answered without a refusal, those the modify asked (each
  order is modified at most once, so any other values are a modify half applied, applied on
  top of another change, or applied though refused);
- wrong positions: an instrument whose position differs from the sum of the orders' fills
  (quantity and fees), which is also how a fill counted twice shows;
- unexpected: an error a client did not expect (INVALID_ARGUMENT would be a bug of the stream),
  which ends that client's thread.

Also reported, not counted: the modifies answered without a refusal, refused (a denial reason:
the order is unchanged), answered FAILED_PRECONDITION (the order not ACCEPTED yet, filled, or
with a cancel or modify pending: a normal outcome, the order unchanged), asked again after the
restart, and applied (the order holds the values asked), with how many of those filled.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

import grpc
from trading.v1 import orders_pb2, positions_pb2, types_pb2

from tests.e2e.conftest import Clients
from tests.support import wait_until

INSTRUMENTS = ("BTC-USD", "ETH-USD")
# Buy limits far below any price the walk reaches in a run (it starts at 60000 and 3000), each
# worth at least the instruments' min_notional of 10: orders that rest until canceled. An order
# is placed at the first; a modify may move it to another.
RESTING_BUY = {"BTC-USD": ("30000", "29000", "31000"), "ETH-USD": ("1500", "1450", "1550")}
# Far above any price the walk reaches: a buy limit moved there fills on the next quote.
MARKETABLE_BUY = {"BTC-USD": "90000", "ETH-USD": "4500"}
# The quantity of a new order first; a modify may change a resting order's total to another.
QUANTITY = {"BTC-USD": ("0.001", "0.002", "0.003"), "ETH-USD": ("0.01", "0.02", "0.03")}
_CANCELED_SHARE = 0.35  # resting limits canceled right after
_RESTING_SHARE = 0.50  # up to here: resting limits kept (and maybe modified)
_SELL_FROM = 0.75  # market orders above _RESTING_SHARE; sells from here
# Orders the router works as child orders: resting limits split in two (kept), market orders
# split in two, and market orders as a TWAP of two slices over a second.
_SPLIT_RESTING_TO = 0.40
_SPLIT_FROM, _TWAP_FROM, _TWAP_TO = 0.55, 0.62, 0.68
_MODIFY_SHARE = 0.3  # of the stream's steps, those that also modify a resting order
_MARKETABLE_SHARE = 0.3  # of the modifies that change the price, those that make it marketable
_CANCEL_AFTER_MODIFY = 0.25  # of the modifies answered, those canceled at once (racing it)
_BACK_OFF_S = 0.2
RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
OPEN = {
    types_pb2.ORDER_STATUS_SUBMITTED,
    types_pb2.ORDER_STATUS_ACCEPTED,
    types_pb2.ORDER_STATUS_PARTIALLY_FILLED,
    types_pb2.ORDER_STATUS_PENDING_CANCEL,
    types_pb2.ORDER_STATUS_PENDING_UPDATE,
}


@dataclass(frozen=True)
class Resting:
    """A resting limit order of the stream, as it was placed."""

    order_id: str
    account_id: str
    instrument: str
    quantity: str
    limit_price: str

    @property
    def values(self) -> tuple[Decimal, Decimal]:
        return Decimal(self.quantity), Decimal(self.limit_price)


@dataclass(frozen=True)
class Modify:
    """A modify of a resting order, and the quantity and limit price it asks (the order's own
    where the request leaves one unchanged)."""

    request: orders_pb2.ModifyOrderRequest
    asked: tuple[Decimal, Decimal]
    cancel_after: bool = False


@dataclass
class Outcome:
    answered: dict[str, orders_pb2.Order] = field(default_factory=dict)  # client id -> answer
    unanswered: list[orders_pb2.SubmitOrderRequest] = field(default_factory=list)
    cancels: list[orders_pb2.CancelOrderRequest] = field(default_factory=list)
    unanswered_cancels: list[orders_pb2.CancelOrderRequest] = field(default_factory=list)
    resting: dict[str, Resting] = field(default_factory=dict)  # order id -> as placed
    modified: dict[str, Modify] = field(default_factory=dict)  # order id -> modify, not refused
    modifies_refused: Counter[str] = field(default_factory=Counter)  # denial reason -> count
    # answered FAILED_PRECONDITION, by the status the order had (SUBMITTED, FILLED, ...)
    modifies_not_now: Counter[str] = field(default_factory=Counter)
    unanswered_modifies: list[Modify] = field(default_factory=list)
    modifies_retried: int = 0
    unexpected: list[str] = field(default_factory=list)  # errors that ended a client thread
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Modifies:
    """What became of the stream's modifies."""

    answered: int = 0  # without a refusal
    refused: dict[str, int] = field(default_factory=dict)  # by denial reason
    not_now: dict[str, int] = field(default_factory=dict)  # FAILED_PRECONDITION, by status
    retried: int = 0  # unanswered, asked again with the same request id after the restart
    applied: int = 0  # the order holds the values asked
    filled: int = 0  # of those, orders a marketable price filled


@dataclass
class Report:
    answered: int
    lost: list[str]
    duplicated: list[str]
    stuck: list[str]
    wrong_positions: list[str]
    inconsistent: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    modifies: Modifies = field(default_factory=Modifies)
    # Orders whose command a bus lost, rejected for good by reconciliation (review F1: the
    # emulator drops messages after a subscriber reconnects; production Pub/Sub does not).
    repaired: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (
            self.lost
            or self.duplicated
            or self.stuck
            or self.inconsistent
            or self.wrong_positions
            or self.unexpected
        )


class OrderStream:
    """Clients submitting orders at a steady pace until stopped, recording what was answered."""

    def __init__(self, clients: Callable[[], Clients], account: str, seed: int) -> None:
        self._clients = clients
        self.account = account
        self._random = random.Random(seed)
        # Also guards the pool: resting orders no modify has changed, none being modified.
        self._random_lock = threading.Lock()
        self._pool: list[Resting] = []
        self.outcome = Outcome()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self, threads: int = 3) -> None:
        self._stop.clear()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def wait_for_answers(self, count: int, timeout: float) -> None:
        wait_until(lambda: self.answered_count() >= count, timeout, f"{count} answered orders")

    def answered_count(self) -> int:
        with self.outcome.lock:
            return len(self.outcome.answered)

    def _run(self) -> None:
        try:
            self._steps()
        except grpc.RpcError as error:
            with self.outcome.lock:
                self.outcome.unexpected.append(f"{error.code().name}: {error.details()}")

    def _steps(self) -> None:
        while not self._stop.is_set():
            with self._random_lock:
                choice = self._random.random()
                instrument = self._random.choice(INSTRUMENTS)
                modify = self._planned_modify()
            request = self._request(choice, instrument)
            order = self._submit(request)
            if order is not None and order.status != types_pb2.ORDER_STATUS_DENIED:
                if choice < _CANCELED_SHARE:
                    self._cancel(order)
                elif choice < _RESTING_SHARE:
                    self._keep(order)
            if modify is not None:
                self._modify(modify)
            if order is None:
                # Paced as a client backs off while the platform is down (not synchronisation).
                self._stop.wait(_BACK_OFF_S)

    def _request(self, choice: float, instrument: str) -> orders_pb2.SubmitOrderRequest:
        request = orders_pb2.SubmitOrderRequest(
            request_id=str(uuid.uuid4()),
            client_order_id=str(uuid.uuid4()),
            account_id=self.account,
            strategy_id="crash",
            instrument=instrument,
            side=types_pb2.SIDE_BUY,
            quantity=QUANTITY[instrument][0],
        )
        if choice < _RESTING_SHARE:  # a resting limit: canceled right after, or kept
            request.order_type = types_pb2.ORDER_TYPE_LIMIT
            request.limit_price = RESTING_BUY[instrument][0]
        else:  # a market order; every other one a sell
            request.order_type = types_pb2.ORDER_TYPE_MARKET
            if choice > _SELL_FROM:
                request.side = types_pb2.SIDE_SELL
        half = str(Decimal(request.quantity) / 2)
        if _CANCELED_SHARE <= choice < _SPLIT_RESTING_TO or _SPLIT_FROM <= choice < _TWAP_FROM:
            request.execution.max_child_quantity = half
        elif _TWAP_FROM <= choice < _TWAP_TO:
            request.execution.algorithm = types_pb2.EXECUTION_ALGORITHM_TWAP
            request.execution.horizon.FromSeconds(1)
            request.execution.slice_count = 2
        return request

    def _submit(self, request: orders_pb2.SubmitOrderRequest) -> orders_pb2.Order | None:
        try:
            order = self._clients().orders.SubmitOrder(request, timeout=5).order
        except grpc.RpcError as error:
            if error.code() not in RETRYABLE:
                raise
            with self.outcome.lock:
                self.outcome.unanswered.append(request)
            return None
        with self.outcome.lock:
            self.outcome.answered[request.client_order_id] = order
        return order

    def _cancel(self, order: orders_pb2.Order, *, may_have_finished: bool = False) -> None:
        request = orders_pb2.CancelOrderRequest(
            order_id=order.order_id, account_id=order.account_id, request_id=str(uuid.uuid4())
        )
        try:
            self._clients().orders.CancelOrder(request, timeout=5)
        except grpc.RpcError as error:
            if may_have_finished and error.code() == grpc.StatusCode.FAILED_PRECONDITION:
                return  # a marketable modify filled it first
            if error.code() not in RETRYABLE:
                raise
            with self.outcome.lock:
                self.outcome.unanswered_cancels.append(request)
            return
        with self.outcome.lock:
            self.outcome.cancels.append(request)

    def _keep(self, order: orders_pb2.Order) -> None:
        """A resting order to modify later, as placed."""
        resting = Resting(
            order.order_id, order.account_id, order.instrument, order.quantity, order.limit_price
        )
        with self.outcome.lock:
            self.outcome.resting[order.order_id] = resting
        with self._random_lock:
            self._pool.append(resting)

    def _planned_modify(self) -> Modify | None:
        """Now and then a modify of a resting order taken from the pool (under the lock): a new
        quantity, limit price or both, each different from the order's."""
        if not self._pool or self._random.random() >= _MODIFY_SHARE:
            return None
        resting = self._pool.pop(self._random.randrange(len(self._pool)))
        kind = self._random.choice(("quantity", "price", "both"))
        quantity, price = resting.quantity, resting.limit_price
        request = orders_pb2.ModifyOrderRequest(
            order_id=resting.order_id, account_id=resting.account_id, request_id=str(uuid.uuid4())
        )
        if kind != "price":
            others = [q for q in QUANTITY[resting.instrument] if Decimal(q) != Decimal(quantity)]
            quantity = request.quantity = self._random.choice(others)
        if kind != "quantity":
            if self._random.random() < _MARKETABLE_SHARE:
                price = MARKETABLE_BUY[resting.instrument]
            else:
                others = [
                    p for p in RESTING_BUY[resting.instrument] if Decimal(p) != Decimal(price)
                ]
                price = self._random.choice(others)
            request.limit_price = price
        asked = (Decimal(quantity), Decimal(price))
        cancel_after = self._random.random() < _CANCEL_AFTER_MODIFY
        return Modify(request, asked, cancel_after)

    def _modify(self, modify: Modify) -> None:
        try:
            response = self._clients().orders.ModifyOrder(modify.request, timeout=5)
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.FAILED_PRECONDITION:
                # Not ACCEPTED yet (or, in a stopped account, being canceled): unchanged.
                self._not_now(error)
                self._back_to_pool(modify.request.order_id)
                return
            if error.code() not in RETRYABLE:
                raise
            with self.outcome.lock:  # retried with the same request id, and never again before
                self.outcome.unanswered_modifies.append(modify)
            return
        if self._answered(modify, response) and modify.cancel_after:
            self._cancel(response.order, may_have_finished=True)

    def _answered(self, modify: Modify, response: orders_pb2.ModifyOrderResponse) -> bool:
        """Records the answer; a refused order goes back to the pool. Whether it was taken."""
        order_id = modify.request.order_id
        refusal = response.refusal_reason
        with self.outcome.lock:
            if refusal == types_pb2.DENIAL_REASON_UNSPECIFIED:
                self.outcome.modified[order_id] = modify
            else:
                self.outcome.modifies_refused[types_pb2.DenialReason.Name(refusal)] += 1
        if refusal != types_pb2.DENIAL_REASON_UNSPECIFIED:
            self._back_to_pool(order_id)
            return False
        return True

    def _not_now(self, error: grpc.RpcError) -> None:
        """A FAILED_PRECONDITION answer, counted by the status its message names."""
        details = error.details() or ""  # "order … is SUBMITTED: …"
        status = details.split(" is ", 1)[1].split()[0].strip(":") if " is " in details else "?"
        with self.outcome.lock:
            self.outcome.modifies_not_now[status] += 1

    def _back_to_pool(self, order_id: str) -> None:
        with self.outcome.lock:
            resting = self.outcome.resting[order_id]
        with self._random_lock:
            self._pool.append(resting)

    def retry_unanswered(self) -> None:
        """Every request that got no answer, again with the same ids, as a client would."""
        with self.outcome.lock:
            requests, self.outcome.unanswered = self.outcome.unanswered, []
            cancels, self.outcome.unanswered_cancels = self.outcome.unanswered_cancels, []
            modifies, self.outcome.unanswered_modifies = self.outcome.unanswered_modifies, []
        for request in requests:
            order = self._clients().orders.SubmitOrder(request, timeout=10).order
            with self.outcome.lock:
                self.outcome.answered[request.client_order_id] = order
        for cancel in cancels:
            try:
                self._clients().orders.CancelOrder(cancel, timeout=10)
            except grpc.RpcError as error:
                # The order was never made (its submit got no answer and was retried above as
                # a new request id's order is the same order), or it finished meanwhile.
                finished = (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION)
                if error.code() not in finished:
                    raise
        for modify in modifies:
            with self.outcome.lock:
                self.outcome.modifies_retried += 1
            try:
                response = self._clients().orders.ModifyOrder(modify.request, timeout=10)
            except grpc.RpcError as error:
                # Not taken the first time, and now the order is not ACCEPTED yet, or finished.
                if error.code() != grpc.StatusCode.FAILED_PRECONDITION:
                    raise
                self._not_now(error)
                continue
            self._answered(modify, response)


def settle_and_check(clients: Clients, stream: OrderStream, timeout: float = 60) -> Report:
    """Waits until no order is open but resting limits, then counts what went wrong."""
    outcome = stream.outcome

    def listed() -> list[orders_pb2.Order]:
        orders: list[orders_pb2.Order] = []
        token = ""
        while True:
            page = clients.orders.ListOrders(
                orders_pb2.ListOrdersRequest(
                    account_id=stream.account, page_size=1000, page_token=token
                ),
                timeout=10,
            )
            orders.extend(page.orders)
            token = page.next_page_token
            if not token:
                return orders

    def settled() -> list[orders_pb2.Order] | None:
        orders = listed()
        unsettled = [o for o in orders if o.status in OPEN and not _resting(o)]
        return orders if not unsettled else None

    try:
        orders = wait_until(settled, timeout, "every order to settle")
    except AssertionError:
        orders = listed()
    by_client: dict[str, list[orders_pb2.Order]] = {}
    for order in orders:
        by_client.setdefault(order.client_order_id, []).append(order)
    lost = [cid for cid in outcome.answered if cid not in by_client]
    duplicated = [cid for cid, found in by_client.items() if len(found) > 1]
    stuck = [
        f"{o.order_id} {types_pb2.OrderStatus.Name(o.status)} {_described(o)}"
        for o in orders
        if o.status in OPEN and not _resting(o)
    ]
    inconsistent, modifies = _modify_outcomes(outcome, orders)
    return Report(
        answered=len(outcome.answered),
        lost=lost,
        duplicated=duplicated,
        stuck=stuck,
        wrong_positions=_position_mismatches(clients, stream.account, orders),
        inconsistent=inconsistent,
        unexpected=list(outcome.unexpected),
        modifies=modifies,
        repaired=[o.order_id for o in orders if "never received" in o.status_message],
    )


def _described(order: orders_pb2.Order) -> str:
    """What a stuck order was, for the failure's message."""
    kind = types_pb2.OrderType.Name(order.order_type).removeprefix("ORDER_TYPE_")
    worked = ""
    if order.HasField("execution"):
        algorithm = types_pb2.ExecutionAlgorithm.Name(order.execution.algorithm)
        worked = (
            f" worked by the router ({algorithm}, max child {order.execution.max_child_quantity})"
        )
    return f"{kind} {order.quantity} filled {order.filled_quantity}{worked}: {order.status_message}"


def _resting(order: orders_pb2.Order) -> bool:
    """An order left open on purpose: a buy limit at a price the market does not reach."""
    return (
        order.status in (types_pb2.ORDER_STATUS_ACCEPTED, types_pb2.ORDER_STATUS_PARTIALLY_FILLED)
        and order.order_type == types_pb2.ORDER_TYPE_LIMIT
        and order.instrument in RESTING_BUY
        and Decimal(order.limit_price) in {Decimal(p) for p in RESTING_BUY[order.instrument]}
    )


def _modify_outcomes(
    outcome: Outcome, orders: list[orders_pb2.Order]
) -> tuple[list[str], Modifies]:
    """Each resting order's quantity and limit price against what was placed and what its
    modify (at most one answered without a refusal) asked; and what became of the modifies."""
    by_id = {order.order_id: order for order in orders}
    inconsistent: list[str] = []
    applied = filled = 0
    for order_id, resting in outcome.resting.items():
        order = by_id.get(order_id)
        if order is None:
            continue  # counted as lost
        modify = outcome.modified.get(order_id)
        now = (Decimal(order.quantity), Decimal(order.limit_price))
        if modify is not None and now == modify.asked:
            applied += 1
            filled += order.status == types_pb2.ORDER_STATUS_FILLED
        elif now != resting.values:
            asked = f", asked {_shown(modify.asked)}" if modify else " (not modified)"
            inconsistent.append(
                f"{order_id} {types_pb2.OrderStatus.Name(order.status)}: {_shown(now)}, "
                f"placed {_shown(resting.values)}{asked}"
            )
    modifies = Modifies(
        answered=len(outcome.modified),
        refused=dict(outcome.modifies_refused),
        not_now=dict(outcome.modifies_not_now),
        retried=outcome.modifies_retried,
        applied=applied,
        filled=filled,
    )
    return inconsistent, modifies


def _shown(values: tuple[Decimal, Decimal]) -> str:
    quantity, price = values
    return f"{quantity} at {price}"


def _position_mismatches(
    clients: Clients, account: str, orders: list[orders_pb2.Order]
) -> list[str]:
    expected: dict[str, tuple[Decimal, Decimal]] = {}
    for order in orders:
        filled = Decimal(order.filled_quantity or "0")
        if not filled:
            continue
        signed = filled if order.side == types_pb2.SIDE_BUY else -filled
        quantity, fees = expected.get(order.instrument, (Decimal(0), Decimal(0)))
        expected[order.instrument] = (quantity + signed, fees + Decimal(order.fees or "0"))

    def positions() -> dict[str, tuple[Decimal, Decimal]]:
        listed = clients.positions.ListPositions(
            positions_pb2.ListPositionsRequest(account_id=account), timeout=10
        ).positions
        return {p.instrument: (Decimal(p.quantity), Decimal(p.fees)) for p in listed}

    def agree() -> dict[str, tuple[Decimal, Decimal]] | None:
        held = positions()
        return held if all(held.get(i) == v for i, v in expected.items()) else None

    try:
        held = wait_until(agree, 30, "positions to agree with the fills")
    except AssertionError:
        held = positions()
    return [
        f"{instrument}: position {held.get(instrument)} but fills {want}"
        for instrument, want in expected.items()
        if held.get(instrument) != want
    ]
