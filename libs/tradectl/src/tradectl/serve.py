"""`tradectl serve`: runs the platform, every service in one process or a chosen few.

The server packages (trading-core and the services) are an optional extra of tradectl,
`tradectl[server]`: the other commands never import them, and this module imports them only
when `serve` runs. Without them `serve` says how to install them and exits 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from trading_core.runtime import ServiceSpec

SERVICE_NAMES = ("position-management", "order-management", "execution-router", "market-data")
INSTALL_HINT = (
    "install the server with `pip install 'tradectl[server]'` "
    "(in the repository: `make setup`, then `uv run tradectl serve`)"
)


def service_specs() -> list[ServiceSpec]:
    """The services, in start order: consumers subscribe before producers publish."""
    from execution_router.main import SPEC as ROUTER
    from market_data.main import SPEC as MARKET_DATA
    from order_management.main import SPEC as ORDERS
    from position_management.main import SPEC as POSITIONS

    return [POSITIONS, ORDERS, ROUTER, MARKET_DATA]


def serve(
    config: Annotated[
        Path, typer.Option("--config", "-c", help="Config file of the environment.")
    ] = Path("config/local.yaml"),
    service: Annotated[
        list[str] | None,
        typer.Option(
            "--service",
            "-s",
            help="Run only this service (repeatable); all of them when omitted.",
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

        every = service_specs()
    except ModuleNotFoundError as error:
        typer.echo(
            f"tradectl serve: the server packages are not installed (no module "
            f"{error.name!r}); {INSTALL_HINT}",
            err=True,
        )
        raise typer.Exit(2) from None
    loaded = load_or_exit(config, "tradectl")
    specs = [spec for spec in every if spec.name in chosen]
    run_until_signalled(lambda: build_platform(loaded, specs))
