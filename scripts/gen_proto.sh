#!/usr/bin/env bash
# Generates the Python code, type stubs and gRPC stubs of proto/trading/v1 into the one package
# that every service imports (libs/trading-proto). The output is committed; `make proto-check`
# regenerates it and fails when the committed copy is stale. An argument names another output
# folder (used by that check).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-libs/trading-proto/src}
rm -rf "$out/trading"
mkdir -p "$out/trading/v1"
python -m grpc_tools.protoc --mypy_opt=quiet --mypy_grpc_opt=quiet -Iproto \
  --python_out="$out" --mypy_out="$out" --grpc_python_out="$out" --mypy_grpc_out="$out" \
  proto/trading/v1/*.proto
printf '"""Generated trading.v1 API: do not edit, run `make proto`."""\n' >"$out/trading/__init__.py"
printf '"""Generated trading.v1 API: do not edit, run `make proto`."""\n' >"$out/trading/v1/__init__.py"
touch "$out/trading/py.typed"
