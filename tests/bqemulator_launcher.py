"""Starts bqemulator (`python tests/bqemulator_launcher.py start --rest-port N ...`) with the
DuckDB spatial extension left unloaded: the emulator installs it from the internet at start,
and these machines have none; and with BIGNUMERIC stored as DuckDB's DECIMAL(38, 18)
(the emulator asks DuckDB for DECIMAL(76, 38), wider than DuckDB's 38 digits, and fails to
create the table; the warehouse's BIGNUMERIC values have 38 digits, 18 decimals). Run by
.venv-bqemulator's Python (uv group bqemulator), not the platform's; the warehouse contract
suite needs no GEOGRAPHY."""

from __future__ import annotations

import pyarrow as pa
from bqemulator.api.routes import tabledata
from bqemulator.cli import main
from bqemulator.storage import type_map
from bqemulator.storage.engine import DuckDBEngine


def _without_spatial(_engine: DuckDBEngine) -> None:
    """The engine's spatial loading, switched off (GEOGRAPHY queries would fail)."""


_arrow_type = tabledata._bq_type_to_arrow


def _bignumeric_as_duckdb_holds_it(bq_type: str) -> pa.DataType:
    """The Arrow type rows are cast to before DuckDB stores them: DuckDB reads no 256-bit
    decimals, so BIGNUMERIC travels as decimal128(38, 18) inside the emulator."""
    if bq_type.upper() == "BIGNUMERIC":
        return pa.decimal128(38, 18)
    found: pa.DataType = _arrow_type(bq_type)
    return found


if __name__ == "__main__":
    DuckDBEngine._load_spatial = _without_spatial
    type_map._BQ_TO_DUCKDB["BIGNUMERIC"] = "DECIMAL(38, 18)"
    tabledata._bq_type_to_arrow = _bignumeric_as_duckdb_holds_it
    main()
