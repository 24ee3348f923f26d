"""Trading control over gRPC, in both the embedded and the distributed platform: cancel-all, a
halt that denies new orders while REDUCING lets reducing ones through, a guarded resume, an
emergency stop that cancels and flattens, ClosePosition by strategy; refused resumes; the state
across a restart; bad requests refused with INVALID_ARGUMENT."""

from __future__ import annotations

import time
import uuid
from datetime import UTC
from decimal import Decimal
from pathlib import Path

import grpc
import pytest
from trading.v1 import control_pb2, orders_pb2, positions_pb2, types_pb2

from tests.e2e.conftest import (
    Clients,
    ServiceProcesses,
    embedded_overrides,
    running_embedded,
    write_config,
)
from tests.e2e.test_trading_flow import (
    TIMEOUT,
    order_status,
    position_quantity,
    ready_for_market_orders,
    submit,
    wait_for_quote,
)
from tests.support import wait_until

BUY, SELL = types_pb2.SIDE_BUY, types_pb2.SIDE_SELL
FILLED = types_pb2.ORDER_STATUS_FILLED
ACTIVE, REDUCING, HALTED = (
    types_pb2.TRADING_STATE_ACTIVE,
    types_pb2.TRADING_STATE_REDUCING,
    types_pb2.TRADING_STATE_HALTED,
)


def new_id() -> str:
    return str(uuid.uuid4())


def bought(clients: Clients, account: str, quantity: str, **fields: object) -> orders_pb2.Order:
    order = submit(clients, account_id=account, quantity=quantity, **fields)
    return order_status(clients, order, types_pb2.ORDER_STATUS_FILLED)


def resting_bid(clients: Clients, account: str, **fields: object) -> orders_pb2.Order:
    """A buy limit far below the market: it rests at the venue."""
    fields = {"quantity": "0.01", "order_type": types_pb2.ORDER_TYPE_LIMIT, **fields}
    order = submit(clients, account_id=account, limit_price="1000", **fields)
    return order_status(clients, order, types_pb2.ORDER_STATUS_ACCEPTED)


def set_state(
    clients: Clients, account: str, state: types_pb2.TradingState.ValueType, reason: str = "e2e"
) -> control_pb2.TradingStateRecord:
    request = control_pb2.SetTradingStateRequest(
        request_id=new_id(), account_id=account, state=state, reason=reason
    )
    return clients.control.SetTradingState(request, timeout=TIMEOUT).trading_state


def test_cancel_all_cancels_the_matching_open_orders_and_a_repeat_cancels_nothing_more(
    platform_clients: Clients,
) -> None:
    clients = platform_clients
    ready_for_market_orders(clients)
    account = "acct-cancel-all"
    first = resting_bid(clients, account)
    second = resting_bid(clients, account, strategy_id="other")
    selling = submit(
        clients,
        account_id=account,
        side=SELL,
        instrument="ETH-USD",
        quantity="0.01",
        order_type=types_pb2.ORDER_TYPE_LIMIT,
        limit_price="900000",
    )
    order_status(clients, selling, types_pb2.ORDER_STATUS_ACCEPTED)

    request = orders_pb2.CancelAllOrdersRequest(
        request_id=new_id(), account_id=account, instrument="BTC-USD"
    )
    answer = clients.orders.CancelAllOrders(request, timeout=TIMEOUT).orders
    assert {o.order_id for o in answer} == {first.order_id, second.order_id}
    for order in (first, second):
        order_status(clients, order, types_pb2.ORDER_STATUS_CANCELED)
    again = clients.orders.CancelAllOrders(request, timeout=TIMEOUT).orders
    assert again == []  # nothing open matches any more
    still = order_status(clients, selling, types_pb2.ORDER_STATUS_ACCEPTED)
    assert still.version == selling.version + 1  # only its venue acceptance since


def test_reducing_lets_only_reducing_orders_through_halted_none_and_a_checked_resume_reopens(
    platform_clients: Clients,
) -> None:
    clients = platform_clients
    ready_for_market_orders(clients)
    account = "acct-halt"
    bought(clients, account, "0.02")

    reducing = set_state(clients, account, REDUCING, "daily loss limit near")
    assert (reducing.state, reducing.version, reducing.reason) == (
        REDUCING,
        1,
        "daily loss limit near",
    )
    more = submit(clients, account_id=account, quantity="0.01")
    assert more.denial_reason == types_pb2.DENIAL_REASON_TRADING_REDUCING
    flip = submit(clients, account_id=account, side=SELL, quantity="0.03")
    assert flip.denial_reason == types_pb2.DENIAL_REASON_TRADING_REDUCING
    reduce = submit(clients, account_id=account, side=SELL, quantity="0.01")
    assert reduce.status == types_pb2.ORDER_STATUS_SUBMITTED
    order_status(clients, reduce, types_pb2.ORDER_STATUS_FILLED)
    other = submit(clients, account_id="acct-untouched", quantity="0.01")
    assert other.status == types_pb2.ORDER_STATUS_SUBMITTED  # one account's state is its own

    set_state(clients, account, HALTED)
    halted = submit(clients, account_id=account, side=SELL, quantity="0.005")
    assert halted.denial_reason == types_pb2.DENIAL_REASON_TRADING_HALTED

    position_quantity(clients, account, "0.01")  # position-management agrees: resume checks it
    resumed = set_state(clients, account, ACTIVE, "reviewed")
    assert (resumed.state, resumed.version) == (ACTIVE, 3)
    shown = clients.control.GetTradingState(
        control_pb2.GetTradingStateRequest(account_id=account), timeout=TIMEOUT
    )
    assert shown.effective_state == ACTIVE
    assert submit(clients, account_id=account, quantity="0.01").status == (
        types_pb2.ORDER_STATUS_SUBMITTED
    )


def test_an_emergency_stop_halts_cancels_and_flattens_the_account(
    platform_clients: Clients,
) -> None:
    clients = platform_clients
    ready_for_market_orders(clients)
    account = "acct-stop"
    bought(clients, account, "0.02", strategy_id="trend")
    bought(clients, account, "0.01", strategy_id="carry")
    resting = resting_bid(clients, account)

    request = control_pb2.EmergencyStopRequest(
        request_id=new_id(), account_id=account, reason="runaway strategy", flatten=True
    )
    stop = clients.control.EmergencyStop(request, timeout=TIMEOUT)
    assert stop.trading_state.state == HALTED
    assert [o.order_id for o in stop.canceled_orders] == [resting.order_id]
    assert list(stop.flattening_accounts) == [account]

    order_status(clients, resting, types_pb2.ORDER_STATUS_CANCELED)
    position_quantity(clients, account, "0")
    closing = closing_orders(clients, account, 2)
    assert sorted((o.strategy_id, o.quantity, o.side, o.reduce_only) for o in closing) == [
        ("carry", "0.01", SELL, True),
        ("trend", "0.02", SELL, True),
    ]
    denied = submit(clients, account_id=account, quantity="0.01")
    assert denied.denial_reason == types_pb2.DENIAL_REASON_TRADING_HALTED
    repeat = clients.control.EmergencyStop(request, timeout=TIMEOUT)
    assert (repeat.trading_state.version, list(repeat.canceled_orders)) == (1, [])


def closing_orders(clients: Clients, account: str, count: int) -> list[orders_pb2.Order]:
    """The account's filled reduce-only orders, once there are `count`."""

    def filled() -> list[orders_pb2.Order] | None:
        listed = clients.orders.ListOrders(
            orders_pb2.ListOrdersRequest(
                account_id=account, statuses=[types_pb2.ORDER_STATUS_FILLED]
            ),
            timeout=TIMEOUT,
        ).orders
        closing = [o for o in listed if o.reduce_only]
        return closing if len(closing) >= count else None

    return wait_until(filled, TIMEOUT, f"{account}'s {count} closing orders to fill")


def test_close_position_flattens_one_instrument_and_a_repeat_answers_the_same_orders(
    embedded_clients: Clients,
) -> None:
    clients = embedded_clients
    ready_for_market_orders(clients)
    account = "acct-close"
    bought(clients, account, "0.03")
    bought(clients, account, "0.1", instrument="ETH-USD")
    request = orders_pb2.ClosePositionRequest(
        request_id=new_id(), account_id=account, instrument="BTC-USD"
    )
    answer = clients.orders.ClosePosition(request, timeout=TIMEOUT)
    assert (list(answer.canceled_orders), answer.pending) == ([], False)
    [closing] = answer.closing_orders
    assert (closing.side, closing.quantity, closing.reduce_only) == (SELL, "0.03", True)
    order_status(clients, closing, types_pb2.ORDER_STATUS_FILLED)
    position_quantity(clients, account, "0")
    repeat = clients.orders.ClosePosition(request, timeout=TIMEOUT)
    assert [o.order_id for o in repeat.closing_orders] == [closing.order_id]
    held = clients.positions.GetPosition(
        positions_pb2.GetPositionRequest(account_id=account, instrument="ETH-USD"), timeout=TIMEOUT
    ).position
    assert Decimal(held.quantity) == Decimal("0.1")  # ETH-USD is left as it is


def test_a_resume_is_refused_while_position_management_does_not_answer(
    distributed: tuple[Clients, ServiceProcesses],
) -> None:
    clients, services = distributed
    ready_for_market_orders(clients)
    set_state(clients, "", HALTED, "exchange outage")
    services.processes["position-management"].kill()
    services.processes["position-management"].wait()
    with pytest.raises(grpc.RpcError) as refused:
        set_state(clients, "", ACTIVE)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "position-management did not answer" in str(refused.value.details())
    platform = clients.control.GetTradingState(control_pb2.GetTradingStateRequest())
    assert platform.platform.state == HALTED


def test_a_resume_is_refused_on_a_stale_quote_and_a_halt_survives_a_restart(
    tmp_path: Path,
) -> None:
    overrides = {
        **embedded_overrides(tmp_path / "data"),
        "market_data": {"interval_ms": 60_000},  # one quote at start, the next a minute later
        "trading_control": {"resume_max_quote_age_ms": 300},
    }
    config = write_config(tmp_path, overrides)
    with running_embedded(config) as clients:
        ready_for_market_orders(clients)
        set_state(clients, "acct-restart", HALTED, "before the restart")

    with running_embedded(config) as clients:
        ready_for_market_orders(clients)
        denied = submit(clients, account_id="acct-restart")
        assert denied.denial_reason == types_pb2.DENIAL_REASON_TRADING_HALTED

        wait_until(lambda: quote_age_s(clients) > 0.4, TIMEOUT, "the quote to be older than 300 ms")
        with pytest.raises(grpc.RpcError) as refused:
            set_state(clients, "acct-restart", ACTIVE)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        details = str(refused.value.details())
        assert details.startswith("cannot move account acct-restart to ACTIVE: ")
        assert "the quote of BTC-USD is" in details and "ms old (at most 300)" in details
        shown = clients.control.GetTradingState(
            control_pb2.GetTradingStateRequest(account_id="acct-restart"), timeout=TIMEOUT
        )
        assert [(a.state, a.version) for a in shown.accounts] == [(HALTED, 1)]


@pytest.mark.parametrize(
    ("method", "request_", "message"),
    [
        (
            "CancelAllOrders",
            orders_pb2.CancelAllOrdersRequest(request_id="r"),
            "account_id is required",
        ),
        (
            "CancelAllOrders",
            orders_pb2.CancelAllOrdersRequest(
                request_id="r", account_id="a", side=types_pb2.Side.ValueType(7)
            ),
            "side: 7 is not a side",
        ),
        (
            "ClosePosition",
            orders_pb2.ClosePositionRequest(request_id="r", account_id="a", instrument="XYZ"),
            "instrument 'XYZ' is not configured",
        ),
        (
            "SetTradingState",
            control_pb2.SetTradingStateRequest(request_id="r", reason="x"),
            "state must be ACTIVE, REDUCING or HALTED",
        ),
        (
            "SetTradingState",
            control_pb2.SetTradingStateRequest(request_id="r", state=HALTED),
            "reason is required",
        ),
        (
            "EmergencyStop",
            control_pb2.EmergencyStopRequest(request_id="r", reason="x" * 513),
            "reason must be at most 512 characters, got 513",
        ),
    ],
)
def test_a_malformed_control_request_is_refused_and_changes_nothing(
    embedded: tuple[Clients, object], method: str, request_: object, message: str
) -> None:
    clients, _ = embedded
    stub = clients.control if method in ("SetTradingState", "EmergencyStop") else clients.orders
    with pytest.raises(grpc.RpcError) as refused:
        getattr(stub, method)(request_, timeout=TIMEOUT)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert str(refused.value.details()).startswith(message)
    state = clients.control.GetTradingState(control_pb2.GetTradingStateRequest(), timeout=TIMEOUT)
    assert (state.platform.state, state.platform.version, list(state.accounts)) == (ACTIVE, 0, [])


def test_a_close_refused_for_a_stale_quote_waits_and_goes_ahead_on_the_next_quote(
    tmp_path: Path,
) -> None:
    overrides = {
        **embedded_overrides(tmp_path / "data"),
        "market_data": {"interval_ms": 1500},
        "risk": {"max_quote_age_ms": 1000},  # each quote is stale for its last 500 ms
    }
    with running_embedded(write_config(tmp_path, overrides)) as clients:
        account = "acct-stale-close"

        def filled_buy() -> orders_pb2.Order | None:
            order = submit(clients, account_id=account, quantity="0.02")
            return None if order.status == types_pb2.ORDER_STATUS_DENIED else order

        order_status(clients, wait_until(filled_buy, TIMEOUT, "a fresh quote"), FILLED)
        wait_until(lambda: quote_age_s(clients) > 1.1, TIMEOUT, "the quote to go stale")
        request = orders_pb2.ClosePositionRequest(request_id=new_id(), account_id=account)
        waiting = clients.orders.ClosePosition(request, timeout=TIMEOUT)
        assert (waiting.pending, list(waiting.closing_orders)) == (True, [])

        def sent() -> orders_pb2.ClosePositionResponse | None:
            answer = clients.orders.ClosePosition(request, timeout=TIMEOUT)
            return None if answer.pending else answer

        done = wait_until(sent, TIMEOUT, "the next quote to send the closing order")
        [closing] = done.closing_orders
        assert (closing.quantity, closing.side, closing.reduce_only) == ("0.02", SELL, True)
        order_status(clients, closing, FILLED)
        position_quantity(clients, account, "0")


def quote_age_s(clients: Clients) -> float:
    quote = wait_for_quote(clients)
    return time.time() - quote.quote_time.ToDatetime(tzinfo=UTC).timestamp()
