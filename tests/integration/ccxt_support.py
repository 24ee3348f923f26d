"""What the CCXT adapters' tests share: each exchange's fake and adapter with what differs between
them (`Exchange`: BINANCE, BYBIT), an adapter running against its fake with its reports
(`Setup`), and the orders the tests send."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from execution_router.domain.venue_types import Report, VenueOrder
from execution_router.venues.bybit import CcxtBybitSpotClient
from execution_router.venues.ccxt_client import CcxtBinanceSpotClient, CcxtSpotClient
from trading.v1 import types_pb2

from tests.fakes import binance_spot, bybit_v5
from tests.fakes.binance_spot import FakeBinanceSpot
from tests.fakes.bybit_v5 import FakeBybitSpot
from tests.fakes.server import API_KEY, SECRET
from tests.integration.reports_seen import ReportsSeen

T = types_pb2
Fake = FakeBinanceSpot | FakeBybitSpot
_ids = (f"ccxt-{n}" for n in itertools.count(1))


@dataclass(frozen=True)
class Exchange:
    """One exchange under test: its fake, its adapter, and the wire details its tests check."""

    name: str
    serve: Callable[[], Fake]  # the fake, not started, trading BTCUSDT at 60000
    adapter: type[CcxtSpotClient]
    lookup: tuple[str, str]  # the request that looks an order up by its client order id
    canceled: str  # the fake's status of a canceled order
    partly_canceled: str  # ... and of one canceled after a partial fill
    auth_error: str  # in the rejection of an order signed with a wrong secret
    wire_log: tuple[str, ...]  # what the adapter's wire log shows (its secrets redacted)
    retry_after_s: float  # how long a rate-limited request is told to wait
    limit: str  # the fake's type of a limit order
    type_of: Callable[[Any], str]  # a fake's order's type
    key_of: Callable[[Any], str]  # a fake's order's client order id
    # The exchange cancels a resting order by itself (the test's hand on the fake).
    cancel_at_venue: Callable[[Any, str], Any]
    # The price band around 60000 the adapter checks: the highest buy, the lowest sell.
    band: tuple[str, str]
    # Native stops: the fake's types of a stop-market and a stop-limit, an order's trigger, and
    # whether it waits untriggered.
    stops: tuple[str, str]
    trigger_of: Callable[[Any], Decimal]
    untriggered: Callable[[Any], bool]


BINANCE = Exchange(
    name="binance",
    serve=lambda: FakeBinanceSpot(API_KEY, SECRET, [binance_spot.BTCUSDT], Decimal("60000.00")),
    adapter=CcxtBinanceSpotClient,
    lookup=("GET", "/api/v3/order"),
    canceled="CANCELED",
    partly_canceled="CANCELED",
    auth_error="Signature",
    wire_log=("X-MBX-APIKEY",),
    retry_after_s=1,
    limit="LIMIT",
    type_of=lambda o: str(o.type),
    key_of=lambda o: str(o.client_order_id),
    cancel_at_venue=lambda fake, key: fake.cancel({"symbol": "BTCUSDT", "origClientOrderId": key}),
    band=("72000", "48000"),  # PERCENT_PRICE_BY_SIDE: 0.8 to 1.2 x the average price
    stops=("STOP_LOSS", "STOP_LOSS_LIMIT"),
    trigger_of=lambda o: Decimal(o.stop_price),
    untriggered=lambda o: not o.working,
)
BYBIT = Exchange(
    name="bybit",
    serve=lambda: FakeBybitSpot(API_KEY, SECRET, [bybit_v5.BTCUSDT], Decimal("60000")),
    adapter=CcxtBybitSpotClient,
    lookup=("GET", "/v5/order/realtime"),
    canceled="Cancelled",
    partly_canceled="PartiallyFilledCanceled",
    auth_error="10004",
    wire_log=("X-BAPI-API-KEY", "X-BAPI-SIGN", "X-BAPI-SIGN': '***'"),
    retry_after_s=0.5,
    limit="Limit",
    type_of=lambda o: str(o.order_type),
    key_of=lambda o: str(o.order_link_id),
    cancel_at_venue=lambda fake, key: fake.cancel(
        {"category": "spot", "symbol": "BTCUSDT", "orderLinkId": key}
    ),
    band=("66000", "54000"),  # the spot price limit's outer bound: 1 -+ 0.1 x the index
    stops=("Market", "Limit"),  # conditional orders (orderFilter StopOrder)
    trigger_of=lambda o: Decimal(o.trigger_price),
    untriggered=lambda o: o.status == "Untriggered",
)


@contextmanager
def serving(exchange: Exchange) -> Iterator[Any]:
    """The exchange's fake, started, and stopped at the end."""
    fake = exchange.serve().start()
    try:
        yield fake
    finally:
        fake.stop()


def client(
    exchange: Exchange,
    fake: Fake,
    reports: list[Report],
    secret: str = SECRET,
    recv_window_ms: int = 1000,  # a lost request may be executed up to 2 s after it was sent
    **settings: Any,
) -> Any:
    """The exchange's adapter against its fake (REST and user-data stream), not started, quick
    to time out and poll while the stream is down (every 50 ms); while it is up, reports come
    from the stream alone (a reconciling poll every minute)."""
    defaults: dict[str, Any] = {
        "api_key": API_KEY,
        "secret": secret,
        "symbols": {"BTC-USD": "BTC/USDT"},
        "base_url": fake.url,
        "stream_url": fake.stream_url,
        "timeout_s": 1.0,
        "poll_interval_s": 0.05,
        "stream_poll_interval_s": 60.0,
        "lost_submit_grace_s": 0.05,
        "max_retry_after_s": 2.0,
        "recv_window_ms": recv_window_ms,
    }
    return exchange.adapter(reports.append, **(defaults | settings))


@dataclass
class Setup(ReportsSeen):
    exchange: Exchange
    fake: Any  # the exchange's fake: FakeBinanceSpot or FakeBybitSpot
    client: Any  # its adapter: CcxtBinanceSpotClient or CcxtBybitSpotClient
    reports: list[Report]

    def placed(self, order_id: str) -> int:
        """How many orders the fake holds under the id (never more than one)."""
        key_of = self.exchange.key_of
        return len([o for o in self.fake.orders.values() if key_of(o) == order_id])


@contextmanager
def running(exchange: Exchange, fake: Fake, **settings: Any) -> Iterator[Setup]:
    """The exchange's adapter started against its fake, and stopped at the end."""
    reports: list[Report] = []
    adapter = client(exchange, fake, reports, **settings)
    adapter.start()
    try:
        yield Setup(exchange, fake, adapter, reports)
    finally:
        adapter.stop()


def order(
    kind: int = T.ORDER_TYPE_LIMIT,
    side: int = T.SIDE_BUY,
    quantity: str = "0.0100",
    price: str | None = "59000.00",
    **changes: Any,
) -> VenueOrder:
    made = VenueOrder(
        next(_ids),
        "acct-ccxt",
        "BTC-USD",
        T.Side.ValueType(side),
        T.OrderType.ValueType(kind),
        T.TIME_IN_FORCE_GTC,
        Decimal(quantity),
        Decimal(price) if price is not None else None,
    )
    return replace(made, **changes)
