"""`tradectl`: submit, cancel, find and watch orders (and their child orders), list positions,
quotes and venues, look after dead letters and what is unresolved, run the platform.

Every command talks to the gRPC servers through the generated trading.v1 stubs, and imports
nothing of the server side (`serve` imports it when it runs). Decimals are printed exactly as the
servers sent them; ids are never cut: on a narrow terminal, tables leave out their less
important columns instead.

`--output json` (`-o json`), before or after the command, prints protobuf JSON for scripts: the
answer of a command, a JSON array for a list (`[]` when empty), one JSON object per line for
`order watch`.

Exit codes:
  0  done
  1  a gRPC error (one red line `<STATUS>: <details>` on stderr), or `order watch` lost its stream
  2  a usage error, or `serve` without the server packages or with a bad config
  3  the order was refused: DENIED by the platform's checks, or REJECTED by the venue (seen with
     --wait); for `order cancel --wait`, the order was not canceled (it filled, or the venue
     refused the cancel). The order is printed, the reason is also on stderr.
     For `deadletter replay`: the dead letter still fails and stays parked; its error is on
     stderr (FAILED_PRECONDITION).
  4  --wait ran out of time before the venue answered; the order is printed as it was then
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any, NoReturn, TypeVar

import grpc
import typer
from google.protobuf.message import Message
from rich.console import Console
from rich.text import Text
from trading.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    control_pb2,
    control_pb2_grpc,
    execution_pb2,
    execution_pb2_grpc,
    orders_pb2,
    orders_pb2_grpc,
    portfolio_pb2,
    portfolio_pb2_grpc,
    positions_pb2,
    positions_pb2_grpc,
    types_pb2,
)

from tradectl import render
from tradectl.credentials import DEVELOPMENT_KEY, authorized, new_key
from tradectl.routing import ShardRoutedChannel
from tradectl.serve import serve

# Output that is not a terminal (a file, a pipe) is not folded to any width unless COLUMNS
# says so: every column, every cell whole.
PIPE_WIDTH = 10_000

EXIT_REFUSED = 3
EXIT_WAIT_TIMED_OUT = 4

app = typer.Typer(
    name="tradectl",
    help="Trade on the platform: orders, positions and quotes over gRPC; `serve` runs it.",
    no_args_is_help=True,
)
order_app = typer.Typer(help="Submit, cancel, find and watch orders.", no_args_is_help=True)
position_app = typer.Typer(help="Positions and P&L.", no_args_is_help=True)
deadletter_app = typer.Typer(
    help="Messages a service parked after they kept failing: list them, replay one.",
    no_args_is_help=True,
)
unresolved_app = typer.Typer(
    help="What a service's reconciliation found and could not resolve.", no_args_is_help=True
)
trading_app = typer.Typer(
    help="Trading states (active, reducing, halted) and the emergency stop, for operators.",
    no_args_is_help=True,
)
risk_app = typer.Typer(
    help="Pre-trade risk limits in force, and changing them without a restart (operators).",
    no_args_is_help=True,
)
portfolio_app = typer.Typer(
    help="An account's cash, equity, exposure, P&L and limits in use.", no_args_is_help=True
)
venue_app = typer.Typer(
    help="The venues orders go to: connection, circuit breaker, rate limits, latency.",
    no_args_is_help=True,
)
app.add_typer(order_app, name="order")
app.add_typer(portfolio_app, name="portfolio")
app.add_typer(trading_app, name="trading")
app.add_typer(risk_app, name="risk")
app.add_typer(position_app, name="position")
app.add_typer(venue_app, name="venue")
app.add_typer(deadletter_app, name="deadletter")
app.add_typer(unresolved_app, name="unresolved")
key_app = typer.Typer(help="API keys: every call presents one.", no_args_is_help=True)
app.add_typer(key_app, name="key")
app.command()(serve)


@app.command("report")
def report_command(
    ctx: typer.Context,
    *,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="The platform's config: its warehouse (database: the DuckDB files or "
            "BigQuery) and each account's starting cash (else ./data and the default cash).",
        ),
    ] = None,
    data: Annotated[
        Path | None, typer.Option(help="The folder of the DuckDB files (over the config's).")
    ] = None,
    account: Annotated[str | None, typer.Option(help="One account (default: every one).")] = None,
    strategy: Annotated[
        str | None, typer.Option(help="One strategy: its performance only.")
    ] = None,
    venue: Annotated[
        str | None, typer.Option(help="One venue's execution quality (default: every one).")
    ] = None,
    start: Annotated[
        str | None, typer.Option(metavar="YYYY-MM-DD", help="First day (UTC).")
    ] = None,
    end: Annotated[
        str | None, typer.Option(metavar="YYYY-MM-DD", help="Last day (UTC); default today.")
    ] = None,
    days: Annotated[int, typer.Option(min=1, help="Days up to --end without --start.")] = 7,
    html: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Also write the report as one self-contained HTML file with charts (equity "
            "curve, drawdown, slippage and latency distributions): open it in any browser.",
        ),
    ] = None,
    output: OutputOption = None,
) -> None:
    """Execution quality per venue and performance per account and strategy over a period.

    Runs the analytics SQL on the config's warehouse: the DuckDB files READ_ONLY (while the
    platform runs, too), or BigQuery. Needs trading-core (`pip install 'tradectl[analytics]'`).
    """
    settings = _settings(ctx, output)
    report, _ = _analytics()
    last = _parse(_parse_day, end, "--end") if end else datetime.now(UTC).date()
    first = _parse(_parse_day, start, "--start") if start else last - timedelta(days=days - 1)
    if first > last:
        raise typer.BadParameter(f"{first} is after {last}", param_hint="--start")

    def gather() -> Any:
        answer = report.report_of(
            config, data, report.Period(first, last), account=account, strategy=strategy,
            venue=venue, orders=html is not None,
        )  # fmt: skip
        if html is not None:
            from tradectl.html import write_html

            write_html(answer, html)
            typer.echo(f"HTML report written to {html}", err=True)
        return answer

    _show_analytics(settings, "report", gather, report.as_json, report.render)


@app.command("sql")
def sql_command(
    ctx: typer.Context,
    query: Annotated[
        str,
        typer.Argument(
            help="SQL in BigQuery's dialect on the dataset `trading` (trading.fills, "
            "...), a .sql file, or a stored query's name (order_execution, ...)."
        ),
    ],
    *,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            metavar="NAME=VALUE",
            help="A query parameter (@NAME): true/false, null, an ISO time, or text.",
        ),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="The config: its database.path.")
    ] = None,
    data: Annotated[
        Path | None, typer.Option(help="The folder of the DuckDB files (over the config's).")
    ] = None,
    output: OutputOption = None,
) -> None:
    """Run a query written for BigQuery on the warehouse's DuckDB files (transpiled by sqlglot).

    Needs trading-core (`pip install 'tradectl[analytics]'`).
    """
    settings = _settings(ctx, output)
    report, _ = _analytics()
    parameters: dict[str, object] = {}
    for given in param or []:
        name, equals, value = given.partition("=")
        if not equals:
            raise typer.BadParameter(f"{given!r} is not NAME=VALUE", param_hint="--param")
        parameters[name.lstrip("@")] = report.parameter_value(value)

    def run() -> Any:
        analytics, _ = report.warehouse_of(config, data)
        return report.run_sql(analytics, query, parameters)

    _show_analytics(settings, "sql", run, report.result_json, report.render_result)


def _show_analytics(
    settings: Settings,
    command: str,
    work: Callable[[], Any],
    as_json: Callable[[Any], str],
    show: Callable[[Any, Console], None],
) -> None:
    """Runs `work` (queries on the warehouse), shows its answer as a table or JSON; a query that
    cannot run is one red line and exit 1."""
    _, analytics_error = _analytics()
    try:
        answer = work()
    except (analytics_error, ValueError) as error:
        _fail(f"tradectl {command}: {error}")
    if settings.output is OutputFormat.JSON:
        typer.echo(as_json(answer))
    else:
        show(answer, _stdout())


def _analytics() -> tuple[ModuleType, type[Exception]]:
    """tradectl.report and the analytics' error class: imported only by the commands that
    read the warehouse (trading-core is an extra of tradectl)."""
    try:
        from trading_core.analytics import AnalyticsError

        from tradectl import report
    except ModuleNotFoundError as error:
        _fail(
            f"tradectl: the analytics are not installed (no module {error.name!r}); install "
            "them with `pip install 'tradectl[analytics]'` (in the repository: `make setup`)",
            2,
        )
    return report, AnalyticsError


def _parse_day(text: str) -> date:
    return date.fromisoformat(text)


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"


class ServiceName(StrEnum):
    ORDER_MANAGEMENT = "order-management"
    EXECUTION_ROUTER = "execution-router"
    POSITION_MANAGEMENT = "position-management"
    MARKET_DATA = "market-data"


@dataclass(frozen=True)
class Settings:
    """The global options, shared with every command through the typer context."""

    orders: str
    positions: str
    router: str
    timeout: float
    output: OutputFormat
    market_data: str = "127.0.0.1:50054"
    api_key: str = field(default=DEVELOPMENT_KEY, repr=False)

    def server(self, service: ServiceName) -> render.Server:
        """A service's server: its name, the global option that sets it, its address."""
        option, address = {
            ServiceName.ORDER_MANAGEMENT: ("--orders", self.orders),
            ServiceName.EXECUTION_ROUTER: ("--router", self.router),
            ServiceName.POSITION_MANAGEMENT: ("--positions", self.positions),
            ServiceName.MARKET_DATA: ("--market-data", self.market_data),
        }[service]
        return render.Server(service.value, option, address)


OutputOption = Annotated[
    OutputFormat | None,
    typer.Option(
        "--output",
        "-o",
        case_sensitive=False,
        help="table for people, json for scripts (here or before the command).",
    ),
]


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
    market_data: Annotated[
        str,
        typer.Option(
            "--market-data",
            metavar="HOST:PORT",
            envvar="TRADECTL_MARKET_DATA",
            help="market-data (its admin API).",
        ),
    ] = "127.0.0.1:50054",
    timeout: Annotated[
        float,
        typer.Option(min=0.1, help="Seconds to wait for each answer (and for --wait)."),
    ] = 10.0,
    output: OutputOption = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="TRADECTL_API_KEY",
            show_default=False,
            help="The API key every call presents (better from TRADECTL_API_KEY, out of the "
            "shell's history); the public development key when unset, which only a local "
            "platform (make run) accepts.",
        ),
    ] = None,
) -> None:
    ctx.obj = Settings(
        orders,
        positions,
        router,
        timeout,
        output or OutputFormat.TABLE,
        market_data,
        api_key or DEVELOPMENT_KEY,
    )


def _settings(ctx: typer.Context, output: OutputFormat | None) -> Settings:
    """The global options; an --output given after the command wins over one given before."""
    settings: Settings = ctx.find_root().obj
    return settings if output is None else dataclasses.replace(settings, output=output)


def _stdout() -> Console:
    """The terminal at its width; a pipe or file unfolded (or at COLUMNS when that is set)."""
    console = Console()
    if console.is_terminal:
        return console
    columns = os.environ.get("COLUMNS", "")
    return Console(width=int(columns) if columns.isdigit() else PIPE_WIDTH)


def _stderr() -> Console:
    # soft_wrap: one line however long, so scripts and people can grep it.
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _fail(message: str, code: int = 1) -> NoReturn:
    _stderr().print(message, style="bold red", markup=False)
    raise typer.Exit(code)


@contextmanager
def _channel(server: render.Server, settings: Settings) -> Iterator[grpc.Channel]:
    """A channel to one server presenting the API key, sent on to an account's shard when the
    server says it is another's (`routing`); a gRPC error inside becomes one red line and exit
    code 1."""
    with ShardRoutedChannel(
        server.address, lambda raw: authorized(raw, settings.api_key)
    ) as channel:
        try:
            yield channel
        except grpc.RpcError as error:
            details = error.details() or ""
            _fail(render.format_rpc_error(error.code(), details, server, settings.timeout))


@contextmanager
def _order_service(settings: Settings) -> Iterator[orders_pb2_grpc.OrderServiceStub]:
    server = render.Server("order-management", "--orders", settings.orders)
    with _channel(server, settings) as channel:
        yield orders_pb2_grpc.OrderServiceStub(channel)


@contextmanager
def _control_service(settings: Settings) -> Iterator[control_pb2_grpc.TradingControlServiceStub]:
    with _channel(settings.server(ServiceName.ORDER_MANAGEMENT), settings) as channel:
        yield control_pb2_grpc.TradingControlServiceStub(channel)


@contextmanager
def _portfolio_service(settings: Settings) -> Iterator[portfolio_pb2_grpc.PortfolioServiceStub]:
    with _channel(settings.server(ServiceName.ORDER_MANAGEMENT), settings) as channel:
        yield portfolio_pb2_grpc.PortfolioServiceStub(channel)


@contextmanager
def _position_service(settings: Settings) -> Iterator[positions_pb2_grpc.PositionServiceStub]:
    server = render.Server("position-management", "--positions", settings.positions)
    with _channel(server, settings) as channel:
        yield positions_pb2_grpc.PositionServiceStub(channel)


@contextmanager
def _execution_service(settings: Settings) -> Iterator[execution_pb2_grpc.ExecutionServiceStub]:
    server = render.Server("execution-router", "--router", settings.router)
    with _channel(server, settings) as channel:
        yield execution_pb2_grpc.ExecutionServiceStub(channel)


@contextmanager
def _admin_service(
    settings: Settings, service: ServiceName
) -> Iterator[admin_pb2_grpc.AdminServiceStub]:
    with _channel(settings.server(service), settings) as channel:
        yield admin_pb2_grpc.AdminServiceStub(channel)


Parsed = TypeVar("Parsed")
Given = TypeVar("Given")


def _parse(parser: Callable[[Given], Parsed], text: Given, param: str) -> Parsed:
    try:
        return parser(text)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint=param) from None


def _text_console(settings: Settings, response: Message) -> Console | None:
    """With -o json, prints `response` as JSON and returns None; else the console for text."""
    if settings.output is OutputFormat.JSON:
        typer.echo(render.to_json(response))
        return None
    return _stdout()


def _show_order(settings: Settings, response: Message, order: orders_pb2.Order) -> None:
    console = _text_console(settings, response)
    if console is None:
        return
    console.print(render.order_detail(order))
    for leg in getattr(response, "legs", ()):  # a bracket's exits, held
        console.print()
        console.print(render.order_detail(leg))


def _show_listing(
    settings: Settings,
    messages: Sequence[Message],
    build: Callable[[int], render.Listing],
    nothing: str,
) -> None:
    """A list: a JSON array, or a table fitted to the terminal, or one line saying it is empty."""
    if settings.output is OutputFormat.JSON:
        typer.echo(render.to_json_list(messages))
        return
    console = _stdout()
    if not messages:
        console.print(nothing, style="dim", markup=False)
        return
    listing = build(console.width)
    if listing.width > console.width:
        # Even the columns that are never left out are wider than the terminal: print them
        # whole and let the terminal wrap the lines, rather than cut an id.
        console = Console(file=console.file, width=listing.width)
    console.print(listing.table)
    note = listing.note()
    if note is not None:
        console.print(note)


def _exit_if_refused(order: orders_pb2.Order) -> None:
    """Exit code 3 with the reason on stderr for a DENIED or REJECTED order."""
    line = render.denial_line(order)
    if line is not None:
        _stderr().print(line, markup=False)
        raise typer.Exit(EXIT_REFUSED)


def _new_client_order_id() -> str:
    return f"tradectl-{uuid.uuid4().hex[:16]}"


def _new_request_id() -> str:
    return str(uuid.uuid4())


def _wait_for(
    settings: Settings,
    orders: orders_pb2_grpc.OrderServiceStub,
    order: orders_pb2.Order,
    done: Callable[[orders_pb2.Order], bool],
) -> tuple[orders_pb2.Order, bool]:
    """Follows the order's events until `done(order)`, at most --timeout seconds: (latest, done).

    Subscribes first, then reads the order once, so no change between the answer and the
    subscription is missed. A gRPC error other than the deadline goes to `_channel`.
    """
    if done(order):
        return order, True
    deadline = time.monotonic() + settings.timeout
    latest = order
    stream = orders.StreamOrderEvents(
        orders_pb2.StreamOrderEventsRequest(account_id=order.account_id, order_id=order.order_id),
        timeout=settings.timeout,
    )
    try:
        stream.initial_metadata()  # the server sends it once the stream is subscribed
        current = orders.GetOrder(
            orders_pb2.GetOrderRequest(order_id=order.order_id, account_id=order.account_id),
            timeout=max(deadline - time.monotonic(), 0.1),
        ).order
        latest = _newer(latest, current)
        if done(latest):
            return latest, True
        for event in stream:
            latest = _newer(latest, event.order)
            if done(latest):
                return latest, True
    except grpc.RpcError as error:
        if error.code() is grpc.StatusCode.DEADLINE_EXCEEDED:
            return latest, False
        raise
    finally:
        stream.cancel()
    _fail(
        f"order-management at {settings.orders} ended the stream before order "
        f"{order.order_id} was answered (is it stopping?); ask again with "
        f"`tradectl order get {order.order_id} --account {order.account_id}`"
    )


def _newer(known: orders_pb2.Order, seen: orders_pb2.Order) -> orders_pb2.Order:
    """Of two copies of an order, the one with the higher version (the later when equal)."""
    return seen if seen.version >= known.version else known


def _finish_submit(
    settings: Settings,
    orders: orders_pb2_grpc.OrderServiceStub,
    response: orders_pb2.SubmitOrderResponse | orders_pb2.SubmitSignalResponse,
    wait: bool,
) -> None:
    """Prints the submitted order (after the venue's answer with --wait); exit 3 if refused."""
    answered = True
    if wait:
        latest, answered = _wait_for(settings, orders, response.order, render.venue_has_answered)
        response.order.CopyFrom(latest)
    _show_order(settings, response, response.order)
    _exit_if_refused(response.order)
    if not answered:
        status = render.enum_name(types_pb2.OrderStatus, response.order.status)
        _fail(
            f"still {status} after {settings.timeout:g}s: the venue has not answered yet; "
            f"follow it with `tradectl order watch --order {response.order.order_id} "
            f"--account {response.order.account_id}`",
            EXIT_WAIT_TIMED_OUT,
        )


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
WaitOption = Annotated[
    bool,
    typer.Option(
        "--wait",
        help="Follow the order until the venue answers (ACCEPTED or a final status; for a "
        "market, IOC or FOK order, its final status), at most --timeout seconds; exit 4 when "
        "it has not by then.",
    ),
]
OwnerOption = Annotated[str, typer.Option("--account", help="The account that owns the order.")]
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
    order_type: Annotated[
        str,
        typer.Option(
            "--type",
            metavar="TYPE",
            help="market, limit, stop-market, stop-limit, trailing-stop-market, "
            "trailing-stop-limit or market-to-limit. Limit with --limit, else market.",
        ),
    ] = "",
    tif: Annotated[
        str,
        typer.Option(
            metavar="gtc|ioc|fok|day|gtd",
            help="Time in force (gtd needs --expire). The configured one when omitted.",
        ),
    ] = "",
    expire: Annotated[
        str, typer.Option(metavar="TIME", help="When a gtd order expires: ISO 8601, with zone.")
    ] = "",
    trigger: Annotated[str, typer.Option(metavar="PRICE", help="A stop's trigger price.")] = "",
    trigger_type: Annotated[
        str, typer.Option(metavar="bid-ask|mid|last", help="The price a stop watches.")
    ] = "",
    trail: Annotated[
        str, typer.Option(metavar="OFFSET", help="A trailing stop's offset from the market.")
    ] = "",
    trail_unit: Annotated[
        str, typer.Option(metavar="price|basis-points|ticks", help="The unit of the offsets.")
    ] = "",
    limit_offset: Annotated[
        str,
        typer.Option(metavar="OFFSET", help="A trailing stop-limit's limit beyond its trigger."),
    ] = "",
    display: Annotated[
        str, typer.Option(metavar="QUANTITY", help="An iceberg: the most shown at once.")
    ] = "",
    post_only: Annotated[
        bool, typer.Option("--post-only", help="Refused by the venue if it would take.")
    ] = False,
    take_profit: Annotated[
        str, typer.Option(metavar="PRICE", help="Attach a take-profit limit (a bracket or OTO).")
    ] = "",
    stop_loss: Annotated[
        str, typer.Option(metavar="PRICE", help="Attach a stop-loss trigger (a bracket or OTO).")
    ] = "",
    stop_loss_limit: Annotated[
        str, typer.Option(metavar="PRICE", help="Make the stop-loss a stop-limit at this price.")
    ] = "",
    oco: Annotated[
        bool,
        typer.Option(
            "--oco", help="This limit and --stop-loss exit a position: one cancels the other."
        ),
    ] = False,
    account: AccountOption = "default",
    strategy: StrategyOption = "manual",
    reduce_only: Annotated[
        bool,
        typer.Option(
            "--reduce-only", help="Denied if it could make the account's position larger."
        ),
    ] = False,
    algo: Annotated[
        str,
        typer.Option(
            "--algo",
            metavar="twap|vwap",
            help="Work the order as child orders released over --horizon by the router.",
        ),
    ] = "",
    horizon: Annotated[
        str,
        typer.Option(
            metavar="DURATION", help="With --algo: release over this long (90s, 5m, 1h; <= 24h)."
        ),
    ] = "",
    slices: Annotated[
        int | None,
        typer.Option(metavar="N", help="With --algo: how many slices (1-1000)."),
    ] = None,
    max_child: Annotated[
        str,
        typer.Option(
            "--max-child", metavar="QUANTITY", help="Split every release into children this big."
        ),
    ] = "",
    participation: Annotated[
        str,
        typer.Option(
            metavar="RATE",
            help="With --algo: a slice takes at most this fraction (0-1] of the displayed size.",
        ),
    ] = "",
    smart: Annotated[
        bool,
        typer.Option("--smart", help="Share each release across the route's venues on net price."),
    ] = False,
    client_order_id: ClientOrderIdOption = "",
    request_id: RequestIdOption = "",
    wait: WaitOption = False,
    output: OutputOption = None,
) -> None:
    """Submit an order: a limit order with --limit, otherwise a market order, unless --type.

    With --take-profit and --stop-loss it is a bracket's entry (one of them: an OTO); the exits
    are held until it is finished. With --algo, --max-child or --smart the router works it as
    child orders (`tradectl order children ORDER_ID`). Answers SUBMITTED (HELD for a stop) once
    the platform's checks passed, or DENIED with the reason (exit 3).
    """
    request = orders_pb2.SubmitOrderRequest(
        request_id=request_id or _new_request_id(),
        client_order_id=client_order_id or _new_client_order_id(),
        account_id=account,
        strategy_id=strategy,
        instrument=instrument,
        side=_parse(render.parse_side, side, "SIDE"),
        order_type=_parse(render.parse_order_type, order_type, "--type")
        if order_type
        else (types_pb2.ORDER_TYPE_LIMIT if limit else types_pb2.ORDER_TYPE_MARKET),
        time_in_force=_parse(render.parse_time_in_force, tif, "--tif")
        if tif
        else types_pb2.TIME_IN_FORCE_UNSPECIFIED,
        quantity=quantity,
        limit_price=limit,
        reduce_only=reduce_only,
        trigger_price=trigger,
        trigger_type=_parse(render.parse_trigger_type, trigger_type, "--trigger-type")
        if trigger_type
        else types_pb2.TRIGGER_TYPE_UNSPECIFIED,
        trailing_offset=trail,
        trailing_offset_type=_parse(render.parse_offset_type, trail_unit, "--trail-unit")
        if trail_unit
        else types_pb2.TRAILING_OFFSET_TYPE_UNSPECIFIED,
        limit_offset=limit_offset,
        display_quantity=display,
        post_only=post_only,
    )
    if expire:
        request.expire_time.FromDatetime(_parse(_parse_time, expire, "--expire"))
    _attach_exits(request, take_profit, stop_loss, stop_loss_limit, oco=oco)
    execution = _execution_instructions(
        algo=algo,
        horizon=horizon,
        slices=slices,
        max_child=max_child,
        participation=participation,
        smart=smart,
    )
    if execution is not None:
        request.execution.CopyFrom(execution)
    settings = _settings(ctx, output)
    with _order_service(settings) as orders:
        response = orders.SubmitOrder(request, timeout=settings.timeout)
        _finish_submit(settings, orders, response, wait)


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"give a time zone, such as {text}+00:00")
    return moment


def _attach_exits(
    request: orders_pb2.SubmitOrderRequest,
    take_profit: str,
    stop_loss: str,
    stop_loss_limit: str,
    *,
    oco: bool,
) -> None:
    """The order class the exit options make: --oco, else a bracket (both), else an OTO."""
    if take_profit:
        request.take_profit.limit_price = take_profit
    if stop_loss or stop_loss_limit:
        request.stop_loss.trigger_price = stop_loss
        request.stop_loss.limit_price = stop_loss_limit
    if oco:
        request.order_class = types_pb2.ORDER_CLASS_OCO
    elif take_profit and (stop_loss or stop_loss_limit):
        request.order_class = types_pb2.ORDER_CLASS_BRACKET
    elif take_profit or stop_loss or stop_loss_limit:
        request.order_class = types_pb2.ORDER_CLASS_OTO


def _execution_instructions(
    *,
    algo: str,
    horizon: str,
    slices: int | None,
    max_child: str,
    participation: str,
    smart: bool,
) -> orders_pb2.ExecutionInstructions | None:
    """The instructions the execution options give; None when none is given. Only the text is
    parsed here: order-management checks how they combine (INVALID_ARGUMENT, exit 1)."""
    if not (algo or horizon or slices is not None or max_child or participation or smart):
        return None
    execution = orders_pb2.ExecutionInstructions(
        slice_count=slices or 0,
        max_child_quantity=max_child,
        participation_rate=participation,
        smart_routing=smart,
    )
    if algo:
        execution.algorithm = _parse(render.parse_algorithm, algo, "--algo")
    if horizon:
        execution.horizon.FromTimedelta(_parse(render.parse_horizon, horizon, "--horizon"))
    return execution


_EXIT_LEVEL_HELP = (
    "a price (61500), or a distance from the entry's price written with +: +250 in price, "
    "+0.5% of it; the side follows from the order's side."
)


@order_app.command("signal")
def submit_signal(
    ctx: typer.Context,
    *,
    instrument: InstrumentArgument,
    side: SideArgument,
    limit: LimitPriceOption = "",
    confidence: Annotated[
        str,
        typer.Option(
            metavar="0..1",
            help="How sure the strategy is; scales the size (signal_sizing.scale_by_confidence). "
            "1 when omitted.",
        ),
    ] = "",
    take_profit: Annotated[
        str, typer.Option(metavar="LEVEL", help=f"Attach a take-profit limit: {_EXIT_LEVEL_HELP}")
    ] = "",
    stop_loss: Annotated[
        str, typer.Option(metavar="LEVEL", help=f"Attach a stop-loss trigger: {_EXIT_LEVEL_HELP}")
    ] = "",
    account: AccountOption = "default",
    strategy: StrategyOption = "manual",
    signal_id: Annotated[
        str, typer.Option("--signal-id", help="Your id of the signal. Generated when omitted.")
    ] = "",
    client_order_id: ClientOrderIdOption = "",
    request_id: RequestIdOption = "",
    wait: WaitOption = False,
    output: OutputOption = None,
) -> None:
    """Submit a trading signal; the platform sizes it into an order (exit 3 when DENIED).

    With --take-profit and --stop-loss its order is a bracket's entry (one of them: an OTO),
    shown with its held exits, as `order submit` does.
    """
    request = orders_pb2.SubmitSignalRequest(
        request_id=request_id or _new_request_id(),
        client_order_id=client_order_id or _new_client_order_id(),
        account_id=account,
        strategy_id=strategy,
        signal_id=signal_id,
        instrument=instrument,
        side=_parse(render.parse_side, side, "SIDE"),
        limit_price=limit,
        confidence=confidence,
    )
    if take_profit:
        request.take_profit.CopyFrom(_parse(_exit_level, take_profit, "--take-profit"))
    if stop_loss:
        request.stop_loss.CopyFrom(_parse(_exit_level, stop_loss, "--stop-loss"))
    settings = _settings(ctx, output)
    with _order_service(settings) as orders:
        response = orders.SubmitSignal(request, timeout=settings.timeout)
        _finish_submit(settings, orders, response, wait)


def _exit_level(text: str) -> orders_pb2.ExitLevel:
    """61500 is a price, +250 a distance in price, +0.5% a distance of 0.5% (50 bps)."""
    if text.startswith("-"):
        raise ValueError(
            f"{text!r}: write a distance with +, such as +{text[1:]}; it is placed below or "
            "above the entry's price by the order's side"
        )
    if not text.startswith("+"):
        return orders_pb2.ExitLevel(price=text)
    distance = text[1:]
    if not distance.endswith("%"):
        return orders_pb2.ExitLevel(distance=distance)
    try:
        percent = Decimal(distance[:-1])
    except ArithmeticError:
        raise ValueError(f"{text!r}: expected a percent such as +0.5%") from None
    if not percent.is_finite():
        raise ValueError(f"{text!r}: expected a percent such as +0.5%")
    return orders_pb2.ExitLevel(distance_bps=format(percent * 100, "f"))


@order_app.command("cancel")
def cancel_order(
    ctx: typer.Context,
    order_id: OrderIdArgument,
    *,
    account: OwnerOption = "default",
    request_id: RequestIdOption = "",
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="Follow the order until the venue answers the cancel, at most --timeout "
            "seconds: exit 0 when CANCELED, 3 when it was not (it filled first, or the venue "
            "refused), 4 when the venue has not answered by then.",
        ),
    ] = False,
    output: OutputOption = None,
) -> None:
    """Ask the venue to cancel a working order: PENDING_CANCEL, then the venue's answer."""
    settings = _settings(ctx, output)
    request = orders_pb2.CancelOrderRequest(
        order_id=order_id, account_id=account, request_id=request_id or _new_request_id()
    )
    with _order_service(settings) as orders:
        response = orders.CancelOrder(request, timeout=settings.timeout)
        answered = True
        if wait:
            latest, answered = _wait_for(
                settings, orders, response.order, render.cancel_has_settled
            )
            response.order.CopyFrom(latest)
    order = response.order
    _show_order(settings, response, order)
    status = render.enum_name(types_pb2.OrderStatus, order.status)
    if not answered:
        _fail(
            f"still {status} after {settings.timeout:g}s: the venue has not answered the cancel "
            "yet",
            EXIT_WAIT_TIMED_OUT,
        )
    if wait and order.status != types_pb2.ORDER_STATUS_CANCELED:
        reason = f" ({order.status_message})" if order.status_message else ""
        _fail(f"not canceled: the order is {status}{reason}", EXIT_REFUSED)


@order_app.command("modify")
def modify_order(
    ctx: typer.Context,
    order_id: OrderIdArgument,
    *,
    quantity: Annotated[
        str, typer.Option("--quantity", help="The new total quantity, filled part included.")
    ] = "",
    limit: Annotated[
        str, typer.Option("--limit", metavar="PRICE", help="A limit order's new limit price.")
    ] = "",
    trigger: Annotated[
        str, typer.Option("--trigger", metavar="PRICE", help="A held stop's new trigger price.")
    ] = "",
    account: OwnerOption = "default",
    request_id: RequestIdOption = "",
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="Follow the order until the venue answers the modify, at most --timeout "
            "seconds: exit 0 when it applied it, 3 when it refused, 4 when it has not "
            "answered by then.",
        ),
    ] = False,
    output: OutputOption = None,
) -> None:
    """Change an open order's quantity, limit or trigger, checked as a new order would be:
    PENDING_UPDATE, then the venue's answer (a held order changes at once)."""
    settings = _settings(ctx, output)
    request = orders_pb2.ModifyOrderRequest(
        order_id=order_id,
        account_id=account,
        request_id=request_id or _new_request_id(),
        quantity=quantity,
        limit_price=limit,
        trigger_price=trigger,
    )
    with _order_service(settings) as orders:
        response = orders.ModifyOrder(request, timeout=settings.timeout)
        refused, answered = response.refusal_reason != types_pb2.DENIAL_REASON_UNSPECIFIED, True
        if wait and not refused:
            latest, answered = _wait_for(
                settings, orders, response.order, render.modify_has_settled
            )
            response.order.CopyFrom(latest)
    _show_order(settings, response, response.order)
    if refused:
        reason = render.enum_name(types_pb2.DenialReason, response.refusal_reason)
        _fail(f"not modified: {reason}: {response.refusal_message}", EXIT_REFUSED)
    if not answered:
        _fail(
            f"still PENDING_UPDATE after {settings.timeout:g}s: the venue has not answered the "
            "modify yet",
            EXIT_WAIT_TIMED_OUT,
        )
    if wait and not _modified_as_asked(response.order, request):
        _fail(f"not modified: {response.order.status_message}", EXIT_REFUSED)


def _modified_as_asked(order: orders_pb2.Order, request: orders_pb2.ModifyOrderRequest) -> bool:
    """Whether the order now has every value the modify asked for (the venue applied it)."""
    fields = ("quantity", "limit_price", "trigger_price")
    asked = [(getattr(request, f), getattr(order, f)) for f in fields if getattr(request, f)]
    return all(Decimal(wanted) == Decimal(now or "0") for wanted, now in asked)


@order_app.command("cancel-all")
def cancel_all_orders(
    ctx: typer.Context,
    *,
    account: Annotated[str, typer.Option("--account", help="The account whose orders.")],
    instrument: Annotated[str, typer.Option(help="Only this instrument.")] = "",
    strategy: Annotated[str, typer.Option(help="Only this strategy.")] = "",
    side: Annotated[str, typer.Option(metavar="buy|sell", help="Only this side.")] = "",
    request_id: RequestIdOption = "",
    output: OutputOption = None,
) -> None:
    """Ask the venue to cancel every open order of an account (or those matching the filters);
    lists them, PENDING_CANCEL until the venue answers."""
    settings = _settings(ctx, output)
    request = orders_pb2.CancelAllOrdersRequest(
        request_id=request_id or _new_request_id(),
        account_id=account,
        instrument=instrument,
        strategy_id=strategy,
        side=_parse(render.parse_side, side, "--side") if side else types_pb2.SIDE_UNSPECIFIED,
    )
    with _order_service(settings) as orders:
        response = orders.CancelAllOrders(request, timeout=settings.timeout)
    found = list(response.orders)
    _show_listing(
        settings,
        found,
        lambda width: render.orders_table(found, width),
        "No open orders"
        + _filters(account=account, instrument=instrument, strategy=strategy, side=side)
        + ".",
    )


@order_app.command("get")
def get_order(
    ctx: typer.Context,
    order_id: OrderIdArgument,
    *,
    account: OwnerOption = "default",
    output: OutputOption = None,
) -> None:
    """Show one order."""
    settings = _settings(ctx, output)
    with _order_service(settings) as orders:
        response = orders.GetOrder(
            orders_pb2.GetOrderRequest(order_id=order_id, account_id=account),
            timeout=settings.timeout,
        )
    _show_order(settings, response, response.order)


@order_app.command("children")
def list_child_orders(
    ctx: typer.Context,
    order_id: OrderIdArgument,
    account: OwnerOption = "default",
    output: OutputOption = None,
) -> None:
    """Show the child orders the router made of an order it works with an algorithm or splits:
    its algorithm, released and filled quantity, then each child (asks the router)."""
    settings = _settings(ctx, output)
    with _execution_service(settings) as execution:
        response = execution.ListChildOrders(
            execution_pb2.ListChildOrdersRequest(order_id=order_id, account_id=account),
            timeout=settings.timeout,
        )
    console = _text_console(settings, response)
    if console is None:
        return
    console.print(render.children_summary(response))
    console.print()
    children = list(response.child_orders)
    _show_listing(
        settings,
        children,
        lambda width: render.child_orders_table(children, width),
        "No child orders yet.",
    )


@order_app.command("list")
def list_orders(
    ctx: typer.Context,
    *,
    account: Annotated[str, typer.Option(help="Only this account.")] = "",
    instrument: Annotated[str, typer.Option(help="Only this instrument.")] = "",
    open_only: Annotated[
        bool, typer.Option("--open", help="Only orders that can still trade.")
    ] = False,
    limit: Annotated[
        int, typer.Option(min=1, max=1000, metavar="N", help="At most N orders, newest first.")
    ] = 100,
    output: OutputOption = None,
) -> None:
    """List orders, newest first."""
    request = orders_pb2.ListOrdersRequest(
        account_id=account, instrument=instrument, open_only=open_only, page_size=limit
    )
    settings = _settings(ctx, output)
    with _order_service(settings) as orders:
        response = orders.ListOrders(request, timeout=settings.timeout)
    found = list(response.orders)
    _show_listing(
        settings,
        found,
        lambda width: render.orders_table(found, width),
        "No orders" + _filters(account=account, instrument=instrument, open=open_only) + ".",
    )
    if response.next_page_token and settings.output is OutputFormat.TABLE:
        _stdout().print(
            f"Showing the newest {len(found)}; raise --limit (at most 1000) to see more.",
            style="dim",
            markup=False,
        )


def _filters(**filters: str | bool) -> str:
    """What an empty list was filtered by, such as " for account acct-1, open"."""
    given = [
        name if value is True else f"{name} {value}" for name, value in filters.items() if value
    ]
    return f" for {', '.join(given)}" if given else ""


@order_app.command("watch")
def watch_orders(
    ctx: typer.Context,
    *,
    account: Annotated[str, typer.Option(help="Only this account.")] = "",
    order_id: Annotated[
        str,
        typer.Option(
            "--order", "--order-id", metavar="ORDER_ID", help="Only this order (with --account)."
        ),
    ] = "",
    count: Annotated[
        int | None, typer.Option(min=1, metavar="N", help="Stop after N events.")
    ] = None,
    output: OutputOption = None,
) -> None:
    """Stream order events live, one line each, until Ctrl-C (exit 0) or --count events.

    When the server goes away or ends the stream, says so in red and exits 1.
    """
    if order_id and not account:
        raise typer.BadParameter(
            "--order needs --account, the account that owns the order", param_hint="--account"
        )
    settings = _settings(ctx, output)
    request = orders_pb2.StreamOrderEventsRequest(account_id=account, order_id=order_id)
    try:
        with _order_service(settings) as orders:
            stream = orders.StreamOrderEvents(request)
            watching = False
            try:
                watching = _announce_watch(stream, settings.orders)
                console = _stdout()
                for seen, event in enumerate(stream, start=1):
                    _show_event(settings, console, event)
                    if count is not None and seen >= count:
                        return
            except grpc.RpcError as error:
                if not watching:
                    raise  # never subscribed: `_channel` says why in one line
                _fail(
                    f"{error.code().name}: lost the stream of order-management at "
                    f"{settings.orders} ({error.details()}); no more events"
                )
            finally:
                stream.cancel()
    except KeyboardInterrupt:
        return  # Ctrl-C: the one way a watch without --count ends well
    _fail(
        f"order-management at {settings.orders} ended the stream (the server is stopping); "
        "no more events"
    )


def _announce_watch(stream: grpc.Call, address: str) -> bool:
    """Says on stderr that the stream is open, once the server has answered its headers."""
    stream.initial_metadata()
    if not stream.is_active():
        return False
    Console(stderr=True).print(
        f"Watching order events on {address} (Ctrl-C to stop)", style="dim", markup=False
    )
    return True


def _show_event(
    settings: Settings, console: Console, event: orders_pb2.StreamOrderEventsResponse
) -> None:
    if settings.output is OutputFormat.JSON:
        typer.echo(render.to_json(event, indent=None))
    else:
        console.print(render.event_line(event))
    sys.stdout.flush()


@position_app.command("list")
def list_positions(
    ctx: typer.Context,
    account: Annotated[str, typer.Option(help="Only this account.")] = "",
    output: OutputOption = None,
) -> None:
    """List positions with their P&L."""
    settings = _settings(ctx, output)
    with _position_service(settings) as positions:
        response = positions.ListPositions(
            positions_pb2.ListPositionsRequest(account_id=account), timeout=settings.timeout
        )
    found = list(response.positions)
    _show_listing(
        settings,
        found,
        lambda width: render.positions_table(found, width),
        "No positions" + _filters(account=account) + ".",
    )


@portfolio_app.command("show")
def show_portfolio(
    ctx: typer.Context,
    account: Annotated[str, typer.Argument(metavar="ACCOUNT", help="Account id.")],
    output: OutputOption = None,
) -> None:
    """Show an account: cash, fees, equity, P&L, drawdown, exposure, holdings, limits in use."""
    settings = _settings(ctx, output)
    with _portfolio_service(settings) as portfolios:
        response = portfolios.GetPortfolio(
            portfolio_pb2.GetPortfolioRequest(account_id=account), timeout=settings.timeout
        )
    console = _text_console(settings, response)
    if console is None:
        return
    for table in render.portfolio_tables(response.portfolio):
        console.print(table)


@position_app.command("close")
def close_position(
    ctx: typer.Context,
    *,
    account: Annotated[str, typer.Option("--account", help="The account to flatten.")],
    instrument: Annotated[str, typer.Option(help="Only this instrument; all when omitted.")] = "",
    request_id: RequestIdOption = "",
    output: OutputOption = None,
) -> None:
    """Flatten a position (or all of an account's): cancel its open orders there, then send
    reduce-only market orders for what it holds, once those orders are finished."""
    settings = _settings(ctx, output)
    request = orders_pb2.ClosePositionRequest(
        request_id=request_id or _new_request_id(), account_id=account, instrument=instrument
    )
    with _order_service(settings) as orders:
        response = orders.ClosePosition(request, timeout=settings.timeout)
    console = _text_console(settings, response)
    if console is None:
        return
    if response.canceled_orders:
        console.print("Canceling first:", style="bold", markup=False)
        console.print(render.orders_table(response.canceled_orders, console.width).table)
    if response.closing_orders:
        console.print("Closing orders:", style="bold", markup=False)
        console.print(render.orders_table(response.closing_orders, console.width).table)
    elif response.pending:
        console.print(
            "The closing orders follow once the canceled orders are finished "
            "(`tradectl order list --account " + account + "`).",
            markup=False,
        )
    else:
        console.print(
            "Nothing to close" + _filters(account=account, instrument=instrument) + ".",
            style="dim",
            markup=False,
        )


@trading_app.command("show")
def show_trading_state(
    ctx: typer.Context,
    *,
    account: Annotated[
        str, typer.Option(help="This account (and the platform); every account set when omitted.")
    ] = "",
    output: OutputOption = None,
) -> None:
    """Show the trading state of the platform and of accounts."""
    settings = _settings(ctx, output)
    with _control_service(settings) as control:
        response = control.GetTradingState(
            control_pb2.GetTradingStateRequest(account_id=account), timeout=settings.timeout
        )
    if settings.output is OutputFormat.JSON:
        typer.echo(render.to_json(response))
        return
    records = [response.platform, *response.accounts]
    _show_listing(settings, records, lambda width: render.trading_states_table(records, width), "")
    if account:
        effective = render.trading_state_text(response.effective_state)
        _stdout().print(Text("Orders of this account meet: ").append(effective))
    if response.instruments:
        console = _stdout()
        console.print()
        console.print(render.instrument_statuses_table(response.instruments, console.width).table)


ReasonOption = Annotated[
    str, typer.Option("--reason", help="Why, for the audit trail (required, at most 512).")
]
ScopeOption = Annotated[
    str, typer.Option("--account", help="This account; the whole platform when omitted.")
]


@trading_app.command("set")
def set_trading_state(
    ctx: typer.Context,
    state: Annotated[str, typer.Argument(metavar="STATE", help="active, reducing or halted.")],
    *,
    reason: ReasonOption,
    account: ScopeOption = "",
    request_id: RequestIdOption = "",
    output: OutputOption = None,
) -> None:
    """Set the trading state. A resume (to a less strict state) is checked first: refused with
    every failed check on stderr (exit 3) while orders await the venue, a close is pending,
    positions disagree with position-management, or a quote is stale."""
    settings = _settings(ctx, output)
    request = control_pb2.SetTradingStateRequest(
        request_id=request_id or _new_request_id(),
        account_id=account,
        state=_parse(render.parse_trading_state, state, "STATE"),
        reason=reason,
    )
    with _control_service(settings) as control:
        try:
            response = control.SetTradingState(request, timeout=settings.timeout)
        except grpc.RpcError as error:
            if error.code() is not grpc.StatusCode.FAILED_PRECONDITION:
                raise
            _fail(f"FAILED_PRECONDITION: {error.details()}", EXIT_REFUSED)
    records = [response.trading_state]
    if settings.output is OutputFormat.JSON:
        typer.echo(render.to_json(response))
    else:
        _show_listing(settings, records, lambda w: render.trading_states_table(records, w), "")


@trading_app.command("instrument")
def set_instrument_status(
    ctx: typer.Context,
    instrument: InstrumentArgument,
    status: Annotated[
        str,
        typer.Argument(metavar="STATUS", help="trading, reduce-only, halted or closed."),
    ],
    *,
    reason: ReasonOption,
    request_id: RequestIdOption = "",
    output: OutputOption = None,
) -> None:
    """Set an instrument's status for new orders (the stricter of it and its market data's
    applies); `trading` lifts it."""
    settings = _settings(ctx, output)
    request = control_pb2.SetInstrumentStatusRequest(
        request_id=request_id or _new_request_id(),
        instrument=instrument,
        status=_parse(render.parse_instrument_status, status, "STATUS"),
        reason=reason,
    )
    with _control_service(settings) as control:
        response = control.SetInstrumentStatus(request, timeout=settings.timeout)
    console = _text_console(settings, response)
    if console is None:
        return
    console.print(render.instrument_statuses_table([response.record], console.width).table)


@trading_app.command("stop")
def emergency_stop(
    ctx: typer.Context,
    *,
    reason: ReasonOption,
    account: ScopeOption = "",
    flatten: Annotated[
        bool, typer.Option("--flatten", help="Also close every position once its orders end.")
    ] = False,
    request_id: RequestIdOption = "",
    output: OutputOption = None,
) -> None:
    """Emergency stop: halt, cancel every open order and, with --flatten, close every position."""
    settings = _settings(ctx, output)
    request = control_pb2.EmergencyStopRequest(
        request_id=request_id or _new_request_id(),
        account_id=account,
        reason=reason,
        flatten=flatten,
    )
    with _control_service(settings) as control:
        response = control.EmergencyStop(request, timeout=settings.timeout)
    console = _text_console(settings, response)
    if console is None:
        return
    console.print(render.trading_states_table([response.trading_state], console.width).table)
    console.print(f"Canceling {len(response.canceled_orders)} open orders.", markup=False)
    if response.flattening_accounts:
        accounts = ", ".join(response.flattening_accounts)
        console.print(f"Closing the positions of: {accounts}.", markup=False)


@risk_app.command("show")
def show_risk_limits(
    ctx: typer.Context,
    *,
    account: Annotated[str, typer.Option(help="This account's limits in force.")] = "",
    strategy: Annotated[str, typer.Option(help="This strategy's limits in force.")] = "",
    output: OutputOption = None,
) -> None:
    """Show the limits an account's and a strategy's orders meet, and the changes in force."""
    settings = _settings(ctx, output)
    request = control_pb2.GetRiskLimitsRequest(account_id=account, strategy_id=strategy)
    with _control_service(settings) as control:
        response = control.GetRiskLimits(request, timeout=settings.timeout)
    console = _text_console(settings, response)
    if console is None:
        return
    listing = render.limits_table(response.account, response.strategy, console.width)
    console.print(listing.table if listing.table.row_count else "No limits set.", markup=False)
    if response.changes:
        console.print()
        console.print(render.limit_changes_table(response.changes, console.width).table)


@risk_app.command("set")
def set_risk_limits(
    ctx: typer.Context,
    scope: Annotated[
        str,
        typer.Argument(
            metavar="SCOPE",
            help="accounts or strategies (every one's defaults), account, strategy or group "
            "(one's own).",
        ),
    ],
    name: Annotated[
        str,
        typer.Argument(metavar="[NAME]", help="The account, strategy or group, for one's own."),
    ] = "",
    *,
    limit: Annotated[
        list[str] | None,
        typer.Option(
            "--limit",
            metavar="NAME=VALUE",
            help="A limit, such as max_order_quantity=0.5; repeat for more. What is not given "
            "is not set (for one account or strategy: it follows the defaults).",
        ),
    ] = None,
    reason: ReasonOption,
    request_id: RequestIdOption = "",
    output: OutputOption = None,
) -> None:
    """Replace a scope's risk limits now, without a restart (an event, kept across restarts)."""
    settings = _settings(ctx, output)
    request = control_pb2.SetRiskLimitsRequest(
        request_id=request_id or _new_request_id(),
        scope=_parse(render.parse_risk_scope, scope, "SCOPE"),
        name=name,
        limits=_parse(render.parse_limit_assignments, limit or [], "--limit"),
        reason=reason,
    )
    with _control_service(settings) as control:
        response = control.SetRiskLimits(request, timeout=settings.timeout)
    console = _text_console(settings, response)
    if console is None:
        return
    console.print(render.limit_changes_table([response.record], console.width).table)


@app.command("quote")
def get_quote(
    ctx: typer.Context, instrument: InstrumentArgument, output: OutputOption = None
) -> None:
    """Show the latest quote of an instrument."""
    settings = _settings(ctx, output)
    with _execution_service(settings) as execution:
        response = execution.GetQuote(
            execution_pb2.GetQuoteRequest(instrument=instrument), timeout=settings.timeout
        )
    if settings.output is OutputFormat.JSON:
        typer.echo(render.to_json(response))
        return
    _show_listing(
        settings, [response.quote], lambda width: render.quote_table(response.quote, width), ""
    )


@key_app.command("new")
def new_api_key(
    key_id: Annotated[str, typer.Argument(metavar="ID", help="Names the key in logs and audits.")],
    account: Annotated[
        list[str] | None,
        typer.Option("--account", help="An account it trades and reads (repeatable; * for all)."),
    ] = None,
    role: Annotated[
        list[str] | None,
        typer.Option("--role", help="reader, trader, operator or service (repeatable)."),
    ] = None,
) -> None:
    """Make a new API key: the key goes to its holder (once: it is not kept anywhere), the
    printed entry to the platform's `security.api_keys` (it holds only the key's SHA-256)."""
    key, digest = new_key()
    entry = {
        "id": key_id,
        "sha256": digest,
        "accounts": account or ["*"],
        "roles": role or ["trader"],
    }
    _stderr().print("The key (give it to its holder; it is shown only now):")
    typer.echo(key)
    _stderr().print("Its entry in security.api_keys:")
    typer.echo(f"- {json.dumps(entry)}")


@venue_app.command("list")
def list_venues(ctx: typer.Context, output: OutputOption = None) -> None:
    """List the venues orders can go to, in config order, each with its status."""
    settings = _settings(ctx, output)
    with _execution_service(settings) as execution:
        response = execution.ListVenues(execution_pb2.ListVenuesRequest(), timeout=settings.timeout)
    found = list(response.venues)
    _show_listing(
        settings, found, lambda width: render.venues_table(found, width), "No venues configured."
    )


@venue_app.command("status")
def show_venue_status(
    ctx: typer.Context,
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="The venue's name in the config (venue list).")
    ],
    output: OutputOption = None,
) -> None:
    """Show one venue in detail: connection, circuit breaker, last error, rate-limit headroom,
    latency, calls and open orders."""
    settings = _settings(ctx, output)
    with _execution_service(settings) as execution:
        response = execution.GetVenueStatus(
            execution_pb2.GetVenueStatusRequest(venue=name), timeout=settings.timeout
        )
    console = _text_console(settings, response)
    if console is None:
        return
    console.print(render.venue_detail(response.status))


ServiceOption = Annotated[
    ServiceName,
    typer.Option(
        "--service",
        "-s",
        case_sensitive=False,
        help="The service to ask; reached at the address of its global option "
        "(--orders, --router, --positions, --market-data).",
    ),
]
ListLimitOption = Annotated[
    int, typer.Option(min=1, max=1000, metavar="N", help="At most N, oldest first.")
]


def _more_than_shown(settings: Settings, shown: int, token: str) -> None:
    if token and settings.output is OutputFormat.TABLE:
        _stdout().print(
            f"Showing the oldest {shown}; raise --limit (at most 1000) to see more.",
            style="dim",
            markup=False,
        )


@deadletter_app.command("list")
def list_dead_letters(
    ctx: typer.Context,
    *,
    service: ServiceOption,
    limit: ListLimitOption = 100,
    output: OutputOption = None,
) -> None:
    """List the messages a service parked after `messaging.max_delivery_attempts` failed
    deliveries, oldest first, with the last error (payloads: the admin API's FULL view)."""
    settings = _settings(ctx, output)
    with _admin_service(settings, service) as admin:
        response = admin.ListDeadLetters(
            admin_pb2.ListDeadLettersRequest(page_size=limit), timeout=settings.timeout
        )
    found = list(response.dead_letters)
    _show_listing(
        settings,
        found,
        lambda width: render.dead_letters_table(found, service.value, width),
        f"No dead letters in {service.value}.",
    )
    _more_than_shown(settings, len(found), response.next_page_token)


@deadletter_app.command("replay")
def replay_dead_letter(
    ctx: typer.Context,
    letter_id: Annotated[
        int,
        typer.Argument(
            metavar="ID", min=1, help="The dead letter's id, as `deadletter list` shows."
        ),
    ],
    *,
    service: ServiceOption,
    output: OutputOption = None,
) -> None:
    """Apply a dead letter again, through the handler that failed on it, once the cause is fixed.

    Applied: it leaves the list (exit 0). Still failing: it stays, the error is on stderr (exit 3).
    """
    settings = _settings(ctx, output)
    with _admin_service(settings, service) as admin:
        try:
            response = admin.ReplayDeadLetter(
                admin_pb2.ReplayDeadLetterRequest(id=letter_id), timeout=settings.timeout
            )
        except grpc.RpcError as error:
            if error.code() is not grpc.StatusCode.FAILED_PRECONDITION:
                raise
            _fail(f"FAILED_PRECONDITION: {error.details()}; it stays parked", EXIT_REFUSED)
    if settings.output is OutputFormat.JSON:
        typer.echo(render.to_json(response))
    else:
        _stdout().print(render.replayed_line(response.dead_letter, service.value), markup=False)


@unresolved_app.command("list")
def list_unresolved(
    ctx: typer.Context,
    *,
    service: ServiceOption,
    limit: ListLimitOption = 100,
    output: OutputOption = None,
) -> None:
    """List what a service's reconciliation found wrong and could not repair, oldest first."""
    settings = _settings(ctx, output)
    with _admin_service(settings, service) as admin:
        response = admin.ListUnresolved(
            admin_pb2.ListUnresolvedRequest(page_size=limit), timeout=settings.timeout
        )
    found = list(response.issues)
    _show_listing(
        settings,
        found,
        lambda width: render.unresolved_table(found, width),
        f"Nothing unresolved in {service.value}.",
    )
    _more_than_shown(settings, len(found), response.next_page_token)
