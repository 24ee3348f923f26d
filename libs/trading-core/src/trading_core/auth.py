"""Who may call what: every RPC but health and reflection is authenticated and authorized.

Authentication. A client sends `authorization: Bearer <API key>` with each call. The platform
knows a key only by its SHA-256 (`security.api_keys`, hashed at rest): the key a call presents
is hashed and looked up. A call without a key, with a malformed header or an unknown key is
answered UNAUTHENTICATED before any handler runs. Keys are high-entropy random strings
(`tradectl key new`), so a plain SHA-256 is safe to store and fast to check (no stretching).

Authorization. Each key has roles and accounts. Every RPC has a rule (`RULES`): the role it
needs, and which account it touches (the request's `account_id`, or none for venue and quote
reads). A call on an account the key does not hold, or that needs a role it lacks, is answered
PERMISSION_DENIED, naming what is missing; a call that names no account where one may be named
(a list of every account's orders) needs a key for every account (`*`). An RPC without a rule is
refused: a new RPC is closed until it is given one. trader, operator and service keys may also
read; only operator keys change trading state, risk limits and instrument statuses, and list or
replay dead letters; service keys make the services' calls to each other.

The key's id (`actor()`) is known to the handler while it runs, for the audit trail: operator
actions are events that name the key. No key, nor its hash, is ever logged.
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
from trading.v1 import control_pb2

from trading_core.config import EVERY_ACCOUNT, Role, Security

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]

HEADER = "authorization"
_SCHEME = "bearer "
_MAX_KEY_LENGTH = 512
# Services that answer anyone: probes and API discovery carry no data.
_OPEN = ("/grpc.health.v1.Health/", "/grpc.reflection.")
# The roles that include reading.
_READERS = frozenset({"reader", "trader", "operator", "service"})


@dataclass(frozen=True)
class Caller:
    """An authenticated key: its id (for logs and the audit trail), roles and accounts."""

    key_id: str
    roles: frozenset[str]
    accounts: frozenset[str]

    def has(self, role: Role) -> bool:
        return role in self.roles or (role == "reader" and bool(self.roles & _READERS))

    def holds(self, account: str) -> bool:
        """Whether the key may act on `account` ("" is every account)."""
        return EVERY_ACCOUNT in self.accounts or (bool(account) and account in self.accounts)


# The id of the key whose call is being handled, on the handler's thread.
_actor: contextvars.ContextVar[str] = contextvars.ContextVar("actor", default="")


def actor() -> str:
    """The id of the key that made the call being handled; "" outside an authenticated call."""
    return _actor.get()


def key_sha256(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


# -- rules ---------------------------------------------------------------------------------


# The account a request touches: "" for every account, None for no account's data.
AccountOf = Callable[[Any], str | None]


@dataclass(frozen=True)
class Rule:
    """What a call needs: a role, and the account it touches (no `account`: no account's data)."""

    role: Role
    account: AccountOf | None = None


def _account_id(request: Any) -> str:
    return str(request.account_id)


def _risk_scope_account(request: Any) -> str:
    """SetRiskLimits: the account it changes, or "" (every account) for any other scope."""
    return str(request.name) if request.scope == control_pb2.RISK_SCOPE_ACCOUNT else ""


def _rules() -> dict[str, Rule]:
    account = _account_id
    every = _every_account
    trade, read = Rule("trader", account), Rule("reader", account)
    operate = Rule("operator", account)
    rules: dict[str, Rule] = {}

    def service(name: str, **methods: Rule) -> None:
        rules.update({f"/trading.v1.{name}/{method}": rule for method, rule in methods.items()})

    service(
        "OrderService",
        SubmitSignal=trade,
        SubmitOrder=trade,
        CancelOrder=trade,
        ModifyOrder=trade,
        CancelAllOrders=trade,
        ClosePosition=trade,
        GetOrder=read,
        ListOrders=read,
        StreamOrderEvents=read,
    )
    service("PortfolioService", GetPortfolio=read)
    service("PositionService", GetPosition=read, ListPositions=read, StreamPositionEvents=read)
    service("AnalyticsService", GetExecutionQuality=read, GetPerformance=read)
    service(
        "ExecutionService",
        GetQuote=Rule("reader"),
        ListVenues=Rule("reader"),
        GetVenueStatus=Rule("reader"),
        ListChildOrders=read,
        QueryOrder=Rule("service", every),
        CountFills=Rule("service", every),
        ListFills=Rule("service", every),
    )
    service(
        "TradingControlService",
        GetTradingState=read,
        GetRiskLimits=Rule("reader", _account_if_named),  # none named: the defaults
        SetTradingState=operate,
        EmergencyStop=operate,
        SetRiskLimits=Rule("operator", _risk_scope_account),
        SetInstrumentStatus=Rule("operator", every),
    )
    service(
        "AdminService",
        ListDeadLetters=Rule("operator", every),
        ReplayDeadLetter=Rule("operator", every),
        ListUnresolved=Rule("operator", every),
    )
    return rules


def _every_account(_request: Any) -> str:
    return ""


def _account_if_named(request: Any) -> str | None:
    return str(request.account_id) or None


RULES: Mapping[str, Rule] = _rules()


# -- the server's side -----------------------------------------------------------------------


class Keyring:
    """The keys a server accepts, by SHA-256."""

    def __init__(self, security: Security, extra: Sequence[tuple[str, Caller]] = ()) -> None:
        self.enabled = security.authentication == "api_keys"
        self._callers = {
            key.sha256: Caller(key.id, frozenset(key.roles), frozenset(key.accounts))
            for key in security.api_keys
        }
        self._callers.update(extra)

    def caller_of(self, metadata: Sequence[tuple[str, str | bytes]] | None) -> Caller | str:
        """The key's caller, or why the call is not authenticated (a message for the client)."""
        values = [value for name, value in metadata or () if name == HEADER]
        if not values:
            return f"no API key: send the metadata `{HEADER}: Bearer <API key>`"
        value = values[0]
        if len(values) > 1 or not isinstance(value, str) or not value.lower().startswith(_SCHEME):
            return f"malformed {HEADER} metadata: expected one `Bearer <API key>`"
        key = value[len(_SCHEME) :].strip()
        if not key or len(key) > _MAX_KEY_LENGTH or not key.isprintable():
            return f"malformed {HEADER} metadata: expected one `Bearer <API key>`"
        found = self._callers.get(key_sha256(key))
        return found if found is not None else "unknown API key (it is not shown here)"


def denial(rule: Rule | None, method: str, who: Caller, request: Any) -> str | None:
    """Why `who` may not make this call, or None when it may."""
    if rule is None:
        return f"{method} is not open to any API key"
    if not who.has(rule.role):
        return f"{method} needs the {rule.role} role; API key {who.key_id} has {_listed(who)}"
    account = None if rule.account is None else rule.account(request)
    if account is None or who.holds(account):
        return None
    if not account:
        return (
            f"{method} without an account_id covers every account; API key {who.key_id} holds "
            f"{', '.join(sorted(who.accounts))}: name one of them"
        )
    return f"API key {who.key_id} does not hold account {account}"


def _listed(who: Caller) -> str:
    return ", ".join(sorted(who.roles)) or "no role"


class AuthInterceptor(grpc.ServerInterceptor):
    """Authenticates and authorizes every call before its handler runs (module docstring)."""

    def __init__(self, keyring: Keyring, rules: Mapping[str, Rule] = RULES) -> None:
        self._keyring = keyring
        self._rules = rules

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Handler | None],
        details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = continuation(details)
        method = details.method
        if handler is None or method.startswith(_OPEN):
            return handler
        found = self._keyring.caller_of(details.invocation_metadata)
        if isinstance(found, str):
            log.warning("refused %s: %s", method, found)
            return _refusing(handler, grpc.StatusCode.UNAUTHENTICATED, found)
        return _guarded(handler, method, found, self._rules.get(method))


def _refusing(handler: Handler, code: grpc.StatusCode, message: str) -> Handler:
    def refuse(_request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(code, message)

    return _replaced(handler, refuse, refuse)


def _guarded(handler: Handler, method: str, who: Caller, rule: Rule | None) -> Handler:
    def allowed(request: Any, context: grpc.ServicerContext) -> contextvars.Token[str]:
        why = denial(rule, method, who, request)
        if why is not None:
            log.warning("denied %s to API key %s: %s", method, who.key_id, why)
            context.abort(grpc.StatusCode.PERMISSION_DENIED, why)
        return _actor.set(who.key_id)

    answer, answers = handler.unary_unary, handler.unary_stream

    def unary(request: Any, context: grpc.ServicerContext) -> Any:
        assert answer is not None
        token = allowed(request, context)
        try:
            return answer(request, context)
        finally:
            _actor.reset(token)

    def stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        assert answers is not None
        token = allowed(request, context)
        try:
            yield from answers(request, context)
        finally:
            _actor.reset(token)

    return _replaced(handler, unary, stream)


def _replaced(
    handler: Handler,
    unary: Callable[[Any, grpc.ServicerContext], Any],
    stream: Callable[[Any, grpc.ServicerContext], Iterator[Any]],
) -> Handler:
    """The handler with its behaviour replaced (unary-unary and unary-stream: what we serve)."""
    serialization = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(unary, **serialization)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(stream, **serialization)
    raise TypeError("only unary requests are served")


def bearer(key: str | None) -> tuple[tuple[str, str], ...]:
    """The call metadata that presents `key` (none without a key)."""
    return ((HEADER, f"Bearer {key}"),) if key else ()
