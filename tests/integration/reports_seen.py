"""What a venue adapter under test reported: each test harness of an ExecutionClient keeps the
reports its sink received in `reports` and inherits these lookups."""

from __future__ import annotations

from execution_router.domain.venue_types import Report
from trading.v1 import types_pb2

from tests.support import wait_until

T = types_pb2


class ReportsSeen:
    reports: list[Report]

    def of(self, order_id: str) -> list[Report]:
        return [r for r in list(self.reports) if r.order_id == order_id]

    def kinds(self, order_id: str) -> list[int]:
        return [r.execution_type for r in self.of(order_id)]

    def wait_for(self, order_id: str, kind: int, count: int = 1) -> list[Report]:
        """The order's reports of `kind` once `count` have arrived (within 10 s)."""

        def arrived() -> list[Report] | None:
            found = [r for r in self.of(order_id) if r.execution_type == kind]
            return found if len(found) >= count else None

        name = T.ExecutionType.Name(T.ExecutionType.ValueType(kind))
        return wait_until(arrived, 10, f"{count} {name} report(s) of {order_id}")
