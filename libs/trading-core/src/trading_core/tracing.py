"""Traces with OpenTelemetry: one trace per order, across gRPC and the bus.

- gRPC: the instrumentation library's interceptors (opentelemetry-instrumentation-grpc) on every
  server and on the peer clients; they continue a caller's W3C `traceparent` metadata.
- The bus: a published message carries its trace context in its attributes, written and read by
  OpenTelemetry's propagator API (`opentelemetry.propagate`, W3C Trace Context). Publishing is
  the outbox's, after the commit and on another thread, so the context travels with the record:
  an event or command keeps the `traceparent` of the span it was made in (also a column of the
  warehouse), and the outbox's PRODUCER span continues it. A consumer's CONSUMER span continues
  the message's attributes.
- The stages of an order (validate, journal commit, publish, route, venue call, apply fill) are
  spans of their own, through `trading_core.telemetry.stage`.

One tracer provider per process (`configure_tracing`), not the global one, so that a test may
run a platform after another. With `telemetry.tracing.exporter: none` (the default) there is
none: no interceptor is installed and every function here returns at once.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.grpc import client_interceptor, filters, server_interceptor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from trading_core.config import ConfigError, Tracing

log = logging.getLogger(__name__)

_provider: TracerProvider | None = None
_tracer: trace.Tracer | None = None
_NOTHING: AbstractContextManager[None] = nullcontext()
# Reads the `traceparent` an event keeps: the W3C format, whatever OTEL_PROPAGATORS says.
_W3C = TraceContextTextMapPropagator()
# Health probes and reflection are no part of any order: no spans for them.
_TRACED_CALLS = filters.negate(
    filters.any_of(filters.health_check(), filters.service_prefix("grpc.reflection"))
)


def configure_tracing(
    settings: Tracing, service: str, exporter: SpanExporter | None = None
) -> TracerProvider | None:
    """Starts this process's tracing as `settings` say, its spans named after `service`;
    `exporter` replaces the configured one (tests). None when tracing is off."""
    global _provider, _tracer  # noqa: PLW0603 - one tracer per process, as one logger setup
    shutdown_tracing()
    exporter = exporter or _exporter(settings)
    if exporter is None:
        return None
    sampler = ParentBased(TraceIdRatioBased(settings.sample_ratio))
    _provider = TracerProvider(sampler=sampler, resource=Resource.create({"service.name": service}))
    _provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=1000))
    _tracer = _provider.get_tracer("trading_core")
    return _provider


def _exporter(settings: Tracing) -> SpanExporter | None:
    name: str = settings.exporter
    if name == "env":  # the OpenTelemetry SDK's own variable (the k8s tracing component sets it)
        name = os.environ.get("OTEL_TRACES_EXPORTER", "none")
    if name == "console":
        return ConsoleSpanExporter()
    if name == "otlp":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=settings.endpoint)
    if name != "none":
        raise ConfigError(
            f"telemetry.tracing.exporter env: OTEL_TRACES_EXPORTER is {name!r}; "
            "set it to none, otlp or console"
        )
    return None


def shutdown_tracing() -> None:
    """Exports the spans still buffered and stops tracing."""
    global _provider, _tracer
    provider, _provider, _tracer = _provider, None, None
    if provider is not None:
        provider.shutdown()


def enabled() -> bool:
    return _tracer is not None


def span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    parent: Context | None = None,
    attributes: Mapping[str, str] | None = None,
) -> AbstractContextManager[Any]:
    """Runs the block as a span (the current one's child, or `parent`'s); nothing when off."""
    if _tracer is None:
        return _NOTHING
    return _tracer.start_as_current_span(name, parent, kind, attributes)


def start_span(name: str) -> trace.Span | None:
    """A span in the current trace that the caller ends, perhaps on another thread (a journal
    commit); None when off or outside any trace (background work starts no trace of its own)."""
    if _tracer is None or not trace.get_current_span().get_span_context().is_valid:
        return None
    return _tracer.start_span(name)


def current_traceparent() -> str:
    """The W3C traceparent of the current span, kept in the events it causes; "" when off."""
    if _tracer is None:
        return ""
    carrier: dict[str, str] = {}
    _W3C.inject(carrier)
    return carrier.get("traceparent", "")


def current_context() -> Context | None:
    """The current context, to continue later on another thread (`within`); None when off."""
    return None if _tracer is None else otel_context.get_current()


def within(context: Context | None) -> AbstractContextManager[Any]:
    """Runs the block in a context taken by `current_context` (nothing when None)."""
    return _NOTHING if context is None else _attached(context)


@contextmanager
def _attached(context: Context) -> Iterator[None]:
    token = otel_context.attach(context)
    try:
        yield
    finally:
        otel_context.detach(token)


@contextmanager
def _publishing(
    topic: str, traceparent: str, attributes: MutableMapping[str, str]
) -> Iterator[None]:
    parent = _W3C.extract({"traceparent": traceparent}) if traceparent else None
    with span(f"{topic} publish", kind=SpanKind.PRODUCER, parent=parent, attributes=_on(topic)):
        propagate.inject(attributes)
        yield


def publishing(
    topic: str, traceparent: str, attributes: MutableMapping[str, str]
) -> AbstractContextManager[Any]:
    """Runs a publish to `topic` as a PRODUCER span continuing the record's `traceparent`, and
    adds its context to the message's `attributes`; nothing when off, or for a record of no
    trace (quotes, background work: a trace per quote would bury the orders')."""
    if _tracer is None or not traceparent:
        return _NOTHING
    return _publishing(topic, traceparent, attributes)


def consuming(topic: str, attributes: Mapping[str, str]) -> AbstractContextManager[Any]:
    """Runs the handling of a message of `topic` as a CONSUMER span that continues the trace
    context in its attributes; nothing when off or when the message carries none."""
    if _tracer is None:
        return _NOTHING
    parent = propagate.extract(attributes)
    if not trace.get_current_span(parent).get_span_context().is_valid:
        return _NOTHING
    return span(f"{topic} process", kind=SpanKind.CONSUMER, parent=parent, attributes=_on(topic))


def _on(topic: str) -> dict[str, str]:
    return {"messaging.system": "gcp_pubsub", "messaging.destination.name": topic}


def server_interceptors() -> list[grpc.ServerInterceptor]:
    """The instrumentation's server interceptor (every call but health and reflection)."""
    if _provider is None:
        return []
    interceptor = server_interceptor(tracer_provider=_provider, filter_=_TRACED_CALLS)  # type: ignore[no-untyped-call]
    return [interceptor]


def traced(channel: grpc.Channel) -> grpc.Channel:
    """A channel whose calls are CLIENT spans carrying the trace to the callee."""
    if _provider is None:
        return channel
    interceptor = client_interceptor(tracer_provider=_provider)  # type: ignore[no-untyped-call]
    return grpc.intercept_channel(channel, interceptor)
