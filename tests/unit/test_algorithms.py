"""Execution algorithm plans (domain/algorithms.py): what is due when, on the step."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from execution_router.domain.algorithms import Plan, plan
from trading.v1 import types_pb2

T = types_pb2
START = datetime(2024, 1, 2, 9, 0, tzinfo=UTC)
FLAT = [Decimal(1)] * 24
STEP = Decimal("0.001")


def twap(quantity: str, seconds: int, slices: int, **extra: Decimal) -> Plan:
    return plan(
        T.EXECUTION_ALGORITHM_TWAP,
        Decimal(quantity),
        START,
        horizon=timedelta(seconds=seconds),
        slice_count=slices,
        slice_interval=timedelta(seconds=1),
        profile=FLAT,
        step=STEP,
        **extra,
    )


def at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


def test_twap_is_due_in_equal_slices_and_whole_at_the_last_slice() -> None:
    work = twap("1", 10, 4)
    assert [work.due(at(s)) for s in (0, 2.4, 2.5, 5, 7.49, 7.5, 60)] == [
        Decimal("0.25"),
        Decimal("0.25"),
        Decimal("0.5"),
        Decimal("0.75"),
        Decimal("0.75"),
        Decimal("1"),
        Decimal("1"),
    ]
    assert work.next_slice_time(at(3)) == at(5)
    assert work.next_slice_time(at(8)) is None


def test_twap_slices_round_down_to_the_step_and_the_last_takes_the_rest() -> None:
    work = twap("0.01", 3, 3)
    assert [work.due(at(s)) for s in (0, 1, 2)] == [
        Decimal("0.003"),
        Decimal("0.006"),
        Decimal("0.01"),
    ]


def test_no_slice_count_means_one_slice_per_interval_of_the_horizon() -> None:
    assert twap("1", 10, 0).slices == 10
    assert twap("1", 1, 0).slices == 1


def test_vwap_weights_slices_by_the_volume_profile_of_their_hour() -> None:
    profile = [Decimal(0)] * 24
    profile[9], profile[10] = Decimal(1), Decimal(3)
    work = plan(
        T.EXECUTION_ALGORITHM_VWAP,
        Decimal("4"),
        START,
        horizon=timedelta(hours=2),
        slice_count=2,
        slice_interval=timedelta(minutes=1),
        profile=profile,
        step=STEP,
    )
    assert work.weights == (Decimal(1), Decimal(3))
    assert work.due(START) == Decimal("1")


def test_vwap_over_hours_without_volume_falls_back_to_equal_slices() -> None:
    work = plan(
        T.EXECUTION_ALGORITHM_VWAP,
        Decimal("2"),
        START,
        horizon=timedelta(hours=1),
        slice_count=2,
        slice_interval=timedelta(minutes=1),
        profile=[Decimal(0)] * 9 + [Decimal(0)] + [Decimal(1)] * 14,
        step=STEP,
    )
    assert work.weights == (Decimal(1), Decimal(1))


def test_release_sends_what_is_due_beyond_what_works_or_filled() -> None:
    work = twap("1", 10, 4)
    assert work.release(at(5), committed=Decimal("0.25"), opposite_size=None) == Decimal("0.5")
    assert work.release(at(5), committed=Decimal("0.75"), opposite_size=None) == Decimal(0)


def test_participation_caps_a_release_at_a_share_of_the_displayed_size() -> None:
    work = twap("1", 10, 1, participation=Decimal("0.1"))
    assert work.release(at(0), Decimal(0), opposite_size=Decimal("2.5")) == Decimal("0.25")
    assert work.release(at(0), Decimal(0), opposite_size=None) == Decimal(0)


def test_a_release_is_split_into_children_of_at_most_the_max() -> None:
    work = twap("1", 10, 1, max_child=Decimal("0.3"))
    assert work.children(Decimal("1")) == [Decimal("0.3")] * 3 + [Decimal("0.1")]
    assert work.children(Decimal("0.3")) == [Decimal("0.3")]


def test_without_an_algorithm_everything_is_due_at_once() -> None:
    work = plan(
        T.EXECUTION_ALGORITHM_UNSPECIFIED,
        Decimal("1"),
        START,
        horizon=timedelta(0),
        slice_count=0,
        slice_interval=timedelta(seconds=1),
        profile=FLAT,
        step=STEP,
        max_child=Decimal("0.4"),
    )
    assert work.due(START) == Decimal("1")
    assert work.children(Decimal("1")) == [Decimal("0.4"), Decimal("0.4"), Decimal("0.2")]
