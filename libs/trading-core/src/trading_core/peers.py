"""Where the platform's services listen, and the peer APIs services call over gRPC (never through
the bus they repair): the execution router's reconciliation API, position-management's
positions (checked before a resume)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import grpc
from trading.v1 import (
    events_pb2,
    execution_pb2,
    execution_pb2_grpc,
    positions_pb2,
    positions_pb2_grpc,
)

from trading_core.auth import bearer
from trading_core.config import PlatformConfig
from trading_core.events import micros_timestamp
from trading_core.tracing import traced

# A reconciliation call that takes longer is abandoned and asked again next round.
CALL_TIMEOUT_S = 5.0
_UNREACHABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
# Rounds without an answer before it is a warning: at start the router may come up after us.
_QUIET_FAILURES = 3

log = logging.getLogger(__name__)


# Which services call which others over gRPC (their clients below).
CALLS = {
    "order-management": ("execution-router", "position-management"),
    "position-management": ("execution-router",),
}


class Peers:
    """The address of each service of this process's shard: where it is bound when this
    process hosts it (a port of 0 is chosen at start), else the shard's endpoint
    (`sharding.endpoints`), else its configured endpoint (`services`); and the API key calls to
    them present."""

    def __init__(self, config: PlatformConfig, key: str | None = None) -> None:
        self._config = config
        self._bound: dict[str, str] = {}
        self.key = key

    def bind(self, service: str, address: str) -> None:
        self._bound[service] = address

    def address(self, service: str) -> str:
        if service in self._bound:
            return self._bound[service]
        sharding = self._config.sharding
        if shard_endpoint := sharding.endpoint(sharding.shard, service):
            return shard_endpoint
        endpoint = getattr(self._config.services, service.replace("-", "_"))
        return f"{endpoint.host}:{endpoint.port}"


class PeerUnavailable(Exception):
    """The peer did not answer (down, restarting, or too slow): ask again later."""


class _PeerClient:
    """One channel to a peer service, opened on first use and reopened after it was unreachable
    (a restart may move the address)."""

    service = ""

    def __init__(self, peers: Peers, timeout_s: float = CALL_TIMEOUT_S) -> None:
        self._peers = peers
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._channel: grpc.Channel | None = None
        self._stub: Any = None
        self._failures_in_a_row = 0

    def _new_stub(self, channel: grpc.Channel) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        with self._lock:
            if self._channel is not None:
                self._channel.close()
            self._channel = self._stub = None

    def _call(self, method: str, request: object) -> Any:
        stub = self._connected()
        try:
            answer = getattr(stub, method)(
                request, timeout=self._timeout_s, metadata=bearer(self._peers.key)
            )
        except grpc.RpcError as error:
            if error.code() in _UNREACHABLE:
                self.close()
                raise PeerUnavailable(f"{method}: {error.code().name}") from None
            raise
        self._failures_in_a_row = 0
        return answer

    def _connected(self) -> Any:
        with self._lock:
            if self._stub is None:
                self._channel = grpc.insecure_channel(self._peers.address(self.service))
                self._stub = self._new_stub(traced(self._channel))
            return self._stub


class PositionClient(_PeerClient):
    """Position-management's ListPositions."""

    service = "position-management"

    def _new_stub(self, channel: grpc.Channel) -> Any:
        return positions_pb2_grpc.PositionServiceStub(channel)

    def positions(self, account_id: str = "") -> list[positions_pb2.Position]:
        request = positions_pb2.ListPositionsRequest(account_id=account_id)
        return list(self._call("ListPositions", request).positions)


class RouterClient(_PeerClient):
    """The execution router's QueryOrder, CountFills and ListFills."""

    service = "execution-router"

    def _new_stub(self, channel: grpc.Channel) -> Any:
        return execution_pb2_grpc.ExecutionServiceStub(channel)

    def query_order(
        self,
        order_id: str,
        account_id: str,
        instrument: str,
        cancel_request_id: str = "",
        pending_modify: events_pb2.ModifyOrder | None = None,
    ) -> list[events_pb2.Event]:
        request = execution_pb2.QueryOrderRequest(
            order_id=order_id,
            account_id=account_id,
            instrument=instrument,
            cancel_request_id=cancel_request_id,
            pending_modify=pending_modify,
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

    def report_unavailable(self, what: str, error: PeerUnavailable) -> None:
        """Logs a round the router did not answer: a warning once it keeps not answering."""
        self._failures_in_a_row += 1
        level = logging.WARNING if self._failures_in_a_row >= _QUIET_FAILURES else logging.INFO
        log.log(level, "%s: the router did not answer (%s); asking again next round", what, error)
