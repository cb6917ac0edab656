#!/usr/bin/env bash
# The jetstream mode under random network faults for a chosen time (issue 27): three NATS nodes
# and two hosts in network namespaces (root needed), clients recording a history through both
# hosts, every fault healed before the next; the history, the final streams, the faults and the
# checker's report are kept under target/partitions-<timestamp>/.
#
#   scripts/partitions-long.sh          (120 s)
#   scripts/partitions-long.sh 1800     (half an hour)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
SECS="${1:-120}"
OUT="$ROOT/target/partitions-$(date +%Y%m%d-%H%M%S)"; mkdir -p "$OUT"
scripts/netfault-tools.sh
scripts/nats.sh install current >/dev/null
cargo build --workspace
DS_PARTITIONS_SECS="$SECS" DS_PARTITIONS_OUT="$OUT" cargo test -q -p durable-streams-server --test jetstream_partitions \
  random_faults_for_a_chosen_time -- --ignored --nocapture
echo "kept in $OUT" >&2
