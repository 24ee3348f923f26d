"""The seeded synthetic feed: deterministic, on the tick, always a positive two-sided quote."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from hypothesis import given, settings
from hypothesis import strategies as st
from market_data.synthetic import SyntheticFeed
from trading.v1 import types_pb2
from trading_core.config import Instrument, MarketData
from trading_core.prices import ceil_to_tick, floor_to_tick
from trading_core.quotes import Quote

T0 = datetime(2024, 1, 2, 9, 30, tzinfo=UTC)
BTC = Instrument(
    symbol="BTC-USD",
    tick_size=Decimal("0.01"),
    step_size=Decimal("0.0001"),
    initial_price=Decimal("60000"),
)
SOL = Instrument(
    symbol="SOL-USD",
    tick_size=Decimal("0.001"),
    step_size=Decimal("0.01"),
    initial_price=Decimal("150"),
)
SETTINGS = MarketData(
    seed=42,
    interval_ms=100,
    volatility_bps=Decimal("5"),
    spread_bps=Decimal("2"),
    quote_size=Decimal("5"),
)


def run(feed: SyntheticFeed, ticks: int) -> list[Quote]:
    return [q for n in range(ticks) for q in feed.tick(T0 + timedelta(milliseconds=100 * n))]


def on_tick(price: Decimal, tick: Decimal) -> bool:
    return price % tick == 0


def test_first_tick_quotes_initial_price_with_half_spread_each_side_in_config_order() -> None:
    feed = SyntheticFeed([BTC, SOL], SETTINGS)

    btc, sol = feed.tick(T0)

    # 60000 * (1 -/+ 2/20000) = 59994 / 60006; 150 * (1 -/+ 0.0001) = 149.985 / 150.015; the
    # last trade at the mid.
    assert btc == Quote(
        "BTC-USD",
        Decimal("59994"),
        Decimal("60006"),
        Decimal(5),
        Decimal(5),
        T0,
        last=Decimal(60000),
    )
    assert sol == Quote(
        "SOL-USD",
        Decimal("149.985"),
        Decimal("150.015"),
        Decimal(5),
        Decimal(5),
        T0,
        last=Decimal(150),
    )


def test_same_seed_and_tick_count_give_identical_quotes() -> None:
    first = run(SyntheticFeed([BTC, SOL], SETTINGS), 200)
    second = run(SyntheticFeed([BTC, SOL], SETTINGS), 200)

    assert first == second


def test_different_seeds_give_different_walks() -> None:
    other = SETTINGS.model_copy(update={"seed": 7})

    first = run(SyntheticFeed([BTC], SETTINGS), 50)
    second = run(SyntheticFeed([BTC], other), 50)

    assert first[0] == second[0]  # both start at the initial price
    assert first != second


def test_later_ticks_move_the_mid() -> None:
    quotes = run(SyntheticFeed([BTC], SETTINGS), 20)

    assert len({q.mid for q in quotes}) > 1


def test_every_quote_is_on_the_tick_with_ask_at_least_one_tick_above_bid() -> None:
    for quote in run(SyntheticFeed([BTC, SOL], SETTINGS), 500):
        tick = BTC.tick_size if quote.instrument == "BTC-USD" else SOL.tick_size
        assert on_tick(quote.bid, tick)
        assert on_tick(quote.ask, tick)
        assert quote.ask >= quote.bid + tick


def test_prices_stay_positive_over_many_ticks_of_extreme_volatility() -> None:
    wild = SETTINGS.model_copy(update={"volatility_bps": Decimal("5000")})

    for quote in run(SyntheticFeed([SOL], wild), 3000):
        assert quote.bid >= SOL.tick_size
        assert quote.ask >= quote.bid + SOL.tick_size


def test_quote_at_the_minimum_price_keeps_a_one_tick_bid_and_a_higher_ask() -> None:
    penny = Instrument(
        symbol="PENNY",
        tick_size=Decimal("0.01"),
        step_size=Decimal(1),
        initial_price=Decimal("0.01"),
    )

    (quote,) = SyntheticFeed([penny], SETTINGS).tick(T0)

    assert (quote.bid, quote.ask) == (Decimal("0.01"), Decimal("0.02"))


def test_latest_is_none_before_the_first_tick_and_then_the_last_quote() -> None:
    feed = SyntheticFeed([BTC], SETTINGS)
    assert feed.latest("BTC-USD") is None

    feed.tick(T0)
    (last,) = feed.tick(T0 + timedelta(seconds=1))

    assert feed.latest("BTC-USD") == last
    assert feed.latest("ETH-USD") is None


def test_tick_rounding_goes_down_for_floor_and_up_for_ceiling() -> None:
    tick = Decimal("0.01")

    assert floor_to_tick(Decimal("60012.0006"), tick) == Decimal("60012.00")
    assert ceil_to_tick(Decimal("60012.0006"), tick) == Decimal("60012.01")
    assert ceil_to_tick(Decimal("60012.01"), tick) == Decimal("60012.01")


def test_every_last_trade_price_is_on_the_tick_within_bid_and_ask() -> None:
    wild = SETTINGS.model_copy(update={"volatility_bps": Decimal("500")})

    for quote in run(SyntheticFeed([BTC, SOL], wild), 1000):
        tick = BTC.tick_size if quote.instrument == "BTC-USD" else SOL.tick_size
        assert quote.last is not None
        assert on_tick(quote.last, tick)
        assert quote.bid <= quote.last <= quote.ask


def test_last_trade_price_is_the_mid_rounded_half_even_to_the_tick() -> None:
    feed = SyntheticFeed([BTC], SETTINGS)

    for n in range(50):
        (quote,) = feed.tick(T0 + timedelta(milliseconds=100 * n))
        steps = (feed.mids["BTC-USD"] / BTC.tick_size).to_integral_value(ROUND_HALF_EVEN)
        assert quote.last == steps * BTC.tick_size


def test_a_mid_half_way_between_ticks_prints_at_the_even_tick() -> None:
    for mid, last in (("100.005", "100.00"), ("100.015", "100.02")):
        start = BTC.model_copy(update={"initial_price": Decimal(mid)})

        (quote,) = SyntheticFeed([start], SETTINGS).tick(T0)

        assert quote.last == Decimal(last)


@settings(max_examples=200, derandomize=True)
@given(st.integers(min_value=1, max_value=10_000_000), st.sampled_from([BTC, SOL]))
def test_last_trade_price_stays_within_bid_and_ask_from_any_starting_price(
    cents: int, instrument: Instrument
) -> None:
    start = instrument.model_copy(update={"initial_price": Decimal(cents) / 100})

    (quote,) = SyntheticFeed([start], SETTINGS).tick(T0)

    assert quote.last is not None
    assert quote.bid <= quote.last <= quote.ask
    assert on_tick(quote.last, instrument.tick_size)


def test_quote_with_a_last_trade_price_round_trips_through_the_proto() -> None:
    (quote,) = SyntheticFeed([SOL], SETTINGS).tick(T0)

    proto = quote.to_proto()

    assert proto.last_price == "150"
    assert Quote.from_proto(proto) == quote


def test_quote_without_a_last_trade_price_has_an_empty_last_price_on_the_wire() -> None:
    quote = Quote("BTC-USD", Decimal("1"), Decimal("2"), Decimal(1), Decimal(1), T0)

    assert quote.to_proto().last_price == ""
    assert Quote.from_proto(quote.to_proto()).last is None


def test_the_feed_reports_each_instruments_configured_status_and_it_round_trips() -> None:
    halted = SOL.model_copy(update={"status": "halted"})
    trading, stopped = SyntheticFeed([BTC, halted], SETTINGS).tick(T0)
    assert trading.status == types_pb2.INSTRUMENT_STATUS_TRADING
    assert stopped.status == types_pb2.INSTRUMENT_STATUS_HALTED
    assert Quote.from_proto(stopped.to_proto()) == stopped


def test_a_quote_whose_source_says_nothing_of_status_is_taken_as_trading() -> None:
    wire = Quote("BTC-USD", Decimal("1"), Decimal("2"), Decimal(1), Decimal(1), T0).to_proto()
    wire.ClearField("status")
    assert Quote.from_proto(wire).status == types_pb2.INSTRUMENT_STATUS_TRADING
