"""gRPC server bootstrap: health (real readiness), reflection, graceful drain."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from trading_core.config import ServiceEndpoint

log = logging.getLogger(__name__)

# Registers servicers on the server; returns the full names of the services it added.
Registrar = Callable[[grpc.Server], Sequence[str]]

_OPTIONS = [
    ("grpc.so_reuseport", 0),
    ("grpc.max_receive_message_length", 4 * 1024 * 1024),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
]


class GrpcServer:
    """One service's gRPC server. Health says NOT_SERVING until `set_serving(True)`."""

    def __init__(
        self,
        name: str,
        endpoint: ServiceEndpoint,
        max_workers: int,
        register: Registrar,
        interceptors: Sequence[grpc.ServerInterceptor] = (),
    ) -> None:
        self.name = name
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=name),
            interceptors=list(interceptors),
            options=_OPTIONS,
        )
        self._services = list(register(self._server))
        self._health = health.HealthServicer(experimental_non_blocking=True)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        reflection.enable_server_reflection(
            [*self._services, health.SERVICE_NAME, reflection.SERVICE_NAME], self._server
        )
        address = f"{endpoint.host}:{endpoint.port}"
        try:
            self.port = self._server.add_insecure_port(address)
        except RuntimeError:  # what grpc raises when the address is taken or invalid
            self.port = 0
        if self.port == 0:
            raise OSError(f"{name}: cannot listen on {address}: is the port in use?")
        self.address = f"{endpoint.host}:{self.port}"
        self.set_serving(False)

    def start(self) -> None:
        self._server.start()
        log.info("%s listening on %s", self.name, self.address)

    def set_serving(self, serving: bool) -> None:
        for service in ["", *self._services]:
            self._health.set(service, _status(serving))

    def set_part_serving(self, part: str, serving: bool) -> None:
        """The health of one part of the service (such as `venue/binance`), under its own name:
        a client asks grpc.health.v1 with service `venue/binance`."""
        self._health.set(part, _status(serving))

    def stop(self, grace: float) -> None:
        """Refuses new calls at once and gives running ones `grace` seconds to finish."""
        self.set_serving(False)
        self._server.stop(grace).wait()
        log.info("%s stopped", self.name)


def _status(serving: bool) -> health_pb2.HealthCheckResponse.ServingStatus.ValueType:
    if serving:
        return health_pb2.HealthCheckResponse.SERVING
    return health_pb2.HealthCheckResponse.NOT_SERVING
