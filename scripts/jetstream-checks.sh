#!/usr/bin/env bash
# The jetstream mode on a real three-node NATS cluster on loopback (started here, stopped at exit):
# the plugin conformance kit against the .so, then the official conformance suite against a host
# while a second host serves the same cluster and namespace.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
profile="${PROFILE:-debug}"
dir="$(mktemp -d)"
# Every port used (the nodes' base..base+4002, the second host at base+6000) stays below the
# kernel's ephemeral range (32768 and up), where a client connection of an earlier step may hold
# the port: CI once saw the second host fail to start on 34896.
export NATS_BASE_PORT="${NATS_BASE_PORT:-$((20000 + RANDOM % 6000))}"
trap '"$ROOT/scripts/cluster.sh" stop "$dir" || true; rm -rf "$dir" || true' EXIT
"$ROOT/scripts/cluster.sh" start "$dir"
urls="$(cat "$dir/urls")"

echo "kit[jetstream]: plugins check against the cluster at $urls"
# sweep_scan_secs=0: the kit's sweeper cases call list_expired back to back.
DS_STORAGE__JETSTREAM__URLS="$urls" DS_STORAGE__JETSTREAM__SHARDS=1 DS_STORAGE__JETSTREAM__SWEEP_SCAN_SECS=0 \
  "$ROOT/target/$profile/durable-streams-server" plugins check "$ROOT/target/$profile/libds_plugin_jetstream.so" --mode jetstream

ns="conf$RANDOM"
# The second host is configured like the one under test (scripts/conformance.sh): either may
# hold the subscription-delivery lease and send the suite's loopback webhooks.
DS_SUBSCRIPTIONS__ALLOW_LOOPBACK_HTTP=true DS_SERVER__SWEEP_INTERVAL_SECS=1 DS_SERVER__LONG_POLL_TIMEOUT_MS=1500 \
PROFILE="$profile" "$ROOT/scripts/cluster.sh" host "$dir" "$((NATS_BASE_PORT + 6000))" "$ns"
echo "conformance[jetstream]: a second host serves the same namespace on port $((NATS_BASE_PORT + 6000))"
DS_STORAGE__JETSTREAM__URLS="$urls" DS_STORAGE__JETSTREAM__NAMESPACE="$ns" PROFILE="$profile" \
  "$ROOT/scripts/conformance.sh" jetstream
