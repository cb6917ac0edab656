#!/usr/bin/env bash
# The jetstream mode with a million streams (issue 26): creates N streams through two hosts at
# once, lists them page by page through one host (the first page builds its name index), reads a
# random sample back through the other, then restarts a host and times it to ready and to its
# first listing, with its memory. Figures go to target/bench/jetstream-million-<timestamp>/.
#
#   scripts/bench-jetstream-million.sh            (N=1000000, at most 300 s of creating)
#   N=100000 scripts/bench-jetstream-million.sh   NO_BUILD=1 uses target/release as it is.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
N="${N:-1000000}"; MAX="${MAX_SECS:-300}"
OUT="target/bench/jetstream-million-$(date +%Y%m%d-%H%M%S)"; mkdir -p "$OUT"
[ "${NO_BUILD:-0}" = 1 ] || cargo build --release --workspace
ulimit -n 65536 2>/dev/null || true
dir="$ROOT/$OUT/cluster"
export NATS_BASE_PORT="${NATS_BASE_PORT:-23222}" PROFILE=release
trap '"$ROOT/scripts/cluster.sh" stop "$dir" || true' EXIT
scripts/cluster.sh start "$dir"
A=$((NATS_BASE_PORT + 6000)); B=$((NATS_BASE_PORT + 6001))
scripts/cluster.sh host "$dir" "$A" million
scripts/cluster.sh host "$dir" "$B" million
res="$OUT/results.jsonl"
half=$((N / 2))
echo "== creating $N streams through two hosts (at most $MAX s)" >&2
started=$(date +%s.%N)
target/release/ds-bench --json --url "http://127.0.0.1:$A/v1/stream" --scenario many-streams --streams "$half" --max-secs "$MAX" --prefix m/a --label jetstream/host-a > "$OUT/create-a.jsonl" &
target/release/ds-bench --json --url "http://127.0.0.1:$B/v1/stream" --scenario many-streams --streams "$half" --max-secs "$MAX" --prefix m/b --label jetstream/host-b > "$OUT/create-b.jsonl"
wait
ended=$(date +%s.%N)
cat "$OUT/create-a.jsonl" "$OUT/create-b.jsonl" >> "$res"
python3 - "$OUT" "$started" "$ended" "$A" "$B" "$dir" <<'PY' | tee -a "$res"
import json, os, random, subprocess, sys, time, urllib.request
out, started, ended, a, b, d = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
made = 0
for f in ("create-a.jsonl", "create-b.jsonl"):
    for line in open(os.path.join(out, f)):
        made += int(json.loads(line).get("streams", 0))
print(json.dumps({"case": "million/create", "streams": made, "secs": round(ended - started, 1), "per_sec": round(made / (ended - started))}))
def get(port, path):
    t = time.time()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=600) as r:
        body = r.read()
    return json.loads(body) if body else None, (time.time() - t) * 1000
def page(port, prefix, after=None, limit=100):
    q = f"/v1/stream/__ds/streams?prefix={prefix}&limit={limit}" + (f"&start_after={after}" if after else "")
    return get(port, q)
# Listing through A: the first page (builds the index), then pages of 100 under a prefix.
_, first_ms = page(a, "m/")
seen, after, times = 0, None, []
while seen < 20000:
    v, ms = page(a, "m/b", after)
    times.append(ms)
    if not v["streams"]:
        break
    seen += len(v["streams"])
    after = v["next_start_after"]
    if after is None:
        break
times.sort()
p = lambda q: round(times[min(len(times) - 1, int(q * len(times)))], 1)
print(json.dumps({"case": "million/list", "first_page_ms": round(first_ms), "pages": len(times), "page_p50_ms": p(0.5), "page_p99_ms": p(0.99)}))
# A random sample read back through B.
misses, sample_ms = 0, []
for _ in range(200):
    side = random.choice("ab")
    i = random.randrange(made // 2)
    try:
        _, ms = get(b, f"/v1/stream/m/{side}-m{i}?offset=-1")
        sample_ms.append(ms)
    except Exception:
        misses += 1
sample_ms.sort()
print(json.dumps({"case": "million/sample-reads", "reads": len(sample_ms), "missing": misses, "p50_ms": round(sample_ms[len(sample_ms) // 2], 1) if sample_ms else None}))
# Restart host A: time to ready, to its first listing, and its memory then.
pid = int(open(f"{d}/host-{a}.pid").read())
os.kill(pid, 9)
time.sleep(0.5)
t = time.time()
subprocess.run([os.path.join(os.getcwd(), "scripts/cluster.sh"), "host", d, a, "million"], check=True)
ready_s = time.time() - t
_, relist_ms = page(a, "m/a")
pid = int(open(f"{d}/host-{a}.pid").read())
rss = int([l for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS")][0].split()[1]) // 1024
print(json.dumps({"case": "million/restart", "ready_s": round(ready_s, 1), "first_listing_ms": round(relist_ms), "rss_mb_after_listing": rss}))
PY
echo "results: $res" >&2
