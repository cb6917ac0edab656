//! Quotas end to end: a client over its request rate gets 429 problem+json with `Retry-After`
//! while others are unaffected, and recovers after waiting; live reads (SSE, long-poll) are
//! limited per client and their slots come back when the client disconnects. In `token` mode a
//! client is a token; in `none` mode an address (the connection's, or `X-Forwarded-For` when trusted).

mod common;

use std::time::Duration;

use common::{tempdir, wait_until, Server};
use reqwest::blocking::{Client, RequestBuilder};

fn client() -> Client {
    Client::builder().timeout(Duration::from_secs(10)).build().unwrap()
}

fn issue(tokens: &std::path::Path, scope: &str) -> String {
    common::issue_token(tokens, &[scope])
}

/// Sends until the first 429; returns how many were accepted before it, and its Retry-After.
fn until_refused(make: impl Fn() -> RequestBuilder) -> (usize, u64) {
    for ok in 0..100 {
        let r = make().send().unwrap();
        if r.status() == 429 {
            assert_eq!(r.headers()["content-type"], "application/problem+json");
            let retry = r.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap();
            return (ok, retry);
        }
        assert!(r.status().is_success(), "{}", r.status());
    }
    panic!("never refused")
}

#[test]
fn token_mode_limits_each_token() {
    let dir = tempdir::Dir::new();
    let tokens = dir.path.join("tokens.json");
    let a = issue(&tokens, "*:all");
    let b = issue(&tokens, "*:all");
    let s = Server::start(&[
        ("DS_AUTH__MODE", "token"),
        ("DS_AUTH__TOKENS_FILE", tokens.to_str().unwrap()),
        ("DS_QUOTAS__REQUESTS_PER_SECOND", "2"),
        ("DS_QUOTAS__REQUEST_BURST", "6"),
        ("DS_QUOTAS__LIVE_CONNECTIONS", "2"),
    ]);
    let c = client();
    let r = c
        .put(s.url("/v1/stream/q"))
        .bearer_auth(&b)
        .header("Content-Type", "text/plain")
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let head = |t: &str| c.head(s.url("/v1/stream/q")).bearer_auth(t.to_string());
    // The burst of 6, give or take what refilled meanwhile, then 429.
    let (accepted, retry) = until_refused(|| head(&a));
    assert!((6..=10).contains(&accepted), "accepted {accepted} before the first 429");
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    // Another token is unaffected.
    assert_eq!(head(&b).send().unwrap().status(), 200);
    // Refused credentials count against their address: guessing is limited too.
    let bogus = |_: ()| {
        c.head(s.url("/v1/stream/q"))
            .bearer_auth("dst_000000000000_".to_string() + &"0".repeat(64))
    };
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(bogus(()).send().unwrap().status().as_u16());
    }
    assert!(statuses.starts_with(&[401, 401, 401]) && statuses.contains(&429), "{statuses:?}");
    // The same on /metrics (protected in token mode): its refusals are counted too.
    let metrics: Vec<u16> = (0..5)
        .map(|_| {
            c.get(s.url("/metrics"))
                .bearer_auth("dst_000000000000_".to_string() + &"0".repeat(64))
                .send()
                .unwrap()
                .status()
                .as_u16()
        })
        .collect();
    assert!(metrics.contains(&429), "{metrics:?}");
    // After Retry-After, the first one is served again.
    std::thread::sleep(Duration::from_secs(retry));
    assert_eq!(head(&a).send().unwrap().status(), 200);
    std::thread::sleep(Duration::from_secs(3)); // back to a full burst

    // Live reads: two at once per token; the third (SSE or long-poll) is refused.
    let sse = |t: &str| {
        c.get(s.url("/v1/stream/q?offset=-1&live=sse"))
            .bearer_auth(t.to_string())
            .send()
            .unwrap()
    };
    let first = sse(&a);
    let second = sse(&a);
    assert_eq!((first.status().as_u16(), second.status().as_u16()), (200, 200));
    let third = sse(&a);
    assert_eq!(third.status(), 429);
    assert!(third.headers().contains_key("retry-after"));
    let poll = c
        .get(s.url("/v1/stream/q?offset=now&live=long-poll"))
        .bearer_auth(&a)
        .send()
        .unwrap();
    assert_eq!(poll.status(), 429);
    // The other token has its own slots.
    let other = sse(&b);
    assert_eq!(other.status(), 200);
    // Closing one stream frees its slot.
    drop(first);
    wait_until(Duration::from_secs(5), "a slot freed by a disconnect", || sse(&a).status() == 200);
    drop((second, other));
}

#[test]
fn none_mode_limits_each_address() {
    let _dir = tempdir::Dir::new();
    let s = Server::start(&[
        ("DS_HTTP__TRUST_PROXY_HEADERS", "true"),
        ("DS_QUOTAS__REQUESTS_PER_SECOND", "1"),
        ("DS_QUOTAS__REQUEST_BURST", "4"),
        ("DS_QUOTAS__LIVE_CONNECTIONS", "1"),
        ("DS_SERVER__LONG_POLL_TIMEOUT_MS", "500"),
    ]);
    let c = client();
    let r = c.put(s.url("/v1/stream/n")).header("X-Forwarded-For", "192.0.2.99").send().unwrap();
    assert_eq!(r.status(), 201);
    let head = |addr: &str| {
        c.head(s.url("/v1/stream/n"))
            .header("X-Forwarded-For", format!("198.51.100.9, {addr}"))
    };
    let (accepted, _) = until_refused(|| head("192.0.2.1"));
    assert!((4..=6).contains(&accepted), "accepted {accepted}");
    assert_eq!(head("192.0.2.2").send().unwrap().status(), 200, "another address is unaffected");
    // /healthz is never limited.
    for _ in 0..10 {
        let r = c.get(s.url("/healthz")).header("X-Forwarded-For", "192.0.2.1").send().unwrap();
        assert_eq!(r.status(), 200);
    }
    // One live read at a time for an address: an SSE stream held open refuses a long-poll from
    // the same address (not from another); its slot comes back when it is closed.
    let addr = "192.0.2.3";
    let held = c
        .get(s.url("/v1/stream/n?offset=-1&live=sse"))
        .header("X-Forwarded-For", addr)
        .send()
        .unwrap();
    assert_eq!(held.status(), 200);
    let poll = |addr: &str| {
        c.get(s.url("/v1/stream/n?offset=now&live=long-poll"))
            .header("X-Forwarded-For", addr)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(poll(addr), 429);
    assert_eq!(poll("192.0.2.4"), 204, "another address polls (and times out empty)");
    drop(held);
    wait_until(Duration::from_secs(5), "the slot freed by closing the stream", || poll(addr) == 204);
}

/// Without trusted proxy headers a client is the connection's own address: two loopback
/// addresses are two clients (the peer address reaches the quotas when they count).
#[test]
fn none_mode_counts_the_peer_address() {
    let _dir = tempdir::Dir::new();
    let s = Server::start(&[("DS_QUOTAS__REQUESTS_PER_SECOND", "1"), ("DS_QUOTAS__REQUEST_BURST", "4")]);
    let from = |ip: [u8; 4]| {
        Client::builder()
            .timeout(Duration::from_secs(10))
            .local_address(std::net::IpAddr::from(ip))
            .build()
            .unwrap()
    };
    let (a, b) = (from([127, 0, 0, 1]), from([127, 0, 0, 2]));
    assert_eq!(a.put(s.url("/v1/stream/p")).send().unwrap().status(), 201);
    // A forwarded address is not trusted here: it does not make another client.
    let (accepted, _) = until_refused(|| a.head(s.url("/v1/stream/p")).header("X-Forwarded-For", "192.0.2.1"));
    assert!((2..=5).contains(&accepted), "accepted {accepted}");
    assert_eq!(
        b.head(s.url("/v1/stream/p")).send().unwrap().status(),
        200,
        "another address is unaffected"
    );
}
