"""Where the platform's services listen, and the execution router's reconciliation API as the
services that reconcile with it call it (over gRPC, never through the bus they repair)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import grpc
from trading.v1 import events_pb2, execution_pb2, execution_pb2_grpc

from trading_core.config import PlatformConfig
from trading_core.events import micros_timestamp

# A reconciliation call that takes longer is abandoned and asked again next round.
CALL_TIMEOUT_S = 5.0
_UNREACHABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
# Rounds without an answer before it is a warning: at start the router may come up after us.
_QUIET_FAILURES = 3

log = logging.getLogger(__name__)


class Peers:
    """The address of each service: where it is bound when this process hosts it (a port of 0
    is chosen at start), else its configured endpoint."""

    def __init__(self, config: PlatformConfig) -> None:
        self._config = config
        self._bound: dict[str, str] = {}

    def bind(self, service: str, address: str) -> None:
        self._bound[service] = address

    def address(self, service: str) -> str:
        if service in self._bound:
            return self._bound[service]
        endpoint = getattr(self._config.services, service.replace("-", "_"))
        return f"{endpoint.host}:{endpoint.port}"


class RouterUnavailable(Exception):
    """The router did not answer (down, restarting, or too slow): ask again next round."""


class RouterClient:
    """The execution router's QueryOrder, CountFills and ListFills."""

    def __init__(self, peers: Peers, timeout_s: float = CALL_TIMEOUT_S) -> None:
        self._peers = peers
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._channel: grpc.Channel | None = None
        self._stub: execution_pb2_grpc.ExecutionServiceStub | None = None
        self._failures_in_a_row = 0

    def query_order(
        self, order_id: str, account_id: str, instrument: str, cancel_request_id: str = ""
    ) -> list[events_pb2.Event]:
        request = execution_pb2.QueryOrderRequest(
            order_id=order_id,
            account_id=account_id,
            instrument=instrument,
            cancel_request_id=cancel_request_id,
        )
        return list(self._call("QueryOrder", request).reports)

    def count_fills(self, since_us: int, until_us: int) -> int:
        request = execution_pb2.CountFillsRequest(
            since_time=micros_timestamp(since_us), until_time=micros_timestamp(until_us)
        )
        return int(self._call("CountFills", request).fill_count)

    def fills(self, since_us: int, until_us: int) -> Iterator[list[events_pb2.Event]]:
        """The reports of the orders filled in [since, until), a page at a time."""
        token = ""
        while True:
            request = execution_pb2.ListFillsRequest(
                since_time=micros_timestamp(since_us),
                until_time=micros_timestamp(until_us),
                page_token=token,
            )
            page = self._call("ListFills", request)
            yield list(page.reports)
            token = page.next_page_token
            if not token:
                return

    def report_unavailable(self, what: str, error: RouterUnavailable) -> None:
        """Logs a round the router did not answer: a warning once it keeps not answering."""
        self._failures_in_a_row += 1
        level = logging.WARNING if self._failures_in_a_row >= _QUIET_FAILURES else logging.INFO
        log.log(level, "%s: the router did not answer (%s); asking again next round", what, error)

    def close(self) -> None:
        with self._lock:
            if self._channel is not None:
                self._channel.close()
            self._channel = self._stub = None

    def _call(self, method: str, request: object) -> Any:
        stub = self._connected()
        try:
            answer = getattr(stub, method)(request, timeout=self._timeout_s)
        except grpc.RpcError as error:
            if error.code() in _UNREACHABLE:
                self.close()  # the next call looks the address up again (a restart may move it)
                raise RouterUnavailable(f"{method}: {error.code().name}") from None
            raise
        self._failures_in_a_row = 0
        return answer

    def _connected(self) -> execution_pb2_grpc.ExecutionServiceStub:
        with self._lock:
            if self._stub is None:
                self._channel = grpc.insecure_channel(self._peers.address("execution-router"))
                self._stub = execution_pb2_grpc.ExecutionServiceStub(self._channel)
            return self._stub
