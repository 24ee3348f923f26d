"""`python -m trading_core.store`: prints the BigQuery tables (Terraform's tables.json) of the
warehouse schema; `python -m trading_core.store readme README.md` writes its list of tables into
the README. `make schema` does both."""

from __future__ import annotations

import sys
from pathlib import Path

from trading_core.store.schema import terraform_tables_json, with_tables_markdown

if sys.argv[1:2] == ["readme"]:
    readme = Path(sys.argv[2])
    readme.write_text(with_tables_markdown(readme.read_text()))
else:
    sys.stdout.write(terraform_tables_json())
