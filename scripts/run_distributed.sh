#!/usr/bin/env bash
# Local distributed mode (`make run-distributed`): the Pub/Sub emulator plus one process per
# service, each with its own journal and DuckDB file.
#
#   scripts/run_distributed.sh [CONFIG]      CONFIG defaults to config/local-pubsub.yaml
#
# Ctrl-C (or SIGTERM, SIGHUP) stops the services (each drains and flushes), then the emulator,
# and exits 0. Whatever ends the script, every process it started is stopped: a service that
# exits on its own stops the others and the script exits 1 naming it. It refuses to start when
# the emulator's port is taken (say by an emulator an earlier run left behind), rather than let
# the services talk to a stranger.
#
# PUBSUB_EMULATOR_PORT (8085), PUBSUB_EMULATOR (the emulator's launcher), LOG_DIR (data: where
# the emulator's log goes) and STOP_TIMEOUT_S (30: how long each process gets to stop before it
# is killed) change the defaults.

# shellcheck disable=SC2317  # the stop functions run from traps, which shellcheck cannot see

# No `set -e`: a failing command must never cut the cleanup short.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

config=${1:-config/local-pubsub.yaml}
port=${PUBSUB_EMULATOR_PORT:-8085}
emulator=${PUBSUB_EMULATOR:-/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator}
log_dir=${LOG_DIR:-data}
stop_timeout_s=${STOP_TIMEOUT_S:-30}
bin=.venv/bin
export PUBSUB_EMULATOR_HOST=127.0.0.1:$port

# The processes that run against the emulator, in start order (consumers subscribe before
# producers publish), one line each: each is `$bin/<name> --config CONFIG`.
processes=(
  position-management
  order-management
  execution-router
  market-data
)

say() { echo "run-distributed: $*" >&2; }

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Checks before anything starts: nothing to clean up if one fails.
if listening "$port"; then
  say "port $port is already in use, perhaps by a Pub/Sub emulator an earlier run left behind;" \
    "find it with \`ss -ltnp 'sport = :$port'\` (or \`lsof -i :$port\`) and stop it," \
    "or choose another port with PUBSUB_EMULATOR_PORT"
  exit 1
fi
if [ ! -x "$emulator" ]; then
  say "no Pub/Sub emulator at $emulator (it ships with the Google Cloud CLI and needs Java);" \
    "set PUBSUB_EMULATOR to its launcher"
  exit 1
fi
for name in "${processes[@]}"; do
  if [ ! -x "$bin/$name" ]; then
    say "$bin/$name is missing: run \`make setup\` first"
    exit 1
  fi
done
if [ ! -f "$config" ]; then
  say "no config file $config"
  exit 1
fi

emulator_pid=""
pids=()   # the running processes, in the order of `names`
names=()
status=0
interrupted=""

alive() { kill -0 "$1" 2>/dev/null; }

# Sends SIGTERM to the processes still running and waits for them, at most stop_timeout_s, then
# kills what is left. Sets status 1 when one did not stop cleanly.
stop_processes() {
  local i deadline code
  for i in "${!pids[@]}"; do
    alive "${pids[$i]}" && kill -TERM "${pids[$i]}" 2>/dev/null
  done
  deadline=$((SECONDS + stop_timeout_s))
  for i in "${!pids[@]}"; do
    while alive "${pids[$i]}" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    if alive "${pids[$i]}"; then
      say "${names[$i]} did not stop within ${stop_timeout_s}s; killing it"
      kill -KILL "${pids[$i]}" 2>/dev/null
      status=1
    fi
    wait "${pids[$i]}" 2>/dev/null
    code=$?
    # 143: stopped by the SIGTERM itself, before its own handler was set up (still starting).
    if [ "$code" -ne 0 ] && [ "$code" -ne 143 ] && [ "$status" -eq 0 ]; then
      say "${names[$i]} exited with $code while stopping"
      status=1
    fi
  done
  pids=()
  names=()
}

# The emulator runs in its own session (so Ctrl-C does not stop it while the services still
# drain through it): stop its whole process group, the launcher and its JVM.
stop_emulator() {
  local deadline
  [ -n "$emulator_pid" ] || return 0
  kill -TERM -- "-$emulator_pid" 2>/dev/null
  deadline=$((SECONDS + 10))
  while kill -0 -- "-$emulator_pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
    sleep 0.1
  done
  if kill -0 -- "-$emulator_pid" 2>/dev/null; then
    say "the Pub/Sub emulator did not stop within 10s; killing it"
    kill -KILL -- "-$emulator_pid" 2>/dev/null
  fi
  wait "$emulator_pid" 2>/dev/null
  emulator_pid=""
}

cleanup() {
  local code=$? # what the script exited with: 0 from on_signal, 1 when something failed
  trap '' INT TERM HUP # a second Ctrl-C must not cut the cleanup short
  trap - EXIT
  [ "$code" -ne 0 ] && status=$code
  stop_processes
  stop_emulator
  if [ -n "$interrupted" ]; then
    [ "$status" -eq 0 ] && say "stopped on $interrupted; every process it started has exited"
  fi
  exit "$status"
}
on_signal() {
  interrupted=$1
  exit 0 # runs cleanup (the EXIT trap), which exits with the status
}
trap cleanup EXIT
trap 'on_signal SIGINT' INT
trap 'on_signal SIGTERM' TERM
trap 'on_signal SIGHUP' HUP # the terminal was closed

mkdir -p "$log_dir"
setsid "$emulator" --host=127.0.0.1 --port="$port" >"$log_dir/emulator.log" 2>&1 &
emulator_pid=$!
deadline=$((SECONDS + 60))
until listening "$port"; do
  if ! alive "$emulator_pid"; then
    say "the Pub/Sub emulator exited before it listened on port $port; its log $log_dir/emulator.log:"
    tail -n 20 "$log_dir/emulator.log" >&2
    exit 1
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    say "the Pub/Sub emulator did not listen on port $port within 60s; see $log_dir/emulator.log"
    exit 1
  fi
  sleep 0.1
done
say "Pub/Sub emulator on $PUBSUB_EMULATOR_HOST (log: $log_dir/emulator.log)"

# Each process in its own session too: Ctrl-C reaches this script alone, which stops them in
# order with SIGTERM, so a process that exits is one that failed, never one that raced the stop.
for name in "${processes[@]}"; do
  setsid "$bin/$name" --config "$config" &
  pids+=($!)
  names+=("$name")
done
say "started ${names[*]} with $config; Ctrl-C stops them all"

# Returns when a process exits on its own, or at once when a trapped signal arrives (its trap
# then runs the cleanup).
wait -n -p ended "${pids[@]}"
code=$?
for i in "${!pids[@]}"; do
  if [ "${pids[$i]}" = "${ended:-}" ]; then
    say "${names[$i]} exited with $code; stopping the others"
    unset "pids[$i]" "names[$i]"
  fi
done
exit 1
