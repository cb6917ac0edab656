#!/usr/bin/env bash
# Fan-out through a caching proxy (issue 30): the server and Debian's nginx with the shipped
# configuration (deploy/nginx/durable-streams.conf) on loopback, then ds-fanout: READERS
# long-poll readers (echoing the cursor) follow one stream through the proxy while APPENDS
# messages are appended, and CATCHUP_READERS readers catch up a CATCHUP_MB stream from the
# start through it; the origin's /metrics say what reached it. Then token mode: with
# auth.shared_cache_per_credential a reader's answers are cached for its credential only (another
# token, none, or a token without the scope never gets them), and without it nothing is cached.
#   scripts/cdn.sh                                     full run (make cdn), with the same readers
#                                                      going to the server directly for comparison
#   CHECK=1 READERS=200 APPENDS=20 CATCHUP_READERS=20 CATCHUP_MB=10 PROFILE=debug scripts/cdn.sh
#                                                      make test's run: asserts the figures
set -euo pipefail
cd "$(dirname "$0")/.."
READERS=${READERS:-1000}
APPENDS=${APPENDS:-50}
CATCHUP_READERS=${CATCHUP_READERS:-200}
CATCHUP_MB=${CATCHUP_MB:-50}
CHECK=${CHECK:-0}
profile=${PROFILE:-release}
bin="target/$profile/durable-streams-server"
fanout="target/$profile/ds-fanout"
[ -x "$bin" ] && [ -x "$fanout" ] || { echo "cdn: build first ($bin, $fanout)" >&2; exit 1; }
if ! command -v nginx >/dev/null; then
  apt-get install -y -qq nginx-light >/dev/null 2>&1 || apt-get install -y -qq nginx >/dev/null 2>&1 \
    || (apt-get update -qq && apt-get install -y -qq nginx) >/dev/null 2>&1 || true
fi
command -v nginx >/dev/null || { echo "cdn: could not install nginx" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

work=$(mktemp -d "${TMPDIR:-/tmp}/ds-cdn.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  sleep 0.3
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_server NAME [ENV=VALUE ...]: sets PORT_<NAME> and PID_<NAME>.
start_server() {
  local name=$1; shift
  local port; port=$(free_port)
  mkdir -p "$work/$name"
  env DS_SERVER__PORT="$port" DS_SERVER__BIND_ADDRESS=127.0.0.1 DS_STORAGE__MODE=memory \
    DS_STORAGE__DATA_DIR="$work/$name" DS_SERVER__LONG_POLL_TIMEOUT_MS=20000 RUST_LOG=warn "$@" \
    "$bin" >"$work/$name.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  for _ in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/readyz" && break; sleep 0.1; done
  printf -v "PORT_$name" '%s' "$port"
  printf -v "PID_$name" '%s' "$pid"
}

# start_nginx ORIGIN_PORT: the shipped configuration, with its three marked values set for this
# run; sets PROXY_PORT.
start_nginx() {
  local origin=$1
  PROXY_PORT=$(free_port)
  mkdir -p "$work/cache" "$work/tmp"
  sed -e "s|listen 8080;|listen 127.0.0.1:$PROXY_PORT;|" \
      -e "s|server 127.0.0.1:4437;|server 127.0.0.1:$origin;|" \
      -e "s|/var/cache/nginx/durable-streams|$work/cache|" \
      deploy/nginx/durable-streams.conf >"$work/durable-streams.conf"
  cat >"$work/nginx.conf" <<EOF
user root;
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 16384; }
http {
  access_log off;
  client_body_temp_path $work/tmp/body;
  proxy_temp_path $work/tmp/proxy;
  fastcgi_temp_path $work/tmp/fastcgi;
  uwsgi_temp_path $work/tmp/uwsgi;
  scgi_temp_path $work/tmp/scgi;
  include $work/durable-streams.conf;
}
EOF
  nginx -t -p "$work" -c "$work/nginx.conf" >"$work/nginx-t.log" 2>&1 || { cat "$work/nginx-t.log" >&2; echo "cdn: the nginx configuration does not load" >&2; exit 1; }
  nginx -p "$work" -c "$work/nginx.conf"
  for _ in $(seq 1 50); do curl -s -o /dev/null "http://127.0.0.1:$PROXY_PORT/" && break; sleep 0.1; done
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }

status=0
check() { # check WHAT CONDITION
  if python3 -c "import sys; sys.exit(0 if ($2) else 1)"; then :; else echo "cdn: FAILED: $1" >&2; status=1; fi
}

# 1. Open mode: collapsed long-polls and catch-up through the proxy.
start_server open
start_nginx "$PORT_open"
before=$(cpu_ticks "$PID_open")
out=$("$fanout" --proxy "http://127.0.0.1:$PROXY_PORT/v1/stream" --origin "http://127.0.0.1:$PORT_open/v1/stream" \
  --readers "$READERS" --appends "$APPENDS" --catchup-readers "$CATCHUP_READERS" --catchup-mb "$CATCHUP_MB")
after=$(cpu_ticks "$PID_open")
per_append=$(field "$out" origin_long_polls_per_append)
bytes_x=$(field "$out" origin_bytes_x_stream)
missed=$(field "$out" missed)
dups=$(field "$out" duplicated)
echo "cdn: proxy run: $out" >&2
printf 'cdn: %s readers, %s appends, origin long-polls per append %.2f, catch-up origin bytes %.2f x stream size, missed %s, duplicated %s\n' \
  "$READERS" "$APPENDS" "$per_append" "$bytes_x" "$missed" "$dups"
check "missed $missed" "$missed == 0"
check "duplicated $dups" "$dups == 0"
check "readers out of order" "$(field "$out" readers_out_of_order) == 0"
if [ "$CHECK" = 1 ]; then
  check "origin long-polls per append $per_append (at most 2)" "$per_append <= 2"
  check "catch-up origin bytes $bytes_x x the stream (at most 1.5)" "$bytes_x <= 1.5"
fi
tick=$(getconf CLK_TCK)
messages=$(( READERS * APPENDS ))
proxy_cpu=$(python3 -c "print(($after - $before) / $tick)")

# The same readers straight to the server, for the comparison (make cdn only).
if [ "$CHECK" != 1 ]; then
  before=$(cpu_ticks "$PID_open")
  direct=$("$fanout" --proxy "http://127.0.0.1:$PORT_open/v1/stream" --origin "http://127.0.0.1:$PORT_open/v1/stream" \
    --readers "$READERS" --appends "$APPENDS" --catchup-readers "$CATCHUP_READERS" --catchup-mb "$CATCHUP_MB")
  after=$(cpu_ticks "$PID_open")
  echo "cdn: direct run: $direct" >&2
  direct_cpu=$(python3 -c "print(($after - $before) / $tick)")
  printf 'cdn: origin CPU (whole run: live + catch-up) %.2f s through the proxy, %.2f s direct; long-polls per append %.2f through the proxy, %.2f direct; catch-up origin bytes %.2f x vs %.2f x\n' \
    "$proxy_cpu" "$direct_cpu" "$per_append" "$(field "$direct" origin_long_polls_per_append)" "$bytes_x" "$(field "$direct" origin_bytes_x_stream)"
  printf 'cdn: origin CPU per delivered live message: %.1f us through the proxy, %.1f us direct (%s messages)\n' \
    "$(python3 -c "print($proxy_cpu * 1e6 / $messages)")" "$(python3 -c "print($direct_cpu * 1e6 / $messages)")" "$messages"
fi

# 2. Token mode with answers cached per credential.
kill "$(cat "$work/nginx.pid")"; sleep 0.3; rm -rf "$work/cache"
tokens="$work/tokens.json"
issue() { DS_AUTH__TOKENS_FILE="$tokens" "$bin" token issue "$@" 2>/dev/null; }
admin=$(issue --scope '*:all' --label admin)
reader_a=$(issue --scope 'cdn/:read' --label a)
reader_b=$(issue --scope 'cdn/:read' --label b)
outsider=$(issue --scope 'other/:read' --label outsider)
start_server percred DS_AUTH__MODE=token DS_AUTH__TOKENS_FILE="$tokens" DS_AUTH__SHARED_CACHE_PER_CREDENTIAL=true
start_nginx "$PORT_percred"
origin="http://127.0.0.1:$PORT_percred/v1/stream"
proxy="http://127.0.0.1:$PROXY_PORT/v1/stream"
curl -sf -o /dev/null -X PUT -H "Authorization: Bearer $admin" -H 'Content-Type: text/plain' --data 'for readers of cdn/' "$origin/cdn/shared"
# status and cache status of a read through the proxy: get [TOKEN] [QUERY-TOKEN]
get() {
  local h=() q=""
  [ -n "${1:-}" ] && h=(-H "Authorization: Bearer $1")
  [ -n "${2:-}" ] && q="&access_token=$2"
  curl -s -o "$work/body" -D "$work/head" "${h[@]}" "$proxy/cdn/shared?offset=-1$q"
  local code; code=$(head -n1 "$work/head" | awk '{print $2}')
  local cache; cache=$(grep -i '^x-cache-status:' "$work/head" | awk '{print $2}' | tr -d '\r')
  # (quotes dropped: the line is matched in a Python expression)
  echo "$code ${cache:-none} $(head -c 40 "$work/body" | tr -d "'\"\\\\")"
}
a1=$(get "$reader_a"); a2=$(get "$reader_a"); b1=$(get "$reader_b"); b2=$(get "$reader_b")
none=$(get ""); out1=$(get "$outsider"); q1=$(get "" "$reader_a"); q2=$(get "" "$reader_a")
check "reader A first: $a1" "'$a1'.startswith('200 MISS for readers')"
check "reader A again, from the cache: $a2" "'$a2'.startswith('200 HIT for readers')"
check "reader B is not served A's answer: $b1" "'$b1'.startswith('200 MISS')"
check "reader B again: $b2" "'$b2'.startswith('200 HIT')"
check "no token: $none" "'$none'.startswith('401') and 'for readers' not in '$none'"
check "a token without the scope: $out1" "'$out1'.startswith('403') and 'for readers' not in '$out1'"
check "a query token: $q1 / $q2" "'$q1'.startswith('200 MISS') and '$q2'.startswith('200 HIT')"
# Readers sharing one token collapse in token mode too.
tok=$("$fanout" --proxy "$proxy" --origin "$origin" --token "$admin" \
  --readers "$(( READERS / 2 ))" --appends "$(( APPENDS / 2 ))" --catchup-readers 4 --catchup-mb 2)
echo "cdn: token-mode run: $tok" >&2
check "token mode missed" "$(field "$tok" missed) == 0 and $(field "$tok" duplicated) == 0"
tok_per=$(field "$tok" origin_long_polls_per_append)
if [ "$CHECK" = 1 ]; then check "token mode long-polls per append $tok_per" "$tok_per <= 2"; fi

# 3. Token mode as shipped (private answers): nothing is kept.
kill "$(cat "$work/nginx.pid")"; sleep 0.3; rm -rf "$work/cache"
start_server private DS_AUTH__MODE=token DS_AUTH__TOKENS_FILE="$tokens"
start_nginx "$PORT_private"
origin="http://127.0.0.1:$PORT_private/v1/stream"
proxy="http://127.0.0.1:$PROXY_PORT/v1/stream"
curl -sf -o /dev/null -X PUT -H "Authorization: Bearer $admin" -H 'Content-Type: text/plain' --data 'for readers of cdn/' "$origin/cdn/shared"
p1=$(get "$reader_a"); p2=$(get "$reader_a")
check "private answers are never stored: $p1 / $p2" "'$p2'.startswith('200') and 'HIT' not in '$p2'"
printf 'cdn: token mode: per-credential cache: A %s then %s, B %s, no token %s, outsider %s; readers sharing a token: long-polls per append %.2f; private (default): A %s then %s\n' \
  "${a1%% *}/$(echo "$a1" | awk '{print $2}')" "$(echo "$a2" | awk '{print $2}')" "$(echo "$b1" | awk '{print $2}')" \
  "${none%% *}" "${out1%% *}" "$tok_per" "$(echo "$p1" | awk '{print $2}')" "$(echo "$p2" | awk '{print $2}')"
exit $status
