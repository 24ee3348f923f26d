"""Sharding by account: each shard's services own the accounts mapped to it (`config.Sharding`).

A call about an account of another shard is refused with FAILED_PRECONDITION before its handler
runs, and changes nothing. The message names the account's shard and, when `sharding.endpoints`
lists it, where that shard's service is reached; the same go into the trailing metadata
(`trading-shard`, `trading-shard-address`), so that a client can follow it once and remember
the account's address (`tradectl.routing`). A call that names no account, or every account
(an operator's listing), is answered from this shard's accounts.

A service also refuses to start when its journal holds an account the map gives to another
shard: an account's orders and positions live in one shard's journals, so a map that moved it
would have two shards answer for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import grpc

from trading_core.auth import RULES, Rule, _replaced
from trading_core.config import ConfigError, Sharding
from trading_core.journal import Journal

if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]

log = logging.getLogger(__name__)

SHARD_METADATA = "trading-shard"
ADDRESS_METADATA = "trading-shard-address"


class ShardInterceptor(grpc.ServerInterceptor):
    """Refuses calls about accounts that `service` of this shard does not own."""

    def __init__(self, sharding: Sharding, service: str, rules: Mapping[str, Rule] = RULES):
        self._sharding = sharding
        self._service = service
        self._rules = rules

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Handler | None],
        details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = continuation(details)
        rule = self._rules.get(details.method)
        if handler is None or rule is None or rule.account is None:
            return handler
        return self._guarded(handler, rule.account)

    def _guarded(self, handler: Handler, account_of: Callable[[Any], str | None]) -> Handler:
        def refuse_foreign(request: Any, context: grpc.ServicerContext) -> None:
            account = account_of(request)
            if account and not self._sharding.owns(account):
                message, metadata = self.refusal(account)
                context.set_trailing_metadata(metadata)
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, message)

        answer, answers = handler.unary_unary, handler.unary_stream

        def unary(request: Any, context: grpc.ServicerContext) -> Any:
            assert answer is not None
            refuse_foreign(request, context)
            return answer(request, context)

        def stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            assert answers is not None
            refuse_foreign(request, context)
            yield from answers(request, context)

        return _replaced(handler, unary, stream)

    def refusal(self, account: str) -> tuple[str, tuple[tuple[str, str], ...]]:
        """The message and trailing metadata that send a call about `account` to its shard."""
        shard = self._sharding.shard_of(account)
        address = self._sharding.endpoint(shard, self._service)
        metadata: tuple[tuple[str, str], ...] = ((SHARD_METADATA, str(shard)),)
        where = f" at {address}" if address else ""
        if address:
            metadata += ((ADDRESS_METADATA, address),)
        message = (
            f"account {account} belongs to shard {shard}, and this {self._service} serves shard "
            f"{self._sharding.shard}: call {self._service} of shard {shard}{where}"
        )
        return message, metadata


def interceptors(sharding: Sharding, service: str) -> list[grpc.ServerInterceptor]:
    """The ownership check of one service's server: none with a single shard."""
    return [ShardInterceptor(sharding, service)] if sharding.shards > 1 else []


def refuse_foreign_accounts(journal: Journal, sharding: Sharding, service: str) -> None:
    """Raises ConfigError when the journal holds an account the map gives to another shard."""
    if sharding.shards == 1:
        return
    if sharding.shard == 0:  # every account not mapped elsewhere is shard 0's
        test, listed = "IN", [a for a, shard in sharding.accounts.items() if shard != 0]
        if not listed:
            return
    else:
        test, listed = "NOT IN", [a for a, s in sharding.accounts.items() if s == sharding.shard]
    marks = ", ".join("?" * len(listed))
    found = journal.query(
        f"SELECT account_id FROM journal WHERE account_id != '' AND account_id {test} ({marks})"  # noqa: S608
        " LIMIT 1",
        tuple(listed),
    )
    if found:
        account = found[0][0]
        raise ConfigError(
            f"sharding: {service} of shard {sharding.shard} holds the orders or positions of "
            f"account {account} in its journal, but the map gives it to shard "
            f"{sharding.shard_of(account)}: an account never moves between shards; map it back"
        )
