#!/usr/bin/env bash
# Restart benchmark (issue #12): how long a durable mode takes to be ready again with many
# streams, and with a large log. For each mode in MODES (default "file-durable acid"):
#   1. streams: creates STREAMS streams (default 1000000; ds-bench many-streams, 64 connections,
#      at most CREATE_SECS seconds), then stops the server with SIGTERM and restarts it, then
#      kills it with SIGKILL and restarts it; each restart is timed from spawn to /readyz 200.
#   2. log: appends LOG_MB megabytes (default 10240) to one stream (ds-bench catch-up --keep, so
#      it is also read back and verified), then the same two restarts.
# A restarted server is spot-checked: one stream read back.
#
#   scripts/bench-restart.sh
#   MODES=file-durable STREAMS=200000 LOG_MB=1024 scripts/bench-restart.sh     shorter
# NO_BUILD=1 skips the build. Results are printed and appended to target/bench/restart.txt.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh

MODES="${MODES:-file-durable acid}"
STREAMS="${STREAMS:-1000000}"
CREATE_SECS="${CREATE_SECS:-300}"
LOG_MB="${LOG_MB:-10240}"
OUT=target/bench/restart.txt
mkdir -p target/bench
if [ "${NO_BUILD:-0}" != 1 ]; then
  cargo build --release -p durable-streams-server -p ds-bench -p durable-streams-plugin-file -p durable-streams-plugin-acid
fi
raise_nofile

PORT=""
DATA=""
PID=""
READY_S=""
spawn() { # mode: starts ours on $DATA/$PORT; sets PID and READY_S (seconds to ready)
  local mode=$1 t0 t1
  t0=$(date +%s.%N)
  DS_SERVER__BIND_ADDRESS=127.0.0.1 DS_SERVER__PORT="$PORT" DS_STORAGE__MODE="$mode" \
    DS_STORAGE__DATA_DIR="$DATA" RUST_LOG=warn "$OUR_BIN" >>"$DATA.log" 2>&1 &
  PID=$!
  until curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; do
    kill -0 "$PID" 2>/dev/null || { echo "server died; log:" >&2; tail -5 "$DATA.log" >&2; exit 1; }
    sleep 0.02
  done
  t1=$(date +%s.%N)
  READY_S=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
}
rss_mb() { echo "$(($(awk '/VmRSS/ {print $2}' "/proc/$PID/status") / 1024))"; }
restarts() { # mode label check-url
  local mode=$1 label=$2 check=$3
  kill -TERM "$PID"; wait "$PID" 2>/dev/null || true
  spawn "$mode"
  report "$mode $label: restart after SIGTERM ready in ${READY_S}s, RSS $(rss_mb) MB, disk $(du -sm "$DATA" | cut -f1) MB"
  curl -sf -o /dev/null "$check" || { report "  spot check FAILED: $check"; exit 1; }
  kill -KILL "$PID"; wait "$PID" 2>/dev/null || true
  spawn "$mode"
  report "$mode $label: restart after SIGKILL ready in ${READY_S}s, RSS $(rss_mb) MB"
  curl -sf -o /dev/null "$check" || { report "  spot check FAILED: $check"; exit 1; }
  kill -TERM "$PID"; wait "$PID" 2>/dev/null || true
}
report() { echo "$*" | tee -a "$OUT"; }

report "== $(date -u +%FT%TZ) $(git rev-parse --short HEAD) STREAMS=$STREAMS LOG_MB=$LOG_MB"
for mode in $MODES; do
  PORT=$(free_port); DATA=$(mktemp -d "${TMPDIR:-/tmp}/ds-restart.XXXXXX")
  spawn "$mode"
  "$BENCH_BIN" --url "http://127.0.0.1:$PORT/v1/stream" --scenario many-streams --server-pid "$PID" \
    --streams "$STREAMS" --max-secs "$CREATE_SECS" --prefix r 2>&1 | grep -v '^#' | tee -a "$OUT"
  restarts "$mode" "streams" "http://127.0.0.1:$PORT/v1/stream/r-m1?offset=-1"
  rm -rf "$DATA" "$DATA.log"

  PORT=$(free_port); DATA=$(mktemp -d "${TMPDIR:-/tmp}/ds-restart.XXXXXX")
  spawn "$mode"
  "$BENCH_BIN" --url "http://127.0.0.1:$PORT/v1/stream" --scenario catch-up --server-pid "$PID" \
    --catchup-mb "$LOG_MB" --duration-secs 1 --catchup-readers 1 --keep --prefix r 2>&1 | grep -v '^#' | tee -a "$OUT"
  restarts "$mode" "log of ${LOG_MB} MB" "http://127.0.0.1:$PORT/v1/stream/r-catchup?offset=-1"
  rm -rf "$DATA" "$DATA.log"
done
