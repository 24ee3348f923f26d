"""A websocket server on loopback for the exchange fakes' private (user-data) streams.

`StreamServer` serves one path with aiohttp (its own event loop on a daemon thread) and leaves
the wire format to a `StreamProtocol`: the fake's way of answering a client's messages (log in,
subscribe, ping) and of wrapping an event for a session that subscribed. The fake publishes an
event whenever one of its orders changes (`publish`), from any thread, in order.

Faults, for the tests of a stream that is not perfect:
- `drop()`: closes every connection now (the stream dropped mid-run); events published while no
  session is subscribed are lost, as on a real exchange.
- `refuse(True)`: new connections are refused (HTTP 503) until `refuse(False)`.
- `duplicate(n)`: the next `n` events are each sent twice.
- `hold()` ... `release(reverse=True)`: events are held back, then sent in reverse order.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import WSMsgType, web


@dataclass(eq=False)
class Session:
    """One client connection: what it logged in and subscribed to."""

    socket: web.WebSocketResponse
    topics: set[str] = field(default_factory=set)
    authenticated: bool = False
    subscription_id: int | None = None


class StreamProtocol(Protocol):
    def answer(self, session: Session, message: Any) -> list[dict[str, Any]]:
        """The answers to a client's message (and the session's new state)."""

    def wrap(self, session: Session, event: Any) -> dict[str, Any] | None:
        """The event as this session receives it; None when it did not subscribe to it."""


class StreamServer:
    """See the module docstring; `start()` serves it, `url` is its address."""

    def __init__(self, protocol: StreamProtocol, path: str) -> None:
        self.protocol = protocol
        self.path = path
        self.connections = 0  # every connection accepted, so a test can wait for a reconnect
        self.sent = 0  # events sent to a subscribed session
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._sessions: set[Session] = set()
        self._lock = threading.Lock()
        self._refusing = False
        self._duplicates = 0
        self._held: list[Any] | None = None
        self._outbox: asyncio.Queue[Any] | None = None
        self._runner: web.AppRunner | None = None
        self._port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self._port}{self.path}"

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(timeout=10)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def subscribed(self) -> int:
        """How many sessions would receive an event now."""
        with self._lock:
            return sum(1 for s in self._sessions if s.topics or s.subscription_id is not None)

    # -- the fake's side ---------------------------------------------------------------------

    def publish(self, event: Any) -> None:
        """Sends the event to every session that subscribed to it (in publishing order)."""
        with self._lock:
            if self._held is not None:
                self._held.append(event)
                return
            copies = 2 if self._duplicates else 1
            self._duplicates = max(0, self._duplicates - 1)
        for _ in range(copies):
            self._loop.call_soon_threadsafe(self._enqueue, event)

    # -- faults -------------------------------------------------------------------------------

    def drop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._drop(), self._loop).result(timeout=10)

    def refuse(self, refusing: bool) -> None:
        with self._lock:
            self._refusing = refusing

    def duplicate(self, events: int) -> None:
        with self._lock:
            self._duplicates = events

    def hold(self) -> None:
        with self._lock:
            self._held = []

    def release(self, reverse: bool = True) -> None:
        with self._lock:
            held, self._held = self._held or [], None
        for event in reversed(held) if reverse else held:
            self._loop.call_soon_threadsafe(self._enqueue, event)

    # -- the server ---------------------------------------------------------------------------

    async def _serve(self) -> None:
        self._outbox = asyncio.Queue()
        app = web.Application()
        app.router.add_get(self.path, self._connect)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])
        self._sender = asyncio.create_task(self._send_all())

    async def _shutdown(self) -> None:
        self._sender.cancel()
        await self._drop()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _drop(self) -> None:
        with self._lock:
            sessions, self._sessions = list(self._sessions), set()
        for session in sessions:
            await session.socket.close()

    def _enqueue(self, event: Any) -> None:
        assert self._outbox is not None
        self._outbox.put_nowait(event)

    async def _send_all(self) -> None:
        assert self._outbox is not None
        while True:
            event = await self._outbox.get()
            with self._lock:
                sessions = list(self._sessions)
            for session in sessions:
                wrapped = self.protocol.wrap(session, event)
                if wrapped is None or session.socket.closed:
                    continue
                try:
                    await session.socket.send_str(json.dumps(wrapped))
                except (ConnectionError, RuntimeError):
                    continue
                with self._lock:
                    self.sent += 1

    async def _connect(self, request: web.Request) -> web.StreamResponse:
        with self._lock:
            refusing = self._refusing
        if refusing:
            return web.Response(status=503, text="stream unavailable")
        socket = web.WebSocketResponse(autoping=True)
        try:
            await socket.prepare(request)
        except ConnectionError:  # the client gave up during the handshake
            return socket
        session = Session(socket)
        with self._lock:
            self._sessions.add(session)
            self.connections += 1
        try:
            async for message in socket:
                if message.type != WSMsgType.TEXT:
                    continue
                try:
                    parsed = json.loads(message.data)
                except ValueError:
                    parsed = None
                with self._lock:
                    answers = self.protocol.answer(session, parsed)
                for answer in answers:
                    await socket.send_str(json.dumps(answer))
        finally:
            with self._lock:
                self._sessions.discard(session)
        return socket
