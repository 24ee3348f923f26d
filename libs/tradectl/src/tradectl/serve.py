"""`tradectl serve`: runs the platform, every service in one process or a chosen few."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from trading_core.runtime import ServiceSpec, build_platform, load_or_exit, run_until_signalled

SERVICE_NAMES = ("position-management", "order-management", "execution-router", "market-data")


def service_specs() -> list[ServiceSpec]:
    """The services, in start order: consumers subscribe before producers publish.

    Imported here rather than at the top, so other tradectl commands start quickly.
    """
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
    specs = [spec for spec in service_specs() if spec.name in chosen]
    run_until_signalled(lambda: build_platform(loaded, specs))
