"""What checking one call's API key costs the server, in this process: the interceptor of
`trading_core.auth` (parse the metadata, hash the key, look it up, apply the RPC's rule) around
a handler that does nothing, for SubmitOrder. The front door's throughput with and without keys
(`make bench`) carries the machine's noise; this is the cost itself, in microseconds per call.
Run: `uv run python -m benchmarks.auth_bench`; prints JSON."""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

import grpc
from trading.v1 import orders_pb2
from trading_core.auth import AuthInterceptor, Keyring, bearer, key_sha256
from trading_core.config import Security

CALLS = 20_000
ROUNDS = 5
_KEY = "bench-" + "k" * 40


class _Call(grpc.HandlerCallDetails):
    method = "/trading.v1.OrderService/SubmitOrder"
    invocation_metadata = (("user-agent", "grpc-python/bench"), *bearer(_KEY))


def measure(calls: int = CALLS, rounds: int = ROUNDS) -> dict[str, Any]:
    security = Security.model_validate(
        {
            "authentication": "api_keys",
            "api_keys": [
                {"id": "bench", "sha256": key_sha256(_KEY), "accounts": ["*"], "roles": ["trader"]}
            ],
        }
    )
    interceptor = AuthInterceptor(Keyring(security))
    handler: grpc.RpcMethodHandler[Any, Any] = grpc.unary_unary_rpc_method_handler(
        lambda request, _context: request
    )
    request = orders_pb2.SubmitOrderRequest(account_id="bench")
    details = _Call()
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls):
            guarded = interceptor.intercept_service(lambda _details: handler, details)
            assert guarded is not None and guarded.unary_unary is not None
            guarded.unary_unary(request, None)  # type: ignore[arg-type]
        samples.append((time.perf_counter() - started) / calls * 1e6)
    return {
        "calls": calls,
        "rounds": rounds,
        "us_per_call_median": round(statistics.median(samples), 2),
    }


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
