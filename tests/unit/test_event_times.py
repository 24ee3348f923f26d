"""Journal times are exact whole microseconds: no float on the way."""

from __future__ import annotations

from datetime import UTC, datetime

from trading_core.events import from_micros, micros, micros_timestamp, stamp_micros, timestamp


def test_every_microsecond_of_today_survives_the_round_trip_exactly() -> None:
    # A float of today's epoch seconds cannot tell these apart; the journal must.
    for microsecond in (0, 1, 499_999, 999_998, 999_999):
        moment = datetime(2026, 11, 22, 4, 9, 15, microsecond, tzinfo=UTC)
        assert from_micros(micros(moment)) == moment
        assert stamp_micros(timestamp(moment)) == micros(moment)
        assert stamp_micros(micros_timestamp(micros(moment))) == micros(moment)


def test_a_naive_moment_is_taken_as_utc() -> None:
    aware = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    assert micros(aware.replace(tzinfo=None)) == micros(aware)
