"""Crash runs: a steady stream of orders (market, resting and marketable limits, cancels) from a
few client threads, processes killed with SIGKILL mid-run and restarted, every unanswered
request retried with the same ids, then every order and position checked through the API.

What is counted, and must be zero:
- lost: an order answered (SUBMITTED or DENIED) that the platform no longer knows;
- duplicated: a client order id that became more than one order;
- stuck: an order still open after settling, other than a resting limit order;
- wrong positions: an instrument whose position differs from the sum of the orders' fills
  (quantity and fees), which is also how a fill counted twice shows.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

import grpc
from trading.v1 import orders_pb2, positions_pb2, types_pb2

from tests.e2e.conftest import Clients
from tests.support import wait_until

INSTRUMENTS = ("BTC-USD", "ETH-USD")
# Far from any price the walk reaches in a run: limit orders that rest until canceled.
RESTING_BUY = {"BTC-USD": "1000", "ETH-USD": "100"}
QUANTITY = {"BTC-USD": "0.001", "ETH-USD": "0.01"}
_BACK_OFF_S = 0.2
RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
OPEN = {
    types_pb2.ORDER_STATUS_SUBMITTED,
    types_pb2.ORDER_STATUS_ACCEPTED,
    types_pb2.ORDER_STATUS_PARTIALLY_FILLED,
    types_pb2.ORDER_STATUS_PENDING_CANCEL,
}


@dataclass
class Outcome:
    answered: dict[str, orders_pb2.Order] = field(default_factory=dict)  # client id -> answer
    unanswered: list[orders_pb2.SubmitOrderRequest] = field(default_factory=list)
    cancels: list[orders_pb2.CancelOrderRequest] = field(default_factory=list)
    unanswered_cancels: list[orders_pb2.CancelOrderRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Report:
    answered: int
    lost: list[str]
    duplicated: list[str]
    stuck: list[str]
    wrong_positions: list[str]
    # Orders whose command a bus lost, rejected for good by reconciliation (review F1: the
    # emulator drops messages after a subscriber reconnects; production Pub/Sub does not).
    repaired: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicated or self.stuck or self.wrong_positions)


class OrderStream:
    """Clients submitting orders at a steady pace until stopped, recording what was answered."""

    def __init__(self, clients: Callable[[], Clients], account: str, seed: int) -> None:
        self._clients = clients
        self.account = account
        self._random = random.Random(seed)
        self._random_lock = threading.Lock()
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
        while not self._stop.is_set():
            with self._random_lock:
                choice = self._random.random()
                instrument = self._random.choice(INSTRUMENTS)
            request = self._request(choice, instrument)
            order = self._submit(request)
            if order is None:
                # Paced as a client backs off while the platform is down (not synchronisation).
                self._stop.wait(_BACK_OFF_S)
            elif choice < 0.35 and order.status != types_pb2.ORDER_STATUS_DENIED:
                self._cancel(order)

    def _request(self, choice: float, instrument: str) -> orders_pb2.SubmitOrderRequest:
        request = orders_pb2.SubmitOrderRequest(
            request_id=str(uuid.uuid4()),
            client_order_id=str(uuid.uuid4()),
            account_id=self.account,
            strategy_id="crash",
            instrument=instrument,
            side=types_pb2.SIDE_BUY,
            quantity=QUANTITY[instrument],
        )
        if choice < 0.35 or choice < 0.45:  # a resting limit, canceled right after
            request.order_type = types_pb2.ORDER_TYPE_LIMIT
            request.limit_price = RESTING_BUY[instrument]
        else:  # a market order; every other one a sell
            request.order_type = types_pb2.ORDER_TYPE_MARKET
            if choice > 0.75:
                request.side = types_pb2.SIDE_SELL
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

    def _cancel(self, order: orders_pb2.Order) -> None:
        request = orders_pb2.CancelOrderRequest(
            order_id=order.order_id, account_id=order.account_id, request_id=str(uuid.uuid4())
        )
        try:
            self._clients().orders.CancelOrder(request, timeout=5)
        except grpc.RpcError as error:
            if error.code() not in RETRYABLE:
                raise
            with self.outcome.lock:
                self.outcome.unanswered_cancels.append(request)
            return
        with self.outcome.lock:
            self.outcome.cancels.append(request)

    def retry_unanswered(self) -> None:
        """Every request that got no answer, again with the same ids, as a client would."""
        with self.outcome.lock:
            requests, self.outcome.unanswered = self.outcome.unanswered, []
            cancels, self.outcome.unanswered_cancels = self.outcome.unanswered_cancels, []
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
        f"{o.order_id} {types_pb2.OrderStatus.Name(o.status)}"
        for o in orders
        if o.status in OPEN and not _resting(o)
    ]
    return Report(
        answered=len(outcome.answered),
        lost=lost,
        duplicated=duplicated,
        stuck=stuck,
        wrong_positions=_position_mismatches(clients, stream.account, orders),
        repaired=[o.order_id for o in orders if "never received" in o.status_message],
    )


def _resting(order: orders_pb2.Order) -> bool:
    return (
        order.status == types_pb2.ORDER_STATUS_ACCEPTED
        and order.order_type == types_pb2.ORDER_TYPE_LIMIT
        and Decimal(order.filled_quantity or "0") == 0
    )


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
