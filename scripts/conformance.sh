#!/usr/bin/env bash
# Runs the official conformance suite (tests/conformance, pinned 0.3.6) against the real binary,
# once per storage mode, and checks the counts. Usage: scripts/conformance.sh [mode[:token] ...]
# `mode:token` runs the server with `auth.mode = "token"` and the suite with a full-access token
# (issued by the `token issue` command, sent by tests/conformance's fetch wrapper); the runner
# first checks that the server refuses a request without it.
# Env: PROFILE (debug|release, default debug), EXPECT_PASSED (default 338: every test, the
# subscription block included), DS_SUBSCRIPTIONS (default 1; 0 skips the 6 subscription tests).
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${PROFILE:-debug}
export DS_SUBSCRIPTIONS=${DS_SUBSCRIPTIONS:-1}
if [ "$DS_SUBSCRIPTIONS" = 1 ]; then expect=${EXPECT_PASSED:-338}; else expect=${EXPECT_PASSED:-332}; fi
bin="target/$profile/durable-streams-server"
modes=("$@")
[ ${#modes[@]} -gt 0 ] || modes=(memory)
[ -x "$bin" ] || { echo "missing $bin: build first (make build-debug)"; exit 1; }

if [ ! -d tests/conformance/node_modules/@durable-streams/server-conformance-tests ]; then
  (cd tests/conformance && npm ci --no-audit --no-fund)
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

status=0
summary=()
for spec in "${modes[@]}"; do
  mode=${spec%%:*}
  auth=none
  [ "$spec" = "$mode:token" ] && auth=token
  port=$(free_port)
  data=$(mktemp -d)
  log=$(mktemp)
  token=
  if [ "$auth" = token ]; then
    token=$(DS_STORAGE__DATA_DIR=$data "$bin" token issue --scope '*:all' --label conformance 2>/dev/null)
  fi
  DS_AUTH__MODE=$auth DS_SERVER__PORT=$port DS_SERVER__BIND_ADDRESS=127.0.0.1 DS_STORAGE__MODE=$mode DS_STORAGE__DATA_DIR=$data \
    DS_SERVER__LONG_POLL_TIMEOUT_MS=1500 DS_SERVER__SWEEP_INTERVAL_SECS=1 DS_SUBSCRIPTIONS__ALLOW_LOOPBACK_HTTP=true RUST_LOG=warn "$bin" >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 1 200); do
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.05
  done
  if ! curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then
    echo "conformance[$mode]: server did not become ready"; cat "$log"; status=1; kill $pid 2>/dev/null || true; continue
  fi
  if [ "$auth" = token ]; then
    refused=$(curl -s -o /dev/null -w '%{http_code}' -X PUT "http://127.0.0.1:$port/v1/stream/conformance-auth-probe")
    if [ "$refused" != 401 ]; then
      echo "conformance[$spec]: a request without a token answered $refused, expected 401"; status=1; kill $pid; continue
    fi
  fi
  report=$(mktemp --suffix .json)
  echo "conformance[$spec]: running the suite against http://127.0.0.1:$port"
  (cd tests/conformance && DS_BASE_URL="http://127.0.0.1:$port" DS_TOKEN="$token" npx vitest run --reporter=default --reporter=json --outputFile="$report") | tail -n 15 || true
  kill $pid 2>/dev/null || true
  wait $pid 2>/dev/null || true
  counts=$(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
print(r["numPassedTests"], r["numFailedTests"], r["numPendingTests"] + r.get("numTodoTests", 0))
for f in r["testResults"]:
    for a in f["assertionResults"]:
        if a["status"] == "failed":
            print("FAILED:", " > ".join(a["ancestorTitles"] + [a["title"]]), file=sys.stderr)
' "$report" 2>&1 >/dev/null | head -50; python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
print(r["numPassedTests"], r["numFailedTests"], r["numPendingTests"] + r.get("numTodoTests", 0))' "$report")
  read -r passed failed skipped <<<"$(echo "$counts" | tail -n 1)"
  echo "$counts" | head -n -1
  line="conformance[$spec]: $passed passed, $failed failed, $skipped skipped"
  summary+=("$line")
  if [ "$failed" != "0" ] || [ "$passed" != "$expect" ] || { [ "$DS_SUBSCRIPTIONS" = 1 ] && [ "$skipped" != "0" ]; }; then
    echo "$line (expected $expect passed, 0 failed)"; echo "--- server log ---"; tail -n 50 "$log"; status=1
  fi
  rm -rf "$data" "$log" "$report"
done
printf '%s\n' "${summary[@]}"
exit $status
