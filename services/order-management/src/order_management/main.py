"""Runs order-management as its own process: `order-management --config config/local.yaml`."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from trading.v1 import (
    control_pb2,
    control_pb2_grpc,
    orders_pb2,
    orders_pb2_grpc,
    portfolio_pb2,
    portfolio_pb2_grpc,
)
from trading_core.runtime import ServiceSpec, service_main

from order_management.grpc_api import OrderServicer, PortfolioServicer, TradingControlServicer
from order_management.service import SCHEMA, OrderManagement


def add_servicers(service: OrderManagement, server: grpc.Server) -> Sequence[str]:
    orders_pb2_grpc.add_OrderServiceServicer_to_server(OrderServicer(service), server)
    control_pb2_grpc.add_TradingControlServiceServicer_to_server(
        TradingControlServicer(service), server
    )
    portfolio_pb2_grpc.add_PortfolioServiceServicer_to_server(PortfolioServicer(service), server)
    return [
        orders_pb2.DESCRIPTOR.services_by_name["OrderService"].full_name,
        control_pb2.DESCRIPTOR.services_by_name["TradingControlService"].full_name,
        portfolio_pb2.DESCRIPTOR.services_by_name["PortfolioService"].full_name,
    ]


SPEC = ServiceSpec(OrderManagement.name, OrderManagement, SCHEMA, add_servicers)


def main() -> None:
    service_main(SPEC)


if __name__ == "__main__":
    main()
