"""The paper venue's market model: the synthetic book's depth, slippage models, market impact,
latency, random rejects, maker and taker fees, and their determinism for a seed.

Setting, as in test_paper_venue: BTC-USD on a 0.01 tick and a 0.0001 step; the quote is
59994 / 60006 with 5 each side. Prices are worked by hand in the comments.
"""

from __future__ import annotations

import itertools
import random
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from execution_router.domain.latency import draw_latency
from execution_router.domain.paper_venue import PaperVenue
from execution_router.domain.venue_types import Report, VenueOrder
from execution_router.venues.simulation import SimulationClient
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from trading.v1 import types_pb2
from trading_core.clock import SystemClock
from trading_core.config import SimulationLatency, SimulationVenue
from trading_core.quotes import Quote

from tests.unit.test_paper_venue import BTC, T0, limit

ETH = BTC.model_copy(update={"symbol": "ETH-USD"})
BUY, SELL = types_pb2.SIDE_BUY, types_pb2.SIDE_SELL
GTC, IOC, FOK = (
    types_pb2.TIME_IN_FORCE_GTC,
    types_pb2.TIME_IN_FORCE_IOC,
    types_pb2.TIME_IN_FORCE_FOK,
)
ACCEPTED = types_pb2.EXECUTION_TYPE_ACCEPTED
PARTIALLY_FILLED = types_pb2.EXECUTION_TYPE_PARTIALLY_FILLED
FILLED = types_pb2.EXECUTION_TYPE_FILLED
REJECTED = types_pb2.EXECUTION_TYPE_REJECTED
CANCELED = types_pb2.EXECUTION_TYPE_CANCELED
EXPIRED = types_pb2.EXECUTION_TYPE_EXPIRED
NO_SLIPPAGE = Decimal(0)


def venue(**settings: Any) -> PaperVenue:
    counter = itertools.count(1)
    return PaperVenue(
        SimulationVenue(**settings),
        {"BTC-USD": BTC, "ETH-USD": ETH},
        new_id=lambda: f"id-{next(counter)}",
    )


def quote(bid: str = "59994", ask: str = "60006", size: str = "5", at: datetime = T0) -> Quote:
    return Quote("BTC-USD", Decimal(bid), Decimal(ask), Decimal(size), Decimal(size), at)


def market(
    order_id: str,
    side: types_pb2.Side.ValueType,
    quantity: str,
    protection: str | None = None,
    time_in_force: types_pb2.TimeInForce.ValueType = GTC,
) -> VenueOrder:
    return VenueOrder(
        order_id,
        "acct-1",
        "BTC-USD",
        side,
        types_pb2.ORDER_TYPE_MARKET,
        time_in_force,
        Decimal(quantity),
        None,
        protection_price=None if protection is None else Decimal(protection),
    )


def kinds(reports: list[Report]) -> list[int]:
    return [r.execution_type for r in reports]


def fills(reports: list[Report]) -> list[tuple[Decimal | None, Decimal | None]]:
    return [(r.last_quantity, r.last_price) for r in reports if r.trade_id]


def fill_price(paper: PaperVenue, order: VenueOrder, at: Quote | None = None) -> Decimal:
    """The price of an order's single fill."""
    ((_, price),) = fills(paper.submit(order, at or quote(), T0))
    assert price is not None
    return price


# The multi-level book ------------------------------------------------------------------------


def test_market_buy_larger_than_the_touch_walks_the_levels_at_worse_prices() -> None:
    paper = venue(book_levels=3, slippage_bps=NO_SLIPPAGE)

    reports = paper.submit(market("o-1", BUY, "12"), quote(), T0)

    assert kinds(reports) == [ACCEPTED, PARTIALLY_FILLED, PARTIALLY_FILLED, FILLED]
    assert fills(reports) == [
        (Decimal(5), Decimal("60006")),
        (Decimal(5), Decimal("60006.01")),
        (Decimal(2), Decimal("60006.02")),
    ]
    # (5 * 60006 + 5 * 60006.01 + 2 * 60006.02) / 12 = 720072.09 / 12
    average = reports[-1].average_price
    assert average == Decimal("60006.0075")
    assert Decimal("60006") < average < Decimal("60006.02")
    assert len({r.trade_id for r in reports if r.trade_id}) == 3


def test_market_sell_walks_bid_levels_spaced_and_growing_as_configured() -> None:
    paper = venue(
        book_levels=3,
        level_spacing_ticks=10,
        level_size_growth=Decimal("1.5"),
        slippage_bps=NO_SLIPPAGE,
    )

    reports = paper.submit(market("o-1", SELL, "15"), quote(), T0)

    # Bids 59994 (5), 59993.90 (7.5), 59993.80 (11.25).
    assert fills(reports) == [
        (Decimal(5), Decimal("59994")),
        (Decimal("7.5"), Decimal("59993.90")),
        (Decimal("2.5"), Decimal("59993.80")),
    ]


def test_level_sizes_are_rounded_down_to_the_step() -> None:
    paper = venue(book_levels=2, level_size_growth=Decimal("1.33333"), slippage_bps=NO_SLIPPAGE)

    reports = paper.submit(market("o-1", BUY, "20", time_in_force=IOC), quote(), T0)

    # 5 * 1.33333 = 6.66665, down to the 0.0001 step: 6.6666.
    assert fills(reports) == [
        (Decimal(5), Decimal("60006")),
        (Decimal("6.6666"), Decimal("60006.01")),
    ]


def test_market_order_larger_than_the_whole_book_fills_it_and_expires_the_rest() -> None:
    paper = venue(book_levels=3, slippage_bps=NO_SLIPPAGE)

    reports = paper.submit(market("o-1", BUY, "20"), quote(), T0)

    assert kinds(reports) == [
        ACCEPTED,
        PARTIALLY_FILLED,
        PARTIALLY_FILLED,
        PARTIALLY_FILLED,
        EXPIRED,
    ]
    expired = reports[-1]
    assert expired.message == "market order: the book's 3 levels held no more; 5 unfilled"
    assert (expired.cumulative_quantity, expired.leaves_quantity) == (Decimal(15), Decimal(0))
    assert paper.open_orders() == []


def test_market_order_walks_only_up_to_its_protection_price() -> None:
    paper = venue(book_levels=3, slippage_bps=NO_SLIPPAGE)

    reports = paper.submit(market("o-1", BUY, "12", protection="60006.01"), quote(), T0)

    assert fills(reports)[-1] == (Decimal(5), Decimal("60006.01"))
    assert reports[-1].message == (
        "price protection: the next fill price 60006.02 is beyond the protection price "
        "60006.01; 2 unfilled"
    )


def test_slippage_applies_to_each_level_of_a_walk() -> None:
    paper = venue(book_levels=2, slippage_bps=Decimal(1))

    reports = paper.submit(market("o-1", BUY, "10"), quote(), T0)

    # 60006 * 1.0001 = 60012.0006 -> 60012.01; 60006.01 * 1.0001 = 60012.010601 -> 60012.02.
    assert fills(reports) == [(Decimal(5), Decimal("60012.01")), (Decimal(5), Decimal("60012.02"))]


def test_orders_on_one_quote_take_from_the_same_book_and_the_next_quote_refills_it() -> None:
    paper = venue(book_levels=2, slippage_bps=NO_SLIPPAGE)

    first = paper.submit(market("o-1", BUY, "5"), quote(), T0)
    second = paper.submit(market("o-2", BUY, "5"), quote(), T0)
    paper.on_quote(quote(), T0)
    third = paper.submit(market("o-3", BUY, "5"), quote(), T0)

    assert fills(first) == [(Decimal(5), Decimal("60006"))]
    assert fills(second) == [(Decimal(5), Decimal("60006.01"))]
    assert fills(third) == [(Decimal(5), Decimal("60006"))]


def test_marketable_limit_walks_levels_up_to_its_limit_and_rests_the_rest() -> None:
    paper = venue(book_levels=3)

    reports = paper.submit(limit("o-1", BUY, "12", "60006.01"), quote(), T0)

    assert kinds(reports) == [ACCEPTED, PARTIALLY_FILLED, PARTIALLY_FILLED]
    assert fills(reports) == [(Decimal(5), Decimal("60006")), (Decimal(5), Decimal("60006.01"))]
    assert [r.leaves_quantity for r in paper.open_orders()] == [Decimal(2)]


def test_marketable_ioc_limit_walks_levels_and_expires_what_is_beyond_its_limit() -> None:
    paper = venue(book_levels=3)

    reports = paper.submit(limit("o-1", BUY, "12", "60006.01", IOC), quote(), T0)

    assert kinds(reports)[-1] == EXPIRED
    assert reports[-1].message == "immediate-or-cancel: unfilled remainder 2 expired"


@pytest.mark.parametrize(
    ("order", "message"),
    [
        (
            market("o-1", BUY, "16", time_in_force=FOK),
            "fill-or-kill: 16 wanted, only 15 available in the book's 3 levels from the ask "
            "60006; nothing filled",
        ),
        (
            limit("o-1", BUY, "12", "60006.01", FOK),
            "fill-or-kill: 12 wanted, only 10 available from the ask 60006 to 60006.01; "
            "nothing filled",
        ),
    ],
)
def test_fok_order_needs_all_of_it_within_its_bound_across_the_levels(
    order: VenueOrder, message: str
) -> None:
    paper = venue(book_levels=3, slippage_bps=NO_SLIPPAGE)

    reports = paper.submit(order, quote(), T0)

    assert kinds(reports) == [ACCEPTED, EXPIRED]
    assert reports[1].message == message
    smaller = replace(order, order_id="o-2", quantity=Decimal(10))
    assert kinds(paper.submit(smaller, quote(), T0))[-1] == FILLED


def test_market_to_limit_takes_only_the_best_level_and_rests_at_its_price() -> None:
    paper = venue(book_levels=3)
    order = replace(market("o-1", BUY, "8"), order_type=types_pb2.ORDER_TYPE_MARKET_TO_LIMIT)

    reports = paper.submit(order, quote(), T0)

    assert fills(reports) == [(Decimal(5), Decimal("60006"))]
    assert [r.leaves_quantity for r in paper.open_orders()] == [Decimal(3)]


def test_resting_limit_larger_than_the_shown_size_fills_across_quote_updates() -> None:
    paper = venue(book_levels=2)
    assert kinds(paper.submit(limit("o-1", BUY, "25", "60000"), quote(), T0)) == [ACCEPTED]

    # Each quote's asks: 59999.99 (5) and 60000 (5), both within the limit.
    batches = [paper.on_quote(quote(ask="59999.99"), T0) for _ in range(3)]

    assert [fills(batch) for batch in batches] == [
        [(Decimal(5), Decimal("59999.99")), (Decimal(5), Decimal("60000.00"))],
        [(Decimal(5), Decimal("59999.99")), (Decimal(5), Decimal("60000.00"))],
        [(Decimal(5), Decimal("59999.99"))],
    ]
    assert [r.leaves_quantity for r in batches[0]] == [Decimal(20), Decimal(15)]
    assert [r.leaves_quantity for r in batches[1]] == [Decimal(10), Decimal(5)]
    assert batches[2][-1].execution_type == FILLED
    assert paper.open_orders() == []


def test_resting_limit_with_the_depth_model_off_fills_the_shown_size_per_quote() -> None:
    paper = venue()
    paper.submit(limit("o-1", BUY, "12", "60000"), quote(), T0)

    batches = [paper.on_quote(quote(ask="59999"), T0) for _ in range(3)]

    assert [r.last_quantity for batch in batches for r in batch] == [
        Decimal(5),
        Decimal(5),
        Decimal(2),
    ]


def test_restored_partially_filled_order_resumes_with_its_leaves_across_levels() -> None:
    paper = venue(book_levels=2)
    order = limit("o-1", BUY, "12", "60000")
    paper.restore(
        order, venue_order_id="v-1", cumulative_quantity=Decimal(2), average_price=Decimal(60000)
    )

    first, second = paper.on_quote(quote(ask="59999.99"), T0)

    assert (first.last_quantity, second.last_quantity) == (Decimal(5), Decimal(5))
    assert (second.execution_type, second.cumulative_quantity) == (FILLED, Decimal(12))


# Slippage models ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "quantity", "price"),
    [
        # fixed: 10 bp whatever the size; 60006 * 1.001 = 60066.006 -> 60066.01.
        ("fixed", "1.25", "60066.01"),
        ("fixed", "5", "60066.01"),
        ("fixed", "20", "60066.01"),
        # linear: 10 bp * q / 5. 1.25: 2.5 bp, 60021.0015 -> 60021.01; 20: 40 bp, 60246.024.
        ("linear", "1.25", "60021.01"),
        ("linear", "5", "60066.01"),
        ("linear", "20", "60246.03"),
        # sqrt: 10 bp * sqrt(q / 5). 1.25: 5 bp, 60036.003 -> 60036.01; 20: 20 bp, 60126.012.
        ("sqrt", "1.25", "60036.01"),
        ("sqrt", "5", "60066.01"),
        ("sqrt", "20", "60126.02"),
    ],
)
def test_slippage_model_price_for_a_size(model: str, quantity: str, price: str) -> None:
    paper = venue(slippage_bps=Decimal(10), slippage_model=model)

    assert fill_price(paper, market("o-1", BUY, quantity)) == Decimal(price)


def test_linear_slippage_on_a_sell_moves_the_bid_down_rounded_down() -> None:
    paper = venue(slippage_bps=Decimal(10), slippage_model="linear")

    # 40 bp: 59994 * 0.996 = 59754.024 -> 59754.02.
    assert fill_price(paper, market("o-1", SELL, "20")) == Decimal("59754.02")


def test_size_dependent_slippage_with_nothing_displayed_is_the_fixed_slippage() -> None:
    paper = venue(slippage_bps=Decimal(10), slippage_model="sqrt")

    assert fill_price(paper, market("o-1", BUY, "20"), quote(size="0")) == Decimal("60066.01")


sizes = st.integers(min_value=1, max_value=10_000).map(lambda n: Decimal(n) / 100)


@settings(max_examples=200, derandomize=True)
@given(smaller=sizes, larger=sizes, side=st.sampled_from([BUY, SELL]))
def test_slippage_grows_with_size_for_linear_and_sqrt_and_sqrt_is_below_linear_above_the_touch(
    smaller: Decimal, larger: Decimal, side: types_pb2.Side.ValueType
) -> None:
    smaller, larger = min(smaller, larger), max(smaller, larger)

    def cost(model: str, quantity: Decimal) -> Decimal:
        """How far beyond the touch the order fills, against the trader."""
        paper = venue(slippage_bps=Decimal(10), slippage_model=model)
        price = fill_price(paper, market("o-1", side, str(quantity)))
        return price - Decimal("60006") if side == BUY else Decimal("59994") - price

    for model in ("linear", "sqrt"):
        assert cost(model, larger) >= cost(model, smaller)
    assert cost("fixed", smaller) == cost("fixed", larger)
    if larger > 5:
        assert cost("linear", larger) >= cost("sqrt", larger)


# Market impact -------------------------------------------------------------------------------


def test_impact_moves_later_fills_against_the_taker_and_decays_with_its_half_life() -> None:
    paper = venue(slippage_bps=NO_SLIPPAGE, impact_bps=Decimal(10), impact_half_life_ms=1000)
    one_second, one_hour = T0 + timedelta(seconds=1), T0 + timedelta(hours=1)

    first = fill_price(paper, market("o-1", BUY, "5"))  # takes all shown: +10 bp
    # A second later half is left: 60006 * 1.0005 = 60036.003, to the nearest tick.
    later = paper.submit(market("o-2", BUY, "1"), quote(at=one_second), one_second)
    # An hour later nothing is left.
    much_later = paper.submit(market("o-3", BUY, "1"), quote(at=one_hour), one_hour)

    assert first == Decimal("60006")
    assert fills(later) == [(Decimal(1), Decimal("60036.00"))]
    assert fills(much_later) == [(Decimal(1), Decimal("60006.00"))]


def test_impact_of_a_buy_lifts_the_bid_so_a_resting_sell_above_the_quote_fills() -> None:
    paper = venue(slippage_bps=NO_SLIPPAGE, impact_bps=Decimal(20))
    paper.submit(limit("sell", SELL, "1", "60050"), quote(), T0)

    assert paper.on_quote(quote(), T0) == []
    paper.submit(market("buy", BUY, "5"), quote(), T0)  # +20 bp
    (fill,) = paper.on_quote(quote(), T0)

    # The bid 59994 * 1.002 = 60113.988, to the nearest tick 60113.99: a maker fill there.
    assert (fill.order_id, fill.last_price) == ("sell", Decimal("60113.99"))


def test_impact_of_a_sell_lowers_the_market_and_opposite_trades_offset() -> None:
    paper = venue(slippage_bps=NO_SLIPPAGE, impact_bps=Decimal(10))

    paper.submit(market("sell", SELL, "5"), quote(), T0)  # -10 bp
    paper.on_quote(quote(), T0)
    lowered = fill_price(paper, market("buy", BUY, "5"))  # +10 bp: back to nothing
    paper.on_quote(quote(), T0)
    back = fill_price(paper, market("buy-2", BUY, "1"))

    assert lowered == Decimal("59945.99")  # 60006 * 0.999 = 59945.994
    assert back == Decimal("60006")


def test_impact_is_per_instrument() -> None:
    paper = venue(slippage_bps=NO_SLIPPAGE, impact_bps=Decimal(10))
    eth = replace(market("eth", BUY, "1"), instrument="ETH-USD")
    eth_quote = replace(quote(), instrument="ETH-USD")

    paper.submit(market("btc", BUY, "5"), quote(), T0)

    assert fill_price(paper, eth, eth_quote) == Decimal("60006")


# Latency ------------------------------------------------------------------------------------

LATENCIES = [
    SimulationLatency(distribution="fixed", mean_ms=7),
    SimulationLatency(distribution="uniform", mean_ms=50, jitter_ms=20),
    SimulationLatency(distribution="lognormal", mean_ms=50, sigma=0.8),
]


@pytest.mark.parametrize("latency", LATENCIES, ids=lambda latency: latency.distribution)
def test_latency_draws_are_reproducible_for_a_seed(latency: SimulationLatency) -> None:
    first, second = random.Random(3), random.Random(3)

    draws = [draw_latency(latency, first) for _ in range(100)]

    assert draws == [draw_latency(latency, second) for _ in range(100)]
    assert all(draw >= timedelta(0) for draw in draws)


def test_fixed_latency_draws_nothing_from_the_random_source() -> None:
    rng = random.Random(3)
    state = rng.getstate()

    assert draw_latency(LATENCIES[0], rng) == timedelta(milliseconds=7)
    assert rng.getstate() == state


def test_uniform_latency_stays_within_its_jitter_and_lognormal_has_its_mean() -> None:
    rng = random.Random(11)

    uniform = [draw_latency(LATENCIES[1], rng) for _ in range(2000)]
    lognormal = [draw_latency(LATENCIES[2], rng) / timedelta(milliseconds=1) for _ in range(20_000)]

    assert all(timedelta(milliseconds=30) <= d <= timedelta(milliseconds=70) for d in uniform)
    assert 47 < sum(lognormal) / len(lognormal) < 53
    assert max(lognormal) > 200  # the long right tail of a lognormal


def test_fill_delay_ms_is_a_fixed_latency() -> None:
    paper = venue(fill_delay_ms=25)

    arrival = paper.arrival_time(market("o-1", BUY, "1"), T0)

    assert arrival == T0 + timedelta(milliseconds=25)


def test_arrival_times_are_reproducible_and_never_let_a_later_order_overtake() -> None:
    latency = SimulationLatency(distribution="uniform", mean_ms=50, jitter_ms=50)

    def arrivals(seed: int) -> list[tuple[str, datetime]]:
        paper = venue(latency=latency, seed=seed)
        result = []
        for n in range(200):
            order = market(f"o-{n}", BUY, "1")
            if n % 3 == 0:
                order = replace(order, instrument="ETH-USD")
            sent = T0 + timedelta(milliseconds=n)
            result.append((order.instrument, paper.arrival_time(order, sent)))
        return result

    first = arrivals(seed=5)

    assert first == arrivals(seed=5)
    assert first != arrivals(seed=6)
    for instrument in ("BTC-USD", "ETH-USD"):
        times = [at for name, at in first if name == instrument]
        assert times == sorted(times)
    # Sent 1 ms apart with up to 100 ms of latency, many are held back behind an earlier one
    # (they arrive together with it), but the arrivals still spread out.
    btc = [at for name, at in first if name == "BTC-USD"]
    assert any(earlier == later for earlier, later in itertools.pairwise(btc))
    assert len(set(btc)) > 10


def test_no_latency_arrives_at_once_and_draws_nothing() -> None:
    asked, untouched = venue(reject_probability=0.5), venue(reject_probability=0.5)
    outcomes: dict[str, list[int]] = {"asked": [], "untouched": []}

    for n in range(20):
        order = limit(f"o-{n}", BUY, "1", "59000")
        assert asked.arrival_time(order, T0) == T0
        outcomes["asked"] += kinds(asked.submit(order, quote(), T0))
        outcomes["untouched"] += kinds(untouched.submit(order, quote(), T0))

    assert outcomes["asked"] == outcomes["untouched"]
    assert REJECTED in outcomes["asked"]


class _Reports:
    """A report sink the client's timer threads append to."""

    def __init__(self) -> None:
        self.reports: list[Report] = []
        self.lock = threading.Lock()

    def __call__(self, report: Report) -> None:
        with self.lock:
            self.reports.append(report)


def test_simulation_client_delivers_delayed_orders_in_the_order_they_were_sent() -> None:
    # 20 to 180 ms each: draws that would reorder orders sent a moment apart.
    settings = SimulationVenue(
        latency=SimulationLatency(distribution="uniform", mean_ms=100, jitter_ms=80), seed=9
    )
    sink = _Reports()
    client = SimulationClient(sink, settings, [BTC], SystemClock())
    sent = [limit(f"o-{n}", BUY, "1", "59000") for n in range(30)]
    try:
        for order in sent:
            client.submit_order(order)
            if order.order_id == "o-7":
                client.cancel_order("o-7", "cancel-7")  # still on its way
        deadline = datetime.now(UTC) + timedelta(seconds=5)
        while len(sink.reports) < len(sent) and datetime.now(UTC) < deadline:
            threading.Event().wait(0.01)
    finally:
        client.stop()

    accepted = [r.order_id for r in sink.reports if r.execution_type == ACCEPTED]
    assert accepted == [o.order_id for o in sent if o.order_id != "o-7"]
    (canceled,) = [r for r in sink.reports if r.execution_type == CANCELED]
    assert canceled.message == "canceled before it reached the venue; 1 unfilled"


# Random rejects -----------------------------------------------------------------------------


def rejected_ids(probability: float, seed: int = 0, orders: int = 200) -> set[str]:
    paper = venue(reject_probability=probability, seed=seed)
    rejected = set()
    for n in range(orders):
        (first, *_) = paper.submit(limit(f"o-{n}", BUY, "1", "59000"), quote(), T0)
        if first.execution_type == REJECTED:
            rejected.add(first.order_id)
    return rejected


def test_reject_probability_zero_never_rejects() -> None:
    assert rejected_ids(0.0) == set()


def test_reject_probability_one_always_rejects_saying_it_was_the_simulator() -> None:
    paper = venue(reject_probability=1.0)

    (report,) = paper.submit(market("o-1", BUY, "1"), quote(), T0)

    assert report.execution_type == REJECTED
    assert report.message == (
        "rejected at random by the simulator, as configured: "
        "execution.simulation.reject_probability is 1.0"
    )
    assert paper.open_orders() == []
    assert rejected_ids(1.0, orders=50) == {f"o-{n}" for n in range(50)}


def test_seeded_reject_probability_rejects_a_reproducible_set() -> None:
    rejected = rejected_ids(0.3, seed=17)

    assert rejected == rejected_ids(0.3, seed=17)
    assert rejected != rejected_ids(0.3, seed=18)
    assert 40 <= len(rejected) <= 80  # about 30% of 200


def test_an_order_the_venue_refuses_anyway_draws_no_random_reject() -> None:
    paper = venue(reject_probability=0.5, seed=4)
    reference = venue(reject_probability=0.5, seed=4)

    (invalid,) = paper.submit(market("bad", BUY, "0"), quote(), T0)
    after_invalid = kinds(paper.submit(limit("o-1", BUY, "1", "59000"), quote(), T0))

    assert "quantity must be positive" in invalid.message
    assert after_invalid == kinds(reference.submit(limit("o-1", BUY, "1", "59000"), quote(), T0))


# Maker and taker fees -----------------------------------------------------------------------


def test_arriving_order_pays_taker_and_its_resting_remainder_pays_maker() -> None:
    paper = venue(maker_fee_bps=Decimal(2), taker_fee_bps=Decimal(5))

    _, taken = paper.submit(limit("o-1", BUY, "8", "60010"), quote(), T0)
    (made,) = paper.on_quote(quote(ask="59999"), T0)

    # Taker: 5 * 60006 * 0.0005 = 150.015 -> 150.02. Maker: 3 * 59999 * 0.0002 = 35.9994 -> 36.
    assert (taken.last_quantity, taken.fee) == (Decimal(5), Decimal("150.02"))
    assert (made.last_quantity, made.fee) == (Decimal(3), Decimal("36.00"))


def test_market_order_pays_taker_on_every_level() -> None:
    paper = venue(book_levels=2, slippage_bps=NO_SLIPPAGE, taker_fee_bps=Decimal(5))

    reports = paper.submit(market("o-1", BUY, "10"), quote(), T0)

    # 5 * 60006 * 0.0005 = 150.015 -> 150.02; 5 * 60006.01 * 0.0005 = 150.015025 -> 150.02.
    assert [r.fee for r in reports if r.trade_id] == [Decimal("150.02"), Decimal("150.02")]


def test_maker_and_taker_fees_default_to_fee_bps() -> None:
    settings = SimulationVenue(fee_bps=Decimal(7))

    assert (settings.maker_fee, settings.taker_fee) == (Decimal(7), Decimal(7))
    assert SimulationVenue(fee_bps=Decimal(7), maker_fee_bps=Decimal(0)).maker_fee == 0


# Configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"reject_probability": 1.5}, "less than or equal to 1"),
        ({"reject_probability": -0.1}, "greater than or equal to 0"),
        ({"slippage_model": "cubic"}, "'fixed', 'linear' or 'sqrt'"),
        ({"book_levels": -1}, "greater than or equal to 0"),
        ({"level_size_growth": "0"}, "greater than 0"),
        (
            {"fill_delay_ms": 5, "latency": {"distribution": "fixed", "mean_ms": 5}},
            "set either fill_delay_ms (5, a fixed latency) or latency, not both",
        ),
        (
            {"latency": {"distribution": "uniform", "mean_ms": 5, "jitter_ms": 6}},
            "jitter_ms (6) must be at most mean_ms (5)",
        ),
        ({"latency": {"distribution": "lognormal"}}, "mean_ms must be positive"),
        ({"latency": {"distribution": "gamma", "mean_ms": 5}}, "'fixed', 'uniform' or"),
    ],
)
def test_simulation_settings_refuse_bad_values_with_a_clear_error(
    fields: dict[str, Any], error: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        SimulationVenue(**fields)

    assert error in str(raised.value)


def test_defaults_keep_the_touch_only_fixed_slippage_venue() -> None:
    settings = SimulationVenue()

    assert (settings.book_levels, settings.slippage_model) == (0, "fixed")
    assert (settings.impact_bps, settings.reject_probability) == (Decimal(0), 0.0)
    assert settings.order_latency == SimulationLatency(distribution="fixed", mean_ms=0)
    assert (settings.maker_fee, settings.taker_fee) == (settings.fee_bps, settings.fee_bps)


# Properties: bounds, quantities, determinism -------------------------------------------------

ticks = st.integers(min_value=-300, max_value=300).map(lambda n: Decimal(n) / 100)
quantities = st.integers(min_value=1, max_value=200).map(lambda n: Decimal(n) / 10)


@st.composite
def order_steps(draw: st.DrawFn, n: int) -> VenueOrder:
    side = draw(st.sampled_from([BUY, SELL]))
    quantity = draw(quantities)
    kind = draw(st.sampled_from(["market", "protected", "limit", "mtl"]))
    time_in_force = draw(st.sampled_from([GTC, IOC, FOK]))
    order = market(f"o-{n}", side, str(quantity), time_in_force=time_in_force)
    if kind == "protected":
        return replace(order, protection_price=Decimal(60000) + draw(ticks))
    if kind == "limit":
        return replace(
            order, order_type=types_pb2.ORDER_TYPE_LIMIT, limit_price=Decimal(60000) + draw(ticks)
        )
    if kind == "mtl":
        return replace(order, order_type=types_pb2.ORDER_TYPE_MARKET_TO_LIMIT)
    return order


@st.composite
def quote_steps(draw: st.DrawFn) -> Quote:
    bid = Decimal(59990) + draw(ticks)
    spread = draw(st.integers(min_value=1, max_value=50).map(lambda n: Decimal(n) / 100))
    size = draw(st.integers(min_value=0, max_value=100).map(lambda n: Decimal(n) / 10))
    return Quote("BTC-USD", bid, bid + spread, size, size, T0)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[dict[str, Any], list[Quote | VenueOrder]]:
    settings = {
        "book_levels": draw(st.integers(min_value=0, max_value=4)),
        "level_size_growth": draw(st.sampled_from([Decimal(1), Decimal("1.5"), Decimal("0.5")])),
        "slippage_model": draw(st.sampled_from(["fixed", "linear", "sqrt"])),
        "slippage_bps": draw(st.sampled_from([Decimal(0), Decimal(1), Decimal(25)])),
        "impact_bps": draw(st.sampled_from([Decimal(0), Decimal(5)])),
        "reject_probability": draw(st.sampled_from([0.0, 0.3])),
        "seed": draw(st.integers(min_value=0, max_value=3)),
    }
    steps: list[Quote | VenueOrder] = [draw(quote_steps())]
    for n in range(draw(st.integers(min_value=1, max_value=12))):
        steps.append(draw(st.one_of(quote_steps(), order_steps(n))))
    return settings, steps


def run(settings: dict[str, Any], steps: list[Quote | VenueOrder]) -> list[Report]:
    paper, latest, reports = venue(**settings), None, []
    for n, step in enumerate(steps):
        now = T0 + timedelta(milliseconds=100 * n)
        if isinstance(step, Quote):
            latest = replace(step, time=now)
            reports += paper.on_quote(latest, now)
        else:
            reports += paper.submit(step, latest, now)
    return reports


@settings(max_examples=300, derandomize=True, deadline=None)
@given(scenario=scenarios())
def test_no_fill_beyond_limit_or_protection_nor_beyond_quantity_and_same_seed_same_reports(
    scenario: tuple[dict[str, Any], list[Quote | VenueOrder]],
) -> None:
    settings, steps = scenario
    orders = {step.order_id: step for step in steps if isinstance(step, VenueOrder)}

    reports = run(settings, steps)

    assert reports == run(settings, steps)
    filled: dict[str, Decimal] = {}
    for report in reports:
        order = orders[report.order_id]
        assert report.cumulative_quantity <= order.quantity
        if not report.trade_id:
            continue
        assert report.last_quantity is not None and report.last_quantity > 0
        assert report.last_price is not None
        filled[order.order_id] = filled.get(order.order_id, Decimal(0)) + report.last_quantity
        assert filled[order.order_id] == report.cumulative_quantity
        for bound in (order.limit_price, order.protection_price):
            if bound is not None:
                assert (
                    report.last_price <= bound if order.side == BUY else report.last_price >= bound
                )
