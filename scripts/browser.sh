#!/usr/bin/env bash
# Makes sure a headless Chromium and its WebDriver (Debian packages `chromium` and
# `chromium-driver`) are installed, for the console's browser tests; prints the driver's path.
# Installs them with apt-get when missing (as root, or through sudo without a password).
set -euo pipefail
find_driver() { command -v chromedriver || { [ -x /usr/bin/chromedriver ] && echo /usr/bin/chromedriver; } || true; }
find_browser() { command -v chromium || command -v chromium-browser || true; }
if [ -z "$(find_driver)" ] || [ -z "$(find_browser)" ]; then
  echo "browser: installing chromium and chromium-driver (Debian packages)" >&2
  if [ "$(id -u)" = 0 ]; then as_root=(); elif sudo -n true 2>/dev/null; then as_root=(sudo -n); else
    echo "browser: could not install chromium-driver: not root and no passwordless sudo (apt-get install chromium chromium-driver)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${as_root[@]}" apt-get update -qq >&2 || true
  if ! "${as_root[@]}" apt-get install -y -qq --no-install-recommends chromium chromium-driver >&2; then
    echo "browser: could not install chromium and chromium-driver with apt-get" >&2
    exit 1
  fi
fi
driver=$(find_driver)
[ -n "$driver" ] || { echo "browser: chromedriver not found after installing" >&2; exit 1; }
echo "$driver"
