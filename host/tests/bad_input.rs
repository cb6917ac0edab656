//! Bad input through the real binary: every case gets a 4xx problem+json (or a closed
//! connection), never a 5xx, a panic or unbounded memory.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{http, http_bytes, status_of, Server};

fn req(s: &Server, method: &str, path: &str, headers: &str, body: &str) -> String {
    http(
        s.port,
        &format!(
            "{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: {}\r\n{headers}\r\n{body}",
            body.len()
        ),
    )
}

fn assert_problem(resp: &str, status: u16) {
    assert_eq!(status_of(resp), status, "{resp}");
    assert!(
        resp.to_ascii_lowercase().contains("content-type: application/problem+json"),
        "{resp}"
    );
}

#[test]
fn hostile_stream_names() {
    let s = Server::start(&[]);
    for path in [
        "/v1/stream/..",
        "/v1/stream/a/../b",
        "/v1/stream/%2e%2e",
        "/v1/stream/a/%2E%2E/b",
        "/v1/stream/a%00b",
        "/v1/stream/a%0d%0ab",
        "/v1/stream/a//b",
        "/v1/stream/%ff%fe",
    ] {
        let r = req(&s, "PUT", path, "", "");
        assert_problem(&r, 400);
    }
    let long = format!("/v1/stream/{}", "a".repeat(1100));
    assert_problem(&req(&s, "PUT", &long, "", ""), 400);
    let deep = format!("/v1/stream/{}", vec!["a"; 40].join("/"));
    assert_problem(&req(&s, "PUT", &deep, "", ""), 400);
    // A raw CR or LF in the request line never reaches a handler.
    let r = http(s.port, "PUT /v1/stream/a\rb HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert!(r.is_empty() || status_of(&r) == 400, "{r}");
}

#[test]
fn malformed_offsets() {
    let s = Server::start(&[]);
    assert_eq!(
        status_of(&req(&s, "PUT", "/v1/stream/o", "Content-Type: text/plain\r\n", "abc")),
        201
    );
    for q in [
        "offset=",
        "offset=abc",
        "offset=-2",
        "offset=0,1",
        "offset=1&offset=2",
        "offset=..%2Fx",
        "offset=%00",
        "live=sse",
        "offset=now&live=bogus",
    ] {
        assert_problem(&req(&s, "GET", &format!("/v1/stream/o?{q}"), "", ""), 400);
    }
    assert_problem(
        &req(&s, "GET", "/v1/stream/o?offset=0000000000000000_0000000000000099", "", ""),
        400,
    );
}

#[test]
fn producer_and_seq_headers() {
    let s = Server::start(&[]);
    req(&s, "PUT", "/v1/stream/p", "Content-Type: text/plain\r\n", "");
    let ct = "Content-Type: text/plain\r\n";
    for h in [
        "Producer-Id: a\r\nProducer-Epoch: 0\r\n",
        "Producer-Id: \r\nProducer-Epoch: 0\r\nProducer-Seq: 0\r\n",
        "Producer-Id: a\r\nProducer-Epoch: 01\r\nProducer-Seq: 0\r\n",
        "Producer-Id: a\r\nProducer-Epoch: 0\r\nProducer-Seq: 9007199254740992\r\n",
        "Producer-Id: a\r\nProducer-Epoch: 0\r\nProducer-Seq: 0\r\nProducer-Seq: 1\r\n",
        "Producer-Id: a\r\nProducer-Id: b\r\nProducer-Epoch: 0\r\nProducer-Seq: 0\r\n",
        "Stream-Seq: 1\r\nStream-Seq: 2\r\n",
    ] {
        assert_problem(&req(&s, "POST", "/v1/stream/p", &format!("{ct}{h}"), "x"), 400);
    }
}

#[test]
fn invalid_and_deep_json() {
    let s = Server::start(&[]);
    req(&s, "PUT", "/v1/stream/j", "Content-Type: application/json\r\n", "");
    let ct = "Content-Type: application/json\r\n";
    assert_problem(&req(&s, "POST", "/v1/stream/j", ct, "{nope"), 400);
    assert_problem(&req(&s, "POST", "/v1/stream/j", ct, "[]"), 400);
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert_problem(&req(&s, "POST", "/v1/stream/j", ct, &deep), 400);
    assert_problem(&req(&s, "PUT", "/v1/stream/j2", ct, &deep), 400);
}

#[test]
fn body_over_limit_is_refused_up_front_and_while_streaming() {
    let s = Server::start(&[("DS_LIMITS__MAX_BODY_BYTES", "1024")]);
    req(&s, "PUT", "/v1/stream/big", "Content-Type: text/plain\r\n", "");
    // Declared too large: refused before the body is read.
    let r = http(
        s.port,
        "POST /v1/stream/big HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 1000000000\r\n\r\n",
    );
    assert_problem(&r, 413);
    // Chunked, no length: counted while streaming.
    let mut raw =
        b"POST /v1/stream/big HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    for _ in 0..4 {
        raw.extend_from_slice(b"200\r\n");
        raw.extend_from_slice(&[b'x'; 0x200]);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    assert_problem(&http_bytes(s.port, &raw), 413);
    // Nothing was stored.
    let r = req(&s, "GET", "/v1/stream/big", "", "");
    assert_eq!(status_of(&r), 200);
    assert!(r.contains("stream-next-offset: 0000000000000000_0000000000000000"), "{r}");
}

#[test]
fn idle_connection_is_closed_after_header_timeout() {
    let s = Server::start(&[("DS_SERVER__HEADER_READ_TIMEOUT_SECS", "1")]);
    let mut sock = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    sock.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let _ = sock.read_to_end(&mut buf);
    assert!(started.elapsed() < Duration::from_secs(5), "slow client must be cut off");
    let text = String::from_utf8_lossy(&buf);
    assert!(text.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
}

#[test]
fn unknown_route_and_method_are_problems() {
    let s = Server::start(&[]);
    assert_problem(&req(&s, "GET", "/nowhere", "", ""), 404);
    assert_problem(&req(&s, "PATCH", "/v1/stream/x", "", ""), 405);
    assert_problem(&req(&s, "GET", "/v1/stream/missing", "", ""), 404);
    // A route that exists, with a method it does not answer (a newcomer's `PUT /metrics`).
    let put = req(&s, "PUT", "/metrics", "", "");
    assert_problem(&put, 405);
    assert!(put.to_ascii_lowercase().contains("allow: get"), "{put}");
    // Also with streams at the root (base path `/`), where /metrics sits beside them.
    let root = Server::start(&[("DS_HTTP__STREAM_BASE_PATH", "/")]);
    assert_problem(&req(&root, "PUT", "/metrics", "", ""), 405);
    assert_problem(&req(&root, "POST", "/healthz", "", ""), 405);
}
