"""The analytics queries: SQL files written once, in BigQuery's dialect, under `queries/`.

A query names its tables by the dataset `trading` (`trading.fills`, `trading.quotes`, ...: the
typed tables of `store/schema.py`) and takes named parameters (`@day_start`), each declared in its
header as `-- @name TYPE: description` (`TYPE NULL`: may be NULL, the default). A header line
`-- uses: other` makes another query's result a CTE named `other` of this one (the text is
composed here, so each piece is written once).

- `bigquery_sql(name, dataset)`: the text to run on BigQuery (as written), `trading.` replaced
  by the configured dataset (`trading_dev`, ...).
- `duckdb_sql(name)`: the same query transpiled by sqlglot to DuckDB's dialect; the DuckDB runner
  (`analytics.duckdb`) makes the `trading.<table>` names resolve.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError

DATASET = "trading"
_PARAMETER = re.compile(r"^-- @(\w+) ([A-Z0-9]+)( NULL)?: (.+)$", re.MULTILINE)
_USES = re.compile(r"^-- uses: (\w+)$", re.MULTILINE)
_DATASET_NAME = re.compile(rf"(?<![\w.`]){DATASET}\.(?=\w)")


class AnalyticsError(Exception):
    """A query that cannot run as asked: the message says why, for people."""


class UnknownQuery(AnalyticsError):
    pass


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str  # BigQuery's: TIMESTAMP, STRING, BOOL, ...
    nullable: bool
    description: str


@dataclass(frozen=True)
class Query:
    name: str
    text: str  # the file as written (BigQuery dialect)
    parameters: tuple[Parameter, ...]  # its own and those of the queries it uses
    uses: tuple[str, ...]

    @property
    def summary(self) -> str:
        """The header's first sentence."""
        head = []
        for line in self.text.splitlines():
            if not line.startswith("-- ") or line.startswith(("-- @", "-- uses:")):
                break
            head.append(line[3:])
        return " ".join(head).split(". ")[0].rstrip(".")


def query_names() -> list[str]:
    folder = resources.files(__package__).joinpath("queries")
    return sorted(
        entry.name.removesuffix(".sql") for entry in folder.iterdir() if entry.name.endswith(".sql")
    )


@cache
def load(name: str) -> Query:
    if name not in query_names():
        raise UnknownQuery(f"no query {name!r}; the queries are: {', '.join(query_names())}")
    text = resources.files(__package__).joinpath("queries", f"{name}.sql").read_text("utf-8")
    uses = tuple(_USES.findall(text))
    parameters: dict[str, Parameter] = {}
    for used in uses:
        parameters.update({p.name: p for p in load(used).parameters})
    for match in _PARAMETER.finditer(text):
        parameters[match[1]] = Parameter(match[1], match[2], bool(match[3]), match[4])
    return Query(name, text, tuple(parameters.values()), uses)


@cache
def composed_text(name: str) -> str:
    """The query as written, the queries it uses put first in its WITH as CTEs of their names."""
    query = load(name)
    if not query.uses:
        return query.text
    head, found, tail = query.text.partition("\nWITH ")
    if not found:
        raise AnalyticsError(f"query {name} uses {', '.join(query.uses)}: it must begin WITH")
    used = ",\n".join(f"{other} AS (\n{composed_text(other)})" for other in query.uses)
    return f"{head}\nWITH {used},\n{tail}"


@cache
def composed(name: str) -> exp.Expr:
    """The syntax tree of the composed query (BigQuery's dialect)."""
    return sqlglot.parse_one(composed_text(name), read="bigquery")


def bigquery_sql(name: str, dataset: str = DATASET) -> str:
    """The query as BigQuery runs it, its tables in `dataset` (`project.dataset` works too): the
    composed text as written, the dataset renamed."""
    text = composed_text(name)
    return text if dataset == DATASET else _DATASET_NAME.sub(f"`{dataset}`.", text)


@cache
def duckdb_sql(name: str) -> str:
    """The query transpiled to DuckDB's dialect (named parameters become `$name`)."""
    return _duckdb(composed(name))


def _duckdb(tree: exp.Expr) -> str:
    # Raises on a construct sqlglot cannot say in DuckDB's dialect, rather than guess.
    return tree.sql(dialect="duckdb", pretty=True, unsupported_level=ErrorLevel.RAISE)


def parameters_of(tree: exp.Expr) -> set[str]:
    return {parameter.name for parameter in tree.find_all(exp.Parameter)}


def transpiled(text: str) -> tuple[str, set[str]]:
    """Any query in BigQuery's dialect (an analyst's own): its DuckDB text, its parameters."""
    try:
        tree = sqlglot.parse_one(text, read="bigquery")
        return _duckdb(tree), parameters_of(tree)
    except SqlglotError as error:
        message = f"not a query in BigQuery's dialect that DuckDB can run: {error}"
        raise AnalyticsError(message) from None
