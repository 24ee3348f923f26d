"""The CLI's pure helpers: parsing what people type and rendering what the servers answer."""

from __future__ import annotations

import io
import json
import socket
from datetime import UTC, datetime

import grpc
import pytest
from google.protobuf import timestamp_pb2
from rich.console import Console, RenderableType
from tradectl import render
from trading.v1 import market_data_pb2, orders_pb2, positions_pb2, types_pb2
from typer.testing import CliRunner

SERVER = render.Server("order-management", "--orders", "127.0.0.1:50051")


def as_text(renderable: RenderableType) -> str:
    console = Console(file=io.StringIO(), width=300, color_system=None)
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
    assert "order-1  FILLED" in line
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
