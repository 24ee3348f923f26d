"""Queries and request checking over real gRPC against the embedded platform: listing and
paging orders, quotes, positions, streams, and how malformed or refused requests are answered."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterable
from decimal import Decimal

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from trading.v1 import execution_pb2, orders_pb2, positions_pb2, types_pb2
from trading_core.runtime import Platform

from tests.e2e.conftest import Clients
from tests.e2e.test_trading_flow import (
    TIMEOUT,
    order_status,
    ready_for_market_orders,
    submit,
    wait_for_quote,
)
from tests.support import wait_until

Embedded = tuple[Clients, Platform]


def rpc_error(call: Callable[[], object]) -> grpc.RpcError:
    """The gRPC error that `call` raises."""
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value


def list_orders(clients: Clients, **fields: object) -> orders_pb2.ListOrdersResponse:
    request = orders_pb2.ListOrdersRequest(**fields)  # type: ignore[arg-type]
    return clients.orders.ListOrders(request, timeout=TIMEOUT)


def resting_limit(clients: Clients, account_id: str, instrument: str = "BTC-USD") -> str:
    """A GTC buy far below any price the walk reaches: accepted, then rests on the venue."""
    return submit(
        clients,
        account_id=account_id,
        instrument=instrument,
        order_type=types_pb2.ORDER_TYPE_LIMIT,
        time_in_force=types_pb2.TIME_IN_FORCE_GTC,
        quantity="1",
        limit_price="100",
    ).order_id


def denied(clients: Clients, account_id: str) -> str:
    """An order refused by the platform (off the step): stored, never routed."""
    order = submit(clients, account_id=account_id, quantity="0.00015")
    assert order.status == types_pb2.ORDER_STATUS_DENIED
    return order.order_id


def signal(clients: Clients, **fields: object) -> orders_pb2.SubmitSignalResponse:
    request = orders_pb2.SubmitSignalRequest(
        request_id=str(uuid.uuid4()),
        client_order_id=str(uuid.uuid4()),
        account_id="acct-signal",
        strategy_id="queries",
        instrument="ETH-USD",
        side=types_pb2.SIDE_BUY,
        limit_price="2000",
    )
    for name, value in fields.items():
        setattr(request, name, value)
    return clients.orders.SubmitSignal(request, timeout=TIMEOUT)


def ids(orders: Iterable[orders_pb2.Order]) -> list[str]:
    return [order.order_id for order in orders]


# ListOrders --------------------------------------------------------------------------------------


def test_list_orders_is_newest_first(embedded: Embedded) -> None:
    clients, _ = embedded
    submitted = [denied(clients, "acct-newest") for _ in range(3)]
    assert ids(list_orders(clients, account_id="acct-newest").orders) == submitted[::-1]


def test_list_orders_filters_by_account_instrument_status_and_open_only(
    embedded: Embedded,
) -> None:
    clients, _ = embedded
    btc_resting = resting_limit(clients, "acct-filter")
    eth_resting = resting_limit(clients, "acct-filter", instrument="ETH-USD")
    refused = denied(clients, "acct-filter")
    other_account = denied(clients, "acct-other")
    for order_id in (btc_resting, eth_resting):
        order = orders_pb2.Order(order_id=order_id, account_id="acct-filter")
        order_status(clients, order, types_pb2.ORDER_STATUS_ACCEPTED)

    mine = ids(list_orders(clients, account_id="acct-filter").orders)
    assert set(mine) == {btc_resting, eth_resting, refused}
    assert other_account in ids(list_orders(clients).orders)
    eth = list_orders(clients, account_id="acct-filter", instrument="ETH-USD")
    assert ids(eth.orders) == [eth_resting]
    only_denied = list_orders(
        clients, account_id="acct-filter", statuses=[types_pb2.ORDER_STATUS_DENIED]
    )
    assert ids(only_denied.orders) == [refused]
    denied_or_resting = list_orders(
        clients,
        statuses=[types_pb2.ORDER_STATUS_DENIED, types_pb2.ORDER_STATUS_ACCEPTED],
    )
    assert set(ids(denied_or_resting.orders)) == {btc_resting, eth_resting, refused, other_account}
    open_only = list_orders(clients, account_id="acct-filter", open_only=True)
    assert set(ids(open_only.orders)) == {btc_resting, eth_resting}


def test_list_orders_pages_through_every_order_once_in_order(embedded: Embedded) -> None:
    clients, _ = embedded
    submitted = [denied(clients, "acct-paging") for _ in range(5)]
    pages: list[list[str]] = []
    token = ""
    while True:
        page = list_orders(clients, account_id="acct-paging", page_size=2, page_token=token)
        pages.append(ids(page.orders))
        token = page.next_page_token
        if not token:
            break
        assert len(pages) < 5, "paging does not end"
    assert [len(page) for page in pages] == [2, 2, 1]
    assert [order_id for page in pages for order_id in page] == submitted[::-1]


def test_list_orders_exact_page_has_no_next_token(embedded: Embedded) -> None:
    clients, _ = embedded
    submitted = [denied(clients, "acct-exact") for _ in range(2)]
    page = list_orders(clients, account_id="acct-exact", page_size=2)
    assert ids(page.orders) == submitted[::-1]
    assert page.next_page_token == ""


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    "token",
    [
        "garbage!!",
        _b64("no separator"),
        _b64("not a time|some-order"),
        base64.urlsafe_b64encode(b"\xff\xfe|x").decode(),
    ],
)
def test_list_orders_with_a_garbage_page_token_is_invalid_argument(
    embedded: Embedded, token: str
) -> None:
    clients, _ = embedded
    denied(clients, "acct-token")
    error = rpc_error(lambda: list_orders(clients, page_token=token))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_token" in (error.details() or "")


def test_list_orders_with_a_token_of_a_time_without_offset_is_invalid_argument(
    embedded: Embedded,
) -> None:
    clients, _ = embedded
    denied(clients, "acct-naive-token")
    token = _b64("2024-01-01T00:00:00|some-order")
    error = rpc_error(lambda: list_orders(clients, page_token=token))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("page_size", [1001, -1])
def test_list_orders_page_size_out_of_range_is_invalid_argument(
    embedded: Embedded, page_size: int
) -> None:
    clients, _ = embedded
    error = rpc_error(lambda: list_orders(clients, page_size=page_size))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_size" in (error.details() or "")


@pytest.mark.parametrize("status", [99, types_pb2.ORDER_STATUS_UNSPECIFIED])
def test_list_orders_with_a_status_that_is_not_one_is_invalid_argument(
    embedded: Embedded, status: int
) -> None:
    clients, _ = embedded
    error = rpc_error(lambda: list_orders(clients, statuses=[status]))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "statuses" in (error.details() or "")


# GetQuote, GetPosition, StreamOrderEvents ------------------------------------------------------


def test_get_quote_without_an_instrument_is_invalid_argument(embedded: Embedded) -> None:
    clients, _ = embedded
    request = execution_pb2.GetQuoteRequest(instrument="")
    error = rpc_error(lambda: clients.router.GetQuote(request, timeout=TIMEOUT))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "instrument" in (error.details() or "")


def test_get_quote_of_an_unknown_instrument_is_not_found_naming_the_configured_ones(
    embedded: Embedded,
) -> None:
    clients, _ = embedded
    wait_for_quote(clients)
    request = execution_pb2.GetQuoteRequest(instrument="DOGE-USD")
    error = rpc_error(lambda: clients.router.GetQuote(request, timeout=TIMEOUT))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    details = error.details() or ""
    assert "DOGE-USD" in details
    for configured in ("BTC-USD", "ETH-USD", "SOL-USD"):
        assert configured in details


@pytest.mark.parametrize("missing", ["account_id", "instrument"])
def test_get_position_with_a_missing_field_is_invalid_argument_naming_it(
    embedded: Embedded, missing: str
) -> None:
    clients, _ = embedded
    request = positions_pb2.GetPositionRequest(account_id="acct-x", instrument="BTC-USD")
    setattr(request, missing, "")
    error = rpc_error(lambda: clients.positions.GetPosition(request, timeout=TIMEOUT))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert missing in (error.details() or "")


def test_get_position_never_traded_is_not_found(embedded: Embedded) -> None:
    clients, _ = embedded
    request = positions_pb2.GetPositionRequest(account_id="acct-never", instrument="BTC-USD")
    error = rpc_error(lambda: clients.positions.GetPosition(request, timeout=TIMEOUT))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert "acct-never" in (error.details() or "")


def test_stream_order_events_of_an_unknown_order_is_not_found(embedded: Embedded) -> None:
    clients, _ = embedded
    request = orders_pb2.StreamOrderEventsRequest(order_id="no-such-order", account_id="acct-1")
    stream = clients.orders.StreamOrderEvents(request, timeout=TIMEOUT)
    error = rpc_error(lambda: next(stream))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert "no-such-order" in (error.details() or "")


# SubmitSignal ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "named"),
    [({"request_id": ""}, "request_id"), ({"side": types_pb2.SIDE_UNSPECIFIED}, "side")],
)
def test_malformed_signal_is_invalid_argument_naming_the_field_and_creates_nothing(
    embedded: Embedded, fields: dict[str, object], named: str
) -> None:
    clients, _ = embedded
    error = rpc_error(lambda: signal(clients, account_id="acct-bad-signal", **fields))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert named in (error.details() or "")
    assert list(list_orders(clients, account_id="acct-bad-signal").orders) == []


def test_signal_for_an_unconfigured_instrument_is_denied_with_its_reason(
    embedded: Embedded,
) -> None:
    clients, _ = embedded
    order = signal(clients, instrument="DOGE-USD").order
    assert order.status == types_pb2.ORDER_STATUS_DENIED
    assert order.denial_reason == types_pb2.DENIAL_REASON_INSTRUMENT_NOT_CONFIGURED
    assert "DOGE-USD" in order.status_message


def test_repeated_signal_request_id_returns_the_original_order(embedded: Embedded) -> None:
    clients, _ = embedded
    ids_of_the_request = {"request_id": "sig-req-1", "client_order_id": "sig-coid-1"}
    first = signal(clients, **ids_of_the_request, account_id="acct-sig-repeat")
    again = signal(clients, **ids_of_the_request, account_id="acct-sig-repeat")
    assert again.order.order_id == first.order.order_id
    changed = rpc_error(
        lambda: signal(
            clients, **ids_of_the_request, account_id="acct-sig-repeat", limit_price="1000"
        )
    )
    assert changed.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "limit_price" in (changed.details() or "")
    assert again.signal_id == first.signal_id
    assert Decimal(again.order.quantity) == Decimal(first.order.quantity) == Decimal("0.5")
    listed = list_orders(clients, account_id="acct-sig-repeat").orders
    assert ids(listed) == [first.order.order_id]


# Streams and the order-value limit ---------------------------------------------------------------


def test_position_stream_delivers_the_position_update_of_a_fill(embedded: Embedded) -> None:
    clients, _ = embedded
    ready_for_market_orders(clients)
    request = positions_pb2.StreamPositionEventsRequest(account_id="acct-stream")
    stream = clients.positions.StreamPositionEvents(request, timeout=TIMEOUT)
    stream.initial_metadata()  # subscribed once the server has sent its headers
    try:
        order = submit(clients, account_id="acct-stream", quantity="0.3")
        filled = order_status(clients, order, types_pb2.ORDER_STATUS_FILLED)
        update = next(stream)
    finally:
        stream.cancel()
    position = update.position
    assert update.event_id
    assert (position.account_id, position.instrument) == ("acct-stream", "BTC-USD")
    assert Decimal(position.quantity) == Decimal("0.3")
    assert Decimal(position.average_price) == Decimal(filled.average_fill_price)
    assert Decimal(position.fees) == Decimal(filled.fees)


def test_order_above_the_max_order_value_is_denied_and_never_reaches_the_venue(
    embedded: Embedded,
) -> None:
    clients, _ = embedded
    ready_for_market_orders(clients)
    # 10 BTC at about 60000 is far above account_limits.max_order_value 250000.
    too_big = submit(clients, account_id="acct-limit", quantity="10")
    assert too_big.status == types_pb2.ORDER_STATUS_DENIED
    assert too_big.denial_reason == types_pb2.DENIAL_REASON_ORDER_VALUE_EXCEEDS_LIMIT
    assert "250000" in too_big.status_message

    # A later order of the same account travels the same path: once its fill is the whole
    # position, the denied order has had every chance to reach the venue and did not.
    small = submit(clients, account_id="acct-limit", quantity="0.01")
    order_status(clients, small, types_pb2.ORDER_STATUS_FILLED)
    position_request = positions_pb2.GetPositionRequest(
        account_id="acct-limit", instrument="BTC-USD"
    )

    def position_quantity() -> Decimal | None:
        try:
            position = clients.positions.GetPosition(position_request, timeout=TIMEOUT).position
        except grpc.RpcError:
            return None
        return Decimal(position.quantity)

    assert wait_until(position_quantity, TIMEOUT, "the small fill's position") == Decimal("0.01")
    stored = clients.orders.GetOrder(
        orders_pb2.GetOrderRequest(order_id=too_big.order_id, account_id=too_big.account_id),
        timeout=TIMEOUT,
    ).order
    assert stored.status == types_pb2.ORDER_STATUS_DENIED
    assert Decimal(stored.filled_quantity or "0") == 0
    assert stored.venue_order_id == ""


# The router's reconciliation API --------------------------------------------------------------


@pytest.mark.parametrize("missing", ["order_id", "account_id", "instrument"])
def test_query_order_with_a_missing_field_is_invalid_argument_naming_it_and_rejects_nothing(
    embedded: Embedded, missing: str
) -> None:
    clients, platform = embedded
    request = execution_pb2.QueryOrderRequest(
        order_id="order-q", account_id="acct-q", instrument="BTC-USD"
    )
    request.ClearField(missing)  # type: ignore[arg-type]
    error = rpc_error(lambda: clients.router.QueryOrder(request, timeout=TIMEOUT))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert missing in (error.details() or "")
    router = platform.service("execution-router")
    assert router.journal.records_of_order("order-q", "ExecutionReport") == []


@pytest.mark.parametrize(
    ("since_s", "until_s", "fields", "named"),
    [
        (None, 10, {}, "since_time"),
        (10, 10, {}, "before until_time"),
        (0, 10, {"page_size": 1001}, "page_size"),
        (0, 10, {"page_token": "x"}, "page_token"),
    ],
)
def test_list_fills_with_a_bad_window_or_page_is_invalid_argument_naming_it(
    embedded: Embedded, since_s: int | None, until_s: int, fields: dict[str, object], named: str
) -> None:
    clients, _ = embedded
    request = execution_pb2.ListFillsRequest(**fields)  # type: ignore[arg-type]
    if since_s is not None:
        request.since_time.seconds = since_s
    request.until_time.seconds = until_s
    error = rpc_error(lambda: clients.router.ListFills(request, timeout=TIMEOUT))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert named in (error.details() or "")


def test_list_fills_pages_through_the_reports_of_the_filled_orders_in_order(
    embedded: Embedded,
) -> None:
    clients, _ = embedded
    wait_for_quote(clients)
    ready_for_market_orders(clients)
    for _ in range(5):
        order_status(clients, submit(clients, quantity="0.001"), types_pb2.ORDER_STATUS_FILLED)
    window = {"since_time": Timestamp(seconds=0), "until_time": Timestamp(seconds=2**40)}
    count = clients.router.CountFills(execution_pb2.CountFillsRequest(**window), timeout=TIMEOUT)
    seen: list[str] = []
    token = ""
    while True:
        request = execution_pb2.ListFillsRequest(**window, page_size=3, page_token=token)
        page = clients.router.ListFills(request, timeout=TIMEOUT)
        seen += [r.execution_report.trade_id for r in page.reports if r.execution_report.trade_id]
        token = page.next_page_token
        if not token:
            break
    assert count.fill_count == len(seen) == len(set(seen)) >= 5
