#!/usr/bin/env bash
# Makes sure the tools of the network-fault tests are installed (Debian packages iproute2,
# nftables, iputils-ping, faketime), with apt-get when missing (as root, or through sudo without a
# password), and that network namespaces can be made here. Says what is missing otherwise.
set -euo pipefail
missing=()
command -v ip >/dev/null || missing+=(iproute2)
command -v nft >/dev/null || missing+=(nftables)
command -v ping >/dev/null || missing+=(iputils-ping)
command -v faketime >/dev/null || missing+=(faketime)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "netfault-tools: installing ${missing[*]} (Debian packages)" >&2
  if [ "$(id -u)" = 0 ]; then as_root=(); elif sudo -n true 2>/dev/null; then as_root=(sudo -n); else
    echo "netfault-tools: could not install ${missing[*]}: not root and no passwordless sudo" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${as_root[@]}" apt-get update -qq >&2 || true
  "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 || {
    echo "netfault-tools: could not install ${missing[*]} with apt-get" >&2
    exit 1
  }
fi
probe="dsprobe$$"
if ! ip netns add "$probe" 2>/dev/null; then
  echo "netfault-tools: cannot make network namespaces here (the fault tests need root or CAP_NET_ADMIN + CAP_SYS_ADMIN)" >&2
  exit 1
fi
ip netns del "$probe"
