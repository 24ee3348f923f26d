"""Fan-out of live events to streaming RPCs, with a bound on how far a client may fall behind
and on how many streams are open at once.

Each open stream holds one of the server's gRPC worker threads for its life. `max_streams`
(config `services.max_streams`, below `services.max_workers`) keeps workers free for unary
calls: a stream beyond it is refused with RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

import grpc

T = TypeVar("T")

_END = object()


class StreamSubscription(Generic[T]):
    def __init__(self, accept: Callable[[T], bool], limit: int) -> None:
        self.accept = accept
        self._queue: queue.Queue[object] = queue.Queue(maxsize=limit)
        self.overflowed = False

    def offer(self, item: T) -> bool:
        """Queues the item; False when the client has fallen too far behind."""
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.overflowed = True
            return False
        return True

    def end(self) -> None:
        # Ends the stream even when the queue is full.
        while True:
            try:
                self._queue.put_nowait(_END)
                return
            except queue.Full:
                self._queue.get_nowait()

    def items(self) -> Iterator[T]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            yield item  # type: ignore[misc]


class Broadcaster(Generic[T]):
    """Hands every published item to the live subscribers that accept it."""

    def __init__(self, limit: int = 10_000, *, max_streams: int = 8) -> None:
        self._limit = limit
        self._max_streams = max_streams
        self._subscribers: list[StreamSubscription[T]] = []
        self._lock = threading.Lock()
        self._closed = False

    @property
    def has_subscribers(self) -> bool:
        """Lets a publisher skip building items nobody is waiting for."""
        return bool(self._subscribers)

    def publish(self, item: T) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            if subscriber.accept(item) and not subscriber.offer(item):
                self._drop(subscriber)

    def stream(self, context: grpc.ServicerContext, accept: Callable[[T], bool]) -> Iterator[T]:
        """Subscribes at once, then yields accepted items until the client goes away or the
        service stops. The caller may tell the client it is subscribed (initial metadata)."""
        subscriber = StreamSubscription(accept, self._limit)
        with self._lock:
            if self._closed:
                return iter(())
            open_streams = len(self._subscribers)
            if open_streams < self._max_streams:
                self._subscribers.append(subscriber)
        if open_streams >= self._max_streams:
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{open_streams} streams are open, the most this service allows "
                "(services.max_streams); close one or raise it",
            )
        context.add_callback(lambda: self._drop(subscriber))
        return self._deliver(context, subscriber)

    def _deliver(
        self, context: grpc.ServicerContext, subscriber: StreamSubscription[T]
    ) -> Iterator[T]:
        try:
            yield from subscriber.items()
        finally:
            self._drop(subscriber)
        if subscriber.overflowed:
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"the stream fell {self._limit} events behind and was closed; "
                "reconnect and catch up with the List call",
            )

    def close(self) -> None:
        """Ends every stream, for a clean stop."""
        with self._lock:
            self._closed = True
            subscribers, self._subscribers = self._subscribers, []
        for subscriber in subscribers:
            subscriber.end()

    def _drop(self, subscriber: StreamSubscription[T]) -> None:
        with self._lock:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)
        subscriber.end()
