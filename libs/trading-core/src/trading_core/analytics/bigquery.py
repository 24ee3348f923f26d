"""Runs the analytics queries on BigQuery (`database.backend: bigquery`): the files under
`queries/` as written (`bigquery_sql`), their tables in the configured dataset, their parameters
as typed query parameters (the types the query's header declares), one query job each.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from trading_core.analytics.queries import AnalyticsError, bigquery_sql, load
from trading_core.analytics.warehouse import Result, bind
from trading_core.store.bigquery import bigquery_client

# How long a query may run before the runner gives up on it.
QUERY_TIMEOUT_S = 120.0


class BigQueryAnalytics:
    """The stored queries on the dataset `project.dataset`, from the process's application
    default credentials, or an emulator's REST `endpoint` ("http://host:port", anonymous)."""

    def __init__(
        self,
        project: str,
        dataset: str,
        *,
        location: str = "US",
        endpoint: str | None = None,
        client: Any = None,
    ) -> None:
        self.project = project
        self.dataset = dataset
        self.location = location
        self._endpoint = endpoint
        self._client = client

    def describe(self) -> str:
        return f"BigQuery {self.project}.{self.dataset}"

    def job(self, name: str, parameters: Mapping[str, Any] | None = None) -> tuple[str, Any]:
        """The SQL and the QueryJobConfig (its typed parameters) BigQuery runs for a query."""
        bigquery = _bigquery()
        types = {parameter.name: parameter.type for parameter in load(name).parameters}
        values = bind(name, parameters or {})
        config = bigquery.QueryJobConfig(
            query_parameters=[
                bigquery.ScalarQueryParameter(key, types[key], value)
                for key, value in values.items()
            ]
        )
        return bigquery_sql(name, f"{self.project}.{self.dataset}"), config

    def run(self, name: str, parameters: Mapping[str, Any] | None = None) -> Result:
        text, config = self.job(name, parameters)
        try:
            rows = self._connected().query(text, job_config=config).result(timeout=QUERY_TIMEOUT_S)
        except Exception as error:  # the client's errors have no common base but Exception
            raise AnalyticsError(f"query {name} failed on BigQuery: {error}") from None
        columns = tuple(field.name for field in rows.schema)
        return Result(columns, [tuple(row.values()) for row in rows])

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _connected(self) -> Any:
        if self._client is None:
            self._client = bigquery_client(self.project, self.location, self._endpoint)
        return self._client


def _bigquery() -> Any:
    """google.cloud.bigquery, imported when first used and as Any (its type information is
    partial)."""
    return importlib.import_module("google.cloud.bigquery")
