"""The small interface the reports run queries through, and the config's choice of it.

`Analytics.run(name, parameters)` runs a stored query (`queries/<name>.sql`) with its
parameters as Python values and answers a `Result` (Decimal for NUMERIC, date for DATE). Two
runners keep it: `DuckDBAnalytics` on the local files (`database.backend: duckdb`, the files of
`database.path`) and `BigQueryAnalytics` on the dataset (`database.backend: bigquery`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from trading_core.analytics.warehouse import DuckDBAnalytics, Result
from trading_core.config import BigQueryDatabase, DuckDBDatabase


class Analytics(Protocol):
    """Runs the stored queries on one warehouse; errors are AnalyticsError, for people."""

    def run(self, name: str, parameters: Mapping[str, Any] | None = None) -> Result: ...

    def close(self) -> None: ...

    def describe(self) -> str:
        """Where the queries run, for people: a folder, a dataset."""
        ...


def open_analytics(database: DuckDBDatabase | BigQueryDatabase) -> Analytics:
    """The runner of the config's warehouse."""
    if isinstance(database, DuckDBDatabase):
        return DuckDBAnalytics(database.path)
    from trading_core.analytics.bigquery import BigQueryAnalytics  # the Google client, if used

    return BigQueryAnalytics(
        database.project, database.dataset, location=database.location, endpoint=database.endpoint
    )
