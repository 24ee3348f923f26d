"""What the network-venue fakes share: a ThreadingHTTPServer on loopback, the fault hooks, the
count of orders received, and a request handler that plays a fault out. Each fake keeps only its
venue's wire format: its routes, its errors, and how it answers a 429, a 503 or a good request.

The faults, each for the next request that matches its path and method (None: any):
`timeout` (the answer comes after `sleep_s`), `5xx` (the venue's 503), `429` (the venue's rate
limit answer, nothing applied), `drop` (the connection closes without an answer, nothing
applied), `lost` (applied, then the connection closes) and `late` (the connection closes at once
and the request is applied `sleep_s` later, by the venue's own rules). `timeout` and `5xx` apply
the request first only with `apply`; other kinds are the venue's own (a handler lists those it
applies in `always_applied` and answers them in `_answer_faulted`).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Self

from tests.fakes.stream import StreamServer

# The credentials the tests give a fake and its adapter (made up: a leak would show in the logs).
API_KEY = "test-api-key-0123456789abcdef"
SECRET = "test-secret-fedcba9876543210-do-not-log"


@dataclass
class Fault:
    kind: str
    path: str | None
    method: str | None = None
    apply: bool = False
    sleep_s: float = 3.0
    retry_after_s: float = 1
    field: str = ""


def now_ms() -> int:
    return int(time.time() * 1000)


def later(delay_s: float, action: Callable[[], None]) -> None:
    """Runs `action` on a daemon timer `delay_s` from now."""
    timer = threading.Timer(delay_s, action)
    timer.daemon = True
    timer.start()


class LoopbackFake:
    """A venue fake; `start()` serves it on 127.0.0.1, `url` is its base (plus `path`).

    `sent` counts the orders received by the venue's own key (client order id, link id, tag),
    whatever became of them: the bar of the tests is that no order is sent twice."""

    def __init__(
        self, handler: type[FakeHandler], path: str = "", stream: StreamServer | None = None
    ) -> None:
        self.sent: Counter[str] = Counter()
        # The venue's private websocket, when it has one (tests/fakes/stream.py).
        self._stream = stream
        self._faults: list[Fault] = []
        self._lock = threading.RLock()
        self._path = path
        bound = type(handler.__name__, (handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), bound)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{self._path}"

    @property
    def stream(self) -> StreamServer:
        assert self._stream is not None, "this fake has no stream"
        return self._stream

    @property
    def stream_url(self) -> str:
        return self.stream.url

    def start(self) -> Self:
        if self._stream is not None:
            self._stream.start()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._stream is not None:
            self._stream.stop()

    def count(self, key: str) -> int:
        """How many times the order with this key was received."""
        with self._lock:
            return self.sent[key]

    def clear_faults(self) -> None:
        """Drops every fault not yet applied: the venue answers again."""
        with self._lock:
            self._faults.clear()

    def _add_fault(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.path in (None, path) and fault.method in (None, method):
                    self._faults.remove(fault)
                    return fault
        return None


class FakeHandler(BaseHTTPRequestHandler):
    """The request handler's shared parts; `LoopbackFake` binds `fake` to its instance."""

    fake: ClassVar[Any]
    protocol_version = "HTTP/1.1"
    # Headers and body go out as separate writes: without this, Nagle and the client's
    # delayed ACK hold every answer back 40 ms.
    disable_nagle_algorithm = True
    # Fault kinds whose request is applied whatever `apply` says (besides `lost`).
    always_applied: ClassVar[frozenset[str]] = frozenset()

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return None

    def _read_body(self) -> str:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length).decode() if length else ""

    def _hang_up(self) -> None:
        """Closes the connection without an answer."""
        self.close_connection = True
        self.connection.shutdown(2)

    def _send(
        self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            self.close_connection = True  # the client gave up (a timeout fault)

    def _play(
        self,
        fault: Fault | None,
        apply: Callable[[], tuple[int, Any]],
        apply_late: Callable[[], None],
        unapplied: tuple[int, Any],
    ) -> None:
        """Answers a request as `fault` says: `apply` applies it and gives (status, answer),
        `apply_late` applies it `sleep_s` later (a `late` fault), `unapplied` is the answer of a
        request not applied (a `timeout` or `5xx` without `apply`)."""
        kind = fault.kind if fault is not None else ""
        if fault is not None and kind == "late":
            later(fault.sleep_s, apply_late)
        if kind in ("late", "drop"):
            self._hang_up()
            return
        if fault is not None and kind == "429":
            self._answer_rate_limited(fault.retry_after_s)
            return
        applied = fault is None or fault.apply or kind == "lost" or kind in self.always_applied
        status, answer = apply() if applied else unapplied
        if kind == "lost":
            self._hang_up()
        elif fault is not None and kind == "timeout":
            time.sleep(fault.sleep_s)
            self._answer(status, answer)
        elif kind == "5xx":
            self._answer_unavailable()
        elif fault is None:
            self._answer(status, answer)
        else:
            self._answer_faulted(fault, status, answer)

    # -- the venue's wire format ------------------------------------------------------------

    def _answer(self, status: int, answer: Any, headers: dict[str, str] | None = None) -> None:
        raise NotImplementedError

    def _answer_rate_limited(self, retry_after_s: float) -> None:
        raise NotImplementedError

    def _answer_unavailable(self) -> None:
        raise NotImplementedError

    def _answer_faulted(self, fault: Fault, status: int, answer: Any) -> None:
        """Answers a fault of the venue's own kinds."""
        raise AssertionError(f"unknown fault {fault.kind}")
