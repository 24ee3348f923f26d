"""ModifyOrder over gRPC: a resting limit changed in price and quantity fills as changed (both
modes), a change the venue refuses leaves the order as it was, a held stop changes at once, a
change our checks refuse carries its reason, and bad input is refused naming the field."""

from __future__ import annotations

import uuid
from decimal import Decimal

import grpc
import pytest
from trading.v1 import orders_pb2, types_pb2
from trading_core.runtime import Platform

from tests.e2e.conftest import Clients
from tests.e2e.test_order_types import finished, get_order, submit_order, touch
from tests.e2e.test_trading_flow import TIMEOUT, order_status, ready_for_market_orders
from tests.support import wait_until

T = types_pb2
CENT = Decimal("0.01")


def modify(
    clients: Clients, order: orders_pb2.Order, request_id: str = "", **fields: str
) -> orders_pb2.ModifyOrderResponse:
    request = orders_pb2.ModifyOrderRequest(
        order_id=order.order_id,
        account_id=order.account_id,
        request_id=request_id or str(uuid.uuid4()),
        **fields,
    )
    response: orders_pb2.ModifyOrderResponse = clients.orders.ModifyOrder(request, timeout=TIMEOUT)
    return response


def resting_buy(clients: Clients, **fields: object) -> orders_pb2.Order:
    """A buy limit 5% under the bid, once the venue has it (ACCEPTED)."""
    bid, _ = touch(clients)
    price = (bid * Decimal("0.95")).quantize(CENT)
    order = submit_order(
        clients, order_type=T.ORDER_TYPE_LIMIT, limit_price=str(price), **fields
    ).order
    return order_status(clients, order, T.ORDER_STATUS_ACCEPTED)


def test_a_resting_limit_modified_in_price_and_quantity_fills_as_changed(
    platform_clients: Clients,
) -> None:
    clients = platform_clients
    ready_for_market_orders(clients)
    order = resting_buy(clients, quantity="0.01")
    _, ask = touch(clients)
    crossing = (ask * Decimal("1.01")).quantize(CENT)
    answer = modify(clients, order, quantity="0.02", limit_price=str(crossing))
    assert answer.refusal_reason == T.DENIAL_REASON_UNSPECIFIED
    # Answered before the venue: the change is pending, the order as it was until then.
    assert answer.order.status == T.ORDER_STATUS_PENDING_UPDATE
    assert answer.order.pending_change.quantity == "0.02"
    assert answer.order.quantity == order.quantity

    done = finished(clients, order)
    assert done.status == T.ORDER_STATUS_FILLED
    assert Decimal(done.quantity) == Decimal(done.filled_quantity) == Decimal("0.02")
    assert Decimal(done.limit_price) == crossing
    assert Decimal(done.average_fill_price) <= crossing
    assert not done.HasField("pending_change")


def test_a_change_the_venue_refuses_leaves_the_order_as_it_was(
    embedded: tuple[Clients, Platform],
) -> None:
    clients, _ = embedded
    ready_for_market_orders(clients)
    order = resting_buy(clients, post_only=True)
    _, ask = touch(clients)
    taking = str((ask * Decimal("1.01")).quantize(CENT))
    answer = modify(clients, order, limit_price=taking)
    assert answer.order.status == T.ORDER_STATUS_PENDING_UPDATE
    # By value: the platform answers 60612.70 as 60612.7.
    assert Decimal(answer.order.pending_change.limit_price) == Decimal(taking)

    def back() -> orders_pb2.Order | None:
        shown = get_order(clients, order)
        return shown if shown.status == T.ORDER_STATUS_ACCEPTED else None

    shown = wait_until(back, TIMEOUT, "the venue's MODIFY_REJECTED")
    assert shown.limit_price == order.limit_price
    assert "cannot modify: post-only" in shown.status_message
    assert not shown.HasField("pending_change")


def test_a_held_stop_changes_at_once_and_a_repeat_answers_the_same(
    embedded: tuple[Clients, Platform],
) -> None:
    clients, _ = embedded
    ready_for_market_orders(clients)
    bid, _ = touch(clients)
    stop = submit_order(
        clients,
        side=T.SIDE_SELL,
        order_type=T.ORDER_TYPE_STOP_MARKET,
        trigger_price=str((bid * Decimal("0.8")).quantize(CENT)),
        reduce_only=False,
    ).order
    assert stop.status == T.ORDER_STATUS_HELD
    lower = str((bid * Decimal("0.7")).quantize(CENT))
    request_id = str(uuid.uuid4())
    answer = modify(clients, stop, request_id, trigger_price=lower, quantity="0.02")
    assert answer.order.status == T.ORDER_STATUS_HELD
    assert Decimal(answer.order.trigger_price) == Decimal(lower)
    assert Decimal(answer.order.quantity) == Decimal("0.02")
    again = modify(clients, stop, request_id, trigger_price=lower, quantity="0.02")
    assert again.order.version == answer.order.version


def test_a_change_our_checks_refuse_carries_its_reason_and_changes_nothing(
    embedded: tuple[Clients, Platform],
) -> None:
    clients, _ = embedded
    ready_for_market_orders(clients)
    order = resting_buy(clients)
    request_id = str(uuid.uuid4())
    answer = modify(clients, order, request_id, quantity="10")  # 10 BTC: over max_order_value
    assert answer.refusal_reason == T.DENIAL_REASON_ORDER_VALUE_EXCEEDS_LIMIT
    assert "the maximum order value 250000" in answer.refusal_message
    assert answer.order.status == T.ORDER_STATUS_ACCEPTED
    assert answer.order.quantity == order.quantity
    repeated = modify(clients, order, request_id, quantity="10")
    assert repeated.refusal_reason == answer.refusal_reason


def test_a_malformed_modify_is_refused_naming_the_field_and_changes_nothing(
    embedded: tuple[Clients, Platform],
) -> None:
    clients, _ = embedded
    ready_for_market_orders(clients)
    order = resting_buy(clients)
    cases = [
        ({}, "nothing to change"),
        ({"quantity": "-1"}, "quantity must be greater than zero"),
        ({"quantity": "abc"}, "quantity must be"),
        ({"trigger_price": "1"}, "trigger_price"),
        ({"limit_price": order.limit_price + "0"}, "nothing to change"),  # the same price
        ({"quantity": order.quantity}, "nothing to change"),
    ]
    for fields, wanted in cases:
        with pytest.raises(grpc.RpcError) as raised:
            modify(clients, order, **fields)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, fields
        assert wanted in (raised.value.details() or ""), fields
    assert get_order(clients, order).version == order.version


def test_a_finished_order_cannot_be_modified_and_a_request_id_binds_one_order(
    embedded: tuple[Clients, Platform],
) -> None:
    clients, _ = embedded
    ready_for_market_orders(clients)
    filled = finished(clients, submit_order(clients).order)
    with pytest.raises(grpc.RpcError) as raised:
        modify(clients, filled, quantity="0.5")
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "can no longer be modified" in (raised.value.details() or "")

    first, second = resting_buy(clients), resting_buy(clients)
    request_id = str(uuid.uuid4())
    modify(clients, first, request_id, quantity="0.02")
    with pytest.raises(grpc.RpcError) as reused:
        modify(clients, second, request_id, quantity="0.02")
    assert reused.value.code() == grpc.StatusCode.ALREADY_EXISTS
