"""Logging and trace context: JSON log lines that carry the service that wrote them and the trace
id of the request or event they belong to, and W3C trace context (`traceparent`) carried from
request to event to event.

The service of a log line, in embedded mode too, where one process hosts all three: the
service package whose logger wrote it (`order_management.*` is order-management); else the
service whose request or event is being handled (`service_scope`, for code shared by all, such
as `trading_core.*`); else the service a thread belongs to by its name (gRPC workers, store
flushers, bus threads carry it); else the process's own name given to `configure_logging`.

A gRPC call continues the caller's `traceparent` metadata or starts a new trace; every event it
causes carries that trace, and a consumer continues the trace of the event it applies. Spans
and exporters (OpenTelemetry) come with the deployment issue; the ids are already in place.
"""

from __future__ import annotations

import logging
import os
import random
import re
import sys
from contextvars import ContextVar, Token

from pythonjsonlogger.json import JsonFormatter

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")
_current: ContextVar[str] = ContextVar("traceparent", default="")
# Trace ids must be unique, not secret; see trading_core.events.new_id.
_ids = random.Random(os.urandom(32))


def new_traceparent(trace_id: str = "") -> str:
    """A traceparent with a new span id, in the given trace or a new one."""
    trace_id = trace_id or f"{_ids.getrandbits(128):032x}"
    return f"00-{trace_id}-{_ids.getrandbits(64):016x}-01"


def current_traceparent() -> str:
    return _current.get()


def trace_id(traceparent: str) -> str:
    """The trace id of a well-formed traceparent, else ""."""
    if len(traceparent) != 55:  # cheap refusal first: this runs for every event consumed
        return ""
    match = _TRACEPARENT.match(traceparent)
    return match.group(1) if match else ""


class trace_scope:  # noqa: N801 - used like the function it replaces: `with trace_scope(...)`
    """Runs the block as a new span of the given trace (a new trace when there is none).

    A class rather than a generator context manager: it runs once per request and per consumed
    event, and this costs a fraction of that.
    """

    __slots__ = ("_token", "traceparent")
    _token: Token[str]

    def __init__(self, traceparent: str) -> None:
        self.traceparent = new_traceparent(trace_id(traceparent))

    def __enter__(self) -> str:
        self._token = _current.set(self.traceparent)
        return self.traceparent

    def __exit__(self, *_exception: object) -> None:
        _current.reset(self._token)


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
    """Adds the service that wrote the line and the current trace id, so a log line links to
    its service and its trace."""

    def __init__(self, process: str) -> None:
        super().__init__()
        self._process = process
        self._by_thread: dict[str, str] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = (
            _SERVICE_OF_PACKAGE.get(record.name.partition(".")[0])
            or _current_service.get()
            or self._service_of_thread(record.threadName or "")
        )
        record.trace_id = trace_id(_current.get())
        return True

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


def configure_logging(service: str, level: str = "INFO", json_format: bool = True) -> None:
    """Log lines to stderr, JSON by default, each with its service and trace id.

    `service` names the process: the service of lines that belong to no one service.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_ServiceAndTraceFilter(service))
    if json_format:
        handler.setFormatter(
            JsonFormatter(
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
