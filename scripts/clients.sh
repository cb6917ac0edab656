#!/usr/bin/env bash
# The published clients against the real binary (issue 29 part 3): the TypeScript client
# (@durable-streams/client, pinned in tests/clients/package.json) and the Python client
# (durable-streams, pinned in tests/clients/python/requirements.txt, in a venv under target/),
# each driving create, appends (with a producer), catch-up, long-poll and SSE follow, close,
# JSON mode, and retries through the fault-injection endpoint (the server runs with
# testing.fault_injection = true, memory mode).
#   scripts/clients.sh            PROFILE=release scripts/clients.sh
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${PROFILE:-debug}
bin="target/$profile/durable-streams-server"
[ -x "$bin" ] || { echo "clients: missing $bin: build first (make build-debug)" >&2; exit 1; }
command -v npm >/dev/null || { echo "clients: npm is needed (Node.js 18 or later)" >&2; exit 1; }
if [ ! -d tests/clients/node_modules/@durable-streams/client ]; then
  (cd tests/clients && npm ci --no-audit --no-fund) || { echo "clients: could not install the TypeScript client from npm" >&2; exit 1; }
fi
venv=target/clients-venv
if ! "$venv/bin/python" -c 'import durable_streams' 2>/dev/null; then
  if ! python3 -m venv "$venv" 2>/dev/null; then
    # Debian splits venv out of python3.
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
      apt-get install -y -qq python3-venv >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq python3-venv) >/dev/null 2>&1 || true
    fi
    rm -rf "$venv"
    python3 -m venv "$venv" || { echo "clients: python3 -m venv failed and python3-venv could not be installed" >&2; exit 1; }
  fi
  "$venv/bin/pip" install -q -r tests/clients/python/requirements.txt || { echo "clients: could not install the Python client from PyPI" >&2; exit 1; }
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
data=$(mktemp -d)
log=$(mktemp)
DS_TESTING__FAULT_INJECTION=true DS_SERVER__PORT=$port DS_SERVER__BIND_ADDRESS=127.0.0.1 DS_STORAGE__MODE=memory \
  DS_STORAGE__DATA_DIR="$data" DS_SERVER__LONG_POLL_TIMEOUT_SECS=5 RUST_LOG=warn "$bin" >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$data" "$log"' EXIT
for _ in $(seq 1 100); do
  curl -sf -o /dev/null "http://127.0.0.1:$port/readyz" && break
  sleep 0.1
done
export DS_BASE_URL="http://127.0.0.1:$port/v1/stream"
status=0
ts_out=$(mktemp)
if (cd tests/clients && npx vitest run >"$ts_out" 2>&1); then
  echo "typescript client: $(sed 's/\x1b\[[0-9;]*m//g' "$ts_out" | grep -oE 'Tests +[0-9]+ passed.*' | head -1)"
else
  cat "$ts_out"; echo "clients: the TypeScript client's checks failed" >&2; status=1
fi
rm -f "$ts_out"
if "$venv/bin/python" tests/clients/python/check_client.py; then :; else
  echo "clients: the Python client's checks failed" >&2; status=1
fi
if grep -q "panicked" "$log"; then
  echo "clients: the server panicked:" >&2; cat "$log" >&2; status=1
fi
exit $status
