//! Retention through the real binary and plugins (memory, file-fast, file-durable, acid): a size
//! rule and an age rule from `DS_RETENTION__RULES`; reads below the earliest retained offset
//! answer 410 problem+json (catch-up and long-poll), `offset=-1` starts at the earliest retained
//! data (catch-up and SSE), offsets and the tail are unchanged, a fork keeps what it inherited
//! (its source is not trimmed below it until it goes), the metrics count what went, and (durable
//! modes) a restart keeps the trimmed start.

mod common;

use std::time::Duration;

use common::{tempdir, Server};
use reqwest::blocking::Client;

const RULES: &str = r#"[{"prefix": "cap/", "max_bytes": 3000}, {"prefix": "age/", "max_age_secs": 2}]"#;

fn start(mode: &str, dir: &std::path::Path) -> Server {
    Server::start(&[
        ("DS_STORAGE__MODE", mode),
        ("DS_STORAGE__DATA_DIR", dir.to_str().unwrap()),
        ("DS_RETENTION__INTERVAL_MS", "100"),
        ("DS_RETENTION__RULES", RULES),
    ])
}

fn client() -> Client {
    Client::builder().timeout(Duration::from_secs(10)).build().unwrap()
}

fn offset(pos: u64) -> String {
    format!("0000000000000000_{pos:016}")
}

fn put(c: &Client, s: &Server, name: &str) {
    let r = c
        .put(s.url(&format!("/v1/stream/{name}")))
        .header("Content-Type", "application/octet-stream")
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "create {name}");
}

fn post(c: &Client, s: &Server, name: &str, body: Vec<u8>) {
    let r = c
        .post(s.url(&format!("/v1/stream/{name}")))
        .header("Content-Type", "application/octet-stream")
        .body(body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 204, "append to {name}");
}

/// (status, body, Stream-Next-Offset) of a catch-up read.
fn get(c: &Client, s: &Server, name: &str, query: &str) -> (u16, Vec<u8>, String) {
    let r = c.get(s.url(&format!("/v1/stream/{name}?{query}"))).send().unwrap();
    let status = r.status().as_u16();
    let next = r
        .headers()
        .get("stream-next-offset")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    if status == 410 {
        assert_eq!(r.headers()["content-type"], "application/problem+json");
    }
    (status, r.bytes().unwrap().to_vec(), next)
}

fn record(i: u8) -> Vec<u8> {
    vec![i; 1000]
}

fn retention(mode: &str) {
    let dir = tempdir::Dir::new();
    let server = start(mode, &dir.path);
    let c = client();

    // Size: ten records of 1000 bytes under a 3000-byte rule keep the last three.
    put(&c, &server, "cap/a");
    for i in 0..10 {
        post(&c, &server, "cap/a", record(i));
    }
    let kept: Vec<u8> = (7..10).flat_map(record).collect();
    common::wait_until(Duration::from_secs(10), "the size rule trimmed cap/a", || {
        get(&c, &server, "cap/a", "offset=-1").1 == kept
    });
    let (status, body, next) = get(&c, &server, "cap/a", "offset=-1");
    assert_eq!((status, body.len(), next.as_str()), (200, 3000, offset(10_000).as_str()));
    // Offsets are unchanged: the earliest retained record is read at its own offset...
    assert_eq!(get(&c, &server, "cap/a", &format!("offset={}", offset(7000))).1, kept);
    // ...and below it the answer is 410, for catch-up and long-poll alike.
    assert_eq!(get(&c, &server, "cap/a", &format!("offset={}", offset(0))).0, 410);
    assert_eq!(get(&c, &server, "cap/a", &format!("offset={}", offset(6999))).0, 410);
    let lp = get(&c, &server, "cap/a", &format!("offset={}&live=long-poll", offset(1000)));
    assert_eq!(lp.0, 410, "a long-poll behind the trim");
    // SSE from -1 begins at the earliest retained data.
    let mut sse = c
        .get(server.url("/v1/stream/cap/a?offset=-1&live=sse"))
        .timeout(Duration::from_secs(3))
        .send()
        .unwrap();
    assert_eq!(sse.status(), 200);
    let mut seen = Vec::new();
    let mut buf = [0u8; 8192];
    while !String::from_utf8_lossy(&seen).contains(&offset(10_000)) {
        match std::io::Read::read(&mut sse, &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&seen).into_owned();
    assert!(text.contains(&offset(10_000)), "SSE from -1 reaches the tail: {text}");
    drop(sse);
    let sse_old = c
        .get(server.url(&format!("/v1/stream/cap/a?offset={}&live=sse", offset(0))))
        .send()
        .unwrap();
    assert_eq!(sse_old.status(), 410, "SSE behind the trim");
    // The stream goes on.
    post(&c, &server, "cap/a", record(10));
    common::wait_until(Duration::from_secs(10), "cap/a trimmed again", || {
        get(&c, &server, "cap/a", &format!("offset={}", offset(7000))).0 == 410
    });
    let head = c.head(server.url("/v1/stream/cap/a")).send().unwrap();
    assert_eq!(head.headers()["stream-next-offset"].to_str().unwrap(), offset(11_000));

    // Forks: a fork reads its source from 0, so the source keeps everything while it lives
    // (forked while still under the limit, filled past it after).
    put(&c, &server, "cap/src");
    post(&c, &server, "cap/src", record(0));
    let r = c
        .put(server.url("/v1/stream/forks/f"))
        .header("Content-Type", "application/octet-stream")
        .header("Stream-Forked-From", "/v1/stream/cap/src")
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "fork: {}", r.text().unwrap_or_default());
    for i in 1..4 {
        post(&c, &server, "cap/src", record(i));
    }
    std::thread::sleep(Duration::from_millis(400));
    let all: Vec<u8> = (0..4).flat_map(record).collect();
    assert_eq!(
        get(&c, &server, "cap/src", "offset=-1").1,
        all,
        "the source keeps what its fork reads"
    );
    assert_eq!(get(&c, &server, "forks/f", "offset=-1").1, record(0));
    assert_eq!(c.delete(server.url("/v1/stream/forks/f")).send().unwrap().status(), 204);
    let last3: Vec<u8> = (1..4).flat_map(record).collect();
    common::wait_until(Duration::from_secs(10), "cap/src trimmed once its fork is gone", || {
        get(&c, &server, "cap/src", "offset=-1").1 == last3
    });

    // Age: data older than two seconds goes, newer stays.
    put(&c, &server, "age/x");
    post(&c, &server, "age/x", b"old-1".to_vec());
    post(&c, &server, "age/x", b"old-2".to_vec());
    std::thread::sleep(Duration::from_millis(2600));
    post(&c, &server, "age/x", b"new".to_vec());
    common::wait_until(Duration::from_secs(10), "the age rule trimmed age/x", || {
        get(&c, &server, "age/x", "offset=-1").1 == b"new"
    });
    assert_eq!(get(&c, &server, "age/x", &format!("offset={}", offset(0))).0, 410);

    // Streams under no rule are left alone.
    put(&c, &server, "other");
    for i in 0..5 {
        post(&c, &server, "other", record(i));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(get(&c, &server, "other", "offset=-1").1.len(), 5000);
    assert!(common::metric(server.port, "ds_retention_dropped_bytes_total") >= 8000);
    assert!(common::metric(server.port, "ds_retention_trims_total") >= 3);
    assert!(server.log_text().lines().all(|l| !l.contains("panicked")));

    if mode != "memory" {
        // A restart keeps the trimmed start.
        let port = server.port;
        drop(server);
        let _ = port;
        let server = start(mode, &dir.path);
        assert_eq!(get(&c, &server, "cap/a", &format!("offset={}", offset(0))).0, 410);
        let from: Vec<u8> = (8..11).flat_map(record).collect();
        assert_eq!(get(&c, &server, "cap/a", "offset=-1").1, from, "{mode}: after a restart");
    }
    println!("{mode}: retention by size and age, 410 below the earliest offset, forks held, restart kept");
}

#[test]
fn retention_memory() {
    retention("memory");
}

#[test]
fn retention_file_fast() {
    retention("file-fast");
}

#[test]
fn retention_file_durable() {
    retention("file-durable");
}

#[test]
fn retention_acid() {
    retention("acid");
}
