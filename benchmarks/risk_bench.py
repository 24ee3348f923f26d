"""The pre-trade risk engine in process: one order through every check (every limit set, for
its account and its strategy, cooldowns, a stop-loss required, collar and market-data gates
on) against a book of 1,000 open
orders and 100 positions. `make bench` reports it beside the gRPC figures; bar: p99 <= 50 us."""

from __future__ import annotations

import random
import statistics
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from order_management.domain.risk import ExposureBook, RiskEngine
from order_management.domain.validation import Exits, OrderRequest
from trading.v1 import types_pb2
from trading_core.config import Risk
from trading_core.quotes import Quote

OPEN_ORDERS = 1_000
POSITIONS = 100
CHECKS = 20_000
_NOW = datetime(2026, 1, 5, 12, tzinfo=UTC)
_A_MINUTE = timedelta(minutes=1)
_INSTRUMENTS = [f"I{number}-USD" for number in range(20)]
_LIMITS = {
    "max_order_quantity": "1000",
    "max_position_quantity": "100000",
    "max_position_value": "1000000000",
    "max_gross_exposure": "1000000000",
    "max_net_exposure": "1000000000",
    "max_open_orders": 100_000,
    # On, and long past for the bench's scopes (their fills are a minute old): checked, passed.
    "cooldown_ms": 1_000,
    "loss_cooldown_ms": 1_000,
    "require_stop_loss": True,
}
_RISK = Risk.model_validate(
    {
        "account": _LIMITS,
        "strategy": _LIMITS,
        "price_collar_bps": "500",
        "max_quote_age_ms": 5_000,
        "max_spread_bps": "50",
    }
)


def _book(chooser: random.Random) -> ExposureBook:
    """5 accounts x 4 strategies; 100 positions and 1,000 open orders spread over them."""
    book = ExposureBook()
    for instrument in _INSTRUMENTS:
        book.set_mark(instrument, Decimal(chooser.randrange(10, 1000)))
    scopes = [(f"acct-{a}", f"strat-{s}") for a in range(5) for s in range(4)]
    for number in range(POSITIONS):
        account, strategy = scopes[number % len(scopes)]
        instrument = _INSTRUMENTS[number % len(_INSTRUMENTS)]
        quantity = Decimal(chooser.randrange(-50, 50))
        book.fill(account, strategy, instrument, quantity, Decimal(1), now=_NOW - _A_MINUTE)
    for number in range(OPEN_ORDERS):
        account, strategy = chooser.choice(scopes)
        book.track(
            f"order-{number}",
            account_id=account,
            strategy_id=strategy,
            instrument=chooser.choice(_INSTRUMENTS),
            side=chooser.choice([types_pb2.SIDE_BUY, types_pb2.SIDE_SELL]),
            leaves=Decimal(chooser.randrange(1, 20)),
        )
    return book


def measure(seed: int = 7) -> dict[str, float]:
    chooser = random.Random(seed)
    book = _book(chooser)
    engine = RiskEngine(_RISK)
    request = OrderRequest(
        request_id="r",
        client_order_id="c",
        account_id="acct-1",
        strategy_id="strat-2",
        signal_id="",
        instrument=_INSTRUMENTS[3],
        side=types_pb2.SIDE_BUY,
        order_type=types_pb2.ORDER_TYPE_LIMIT,
        time_in_force=types_pb2.TIME_IN_FORCE_GTC,
        quantity=Decimal("2"),
        limit_price=Decimal("100.5"),
        exits=Exits(take_profit=None, stop_loss_trigger=Decimal(95), stop_loss_limit=None),
    )
    quote = Quote(request.instrument, Decimal(100), Decimal("100.2"), Decimal(5), Decimal(5), _NOW)
    orders = [replace(request, quantity=Decimal(chooser.randrange(1, 9))) for _ in range(CHECKS)]
    samples = []
    for order in orders:
        start = time.perf_counter()
        denial = engine.check(order, quote, book, Decimal("100.5"), _NOW)
        samples.append(time.perf_counter() - start)
        if denial is not None:
            raise RuntimeError(f"the bench order was denied: {denial.message}")
    samples.sort()
    return {
        "checks": CHECKS,
        "open_orders": OPEN_ORDERS,
        "positions": POSITIONS,
        "p50_us": round(statistics.median(samples) * 1e6, 2),
        "p99_us": round(samples[int(len(samples) * 0.99)] * 1e6, 2),
    }


if __name__ == "__main__":
    print(measure())
