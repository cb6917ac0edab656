# Shared helpers for scripts/bench.sh and scripts/bench-peers.sh (sourced, not run):
# free ports, starting and stopping servers, readiness waits, and the QUICK argument set.
# shellcheck shell=bash

BENCH_BIN="${BENCH_BIN:-target/release/ds-bench}"
OUR_BIN="${OUR_BIN:-target/release/durable-streams-server}"
PEER015_BIN="${PEER015_BIN:-target/peers/ds015/bin/durable-streams-server}"
PEER030_BIN="${PEER030_BIN:-target/peers/ds030/bin/durable-streams-server}"
ENGINE_FLOOR_BIN="${ENGINE_FLOOR_BIN:-target/counts/release/ds-engine-floor}"

SERVER_PID=""
SERVER_URL=""
SERVER_READY=""
SERVER_DATA=""

# A TCP port on 127.0.0.1 that nothing answers on (below the ephemeral range the client uses).
free_port() {
  local p
  for _ in $(seq 1 500); do
    p=$((12000 + RANDOM % 18000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  echo "no free port found" >&2
  return 1
}

# The ds-bench arguments for the run size: QUICK=1 shrinks every scenario; BENCH_ARGS is appended.
bench_args() {
  if [ "${QUICK:-0}" = 1 ]; then
    echo "--duration-secs 2 --catchup-mb 10 --streams 10000 --max-secs 10 ${BENCH_ARGS:-}"
  else
    echo "${BENCH_ARGS:-}"
  fi
}

# 1000 SSE subscribers plus the server's side of them need file descriptors.
raise_nofile() {
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
}

# wait_ready URL PID SECONDS: polls URL until it answers 2xx, or fails if PID dies first.
wait_ready() {
  local url=$1 pid=$2 secs=$3 i
  for i in $(seq 1 $((secs * 10))); do
    if curl -sf -o /dev/null --max-time 1 "$url"; then
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      return 1
    fi
    sleep 0.1
  done
  return 1
}

# start_server KIND MODE LOG: starts one server on a free port with a fresh data dir.
# KIND is ours, ds015, ds030, floor or engine-floor; MODE is the storage / durability mode for that server.
# Sets SERVER_PID, SERVER_URL (stream base URL), SERVER_READY (readiness URL), SERVER_DATA.
start_server() {
  local kind=$1 mode=$2 log=$3 port
  port=$(free_port)
  SERVER_DATA=$(mktemp -d "${TMPDIR:-/tmp}/ds-bench-data.XXXXXX")
  case "$kind" in
    ours)
      # AUTH=token: the server in token mode, ds-bench sending a full-access token
      # (DS_BENCH_TOKEN) with every request.
      if [ "${AUTH:-none}" = token ]; then
        DS_BENCH_TOKEN=$(DS_STORAGE__DATA_DIR="$SERVER_DATA" "$OUR_BIN" token issue --scope '*:all' 2>/dev/null)
        export DS_BENCH_TOKEN
        export DS_AUTH__MODE=token
      fi
      # AUTH=jwt-eddsa / AUTH=jwt-hs256: the same with an application-minted JWT.
      case "${AUTH:-none}" in
        jwt-*)
          DS_BENCH_TOKEN=$("$ROOT/scripts/mint-jwt.sh" "${AUTH#jwt-}" "$SERVER_DATA/jwks.json" '*:all' 86400)
          export DS_BENCH_TOKEN
          export DS_AUTH__MODE=token DS_AUTH__JWT_KEYS_FILE="$SERVER_DATA/jwks.json"
          ;;
      esac
      DS_SERVER__BIND_ADDRESS=127.0.0.1 DS_SERVER__PORT="$port" DS_STORAGE__MODE="$mode" \
        DS_STORAGE__DATA_DIR="$SERVER_DATA" DS_SERVER__LONG_POLL_TIMEOUT_SECS=5 RUST_LOG=warn \
        "$OUR_BIN" >"$log" 2>&1 &
      SERVER_URL="http://127.0.0.1:$port/v1/stream"
      SERVER_READY="http://127.0.0.1:$port/readyz"
      ;;
    ds015)
      # durable-streams 0.1.5 mounts streams at the root and answers /health.
      RUST_LOG=warn "$PEER015_BIN" --host 127.0.0.1 --port "$port" --data-dir "$SERVER_DATA" \
        --durability "$mode" --long-poll-timeout-ms 5000 >"$log" 2>&1 &
      SERVER_URL="http://127.0.0.1:$port"
      SERVER_READY="http://127.0.0.1:$port/health"
      ;;
    ds030)
      # durable-streams-server 0.3.0 caps memory at 100 MiB total / 10 MiB per stream by
      # default; lift both so the catch-up and append scenarios fit, as ours has no cap.
      # Started from its data dir so it does not pick up this repository's config/.
      (cd "$SERVER_DATA" && DS_SERVER__BIND_ADDRESS="127.0.0.1:$port" DS_STORAGE__MODE="$mode" \
        DS_STORAGE__DATA_DIR="$SERVER_DATA/streams" DS_SERVER__LONG_POLL_TIMEOUT_SECS=5 \
        DS_LIMITS__MAX_MEMORY_BYTES=17179869184 DS_LIMITS__MAX_STREAM_BYTES=17179869184 \
        DS_OBSERVABILITY__RUST_LOG=warn RUST_LOG=warn exec "$ROOT/$PEER030_BIN") >"$log" 2>&1 &
      SERVER_URL="http://127.0.0.1:$port/v1/stream"
      SERVER_READY="http://127.0.0.1:$port/readyz"
      ;;
    floor)
      # The floor: axum with one route shaped like ours and static answers (ds-floor).
      "$ROOT/target/release/ds-floor" --port "$port" >"$log" 2>&1 &
      SERVER_URL="http://127.0.0.1:$port/v1/stream"
      SERVER_READY="http://127.0.0.1:$port/readyz"
      ;;
    engine-floor)
      # The floor under fsynced appends: one-route axum, the engine linked in, the least group
      # commit (ds-engine-floor, built from tests/counts); PUT and POST only.
      "$ROOT/$ENGINE_FLOOR_BIN" --mode "$mode" --data-dir "$SERVER_DATA" --port "$port" >"$log" 2>&1 &
      SERVER_URL="http://127.0.0.1:$port/v1/stream"
      SERVER_READY="http://127.0.0.1:$port/readyz"
      ;;
    *)
      echo "unknown server kind $kind" >&2
      return 1
      ;;
  esac
  SERVER_PID=$!
  if ! wait_ready "$SERVER_READY" "$SERVER_PID" 60; then
    echo "server $kind ($mode) did not become ready; last lines of $log:" >&2
    tail -n 5 "$log" >&2 || true
    stop_server
    return 1
  fi
}

# Stops the current server (TERM, then KILL after 10 s) and removes its data dir.
stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [ -n "$SERVER_DATA" ]; then
    rm -rf "$SERVER_DATA"
  fi
  SERVER_PID=""
  SERVER_DATA=""
}

# Scenario groups, each run on its own fresh server process: many-streams gets a server of its
# own so its memory-per-stream figure is not blurred by what earlier scenarios allocated.
SCENARIOS="${SCENARIOS:-head,appends,catch-up,fanout many-streams}"

# run_bench KIND MODE LABEL ROUND OUTDIR: one run = every scenario group against fresh servers of
# KIND/MODE, appending JSON lines to OUTDIR/results.jsonl. Fails if any case or start failed.
run_bench() {
  local kind=$1 mode=$2 label=$3 round=$4 outdir=$5 group rc=0
  for group in $SCENARIOS; do
    local extra=""
    if [ "$kind" = floor ]; then
      # The floor keeps appended bytes in memory and serves them back (head, appends, catch-up,
      # fanout); appends run unverified (it frames no JSON and answers no producer headers).
      # many-streams and churn measure a store's own bookkeeping: not the floor's.
      local keep="" s
      for s in ${group//,/ }; do
        case "$s" in
          head | catch-up | fanout) keep="${keep:+$keep,}$s" ;;
          appends) keep="${keep:+$keep,}appends" extra=--no-verify ;;
        esac
      done
      [ -n "$keep" ] || continue
      group=$keep
    elif [ "$kind" = engine-floor ]; then
      # The engine floor answers creates and appends only.
      case ",$group," in *,appends,*) group=appends extra=--no-verify ;; *) continue ;; esac
    fi
    if ! start_server "$kind" "$mode" "$outdir/server-${label//\//-}-r$round-${group//,/+}.log"; then
      rc=1
      continue
    fi
    # shellcheck disable=SC2046
    "$BENCH_BIN" --url "$SERVER_URL" --scenario "$group" --server-pid "$SERVER_PID" \
      --json --label "$label" --round "$round" $extra $(bench_args) >>"$outdir/results.jsonl" || rc=1
    stop_server
  done
  return "$rc"
}
