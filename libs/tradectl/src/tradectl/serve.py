"""`tradectl serve`: runs the platform, all three services in one process or a chosen few.

The server packages (trading-core and the three services) are an optional extra of tradectl,
`tradectl[server]`: the other commands never import them, and this module imports them only
when `serve` runs. Without them `serve` says how to install them and exits 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from trading_core.runtime import ServiceFactory

SERVICE_NAMES = ("position-management", "order-management", "execution-router")
INSTALL_HINT = (
    "install the server with `pip install 'tradectl[server]'` "
    "(in the repository: `make setup`, then `uv run tradectl serve`)"
)


def service_factories() -> dict[str, ServiceFactory]:
    """The three services, in start order: consumers subscribe before producers publish."""
    from execution_router.service import ExecutionRouter
    from order_management.service import OrderManagement
    from position_management.service import PositionManagement

    factories: dict[str, ServiceFactory] = {
        PositionManagement.name: PositionManagement,
        OrderManagement.name: OrderManagement,
        ExecutionRouter.name: ExecutionRouter,
    }
    return factories


def serve(
    config: Annotated[
        Path, typer.Option("--config", "-c", help="Config file of the environment.")
    ] = Path("config/local.yaml"),
    service: Annotated[
        list[str] | None,
        typer.Option(
            "--service",
            "-s",
            help="Run only this service (repeatable); all three when omitted.",
        ),
    ] = None,
) -> None:
    """Run the platform until Ctrl-C or SIGTERM, then drain and stop cleanly.

    Needs the server packages (`tradectl[server]`).
    """
    chosen = service or list(SERVICE_NAMES)
    unknown = sorted(set(chosen) - set(SERVICE_NAMES))
    if unknown:
        raise typer.BadParameter(
            f"unknown service {', '.join(unknown)}; choose from {', '.join(SERVICE_NAMES)}",
            param_hint="--service",
        )
    try:
        from trading_core.runtime import build_platform, load_or_exit, run_until_signalled

        every = service_factories()
    except ModuleNotFoundError as error:
        typer.echo(
            f"tradectl serve: the server packages are not installed (no module "
            f"{error.name!r}); {INSTALL_HINT}",
            err=True,
        )
        raise typer.Exit(2) from None
    loaded = load_or_exit(config, "tradectl")
    factories = {name: factory for name, factory in every.items() if name in chosen}
    run_until_signalled(build_platform(loaded, factories))
