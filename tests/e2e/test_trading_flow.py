"""Signal → order → validated → routed → filled on the paper venue → order state → position,
over real gRPC, in both the embedded and the distributed platform."""

from __future__ import annotations

import uuid
from decimal import ROUND_CEILING, Decimal
from pathlib import Path

import grpc
import pytest
from trading.v1 import execution_pb2, market_data_pb2, orders_pb2, positions_pb2, types_pb2

from tests.e2e.conftest import Clients, embedded_overrides, start_embedded, write_config
from tests.support import wait_until

TIMEOUT = 20


def submit(clients: Clients, **fields: object) -> orders_pb2.Order:
    request = orders_pb2.SubmitOrderRequest(
        request_id=str(uuid.uuid4()),
        client_order_id=str(uuid.uuid4()),
        account_id="acct-e2e",
        strategy_id="e2e",
        instrument="BTC-USD",
        side=types_pb2.SIDE_BUY,
        order_type=types_pb2.ORDER_TYPE_MARKET,
        quantity="0.01",
    )
    for name, value in fields.items():
        setattr(request, name, value)
    return clients.orders.SubmitOrder(request, timeout=TIMEOUT).order


def order_status(
    clients: Clients, order: orders_pb2.Order, status: types_pb2.OrderStatus.ValueType
) -> orders_pb2.Order:
    stub = clients.orders
    request = orders_pb2.GetOrderRequest(order_id=order.order_id, account_id=order.account_id)

    def reached() -> orders_pb2.Order | None:
        shown = stub.GetOrder(request, timeout=5).order
        return shown if shown.status == status else None

    name = types_pb2.OrderStatus.Name(status)
    return wait_until(reached, TIMEOUT, f"order {order.order_id} to become {name}")


def wait_for_quote(clients: Clients, instrument: str = "BTC-USD") -> market_data_pb2.Quote:
    stub = clients.router

    def quoted() -> market_data_pb2.Quote | None:
        try:
            request = execution_pb2.GetQuoteRequest(instrument=instrument)
            return stub.GetQuote(request, timeout=5).quote
        except grpc.RpcError:
            return None

    return wait_until(quoted, TIMEOUT, f"a quote for {instrument}")


def position_quantity(clients: Clients, account_id: str, quantity: str) -> positions_pb2.Position:
    stub = clients.positions

    def reached() -> positions_pb2.Position | None:
        request = positions_pb2.ListPositionsRequest(account_id=account_id)
        for position in stub.ListPositions(request, timeout=5).positions:
            if position.instrument == "BTC-USD" and Decimal(position.quantity) == Decimal(quantity):
                return position
        return None

    return wait_until(reached, TIMEOUT, f"{account_id} to hold {quantity} BTC-USD")


def ready_for_market_orders(clients: Clients) -> None:
    """Order-management has a quote once a market order is no longer denied for lack of one."""
    wait_for_quote(clients)

    def accepted() -> bool:
        order = submit(clients, account_id="acct-warmup", quantity="0.001")
        return order.status != types_pb2.ORDER_STATUS_DENIED

    wait_until(accepted, TIMEOUT, "order-management to receive quotes")


def test_market_buy_is_filled_and_builds_a_position_marked_to_market(
    platform_clients: Clients,
) -> None:
    clients = platform_clients
    ready_for_market_orders(clients)
    order = submit(clients, account_id="acct-buy", quantity="0.5")
    assert order.status == types_pb2.ORDER_STATUS_SUBMITTED
    assert order.order_id

    filled = order_status(clients, order, types_pb2.ORDER_STATUS_FILLED)
    assert Decimal(filled.filled_quantity) == Decimal("0.5")
    assert Decimal(filled.leaves_quantity) == 0
    fill_price = Decimal(filled.average_fill_price)
    # 10 bps fee on the fill's notional, rounded up to the cent (quote_decimals: 2).
    exact_fee = Decimal("0.5") * fill_price * Decimal("0.001")
    assert Decimal(filled.fees) == exact_fee.quantize(Decimal("0.01"), rounding=ROUND_CEILING)

    position = position_quantity(clients, "acct-buy", "0.5")
    assert Decimal(position.average_price) == fill_price
    wait_until(lambda: _marked(clients, "acct-buy"), TIMEOUT, "the position to be marked")


def _marked(clients: Clients, account_id: str) -> bool:
    request = positions_pb2.GetPositionRequest(account_id=account_id, instrument="BTC-USD")
    position = clients.positions.GetPosition(request, timeout=5).position
    return bool(position.mark_price)


def test_buy_then_sell_realizes_the_price_difference(embedded_clients: Clients) -> None:
    clients = embedded_clients
    ready_for_market_orders(clients)
    buy = submit(clients, account_id="acct-round-trip", quantity="0.2")
    bought = order_status(clients, buy, types_pb2.ORDER_STATUS_FILLED)
    sell = submit(clients, account_id="acct-round-trip", quantity="0.2", side=types_pb2.SIDE_SELL)
    sold = order_status(clients, sell, types_pb2.ORDER_STATUS_FILLED)

    position = position_quantity(clients, "acct-round-trip", "0")
    expected = (Decimal(sold.average_fill_price) - Decimal(bought.average_fill_price)) * Decimal(
        "0.2"
    )
    assert Decimal(position.realized_pnl) == expected.quantize(Decimal("0.01"))
    assert Decimal(position.fees) == Decimal(bought.fees) + Decimal(sold.fees)


def test_resting_limit_order_is_canceled_and_a_second_cancel_is_refused(
    platform_clients: Clients,
) -> None:
    clients = platform_clients
    quote = wait_for_quote(clients)
    far_below = (Decimal(quote.bid_price) * Decimal("0.5")).quantize(Decimal("0.01"))
    order = submit(
        clients,
        order_type=types_pb2.ORDER_TYPE_LIMIT,
        time_in_force=types_pb2.TIME_IN_FORCE_GTC,
        limit_price=str(far_below),
    )
    order_status(clients, order, types_pb2.ORDER_STATUS_ACCEPTED)

    clients.orders.CancelOrder(
        orders_pb2.CancelOrderRequest(
            order_id=order.order_id, account_id=order.account_id, request_id=str(uuid.uuid4())
        )
    )
    canceled = order_status(clients, order, types_pb2.ORDER_STATUS_CANCELED)
    assert Decimal(canceled.filled_quantity) == 0

    with pytest.raises(grpc.RpcError) as refused:
        clients.orders.CancelOrder(
            orders_pb2.CancelOrderRequest(
                order_id=order.order_id, account_id=order.account_id, request_id=str(uuid.uuid4())
            )
        )
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "CANCELED" in (refused.value.details() or "")


def test_ioc_limit_that_does_not_cross_expires(embedded_clients: Clients) -> None:
    clients = embedded_clients
    quote = wait_for_quote(clients)
    below = (Decimal(quote.bid_price) * Decimal("0.9")).quantize(Decimal("0.01"))
    order = submit(
        clients,
        order_type=types_pb2.ORDER_TYPE_LIMIT,
        time_in_force=types_pb2.TIME_IN_FORCE_IOC,
        limit_price=str(below),
    )
    order_status(clients, order, types_pb2.ORDER_STATUS_EXPIRED)


def test_order_off_the_step_is_denied_with_its_reason_and_never_routed(
    embedded_clients: Clients,
) -> None:
    clients = embedded_clients
    order = submit(clients, quantity="0.00015")
    assert order.status == types_pb2.ORDER_STATUS_DENIED
    assert order.denial_reason == types_pb2.DENIAL_REASON_QUANTITY_NOT_ON_STEP
    assert "0.0001" in order.status_message
    stored = clients.orders.GetOrder(
        orders_pb2.GetOrderRequest(order_id=order.order_id, account_id=order.account_id)
    ).order
    assert stored.status == types_pb2.ORDER_STATUS_DENIED


def test_a_repeated_request_returns_the_original_order_and_a_changed_one_already_exists(
    embedded_clients: Clients,
) -> None:
    clients = embedded_clients
    first = submit(clients, request_id="req-1", client_order_id="coid-1", quantity="0.001")
    again = submit(clients, request_id="req-1", client_order_id="coid-1", quantity="0.001")
    assert again.order_id == first.order_id

    with pytest.raises(grpc.RpcError) as changed:
        submit(clients, request_id="req-1", client_order_id="coid-1", quantity="1")
    assert changed.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "quantity" in (changed.value.details() or "")
    with pytest.raises(grpc.RpcError) as reused:
        submit(clients, request_id="req-2", client_order_id="coid-1", quantity="0.001")
    assert reused.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "request_id" in (reused.value.details() or "")

    # Ids belong to an account: another account may use the same ones for its own order.
    other = submit(
        clients, account_id="acct-e2e-other", request_id="req-1", client_order_id="coid-1"
    )
    assert other.order_id != first.order_id
    listed = clients.orders.ListOrders(
        orders_pb2.ListOrdersRequest(account_id="acct-e2e"), timeout=TIMEOUT
    ).orders
    assert [o.order_id for o in listed] == [first.order_id]


def test_signal_becomes_an_order_sized_by_the_configured_notional(
    platform_clients: Clients,
) -> None:
    clients = platform_clients
    ready_for_market_orders(clients)
    response = clients.orders.SubmitSignal(
        orders_pb2.SubmitSignalRequest(
            request_id=str(uuid.uuid4()),
            client_order_id=str(uuid.uuid4()),
            account_id="acct-signal",
            strategy_id="momentum",
            instrument="ETH-USD",
            side=types_pb2.SIDE_BUY,
            limit_price="2000",
        ),
        timeout=TIMEOUT,
    )
    order = response.order
    assert response.signal_id and order.signal_id == response.signal_id
    assert order.order_type == types_pb2.ORDER_TYPE_LIMIT
    # 1000 notional at 2000 is 0.5, on ETH-USD's 0.001 step.
    assert Decimal(order.quantity) == Decimal("0.5")
    assert order.status == types_pb2.ORDER_STATUS_SUBMITTED


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"request_id": ""}, "request_id"),
        ({"side": types_pb2.SIDE_UNSPECIFIED}, "side"),
        ({"quantity": "lots"}, "quantity"),
        ({"order_type": types_pb2.ORDER_TYPE_LIMIT}, "limit_price"),
        ({"limit_price": "100"}, "limit_price"),
    ],
)
def test_malformed_order_is_invalid_argument_naming_the_field_and_creates_nothing(
    embedded: tuple[Clients, object], fields: dict[str, object], named: str
) -> None:
    clients, _ = embedded
    with pytest.raises(grpc.RpcError) as refused:
        submit(clients, account_id="acct-malformed", **fields)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert named in (refused.value.details() or "")
    listed = clients.orders.ListOrders(orders_pb2.ListOrdersRequest(account_id="acct-malformed"))
    assert list(listed.orders) == []


def test_unknown_order_is_not_found(embedded: tuple[Clients, object]) -> None:
    clients, _ = embedded
    with pytest.raises(grpc.RpcError) as missing:
        clients.orders.GetOrder(
            orders_pb2.GetOrderRequest(order_id="no-such-order", account_id="acct-1")
        )
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as missing:
        clients.orders.CancelOrder(
            orders_pb2.CancelOrderRequest(
                order_id="no-such-order", account_id="acct-1", request_id="cancel-1"
            )
        )
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert "no-such-order" in (missing.value.details() or "")


def test_market_order_whose_slippage_exceeds_max_slippage_bps_expires_unfilled(
    tmp_path: Path,
) -> None:
    overrides = embedded_overrides(tmp_path / "data")
    overrides["execution"] = {"simulation": {"slippage_bps": "80"}}
    overrides["order_defaults"] = {"max_slippage_bps": "20"}
    platform = start_embedded(write_config(tmp_path, overrides))
    clients = Clients({name: platform.address(name) for name in platform.servers})
    try:
        ready_for_market_orders(clients)
        order = submit(clients, account_id="acct-protected")
        expired = order_status(clients, order, types_pb2.ORDER_STATUS_EXPIRED)
        assert "price protection" in expired.status_message
        assert Decimal(expired.filled_quantity) == 0
    finally:
        clients.close()
        platform.stop()
