"""`tradectl`: submit, cancel, find and watch orders, list positions and quotes, run the platform.

Every command talks to the gRPC servers through the generated trading.v1 stubs. A gRPC error is
one red line `<STATUS>: <details>` on stderr and exit code 1; decimals are printed exactly as the
servers sent them.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, NoReturn, TypeVar

import grpc
import typer
from google.protobuf.message import Message
from rich.console import Console, RenderableType
from trading.v1 import (
    market_data_pb2,
    market_data_pb2_grpc,
    orders_pb2,
    orders_pb2_grpc,
    positions_pb2,
    positions_pb2_grpc,
    types_pb2,
)

from tradectl import render
from tradectl.serve import serve

# Tables piped to a file or another program are not cut to 80 columns, so ids stay whole.
PIPE_WIDTH = 240

app = typer.Typer(
    name="tradectl",
    help="Trade on the platform: orders, positions and quotes over gRPC; `serve` runs it.",
    no_args_is_help=True,
)
order_app = typer.Typer(help="Submit, cancel, find and watch orders.", no_args_is_help=True)
position_app = typer.Typer(help="Positions and P&L.", no_args_is_help=True)
app.add_typer(order_app, name="order")
app.add_typer(position_app, name="position")
app.command()(serve)


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"


@dataclass(frozen=True)
class Settings:
    """The global options, shared with every command through the typer context."""

    orders: str
    positions: str
    router: str
    timeout: float
    output: OutputFormat


@app.callback()
def main(
    ctx: typer.Context,
    *,
    orders: Annotated[
        str,
        typer.Option(metavar="HOST:PORT", envvar="TRADECTL_ORDERS", help="order-management."),
    ] = "127.0.0.1:50051",
    positions: Annotated[
        str,
        typer.Option(metavar="HOST:PORT", envvar="TRADECTL_POSITIONS", help="position-management."),
    ] = "127.0.0.1:50053",
    router: Annotated[
        str,
        typer.Option(metavar="HOST:PORT", envvar="TRADECTL_ROUTER", help="execution-router."),
    ] = "127.0.0.1:50052",
    timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds to wait for each answer.")
    ] = 10.0,
    output: Annotated[
        OutputFormat,
        typer.Option(case_sensitive=False, help="table for people, json for scripts."),
    ] = OutputFormat.TABLE,
) -> None:
    ctx.obj = Settings(orders, positions, router, timeout, output)


def _settings(ctx: typer.Context) -> Settings:
    settings: Settings = ctx.find_root().obj
    return settings


def _stdout() -> Console:
    console = Console()
    return console if console.is_terminal else Console(width=PIPE_WIDTH)


def _fail(message: str) -> NoReturn:
    # soft_wrap: one line however long, so scripts and people can grep it.
    Console(stderr=True, highlight=False, soft_wrap=True).print(
        message, style="bold red", markup=False
    )
    raise typer.Exit(1)


@contextmanager
def _channel(server: render.Server, timeout: float) -> Iterator[grpc.Channel]:
    """A channel to one server; a gRPC error inside becomes one red line and exit code 1."""
    with grpc.insecure_channel(server.address) as channel:
        try:
            yield channel
        except grpc.RpcError as error:
            _fail(render.format_rpc_error(error.code(), error.details() or "", server, timeout))


@contextmanager
def _order_service(settings: Settings) -> Iterator[orders_pb2_grpc.OrderServiceStub]:
    server = render.Server("order-management", "--orders", settings.orders)
    with _channel(server, settings.timeout) as channel:
        yield orders_pb2_grpc.OrderServiceStub(channel)


@contextmanager
def _position_service(settings: Settings) -> Iterator[positions_pb2_grpc.PositionServiceStub]:
    server = render.Server("position-management", "--positions", settings.positions)
    with _channel(server, settings.timeout) as channel:
        yield positions_pb2_grpc.PositionServiceStub(channel)


@contextmanager
def _execution_service(settings: Settings) -> Iterator[market_data_pb2_grpc.ExecutionServiceStub]:
    server = render.Server("execution-router", "--router", settings.router)
    with _channel(server, settings.timeout) as channel:
        yield market_data_pb2_grpc.ExecutionServiceStub(channel)


Parsed = TypeVar("Parsed")


def _parse(parser: Callable[[str], Parsed], text: str, param: str) -> Parsed:
    try:
        return parser(text)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint=param) from None


def _show(settings: Settings, message: Message, *renderables: RenderableType | None) -> None:
    if settings.output is OutputFormat.JSON:
        typer.echo(render.to_json(message))
        return
    console = _stdout()
    for renderable in renderables:
        if renderable is not None:
            console.print(renderable)


def _show_order(settings: Settings, response: Message, order: orders_pb2.Order) -> None:
    _show(settings, response, render.order_detail(order), render.denial_line(order))


def _new_client_order_id() -> str:
    return f"tradectl-{uuid.uuid4().hex[:16]}"


def _new_request_id() -> str:
    return str(uuid.uuid4())


AccountOption = Annotated[str, typer.Option("--account", help="Account id.")]
StrategyOption = Annotated[str, typer.Option("--strategy", help="Strategy id.")]
LimitPriceOption = Annotated[
    str, typer.Option("--limit", metavar="PRICE", help="Limit price; a market order without.")
]
ClientOrderIdOption = Annotated[
    str, typer.Option("--client-order-id", help="Your id of the order. Generated when omitted.")
]
RequestIdOption = Annotated[
    str,
    typer.Option(
        "--request-id", help="Idempotency key; repeat it to retry safely. A uuid4 when omitted."
    ),
]
InstrumentArgument = Annotated[
    str, typer.Argument(metavar="INSTRUMENT", help="Instrument, such as BTC-USD.")
]
SideArgument = Annotated[str, typer.Argument(metavar="SIDE", help="buy or sell.")]
OrderIdArgument = Annotated[
    str, typer.Argument(metavar="ORDER_ID", help="The platform's order id.")
]


@order_app.command("submit")
def submit_order(
    ctx: typer.Context,
    *,
    instrument: InstrumentArgument,
    side: SideArgument,
    quantity: Annotated[
        str, typer.Argument(metavar="QUANTITY", help="Decimal quantity, such as 0.5.")
    ],
    limit: LimitPriceOption = "",
    tif: Annotated[
        str, typer.Option(metavar="gtc|ioc", help="Time in force. The configured one when omitted.")
    ] = "",
    account: AccountOption = "default",
    strategy: StrategyOption = "manual",
    client_order_id: ClientOrderIdOption = "",
    request_id: RequestIdOption = "",
) -> None:
    """Submit an order: a limit order with --limit, otherwise a market order."""
    request = orders_pb2.SubmitOrderRequest(
        request_id=request_id or _new_request_id(),
        client_order_id=client_order_id or _new_client_order_id(),
        account_id=account,
        strategy_id=strategy,
        instrument=instrument,
        side=_parse(render.parse_side, side, "SIDE"),
        order_type=types_pb2.ORDER_TYPE_LIMIT if limit else types_pb2.ORDER_TYPE_MARKET,
        time_in_force=_parse(render.parse_time_in_force, tif, "--tif")
        if tif
        else types_pb2.TIME_IN_FORCE_UNSPECIFIED,
        quantity=quantity,
        limit_price=limit,
    )
    settings = _settings(ctx)
    with _order_service(settings) as orders:
        response = orders.SubmitOrder(request, timeout=settings.timeout)
    _show_order(settings, response, response.order)


@order_app.command("signal")
def submit_signal(
    ctx: typer.Context,
    *,
    instrument: InstrumentArgument,
    side: SideArgument,
    limit: LimitPriceOption = "",
    account: AccountOption = "default",
    strategy: StrategyOption = "manual",
    signal_id: Annotated[
        str, typer.Option("--signal-id", help="Your id of the signal. Generated when omitted.")
    ] = "",
    client_order_id: ClientOrderIdOption = "",
    request_id: RequestIdOption = "",
) -> None:
    """Submit a trading signal; the platform sizes it into an order."""
    request = orders_pb2.SubmitSignalRequest(
        request_id=request_id or _new_request_id(),
        client_order_id=client_order_id or _new_client_order_id(),
        account_id=account,
        strategy_id=strategy,
        signal_id=signal_id,
        instrument=instrument,
        side=_parse(render.parse_side, side, "SIDE"),
        limit_price=limit,
    )
    settings = _settings(ctx)
    with _order_service(settings) as orders:
        response = orders.SubmitSignal(request, timeout=settings.timeout)
    _show_order(settings, response, response.order)


@order_app.command("cancel")
def cancel_order(
    ctx: typer.Context,
    order_id: OrderIdArgument,
    account: Annotated[str, typer.Option(help="The account that owns the order.")],
    request_id: Annotated[
        str, typer.Option(help="Makes the call idempotent; a new UUID when omitted.")
    ] = "",
) -> None:
    """Ask the venue to cancel a working order."""
    settings = _settings(ctx)
    request = orders_pb2.CancelOrderRequest(
        order_id=order_id, account_id=account, request_id=request_id or str(uuid.uuid4())
    )
    with _order_service(settings) as orders:
        response = orders.CancelOrder(request, timeout=settings.timeout)
    _show_order(settings, response, response.order)


@order_app.command("get")
def get_order(
    ctx: typer.Context,
    order_id: OrderIdArgument,
    account: Annotated[str, typer.Option(help="The account that owns the order.")],
) -> None:
    """Show one order."""
    settings = _settings(ctx)
    request = orders_pb2.GetOrderRequest(order_id=order_id, account_id=account)
    with _order_service(settings) as orders:
        response = orders.GetOrder(request, timeout=settings.timeout)
    _show_order(settings, response, response.order)


@order_app.command("list")
def list_orders(
    ctx: typer.Context,
    account: Annotated[str, typer.Option(help="Only this account.")] = "",
    instrument: Annotated[str, typer.Option(help="Only this instrument.")] = "",
    open_only: Annotated[
        bool, typer.Option("--open", help="Only orders that can still trade.")
    ] = False,
    limit: Annotated[
        int, typer.Option(min=1, max=1000, metavar="N", help="At most N orders, newest first.")
    ] = 100,
) -> None:
    """List orders, newest first."""
    request = orders_pb2.ListOrdersRequest(
        account_id=account, instrument=instrument, open_only=open_only, page_size=limit
    )
    settings = _settings(ctx)
    with _order_service(settings) as orders:
        response = orders.ListOrders(request, timeout=settings.timeout)
    _show(settings, response, render.orders_table(response.orders))


@order_app.command("watch")
def watch_orders(
    ctx: typer.Context,
    account: Annotated[str, typer.Option(help="Only this account.")] = "",
    order_id: Annotated[str, typer.Option("--order-id", help="Only this order.")] = "",
    count: Annotated[
        int | None, typer.Option(min=1, metavar="N", help="Stop after N events.")
    ] = None,
) -> None:
    """Stream order events live, one line each, until Ctrl-C (or --count events)."""
    settings = _settings(ctx)
    request = orders_pb2.StreamOrderEventsRequest(account_id=account, order_id=order_id)
    with _order_service(settings) as orders:
        stream = orders.StreamOrderEvents(request)
        try:
            _announce_watch(stream, settings.orders)
            for seen, event in enumerate(stream, start=1):
                _show_event(settings, event)
                if count is not None and seen >= count:
                    break
        except KeyboardInterrupt:
            pass
        finally:
            stream.cancel()


def _announce_watch(stream: grpc.Call, address: str) -> None:
    """Says on stderr that the stream is open, once the server has answered its headers."""
    stream.initial_metadata()
    if stream.is_active():
        Console(stderr=True).print(
            f"Watching order events on {address} (Ctrl-C to stop)", style="dim", markup=False
        )


def _show_event(settings: Settings, event: orders_pb2.StreamOrderEventsResponse) -> None:
    if settings.output is OutputFormat.JSON:
        typer.echo(render.to_json(event, indent=None))
    else:
        _stdout().print(render.event_line(event))
    sys.stdout.flush()


@position_app.command("list")
def list_positions(
    ctx: typer.Context,
    account: Annotated[str, typer.Option(help="Only this account.")] = "",
) -> None:
    """List positions with their P&L."""
    settings = _settings(ctx)
    with _position_service(settings) as positions:
        response = positions.ListPositions(
            positions_pb2.ListPositionsRequest(account_id=account), timeout=settings.timeout
        )
    _show(settings, response, render.positions_table(response.positions))


@app.command("quote")
def get_quote(ctx: typer.Context, instrument: InstrumentArgument) -> None:
    """Show the latest quote of an instrument."""
    settings = _settings(ctx)
    with _execution_service(settings) as execution:
        response = execution.GetQuote(
            market_data_pb2.GetQuoteRequest(instrument=instrument), timeout=settings.timeout
        )
    _show(settings, response, render.quote_table(response.quote))
