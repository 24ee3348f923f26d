"""A fake QuantConnect REST API v2 on loopback, holding one simulated live algorithm, for the
QuantConnect venue adapter's tests.

It speaks the documented JSON for what the adapter calls, every request a POST with a JSON body
under /api/v2: `/authenticate`, `/live/commands/create` (LEAN's `OrderCommand` and
`CancelOrderCommand`), `/live/orders/read` (projectId, start, end; end - start at most 1000),
`/live/update/liquidate` and `/live/update/stop`, each answering the `success`/`errors`
envelope. Every request must carry the documented authentication: HTTP basic with the user id
and sha256("<api token>:<Timestamp>") as hex, and that unix time in a `Timestamp` header no
older than `max_age_s` (a stale or future one is refused, as QuantConnect's "timestamp is too
old for hash"); a refusal is a 401 with a WWW-Authenticate header.

The algorithm: an OrderCommand makes a LEAN order (ids from 1) with the command's tag, status
Submitted, or Invalid (with the event's message) for a ticker the algorithm does not trade; a
market order fills at once at `market_price`. Every OrderCommand received is counted by its tag
(`sent`), whatever became of it: the bar of the tests is that no order is sent twice. A limit
order rests until the test calls `fill(tag, quantity, price)` or `cross(price)`. Each fill is an
order event with its fee (`fee_rate` of the notional, in USD). Liquidate cancels the open orders
and sells (or buys back) every holding at the market price (tag "Liquidated"); stop stops the
algorithm (commands are then refused). Numbers are JSON numbers, written exactly.

Fault hooks, each for the next matching request (`fault(kind, path=...)`): `timeout` (the answer
comes after `sleep_s`), `5xx` (503), `429` (Retry-After, nothing applied), `drop` (the
connection closes without an answer, nothing applied), `lost` (applied, then the connection
closes), `late` (the connection closes at once and the command is applied `sleep_s` later, as a
command delivered late or a snapshot not yet updated), `malformed` (a 200 whose body is not
JSON), `missing` (a field, `field`, left out: of the envelope when it has one, else of every order
of a read) and `unknown_status` (every order of a read shows status 42). `timeout`, `5xx`,
`malformed` and `missing` take `apply` to say whether the request was applied.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import itertools
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

from tests.fakes.server import FakeHandler, Fault, LoopbackFake

SUBMITTED, PARTIALLY_FILLED, FILLED, CANCELED, INVALID = 1, 2, 3, 5, 7
_OPEN = (SUBMITTED, PARTIALLY_FILLED)
_EVENT_STATUS = {
    SUBMITTED: "submitted",
    PARTIALLY_FILLED: "partiallyFilled",
    FILLED: "filled",
    CANCELED: "canceled",
    INVALID: "invalid",
}
_TYPES = {"market": 0, "limit": 1}
_JSON = "application/json"


@dataclass
class FakeOrder:
    id: int
    ticker: str
    type: int
    quantity: Decimal  # signed, as LEAN keeps it
    limit_price: Decimal | None
    tag: str
    created: datetime
    status: int = SUBMITTED
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def filled(self) -> Decimal:
        return sum((Decimal(e["fillQuantity"]) for e in self.events), Decimal(0))


class QuantConnectApiError(Exception):
    def __init__(self, http_status: int, *errors: str) -> None:
        super().__init__("; ".join(errors))
        self.http_status, self.errors = http_status, list(errors)


class FakeQuantConnect(LoopbackFake):
    """The fake API and its live algorithm; `start()` serves it on 127.0.0.1, `url` is its base
    (…/api/v2); `sent` counts the OrderCommands of each tag."""

    def __init__(
        self,
        user_id: str,
        api_token: str,
        project_id: int,
        tickers: list[str],
        market_price: Decimal = Decimal("60000"),
        fee_rate: Decimal = Decimal("0.001"),
        max_age_s: int = 30,
    ) -> None:
        super().__init__(_Handler, path="/api/v2")
        self.user_id, self.api_token, self.project_id = user_id, api_token, project_id
        self.tickers = set(tickers)
        self.market_price = market_price
        self.fee_rate = fee_rate
        self.max_age_s = max_age_s
        self.running = True
        self.orders: list[FakeOrder] = []
        self.cancels: Counter[int] = Counter()  # CancelOrderCommand order id -> received
        self.liquidations = 0
        self.requests: list[str] = []  # path of every request
        self.refused_auth = 0
        self._ids = itertools.count(1)

    # -- the test's hands -------------------------------------------------------------------

    def fault(
        self,
        kind: str,
        path: str | None = "/live/commands/create",
        *,
        apply: bool = False,
        sleep_s: float = 3.0,
        retry_after_s: int = 1,
        field: str = "status",
    ) -> None:
        self._add_fault(Fault(kind, path, None, apply, sleep_s, retry_after_s, field))

    def order(self, tag: str) -> FakeOrder:
        with self._lock:
            [found] = [o for o in self.orders if o.tag == tag]
            return found

    def fill(self, tag: str, quantity: Decimal, price: Decimal) -> None:
        """The resting order tagged `tag` trades `quantity` (unsigned) at `price`."""
        with self._lock:
            order = self.order(tag)
            assert order.status in _OPEN, order.status
            assert abs(order.filled) + quantity <= abs(order.quantity)
            self._trade(order, quantity, price)

    def cross(self, price: Decimal) -> None:
        """The market trades at `price`: every resting buy at or above it and every resting
        sell at or below it fills whole at its own limit."""
        with self._lock:
            for order in self.orders:
                if order.status not in _OPEN or order.limit_price is None:
                    continue
                buy = order.quantity > 0
                if (order.limit_price >= price) if buy else (order.limit_price <= price):
                    rest = abs(order.quantity) - abs(order.filled)
                    self._trade(order, rest, order.limit_price)

    def holdings(self, ticker: str) -> Decimal:
        with self._lock:
            return sum((o.filled for o in self.orders if o.ticker == ticker), Decimal(0))

    # -- the algorithm ----------------------------------------------------------------------

    def _event(self, order: FakeOrder, status: int, **fill: Any) -> None:
        event: dict[str, Any] = {
            "algorithmId": "L-fake",
            "symbol": f"{order.ticker} 2XR",
            "symbolValue": order.ticker,
            "symbolPermtick": order.ticker,
            "orderId": order.id,
            "orderEventId": len(order.events) + 1,
            "id": len(order.events) + 1,
            "status": _EVENT_STATUS[status],
            "orderFeeAmount": Decimal(0),
            "orderFeeCurrency": "USD",
            "fillPrice": Decimal(0),
            "fillPriceCurrency": "USD",
            "fillQuantity": Decimal(0),
            "direction": "buy" if order.quantity > 0 else "sell",
            "message": "",
            "isAssignment": False,
            "stopPrice": Decimal(0),
            "limitPrice": order.limit_price or Decimal(0),
            "quantity": order.quantity,
            "time": int(time.time()),
        }
        event.update(fill)
        order.events.append(event)
        order.status = status

    def _trade(self, order: FakeOrder, quantity: Decimal, price: Decimal) -> None:
        signed = quantity if order.quantity > 0 else -quantity
        done = abs(order.filled + signed) == abs(order.quantity)
        self._event(
            order,
            FILLED if done else PARTIALLY_FILLED,
            fillQuantity=signed,
            fillPrice=price,
            orderFeeAmount=quantity * price * self.fee_rate,
        )

    def create_command(self, body: dict[str, Any]) -> None:
        command = body.get("command")
        if not isinstance(command, dict):
            raise QuantConnectApiError(400, "command is required")
        if not self.running:
            raise QuantConnectApiError(200, "The live algorithm is not running")
        kind = command.get("$type")
        if kind == "OrderCommand":
            self._order_command(command)
        elif kind == "CancelOrderCommand":
            self._cancel_command(command)
        else:
            raise QuantConnectApiError(200, f"Unknown command type {kind!r}")

    def _order_command(self, command: dict[str, Any]) -> None:
        # As LEAN takes them: the ticker with its security type and market, the signed
        # quantity, decimals as strings or numbers.
        ticker = str(command.get("ticker", ""))
        kind = _TYPES.get(str(command.get("order_type", "")).lower())
        quantity = Decimal(str(command.get("quantity", "0")))
        limit = Decimal(str(command.get("limit_price", "0")))
        order = FakeOrder(
            next(self._ids),
            ticker,
            kind if kind is not None else 0,
            quantity,
            limit if kind == 1 else None,
            str(command.get("tag", "")),
            datetime.now(UTC),
        )
        self.orders.append(order)
        if ticker not in self.tickers or command.get("market") is None or kind is None:
            why = f"Order Error: ids: [{order.id}], Asynchronous: Invalid order for {ticker}"
            self._event(order, INVALID, message=why)
            return
        self._event(order, SUBMITTED)
        if kind == 0:
            self._trade(order, abs(quantity), self.market_price)

    def _cancel_command(self, command: dict[str, Any]) -> None:
        order_id = command.get("order_id")
        self.cancels[int(order_id) if isinstance(order_id, int) else -1] += 1
        # LEAN cancels an open order; a finished or unknown one stays as it is (the API's
        # answer says only that the command was delivered).
        for order in self.orders:
            if order.id == order_id and order.status in _OPEN:
                self._event(order, CANCELED)

    def read_orders(self, body: dict[str, Any]) -> dict[str, Any]:
        start, end = body.get("start"), body.get("end")
        if not isinstance(start, int) or not isinstance(end, int) or not 0 <= start <= end:
            raise QuantConnectApiError(200, "start and end are required, start <= end")
        if end - start > 1000:
            raise QuantConnectApiError(200, "end - start must be at most 1000")
        page = [self._order_json(o) for o in self.orders[start:end]]
        return {"orders": page, "length": len(page)}

    def liquidate(self) -> None:
        if not self.running:
            raise QuantConnectApiError(200, "The live algorithm is not running")
        self.liquidations += 1
        for order in self.orders:
            if order.status in _OPEN:
                self._event(order, CANCELED)
        for ticker in sorted(self.tickers):
            held = self.holdings(ticker)
            if held:
                order = FakeOrder(
                    next(self._ids), ticker, 0, -held, None, "Liquidated", datetime.now(UTC)
                )
                self.orders.append(order)
                self._event(order, SUBMITTED)
                self._trade(order, abs(held), self.market_price)

    def stop_algorithm(self) -> None:
        if not self.running:
            raise QuantConnectApiError(200, "The live algorithm is not running")
        self.running = False

    def _order_json(self, o: FakeOrder) -> dict[str, Any]:
        stamp = o.created.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return {
            "id": o.id,
            "contingentId": 0,
            "brokerId": [f"B{o.id}"],
            "symbol": {"value": o.ticker, "id": f"{o.ticker} 2XR", "permtick": o.ticker},
            "limitPrice": o.limit_price,
            "stopPrice": Decimal(0),
            "stopTriggered": False,
            "price": o.limit_price or self.market_price,
            "priceCurrency": "USD",
            "time": stamp,
            "createdTime": stamp,
            "lastFillTime": None,
            "lastUpdateTime": None,
            "canceledTime": None,
            "quantity": o.quantity,
            "type": o.type,
            "status": o.status,
            "tag": o.tag,
            "securityType": 7,
            "direction": 0 if o.quantity > 0 else 1,
            "value": sum(
                (Decimal(e["fillQuantity"]) * Decimal(e["fillPrice"]) for e in o.events),
                Decimal(0),
            ),
            "orderSubmissionData": {"bidPrice": 0, "askPrice": 0, "lastPrice": 0},
            "isMarketable": o.type == 0,
            "properties": {"timeInForce": 0},
            "events": [dict(e) for e in o.events],
        }

    # -- the API ----------------------------------------------------------------------------

    def authenticate(self, headers: Any) -> None:
        """Checks the timestamped hash; raises a 401 QuantConnectApiError when it is wrong."""
        stamp = headers.get("Timestamp") or ""
        auth = headers.get("Authorization") or ""
        if not auth.startswith("Basic ") or not stamp.isdigit():
            self._refuse("Authorization and Timestamp headers are required")
        try:
            user, _, hashed = base64.b64decode(auth[6:]).decode().partition(":")
        except ValueError:
            self._refuse("Authorization is not basic authentication")
        if abs(time.time() - int(stamp)) > self.max_age_s:
            self._refuse(f"Timestamp {stamp} is too old for hash")
        expected = hashlib.sha256(f"{self.api_token}:{stamp}".encode()).hexdigest()
        if user != self.user_id or not hmac.compare_digest(expected, hashed):
            self._refuse(f"Hash doesn't match. UID: {user} Timestamp: {stamp}")

    def _refuse(self, why: str) -> None:
        with self._lock:
            self.refused_auth += 1
        raise QuantConnectApiError(401, why)

    def route(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            if path == "/authenticate":
                return {}
            if body.get("projectId") != self.project_id:
                raise QuantConnectApiError(200, f"Project {body.get('projectId')} not found")
            if path == "/live/commands/create":
                self.create_command(body)
                return {}
            if path == "/live/orders/read":
                return self.read_orders(body)
            if path == "/live/update/liquidate":
                self.liquidate()
                return {}
            if path == "/live/update/stop":
                self.stop_algorithm()
                return {}
            raise QuantConnectApiError(404, f"no such endpoint {path}")


def _dumps(value: Any) -> str:
    """JSON with Decimals written as exact numbers (never through a float)."""
    if isinstance(value, Decimal):
        text = format(value, "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {_dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_dumps(v) for v in value) + "]"
    return json.dumps(value)


class _Handler(FakeHandler):
    fake: ClassVar[FakeQuantConnect]
    always_applied = frozenset({"unknown_status"})

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        fake = self.fake
        path = self.path.split("?", 1)[0].removeprefix("/api/v2")
        try:
            body = json.loads(self._read_body() or "{}")
            assert isinstance(body, dict)
        except (ValueError, AssertionError):
            self._answer(400, {"success": False, "errors": ["the body must be JSON"]})
            return
        try:
            fake.authenticate(self.headers)
        except QuantConnectApiError as error:
            self._answer(
                401,
                {"success": False, "errors": error.errors},
                {"WWW-Authenticate": 'Basic realm="quantconnect"'},
            )
            return
        with fake._lock:
            fake.requests.append(path)
            command = body.get("command")
            ordering = isinstance(command, dict) and command.get("$type") == "OrderCommand"
            if path == "/live/commands/create" and isinstance(command, dict) and ordering:
                fake.sent[str(command.get("tag", ""))] += 1

        def apply_late() -> None:
            with contextlib.suppress(QuantConnectApiError):
                fake.route(path, body)

        self._play(
            fake._take_fault("POST", path),
            lambda: self._apply(path, body),
            apply_late,
            (200, {"success": True, "errors": []}),
        )

    def _apply(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        try:
            return 200, {"success": True, "errors": [], **self.fake.route(path, body)}
        except QuantConnectApiError as error:
            return error.http_status, {"success": False, "errors": error.errors}

    def _answer_faulted(self, fault: Fault, status: int, answer: Any) -> None:
        if fault.kind == "malformed":
            self._send(200, b'{"success": true, "orders": [{"id": 1,', _JSON)
        elif fault.kind == "missing":
            if fault.field in answer:  # a field of the envelope
                answer.pop(fault.field)
            for order in answer.get("orders", []):
                order.pop(fault.field, None)
            self._answer(status, answer)
        elif fault.kind == "unknown_status":
            for order in answer.get("orders", []):
                order["status"] = 42
            self._answer(status, answer)
        else:
            super()._answer_faulted(fault, status, answer)

    def _answer(self, status: int, answer: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, _dumps(answer).encode(), _JSON, headers)

    def _answer_rate_limited(self, retry_after_s: float) -> None:
        message = {"success": False, "errors": ["Too many requests"]}
        self._answer(429, message, {"Retry-After": str(retry_after_s)})

    def _answer_unavailable(self) -> None:
        self._answer(503, {"success": False, "errors": ["Service Unavailable"]})
