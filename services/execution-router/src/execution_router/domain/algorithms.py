"""Execution algorithms: how the router releases a parent order as child orders over time.

Plain data, the clock passed in. A plan says how much of the parent is due by a moment; the
router sends what is due and not yet working or filled ("committed"), so the same rule serves
the first slice, a slice after a child expired unfilled, and a restart that finds slices
overdue: nothing is sent twice, nothing due is left behind.

- TWAP: `slices` equal slices at equal intervals from the start; the last is due at
  start + horizon * (slices - 1) / slices, so the whole quantity is out before the horizon ends.
- VWAP: the same times, each slice weighted by the configured intraday volume profile at the
  middle of its interval (a profile of zeros over the whole horizon falls back to TWAP).
- No algorithm: everything is due at once.
- Participation: a release takes at most `participation` times the size displayed on the other
  side of the book; what it holds back is released later, when the book shows more.
- Splitting: a release larger than `max_child` goes as several children of at most that.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_DOWN, Decimal

from trading.v1 import types_pb2

ZERO = Decimal(0)


@dataclass(frozen=True)
class Plan:
    algorithm: types_pb2.ExecutionAlgorithm.ValueType
    quantity: Decimal
    start: datetime
    horizon: timedelta
    weights: tuple[Decimal, ...]  # one per slice, summing to more than zero
    step: Decimal
    max_child: Decimal | None = None
    participation: Decimal | None = None

    @property
    def slices(self) -> int:
        return len(self.weights)

    def slice_time(self, index: int) -> datetime:
        return self.start + self.horizon * index / self.slices

    def slices_due(self, now: datetime) -> int:
        """How many slices are due by `now` (all of them once the last is)."""
        if now < self.start:
            return 0
        if self.horizon <= timedelta(0):
            return self.slices
        elapsed = (now - self.start) / self.horizon
        return min(self.slices, int(elapsed * self.slices) + 1)

    def due(self, now: datetime) -> Decimal:
        """The quantity due by `now`: its slices' share, rounded down to the step; all of it
        once the last slice is due."""
        count = self.slices_due(now)
        if count >= self.slices:
            return self.quantity
        share = sum(self.weights[:count], ZERO) / sum(self.weights, ZERO)
        return _floor(self.quantity * share, self.step)

    def next_slice_time(self, now: datetime) -> datetime | None:
        count = self.slices_due(now)
        return self.slice_time(count) if count < self.slices else None

    def release(self, now: datetime, committed: Decimal, opposite_size: Decimal | None) -> Decimal:
        """What to send now: what is due beyond what is working or filled, at most the
        participation share of the displayed size (none without a book), on the step."""
        wanted = self.due(now) - committed
        if self.participation is not None:
            cap = self.participation * (opposite_size or ZERO)
            wanted = min(wanted, cap)
        wanted = _floor(wanted, self.step)
        return wanted if wanted > ZERO else ZERO

    def children(self, quantity: Decimal) -> list[Decimal]:
        """A release as child quantities of at most `max_child` each."""
        if self.max_child is None or quantity <= self.max_child:
            return [quantity]
        whole, rest = divmod(quantity, self.max_child)
        return [self.max_child] * int(whole) + ([rest] if rest else [])


def plan(
    algorithm: types_pb2.ExecutionAlgorithm.ValueType,
    quantity: Decimal,
    start: datetime,
    *,
    horizon: timedelta,
    slice_count: int,
    slice_interval: timedelta,
    profile: Sequence[Decimal],
    step: Decimal,
    max_child: Decimal | None = None,
    participation: Decimal | None = None,
) -> Plan:
    """The plan of a parent order as its instructions and the config ask."""
    if algorithm == types_pb2.EXECUTION_ALGORITHM_UNSPECIFIED:
        return Plan(algorithm, quantity, start, timedelta(0), (Decimal(1),), step, max_child)
    slices = slice_count or max(
        1, int((Decimal(horizon / slice_interval)).to_integral_value(ROUND_CEILING))
    )
    weights = tuple(Decimal(1) for _ in range(slices))
    draft = Plan(algorithm, quantity, start, horizon, weights, step, max_child, participation)
    if algorithm == types_pb2.EXECUTION_ALGORITHM_VWAP:
        weighted = tuple(profile[_middle(draft, index).hour] for index in range(slices))
        if any(weighted):
            return Plan(
                algorithm, quantity, start, horizon, weighted, step, max_child, participation
            )
    return draft


def _middle(plan: Plan, index: int) -> datetime:
    return plan.start + plan.horizon * (2 * index + 1) / (2 * plan.slices)


def _floor(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).to_integral_value(ROUND_DOWN) * step
