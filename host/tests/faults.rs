//! The fault-injection endpoint for client test suites (issue 29 part 2), through the real
//! binary: each fault kind, the endpoint's answers to bad input, the reserved name, and the
//! endpoint absent when off.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::Server;
use reqwest::blocking::Client;

fn on() -> Server {
    Server::start(&[("DS_TESTING__FAULT_INJECTION", "true"), ("DS_STORAGE__MODE", "memory")])
}

fn client() -> Client {
    Client::builder().timeout(Duration::from_secs(20)).build().unwrap()
}

fn inject(s: &Server, body: &str) -> reqwest::blocking::Response {
    client()
        .post(s.url("/v1/stream/_test/inject-error"))
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .unwrap()
}

fn create(s: &Server, name: &str, ct: &str, body: &str) {
    let r = client()
        .put(s.url(&format!("/v1/stream/{name}")))
        .header("Content-Type", ct)
        .body(body.to_string())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "create {name}");
}

fn get(s: &Server, path: &str) -> reqwest::blocking::Response {
    client().get(s.url(&format!("/v1/stream/{path}"))).send().unwrap()
}

#[test]
fn statuses_counts_methods_and_clearing() {
    let s = on();
    create(&s, "f/a", "text/plain", "hello world");
    let r = inject(&s, r#"{"path":"/f/a","status":503,"retryAfter":2,"count":2}"#);
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().unwrap(), r#"{"ok":true}"#);
    for _ in 0..2 {
        let r = get(&s, "f/a");
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["retry-after"], "2");
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    }
    assert_eq!(get(&s, "f/a").status(), 200, "a count of 2 is used up after two requests");

    // Another method's fault is neither applied nor used up; the path may include the base.
    inject(&s, r#"{"path":"/v1/stream/f/a","status":500,"method":"POST"}"#);
    assert_eq!(get(&s, "f/a").status(), 200);
    let post = |body: &str| {
        client()
            .post(s.url("/v1/stream/f/a"))
            .header("Content-Type", "text/plain")
            .body(body.to_string())
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(post("x"), 500);
    assert_eq!(post("y"), 204);

    // A new fault for a path replaces the old one; DELETE clears them all.
    inject(&s, r#"{"path":"/f/a","status":503,"count":5}"#);
    inject(&s, r#"{"path":"/f/a","status":418,"count":5}"#);
    assert_eq!(get(&s, "f/a").status(), 418);
    let r = client().delete(s.url("/v1/stream/_test/inject-error")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(get(&s, "f/a").status(), 200);

    // A probability of 0 never fires and is never used up.
    inject(&s, r#"{"path":"/f/a","status":503,"probability":0}"#);
    for _ in 0..5 {
        assert_eq!(get(&s, "f/a").status(), 200);
    }
}

#[test]
fn delays_and_dropped_connections() {
    let s = on();
    create(&s, "f/d", "text/plain", "abc");
    inject(&s, r#"{"path":"/f/d","delayMs":400,"jitterMs":100}"#);
    let t = Instant::now();
    let r = get(&s, "f/d");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().unwrap(), "abc");
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(400) && took < Duration::from_secs(5), "{took:?}");

    inject(&s, r#"{"path":"/f/d","dropConnection":true}"#);
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    sock.write_all(b"GET /v1/stream/f/d HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    let n = match sock.read_to_end(&mut buf) {
        Ok(_) => buf.len(),
        Err(e) => {
            assert_ne!(e.kind(), std::io::ErrorKind::WouldBlock, "the connection was left open");
            0
        }
    };
    assert_eq!(n, 0, "not a byte before the close: {:?}", String::from_utf8_lossy(&buf));
    // The fault was used once: the next request is served.
    assert_eq!(get(&s, "f/d").status(), 200);
    assert!(s.log_text().lines().all(|l| !l.contains("panicked")));
}

#[test]
fn damaged_bodies_and_injected_sse_events() {
    let s = on();
    create(&s, "f/t", "text/plain", "hello world");
    inject(&s, r#"{"path":"/f/t","truncateBodyBytes":5}"#);
    let r = get(&s, "f/t?offset=-1");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().unwrap(), "hello");

    create(&s, "f/j", "application/json", r#"[{"a":1},{"b":"two"}]"#);
    inject(&s, r#"{"path":"/f/j","corruptBody":true}"#);
    let body = get(&s, "f/j?offset=-1").text().unwrap();
    assert!(body.starts_with("XY"), "{body}");
    assert!(serde_json::from_str::<serde_json::Value>(&body).is_err());
    let clean = get(&s, "f/j?offset=-1").text().unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&clean).unwrap(),
        serde_json::json!([{"a":1},{"b":"two"}])
    );

    // A long-poll answer with data is damaged too; an answer that is not a 200 read is not.
    inject(&s, r#"{"path":"/f/t","truncateBodyBytes":3,"count":2}"#);
    assert_eq!(client().head(s.url("/v1/stream/f/t")).send().unwrap().status(), 200);
    let r = get(&s, "f/t?offset=-1&live=long-poll");
    assert_eq!(r.text().unwrap(), "hel");

    create(&s, "f/sse", "text/plain", "data!");
    inject(
        &s,
        r#"{"path":"/f/sse","injectSseEvent":{"eventType":"mystery","data":"{\"x\":1}"}}"#,
    );
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    sock.write_all(b"GET /v1/stream/f/sse?offset=-1&live=sse HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && !String::from_utf8_lossy(&got).contains("data!") {
        match sock.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&got);
    let (head, body) = text.split_once("\r\n\r\n").expect("an answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // The body is chunked: the injected event is the first thing in it.
    let first = body.split_once("\r\n").map(|(_, rest)| rest).unwrap_or("");
    assert!(first.starts_with("event: mystery\ndata: {\"x\":1}\n\n"), "{body}");
    assert!(body.contains("data!"), "{body}");
}

#[test]
fn bad_input_and_the_reserved_name() {
    let s = on();
    for body in [
        "not json",
        "{}",
        r#"{"path":"/a"}"#,
        r#"{"path":"/a","status":42}"#,
        r#"{"path":"/a","status":503,"count":0}"#,
        r#"{"path":"/a","status":503,"probability":2}"#,
    ] {
        let r = inject(&s, body);
        assert_eq!(r.status(), 400, "{body}");
        assert_eq!(r.headers()["content-type"], "application/problem+json", "{body}");
    }
    let r = get(&s, "_test/inject-error");
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "POST, DELETE");
    let r = client()
        .put(s.url("/v1/stream/_test/mine"))
        .header("Content-Type", "text/plain")
        .send()
        .unwrap();
    assert_eq!(r.status(), 404, "'_test' is reserved while the endpoint is on");
    assert!(s.log_text().contains("fault_injection is on"));
}

#[test]
fn absent_when_off() {
    let s = Server::start(&[("DS_STORAGE__MODE", "memory")]);
    let r = inject(&s, r#"{"path":"/a","status":503}"#);
    assert_eq!(r.status(), 404, "no endpoint: an ordinary (missing) stream");
    let r = client()
        .put(s.url("/v1/stream/_test/inject-error"))
        .header("Content-Type", "text/plain")
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "no name is reserved");
}

#[test]
fn token_mode_needs_admin_to_set_faults() {
    let data = common::tempdir::Dir::new();
    let tokens = data.path.join("tokens.json");
    let reader = common::issue_token(&tokens, &["f/:read"]);
    let admin = common::issue_token(&tokens, &["*:all"]);
    let s = Server::start(&[
        ("DS_TESTING__FAULT_INJECTION", "true"),
        ("DS_STORAGE__MODE", "memory"),
        ("DS_AUTH__MODE", "token"),
        ("DS_AUTH__TOKENS_FILE", tokens.to_str().unwrap()),
    ]);
    let post = |token: Option<&str>| {
        let mut r = client()
            .post(s.url("/v1/stream/_test/inject-error"))
            .header("Content-Type", "application/json")
            .body(r#"{"path":"/f/x","status":503}"#);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().unwrap().status()
    };
    assert_eq!(post(None), 401);
    assert_eq!(post(Some(&reader)), 403);
    assert_eq!(post(Some(&admin)), 200);
}
