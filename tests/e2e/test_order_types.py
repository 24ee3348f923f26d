"""Order types over gRPC: a bracket from its entry (an order or a signal) to one exit (both
modes), a stop released by the emulator, a trailing stop that follows the market and is canceled
while held, an exit canceled with its entry unfilled, and bad input refused with
INVALID_ARGUMENT or DENIED."""

from __future__ import annotations

import uuid
from decimal import Decimal

import grpc
import pytest
from google.protobuf.message import Message
from trading.v1 import orders_pb2, types_pb2

from tests.e2e.conftest import Clients
from tests.e2e.test_trading_flow import (
    TIMEOUT,
    order_status,
    position_quantity,
    ready_for_market_orders,
    wait_for_quote,
)
from tests.support import wait_until

BUY, SELL = types_pb2.SIDE_BUY, types_pb2.SIDE_SELL
T = types_pb2
FINISHED = {
    T.ORDER_STATUS_FILLED,
    T.ORDER_STATUS_CANCELED,
    T.ORDER_STATUS_EXPIRED,
    T.ORDER_STATUS_REJECTED,
    T.ORDER_STATUS_DENIED,
}


def submit_order(clients: Clients, **fields: object) -> orders_pb2.SubmitOrderResponse:
    request = orders_pb2.SubmitOrderRequest(
        request_id=str(uuid.uuid4()),
        client_order_id=str(uuid.uuid4()),
        account_id="acct-types",
        strategy_id="types",
        instrument="BTC-USD",
        side=BUY,
        order_type=T.ORDER_TYPE_MARKET,
        quantity="0.01",
    )
    for name, value in fields.items():
        field = getattr(request, name)
        if isinstance(value, Message):
            field.CopyFrom(value)
        else:
            setattr(request, name, value)
    response: orders_pb2.SubmitOrderResponse = clients.orders.SubmitOrder(request, timeout=TIMEOUT)
    return response


def get_order(clients: Clients, order: orders_pb2.Order) -> orders_pb2.Order:
    request = orders_pb2.GetOrderRequest(order_id=order.order_id, account_id=order.account_id)
    shown: orders_pb2.Order = clients.orders.GetOrder(request, timeout=5).order
    return shown


def finished(clients: Clients, order: orders_pb2.Order) -> orders_pb2.Order:
    def done() -> orders_pb2.Order | None:
        shown = get_order(clients, order)
        return shown if shown.status in FINISHED else None

    return wait_until(done, TIMEOUT * 3, f"order {order.order_id} to finish")


def touch(clients: Clients) -> tuple[Decimal, Decimal]:
    quote = wait_for_quote(clients)
    return Decimal(quote.bid_price), Decimal(quote.ask_price)


def bracket_by_signal(
    clients: Clients, take_profit: Decimal, stop_loss: Decimal
) -> orders_pb2.SubmitSignalResponse:
    """A buy signal (sized by the configured notional) with its exits as prices."""
    request = orders_pb2.SubmitSignalRequest(
        request_id=str(uuid.uuid4()),
        client_order_id=str(uuid.uuid4()),
        account_id="acct-bracket",
        strategy_id="types",
        instrument="BTC-USD",
        side=BUY,
        take_profit=orders_pb2.ExitLevel(price=str(take_profit)),
        stop_loss=orders_pb2.ExitLevel(price=str(stop_loss)),
    )
    response: orders_pb2.SubmitSignalResponse = clients.orders.SubmitSignal(
        request, timeout=TIMEOUT
    )
    return response


@pytest.mark.parametrize("entered_by", ["order", "signal"])
def test_a_bracket_fills_its_entry_then_exactly_one_exit_and_ends_flat(
    platform_clients: Clients, entered_by: str
) -> None:
    clients = platform_clients
    ready_for_market_orders(clients)
    bid, ask = touch(clients)
    # Exits 50 bps away: the walk (5 bps a tick) reaches one within seconds, and moves too
    # little before the checks (quotes reach order-management late when distributed) for
    # either to be on the wrong side.
    take_profit = (ask * Decimal("1.005")).quantize(Decimal("0.01"))
    stop_loss = (bid * Decimal("0.995")).quantize(Decimal("0.01"))
    if entered_by == "signal":
        response: orders_pb2.SubmitOrderResponse | orders_pb2.SubmitSignalResponse = (
            bracket_by_signal(clients, take_profit, stop_loss)
        )
    else:
        response = submit_order(
            clients,
            account_id="acct-bracket",
            order_class=T.ORDER_CLASS_BRACKET,
            take_profit=orders_pb2.TakeProfit(limit_price=str(take_profit)),
            stop_loss=orders_pb2.StopLoss(trigger_price=str(stop_loss)),
        )
    entry = response.order
    assert entry.order_class == T.ORDER_CLASS_BRACKET
    assert entry.status == T.ORDER_STATUS_SUBMITTED, entry
    assert entry.role == T.ORDER_ROLE_ENTRY
    assert [leg.role for leg in response.legs] == [
        T.ORDER_ROLE_TAKE_PROFIT,
        T.ORDER_ROLE_STOP_LOSS,
    ]
    assert all(leg.status == T.ORDER_STATUS_HELD and leg.reduce_only for leg in response.legs)
    assert list(entry.child_order_ids) == [leg.order_id for leg in response.legs]
    order_status(clients, entry, T.ORDER_STATUS_FILLED)

    exits = [finished(clients, leg) for leg in response.legs]
    statuses = sorted(T.OrderStatus.Name(leg.status) for leg in exits)
    assert statuses == ["ORDER_STATUS_CANCELED", "ORDER_STATUS_FILLED"], exits
    filled = next(leg for leg in exits if leg.status == T.ORDER_STATUS_FILLED)
    assert Decimal(filled.filled_quantity) == Decimal(entry.quantity)
    canceled = next(leg for leg in exits if leg.status == T.ORDER_STATUS_CANCELED)
    assert Decimal(canceled.filled_quantity) == 0
    position_quantity(clients, "acct-bracket", "0")


def test_a_stop_whose_trigger_is_reached_is_released_as_a_market_order_and_fills(
    embedded: tuple[Clients, object],
) -> None:
    clients, _ = embedded
    ready_for_market_orders(clients)
    submit_order(clients, account_id="acct-stop", quantity="0.02")
    position_quantity(clients, "acct-stop", "0.02")
    bid, _ = touch(clients)
    stop = submit_order(
        clients,
        account_id="acct-stop",
        side=SELL,
        order_type=T.ORDER_TYPE_STOP_MARKET,
        trigger_price=str(bid + 1000),  # a sell stop above the bid: reached at once
        quantity="0.02",
        reduce_only=True,
    ).order
    filled = order_status(clients, stop, T.ORDER_STATUS_FILLED)
    assert filled.order_type == T.ORDER_TYPE_STOP_MARKET
    assert filled.HasField("trigger_time")
    position_quantity(clients, "acct-stop", "0")


def test_a_trailing_stop_follows_the_market_never_loosens_and_is_canceled_while_held(
    embedded: tuple[Clients, object],
) -> None:
    clients, _ = embedded
    ready_for_market_orders(clients)
    submit_order(clients, account_id="acct-trail", quantity="0.01")
    position_quantity(clients, "acct-trail", "0.01")
    held = submit_order(
        clients,
        account_id="acct-trail",
        side=SELL,
        order_type=T.ORDER_TYPE_TRAILING_STOP_MARKET,
        trailing_offset="2000",
        quantity="0.01",
        reduce_only=True,
    ).order
    assert held.status == T.ORDER_STATUS_HELD
    bid, _ = touch(clients)
    first = Decimal(held.trigger_price)
    # Set from the bid when it was submitted (the market has moved a little since).
    assert abs(first + 2000 - bid) < bid / 100

    triggers = [first]

    def moved() -> bool:
        triggers.append(Decimal(get_order(clients, held).trigger_price))
        return triggers[-1] != first

    wait_until(moved, TIMEOUT * 3, "the trailing stop's trigger to follow the market")
    assert triggers == sorted(triggers), "a sell trailing stop's trigger only moves up"

    canceled = clients.orders.CancelOrder(
        orders_pb2.CancelOrderRequest(
            order_id=held.order_id, account_id="acct-trail", request_id=str(uuid.uuid4())
        ),
        timeout=TIMEOUT,
    ).order
    assert canceled.status == T.ORDER_STATUS_CANCELED
    assert "before it was sent" in canceled.status_message
    assert canceled.venue == ""


def test_an_entry_that_finishes_unfilled_cancels_its_held_exits(
    embedded: tuple[Clients, object],
) -> None:
    clients, _ = embedded
    ready_for_market_orders(clients)
    response = submit_order(
        clients,
        account_id="acct-unfilled",
        order_type=T.ORDER_TYPE_LIMIT,
        limit_price="1000",  # far below the market: rests
        order_class=T.ORDER_CLASS_BRACKET,
        take_profit=orders_pb2.TakeProfit(limit_price="1100"),
        stop_loss=orders_pb2.StopLoss(trigger_price="900"),
    )
    entry = order_status(clients, response.order, T.ORDER_STATUS_ACCEPTED)
    clients.orders.CancelOrder(
        orders_pb2.CancelOrderRequest(
            order_id=entry.order_id, account_id="acct-unfilled", request_id=str(uuid.uuid4())
        ),
        timeout=TIMEOUT,
    )
    for leg in response.legs:
        done = order_status(clients, leg, T.ORDER_STATUS_CANCELED)
        assert "finished with nothing filled" in done.status_message


@pytest.mark.parametrize(
    ("fields", "field_name"),
    [
        ({"order_type": T.ORDER_TYPE_STOP_MARKET}, "trigger_price"),
        (
            {"order_type": T.ORDER_TYPE_TRAILING_STOP_MARKET, "trailing_offset": "0"},
            "trailing_offset",
        ),
        ({"order_type": T.ORDER_TYPE_MARKET, "post_only": True}, "post_only"),
        ({"time_in_force": T.TIME_IN_FORCE_GTD}, "expire_time"),
    ],
)
def test_malformed_order_types_are_refused_naming_the_field_and_store_nothing(
    embedded: tuple[Clients, object], fields: dict[str, object], field_name: str
) -> None:
    clients, _ = embedded
    client_order_id = str(uuid.uuid4())
    with pytest.raises(grpc.RpcError) as raised:
        submit_order(clients, account_id="acct-bad", client_order_id=client_order_id, **fields)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_name in (raised.value.details() or "")
    listed = clients.orders.ListOrders(
        orders_pb2.ListOrdersRequest(account_id="acct-bad"), timeout=TIMEOUT
    ).orders
    assert not listed


def test_a_bracket_whose_stop_is_on_the_wrong_side_is_denied_with_no_exits(
    embedded: tuple[Clients, object],
) -> None:
    clients, _ = embedded
    ready_for_market_orders(clients)
    response = submit_order(
        clients,
        account_id="acct-wrong-side",
        order_type=T.ORDER_TYPE_LIMIT,
        limit_price="50000",
        order_class=T.ORDER_CLASS_BRACKET,
        take_profit=orders_pb2.TakeProfit(limit_price="51000"),
        stop_loss=orders_pb2.StopLoss(trigger_price="50500"),
    )
    assert response.order.status == T.ORDER_STATUS_DENIED
    assert response.order.denial_reason == T.DENIAL_REASON_EXIT_PRICE_WRONG_SIDE
    assert "stop-loss trigger 50500" in response.order.status_message
    assert not response.legs
