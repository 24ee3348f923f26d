"""The AdminService gRPC API, the same for every service: dead letters and what is unresolved.

It reads and replays through `JournaledService` (see `trading_core.service`); the runtime adds it
to every server beside the service's own API. Lists are oldest first, paged by id: a page token
is the id of the last item of the previous page.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import grpc
from trading.v1 import admin_pb2, admin_pb2_grpc

from trading_core.errors import InvalidArgument, grpc_errors
from trading_core.events import micros_timestamp
from trading_core.service import DeadLetter, Unresolved

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
SERVICE_NAME = admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name


class Administered(Protocol):
    """What the admin API needs of a service (`JournaledService` has it)."""

    name: str

    def dead_letters(
        self, *, after: int = 0, limit: int = 1000, with_payload: bool = False
    ) -> list[DeadLetter]: ...

    def replay_dead_letter(self, letter_id: int) -> DeadLetter: ...

    def unresolved(self, *, after: int = 0, limit: int = 1000) -> list[Unresolved]: ...


class AdminServicer(admin_pb2_grpc.AdminServiceServicer):
    def __init__(self, service: Administered) -> None:
        self._service = service

    @grpc_errors()
    def ListDeadLetters(  # noqa: N802
        self, request: admin_pb2.ListDeadLettersRequest, context: grpc.ServicerContext
    ) -> admin_pb2.ListDeadLettersResponse:
        size = _page_size(request.page_size)
        if request.view not in admin_pb2.DeadLetterView.values():
            raise InvalidArgument(f"view {request.view} is not a DeadLetterView")
        full = request.view == admin_pb2.DEAD_LETTER_VIEW_FULL
        letters = self._service.dead_letters(
            after=_after(request.page_token), limit=size + 1, with_payload=full
        )
        return admin_pb2.ListDeadLettersResponse(
            dead_letters=[to_proto(letter) for letter in letters[:size]],
            next_page_token=_next_token(letters, size),
        )

    @grpc_errors()
    def ReplayDeadLetter(  # noqa: N802
        self, request: admin_pb2.ReplayDeadLetterRequest, context: grpc.ServicerContext
    ) -> admin_pb2.ReplayDeadLetterResponse:
        if request.id <= 0:
            raise InvalidArgument(f"id must be a dead letter's id, above 0; got {request.id}")
        letter = self._service.replay_dead_letter(request.id)
        return admin_pb2.ReplayDeadLetterResponse(dead_letter=to_proto(letter))

    @grpc_errors()
    def ListUnresolved(  # noqa: N802
        self, request: admin_pb2.ListUnresolvedRequest, context: grpc.ServicerContext
    ) -> admin_pb2.ListUnresolvedResponse:
        size = _page_size(request.page_size)
        found = self._service.unresolved(after=_after(request.page_token), limit=size + 1)
        return admin_pb2.ListUnresolvedResponse(
            issues=[
                admin_pb2.UnresolvedIssue(
                    kind=item.kind,
                    subject=item.subject,
                    detail=item.detail,
                    create_time=micros_timestamp(item.time_us),
                )
                for item in found[:size]
            ],
            next_page_token=_next_token(found, size),
        )


def add_admin_servicer(service: Administered, server: grpc.Server) -> list[str]:
    """Adds the admin API of `service` to its server; returns the service name, for reflection."""
    admin_pb2_grpc.add_AdminServiceServicer_to_server(AdminServicer(service), server)
    return [SERVICE_NAME]


def to_proto(letter: DeadLetter) -> admin_pb2.DeadLetter:
    return admin_pb2.DeadLetter(
        id=letter.id,
        subscription=letter.subscription,
        message_id=letter.message_id,
        ordering_key=letter.ordering_key,
        error=letter.error,
        attempts=letter.attempts,
        create_time=micros_timestamp(letter.time_us),
        payload_size=letter.size,
        payload=letter.data,
        attributes=letter.attributes,
    )


def _page_size(requested: int) -> int:
    if requested < 0 or requested > MAX_PAGE_SIZE:
        raise InvalidArgument(f"page_size must be 0 (for {DEFAULT_PAGE_SIZE}) to {MAX_PAGE_SIZE}")
    return requested or DEFAULT_PAGE_SIZE


def _after(token: str) -> int:
    """The id a page starts after."""
    if not token:
        return 0
    if not (token.isascii() and token.isdigit() and len(token) <= 19):
        raise InvalidArgument("page_token is not one this service gave; start again without it")
    return int(token)


def _next_token(items: Sequence[DeadLetter | Unresolved], size: int) -> str:
    return str(items[size - 1].id) if len(items) > size else ""
