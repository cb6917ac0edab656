#!/usr/bin/env bash
# Benchmarks the jetstream mode on a three-node R3 cluster on this machine, with one host and
# with two hosts sharing the load, beside the same work done directly against JetStream by
# `js-raw` (tests/js-raw). Figures go to target/bench/jetstream-<timestamp>/ (JSON lines and
# logs); BENCHMARKS.md records them.
#
#   scripts/bench-jetstream.sh                 (DURATION=10 s cases, 100 MB catch-up, 1000 SSE subscribers)
#   DURATION=5 CATCHUP_MB=20 SUBSCRIBERS=200 scripts/bench-jetstream.sh
#   NO_BUILD=1 uses target/release as it is.
#   ONLY=appends stops after the append cases and the like-for-like baseline (the server's
#   message id, expected sequence and headers, over as many streams as the hosts' shards);
#   DS_STORAGE__APPEND_LANES=1, DS_STORAGE__JETSTREAM__SHARDS=1 etc. reach the hosts.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
D="${DURATION:-10}"; MB="${CATCHUP_MB:-100}"; SUBS="${SUBSCRIBERS:-1000}"
# The hosts' storage.jetstream.shards, and the like-for-like baseline's stream count.
SHARDS="${DS_STORAGE__JETSTREAM__SHARDS:-8}"; export DS_STORAGE__JETSTREAM__SHARDS="$SHARDS"
OUT="${OUT:-target/bench/jetstream-$(date +%Y%m%d-%H%M%S)}"; mkdir -p "$OUT"
[ "${NO_BUILD:-0}" = 1 ] || cargo build --release --workspace
ulimit -n 65536 2>/dev/null || true
dir="$ROOT/$OUT/cluster"
export NATS_BASE_PORT="${NATS_BASE_PORT:-24222}" PROFILE=release
trap '"$ROOT/scripts/cluster.sh" stop "$dir" || true' EXIT
scripts/cluster.sh start "$dir"
urls="$(cat "$dir/urls")"
A=$((NATS_BASE_PORT + 6000)); B=$((NATS_BASE_PORT + 6001))
scripts/cluster.sh host "$dir" "$A" bench
scripts/cluster.sh host "$dir" "$B" bench
pid_a="$(cat "$dir/host-$A.pid")"
# The nodes' CPU per operation is reported beside the host's (backend_cpu_us_per_op).
nats_pids="$(cat "$dir"/n0.pid "$dir"/n1.pid "$dir"/n2.pid | paste -sd,)"
bench() { target/release/ds-bench --json "$@" || echo "ds-bench: a case failed (see above)" >&2; }
res="$OUT/results.jsonl"

echo "== raw JetStream: 64 writers x 100 B, acknowledged publishes" >&2
target/release/js-raw --urls "$urls" --mode publish --writers 64 --size 100 --duration-secs "$D" --backend-pids "$nats_pids" | tee -a "$res"
echo "== one host: 64 writers x 100 B" >&2
bench --url "http://127.0.0.1:$A/v1/stream" --server-pid "$pid_a" --backend-pids "$nats_pids" --scenario appends --writers 64 --sizes 100 --duration-secs "$D" --label jetstream/one-host | tee -a "$res"
echo "== two hosts: 32 writers each (run at the same time)" >&2
# Each host's CPU per its own append; the nodes' CPU over both (A's backend figure times A's
# share of the appends is the nodes' CPU per append of the two).
pid_b="$(cat "$dir/host-$B.pid")"
bench --url "http://127.0.0.1:$A/v1/stream" --server-pid "$pid_a" --backend-pids "$nats_pids" --scenario appends --writers 32 --sizes 100 --duration-secs "$D" --label jetstream/two-hosts-A > "$OUT/two-a.jsonl" &
bench --url "http://127.0.0.1:$B/v1/stream" --server-pid "$pid_b" --scenario appends --writers 32 --sizes 100 --duration-secs "$D" --label jetstream/two-hosts-B > "$OUT/two-b.jsonl"
wait
cat "$OUT/two-a.jsonl" "$OUT/two-b.jsonl" >> "$res"
echo "== raw JetStream, like for like: 64 writers x 100 B with the server's message id, expected sequence and headers, over $SHARDS streams" >&2
target/release/js-raw --urls "$urls" --mode publish --writers 64 --size 100 --duration-secs "$D" --backend-pids "$nats_pids" --extras msgid,expect,headers --streams "$SHARDS" | tee -a "$res"
if [ "${ONLY:-}" = appends ]; then
  echo "results: $res" >&2
  exit 0
fi
echo "== raw JetStream: ordered read of $MB MB" >&2
target/release/js-raw --urls "$urls" --mode read --mb "$MB" --backend-pids "$nats_pids" | tee -a "$res"
echo "== one host: catch-up of $MB MB" >&2
bench --url "http://127.0.0.1:$A/v1/stream" --server-pid "$pid_a" --backend-pids "$nats_pids" --scenario catch-up --catchup-mb "$MB" --catchup-readers 100 --duration-secs "$D" --label jetstream/one-host | tee -a "$res"
echo "== SSE: $SUBS subscribers on host B, the writer on host A" >&2
bench --url "http://127.0.0.1:$B/v1/stream" --writer-url "http://127.0.0.1:$A/v1/stream" --scenario fanout --subscribers "$SUBS" --duration-secs "$D" --label jetstream/cross-host | tee -a "$res"
echo "== SSE and long-poll: $SUBS subscribers on one memory-mode host, the yardstick for the row above" >&2
M=$((NATS_BASE_PORT + 6002))
DS_SERVER__PORT="$M" DS_SERVER__BIND_ADDRESS=127.0.0.1 DS_STORAGE__MODE=memory target/release/durable-streams-server >"$dir/memory-$M.log" 2>&1 &
echo $! > "$dir/memory-$M.pid"
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$M/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
bench --url "http://127.0.0.1:$M/v1/stream" --scenario fanout --subscribers "$SUBS" --duration-secs "$D" --label memory/one-host | tee -a "$res"
kill "$(cat "$dir/memory-$M.pid")" 2>/dev/null || true
echo "== stream creation (15 s)" >&2
bench --url "http://127.0.0.1:$A/v1/stream" --server-pid "$pid_a" --backend-pids "$nats_pids" --scenario many-streams --max-secs 15 --streams 1000000 --label jetstream/one-host | tee -a "$res"
echo "results: $res" >&2
