#!/usr/bin/env bash
# Builds the Debian package with cargo-deb (pinned here, installed when missing):
# target/debian/durable-streams-server_<version>-1_<arch>.deb. Prints the package's path.
#   scripts/deb.sh               release build (make deb)
#   PROFILE=dev scripts/deb.sh   from the debug build already made (make test's check)
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO_DEB_VERSION=2.9.1
profile=${PROFILE:-release}
if ! cargo deb --version 2>/dev/null | grep -q "$CARGO_DEB_VERSION"; then
  echo "deb: installing cargo-deb $CARGO_DEB_VERSION" >&2
  cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked >&2 || { echo "deb: could not install cargo-deb" >&2; exit 1; }
fi
if [ "$profile" = release ]; then
  cargo build --release --workspace >&2
  out=$(cargo deb -p durable-streams-server --no-build 2>&1 | tail -n 1)
else
  cargo build --workspace >&2
  out=$(cargo deb -p durable-streams-server --no-build --profile "$profile" 2>&1 | tail -n 1)
fi
[ -f "$out" ] || { echo "deb: cargo deb did not make a package: $out" >&2; exit 1; }
echo "$out"
