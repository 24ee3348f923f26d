"""Reaching an account's shard: a gRPC channel that follows the platform's redirects.

A sharded platform (README "Sharding by account") answers a call about an account of another
shard with FAILED_PRECONDITION and the trailing metadata `trading-shard` (the account's shard)
and `trading-shard-address` (where that shard's service is reached). `ShardRoutedChannel` sends
each call to the address it knows for the request's `account_id` (at first the one it was given,
any shard's), follows a redirect once, and remembers the account's address for later calls:

    with ShardRoutedChannel("order-management:50051", lambda c: authorized(c, key)) as channel:
        orders = orders_pb2_grpc.OrderServiceStub(channel)
        orders.SubmitOrder(request)  # to the shard of request.account_id

A refused call changed nothing, so sending it again to the right shard is safe (and submits
carry their request id anyway). Clients in other languages do the same with the two metadata
keys. A platform with one shard never redirects: the channel is then a plain one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

import grpc

SHARD_METADATA = "trading-shard"
ADDRESS_METADATA = "trading-shard-address"

Wrap = Callable[[grpc.Channel], grpc.Channel]


def redirect_of(error: Any) -> str | None:
    """The address a refused call (an RpcError that is a Call) should go to, when the refusal
    names one."""
    if not isinstance(error, grpc.Call) or error.code() is not grpc.StatusCode.FAILED_PRECONDITION:
        return None
    for key, value in error.trailing_metadata() or ():
        if key == ADDRESS_METADATA:
            return str(value)
    return None


class ShardRoutedChannel(grpc.Channel):
    """See the module docstring. `wrap` is applied to each underlying channel (an API key's
    interceptor, say); `open_channel` opens one (insecure by default, as on the cluster's
    network)."""

    def __init__(
        self,
        address: str,
        wrap: Wrap = lambda channel: channel,
        open_channel: Callable[[str], grpc.Channel] = grpc.insecure_channel,
    ) -> None:
        self.address = address
        self._wrap = wrap
        self._open = open_channel
        self._lock = threading.Lock()
        self._opened: dict[str, tuple[grpc.Channel, grpc.Channel]] = {}  # address -> raw, wrapped
        self._accounts: dict[str, str] = {}  # account -> the address that serves it

    def address_of(self, account: str) -> str:
        with self._lock:
            return self._accounts.get(account, self.address)

    def remember(self, account: str, address: str) -> None:
        if account:
            with self._lock:
                self._accounts[account] = address

    def channel_to(self, address: str) -> grpc.Channel:
        with self._lock:
            if address not in self._opened:
                raw = self._open(address)
                self._opened[address] = (raw, self._wrap(raw))
            return self._opened[address][1]

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        def multi_callable(address: str) -> Any:
            return self.channel_to(address).unary_unary(method, *args, **kwargs)

        return _RoutedUnary(self, multi_callable)

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        def multi_callable(address: str) -> Any:
            return self.channel_to(address).unary_stream(method, *args, **kwargs)

        return _RoutedStream(self, multi_callable)

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self.channel_to(self.address).stream_unary(method, *args, **kwargs)

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self.channel_to(self.address).stream_stream(method, *args, **kwargs)

    def subscribe(self, callback: Any, try_to_connect: bool = False) -> None:
        self.channel_to(self.address).subscribe(callback, try_to_connect)

    def unsubscribe(self, callback: Any) -> None:
        self.channel_to(self.address).unsubscribe(callback)

    def close(self) -> None:
        with self._lock:
            opened, self._opened = list(self._opened.values()), {}
        for raw, _ in opened:
            raw.close()

    def __enter__(self) -> ShardRoutedChannel:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class _RoutedUnary:
    def __init__(self, channel: ShardRoutedChannel, at: Callable[[str], Any]) -> None:
        self._channel = channel
        self._at = at

    def __call__(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        account = str(getattr(request, "account_id", ""))
        address = self._channel.address_of(account)
        try:
            return self._at(address)(request, *args, **kwargs)
        except grpc.RpcError as error:
            moved = redirect_of(error)
            if moved is None or moved == address:
                raise
        self._channel.remember(account, moved)
        return self._at(moved)(request, *args, **kwargs)


class _RoutedStream(_RoutedUnary):
    def __call__(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        account = str(getattr(request, "account_id", ""))
        address = self._channel.address_of(account)
        call = self._at(address)(request, *args, **kwargs)
        # A refusal ends the call before its headers: wait for them to know which it is.
        call.initial_metadata()
        if call.is_active() or (moved := redirect_of(call)) is None or moved == address:
            return call
        self._channel.remember(account, moved)
        return self._at(moved)(request, *args, **kwargs)
