# durable-streams-server: the two commands are `make run` and `make test`.
CARGO ?= cargo
# Bundled storage modes run through the official conformance suite (`mode:token`: in
# `auth.mode = "token"`, the suite sending a full-access token).
MODES ?= memory file-fast file-durable acid file-durable:token

.PHONY: all build build-debug run test check fmt clippy unit browser netfault-tools partitions partitions-long conformance clients deb deb-check cdn cdn-check embed kit plugin-walkthrough nats jetstream jetstream-minimum cluster bench bench-peers clean

all: build

## build: everything (host and bundled plugins) in release mode under target/release/
build:
	$(CARGO) build --release --workspace

## build-debug: everything in debug mode (what the tests use)
build-debug:
	$(CARGO) build --workspace

## run: build, then start the server on http://localhost:4437 (memory engine by default)
run: build
	./target/release/durable-streams-server

## test: formatting, lints, unit / contract / end-to-end tests (the jetstream ones on a real
## three-node NATS cluster), the conformance suite per mode, the kit, the walkthrough, embedding
test: check unit conformance clients deb-check cdn-check jetstream jetstream-minimum embed kit plugin-walkthrough

check:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

unit: build-debug nats browser netfault-tools
	DS_REQUIRE_BROWSER=1 DS_CHROMEDRIVER=$$(scripts/browser.sh) $(CARGO) test --workspace

## browser: headless Chromium and its WebDriver (Debian chromium, chromium-driver) for the
## console's browser tests (host/tests/console.rs); installed with apt-get when missing
browser:
	@scripts/browser.sh >/dev/null || { echo "make: could not install chromium / chromium-driver (needed by the console's browser tests)"; exit 1; }

## netfault-tools: ip, nft, ping and faketime for the network-fault tests (tests/netns,
## host/tests/jetstream_partitions.rs); installed with apt-get when missing
netfault-tools:
	@scripts/netfault-tools.sh || { echo "make: the network-fault tests need iproute2, nftables, iputils-ping, faketime and network namespaces (root)"; exit 1; }

## partitions: the jetstream mode under network faults (namespaces, nftables), checked from
## recorded histories; one FAULT line per fault (also part of `make test` through `unit`)
partitions: build-debug nats netfault-tools
	@out=$$(mktemp); if $(CARGO) test -q -p durable-streams-server --test jetstream_partitions -- --nocapture --test-threads 1 >$$out 2>&1; then \
	  grep -oE '[A-Z][A-Z-]+: ([0-9]+ operations|a JWT|the cut-off host).*' $$out; rm -f $$out; \
	else cat $$out; rm -f $$out; echo "make: the partition tests failed"; exit 1; fi

## partitions-long: random network faults for SECS seconds (default 120); history and report
## kept under target/partitions-<timestamp>/
partitions-long: build-debug nats netfault-tools
	scripts/partitions-long.sh $(or $(SECS),120)

## nats: the pinned nats-server releases (current and minimum supported) under target/nats/
nats:
	@scripts/nats.sh install current >/dev/null || { echo "make: could not install nats-server (needed by the jetstream mode's tests)"; exit 1; }
	@scripts/nats.sh install minimum >/dev/null || { echo "make: could not install the minimum nats-server release"; exit 1; }

## jetstream: kit and official suite (two hosts) on a real three-node cluster
jetstream: build-debug nats
	scripts/jetstream-checks.sh

## jetstream-minimum: the engine contract suite against the oldest supported nats-server
jetstream-minimum: build-debug nats
	DS_NATS_SERVER=$$(scripts/nats.sh path minimum) $(CARGO) test -p durable-streams-plugin-jetstream --test contract

## cluster: a local three-node NATS cluster and two hosts (ports 4437, 4438), until Ctrl-C
cluster: build nats
	scripts/cluster.sh demo

conformance: build-debug
	scripts/conformance.sh $(MODES)

## deb: the Debian package (cargo-deb, pinned and installed by scripts/deb.sh), release build:
## target/debian/durable-streams-server_<version>-1_<arch>.deb
deb:
	scripts/deb.sh

## deb-check: the package (from the debug build) installed into a clean bookworm root
## (debootstrap, cached under target/deb-root/), served as its systemd unit would run it,
## systemd-analyze verify, lintian, remove and purge (root)
deb-check: build-debug
	PROFILE=dev scripts/deb-check.sh

## cdn: fan-out through nginx with deploy/nginx/durable-streams.conf (release build): 1000
## long-poll readers, 50 appends, 200 catch-up readers of 50 MB, the same readers direct for
## comparison, and the token-mode cache cases; prints the `cdn:` lines
cdn:
	$(CARGO) build --release --workspace
	scripts/cdn.sh

## cdn-check: the same, smaller, asserting the figures (part of make test)
cdn-check: build-debug
	CHECK=1 READERS=200 APPENDS=20 CATCHUP_READERS=20 CATCHUP_MB=10 PROFILE=debug scripts/cdn.sh

## clients: the published TypeScript and Python clients (pinned; npm and PyPI) against the
## binary with the fault-injection endpoint on: create, producers, catch-up, long-poll, SSE,
## close, JSON mode, retries through injected faults
clients: build-debug
	scripts/clients.sh

## embed: the embedding example (its own workspace and target dir) serves and checks itself
embed:
	$(CARGO) run --manifest-path examples/embed/Cargo.toml --target-dir target/embed -- --self-test

## kit: the plugin conformance kit against every bundled plugin (and the template)
kit: build-debug
	./target/debug/durable-streams-server plugins check target/debug/libds_plugin_memory.so --mode memory
	./target/debug/durable-streams-server plugins check target/debug/libds_plugin_file.so --mode file-fast
	./target/debug/durable-streams-server plugins check target/debug/libds_plugin_file.so --mode file-durable
	./target/debug/durable-streams-server plugins check target/debug/libds_plugin_acid.so --mode acid
	./target/debug/durable-streams-server plugins check target/debug/libds_template_plugin.so --mode template

## plugin-walkthrough: PLUGINS.md's walkthrough, executed: an out-of-tree plugin built, checked and served
plugin-walkthrough: build-debug
	scripts/plugin-walkthrough.sh

## bench: load-generator figures for this server (see BENCHMARKS.md)
bench:
	scripts/bench.sh

## bench-peers: the same scenarios against the published Rust servers, alternating
bench-peers:
	scripts/bench-peers.sh

clean:
	$(CARGO) clean
