"""Checks every gRPC API makes of its requests' fields: an InvalidArgument naming the field."""

from __future__ import annotations

from typing import Any, Protocol

from google.protobuf import timestamp_pb2

from trading_core.errors import InvalidArgument
from trading_core.events import stamp_micros

MAX_ID_LENGTH = 128


def text_problem(
    value: str, field: str, *, required: bool, max_length: int = MAX_ID_LENGTH
) -> str | None:
    """What is wrong with an id, name or reason field, as a message naming it; None when
    nothing is. The one rule for such fields, in the APIs and in order-management's parsing."""
    if required and not value.strip():
        return f"{field} is required"
    if len(value) > max_length:
        return f"{field} must be at most {max_length} characters, got {len(value)}"
    if not value.isprintable():
        return f"{field} must contain only printable characters"
    return None


def required_text(value: str, field: str, max_length: int = MAX_ID_LENGTH) -> str:
    problem = text_problem(value, field, required=True, max_length=max_length)
    if problem is not None:
        raise InvalidArgument(problem)
    return value


def optional_text(value: str, field: str) -> str:
    problem = text_problem(value, field, required=False)
    if problem is not None:
        raise InvalidArgument(problem)
    return value


class _Windowed(Protocol):
    @property
    def since_time(self) -> timestamp_pb2.Timestamp: ...
    @property
    def until_time(self) -> timestamp_pb2.Timestamp: ...

    def HasField(self, field_name: Any) -> bool: ...  # noqa: N802 - protobuf's name


def time_window(request: _Windowed) -> tuple[int, int]:
    """The request's [since_time, until_time) in microseconds: both required, since first."""
    if not (request.HasField("since_time") and request.HasField("until_time")):
        raise InvalidArgument("since_time and until_time are required")
    since_us, until_us = stamp_micros(request.since_time), stamp_micros(request.until_time)
    if since_us >= until_us:
        raise InvalidArgument("since_time must be before until_time")
    return since_us, until_us


def page_size(requested: int, *, default: int, largest: int) -> int:
    if not 0 <= requested <= largest:
        raise InvalidArgument(f"page_size must be between 0 and {largest}")
    return requested or default
