#!/usr/bin/env bash
# A local three-node NATS JetStream cluster on loopback, and (optionally) server hosts on it.
#
#   scripts/cluster.sh start DIR            start 3 nats-server nodes; DIR/urls holds their addresses
#   scripts/cluster.sh stop DIR             stop them (and any host started with `host`)
#   scripts/cluster.sh host DIR PORT [NS]   start a durable-streams-server host on the cluster
#   scripts/cluster.sh demo                 `make cluster`: 3 nodes + 2 hosts (4437, 4438) in the
#                                           foreground until Ctrl-C
#
# Env: NATS_RELEASE (current|minimum), PROFILE (debug|release, default release for demo),
# NATS_BASE_PORT (default 14222: clients 14222-14224, routes 16222-16224, http 18222-18224).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cmd="${1:-}"

start() {
  local dir="$1"; mkdir -p "$dir"
  local bin; bin="$("$ROOT/scripts/nats.sh" install "${NATS_RELEASE:-current}")"
  local base="${NATS_BASE_PORT:-14222}"
  local routes="" urls=""
  for i in 0 1 2; do
    routes+="${routes:+, }nats-route://127.0.0.1:$((base + 2000 + i))"
    urls+="${urls:+,}nats://127.0.0.1:$((base + i))"
  done
  for i in 0 1 2; do
    cat > "$dir/n$i.conf" <<CONF
server_name: n$i
listen: 127.0.0.1:$((base + i))
http: 127.0.0.1:$((base + 4000 + i))
max_payload: 8MB
jetstream { store_dir: "$dir/n$i", max_memory_store: 256MB, max_file_store: 8GB }
cluster { name: ds, listen: 127.0.0.1:$((base + 2000 + i)), routes: [$routes] }
CONF
    "$bin" -c "$dir/n$i.conf" >"$dir/n$i.log" 2>&1 &
    echo $! > "$dir/n$i.pid"
  done
  echo "$urls" > "$dir/urls"
  for i in 0 1 2; do
    for _ in $(seq 1 300); do
      curl -sf "http://127.0.0.1:$((base + 4000 + i))/healthz" >/dev/null 2>&1 && break
      sleep 0.1
    done
    curl -sf "http://127.0.0.1:$((base + 4000 + i))/healthz" >/dev/null 2>&1 || { echo "cluster.sh: node n$i did not become ready; see $dir/n$i.log" >&2; exit 1; }
  done
  echo "cluster.sh: 3 nodes ready at $urls" >&2
}

stop() {
  local dir="$1" pids=()
  for f in "$dir"/*.pid; do
    [ -e "$f" ] || continue
    pids+=("$(cat "$f")")
    kill "$(cat "$f")" 2>/dev/null || true
    rm -f "$f"
  done
  # Wait for them to exit, so their files can be removed.
  for _ in $(seq 1 100); do
    local alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && return 0
    sleep 0.1
  done
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
}

host() {
  local dir="$1" port="$2" ns="${3:-ds}"
  local bin="$ROOT/target/${PROFILE:-debug}/durable-streams-server"
  [ -x "$bin" ] || { echo "cluster.sh: build first ($bin is missing)" >&2; exit 1; }
  DS_SERVER__PORT="$port" DS_SERVER__BIND_ADDRESS=127.0.0.1 DS_STORAGE__MODE=jetstream \
    DS_STORAGE__JETSTREAM__URLS="$(cat "$dir/urls")" DS_STORAGE__JETSTREAM__NAMESPACE="$ns" \
    "$bin" >"$dir/host-$port.log" 2>&1 &
  echo $! > "$dir/host-$port.pid"
  for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && { echo "cluster.sh: host ready on http://127.0.0.1:$port" >&2; return 0; }
    sleep 0.1
  done
  echo "cluster.sh: host on $port did not become ready; its log ($dir/host-$port.log) ends:" >&2
  tail -n 30 "$dir/host-$port.log" >&2 || true
  exit 1
}

case "$cmd" in
  start) start "$2" ;;
  stop) stop "$2" ;;
  host) host "$2" "$3" "${4:-ds}" ;;
  demo)
    dir="$ROOT/target/cluster"
    export PROFILE="${PROFILE:-release}"
    stop "$dir" 2>/dev/null || true
    trap 'stop "$dir"; echo; echo "stopped"' EXIT INT TERM
    start "$dir"
    host "$dir" 4437
    host "$dir" 4438
    echo "Two hosts share one replicated data set:"
    echo "  curl -X PUT localhost:4437/v1/stream/hello -H 'Content-Type: text/plain'"
    echo "  curl -X POST localhost:4438/v1/stream/hello -H 'Content-Type: text/plain' -d 'from host B'"
    echo "  curl 'localhost:4437/v1/stream/hello?offset=-1'"
    echo "Logs and data in $dir. Ctrl-C stops everything."
    while true; do sleep 3600; done ;;
  *) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
