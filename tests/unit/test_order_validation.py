"""Pre-trade validation: malformed requests, rule breaches with their reason codes, sizing."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from order_management.domain import (
    AccountActivity,
    DenialReason,
    InvalidRequest,
    OrderRequest,
    PreTradeValidator,
    parse_submit_order,
    parse_submit_signal,
    size_signal,
)
from order_management.domain.sizing import signal_quantity
from order_management.domain.validation import Denial, valuation_price
from trading.v1 import orders_pb2, types_pb2
from trading_core.config import OrderDefaults, PlatformConfig
from trading_core.quotes import Quote

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def platform_config(**overrides: Any) -> PlatformConfig:
    document: dict[str, Any] = {
        "environment": "test",
        "database": {"backend": "duckdb", "path": "data"},
        "messaging": {"backend": "memory"},
        "account_limits": {
            "max_order_value": "100000",
            "max_daily_orders": 3,
            "min_order_size": "0.001",
        },
        "order_defaults": {"rate_limit_orders": 2, "rate_limit_window_ms": 1000},
        "instruments": [
            {
                "symbol": "BTC-USD",
                "tick_size": "0.01",
                "step_size": "0.0001",
                "min_notional": "10",
                "initial_price": "60000",
            }
        ],
    }
    return PlatformConfig.model_validate(document | overrides)


CONFIG = platform_config()
BTC = CONFIG.instruments[0]
QUOTE = Quote("BTC-USD", Decimal(59990), Decimal(60010), Decimal(1), Decimal(1), NOW)


def order_request(**changes: Any) -> OrderRequest:
    """A market buy of 0.01 BTC-USD that passes every check against QUOTE."""
    base = OrderRequest(
        request_id="req-1",
        client_order_id="cl-1",
        account_id="acc-1",
        strategy_id="strat-1",
        signal_id="",
        instrument="BTC-USD",
        side=types_pb2.SIDE_BUY,
        order_type=types_pb2.ORDER_TYPE_MARKET,
        time_in_force=types_pb2.TIME_IN_FORCE_GTC,
        quantity=Decimal("0.01"),
        limit_price=None,
    )
    return replace(base, **changes)


def limit(price: str, **changes: Any) -> OrderRequest:
    return order_request(
        order_type=types_pb2.ORDER_TYPE_LIMIT, limit_price=Decimal(price), **changes
    )


def activity_with(*ages: timedelta, account_id: str = "acc-1") -> AccountActivity:
    activity = AccountActivity()
    for age in ages:
        activity.record(account_id, NOW - age)
    return activity


def check(
    request: OrderRequest,
    quote: Quote | None = QUOTE,
    activity: AccountActivity | None = None,
    sizing: Denial | None = None,
) -> tuple[DenialReason, str] | None:
    validator = PreTradeValidator(CONFIG)
    denial = validator.check(request, quote, activity or AccountActivity(), NOW, sizing=sizing)
    return None if denial is None else (denial.reason, denial.message)


# --- rule breaches -------------------------------------------------------------------------


@dataclass(frozen=True)
class DenialCase:
    reason: DenialReason
    request: OrderRequest
    message: str
    quote: Quote | None = QUOTE
    prior_order_ages: tuple[timedelta, ...] = field(default_factory=tuple)


HOURS = (timedelta(hours=3), timedelta(hours=2), timedelta(hours=1))
DENIAL_CASES = [
    DenialCase(
        types_pb2.DENIAL_REASON_INSTRUMENT_NOT_CONFIGURED,
        order_request(instrument="DOGE-USD"),
        "instrument 'DOGE-USD' is not configured; configured instruments: BTC-USD",
    ),
    DenialCase(
        types_pb2.DENIAL_REASON_QUANTITY_NOT_POSITIVE,
        order_request(quantity=Decimal(0)),
        "quantity 0 must be greater than zero",
    ),
    DenialCase(
        types_pb2.DENIAL_REASON_QUANTITY_NOT_POSITIVE,
        order_request(quantity=Decimal(-1)),
        "quantity -1 must be greater than zero",
    ),
    DenialCase(
        types_pb2.DENIAL_REASON_QUANTITY_NOT_ON_STEP,
        order_request(quantity=Decimal("0.00015")),
        "quantity 0.00015 is not a multiple of the step size 0.0001 for BTC-USD",
    ),
    DenialCase(
        types_pb2.DENIAL_REASON_PRICE_NOT_POSITIVE,
        limit("0"),
        "limit price 0 must be greater than zero",
    ),
    DenialCase(
        types_pb2.DENIAL_REASON_PRICE_NOT_ON_TICK,
        limit("60000.005"),
        "limit price 60000.005 is not a multiple of the tick size 0.01 for BTC-USD",
    ),
    DenialCase(
        types_pb2.DENIAL_REASON_PRICE_OUT_OF_RANGE,
        limit("1000000000.01"),
        "limit price 1000000000.01 is out of range for BTC-USD: one step (0.0001) at that price "
        "is worth 100000.000001, more than the maximum order value 100000",
    ),
    DenialCase(
        types_pb2.DENIAL_REASON_BELOW_MIN_ORDER_SIZE,
        order_request(quantity=Decimal("0.0009")),
        "quantity 0.0009 is below the minimum order size 0.001",
    ),
    DenialCase(
        types_pb2.DENIAL_REASON_NO_MARKET_DATA,
        order_request(),
        "no ask price for BTC-USD",
        quote=None,
    ),
    DenialCase(
        types_pb2.DENIAL_REASON_NO_MARKET_DATA,
        order_request(side=types_pb2.SIDE_SELL),
        "no bid price for BTC-USD",
        quote=replace(QUOTE, bid=Decimal(0)),
    ),
    DenialCase(
        types_pb2.DENIAL_REASON_BELOW_MIN_NOTIONAL,
        limit("9000", quantity=Decimal("0.001")),
        "order value 9 (quantity 0.001 at 9000) is below the minimum notional 10 for BTC-USD",
    ),
    DenialCase(
        types_pb2.DENIAL_REASON_ORDER_VALUE_EXCEEDS_LIMIT,
        order_request(quantity=Decimal(2)),
        "order value 120020 (quantity 2 at 60010) exceeds the maximum order value 100000",
    ),
    DenialCase(
        types_pb2.DENIAL_REASON_DAILY_ORDER_LIMIT_EXCEEDED,
        order_request(),
        "account acc-1 has reached its limit of 3 orders for 2024-05-01 (UTC)",
        prior_order_ages=HOURS,
    ),
    DenialCase(
        types_pb2.DENIAL_REASON_RATE_LIMIT_EXCEEDED,
        order_request(),
        "account acc-1 has reached its rate limit of 2 orders per 1000 ms",
        prior_order_ages=(timedelta(milliseconds=900), timedelta(milliseconds=10)),
    ),
]


def case_id(case: DenialCase) -> str:
    return types_pb2.DenialReason.Name(case.reason).removeprefix("DENIAL_REASON_").lower()


@pytest.mark.parametrize("case", DENIAL_CASES, ids=case_id)
def test_rule_breach_is_denied_with_its_reason_and_a_message_naming_the_values(
    case: DenialCase,
) -> None:
    denial = check(case.request, case.quote, activity_with(*case.prior_order_ages))
    assert denial is not None
    reason, message = denial
    assert types_pb2.DenialReason.Name(reason) == types_pb2.DenialReason.Name(case.reason)
    assert message.startswith(case.message)


def test_every_denial_reason_has_a_case_that_produces_it() -> None:
    """Here for the validator's reasons, in test_risk for the risk engine's, in
    test_trading_control for the trading gate's, in test_order_types for a bracket's exits,
    in test_sizing for a signal's sizing."""
    from tests.unit.test_account import EQUITY_REASONS
    from tests.unit.test_order_types import EXIT_REASONS
    from tests.unit.test_risk import RISK_REASONS, STATUS_REASONS
    from tests.unit.test_sizing import SIZING_REASONS
    from tests.unit.test_trading_control import TRADING_REASONS

    every_reason = set(types_pb2.DenialReason.values()) - {types_pb2.DENIAL_REASON_UNSPECIFIED}
    produced = {case.reason for case in DENIAL_CASES} | RISK_REASONS | TRADING_REASONS
    reasons = produced | EXIT_REASONS | EQUITY_REASONS | SIZING_REASONS | STATUS_REASONS
    assert reasons == every_reason


@pytest.mark.parametrize(
    "request_",
    [order_request(), limit("60000"), limit("60000", side=types_pb2.SIDE_SELL)],
    ids=["market", "limit buy", "limit sell"],
)
def test_order_within_every_rule_is_not_denied(request_: OrderRequest) -> None:
    assert check(request_) is None


def test_limit_order_needs_no_market_data() -> None:
    assert check(limit("60000"), quote=None) is None


def test_market_sell_is_valued_at_the_bid_and_market_buy_at_the_ask() -> None:
    thin_bid = replace(QUOTE, bid=Decimal(900))
    sell = order_request(side=types_pb2.SIDE_SELL, quantity=Decimal("0.01"))
    assert check(order_request(), quote=thin_bid) is None
    denial = check(sell, quote=thin_bid)
    assert denial is not None
    assert denial[0] == types_pb2.DENIAL_REASON_BELOW_MIN_NOTIONAL
    assert "at 900)" in denial[1]


def test_first_broken_rule_in_check_order_is_reported() -> None:
    off_step_and_too_big = order_request(quantity=Decimal("5.00005"))
    denial = check(off_step_and_too_big, quote=None)
    assert denial is not None
    assert denial[0] == types_pb2.DENIAL_REASON_QUANTITY_NOT_ON_STEP


def test_limits_count_only_the_orders_of_the_same_account() -> None:
    other_account = activity_with(*HOURS, account_id="acc-2")
    assert check(order_request(), activity=other_account) is None


def test_orders_older_than_the_rate_window_do_not_count_toward_the_rate_limit() -> None:
    activity = activity_with(timedelta(milliseconds=1000), timedelta(milliseconds=10))
    assert check(order_request(), activity=activity) is None


def test_validator_does_not_record_the_order_it_checks() -> None:
    activity = AccountActivity()
    check(order_request(), activity=activity)
    assert activity.orders_on_day("acc-1", NOW) == 0


# --- account activity ----------------------------------------------------------------------


def test_orders_on_day_counts_the_utc_day_of_now_only() -> None:
    midnight = datetime(2024, 5, 1, tzinfo=UTC)
    activity = AccountActivity()
    activity.record("acc-1", midnight - timedelta(seconds=1))
    activity.record("acc-1", midnight)
    activity.record("acc-1", midnight + timedelta(hours=23, minutes=59))
    assert activity.orders_on_day("acc-1", NOW) == 2
    # 01:30 at UTC+2 is still 30 April in UTC.
    east = datetime(2024, 5, 1, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    assert activity.orders_on_day("acc-1", east) == 1


def test_orders_in_window_spans_midnight() -> None:
    midnight = datetime(2024, 5, 1, tzinfo=UTC)
    activity = AccountActivity()
    activity.record("acc-1", midnight - timedelta(milliseconds=500))
    window = timedelta(seconds=1)
    assert activity.orders_in_window("acc-1", midnight + timedelta(milliseconds=400), window) == 1
    assert activity.orders_on_day("acc-1", midnight) == 0


def test_recording_prunes_entries_older_than_the_retention() -> None:
    activity = AccountActivity()
    activity.record("acc-1", NOW - timedelta(days=2))
    activity.record("acc-1", NOW)
    assert activity.orders_in_window("acc-1", NOW, timedelta(days=1)) == 1
    assert activity.orders_on_day("acc-1", NOW - timedelta(days=2)) == 0


def test_window_longer_than_the_retention_is_refused() -> None:
    with pytest.raises(ValueError, match="longer than the retention"):
        AccountActivity().orders_in_window("acc-1", NOW, timedelta(days=2))


def test_retention_shorter_than_a_day_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one day"):
        AccountActivity(retention=timedelta(hours=1))


# --- parsing SubmitOrder ------------------------------------------------------------------

DEFAULTS = OrderDefaults()


def submit_order(**changes: Any) -> orders_pb2.SubmitOrderRequest:
    fields: dict[str, Any] = {
        "request_id": "req-1",
        "client_order_id": "cl-1",
        "account_id": "acc-1",
        "strategy_id": "strat-1",
        "instrument": "BTC-USD",
        "side": types_pb2.SIDE_BUY,
        "order_type": types_pb2.ORDER_TYPE_LIMIT,
        "time_in_force": types_pb2.TIME_IN_FORCE_IOC,
        "quantity": "0.5",
        "limit_price": "60000.5",
    } | changes
    return orders_pb2.SubmitOrderRequest(**fields)


def test_well_formed_submit_order_becomes_an_order_request() -> None:
    parsed = parse_submit_order(submit_order(), DEFAULTS, NOW)
    assert parsed == OrderRequest(
        request_id="req-1",
        client_order_id="cl-1",
        account_id="acc-1",
        strategy_id="strat-1",
        signal_id="",
        instrument="BTC-USD",
        side=types_pb2.SIDE_BUY,
        order_type=types_pb2.ORDER_TYPE_LIMIT,
        time_in_force=types_pb2.TIME_IN_FORCE_IOC,
        quantity=Decimal("0.5"),
        limit_price=Decimal("60000.5"),
    )


MALFORMED = [
    ("request_id", {"request_id": ""}, "request_id is required"),
    ("request_id", {"request_id": "r" * 129}, "at most 128 characters, got 129"),
    ("client_order_id", {"client_order_id": ""}, "client_order_id is required"),
    ("client_order_id", {"client_order_id": "cl\x00"}, "printable"),
    ("account_id", {"account_id": ""}, "account_id is required"),
    ("account_id", {"account_id": "acc\n1"}, "printable"),
    ("strategy_id", {"strategy_id": "s" * 200}, "at most 128 characters"),
    ("instrument", {"instrument": ""}, "instrument is required"),
    ("side", {"side": types_pb2.SIDE_UNSPECIFIED}, "side is required"),
    ("side", {"side": 7}, "side 7 is not known"),
    ("order_type", {"order_type": 9}, "order_type 9 is not known"),
    ("time_in_force", {"time_in_force": 9}, "time_in_force 9 is not known"),
    ("quantity", {"quantity": ""}, "quantity is required"),
    ("quantity", {"quantity": "lots"}, "decimal string"),
    ("quantity", {"quantity": "NaN"}, "finite"),
    ("quantity", {"quantity": "1e20"}, "out of range"),
    ("limit_price", {"limit_price": ""}, "required for a limit order"),
    ("limit_price", {"limit_price": "1,5"}, "decimal string"),
    (
        "limit_price",
        {"order_type": types_pb2.ORDER_TYPE_MARKET},
        "must be empty for a market order",
    ),
]


@pytest.mark.parametrize(
    ("field_name", "changes", "message"), MALFORMED, ids=[f"{m[0]}-{m[2]}" for m in MALFORMED]
)
def test_malformed_submit_order_raises_invalid_request_naming_the_field(
    field_name: str, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message) as raised:
        parse_submit_order(submit_order(**changes), DEFAULTS, NOW)
    assert raised.value.field == field_name
    assert isinstance(raised.value, ValueError)


@pytest.mark.parametrize(
    "changes",
    [{"quantity": "0"}, {"quantity": "-3"}, {"quantity": "0.00001"}, {"instrument": "XYZ"}],
    ids=["zero", "negative", "off-step", "unknown instrument"],
)
def test_well_formed_rule_breach_passes_parsing_for_the_validator_to_deny(
    changes: dict[str, Any],
) -> None:
    parse_submit_order(submit_order(**changes), DEFAULTS, NOW)


def test_unspecified_order_type_and_time_in_force_take_the_defaults() -> None:
    unspecified = submit_order(
        order_type=types_pb2.ORDER_TYPE_UNSPECIFIED,
        time_in_force=types_pb2.TIME_IN_FORCE_UNSPECIFIED,
        limit_price="",
    )
    market_gtc = parse_submit_order(unspecified, OrderDefaults(), NOW)
    assert market_gtc.order_type == types_pb2.ORDER_TYPE_MARKET
    assert market_gtc.time_in_force == types_pb2.TIME_IN_FORCE_GTC
    assert market_gtc.limit_price is None

    priced = submit_order(
        order_type=types_pb2.ORDER_TYPE_UNSPECIFIED,
        time_in_force=types_pb2.TIME_IN_FORCE_UNSPECIFIED,
    )
    limit_ioc = parse_submit_order(
        priced, OrderDefaults(default_order_type="limit", time_in_force="ioc"), NOW
    )
    assert limit_ioc.order_type == types_pb2.ORDER_TYPE_LIMIT
    assert limit_ioc.time_in_force == types_pb2.TIME_IN_FORCE_IOC


# --- signals -------------------------------------------------------------------------------


def submit_signal(**changes: Any) -> orders_pb2.SubmitSignalRequest:
    fields: dict[str, Any] = {
        "request_id": "req-1",
        "client_order_id": "cl-1",
        "account_id": "acc-1",
        "strategy_id": "strat-1",
        "instrument": "BTC-USD",
        "side": types_pb2.SIDE_SELL,
    } | changes
    return orders_pb2.SubmitSignalRequest(**fields)


def test_signal_without_price_becomes_a_market_order_with_default_time_in_force() -> None:
    signal = parse_submit_signal(submit_signal(), "sig-1", OrderDefaults(time_in_force="ioc"))
    parsed = signal.order
    assert parsed.order_type == types_pb2.ORDER_TYPE_MARKET
    assert parsed.time_in_force == types_pb2.TIME_IN_FORCE_IOC
    assert (parsed.quantity, parsed.limit_price, parsed.signal_id) == (Decimal(0), None, "sig-1")
    assert parsed.side == types_pb2.SIDE_SELL
    assert (parsed.order_class, parsed.exits) == (types_pb2.ORDER_CLASS_UNSPECIFIED, None)
    assert (signal.confidence, signal.take_profit, signal.stop_loss) == (Decimal(1), None, None)


def test_signal_with_price_becomes_a_limit_order() -> None:
    parsed = parse_submit_signal(submit_signal(limit_price="59000"), "sig-1", DEFAULTS).order
    assert parsed.order_type == types_pb2.ORDER_TYPE_LIMIT
    assert parsed.limit_price == Decimal(59000)


@pytest.mark.parametrize(
    ("field_name", "changes", "signal_id"),
    [
        ("request_id", {"request_id": ""}, "sig-1"),
        ("account_id", {"account_id": "a" * 129}, "sig-1"),
        ("side", {"side": types_pb2.SIDE_UNSPECIFIED}, "sig-1"),
        ("limit_price", {"limit_price": "cheap"}, "sig-1"),
        ("signal_id", {}, ""),
    ],
)
def test_malformed_signal_raises_invalid_request_naming_the_field(
    field_name: str, changes: dict[str, Any], signal_id: str
) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_submit_signal(submit_signal(**changes), signal_id, DEFAULTS)
    assert raised.value.field == field_name


def test_signal_sized_to_nothing_is_denied_by_the_validator_for_its_sizing() -> None:
    sizing = CONFIG.signal_sizing.model_copy(update={"notional": Decimal(5)})
    signal = parse_submit_signal(submit_signal(side=types_pb2.SIDE_BUY), "sig-1", DEFAULTS)
    sized = size_signal(signal, sizing, BTC, QUOTE, None)
    denial = check(sized.request, sizing=sized.denial)
    assert denial is not None
    assert denial[0] == types_pb2.DENIAL_REASON_QUANTITY_NOT_POSITIVE
    assert denial[1].startswith("the signal sizes to nothing: notional 5 at 60010")


# --- order value at the price the order may trade at (A12) ----------------------------------

MARKET_NEAR_59000 = replace(QUOTE, bid=Decimal(59000), ask=Decimal("59000.02"))


def test_sell_limit_far_below_the_market_is_valued_at_the_bid_and_denied_over_the_limit() -> None:
    # Accepted before (judged at 0.01: worth 10), then filled 1000 at the bid: about 59 million.
    sell = limit("0.01", side=types_pb2.SIDE_SELL, quantity=Decimal(1000))
    denial = check(sell, quote=MARKET_NEAR_59000)
    assert denial == (
        types_pb2.DENIAL_REASON_ORDER_VALUE_EXCEEDS_LIMIT,
        "order value 59000000 (quantity 1000 at 59000) exceeds the maximum order value 100000",
    )


def test_small_sell_limit_below_the_bid_is_valued_at_the_bid_and_accepted() -> None:
    sell = limit("0.01", side=types_pb2.SIDE_SELL, quantity=Decimal("0.01"))
    assert check(sell, quote=MARKET_NEAR_59000) is None


def test_sell_limit_above_the_bid_is_valued_at_its_limit() -> None:
    sell = limit("70000", side=types_pb2.SIDE_SELL, quantity=Decimal("1.5"))
    denial = check(sell, quote=MARKET_NEAR_59000)
    assert denial is not None
    assert "(quantity 1.5 at 70000) exceeds" in denial[1]


def test_buy_limit_is_valued_at_its_limit_which_it_never_pays_more_than() -> None:
    above_the_ask = limit("70000", quantity=Decimal("1.5"))
    below_the_ask = limit("50000", quantity=Decimal("1.9"))  # 1.9 at the ask would be 112,000
    denial = check(above_the_ask, quote=MARKET_NEAR_59000)
    assert denial is not None
    assert denial[0] == types_pb2.DENIAL_REASON_ORDER_VALUE_EXCEEDS_LIMIT
    assert "at 70000)" in denial[1]
    assert check(below_the_ask, quote=MARKET_NEAR_59000) is None


@pytest.mark.parametrize(
    "quote", [None, replace(QUOTE, bid=Decimal(0))], ids=["no quote", "no bid"]
)
def test_sell_limit_without_a_bid_is_valued_at_its_limit(quote: Quote | None) -> None:
    sell = limit("0.01", side=types_pb2.SIDE_SELL, quantity=Decimal(1000))
    assert check(sell, quote=quote) is None  # worth 10: nothing better is known


@pytest.mark.parametrize(
    ("side", "limit_price", "expected"),
    [
        (types_pb2.SIDE_SELL, "0.01", "59000"),
        (types_pb2.SIDE_SELL, "70000", "70000"),
        (types_pb2.SIDE_BUY, "70000", "70000"),
        (types_pb2.SIDE_BUY, "50000", "50000"),
        (types_pb2.SIDE_BUY, None, "59000.02"),
        (types_pb2.SIDE_SELL, None, "59000"),
    ],
)
def test_valuation_price_is_the_highest_price_the_order_may_trade_at(
    side: types_pb2.Side.ValueType, limit_price: str | None, expected: str
) -> None:
    request = order_request(
        side=side, limit_price=None if limit_price is None else Decimal(limit_price)
    )
    assert valuation_price(request, MARKET_NEAR_59000) == Decimal(expected)


def test_market_order_has_no_valuation_price_without_a_touch() -> None:
    assert valuation_price(order_request(), None) is None


def test_sell_signal_far_below_the_market_is_sized_at_the_bid_not_oversized() -> None:
    # Sized at its limit of 0.01, 1000 of notional would be 100,000 BTC.
    signal = limit("0.01", side=types_pb2.SIDE_SELL, quantity=Decimal(0), signal_id="sig-1")
    price = valuation_price(signal, MARKET_NEAR_59000)
    assert price == Decimal(59000)
    quantity = signal_quantity(CONFIG.signal_sizing, BTC, price)
    assert isinstance(quantity, Decimal)
    assert quantity == Decimal("0.0169")  # 1000 / 59000 = 0.016949..., down to the step
    assert check(replace(signal, quantity=quantity), quote=MARKET_NEAR_59000) is None


# --- signals priced badly (B1, B5) -----------------------------------------------------------


@pytest.mark.parametrize("price", ["0.0000000000000000000000000001", "1e-999", "1e-99999"])
def test_signal_with_a_price_beyond_the_wire_range_is_invalid_argument_naming_limit_price(
    price: str,
) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_submit_signal(submit_signal(limit_price=price), "sig-1", DEFAULTS)
    assert raised.value.field == "limit_price"


def signal_decision(price: str) -> tuple[DenialReason, str] | None:
    """The decision on a signal sized at its limit price, as order-management takes it."""
    signal = parse_submit_signal(submit_signal(limit_price=price), "sig-1", DEFAULTS)
    sized = size_signal(signal, CONFIG.signal_sizing, BTC, None, None)
    return check(sized.request, sizing=sized.denial)


@pytest.mark.parametrize("price", ["-5", "0"])
def test_signal_priced_at_or_below_zero_is_denied_for_its_price(price: str) -> None:
    decision = signal_decision(price)
    assert decision is not None
    assert decision[0] == types_pb2.DENIAL_REASON_PRICE_NOT_POSITIVE
    assert decision[1] == f"limit price {price} must be greater than zero"


@pytest.mark.parametrize(("price", "worth"), [("1e14", "10000000000"), ("100000000", "10000")])
def test_signal_priced_too_high_to_buy_one_step_is_denied_price_out_of_range(
    price: str, worth: str
) -> None:
    decision = signal_decision(price)
    assert decision is not None
    assert decision[0] == types_pb2.DENIAL_REASON_PRICE_OUT_OF_RANGE
    assert (
        f"one step (0.0001) at that price is worth {worth}, more than the signal notional 1000"
        in (decision[1])
    )


def test_signal_priced_within_range_is_not_denied_for_its_price() -> None:
    assert signal_decision("60000") is None


# --- bad input never becomes an order, and messages stay short (B2, B3, B6, B8) --------------


@pytest.mark.parametrize(
    "quantity",
    [
        "1e-999999",
        "1e-10000000",
        "1e-999",
        "1_0",
        "\uff11\uff10",  # full-width 10
        "\u0661\u0660",  # Arabic-Indic 10
        "+1",
        "1 0",
        "Infinity",
        "1234567890123456789012345678901234",  # 34 digits
        "1" * 1000,
    ],
)
def test_quantity_outside_the_wire_grammar_is_invalid_argument_naming_the_field(
    quantity: str,
) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_submit_order(submit_order(quantity=quantity), DEFAULTS, NOW)
    assert raised.value.field == "quantity"
    assert str(raised.value).startswith("quantity ")
    assert len(str(raised.value)) < 250


@pytest.mark.parametrize(
    "field_name", ["request_id", "client_order_id", "account_id", "instrument"]
)
def test_blank_id_is_invalid_argument_as_required(field_name: str) -> None:
    with pytest.raises(InvalidRequest, match=f"{field_name} is required") as raised:
        parse_submit_order(submit_order(**{field_name: "   "}), DEFAULTS, NOW)
    assert raised.value.field == field_name
    with pytest.raises(InvalidRequest, match=f"{field_name} is required"):
        parse_submit_signal(submit_signal(**{field_name: " \t "}), "sig-1", DEFAULTS)


def test_blank_signal_id_is_invalid_argument_as_required() -> None:
    with pytest.raises(InvalidRequest, match="signal_id is required"):
        parse_submit_signal(submit_signal(), "  ", DEFAULTS)


@pytest.mark.parametrize(
    ("changes", "field_name"),
    [
        ({"request_id": "r" * 10_000}, "request_id"),
        ({"client_order_id": "c" * 10_000}, "client_order_id"),
        ({"quantity": "9" * 10_000}, "quantity"),
        ({"limit_price": "8" * 10_000}, "limit_price"),
        ({"order_type": types_pb2.ORDER_TYPE_MARKET, "limit_price": "7" * 10_000}, "limit_price"),
    ],
)
def test_message_about_a_huge_value_quotes_at_most_32_characters_of_it(
    changes: dict[str, Any], field_name: str
) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_submit_order(submit_order(**changes), DEFAULTS, NOW)
    assert raised.value.field == field_name
    message = str(raised.value)
    assert len(message) < 250
    assert not any(digit * 33 in message for digit in "rc987")


def test_unconfigured_instrument_is_quoted_cut_short_in_the_denial() -> None:
    denial = check(order_request(instrument="X" * 128))
    assert denial is not None
    assert "X" * 32 + "\N{HORIZONTAL ELLIPSIS}" in denial[1]
    assert "X" * 33 not in denial[1]


def test_unspecified_order_type_with_a_limit_price_is_a_limit_order_as_in_a_signal() -> None:
    priced = submit_order(order_type=types_pb2.ORDER_TYPE_UNSPECIFIED, limit_price="60000.5")
    parsed = parse_submit_order(priced, OrderDefaults(default_order_type="market"), NOW)
    assert parsed.order_type == types_pb2.ORDER_TYPE_LIMIT
    assert parsed.limit_price == Decimal("60000.5")


def test_explicit_market_order_with_a_limit_price_is_still_invalid_argument() -> None:
    with pytest.raises(InvalidRequest, match="must be empty for a market order"):
        parse_submit_order(submit_order(order_type=types_pb2.ORDER_TYPE_MARKET), DEFAULTS, NOW)


def test_quantity_whose_step_count_needs_more_than_28_digits_is_checked_exactly() -> None:
    # 29 steps of 1e-18: `%` in the default context raised (INTERNAL) here.
    wei = {**BTC.model_dump(), "symbol": "ETH-WEI", "step_size": Decimal("1e-18")}
    validator = PreTradeValidator(platform_config(instruments=[wei]))
    on_step = order_request(
        instrument="ETH-WEI", quantity=Decimal("12345678901.000000000000000001")
    )
    off_step = replace(on_step, quantity=Decimal("12345678901.0000000000000000001"))
    reasons = [
        denial.reason if (denial := validator.check(r, None, AccountActivity(), NOW)) else None
        for r in (on_step, off_step)
    ]
    assert reasons == [
        types_pb2.DENIAL_REASON_NO_MARKET_DATA,  # past the step check: a market order, no quote
        types_pb2.DENIAL_REASON_QUANTITY_NOT_ON_STEP,
    ]


def test_33_digit_quantity_is_refused_at_parse_not_echoed_as_1() -> None:
    with pytest.raises(InvalidRequest, match="at most 30 significant digits"):
        parse_submit_order(submit_order(quantity="1" + "0" * 32), DEFAULTS, NOW)
