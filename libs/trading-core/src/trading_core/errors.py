"""Request errors that map to one gRPC status each, with a message a person can act on."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import grpc

log = logging.getLogger(__name__)


class RequestError(Exception):
    code = grpc.StatusCode.INTERNAL


class InvalidArgument(RequestError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(RequestError):
    code = grpc.StatusCode.NOT_FOUND


class FailedPrecondition(RequestError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class AlreadyExists(RequestError):
    code = grpc.StatusCode.ALREADY_EXISTS


class ResourceExhausted(RequestError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


F = TypeVar("F", bound=Callable[..., Any])


def grpc_errors(mapping: dict[type[Exception], grpc.StatusCode] | None = None) -> Callable[[F], F]:
    """Turns known exceptions of a unary method into gRPC statuses; anything else is INTERNAL,
    logged, without details. (The caller's trace is continued by the tracing interceptor.)

    Works for unary methods; streaming methods check their request before yielding.
    """
    extra = mapping or {}

    def decorate(method: F) -> F:
        @functools.wraps(method)
        def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
            try:
                return method(self, request, context)
            except RequestError as error:
                context.abort(error.code, str(error))
            except tuple(extra) as error:
                context.abort(_code_for(error, extra), str(error))
            except Exception:
                log.exception("unexpected error in %s", method.__name__)
                context.abort(grpc.StatusCode.INTERNAL, "internal error; see the service log")

        return wrapper  # type: ignore[return-value]

    return decorate


def _code_for(error: Exception, mapping: dict[type[Exception], grpc.StatusCode]) -> grpc.StatusCode:
    for kind, code in mapping.items():
        if isinstance(error, kind):
            return code
    return grpc.StatusCode.INTERNAL
