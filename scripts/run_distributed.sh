#!/usr/bin/env bash
# Local distributed mode: the Pub/Sub emulator plus one process per service, each with its own
# DuckDB file. Ctrl-C stops the services (each drains and flushes), then the emulator.
set -euo pipefail
cd "$(dirname "$0")/.."
port=${PUBSUB_EMULATOR_PORT:-8085}
emulator=${PUBSUB_EMULATOR:-/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator}
export PUBSUB_EMULATOR_HOST=127.0.0.1:$port

mkdir -p data
setsid "$emulator" --host=127.0.0.1 --port="$port" >data/emulator.log 2>&1 &
emulator_pid=$!
pids=()
stop() {
  trap - INT TERM EXIT
  [ ${#pids[@]} -gt 0 ] && kill -TERM "${pids[@]}" 2>/dev/null && wait "${pids[@]}" 2>/dev/null
  kill -TERM -- -"$emulator_pid" 2>/dev/null || true
}
trap stop INT TERM EXIT

for _ in $(seq 100); do
  (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break
  kill -0 "$emulator_pid" 2>/dev/null || { cat data/emulator.log; exit 1; }
  sleep 0.1
done
echo "Pub/Sub emulator on $PUBSUB_EMULATOR_HOST"
for service in position-management order-management execution-router; do
  uv run "$service" --config config/local-pubsub.yaml &
  pids+=($!)
done
wait -n "${pids[@]}"
