"""Signal sizing: each method, confidence, the caps, rounding to the step, each denial, exits at a
distance, the per-strategy config, and properties of the caps and of the risk taken."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from order_management.domain.sizing import exit_prices, signal_quantity, size_signal
from order_management.domain.validation import (
    Denial,
    ExitLevel,
    Exits,
    InvalidRequest,
    PreTradeValidator,
    Signal,
    parse_submit_signal,
)
from pydantic import ValidationError
from trading.v1 import orders_pb2, types_pb2
from trading_core.config import Instrument, OrderDefaults, PlatformConfig, SignalSizing
from trading_core.decimals import is_multiple
from trading_core.quotes import Quote

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
BTC = Instrument(
    symbol="BTC-USD",
    tick_size=Decimal("0.01"),
    step_size=Decimal("0.0001"),
    initial_price=Decimal(60000),
)
QUOTE = Quote("BTC-USD", Decimal(59990), Decimal(60010), Decimal(1), Decimal(1), NOW)
EQUITY = Decimal(100000)
DEFAULTS = OrderDefaults()
T = types_pb2
BUY, SELL = T.SIDE_BUY, T.SIDE_SELL


def sizing(**keys: Any) -> SignalSizing:
    return SignalSizing.model_validate(keys)


def quantity(policy: SignalSizing, price: str = "60000", **facts: Any) -> Decimal:
    size = signal_quantity(policy, BTC, Decimal(price), **facts)
    assert isinstance(size, Decimal), size
    return size


def denial(policy: SignalSizing, price: str = "60000", **facts: Any) -> Denial:
    size = signal_quantity(policy, BTC, Decimal(price), **facts)
    assert isinstance(size, Denial), size
    return size


def signal(**changes: Any) -> Signal:
    fields: dict[str, Any] = {
        "request_id": "req-1",
        "client_order_id": "cl-1",
        "account_id": "acc-1",
        "strategy_id": "strat-1",
        "instrument": "BTC-USD",
        "side": BUY,
    } | changes
    return parse_submit_signal(orders_pb2.SubmitSignalRequest(**fields), "sig-1", DEFAULTS)


def at_distance(distance: str) -> orders_pb2.ExitLevel:
    return orders_pb2.ExitLevel(distance=distance)


def at_price(price: str) -> orders_pb2.ExitLevel:
    return orders_pb2.ExitLevel(price=price)


# --- the methods ---------------------------------------------------------------------------


def test_fixed_quantity_trades_the_configured_quantity_rounded_down_to_the_step() -> None:
    assert quantity(sizing(method="fixed_quantity", quantity="0.25")) == Decimal("0.25")
    assert quantity(sizing(method="fixed_quantity", quantity="0.12345")) == Decimal("0.1234")


@pytest.mark.parametrize(
    ("notional", "price", "expected"),
    [
        ("1000", "60000", "0.0166"),  # 0.016666... rounded down to the 0.0001 step
        ("600", "60000", "0.01"),  # exactly on a step
        ("1000", "59999.99", "0.0166"),
    ],
)
def test_fixed_notional_is_the_notional_over_the_price_rounded_down_to_the_step(
    notional: str, price: str, expected: str
) -> None:
    assert quantity(sizing(notional=notional), price) == Decimal(expected)


def test_percent_of_equity_is_that_share_of_equity_over_the_price() -> None:
    policy = sizing(method="percent_of_equity", percent_of_equity="5")
    # 5% of 100000 is 5000; at 60000 that is 0.083333..., down to 0.0833.
    assert quantity(policy, equity=EQUITY) == Decimal("0.0833")


def test_risk_per_trade_is_the_amount_risked_over_the_stop_distance() -> None:
    policy = sizing(method="risk_per_trade", risk_percent="1")
    # 1% of 100000 is 1000 at risk; a stop 600 away: 1.6666... units, down to 1.6666.
    assert quantity(policy, equity=EQUITY, stop_distance=Decimal(600)) == Decimal("1.6666")


def test_exact_past_28_digits() -> None:
    assert quantity(sizing(notional="1000"), "1e-20") == Decimal("1e23")


# --- confidence and caps -------------------------------------------------------------------

METHODS = [
    sizing(method="fixed_quantity", quantity="1"),
    sizing(notional="60000"),
    sizing(method="percent_of_equity", percent_of_equity="60"),
    sizing(method="risk_per_trade", risk_percent="1"),
]
# Each method sizes to 1 at 60000 with these.
FACTS: dict[str, Any] = {"equity": EQUITY, "stop_distance": Decimal(1000)}


@pytest.mark.parametrize("policy", METHODS, ids=lambda p: p.method)
def test_confidence_scales_every_method(policy: SignalSizing) -> None:
    assert quantity(policy, **FACTS) == Decimal(1)
    assert quantity(policy, confidence=Decimal("0.37"), **FACTS) == Decimal("0.37")


@pytest.mark.parametrize("policy", METHODS, ids=lambda p: p.method)
def test_confidence_is_ignored_when_scale_by_confidence_is_off(policy: SignalSizing) -> None:
    unscaled = policy.model_copy(update={"scale_by_confidence": False})
    assert quantity(unscaled, confidence=Decimal("0.37"), **FACTS) == Decimal(1)


@pytest.mark.parametrize("policy", METHODS, ids=lambda p: p.method)
def test_max_quantity_caps_every_method(policy: SignalSizing) -> None:
    capped = policy.model_copy(update={"max_quantity": Decimal("0.4")})
    assert quantity(capped, **FACTS) == Decimal("0.4")


@pytest.mark.parametrize("policy", METHODS, ids=lambda p: p.method)
def test_max_notional_caps_every_method_at_the_price(policy: SignalSizing) -> None:
    capped = policy.model_copy(update={"max_notional": Decimal(1000)})
    # 1000 / 60000 is 0.016666..., down to the step.
    assert quantity(capped, **FACTS) == Decimal("0.0166")


def test_the_tighter_cap_wins() -> None:
    policy = sizing(notional="60000", max_quantity="0.5", max_notional="6000")
    assert quantity(policy) == Decimal("0.1")


# --- denials -------------------------------------------------------------------------------


def test_a_size_below_one_step_is_denied_naming_how_it_was_sized_and_what_to_raise() -> None:
    refused = denial(sizing(notional="5"))
    assert refused.reason == T.DENIAL_REASON_QUANTITY_NOT_POSITIVE
    assert refused.message == (
        "the signal sizes to nothing: notional 5 at 60000 is less than one step (0.0001) of "
        "BTC-USD; raise signal_sizing.notional"
    )


def test_a_low_confidence_that_sizes_to_nothing_says_so() -> None:
    refused = denial(sizing(notional="10"), confidence=Decimal("0.1"))
    assert refused.reason == T.DENIAL_REASON_QUANTITY_NOT_POSITIVE
    assert "notional 10 at 60000 times confidence 0.1 is less than one step" in refused.message
    assert refused.message.endswith("raise signal_sizing.notional, or send a higher confidence")


def test_a_confidence_of_zero_sizes_to_nothing_and_says_how_to_trade() -> None:
    refused = denial(sizing(notional="1000"), confidence=Decimal(0))
    assert refused.reason == T.DENIAL_REASON_QUANTITY_NOT_POSITIVE
    assert "set signal_sizing.scale_by_confidence to false" in refused.message


def test_a_cap_below_one_step_is_denied_naming_the_cap() -> None:
    refused = denial(sizing(notional="1000", max_quantity="0.00001"))
    assert refused.reason == T.DENIAL_REASON_QUANTITY_NOT_POSITIVE
    assert "capped by max_quantity 0.00001" in refused.message
    assert refused.message.endswith("raise signal_sizing.max_quantity")


def test_risk_per_trade_without_a_stop_loss_is_denied_stop_loss_required() -> None:
    refused = denial(sizing(method="risk_per_trade", risk_percent="1"), equity=EQUITY)
    assert refused.reason == T.DENIAL_REASON_STOP_LOSS_REQUIRED
    assert "give the signal a stop_loss, as a price or a distance" in refused.message


@pytest.mark.parametrize("equity", ["0", "-500"])
def test_sizing_from_equity_the_account_does_not_have_is_denied(equity: str) -> None:
    policy = sizing(method="percent_of_equity", percent_of_equity="5")
    refused = denial(policy, equity=Decimal(equity))
    assert refused.reason == T.DENIAL_REASON_QUANTITY_NOT_POSITIVE
    assert f"equity {equity} is not positive" in refused.message


@pytest.mark.parametrize(
    "price", ["0.0000000000000000000000000001", "1e-999", "-5", "0", "1e14", "1e30", "NaN", "-Inf"]
)
def test_sizing_never_raises_whatever_the_price(price: str) -> None:
    size = signal_quantity(sizing(notional="1000"), BTC, Decimal(price))
    assert isinstance(size, Denial) or (size > 0 and is_multiple(size, BTC.step_size))


# --- exits at a distance -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("side", "take_profit", "stop_loss", "expected"),
    [
        # a buy exits by selling: take-profit above, stop-loss below, rounded away
        (BUY, ExitLevel(distance=Decimal("2.505")), None, (Decimal("102.51"), None)),
        (BUY, None, ExitLevel(distance=Decimal("2.505")), (None, Decimal("97.49"))),
        (SELL, ExitLevel(distance=Decimal("2.505")), None, (Decimal("97.49"), None)),
        (SELL, None, ExitLevel(distance=Decimal("2.505")), (None, Decimal("102.51"))),
        # 150 bps of 100 is 1.5
        (BUY, ExitLevel(distance_bps=Decimal(150)), None, (Decimal("101.5"), None)),
        (SELL, None, ExitLevel(distance_bps=Decimal("0.5")), (None, Decimal("100.01"))),
        # a price is kept as it is
        (BUY, ExitLevel(price=Decimal("130.123")), None, (Decimal("130.123"), None)),
    ],
)
def test_a_distance_becomes_a_price_on_the_exits_side_rounded_away_from_the_entry(
    side: int,
    take_profit: ExitLevel | None,
    stop_loss: ExitLevel | None,
    expected: tuple[Decimal | None, Decimal | None],
) -> None:
    asked = Signal(signal(side=side).order, take_profit=take_profit, stop_loss=stop_loss)
    exits = exit_prices(asked, Decimal(100), Decimal("0.01"))
    assert isinstance(exits, Exits)
    assert (exits.take_profit, exits.stop_loss_trigger) == expected


def test_a_distance_past_zero_is_denied_price_not_positive() -> None:
    asked = Signal(signal().order, stop_loss=ExitLevel(distance=Decimal(150)))
    refused = exit_prices(asked, Decimal(100), Decimal("0.01"))
    assert isinstance(refused, Denial)
    assert refused.reason == T.DENIAL_REASON_PRICE_NOT_POSITIVE
    assert "the stop-loss 150 below the entry's price 100 would be at -50" in refused.message


# --- a whole signal ------------------------------------------------------------------------


def test_a_market_signal_with_both_exits_is_a_bracket_priced_from_the_touch() -> None:
    asked = signal(take_profit=at_distance("1200"), stop_loss=at_distance("600"))
    policy = sizing(method="risk_per_trade", risk_percent="1")
    sized = size_signal(asked, policy, BTC, QUOTE, EQUITY)
    assert sized.denial is None
    order = sized.request
    assert order.order_class == T.ORDER_CLASS_BRACKET
    assert order.exits == Exits(take_profit=Decimal(61210), stop_loss_trigger=Decimal(59410))
    assert order.quantity == Decimal("1.6666")  # 1000 at risk over 600


def test_a_limit_signal_prices_its_exits_from_its_limit_and_one_exit_is_an_oto() -> None:
    asked = signal(side=SELL, limit_price="59000", stop_loss=at_distance("100"))
    sized = size_signal(asked, sizing(notional="1000"), BTC, QUOTE, None)
    assert sized.denial is None
    assert sized.request.order_class == T.ORDER_CLASS_OTO
    assert sized.request.exits == Exits(stop_loss_trigger=Decimal(59100))
    # A sell limit below the bid is valued at the bid, 59990: 1000 / 59990, down to the step.
    assert sized.request.quantity == Decimal("0.0166")


def test_a_market_signal_without_a_quote_is_denied_no_market_data() -> None:
    sized = size_signal(signal(), sizing(notional="1000"), BTC, None, None)
    assert sized.denial is not None
    assert sized.denial.reason == T.DENIAL_REASON_NO_MARKET_DATA
    assert sized.request.quantity == 0


def test_a_stop_loss_on_the_wrong_side_is_denied_before_sizing() -> None:
    asked = signal(stop_loss=at_price("61000"))  # a buy's stop-loss above the ask
    sized = size_signal(
        asked, sizing(method="risk_per_trade", risk_percent="1"), BTC, QUOTE, EQUITY
    )
    assert sized.denial is not None
    assert sized.denial.reason == T.DENIAL_REASON_EXIT_PRICE_WRONG_SIDE


def test_a_sized_signal_is_denied_by_the_validator_for_its_sizing_not_its_quantity() -> None:
    config = PlatformConfig.model_validate(
        {
            "environment": "test",
            "database": {"backend": "duckdb"},
            "messaging": {"backend": "memory"},
            "account_limits": {"max_order_value": "100000", "max_daily_orders": 10},
            "signal_sizing": {"method": "risk_per_trade", "risk_percent": "1"},
            "instruments": [BTC.model_dump()],
        }
    )
    sized = size_signal(signal(), config.signal_sizing, BTC, QUOTE, EQUITY)
    refused = PreTradeValidator(config).check(sized.request, QUOTE, None, NOW, sizing=sized.denial)
    assert refused is not None
    assert refused.reason == T.DENIAL_REASON_STOP_LOSS_REQUIRED


# The reasons sizing produces (test_order_validation checks every reason has a case).
SIZING_REASONS = frozenset(
    {
        T.DENIAL_REASON_QUANTITY_NOT_POSITIVE,
        T.DENIAL_REASON_STOP_LOSS_REQUIRED,
        T.DENIAL_REASON_PRICE_NOT_POSITIVE,
        T.DENIAL_REASON_NO_MARKET_DATA,
        T.DENIAL_REASON_EXIT_PRICE_WRONG_SIDE,
    }
)


# --- parsing a signal ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"confidence": "1.5"}, "confidence"),
        ({"confidence": "-0.1"}, "confidence"),
        ({"confidence": "high"}, "confidence"),
        ({"stop_loss": at_distance("-2.5")}, "stop_loss.distance"),
        ({"take_profit": orders_pb2.ExitLevel(distance_bps="0")}, "take_profit.distance_bps"),
        ({"take_profit": at_price("-1")}, "take_profit.price"),
        ({"stop_loss": at_price("cheap")}, "stop_loss.price"),
        ({"stop_loss": orders_pb2.ExitLevel()}, "stop_loss"),
    ],
)
def test_a_malformed_confidence_or_exit_is_invalid_naming_the_field(
    changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidRequest) as raised:
        signal(**changes)
    assert raised.value.field == field
    assert str(raised.value).startswith(field)


def test_exits_given_as_prices_are_set_when_parsed_and_distances_when_sized() -> None:
    priced = signal(take_profit=at_price("61000"), stop_loss=at_price("59000"))
    assert priced.order.order_class == T.ORDER_CLASS_BRACKET
    assert priced.order.exits == Exits(take_profit=Decimal(61000), stop_loss_trigger=Decimal(59000))
    distant = signal(take_profit=at_price("61000"), stop_loss=at_distance("500"))
    assert distant.order.order_class == T.ORDER_CLASS_BRACKET
    assert distant.order.exits is None
    assert distant.stop_loss == ExitLevel(distance=Decimal(500))


def test_confidence_defaults_to_one() -> None:
    assert signal().confidence == Decimal(1)
    assert signal(confidence="0.25").confidence == Decimal("0.25")


# --- config --------------------------------------------------------------------------------


def test_default_sizing_keeps_a_fixed_notional_of_1000_scaled_by_confidence() -> None:
    config = PlatformConfig.model_fields["signal_sizing"].default
    assert (config.method, config.notional, config.scale_by_confidence) == (
        "fixed_notional",
        Decimal(1000),
        True,
    )
    assert (config.max_quantity, config.max_notional) == (None, None)


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"method": "percent_of_equity"}, "method percent_of_equity needs 'percent_of_equity'"),
        (
            {"method": "risk_per_trade", "notional": "1"},
            "method risk_per_trade needs 'risk_percent'",
        ),
        ({"method": "percent_of_equity", "percent_of_equity": "150"}, "less than or equal to 100"),
        ({"method": "risk_per_trade", "risk_percent": "0"}, "greater than 0"),
        ({"notional": "1", "max_quantity": "-1"}, "greater than 0"),
        ({"notional": "1", "size": "1"}, "Extra inputs are not permitted"),
        (
            {"notional": "1", "strategies": {"mr": {"method": "fixed_quantity"}}},
            "strategies.mr: method fixed_quantity needs 'quantity'",
        ),
    ],
)
def test_a_sizing_that_cannot_size_is_refused_at_start_up(
    keys: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(")):
        sizing(**keys)


def test_a_strategy_sizing_replaces_only_the_keys_it_sets() -> None:
    policy = sizing(
        notional="1000",
        max_quantity="5",
        strategies={"trend": {"method": "risk_per_trade", "risk_percent": "0.5"}},
    )
    trend = policy.for_strategy("trend")
    assert (trend.method, trend.risk_percent, trend.max_quantity) == (
        "risk_per_trade",
        Decimal("0.5"),
        Decimal(5),
    )
    assert trend.uses_equity
    assert policy.for_strategy("other") is policy


def test_a_signals_limit_price_too_high_for_max_notional_is_price_out_of_range() -> None:
    config = PlatformConfig.model_validate(
        {
            "environment": "test",
            "database": {"backend": "duckdb"},
            "messaging": {"backend": "memory"},
            "account_limits": {"max_order_value": "100000", "max_daily_orders": 10},
            "signal_sizing": {"method": "fixed_quantity", "quantity": "1", "max_notional": "50"},
            "instruments": [BTC.model_dump()],
        }
    )
    asked = signal(limit_price="600000")  # one step is worth 60, above max_notional 50
    sized = size_signal(asked, config.signal_sizing, BTC, QUOTE, None)
    refused = PreTradeValidator(config).check(sized.request, QUOTE, None, NOW, sizing=sized.denial)
    assert refused is not None
    assert refused.reason == T.DENIAL_REASON_PRICE_OUT_OF_RANGE
    assert "more than the signal max_notional 50" in refused.message


# --- properties ----------------------------------------------------------------------------

_PRICES = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(200000), places=2)
_AMOUNTS = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(10**7), places=2)
_PERCENTS = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(100), places=2)
_CONFIDENCES = st.decimals(min_value=Decimal(0), max_value=Decimal(1), places=3)


@settings(max_examples=300, derandomize=True)
@given(
    method=st.sampled_from(["fixed_quantity", "fixed_notional", "percent_of_equity"]),
    amount=_AMOUNTS,
    percent=_PERCENTS,
    price=_PRICES,
    confidence=_CONFIDENCES,
    max_notional=st.none() | _AMOUNTS,
    max_quantity=st.none() | _AMOUNTS,
    equity=_AMOUNTS,
)
def test_a_size_times_its_price_never_exceeds_the_notional_or_the_caps(
    method: str,
    amount: Decimal,
    percent: Decimal,
    price: Decimal,
    confidence: Decimal,
    max_notional: Decimal | None,
    max_quantity: Decimal | None,
    equity: Decimal,
) -> None:
    policy = sizing(
        method=method,
        quantity=amount,
        notional=amount,
        percent_of_equity=percent,
        max_notional=max_notional,
        max_quantity=max_quantity,
    )
    size = signal_quantity(policy, BTC, price, confidence=confidence, equity=equity)
    if isinstance(size, Denial):
        assert size.reason == T.DENIAL_REASON_QUANTITY_NOT_POSITIVE
        return
    assert size > 0 and is_multiple(size, BTC.step_size)
    value = size * price
    if max_notional is not None:
        assert value <= max_notional
    if max_quantity is not None:
        assert size <= max_quantity
    if method == "fixed_notional":
        assert value <= amount * confidence
    if method == "percent_of_equity":
        assert value <= equity * percent / 100 * confidence
    if method == "fixed_quantity":
        assert size <= amount * confidence


@settings(max_examples=300, derandomize=True)
@given(
    equity=_AMOUNTS,
    risk=_PERCENTS,
    entry=_PRICES,
    distance=st.decimals(min_value=Decimal("0.01"), max_value=Decimal(1000), places=3),
    confidence=_CONFIDENCES,
    side=st.sampled_from([BUY, SELL]),
)
def test_risk_per_trade_never_loses_more_than_the_risk_at_the_stop(
    equity: Decimal,
    risk: Decimal,
    entry: Decimal,
    distance: Decimal,
    confidence: Decimal,
    side: int,
) -> None:
    asked = signal(
        side=side,
        limit_price=str(entry),
        stop_loss=at_distance(str(distance)),
        confidence=str(confidence),
    )
    policy = sizing(method="risk_per_trade", risk_percent=risk)
    sized = size_signal(asked, policy, BTC, QUOTE, equity)
    if sized.denial is not None:
        assert sized.denial.reason in SIZING_REASONS
        return
    order = sized.request
    assert order.exits is not None and order.exits.stop_loss_trigger is not None
    stop = order.exits.stop_loss_trigger
    # The entry fills at its limit or better, so this is the most a unit loses at the stop.
    loss = order.quantity * (entry - stop if side == BUY else stop - entry)
    assert 0 < loss <= equity * risk / 100 * confidence
