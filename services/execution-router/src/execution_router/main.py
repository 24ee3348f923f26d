"""Runs execution-router as its own process: `execution-router --config config/local.yaml`."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from trading.v1 import execution_pb2, execution_pb2_grpc
from trading_core.runtime import ServiceSpec, service_main

from execution_router.grpc_api import ExecutionServicer
from execution_router.service import SCHEMA, ExecutionRouter


def add_servicers(service: ExecutionRouter, server: grpc.Server) -> Sequence[str]:
    execution_pb2_grpc.add_ExecutionServiceServicer_to_server(ExecutionServicer(service), server)
    return [execution_pb2.DESCRIPTOR.services_by_name["ExecutionService"].full_name]


SPEC = ServiceSpec(ExecutionRouter.name, ExecutionRouter, SCHEMA, add_servicers)


def main() -> None:
    service_main(SPEC)


if __name__ == "__main__":
    main()
