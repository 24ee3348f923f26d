"""`python -m trading_core.store`: prints the BigQuery tables (Terraform's tables.json) of the
warehouse schema; `make schema` writes them to terraform/modules/bigquery/tables.json."""

from __future__ import annotations

import sys

from trading_core.store.schema import terraform_tables_json

sys.stdout.write(terraform_tables_json())
