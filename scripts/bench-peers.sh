#!/usr/bin/env bash
# Runs the ds-bench scenarios against this server and the two published Rust servers, round by
# round (A B C A B C ...), each run on a fresh server process and data dir, and prints medians
# with min-max and the ratio of ours to the best peer as markdown tables.
#
# Peers, installed once with `cargo install` into target/peers (git-ignored):
#   durable-streams 0.1.5          -> target/peers/ds015 (flags --port --data-dir --durability)
#   durable-streams-server 0.3.0   -> target/peers/ds030 (DS_SERVER__BIND_ADDRESS, DS_STORAGE__*)
# Pairs compared:
#   memory:   ours memory            vs 0.1.5 --durability memory vs 0.3.0 memory, and the floor
#             (ds-floor: axum with one route shaped like ours, bytes kept in memory; head, appends, catch-up, fanout)
#   fsynced:  ours file-durable/acid vs 0.1.5 --durability wal    vs 0.3.0 file-durable/acid
#             (our modes whose plugin is missing are skipped with a note), and with
#             PEERS=engine-floor the floor under them (ds-engine-floor: axum, the engine linked in,
#             the least group commit; appends only; built here from tests/counts)
#
#   ROUNDS=3 scripts/bench-peers.sh             full comparison (long: ~10 min per run)
#   QUICK=1 ROUNDS=1 scripts/bench-peers.sh     smoke run
#   PAIRS=memory SCENARIOS=appends scripts/bench-peers.sh
#   PEERS=ds015 scripts/bench-peers.sh           only 0.1.5 (the other is neither installed nor run)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh

ROUNDS="${ROUNDS:-3}"
PAIRS="${PAIRS:-memory fsynced}"
OUT="${OUT:-target/bench/peers-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"

install_peer() {
  local root=$1 crate=$2 version=$3
  if [ -x "$root/bin/durable-streams-server" ] && grep -q "\"$crate $version " "$root/.crates.toml" 2>/dev/null; then
    return 0
  fi
  echo "== installing $crate $version into $root" >&2
  cargo install --locked --root "$root" "$crate" --version "$version" ||
    cargo install --root "$root" "$crate" --version "$version"
}

PEERS="${PEERS:-ds015 ds030}"
case " $PEERS " in *" ds015 "*) install_peer target/peers/ds015 durable-streams 0.1.5 ;; esac
case " $PEERS " in *" ds030 "*) install_peer target/peers/ds030 durable-streams-server 0.3.0 ;; esac
# NO_BUILD=1 uses the binaries already in target/release.
if [ "${NO_BUILD:-0}" != 1 ]; then
  cargo build --release --workspace
  case " $PEERS " in
    *" engine-floor "*) cargo build --release --manifest-path tests/counts/Cargo.toml --target-dir target/counts --bin ds-engine-floor ;;
  esac
fi
raise_nofile
trap stop_server EXIT

# Servers per pair, as LABEL:KIND:MODE.
servers_for() {
  case "$1" in
    memory) echo "ours:ours:memory floor:floor:none ds-0.1.5:ds015:memory ds-0.3.0:ds030:memory" ;;
    fsynced) echo "ours-file-durable:ours:file-durable ours-acid:ours:acid ds-0.1.5-wal:ds015:wal ds-0.3.0-file-durable:ds030:file-durable ds-0.3.0-acid:ds030:acid floor-file-durable:engine-floor:file-durable floor-acid:engine-floor:acid" ;;
    *) echo "unknown pair $1" >&2; return 1 ;;
  esac
}

# Drop our modes whose plugin is missing (the server refuses to start), noting it.
declare -A PLAN
NOTES=""
for pair in $PAIRS; do
  list=""
  for spec in $(servers_for "$pair"); do
    IFS=: read -r label kind mode <<<"$spec"
    if [ "$kind" != ours ] && [ "$kind" != floor ] && [[ " $PEERS " != *" $kind "* ]]; then
      continue
    fi
    if [ "$kind" = ours ]; then
      if start_server ours "$mode" "$OUT/probe-$mode.log" 2>/dev/null; then
        stop_server
      else
        NOTES="$NOTES\n- $pair: ours ($mode) skipped: the server did not start in that mode ($(tail -n 1 "$OUT/probe-$mode.log" 2>/dev/null))"
        continue
      fi
    fi
    list="$list $spec"
  done
  PLAN[$pair]="$list"
done

status=0
for round in $(seq 1 "$ROUNDS"); do
  for pair in $PAIRS; do
    for spec in ${PLAN[$pair]}; do
      IFS=: read -r label kind mode <<<"$spec"
      echo "== round $round/$ROUNDS: $pair / $label ($kind $mode) $(bench_args)" >&2
      run_bench "$kind" "$mode" "$pair/$label" "$round" "$OUT" || status=1
    done
  done
done

echo
{
  "$BENCH_BIN" --summarize "$RESULTS" --ours ours
  if [ -n "$NOTES" ]; then
    printf "Notes:%b\n" "$NOTES"
  fi
} | tee "$OUT/summary.md"
echo "results: $RESULTS" >&2
exit "$status"
