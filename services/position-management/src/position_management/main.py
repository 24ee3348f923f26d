"""Runs position-management as its own process: `position-management --config config/local.yaml`."""

from trading_core.runtime import service_main

from position_management.service import PositionManagement


def main() -> None:
    service_main(PositionManagement.name, PositionManagement)


if __name__ == "__main__":
    main()
