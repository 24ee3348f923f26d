"""Runs execution-router as its own process: `execution-router --config config/local.yaml`."""

from trading_core.runtime import service_main

from execution_router.service import ExecutionRouter


def main() -> None:
    service_main(ExecutionRouter.name, ExecutionRouter)


if __name__ == "__main__":
    main()
