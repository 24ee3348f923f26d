"""Runs the market-data producer as its own process: `market-data --config config/local.yaml`."""

from __future__ import annotations

import sys

from trading_core.config import ConfigError
from trading_core.runtime import ServiceSpec, service_main

from market_data.service import SCHEMA, MarketDataProducer

# No API of its own: its server answers health and reflection only.
SPEC = ServiceSpec(MarketDataProducer.name, MarketDataProducer, SCHEMA)


def main() -> None:
    try:
        service_main(SPEC)
    except ConfigError as error:  # what the venue says of the config: an unlisted symbol
        print(f"{SPEC.name}: cannot start: {error}", file=sys.stderr)  # noqa: T201
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
