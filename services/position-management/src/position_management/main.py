"""Runs position-management as its own process: `position-management --config config/local.yaml`."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from trading.v1 import positions_pb2, positions_pb2_grpc
from trading_core.analytics.grpc_api import add_analytics_servicer
from trading_core.runtime import ServiceSpec, service_main

from position_management.grpc_api import PositionServicer
from position_management.service import SCHEMA, PositionManagement


def add_servicers(service: PositionManagement, server: grpc.Server) -> Sequence[str]:
    positions_pb2_grpc.add_PositionServiceServicer_to_server(PositionServicer(service), server)
    # Analytics (GetPerformance, GetExecutionQuality) are served here: performance is this
    # service's subject, and its process is off the order path, so a query that takes seconds
    # of CPU never slows a submit (order-management) or a venue call (execution-router). It
    # reads every service's warehouse (the DuckDB files READ_ONLY, or BigQuery).
    return [
        positions_pb2.DESCRIPTOR.services_by_name["PositionService"].full_name,
        *add_analytics_servicer(service.config, server),
    ]


SPEC = ServiceSpec(PositionManagement.name, PositionManagement, SCHEMA, add_servicers)


def main() -> None:
    service_main(SPEC)


if __name__ == "__main__":
    main()
