"""Orders the router works as child orders, over gRPC on the paper venue: TWAP releases equal
slices over its horizon, an order split by max_child_quantity goes as several children at once,
a cancel of the parent cancels its working children and releases no more, a modify of it is
rejected, a restart goes on with the slices due and sends none twice, and bad instructions are
refused naming the field."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from trading.v1 import execution_pb2, orders_pb2, types_pb2
from trading_core.runtime import Platform

from tests.e2e.conftest import Clients, embedded_overrides, running_embedded, write_config
from tests.e2e.test_modify import modify
from tests.e2e.test_order_types import finished, get_order, submit_order, touch
from tests.e2e.test_trading_flow import TIMEOUT, order_status, ready_for_market_orders
from tests.support import wait_until

T = types_pb2
CENT = Decimal("0.01")


def instructions(**fields: object) -> orders_pb2.ExecutionInstructions:
    horizon = fields.pop("horizon", None)
    made = orders_pb2.ExecutionInstructions(**fields)  # type: ignore[arg-type]
    if isinstance(horizon, timedelta):
        made.horizon.CopyFrom(
            Duration(seconds=int(horizon.total_seconds()), nanos=horizon.microseconds * 1000)
        )
    return made


def children(clients: Clients, order: orders_pb2.Order) -> execution_pb2.ListChildOrdersResponse:
    request = execution_pb2.ListChildOrdersRequest(
        order_id=order.order_id, account_id=order.account_id
    )
    answer: execution_pb2.ListChildOrdersResponse = clients.router.ListChildOrders(
        request, timeout=TIMEOUT
    )
    return answer


def routed_children(clients: Clients, order: orders_pb2.Order) -> int:
    """How many child orders the router works for `order`; 0 before the bus has brought it
    the order (the router answers NOT_FOUND until then)."""
    try:
        return len(children(clients, order).child_orders)
    except grpc.RpcError as error:
        if error.code() != grpc.StatusCode.NOT_FOUND:
            raise
        return 0


def test_a_twap_releases_equal_slices_over_its_horizon_and_fills_whole(
    embedded: tuple[Clients, Platform],
) -> None:
    clients, _ = embedded
    ready_for_market_orders(clients)
    twap = instructions(
        algorithm=T.EXECUTION_ALGORITHM_TWAP, horizon=timedelta(seconds=2), slice_count=4
    )
    order = submit_order(clients, quantity="0.04", execution=twap).order
    assert order.execution.algorithm == T.EXECUTION_ALGORITHM_TWAP

    done = finished(clients, order)
    assert done.status == T.ORDER_STATUS_FILLED
    assert Decimal(done.filled_quantity) == Decimal("0.04")
    listed = children(clients, order)
    assert [Decimal(c.quantity) for c in listed.child_orders] == [Decimal("0.01")] * 4
    assert [c.slice for c in listed.child_orders] == [0, 1, 2, 3]
    assert {c.last_execution_type for c in listed.child_orders} == {T.EXECUTION_TYPE_FILLED}
    assert Decimal(listed.filled_quantity) == Decimal(listed.released_quantity) == Decimal("0.04")
    start = order.create_time.ToDatetime()
    for child in listed.child_orders:  # no slice before its time (half a second apart)
        assert child.create_time.ToDatetime() >= start + timedelta(seconds=0.5 * child.slice)
    assert Decimal(done.average_fill_price) > 0


def test_an_order_split_by_max_child_quantity_goes_as_several_children_at_once(
    embedded: tuple[Clients, Platform],
) -> None:
    clients, _ = embedded
    ready_for_market_orders(clients)
    split = instructions(max_child_quantity="0.02")
    order = submit_order(clients, quantity="0.05", execution=split).order

    done = finished(clients, order)
    assert done.status == T.ORDER_STATUS_FILLED
    listed = children(clients, order).child_orders
    assert [Decimal(c.quantity) for c in listed] == [
        Decimal("0.02"),
        Decimal("0.02"),
        Decimal("0.01"),
    ]
    assert {c.slice for c in listed} == {0}
    assert len({c.child_order_id for c in listed}) == 3
    assert all(c.parent_order_id == order.order_id for c in listed)


def test_canceling_a_parent_cancels_its_working_child_and_releases_no_more(
    embedded: tuple[Clients, Platform],
) -> None:
    clients, _ = embedded
    ready_for_market_orders(clients)
    bid, _ = touch(clients)
    below = (bid * Decimal("0.95")).quantize(CENT)
    twap = instructions(
        algorithm=T.EXECUTION_ALGORITHM_TWAP, horizon=timedelta(seconds=4), slice_count=2
    )
    order = submit_order(
        clients,
        quantity="0.02",
        order_type=T.ORDER_TYPE_LIMIT,
        limit_price=str(below),
        execution=twap,
    ).order
    order_status(clients, order, T.ORDER_STATUS_ACCEPTED)
    wait_until(
        lambda: (
            children(clients, order).child_orders[0].last_execution_type
            == T.EXECUTION_TYPE_ACCEPTED
        ),
        TIMEOUT,
        "the first child to rest",
    )

    request_id = str(uuid.uuid4())
    cancel = orders_pb2.CancelOrderRequest(
        order_id=order.order_id, account_id=order.account_id, request_id=request_id
    )
    clients.orders.CancelOrder(cancel, timeout=TIMEOUT)
    done = finished(clients, order)
    assert done.status == T.ORDER_STATUS_CANCELED
    assert Decimal(done.filled_quantity) == 0
    listed = children(clients, order).child_orders
    assert [c.last_execution_type for c in listed] == [T.EXECUTION_TYPE_CANCELED]

    second_slice = order.create_time.ToDatetime().timestamp() + 2
    wait_until(lambda: time.time() > second_slice + 0.5, TIMEOUT, "the second slice's time to pass")
    assert len(children(clients, order).child_orders) == 1


def test_a_modify_of_a_parent_is_rejected_and_the_parent_goes_on(
    embedded: tuple[Clients, Platform],
) -> None:
    clients, _ = embedded
    ready_for_market_orders(clients)
    split = instructions(max_child_quantity="0.01")
    bid, _ = touch(clients)
    below = (bid * Decimal("0.95")).quantize(CENT)
    order = submit_order(
        clients,
        quantity="0.02",
        order_type=T.ORDER_TYPE_LIMIT,
        limit_price=str(below),
        execution=split,
    ).order
    order_status(clients, order, T.ORDER_STATUS_ACCEPTED)
    answer = modify(clients, order, quantity="0.03")
    assert answer.order.status == T.ORDER_STATUS_PENDING_UPDATE

    def back() -> orders_pb2.Order | None:
        shown = get_order(clients, order)
        return shown if shown.status == T.ORDER_STATUS_ACCEPTED else None

    shown = wait_until(back, TIMEOUT, "the router's MODIFY_REJECTED")
    assert shown.quantity == "0.02"
    assert "worked by an execution algorithm cannot be modified" in shown.status_message
    assert not shown.HasField("pending_change")
    assert len(children(clients, order).child_orders) == 2


def test_a_restart_goes_on_with_the_slices_due_and_sends_none_twice(tmp_path: Path) -> None:
    config = write_config(tmp_path, embedded_overrides(tmp_path / "data"))
    twap = instructions(
        algorithm=T.EXECUTION_ALGORITHM_TWAP, horizon=timedelta(seconds=3), slice_count=3
    )
    with running_embedded(config) as clients:
        ready_for_market_orders(clients)
        order = submit_order(clients, quantity="0.03", execution=twap).order
        wait_until(lambda: routed_children(clients, order) >= 1, TIMEOUT, "a first child")
    with running_embedded(config) as clients:
        done = finished(clients, order)
        assert done.status == T.ORDER_STATUS_FILLED
        assert Decimal(done.filled_quantity) == Decimal("0.03")
        listed = children(clients, order).child_orders
        assert sum(Decimal(c.quantity) for c in listed) == Decimal("0.03")
        assert len({c.child_order_id for c in listed}) == len(listed)


@pytest.mark.parametrize(
    ("fields", "execution", "named"),
    [
        ({}, {"algorithm": T.EXECUTION_ALGORITHM_TWAP}, "execution.horizon"),
        (
            {},
            {"algorithm": T.EXECUTION_ALGORITHM_TWAP, "horizon": timedelta(days=2)},
            "execution.horizon",
        ),
        ({}, {"max_child_quantity": "0"}, "execution.max_child_quantity"),
        (
            {},
            {
                "algorithm": T.EXECUTION_ALGORITHM_VWAP,
                "horizon": timedelta(seconds=5),
                "participation_rate": "1.5",
            },
            "execution.participation_rate",
        ),
        ({}, {"participation_rate": "0.5"}, "need algorithm TWAP or VWAP"),
        ({"time_in_force": T.TIME_IN_FORCE_IOC}, {"max_child_quantity": "0.01"}, "IOC or FOK"),
    ],
)
def test_bad_execution_instructions_are_refused_naming_the_field(
    embedded_clients: Clients, fields: dict[str, object], execution: dict[str, object], named: str
) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        submit_order(embedded_clients, execution=instructions(**execution), **fields)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert named in (refused.value.details() or "")


def test_child_orders_of_an_order_not_worked_by_the_router_are_not_found(
    embedded_clients: Clients,
) -> None:
    ready_for_market_orders(embedded_clients)
    order = submit_order(embedded_clients).order
    with pytest.raises(grpc.RpcError) as refused:
        children(embedded_clients, order)
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
