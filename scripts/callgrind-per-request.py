#!/usr/bin/env python3
"""What one request costs, per function: the inclusive instruction counts of a callgrind run
that answered N2 requests less those of a run that answered N1 (start-up and shutdown cancel
out), divided by N2 - N1. Written for scripts/bench-instructions.sh's PROFILE=1 files.

    scripts/callgrind-per-request.py A.callgrind B.callgrind N1 N2 [--top K] [--grep TEXT] [--self]
"""
import argparse
import re
import subprocess
from collections import defaultdict

LINE = re.compile(r"^\s*([\d,]+)\s+\([^)]*\)\s+(.*)$")
NOISE = re.compile(r"/root/\.cargo/registry/src/index\.crates\.io-[0-9a-f]+/|/rustc/[0-9a-f]+/")


def costs_of(path, inclusive):
    out = subprocess.run(
        ["callgrind_annotate", f"--inclusive={'yes' if inclusive else 'no'}", "--threshold=100", "--auto=no", path],
        check=True, capture_output=True, text=True,
    ).stdout
    costs = defaultdict(int)
    for line in out.splitlines():
        m = LINE.match(line)
        if m and "PROGRAM TOTALS" not in m.group(2):
            name = NOISE.sub("", m.group(2))
            costs[name] = max(costs[name], int(m.group(1).replace(",", "")))
    return costs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("small")
    ap.add_argument("large")
    ap.add_argument("n1", type=int)
    ap.add_argument("n2", type=int)
    ap.add_argument("--top", type=int, default=80)
    ap.add_argument("--grep", default=None)
    ap.add_argument("--self", action="store_true", help="each function's own instructions, not its callees'")
    a = ap.parse_args()
    small, large = costs_of(a.small, not a.self), costs_of(a.large, not a.self)
    per = {k: (large[k] - small.get(k, 0)) / (a.n2 - a.n1) for k in large}
    rows = sorted(per.items(), key=lambda kv: -kv[1])
    if a.grep:
        rows = [r for r in rows if a.grep in r[0]]
    for name, cost in rows[: a.top]:
        print(f"{cost:10.0f}  {name[:200]}")


if __name__ == "__main__":
    main()
