#!/usr/bin/env bash
# Instructions per request (issue 28): the release server (plugins loaded as in production) and
# the floor (`ds-floor`) run under valgrind's callgrind while `ds-counts drive` sends N1, then
# (a fresh process) N2 sequential requests of one kind on one keep-alive connection; the
# difference of the two totals over N2 - N1 is the cost of one request, start-up and shutdown
# cancelled out. Unlike CPU time on a shared two-core box, the count does not move from run to
# run (within 1 %), so a change of a few hundred instructions shows.
#
#   scripts/bench-instructions.sh                      (MODES="memory"; KINDS="head append read create")
#   NO_BUILD=1 MODES="memory acid" KINDS=append scripts/bench-instructions.sh
#   KINDS=idem PRODUCERS=1000 ...: idempotent appends (one producer counting up) to a stream
#                  that 1,000 other producers appended to first
#   MODES="floor-file-durable" ...: the engine floor (`ds-engine-floor`: one-route axum, the
#                  bundled engine linked in, the least group commit) for appends and creates
#   PROFILE=1 ...: keep both runs' callgrind files (target/bench/instructions/) for
#                  callgrind_annotate, and print what one request costs per function
#                  (scripts/callgrind-per-request.py: the N2 run less the N1 run)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
# shellcheck source=bench-lib.sh
source scripts/bench-lib.sh
MODES="${MODES:-memory}"
KINDS="${KINDS:-head append read create}"
N1="${N1:-500}"
N2="${N2:-2500}"
COUNTS=target/counts/release/ds-counts
OUTDIR=target/bench/instructions
if ! command -v valgrind >/dev/null; then
  echo "bench-instructions: installing valgrind" >&2
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind; } >/dev/null 2>&1; then
    echo "bench-instructions: could not install valgrind (apt-get install valgrind)" >&2
    exit 1
  fi
fi
if [ "${NO_BUILD:-0}" != 1 ]; then
  cargo build --release --workspace
  cargo build --release --manifest-path tests/counts/Cargo.toml --target-dir target/counts
fi
mkdir -p "$OUTDIR"

# total SERVER MODE KIND N: instructions of a whole server run that answered N requests of KIND.
total() {
  local server=$1 mode=$2 kind=$3 n=$4 port data file pid i
  port=$(free_port)
  data=$(mktemp -d "${TMPDIR:-/tmp}/ds-instr.XXXXXX")
  file="$OUTDIR/$server-$mode-$kind-$n.callgrind"
  if [ "$server" = floor ]; then
    valgrind --tool=callgrind --callgrind-out-file="$file" target/release/ds-floor --port "$port" \
      >"$OUTDIR/server.log" 2>&1 &
  elif [ "$server" = engine-floor ]; then
    valgrind --tool=callgrind --callgrind-out-file="$file" target/counts/release/ds-engine-floor \
      --mode "${mode#floor-}" --data-dir "$data" --port "$port" >"$OUTDIR/server.log" 2>&1 &
  else
    DS_SERVER__BIND_ADDRESS=127.0.0.1 DS_SERVER__PORT="$port" DS_STORAGE__MODE="$mode" \
      DS_STORAGE__DATA_DIR="$data" RUST_LOG=warn \
      valgrind --tool=callgrind --callgrind-out-file="$file" target/release/durable-streams-server \
      >"$OUTDIR/server.log" 2>&1 &
  fi
  pid=$!
  for i in $(seq 1 600); do
    curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$port/readyz" && break
    kill -0 "$pid" 2>/dev/null || { echo "bench-instructions: $server $mode did not start" >&2; tail -n 5 "$OUTDIR/server.log" >&2; return 1; }
    sleep 0.2
  done
  "$COUNTS" drive --url "http://127.0.0.1:$port" --kind "$kind" --requests "$n" --producers "${PRODUCERS:-0}" >/dev/null
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
  rm -rf "$data"
  awk '/^(summary|totals):/ {print $2; exit}' "$file"
  if [ "${PROFILE:-0}" != 1 ]; then rm -f "$file"; fi
}

printf '%-14s %-8s %14s\n' server kind "instr/request"
for mode in floor $MODES; do
  for kind in $KINDS; do
    server=ours
    [ "$mode" = floor ] && server=floor
    case "$mode" in floor-*) server=engine-floor ;; esac
    a=$(total "$server" "$mode" "$kind" "$N1")
    b=$(total "$server" "$mode" "$kind" "$N2")
    printf '%-14s %-8s %14d\n' "$mode" "$kind" $(((b - a) / (N2 - N1)))
  done
done
