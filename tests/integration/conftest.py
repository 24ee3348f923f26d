"""The seeded week of trading in the four DuckDB files (tests/analytics_support.py), made once
per session for the analytics' tests: the queries, the RPCs and the HTML report."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.analytics_support import Trading, generate, write_warehouse


@pytest.fixture(scope="session")
def trading() -> Trading:
    return generate()


@pytest.fixture(scope="session")
def warehouse(trading: Trading, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("analytics")
    write_warehouse(folder, trading)
    return folder
