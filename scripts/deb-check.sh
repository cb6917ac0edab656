#!/usr/bin/env bash
# The Debian package in a clean Debian bookworm root (issue 29 part 1): built (scripts/deb.sh),
# installed with dpkg -i into a fresh minbase root (debootstrap, cached as a tarball under
# target/deb-root/), the server run there as the unit runs it (its user, command line,
# environment file and working directory) for create / append / read and a restart with the
# data kept; the unit checked by systemd-analyze verify, the package by lintian (no errors);
# remove keeps the data and the configuration, purge deletes them. Needs root (chroot, mount).
#   scripts/deb-check.sh            PROFILE=release scripts/deb-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT_DIR="$(pwd)"
[ "$(id -u)" = 0 ] || { echo "deb-check: needs root (chroot and mounts)" >&2; exit 1; }
need() {
  command -v "$1" >/dev/null && return 0
  apt-get install -y -qq "$2" >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq "$2") >/dev/null 2>&1 || true
  command -v "$1" >/dev/null || { echo "deb-check: could not install $2 (for $1)" >&2; exit 1; }
}
need debootstrap debootstrap
need lintian lintian
need systemd-analyze systemd
need curl curl

deb=$(PROFILE=${PROFILE:-dev} scripts/deb.sh)
echo "deb-check: package $deb"

cache=target/deb-root/bookworm-minbase-systemd.tar
if [ ! -f "$cache" ]; then
  echo "deb-check: making a clean bookworm root (debootstrap --variant=minbase with systemd; cached in $cache)"
  tmp=$(mktemp -d)
  debootstrap --variant=minbase --include=systemd,procps bookworm "$tmp/root" http://deb.debian.org/debian >"$tmp/debootstrap.log" 2>&1 \
    || { tail -n 20 "$tmp/debootstrap.log" >&2; echo "deb-check: debootstrap failed" >&2; exit 1; }
  mkdir -p target/deb-root
  tar -C "$tmp/root" -cf "$cache.part" . && mv "$cache.part" "$cache"
  rm -rf "$tmp"
fi
root=$(mktemp -d "${TMPDIR:-/tmp}/ds-deb-root.XXXXXX")
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  umount -l "$root/proc" 2>/dev/null || true
  umount -l "$root/dev" 2>/dev/null || true
  rm -rf "$root"
}
trap cleanup EXIT
tar -C "$root" -xf "$cache"
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
cp "$deb" "$root/tmp/pkg.deb"

fail() { echo "deb-check: FAILED: $*" >&2; [ -f "$root/tmp/server.log" ] && tail -n 20 "$root/tmp/server.log" >&2; exit 1; }

chroot "$root" dpkg -i /tmp/pkg.deb >/dev/null || fail "dpkg -i"
for f in /usr/bin/durable-streams-server /usr/lib/durable-streams/plugins/libds_plugin_file.so \
         /etc/durable-streams/default.toml /etc/durable-streams/prod.toml /etc/default/durable-streams \
         /lib/systemd/system/durable-streams.service; do
  [ -e "$root$f" ] || fail "$f is not installed"
done
chroot "$root" getent passwd durable-streams >/dev/null || fail "no durable-streams user"
[ "$(chroot "$root" stat -c %U /var/lib/durable-streams)" = durable-streams ] || fail "/var/lib/durable-streams is not the service user's"

# What the unit says, run as it would run it.
unit="$root/lib/systemd/system/durable-streams.service"
user=$(sed -n 's/^User=//p' "$unit")
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
workdir=$(sed -n 's/^WorkingDirectory=//p' "$unit")
envfile=$(sed -n 's/^EnvironmentFile=-\{0,1\}//p' "$unit")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
env_of_unit() { grep -E '^[A-Z_]+=' "$root$envfile"; echo "DS_SERVER__PORT=$port"; }
as_unit() {
  # shellcheck disable=SC2046
  exec chroot --userspec="$user:$user" "$root" /usr/bin/env -i PATH=/usr/bin:/bin $(env_of_unit) sh -c "cd $workdir && exec $*"
}
start() {
  as_unit "$exec_start" >>"$root/tmp/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 150); do
    curl -sf -o /dev/null "http://127.0.0.1:$port/readyz" && return 0
    kill -0 "$pid" 2>/dev/null || fail "the server exited at start"
    sleep 0.2
  done
  fail "the server did not become ready"
}
token=$( (as_unit "/usr/bin/durable-streams-server --config-dir /etc/durable-streams --profile prod token issue --scope '*:all' --label deb-check") 2>/dev/null)
[ -n "$token" ] || fail "token issue as the service user"
start
url="http://127.0.0.1:$port/v1/stream/deb/check"
auth="Authorization: Bearer $token"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$url")" = 401 ] || fail "the installed server (prod profile) lets a request without a token in"
[ "$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H "$auth" -H 'Content-Type: text/plain' "$url")" = 201 ] || fail "create"
[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "$auth" -H 'Content-Type: text/plain' --data 'kept across restarts' "$url")" = 204 ] || fail "append"
[ "$(curl -s -H "$auth" "$url?offset=-1")" = "kept across restarts" ] || fail "read"
kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; pid=""
start
[ "$(curl -s -H "$auth" "$url?offset=-1")" = "kept across restarts" ] || fail "the data did not survive a restart"
[ "$(grep -c '"message":"ready"' "$root/tmp/server.log")" -ge 2 ] || fail "the server did not start twice (a restart)"
kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; pid=""
[ -d "$root/var/lib/durable-streams/file" ] || [ -n "$(ls -A "$root/var/lib/durable-streams")" ] || fail "no data under /var/lib/durable-streams"

# The unit, as the root's own systemd reads it.
verify=$(chroot "$root" systemd-analyze verify /lib/systemd/system/durable-streams.service 2>&1 | grep -v "^$" || true)
if echo "$verify" | grep -qi "durable-streams.service"; then
  echo "$verify" >&2
  fail "systemd-analyze verify"
fi

# The package, as lintian reads it: no errors.
lint=$(lintian --fail-on error --tag-display-limit 0 "$deb" 2>&1) || { echo "$lint" >&2; fail "lintian found errors"; }
warnings=$(echo "$lint" | grep -c '^W:' || true)

# Remove keeps the data and the configuration; purge deletes them.
chroot "$root" dpkg -r durable-streams-server >/dev/null || fail "dpkg -r"
[ -n "$(ls -A "$root/var/lib/durable-streams" 2>/dev/null)" ] || fail "remove deleted the data"
[ -f "$root/etc/durable-streams/prod.toml" ] || fail "remove deleted the configuration"
[ ! -e "$root/usr/bin/durable-streams-server" ] || fail "remove left the binary"
chroot "$root" dpkg -P durable-streams-server >/dev/null || fail "dpkg -P"
[ ! -e "$root/var/lib/durable-streams" ] || fail "purge left /var/lib/durable-streams"
[ ! -e "$root/etc/durable-streams/prod.toml" ] || fail "purge left the configuration"
echo "deb-check: installed into a clean bookworm root, served create / append / read as the unit's user, kept the data across a restart; systemd-analyze verify clean; lintian: 0 errors, $warnings warnings; remove kept data and config, purge removed them"
