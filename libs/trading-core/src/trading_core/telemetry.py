"""Logging and tracing: JSON log lines that carry the trace id, W3C trace context on events."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import context, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from pythonjsonlogger.json import JsonFormatter

_PROPAGATOR = TraceContextTextMapPropagator()
tracer = trace.get_tracer("trading")


class _TraceFilter(logging.Filter):
    """Adds the current trace and span ids, so a log line links to its trace."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def filter(self, record: logging.LogRecord) -> bool:
        span_context = trace.get_current_span().get_span_context()
        record.service = self._service
        record.trace_id = f"{span_context.trace_id:032x}" if span_context.is_valid else ""
        record.span_id = f"{span_context.span_id:016x}" if span_context.is_valid else ""
        return True


def configure_logging(service: str, level: str = "INFO", json_format: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_TraceFilter(service))
    if json_format:
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(service)s %(trace_id)s",
                rename_fields={"levelname": "severity", "asctime": "time"},
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def configure_tracing(service: str) -> None:
    """Installs the SDK tracer provider once; exporters are added by deployment config."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        trace.set_tracer_provider(provider)


def current_traceparent() -> str:
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent", "")


@contextmanager
def continue_trace(traceparent: str, name: str) -> Iterator[None]:
    """Runs the block in a span that follows from the trace context an event carried."""
    parent = _PROPAGATOR.extract({"traceparent": traceparent}) if traceparent else None
    token = context.attach(parent) if parent is not None else None
    try:
        with tracer.start_as_current_span(name):
            yield
    finally:
        if token is not None:
            context.detach(token)
