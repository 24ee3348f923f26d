"""`tradectl serve`: runs the platform, all three services in one process or a chosen few."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from trading_core.runtime import ServiceFactory, build_platform, load_or_exit, run_until_signalled

SERVICE_NAMES = ("position-management", "order-management", "execution-router")


def service_factories() -> dict[str, ServiceFactory]:
    """The three services, in start order: consumers subscribe before producers publish.

    Imported here rather than at the top, so other tradectl commands start quickly.
    """
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
    """Run the platform until Ctrl-C or SIGTERM, then drain and stop cleanly."""
    chosen = service or list(SERVICE_NAMES)
    unknown = sorted(set(chosen) - set(SERVICE_NAMES))
    if unknown:
        raise typer.BadParameter(
            f"unknown service {', '.join(unknown)}; choose from {', '.join(SERVICE_NAMES)}",
            param_hint="--service",
        )
    loaded = load_or_exit(config, "tradectl")
    every = service_factories()
    factories = {name: factory for name, factory in every.items() if name in chosen}
    run_until_signalled(build_platform(loaded, factories))
