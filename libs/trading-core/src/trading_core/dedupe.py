"""The event ids a consumer has applied, remembered for as long as a duplicate can arrive."""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta

# Pub/Sub redelivers an acknowledged message rarely and soon; restarts resend the last minute.
# A day is far beyond both, and bounds the memory a long-running service spends on ids.
APPLIED_RETENTION = timedelta(days=1)


class AppliedEvents:
    """A set of event ids that forgets ids older than `retention` (by event time)."""

    def __init__(self, retention: timedelta = APPLIED_RETENTION) -> None:
        self._retention = retention
        self._ids: set[str] = set()
        self._by_time: deque[tuple[datetime, str]] = deque()

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, event_id: str, event_time: datetime) -> None:
        if event_id in self._ids:
            return
        self._ids.add(event_id)
        self._by_time.append((event_time, event_id))
        # Events arrive roughly in time order: forgetting from the oldest end is enough.
        horizon = event_time - self._retention
        while self._by_time and self._by_time[0][0] < horizon:
            self._ids.discard(self._by_time.popleft()[1])
