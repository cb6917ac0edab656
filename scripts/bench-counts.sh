#!/usr/bin/env bash
# What one request costs in allocations and system calls (issue 28).
#
# 1. `ds-counts allocs`: every engine linked in-process under a counting allocator, beside a
#    one-route axum floor: allocations and bytes per request of each kind.
# 2. `strace -c` around the real release server (plugins loaded as in production) and the
#    floor, while `ds-counts drive` sends N sequential requests of one kind on one keep-alive
#    connection: system calls per request, and the most frequent ones.
#
#   scripts/bench-counts.sh                 (N=5000; MODES="memory file-durable acid")
#   NO_BUILD=1 N=2000 MODES=memory scripts/bench-counts.sh
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
# shellcheck source=bench-lib.sh
source scripts/bench-lib.sh
N="${N:-5000}"
MODES="${MODES:-memory file-durable acid}"
COUNTS=target/counts/release/ds-counts
command -v strace >/dev/null || { echo "bench-counts: strace is needed (apt-get install strace)" >&2; exit 1; }
if [ "${NO_BUILD:-0}" != 1 ]; then
  cargo build --release --workspace
  cargo build --release --manifest-path tests/counts/Cargo.toml --target-dir target/counts
fi
echo "== allocations per request (in-process, counting allocator)"
"$COUNTS" allocs --requests 20000 --modes "floor,$(echo "$MODES" | tr ' ' ',')"
echo
echo "== system calls per request (strace -c -f on the server, $N sequential requests, one connection)"
printf '%-14s %-8s %10s  %s\n' server kind "calls/req" "most frequent (per request)"
out=$(mktemp -d)
trap 'stop_server; rm -rf "$out"' EXIT
for mode in floor $MODES; do
  for kind in head append read create; do
    if [ "$mode" = floor ]; then start_server floor - "$out/server.log"; else start_server ours "$mode" "$out/server.log"; fi
    base="${SERVER_URL%/v1/stream}"
    strace -f -c -o "$out/strace.txt" -p "$SERVER_PID" 2>/dev/null &
    tracer=$!
    sleep 0.5
    "$COUNTS" drive --url "$base" --kind "$kind" --requests "$N"
    kill -INT "$tracer"; wait "$tracer" 2>/dev/null || true
    # Lines between the dashes: % time, seconds, usecs/call, calls, [errors,] syscall.
    awk -v n="$N" -v who="$mode" -v kind="$kind" '
      /^------/ { inside = !inside; next }
      inside && NF >= 5 { calls[$NF] = $4; total += $4 }
      END {
        top = ""
        k = 0
        while (k < 4) {
          best = ""; bc = 0
          for (s in calls) if (calls[s] > bc) { best = s; bc = calls[s] }
          if (best == "") break
          top = top sprintf("%s %.2f  ", best, bc / n); delete calls[best]; k++
        }
        printf "%-14s %-8s %10.2f  %s\n", who, kind, total / n, top
      }' "$out/strace.txt"
    stop_server
  done
done
