"""The warehouse interface: where a service's events are kept for analysts, fed from its journal.

The warehouse is never on the order path: a feeder copies the journal's new events into it in
batches, exactly once (the warehouse itself records how far it has been fed), and keeps trying
while it cannot write. Each batch goes in raw and as the typed tables of `schema.py` (read by
`rows.py`), in one transaction (BigQuery: each table's rows once, see store/bigquery.py).
DuckDB locally; BigQuery in the cloud.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from trading_core.journal import KeptRecord


class WarehouseWriteError(RuntimeError):
    """The warehouse refused a write (BigQuery: an append other than as a duplicate); nothing
    of it is stored, and the feeder tries again next interval (one of BigQuery's
    `transient_errors`)."""


class Warehouse(Protocol):
    service: str
    # What its writes raise when it cannot write now (nothing stored; the feeder tries again
    # next interval); anything else is a bug, and stops the feed.
    transient_errors: tuple[type[Exception], ...]

    def fed_through(self) -> int:
        """The journal position up to which events are stored."""

    def feed(self, records: Sequence[KeptRecord]) -> int:
        """Stores the events among `records` after `fed_through`, raw and typed, in one
        transaction; returns how many it stored. Raises when it cannot write (nothing is then
        stored)."""

    def close(self) -> None:
        """Lets go of what it holds; a later call opens it again."""
