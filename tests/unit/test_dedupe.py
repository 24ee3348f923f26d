"""A consumer remembers applied event ids for a day of event time, then forgets them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from trading_core.dedupe import AppliedEvents

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


def test_an_applied_event_id_is_remembered() -> None:
    applied = AppliedEvents()
    applied.add("event-1", T0)
    assert "event-1" in applied
    assert "event-2" not in applied


def test_ids_older_than_the_retention_are_forgotten_as_newer_ones_arrive() -> None:
    applied = AppliedEvents(retention=timedelta(hours=1))
    applied.add("old", T0)
    applied.add("recent", T0 + timedelta(minutes=30))
    applied.add("new", T0 + timedelta(minutes=61))
    assert "old" not in applied
    assert "recent" in applied and "new" in applied
    assert len(applied) == 2


def test_adding_an_id_twice_keeps_one_entry() -> None:
    applied = AppliedEvents(retention=timedelta(hours=1))
    applied.add("event-1", T0)
    applied.add("event-1", T0 + timedelta(minutes=10))
    applied.add("later", T0 + timedelta(minutes=61))
    assert "event-1" not in applied  # forgotten by its first time, not kept alive by the repeat
    assert len(applied) == 1
