"""Runs order-management as its own process: `order-management --config config/local.yaml`."""

from trading_core.runtime import service_main

from order_management.service import OrderManagement


def main() -> None:
    service_main(OrderManagement.name, OrderManagement)


if __name__ == "__main__":
    main()
