#!/usr/bin/env bash
# Executes the walkthrough in PLUGINS.md (between the walkthrough markers) in a fresh directory
# outside the repository: the template is copied, renamed, built by its own cargo invocation,
# checked with the conformance kit, loaded by configuration only, and run through the official
# HTTP conformance suite.
set -euo pipefail
DS_REPO="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d)"
export DS_REPO WORK
trap 'rm -rf "$WORK"' EXIT
script="$(awk '/<!-- walkthrough:start -->/{on=1; next} /<!-- walkthrough:end -->/{on=0} on && !/^```/' "$DS_REPO/PLUGINS.md")"
[ -n "$script" ] || { echo "no walkthrough found in PLUGINS.md"; exit 1; }
echo "plugin walkthrough in $WORK"
bash -euo pipefail -c "$script"
