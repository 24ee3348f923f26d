"""Runs the market-data producer as its own process: `market-data --config config/local.yaml`."""

from __future__ import annotations

from trading_core.runtime import ServiceSpec, service_main

from market_data.service import SCHEMA, MarketDataProducer

# No API of its own: its server answers health and reflection only.
SPEC = ServiceSpec(MarketDataProducer.name, MarketDataProducer, SCHEMA)


def main() -> None:
    service_main(SPEC)


if __name__ == "__main__":
    main()
