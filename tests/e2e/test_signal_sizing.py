"""Signal sizing over gRPC, embedded: a signal sized by risk with a stop-loss and a take-profit
at a distance becomes a bracket (its entry and two held exits); a malformed confidence or exit
is INVALID_ARGUMENT and stores nothing; a risk-sized signal without a stop-loss is denied; a
strategy's own sizing applies to its signals; a repeated signal returns its first answer."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal

import grpc
import pytest
from trading.v1 import orders_pb2, types_pb2

from tests.e2e.conftest import Clients, embedded_overrides, running_embedded, write_config
from tests.e2e.test_trading_flow import TIMEOUT, order_status, ready_for_market_orders

T = types_pb2
# 0.1% of the starting equity of 100000: at most 100 lost if the stop-loss is hit.
RISKED = Decimal(100)


@pytest.fixture(scope="module")
def clients(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clients]:
    directory = tmp_path_factory.mktemp("signal-sizing")
    overrides = embedded_overrides(directory / "data") | {
        "signal_sizing": {
            "method": "risk_per_trade",
            "risk_percent": "0.1",
            "strategies": {"fixed": {"method": "fixed_quantity", "quantity": "0.002"}},
        }
    }
    with running_embedded(write_config(directory, overrides)) as running:
        ready_for_market_orders(running)
        yield running


def signal(clients: Clients, **fields: object) -> orders_pb2.SubmitSignalResponse:
    request = orders_pb2.SubmitSignalRequest(
        request_id=str(uuid.uuid4()),
        client_order_id=str(uuid.uuid4()),
        account_id="acct-signal-sizing",
        strategy_id="risk",
        instrument="BTC-USD",
        side=T.SIDE_BUY,
    )
    for name, value in fields.items():
        if isinstance(value, orders_pb2.ExitLevel):
            getattr(request, name).CopyFrom(value)
        else:
            setattr(request, name, value)
    response: orders_pb2.SubmitSignalResponse = clients.orders.SubmitSignal(
        request, timeout=TIMEOUT
    )
    return response


def orders_of(clients: Clients, account_id: str) -> list[orders_pb2.Order]:
    request = orders_pb2.ListOrdersRequest(account_id=account_id)
    return list(clients.orders.ListOrders(request, timeout=TIMEOUT).orders)


def test_a_signal_with_a_stop_loss_and_take_profit_becomes_a_bracket_sized_by_risk(
    clients: Clients,
) -> None:
    # 50 bps each way: far enough not to be crossed before the checks.
    response = signal(
        clients,
        account_id="acct-signal-bracket",
        take_profit=orders_pb2.ExitLevel(distance_bps="50"),
        stop_loss=orders_pb2.ExitLevel(distance_bps="50"),
    )
    entry = response.order
    assert entry.status == T.ORDER_STATUS_SUBMITTED, entry
    assert (entry.order_class, entry.role) == (T.ORDER_CLASS_BRACKET, T.ORDER_ROLE_ENTRY)
    assert entry.signal_id == response.signal_id
    take_profit, stop_loss = response.legs
    assert (take_profit.role, stop_loss.role) == (T.ORDER_ROLE_TAKE_PROFIT, T.ORDER_ROLE_STOP_LOSS)
    assert all(leg.status == T.ORDER_STATUS_HELD and leg.reduce_only for leg in response.legs)
    assert all(leg.side == T.SIDE_SELL for leg in response.legs)
    assert list(entry.child_order_ids) == [take_profit.order_id, stop_loss.order_id]
    assert (take_profit.order_type, stop_loss.order_type) == (
        T.ORDER_TYPE_LIMIT,
        T.ORDER_TYPE_STOP_MARKET,
    )
    trigger, limit = Decimal(stop_loss.trigger_price), Decimal(take_profit.limit_price)
    assert trigger < limit
    assert Decimal(entry.take_profit.limit_price) == limit
    assert Decimal(entry.stop_loss.trigger_price) == trigger
    # The entry was priced at the ask, at least trigger / 0.995 (the stop is 50 bps below it,
    # rounded down): what the entry loses at the stop is at most what it risks.
    quantity = Decimal(entry.quantity)
    assert quantity > 0
    assert quantity * (trigger / Decimal("0.995") - trigger) <= RISKED
    order_status(clients, entry, T.ORDER_STATUS_FILLED)


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"confidence": "1.5"}, "confidence"),
        ({"stop_loss": orders_pb2.ExitLevel(distance="-2.5")}, "stop_loss.distance"),
        ({"take_profit": orders_pb2.ExitLevel()}, "take_profit"),
    ],
)
def test_a_malformed_confidence_or_exit_is_invalid_argument_and_stores_nothing(
    clients: Clients, fields: dict[str, object], named: str
) -> None:
    account = f"acct-bad-{uuid.uuid4().hex[:8]}"
    with pytest.raises(grpc.RpcError) as refused:
        signal(clients, account_id=account, **fields)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (refused.value.details() or "").startswith(named)
    assert orders_of(clients, account) == []


def test_a_signal_sized_by_risk_without_a_stop_loss_is_denied_stop_loss_required(
    clients: Clients,
) -> None:
    order = signal(clients, account_id="acct-signal-no-stop").order
    assert order.status == T.ORDER_STATUS_DENIED
    assert order.denial_reason == T.DENIAL_REASON_STOP_LOSS_REQUIRED
    assert "stop_loss" in order.status_message


def test_a_strategys_own_sizing_and_the_confidence_size_its_signals(clients: Clients) -> None:
    order = signal(clients, account_id="acct-signal-fixed", strategy_id="fixed").order
    assert order.status == T.ORDER_STATUS_SUBMITTED, order
    assert Decimal(order.quantity) == Decimal("0.002")
    halved = signal(
        clients, account_id="acct-signal-fixed", strategy_id="fixed", confidence="0.5"
    ).order
    assert Decimal(halved.quantity) == Decimal("0.001")


def test_a_repeated_signal_with_exits_at_a_distance_returns_its_first_answer(
    clients: Clients,
) -> None:
    ids = {"request_id": str(uuid.uuid4()), "client_order_id": str(uuid.uuid4())}
    exits = {
        "take_profit": orders_pb2.ExitLevel(distance_bps="80"),
        "stop_loss": orders_pb2.ExitLevel(distance="400"),
    }
    first = signal(clients, account_id="acct-signal-repeat", **ids, **exits)
    again = signal(clients, account_id="acct-signal-repeat", **ids, **exits)
    assert again.order.order_id == first.order.order_id
    assert [leg.order_id for leg in again.legs] == [leg.order_id for leg in first.legs]
    with pytest.raises(grpc.RpcError) as changed:
        signal(clients, account_id="acct-signal-repeat", **ids)  # no exits: another order
    assert changed.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "order_class" in (changed.value.details() or "")
    assert len(orders_of(clients, "acct-signal-repeat")) == 3  # the entry and its two exits
