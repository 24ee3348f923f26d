"""Log lines name the service that wrote them, also when one process hosts all three, and carry
the trace of the request or event they belong to (Cloud Logging's fields)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from trading_core import tracing
from trading_core.config import ConfigError, Tracing
from trading_core.telemetry import configure_logging, current_service, service_scope


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
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


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.configure_tracing(Tracing(), "order-management", exporter)
    yield exporter
    tracing.shutdown_tracing()


def test_json_lines_carry_the_trace_of_the_span_they_belong_to_in_cloud_loggings_fields(
    capsys: pytest.CaptureFixture[str], spans: InMemorySpanExporter
) -> None:
    configure_logging("tradectl", project="trading-platform-dev")
    with tracing.span("SubmitOrder"):
        logging.getLogger("order_management.service").info("in the request")
    logging.getLogger("order_management.service").info("outside any request")
    inside, outside = lines(capsys)
    tracing.shutdown_tracing()  # exports what the batch holds
    (span,) = spans.get_finished_spans()
    assert span.context is not None
    trace_id, span_id = f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}"
    assert inside["trace_id"] == trace_id
    assert (
        inside["logging.googleapis.com/trace"] == f"projects/trading-platform-dev/traces/{trace_id}"
    )
    assert inside["logging.googleapis.com/spanId"] == span_id
    assert inside["logging.googleapis.com/trace_sampled"] is True
    assert inside["severity"] == "INFO"
    assert inside["time"].endswith("+00:00")  # RFC 3339, as Cloud Logging reads it
    assert outside["trace_id"] == ""
    assert "logging.googleapis.com/trace" not in outside


def test_without_tracing_lines_carry_no_trace(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("tradectl", project="trading-platform-dev")
    with tracing.span("SubmitOrder"):
        logging.getLogger("order_management.service").info("in the request")
    (line,) = lines(capsys)
    assert line["trace_id"] == ""
    assert "logging.googleapis.com/trace" not in line


def test_plain_text_lines_name_the_service_too(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("tradectl", json_format=False)
    logging.getLogger("execution_router.service").warning("feed stopped")
    line = capsys.readouterr().err
    assert " WARNING execution-router execution_router.service feed stopped" in line


def test_the_exporter_env_follows_otel_traces_exporter_and_refuses_what_it_does_not_know(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    assert tracing.configure_tracing(Tracing(exporter="env"), "order-management") is None
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    try:
        assert tracing.configure_tracing(Tracing(exporter="env"), "order-management")
        assert tracing.enabled()
    finally:
        tracing.shutdown_tracing()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "jaeger")
    with pytest.raises(ConfigError, match="OTEL_TRACES_EXPORTER is 'jaeger'; set it to none"):
        tracing.configure_tracing(Tracing(exporter="env"), "order-management")
