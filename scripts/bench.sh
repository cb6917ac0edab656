#!/usr/bin/env bash
# Benchmarks this server with ds-bench (tests/bench): builds release, then for each storage mode
# in MODES (default: memory) starts target/release/durable-streams-server on a free port with a
# fresh data dir, runs the scenarios with --server-pid, stops it, and prints a markdown table.
#
#   scripts/bench.sh                    full run (several minutes per mode)
#   QUICK=1 scripts/bench.sh            smoke run: 2 s cases, 10 MB catch-up, 20k streams
#   MODES="memory file-durable" SCENARIOS="appends,catch-up" BENCH_ARGS="--writers 16" scripts/bench.sh
# SCENARIOS is a space-separated list of ds-bench --scenario values, each run on a fresh server
# (default "head,appends,catch-up,fanout many-streams").
#
# NO_BUILD=1 skips the build and uses what is in target/release.
# AUTH=token runs the server in auth.mode = "token" and sends a full-access token with every
# request (the access check's cost: compare with a run without).
# Results: target/bench/<timestamp>/results.jsonl (one JSON line per case) and summary.md.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh

MODES="${MODES:-memory}"
OUT="${OUT:-target/bench/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"

# NO_BUILD=1 uses the binaries already in target/release.
if [ "${NO_BUILD:-0}" != 1 ]; then
  cargo build --release --workspace
fi
raise_nofile
trap stop_server EXIT

status=0
for mode in $MODES; do
  echo "== ours ($mode): $(bench_args)" >&2
  run_bench ours "$mode" "ours/$mode" 1 "$OUT" || status=1
done

echo
"$BENCH_BIN" --summarize "$RESULTS" | tee "$OUT/summary.md"
echo "results: $RESULTS" >&2
exit "$status"
