"""The CLI's pure helpers: parsing what people type and rendering what the servers answer."""

from __future__ import annotations

import io
import json
import socket
import uuid
from collections.abc import Iterator
from concurrent import futures
from datetime import UTC, datetime

import grpc
import pytest
from google.protobuf import timestamp_pb2
from google.protobuf.message import Message
from rich.console import Console, RenderableType
from tradectl import render
from trading.v1 import (
    admin_pb2,
    market_data_pb2,
    orders_pb2,
    orders_pb2_grpc,
    positions_pb2,
    types_pb2,
)
from typer.testing import CliRunner

SERVER = render.Server("order-management", "--orders", "127.0.0.1:50051")


def as_text(renderable: RenderableType, width: int = 300) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(renderable)
    output = console.file
    assert isinstance(output, io.StringIO)
    return output.getvalue()


def stamp(moment: datetime) -> timestamp_pb2.Timestamp:
    result = timestamp_pb2.Timestamp()
    result.FromDatetime(moment)
    return result


def filled_order() -> orders_pb2.Order:
    return orders_pb2.Order(
        order_id="order-1",
        account_id="default",
        instrument="BTC-USD",
        side=types_pb2.SIDE_BUY,
        order_type=types_pb2.ORDER_TYPE_LIMIT,
        quantity="0.0100",
        limit_price="60010.00",
        status=types_pb2.ORDER_STATUS_FILLED,
        filled_quantity="0.0100",
        average_fill_price="60006.12000000",
        create_time=stamp(datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)),
    )


def denied_order() -> orders_pb2.Order:
    return orders_pb2.Order(
        order_id="order-2",
        status=types_pb2.ORDER_STATUS_DENIED,
        denial_reason=types_pb2.DENIAL_REASON_QUANTITY_NOT_ON_STEP,
        status_message="quantity 0.00001 is not a multiple of the step 0.0001",
    )


def test_enum_names_are_shown_without_their_prefix() -> None:
    assert render.enum_name(types_pb2.Side, types_pb2.SIDE_BUY) == "BUY"
    assert render.enum_name(types_pb2.OrderStatus, types_pb2.ORDER_STATUS_FILLED) == "FILLED"
    reason = types_pb2.DENIAL_REASON_QUANTITY_NOT_ON_STEP
    assert render.enum_name(types_pb2.DenialReason, reason) == "QUANTITY_NOT_ON_STEP"


def test_an_enum_number_unknown_to_this_client_is_shown_as_digits() -> None:
    assert render.enum_name(types_pb2.OrderStatus, 42) == "42"


@pytest.mark.parametrize("text", ["buy", "BUY", "Buy", " buy ", "side_buy"])
def test_side_is_parsed_case_insensitively(text: str) -> None:
    assert render.parse_side(text) == types_pb2.SIDE_BUY


@pytest.mark.parametrize("text", ["hold", "", "unspecified"])
def test_an_unknown_side_is_refused_with_the_choices(text: str) -> None:
    with pytest.raises(ValueError, match="side must be one of buy, sell"):
        render.parse_side(text)


def test_time_in_force_is_parsed_case_insensitively() -> None:
    assert render.parse_time_in_force("IOC") == types_pb2.TIME_IN_FORCE_IOC
    assert render.parse_time_in_force("gtc") == types_pb2.TIME_IN_FORCE_GTC


def test_a_grpc_error_is_one_line_of_status_and_details() -> None:
    line = render.format_rpc_error(grpc.StatusCode.NOT_FOUND, "order x not found", SERVER, 10)
    assert line == "NOT_FOUND: order x not found"


def test_an_unreachable_server_names_its_address_and_how_to_start_the_platform() -> None:
    line = render.format_rpc_error(grpc.StatusCode.UNAVAILABLE, "Connection refused", SERVER, 10)
    assert line.startswith("UNAVAILABLE: cannot reach order-management at 127.0.0.1:50051")
    assert "make run" in line
    assert "--orders HOST:PORT" in line


def test_a_deadline_names_the_timeout_to_raise() -> None:
    line = render.format_rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline", SERVER, 2.5)
    assert line.startswith("DEADLINE_EXCEEDED: order-management at 127.0.0.1:50051")
    assert "2.5s" in line
    assert "--timeout" in line


def test_an_unset_timestamp_is_blank_and_a_set_one_is_utc_iso() -> None:
    assert render.format_time(timestamp_pb2.Timestamp()) == ""
    moment = stamp(datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC))
    assert render.format_time(moment) == "2025-01-02T03:04:05.678+00:00"


def test_json_output_keeps_decimal_strings_exactly() -> None:
    response = orders_pb2.GetOrderResponse(order=filled_order())
    order = json.loads(render.to_json(response))["order"]
    assert order["averageFillPrice"] == "60006.12000000"
    assert order["quantity"] == "0.0100"
    assert order["status"] == "ORDER_STATUS_FILLED"


def test_orders_table_shows_decimals_exactly_as_received() -> None:
    text = as_text(render.orders_table([filled_order()]))
    for shown in ("order-1", "BUY", "LIMIT", "0.0100", "60010.00", "60006.12000000", "FILLED"):
        assert shown in text


def test_order_detail_leaves_out_empty_fields() -> None:
    text = as_text(render.order_detail(filled_order()))
    assert "60006.12000000" in text
    assert "Venue order ID" not in text


def test_a_denied_order_has_a_line_with_reason_code_and_message() -> None:
    line = render.denial_line(denied_order())
    assert line is not None
    assert line.plain == (
        "DENIED QUANTITY_NOT_ON_STEP: quantity 0.00001 is not a multiple of the step 0.0001"
    )
    assert "red" in str(line.style)


def test_a_filled_order_has_no_denial_line() -> None:
    assert render.denial_line(filled_order()) is None


def test_an_event_line_shows_type_order_status_filled_of_quantity_and_price() -> None:
    event = orders_pb2.StreamOrderEventsResponse(
        event_type="ExecutionReport",
        event_time=stamp(datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)),
        order=filled_order(),
    )
    line = render.event_line(event).plain
    assert line.startswith("2025-01-02T03:04:05.000+00:00  ExecutionReport")
    assert "order-1  BTC-USD BUY  FILLED" in line
    assert "0.0100/0.0100 @ 60006.12000000" in line


def test_positions_and_quote_tables_show_decimals_exactly_as_received() -> None:
    position = positions_pb2.Position(
        account_id="default", instrument="ETH-USD", quantity="-1.500", unrealized_pnl="12.3400"
    )
    assert "-1.500" in as_text(render.positions_table([position]))
    assert "12.3400" in as_text(render.positions_table([position]))
    quote = market_data_pb2.Quote(instrument="ETH-USD", bid_price="2999.50", ask_price="3000.10")
    text = as_text(render.quote_table(quote))
    assert "2999.50" in text
    assert "3000.10" in text


def orders_of_every_status() -> list[orders_pb2.Order]:
    """One order per status, with real-looking (uuid) ids and long decimals."""
    orders = []
    for number, status in enumerate(types_pb2.OrderStatus.values()[1:], start=1):
        order = filled_order()
        order.order_id = str(uuid.UUID(int=number * 7919, version=4))
        order.account_id = f"account-with-a-long-name-{number}"
        order.status = status
        order.average_fill_price = "60006.123456789012"
        orders.append(order)
    return orders


def test_orders_table_at_80_columns_keeps_every_id_whole_and_leaves_columns_out() -> None:
    orders = orders_of_every_status()
    listing = render.orders_table(orders, width=80)
    text = as_text(listing, width=80)
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= listing.width <= 80
    for order in orders:
        assert order.order_id in text
    assert "PARTIALLY_FILLED" in text and "PENDING_CANCEL" in text
    assert listing.hidden == ("Filled", "Limit", "Avg price", "Type", "Account", "Created")
    note = listing.note()
    assert note is not None
    assert note.plain.startswith("Not shown at this width: Filled, Limit")


def test_columns_fold_away_by_priority_the_least_important_first() -> None:
    orders = orders_of_every_status()
    wide = render.orders_table(orders)
    assert wide.hidden == ()
    assert wide.note() is None
    widths = [render.orders_table(orders, width).hidden for width in range(wide.width, 30, -1)]
    hidden_in_order: list[str] = []
    for hidden in widths:
        hidden_in_order += [header for header in hidden if header not in hidden_in_order]
    assert hidden_in_order == [
        "Created", "Account", "Type", "Limit", "Avg price", "Filled", "Qty", "Side",
        "Instrument",
    ]  # fmt: skip


def test_a_table_narrower_than_its_ids_keeps_them_whole_and_says_how_wide_it_is() -> None:
    orders = orders_of_every_status()
    listing = render.orders_table(orders, width=30)
    assert {"Instrument", "Created"} <= set(listing.hidden)
    assert listing.width > 30
    text = as_text(listing, width=listing.width)
    for order in orders:
        assert order.order_id in text
    assert "…" not in text


def dead_letter(letter_id: int) -> admin_pb2.DeadLetter:
    return admin_pb2.DeadLetter(
        id=letter_id,
        subscription="executions.position-management",
        message_id=str(1000 + letter_id),
        ordering_key=str(uuid.UUID(int=letter_id)),
        error='ValueError("fill trade-7 of order 0b3c2a4e: last_quantity must be a decimal '
        "string such as 1.5 or 2e-3, got 'abc'\")",
        attempts=5,
        payload_size=245,
        create_time=stamp(datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)),
    )


def test_dead_letters_at_80_columns_keep_ids_and_keys_whole_and_wrap_the_error() -> None:
    letters = [dead_letter(7), dead_letter(12)]
    listing = render.dead_letters_table(letters, "position-management", width=80)
    text = as_text(listing, width=80)
    assert listing.width <= 80
    assert "…" not in text
    for letter in letters:
        assert letter.ordering_key in text
        assert f"\n{letter.id:>2} " in f"\n{text}"
    words = " ".join(text.split())
    assert "got 'abc'" in words  # the whole error, wrapped over lines
    assert "executions " in text and "executions.position-management" not in text
    assert listing.hidden == ("Attempts", "Parked", "Size", "Message ID")


def test_dead_letters_on_a_wide_screen_show_every_column_on_one_line_each() -> None:
    letters = [dead_letter(7)]
    listing = render.dead_letters_table(letters, "position-management", width=300)
    text = as_text(listing, width=300)
    assert listing.hidden == ()
    assert letters[0].error in text
    assert "2025-01-02T03:04:05.000+00:00" in text and "245 B" in text


def test_unresolved_table_shows_kind_subject_and_the_whole_detail() -> None:
    issue = admin_pb2.UnresolvedIssue(
        kind="execution-report",
        subject=str(uuid.UUID(int=3)),
        detail="order x in status FILLED cannot be partially filled",
    )
    text = as_text(render.unresolved_table([issue], width=80), width=80)
    assert issue.subject in text and "execution-report" in text
    assert issue.detail in " ".join(text.split())


def test_json_of_an_empty_list_is_an_empty_array() -> None:
    assert render.to_json_list([]) == "[]"


def test_json_output_names_every_field_even_one_left_at_its_default() -> None:
    order = json.loads(render.to_json(orders_pb2.GetOrderResponse(order=filled_order())))["order"]
    assert order["fees"] == ""
    assert order["denialReason"] == "DENIAL_REASON_UNSPECIFIED"


@pytest.mark.parametrize(
    ("status", "answered"),
    [
        (types_pb2.ORDER_STATUS_SUBMITTED, False),
        (types_pb2.ORDER_STATUS_ACCEPTED, True),
        (types_pb2.ORDER_STATUS_PARTIALLY_FILLED, True),
        (types_pb2.ORDER_STATUS_FILLED, True),
        (types_pb2.ORDER_STATUS_REJECTED, True),
        (types_pb2.ORDER_STATUS_DENIED, True),
        (types_pb2.ORDER_STATUS_EXPIRED, True),
    ],
)
def test_submit_wait_of_a_resting_limit_order_ends_once_it_is_past_submitted(
    status: types_pb2.OrderStatus.ValueType, answered: bool
) -> None:
    order = orders_pb2.Order(
        status=status,
        order_type=types_pb2.ORDER_TYPE_LIMIT,
        time_in_force=types_pb2.TIME_IN_FORCE_GTC,
    )
    assert render.venue_has_answered(order) is answered


@pytest.mark.parametrize(
    ("order_type", "time_in_force"),
    [
        (types_pb2.ORDER_TYPE_MARKET, types_pb2.TIME_IN_FORCE_GTC),
        (types_pb2.ORDER_TYPE_LIMIT, types_pb2.TIME_IN_FORCE_IOC),
        (types_pb2.ORDER_TYPE_LIMIT, types_pb2.TIME_IN_FORCE_FOK),
    ],
)
def test_submit_wait_of_an_order_that_cannot_rest_ends_at_its_final_status(
    order_type: types_pb2.OrderType.ValueType, time_in_force: types_pb2.TimeInForce.ValueType
) -> None:
    def order(status: types_pb2.OrderStatus.ValueType) -> orders_pb2.Order:
        return orders_pb2.Order(status=status, order_type=order_type, time_in_force=time_in_force)

    assert not render.venue_has_answered(order(types_pb2.ORDER_STATUS_ACCEPTED))
    assert not render.venue_has_answered(order(types_pb2.ORDER_STATUS_PARTIALLY_FILLED))
    assert render.venue_has_answered(order(types_pb2.ORDER_STATUS_FILLED))
    assert render.venue_has_answered(order(types_pb2.ORDER_STATUS_CANCELED))


def test_submit_wait_of_an_order_worked_by_an_algorithm_ends_once_the_router_accepts_it() -> None:
    twap = orders_pb2.Order(
        status=types_pb2.ORDER_STATUS_ACCEPTED,
        order_type=types_pb2.ORDER_TYPE_MARKET,
        execution=orders_pb2.ExecutionInstructions(algorithm=types_pb2.EXECUTION_ALGORITHM_TWAP),
    )
    assert render.venue_has_answered(twap)


def test_order_detail_shows_the_denial_reason_and_message() -> None:
    text = as_text(render.order_detail(denied_order()))
    assert "QUANTITY_NOT_ON_STEP" in text
    assert "quantity 0.00001 is not a multiple of the step 0.0001" in text


def unused_address() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"127.0.0.1:{port}"


def test_cli_against_an_unreachable_server_prints_one_red_line_and_exits_1() -> None:
    from tradectl.cli import app

    address = unused_address()
    result = CliRunner().invoke(
        app, ["--orders", address, "order", "get", "order-1", "--account", "acct-1"]
    )
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"UNAVAILABLE: cannot reach order-management at {address}")
    assert "Traceback" not in result.output


def test_cli_refuses_an_unknown_side_before_calling_any_server() -> None:
    from tradectl.cli import app

    result = CliRunner().invoke(
        app, ["--orders", unused_address(), "order", "submit", "BTC-USD", "hold", "1"]
    )
    assert result.exit_code == 2
    assert "side must be one of buy, sell" in result.output


class RecordingOrderService(orders_pb2_grpc.OrderServiceServicer):
    """A real gRPC server that answers every call with one order and keeps the requests."""

    def __init__(self) -> None:
        self.requests: list[Message] = []

    def CancelOrder(  # noqa: N802
        self, request: orders_pb2.CancelOrderRequest, context: grpc.ServicerContext
    ) -> orders_pb2.CancelOrderResponse:
        self.requests.append(request)
        order = orders_pb2.Order(order_id=request.order_id, account_id=request.account_id)
        order.status = types_pb2.ORDER_STATUS_PENDING_CANCEL
        return orders_pb2.CancelOrderResponse(order=order)

    def GetOrder(  # noqa: N802
        self, request: orders_pb2.GetOrderRequest, context: grpc.ServicerContext
    ) -> orders_pb2.GetOrderResponse:
        self.requests.append(request)
        return orders_pb2.GetOrderResponse(order=orders_pb2.Order(order_id=request.order_id))


@pytest.fixture
def recording_server() -> Iterator[tuple[str, RecordingOrderService]]:
    # Only CancelOrder and GetOrder are called: the others stay the stubs' abstract ones.
    service = RecordingOrderService()  # type: ignore[abstract]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    orders_pb2_grpc.add_OrderServiceServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", service
    server.stop(None)


def test_cancel_sends_the_account_and_a_new_uuid_request_id_each_time(
    recording_server: tuple[str, RecordingOrderService],
) -> None:
    from tradectl.cli import app

    address, service = recording_server
    for _ in range(2):
        result = CliRunner().invoke(
            app, ["--orders", address, "order", "cancel", "order-7", "--account", "acct-9"]
        )
        assert result.exit_code == 0, result.output
        assert "PENDING_CANCEL" in result.stdout
    first, second = service.requests
    assert isinstance(first, orders_pb2.CancelOrderRequest)
    assert isinstance(second, orders_pb2.CancelOrderRequest)
    assert (first.order_id, first.account_id) == ("order-7", "acct-9")
    assert uuid.UUID(first.request_id).version == 4
    assert first.request_id != second.request_id


def test_cancel_repeats_a_given_request_id_and_get_sends_the_account(
    recording_server: tuple[str, RecordingOrderService],
) -> None:
    from tradectl.cli import app

    address, service = recording_server
    cancel = ["--orders", address, "order", "cancel", "o-1", "--account", "a-1"]
    assert CliRunner().invoke(app, [*cancel, "--request-id", "retry-1"]).exit_code == 0
    get = ["--orders", address, "order", "get", "o-1", "--account", "a-1"]
    assert CliRunner().invoke(app, get).exit_code == 0
    cancel_request, get_request = service.requests
    assert isinstance(cancel_request, orders_pb2.CancelOrderRequest)
    assert cancel_request.request_id == "retry-1"
    assert get_request == orders_pb2.GetOrderRequest(order_id="o-1", account_id="a-1")
