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
from trading.v1 import orders_pb2, types_pb2
from trading_core.config import OrderDefaults, PlatformConfig, SignalSizing
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
) -> tuple[DenialReason, str] | None:
    denial = PreTradeValidator(CONFIG).check(request, quote, activity or AccountActivity(), NOW)
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
    every_reason = set(types_pb2.DenialReason.values()) - {types_pb2.DENIAL_REASON_UNSPECIFIED}
    assert {case.reason for case in DENIAL_CASES} == every_reason


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
    parsed = parse_submit_order(submit_order(), DEFAULTS)
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
        parse_submit_order(submit_order(**changes), DEFAULTS)
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
    parse_submit_order(submit_order(**changes), DEFAULTS)


def test_unspecified_order_type_and_time_in_force_take_the_defaults() -> None:
    unspecified = submit_order(
        order_type=types_pb2.ORDER_TYPE_UNSPECIFIED,
        time_in_force=types_pb2.TIME_IN_FORCE_UNSPECIFIED,
        limit_price="",
    )
    market_gtc = parse_submit_order(unspecified, OrderDefaults())
    assert market_gtc.order_type == types_pb2.ORDER_TYPE_MARKET
    assert market_gtc.time_in_force == types_pb2.TIME_IN_FORCE_GTC
    assert market_gtc.limit_price is None

    priced = submit_order(
        order_type=types_pb2.ORDER_TYPE_UNSPECIFIED,
        time_in_force=types_pb2.TIME_IN_FORCE_UNSPECIFIED,
    )
    limit_ioc = parse_submit_order(
        priced, OrderDefaults(default_order_type="limit", time_in_force="ioc")
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
    parsed = parse_submit_signal(
        submit_signal(), Decimal("0.0166"), "sig-1", OrderDefaults(time_in_force="ioc")
    )
    assert parsed.order_type == types_pb2.ORDER_TYPE_MARKET
    assert parsed.time_in_force == types_pb2.TIME_IN_FORCE_IOC
    assert (parsed.quantity, parsed.limit_price, parsed.signal_id) == (
        Decimal("0.0166"),
        None,
        "sig-1",
    )
    assert parsed.side == types_pb2.SIDE_SELL


def test_signal_with_price_becomes_a_limit_order() -> None:
    parsed = parse_submit_signal(submit_signal(limit_price="59000"), Decimal(1), "sig-1", DEFAULTS)
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
        parse_submit_signal(submit_signal(**changes), Decimal(1), signal_id, DEFAULTS)
    assert raised.value.field == field_name


def test_fixed_quantity_sizing_trades_the_configured_quantity() -> None:
    sizing = SignalSizing(method="fixed_quantity", quantity=Decimal("0.25"))
    assert size_signal(sizing, BTC, Decimal(60000)) == Decimal("0.25")


@pytest.mark.parametrize(
    ("notional", "price", "expected"),
    [
        ("1000", "60000", "0.0166"),  # 0.016666... rounded down to the 0.0001 step
        ("600", "60000", "0.01"),  # exactly on a step
        ("1000", "59999.99", "0.0166"),
        ("5", "60000", "0"),  # less than one step: the validator denies it
        ("1000", "0", "0"),  # no meaningful size without a positive price
    ],
)
def test_fixed_notional_sizing_rounds_down_to_the_instrument_step(
    notional: str, price: str, expected: str
) -> None:
    sizing = SignalSizing(method="fixed_notional", notional=Decimal(notional))
    assert size_signal(sizing, BTC, Decimal(price)) == Decimal(expected)


def test_sized_signal_below_one_step_is_denied_as_not_positive() -> None:
    sizing = SignalSizing(method="fixed_notional", notional=Decimal(5))
    quantity = size_signal(sizing, BTC, QUOTE.ask)
    denial = check(order_request(quantity=quantity))
    assert denial is not None
    assert denial[0] == types_pb2.DENIAL_REASON_QUANTITY_NOT_POSITIVE
