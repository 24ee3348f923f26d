"""Order types beyond market and limit: parsing (every malformed combination names its field),
the emulator's trigger and trailing rules, a bracket's exits and their price sides, and a held
order's own transitions. Property tests: a trailing stop never loosens; a stop triggers exactly
when its source price reaches its trigger."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given
from hypothesis import strategies as st
from order_management.domain.emulator import (
    exit_price_problem,
    exit_requests,
    reached,
    session_end,
    trailed,
    trigger_source,
)
from order_management.domain.orders import InvalidOrderTransition, Order
from order_management.domain.validation import (
    Denial,
    InvalidRequest,
    parse_submit_order,
)
from trading.v1 import orders_pb2, types_pb2
from trading_core.quotes import Quote

from tests.unit.test_order_validation import DEFAULTS, NOW, submit_order

BUY, SELL = types_pb2.SIDE_BUY, types_pb2.SIDE_SELL
T = types_pb2
TICK = Decimal("0.5")


def quote(bid: str, ask: str, last: str | None = None) -> Quote:
    return Quote(
        "BTC-USD",
        Decimal(bid),
        Decimal(ask),
        bid_size=Decimal(1),
        ask_size=Decimal(1),
        time=NOW,
        last=None if last is None else Decimal(last),
    )


def timestamp_of(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def parse(**changes: Any) -> Any:
    return parse_submit_order(submit_order(**changes), DEFAULTS, NOW)


# --- parsing: every malformed combination names its field -----------------------------------

STOP = {"order_type": T.ORDER_TYPE_STOP_MARKET, "limit_price": "", "trigger_price": "59000"}
TRAILING = {"order_type": T.ORDER_TYPE_TRAILING_STOP_MARKET, "limit_price": ""}
BRACKET = {
    "order_class": T.ORDER_CLASS_BRACKET,
    "take_profit": orders_pb2.TakeProfit(limit_price="61000"),
    "stop_loss": orders_pb2.StopLoss(trigger_price="59000"),
}
MALFORMED = [
    ("trigger_price", STOP | {"trigger_price": ""}, "trigger_price is required for a stop-market"),
    ("trigger_price", {"trigger_price": "1"}, "trigger_price must be empty for a limit order"),
    ("limit_price", STOP | {"limit_price": "1"}, "limit_price must be empty for a stop-market"),
    (
        "limit_price",
        STOP | {"order_type": T.ORDER_TYPE_STOP_LIMIT},
        "limit_price is required for a stop-limit order",
    ),
    ("trailing_offset", TRAILING, "trailing_offset is required for a trailing-stop-market"),
    (
        "trailing_offset",
        TRAILING | {"trailing_offset": "0"},
        "trailing_offset must be greater than zero",
    ),
    (
        "limit_offset",
        TRAILING | {"order_type": T.ORDER_TYPE_TRAILING_STOP_LIMIT, "trailing_offset": "5"},
        "limit_offset is required for a trailing-stop-limit order",
    ),
    ("trigger_type", {"trigger_type": T.TRIGGER_TYPE_MID}, "trigger_type is for stop orders"),
    ("trigger_type", STOP | {"trigger_type": 9}, "trigger_type 9 is not known"),
    ("order_type", {"order_type": 42}, "order_type 42 is not known"),
    ("time_in_force", {"time_in_force": 42}, "time_in_force 42 is not known"),
    (
        "expire_time",
        {"time_in_force": T.TIME_IN_FORCE_GTD},
        "expire_time is required for TIME_IN_FORCE_GTD",
    ),
    (
        "expire_time",
        {"time_in_force": T.TIME_IN_FORCE_GTD, "expire_time": timestamp_of(NOW)},
        "is in the past",
    ),
    (
        "expire_time",
        {"expire_time": timestamp_of(NOW + timedelta(hours=1))},
        "expire_time is for TIME_IN_FORCE_GTD orders only",
    ),
    (
        "post_only",
        {"order_type": T.ORDER_TYPE_MARKET, "limit_price": "", "post_only": True},
        "post_only is for limit orders only: a market order takes",
    ),
    ("post_only", {"post_only": True}, "post_only cannot be IOC or FOK"),
    ("display_quantity", {"display_quantity": "0.6"}, "at most the quantity 0.5"),
    ("display_quantity", {"display_quantity": "0"}, "greater than zero"),
    (
        "display_quantity",
        STOP | {"display_quantity": "0.1"},
        "display_quantity \\(an iceberg\\) is for limit orders only",
    ),
    ("take_profit", {"take_profit": BRACKET["take_profit"]}, "take_profit needs an order_class"),
    (
        "stop_loss",
        {"order_class": T.ORDER_CLASS_BRACKET, "take_profit": BRACKET["take_profit"]},
        "stop_loss is required for this order_class",
    ),
    ("order_type", BRACKET | STOP, "the entry of a bracket or OTO must be a market or limit"),
    ("take_profit", {"order_class": T.ORDER_CLASS_OTO}, "an OTO has one exit"),
    (
        "take_profit",
        BRACKET | {"order_class": T.ORDER_CLASS_OCO},
        "an OCO's take-profit is the order itself",
    ),
    (
        "stop_loss.trigger_price",
        BRACKET | {"stop_loss": orders_pb2.StopLoss(trigger_price="x")},
        "decimal string",
    ),
]


@pytest.mark.parametrize(
    ("field_name", "changes", "message"), MALFORMED, ids=[f"{m[0]}-{m[2]}" for m in MALFORMED]
)
def test_a_malformed_order_of_any_type_raises_invalid_request_naming_the_field(
    field_name: str, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message) as raised:
        parse(**changes)
    assert raised.value.field == field_name


def test_a_bracket_parses_into_an_entry_with_both_exits() -> None:
    parsed = parse(**BRACKET, time_in_force=T.TIME_IN_FORCE_GTC)
    assert parsed.order_class == T.ORDER_CLASS_BRACKET
    assert parsed.exits is not None
    assert parsed.exits.take_profit == Decimal(61000)
    assert parsed.exits.stop_loss_trigger == Decimal(59000)
    assert parsed.exits.stop_loss_limit is None


def test_an_oco_is_reduce_only_and_a_gtd_keeps_its_expiry() -> None:
    expire = NOW + timedelta(hours=2)
    parsed = parse(
        order_class=T.ORDER_CLASS_OCO,
        stop_loss=orders_pb2.StopLoss(trigger_price="59000"),
        time_in_force=T.TIME_IN_FORCE_GTD,
        expire_time=timestamp_of(expire),
    )
    assert parsed.reduce_only
    assert parsed.expire_time == expire


def test_a_trailing_stop_takes_its_offset_and_defaults() -> None:
    parsed = parse(**TRAILING, trailing_offset="25")
    assert parsed.trailing_offset == Decimal(25)
    assert parsed.trailing_offset_type == T.TRAILING_OFFSET_TYPE_PRICE
    assert parsed.trigger_type == T.TRIGGER_TYPE_BID_ASK
    assert parsed.trigger_price is None


# --- triggers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("side", "trigger_type", "expected"),
    [
        (BUY, T.TRIGGER_TYPE_BID_ASK, "101"),
        (SELL, T.TRIGGER_TYPE_BID_ASK, "100"),
        (BUY, T.TRIGGER_TYPE_MID, "100.5"),
        (SELL, T.TRIGGER_TYPE_LAST, "100.25"),
    ],
)
def test_the_trigger_source_is_the_side_it_trades_at_the_mid_or_the_last_trade(
    side: int, trigger_type: int, expected: str
) -> None:
    price = trigger_source(side, trigger_type, quote("100", "101", last="100.25"))  # type: ignore[arg-type]
    assert price == Decimal(expected)


def test_a_last_trigger_waits_for_a_quote_with_a_last_trade() -> None:
    assert trigger_source(SELL, T.TRIGGER_TYPE_LAST, quote("100", "101")) is None


@given(
    st.sampled_from([BUY, SELL]),
    st.decimals(min_value=1, max_value=1000, places=1),
    st.decimals(min_value=1, max_value=1000, places=1),
)
def test_a_stop_triggers_exactly_when_its_source_reaches_its_trigger(
    side: int, trigger: Decimal, price: Decimal
) -> None:
    crossed = price >= trigger if side == BUY else price <= trigger
    assert reached(side, trigger, price) == crossed  # type: ignore[arg-type]


def trailing_order(
    side: int, offset: str, offset_type: int, limit_offset: str | None = None
) -> Order:
    request = parse(
        order_type=(
            T.ORDER_TYPE_TRAILING_STOP_LIMIT if limit_offset else T.ORDER_TYPE_TRAILING_STOP_MARKET
        ),
        limit_price="",
        side=side,
        trailing_offset=offset,
        trailing_offset_type=offset_type,
        limit_offset=limit_offset or "",
    )
    return Order.held(request, "o-1", NOW)


@pytest.mark.parametrize(
    ("side", "offset", "offset_type", "price", "trigger"),
    [
        (SELL, "10", T.TRAILING_OFFSET_TYPE_PRICE, "1000", "990"),
        (SELL, "25", T.TRAILING_OFFSET_TYPE_BASIS_POINTS, "1000", "997.5"),
        (SELL, "4", T.TRAILING_OFFSET_TYPE_TICKS, "1000", "998"),
        (BUY, "10", T.TRAILING_OFFSET_TYPE_PRICE, "1000", "1010"),
        (SELL, "0.3", T.TRAILING_OFFSET_TYPE_PRICE, "1000", "999.5"),  # away from the market
        (BUY, "0.3", T.TRAILING_OFFSET_TYPE_PRICE, "1000", "1000.5"),
    ],
)
def test_a_trailing_trigger_sits_its_offset_away_rounded_to_the_tick_away_from_the_market(
    side: int, offset: str, offset_type: int, price: str, trigger: str
) -> None:
    moved = trailed(trailing_order(side, offset, offset_type), Decimal(price), TICK)
    assert moved == (Decimal(trigger), None)


def test_a_trailing_stop_limit_keeps_its_limit_the_limit_offset_beyond_the_trigger() -> None:
    order = trailing_order(SELL, "10", T.TRAILING_OFFSET_TYPE_PRICE, limit_offset="2")
    assert trailed(order, Decimal(1000), TICK) == (Decimal(990), Decimal(988))
    buy = trailing_order(BUY, "10", T.TRAILING_OFFSET_TYPE_PRICE, limit_offset="2")
    assert trailed(buy, Decimal(1000), TICK) == (Decimal(1010), Decimal(1012))


@given(
    st.sampled_from([BUY, SELL]),
    st.sampled_from(
        [
            T.TRAILING_OFFSET_TYPE_PRICE,
            T.TRAILING_OFFSET_TYPE_BASIS_POINTS,
            T.TRAILING_OFFSET_TYPE_TICKS,
        ]
    ),
    st.lists(st.decimals(min_value=1, max_value=2000, places=2), min_size=1, max_size=40),
)
def test_a_trailing_stop_never_loosens(side: int, offset_type: int, prices: list[Decimal]) -> None:
    order = trailing_order(side, "7", offset_type)
    triggers = []
    for version, price in enumerate(prices, start=2):
        moved = trailed(order, price, TICK)
        if moved is not None:
            order.amend(version, NOW, trigger_price=moved[0])
            triggers.append(moved[0])
    tightening = sorted(triggers) if side == SELL else sorted(triggers, reverse=True)
    assert triggers == tightening
    assert len(set(triggers)) == len(triggers)  # each move is a real one


def test_a_day_order_expires_at_the_next_session_end() -> None:
    assert session_end(NOW, time(0, 0)) == datetime(2024, 5, 2, tzinfo=UTC)
    assert session_end(NOW, time(21, 0)) == datetime(2024, 5, 1, 21, tzinfo=UTC)
    assert session_end(datetime(2024, 5, 1, 21, tzinfo=UTC), time(21, 0)) == datetime(
        2024, 5, 2, 21, tzinfo=UTC
    )


# --- brackets -----------------------------------------------------------------------------


def test_a_brackets_exits_are_reduce_only_gtc_on_the_other_side_for_the_entrys_quantity() -> None:
    stop_limit = orders_pb2.StopLoss(trigger_price="59000", limit_price="58900")
    entry = parse(**(BRACKET | {"stop_loss": stop_limit, "time_in_force": T.TIME_IN_FORCE_DAY}))
    (tp_role, take_profit), (sl_role, stop_loss) = exit_requests(entry)
    assert (tp_role, sl_role) == (T.ORDER_ROLE_TAKE_PROFIT, T.ORDER_ROLE_STOP_LOSS)
    for leg in (take_profit, stop_loss):
        assert (leg.side, leg.reduce_only, leg.quantity) == (SELL, True, entry.quantity)
        assert leg.time_in_force == T.TIME_IN_FORCE_GTC
        assert leg.exits is None
    assert (take_profit.order_type, take_profit.limit_price) == (
        T.ORDER_TYPE_LIMIT,
        Decimal(61000),
    )
    assert (stop_loss.order_type, stop_loss.trigger_price, stop_loss.limit_price) == (
        T.ORDER_TYPE_STOP_LIMIT,
        Decimal(59000),
        Decimal(58900),
    )


def test_an_ocos_only_exit_is_its_stop_loss_on_the_orders_own_side() -> None:
    oco = parse(
        side=SELL,
        order_class=T.ORDER_CLASS_OCO,
        stop_loss=orders_pb2.StopLoss(trigger_price="59000"),
    )
    ((role, stop_loss),) = exit_requests(oco)
    assert (role, stop_loss.side, stop_loss.order_type) == (
        T.ORDER_ROLE_STOP_LOSS,
        SELL,
        T.ORDER_TYPE_STOP_MARKET,
    )


# The reason the exit checks produce (the test below asserts it for every case).
EXIT_REASONS = frozenset({T.DENIAL_REASON_EXIT_PRICE_WRONG_SIDE})


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"stop_loss": orders_pb2.StopLoss(trigger_price="60001")}, "stop-loss trigger 60001"),
        ({"take_profit": orders_pb2.TakeProfit(limit_price="60000")}, "take-profit 60000"),
        (
            {"stop_loss": orders_pb2.StopLoss(trigger_price="59000", limit_price="59001")},
            "stop-loss limit 59001",
        ),
        (
            {"side": SELL, "limit_price": "60000"},  # a sell entry: its exits buy
            "take-profit 61000 and stop-loss trigger 59000",
        ),
    ],
)
def test_a_bracket_exit_on_the_wrong_side_of_the_entry_is_denied(
    changes: dict[str, Any], problem: str
) -> None:
    entry = parse(**(BRACKET | {"limit_price": "60000"} | changes))
    denial = exit_price_problem(entry, None)
    assert isinstance(denial, Denial)
    assert denial.reason == T.DENIAL_REASON_EXIT_PRICE_WRONG_SIDE
    assert denial.message.startswith(problem)


def test_a_market_brackets_exits_are_judged_against_the_touch_it_trades_at() -> None:
    entry = parse(**BRACKET, order_type=T.ORDER_TYPE_MARKET, limit_price="")
    assert exit_price_problem(entry, quote("59999", "60000")) is None
    denial = exit_price_problem(entry, quote("58999", "59000"))
    assert denial is not None and "stop-loss trigger 59000" in denial.message


# --- a held order's own transitions ----------------------------------------------------------


def held_stop() -> Order:
    return Order.held(parse(**STOP), "o-1", NOW)


def test_a_held_order_is_open_but_not_at_a_venue_and_its_venue_form_is_what_it_becomes() -> None:
    order = held_stop()
    assert (order.status, order.is_open, order.is_stop) == (T.ORDER_STATUS_HELD, True, True)
    venue = order.venue_proto()
    assert (venue.order_type, venue.trigger_type) == (T.ORDER_TYPE_MARKET, 0)
    assert order.as_request().order_type == T.ORDER_TYPE_MARKET
    assert order.as_request().trigger_price is None


def test_a_held_order_is_released_withdrawn_or_denied_and_nothing_else_moves_it() -> None:
    released, withdrawn, denied = held_stop(), held_stop(), held_stop()
    released.triggered(2, NOW)
    released.release(3, NOW)
    withdrawn.withdraw(T.ORDER_STATUS_EXPIRED, "expired", 2, NOW)
    denied.deny_release(Denial(T.DENIAL_REASON_TRADING_HALTED, "halted"), 2, NOW)
    assert released.status == T.ORDER_STATUS_SUBMITTED
    assert released.trigger_time == NOW
    assert (withdrawn.status, withdrawn.status_message) == (T.ORDER_STATUS_EXPIRED, "expired")
    assert (denied.status, denied.denial_reason) == (
        T.ORDER_STATUS_DENIED,
        T.DENIAL_REASON_TRADING_HALTED,
    )
    for order in (released, withdrawn, denied):
        with pytest.raises(InvalidOrderTransition, match="only a HELD order"):
            order.amend(9, NOW, quantity=Decimal(1))
        assert order.sequence != 9


def test_a_held_orders_snapshot_round_trips_through_its_wire_form() -> None:
    entry = parse(**BRACKET, time_in_force=T.TIME_IN_FORCE_GTC)
    order = Order.held(entry, "o-1", NOW)
    order.child_order_ids = ["a", "b"]
    order.trigger_time = NOW
    again = Order.from_proto(order.to_proto())
    assert again == order
