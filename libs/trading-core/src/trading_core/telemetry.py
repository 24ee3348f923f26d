"""Logging and trace context: JSON log lines that carry the trace id of the request or event
they belong to, and W3C trace context (`traceparent`) carried from request to event to event.

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


class _TraceFilter(logging.Filter):
    """Adds the service and the current trace id, so a log line links to its trace."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self._service
        record.trace_id = trace_id(_current.get())
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
