"""The API key tradectl presents with every call (`authorization: Bearer <key>`).

tradectl installs without the server packages, so it carries its own small interceptor rather
than the server's (trading_core.auth). Without TRADECTL_API_KEY or --api-key it sends the public
development key, which only a platform in environment `local` accepts (`make run`).
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import grpc

DEVELOPMENT_KEY = "dev.local-only-not-a-secret"


class _Details(grpc.ClientCallDetails):
    def __init__(self, details: grpc.ClientCallDetails, key: str) -> None:
        self.method = details.method
        self.timeout = details.timeout
        self.metadata = (*(details.metadata or ()), ("authorization", f"Bearer {key}"))
        self.credentials = details.credentials
        self.wait_for_ready = details.wait_for_ready
        self.compression = details.compression


class _Bearer(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    def __init__(self, key: str) -> None:
        self._key = key

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(_Details(details, self._key), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(_Details(details, self._key), request)


def authorized(channel: grpc.Channel, key: str) -> grpc.Channel:
    return grpc.intercept_channel(channel, _Bearer(key))


def new_key() -> tuple[str, str]:
    """A fresh API key (256 random bits) and the hex SHA-256 the platform keeps of it."""
    key = "tk." + secrets.token_urlsafe(32)
    return key, hashlib.sha256(key.encode()).hexdigest()
