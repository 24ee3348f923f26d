"""Log lines name the service that wrote them, also when one process hosts all three, and carry
the trace id of the request or event they belong to."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator

import pytest
from trading_core.telemetry import (
    configure_logging,
    current_service,
    new_traceparent,
    service_scope,
    trace_id,
    trace_scope,
)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, str]]:
    return [json.loads(line) for line in capsys.readouterr().err.splitlines()]


def in_thread(name: str, write: threading.Thread) -> None:
    write.name = name
    write.start()
    write.join()


def test_a_line_from_a_service_package_names_that_service_in_an_embedded_process(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("tradectl")
    logging.getLogger("order_management.service").info("from order-management")
    logging.getLogger("execution_router.domain.paper_venue").info("from the router")
    logging.getLogger("position_management").info("from position-management")
    written = lines(capsys)
    assert [line["service"] for line in written] == [
        "order-management",
        "execution-router",
        "position-management",
    ]
    assert written[0]["message"] == "from order-management"
    assert written[0]["severity"] == "INFO"


def test_a_shared_library_line_names_the_service_whose_work_it_does(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("tradectl")
    shared = logging.getLogger("trading_core.service")
    with service_scope("position-management"):
        assert current_service() == "position-management"
        shared.info("applied")
        with service_scope("order-management"):
            shared.info("nested")
        shared.info("back")
    shared.info("outside")
    assert [line["service"] for line in lines(capsys)] == [
        "position-management",
        "order-management",
        "position-management",
        "tradectl",
    ]
    assert current_service() == ""


def test_a_shared_library_line_on_a_services_thread_names_that_service(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("tradectl")
    shared = logging.getLogger("trading_core.errors")
    for name in ("order-management_3", "event-store-position_management_events", "health"):
        in_thread(name, threading.Thread(target=shared.error, args=("on " + name,)))
    assert [line["service"] for line in lines(capsys)] == [
        "order-management",
        "position-management",
        "tradectl",
    ]


def test_the_service_package_wins_over_the_scope_it_is_called_in(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("tradectl")
    with service_scope("order-management"):  # a bus delivering to position-management inline
        logging.getLogger("position_management.service").warning("mark")
    [line] = lines(capsys)
    assert line["service"] == "position-management"


def test_a_service_process_names_itself_on_lines_of_no_one_service(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("execution-router")
    logging.getLogger("trading_core.runtime").info("ready")
    [line] = lines(capsys)
    assert line["service"] == "execution-router"


def test_json_lines_carry_the_trace_id_of_the_request_they_belong_to(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("tradectl")
    caller = new_traceparent()
    with trace_scope(caller):
        logging.getLogger("order_management.service").info("in the request")
    logging.getLogger("order_management.service").info("outside any request")
    inside, outside = lines(capsys)
    assert inside["trace_id"] == trace_id(caller) != ""
    assert outside["trace_id"] == ""


def test_plain_text_lines_name_the_service_too(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("tradectl", json_format=False)
    logging.getLogger("execution_router.service").warning("feed stopped")
    line = capsys.readouterr().err
    assert " WARNING execution-router execution_router.service feed stopped" in line
