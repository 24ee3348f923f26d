"""Analytics for analysts: execution quality and trading performance from the warehouse.

The queries are SQL written once in BigQuery's dialect (`queries/*.sql`, see `queries.py`), run
on BigQuery as written and on the DuckDB files through sqlglot (`warehouse.py`); the ratios of a
daily P&L series (Sharpe, Sortino, Calmar, drawdown, ...) are plain Python (`performance.py`).
"""

from trading_core.analytics.queries import (
    DATASET,
    AnalyticsError,
    Parameter,
    Query,
    UnknownQuery,
    bigquery_sql,
    duckdb_sql,
    load,
    query_names,
)
from trading_core.analytics.warehouse import (
    DuckDBAnalytics,
    Result,
    WarehouseBusy,
    bind,
    run_query,
)

__all__ = [
    "DATASET",
    "AnalyticsError",
    "DuckDBAnalytics",
    "Parameter",
    "Query",
    "Result",
    "UnknownQuery",
    "WarehouseBusy",
    "bigquery_sql",
    "bind",
    "duckdb_sql",
    "load",
    "query_names",
    "run_query",
]
