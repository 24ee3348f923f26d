"""Logging and telemetry: JSON log lines that carry the service that wrote them and the trace
they belong to (Cloud Logging's fields), and the stages of an order as spans and latencies.

The service of a log line, in embedded mode too, where one process hosts all three: the
service package whose logger wrote it (`order_management.*` is order-management); else the
service whose request or event is being handled (`service_scope`, for code shared by all, such
as `trading_core.*`); else the service a thread belongs to by its name (gRPC workers, store
flushers, bus threads carry it); else the process's own name given to `configure_logging`.

The trace of a line is the current OpenTelemetry span's (`trading_core.tracing`): a gRPC call
continues its caller's trace, every event it causes carries it, and a consumer continues the
trace of the message it applies. Without tracing (`telemetry.tracing.exporter: none`) lines
carry no trace.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any, TypeVar

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

from trading_core import metrics, tracing
from trading_core.bus.base import Durable

_NOTHING: AbstractContextManager[None] = nullcontext()


def stage(name: str) -> AbstractContextManager[Any]:
    """Runs the block as a stage of an order: a span, and its time in
    trading_stage_duration_seconds. Nothing at all when neither is on."""
    if not (tracing.enabled() or metrics.enabled()):
        return _NOTHING
    return _Stage(name)


class _Stage:
    __slots__ = ("_name", "_span", "_started")

    def __init__(self, name: str) -> None:
        self._name = name
        self._span = tracing.span(name)
        self._started = 0.0

    def __enter__(self) -> None:
        self._span.__enter__()
        self._started = time.perf_counter()

    def __exit__(self, *exception: Any) -> None:
        metrics.stage_took(self._name, time.perf_counter() - self._started)
        self._span.__exit__(*exception)


D = TypeVar("D", bound=Durable)


def observed_commit(service: str, commit: Callable[[], D]) -> D:
    """Runs `commit` (a journal commit) as the span `journal.commit`, ended once it is durable,
    and records that time in trading_journal_commit_duration_seconds."""
    if not (tracing.enabled() or metrics.enabled()):
        return commit()
    span = tracing.start_span("journal.commit")
    started = time.perf_counter()
    ticket = commit()

    def durable() -> None:
        metrics.commit_took(service, time.perf_counter() - started)
        if span is not None:
            span.end()

    ticket.add_done_callback(durable)
    return ticket


# The platform's services; the package of each is its name with underscores.
SERVICES = ("order-management", "execution-router", "position-management")
_SERVICE_OF_PACKAGE = {name.replace("-", "_"): name for name in SERVICES}
_current_service: ContextVar[str] = ContextVar("service", default="")


class service_scope:  # noqa: N801 - used like a function: `with service_scope(self.name):`
    """Runs the block on behalf of one service: log lines written in it name that service."""

    __slots__ = ("_service", "_token")
    _token: Token[str]

    def __init__(self, service: str) -> None:
        self._service = service

    def __enter__(self) -> str:
        self._token = _current_service.set(self._service)
        return self._service

    def __exit__(self, *_exception: object) -> None:
        _current_service.reset(self._token)


def current_service() -> str:
    """The service set by the innermost `service_scope`, else ""."""
    return _current_service.get()


class _ServiceAndTraceFilter(logging.Filter):
    """Adds the service that wrote the line and its trace (Cloud Logging's trace and span
    fields when the project of the traces is known), so a log line links to its trace."""

    def __init__(self, process: str, project: str | None = None) -> None:
        super().__init__()
        self._process = process
        self._trace_prefix = f"projects/{project}/traces/" if project else ""
        self._by_thread: dict[str, str] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = (
            _SERVICE_OF_PACKAGE.get(record.name.partition(".")[0])
            or _current_service.get()
            or self._service_of_thread(record.threadName or "")
        )
        record.trace_id = ""
        if tracing.enabled():
            self._add_trace(record)
        return True

    def _add_trace(self, record: logging.LogRecord) -> None:
        context = trace.get_current_span().get_span_context()
        if not context.is_valid:
            return
        trace_id = record.trace_id = f"{context.trace_id:032x}"
        if self._trace_prefix:
            fields = record.__dict__
            fields["logging.googleapis.com/trace"] = self._trace_prefix + trace_id
            fields["logging.googleapis.com/spanId"] = f"{context.span_id:016x}"
            fields["logging.googleapis.com/trace_sampled"] = context.trace_flags.sampled

    def _service_of_thread(self, thread: str) -> str:
        """The service named in a thread's name (`order-management_3`, `event-store-
        order_management`), else the process's name."""
        known = self._by_thread.get(thread)
        if known is None:
            spelled = thread.replace("_", "-")
            known = next((name for name in SERVICES if name in spelled), self._process)
            if len(self._by_thread) < 10_000:  # thread names are few; never grow without bound
                self._by_thread[thread] = known
        return known


class _CloudJsonFormatter(JsonFormatter):
    """Times in RFC 3339, UTC, as Cloud Logging reads its `time` field."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="microseconds")


def configure_logging(
    service: str, level: str = "INFO", json_format: bool = True, project: str | None = None
) -> None:
    """Log lines to stderr, JSON by default, each with its service and trace id.

    `service` names the process: the service of lines that belong to no one service. `project`:
    the Google Cloud project of the traces, for Cloud Logging's trace field.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_ServiceAndTraceFilter(service, project))
    if json_format:
        handler.setFormatter(
            _CloudJsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(service)s %(trace_id)s",
                rename_fields={"levelname": "severity", "asctime": "time"},
            )
        )
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(service)s %(name)s %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
