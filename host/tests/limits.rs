//! Operator limits through the binary: `limits.max_stream_bytes` (413) in every mode and
//! `limits.max_memory_bytes` (507) in memory mode, both as problem+json; what
//! `limits.max_read_chunk_bytes` bounds.

mod common;

use std::time::Duration;

use common::{tempdir, Server};
use reqwest::blocking::Client;

fn client() -> Client {
    Client::builder().timeout(Duration::from_secs(10)).build().unwrap()
}

#[test]
fn max_stream_bytes_in_every_mode() {
    for mode in ["memory", "file-fast", "file-durable", "acid"] {
        let dir = tempdir::Dir::new();
        let s = Server::start(&[
            ("DS_STORAGE__MODE", mode),
            ("DS_STORAGE__DATA_DIR", dir.path.to_str().unwrap()),
            ("DS_LIMITS__MAX_STREAM_BYTES", "100"),
        ]);
        let c = client();
        let url = s.url("/v1/stream/lim");
        assert_eq!(
            c.put(&url)
                .header("Content-Type", "text/plain")
                .body("x".repeat(50))
                .send()
                .unwrap()
                .status(),
            201
        );
        let r = c
            .post(&url)
            .header("Content-Type", "text/plain")
            .body("y".repeat(51))
            .send()
            .unwrap();
        assert_eq!(r.status(), 413, "{mode}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        assert_eq!(
            c.post(&url)
                .header("Content-Type", "text/plain")
                .body("z".repeat(50))
                .send()
                .unwrap()
                .status(),
            204,
            "{mode}: exactly at the limit"
        );
        assert_eq!(
            c.put(s.url("/v1/stream/big"))
                .header("Content-Type", "text/plain")
                .body("x".repeat(101))
                .send()
                .unwrap()
                .status(),
            413,
            "{mode}: initial body"
        );
        assert_eq!(
            c.get(&url).send().unwrap().text().unwrap().len(),
            100,
            "{mode}: nothing partial stored"
        );
    }
}

#[test]
fn max_memory_bytes_in_memory_mode() {
    // The server's internal state (signing keys, about 200 bytes) counts too.
    let s = Server::start(&[("DS_LIMITS__MAX_MEMORY_BYTES", "2000")]);
    let c = client();
    let put = |name: &str, n: usize| {
        c.put(s.url(&format!("/v1/stream/{name}")))
            .header("Content-Type", "text/plain")
            .body("x".repeat(n))
            .send()
            .unwrap()
            .status()
    };
    for i in 0..3 {
        assert_eq!(put(&format!("m{i}"), 500), 201);
    }
    let post = || {
        c.post(s.url("/v1/stream/m0"))
            .header("Content-Type", "text/plain")
            .body("y".repeat(400))
            .send()
            .unwrap()
    };
    let r = post();
    assert_eq!(r.status(), 507);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    assert_eq!(c.get(s.url("/v1/stream/m0")).send().unwrap().status(), 200, "reads keep working");
    assert_eq!(c.delete(s.url("/v1/stream/m1")).send().unwrap().status(), 204);
    assert_eq!(post().status(), 204, "deleting frees memory");
}

/// `limits.max_read_chunk_bytes` bounds how much a read gathers, not an append: a read stops at
/// the first append that would take it past the bound, but always returns at least one whole
/// append (README and config/default.toml say so).
#[test]
fn a_read_chunk_holds_at_least_one_whole_append() {
    for mode in ["memory", "file-durable", "acid"] {
        let dir = tempdir::Dir::new();
        let s = Server::start(&[
            ("DS_STORAGE__MODE", mode),
            ("DS_STORAGE__DATA_DIR", dir.path.to_str().unwrap()),
            ("DS_LIMITS__MAX_READ_CHUNK_BYTES", "4096"),
        ]);
        let c = client();
        let url = s.url("/v1/stream/chunks");
        let put = c.put(&url).header("Content-Type", "text/plain").send().unwrap();
        assert_eq!(put.status(), 201);
        for body in ["a".repeat(10_000), "b".repeat(10_000), "c".repeat(100)] {
            let r = c.post(&url).header("Content-Type", "text/plain").body(body).send().unwrap();
            assert_eq!(r.status(), 204);
        }
        let first = c.get(format!("{url}?offset=-1")).send().unwrap();
        let next = first.headers()["stream-next-offset"].to_str().unwrap().to_string();
        assert_eq!(first.text().unwrap(), "a".repeat(10_000), "{mode}: the first append whole, alone");
        let second = c.get(format!("{url}?offset={next}")).send().unwrap();
        assert_eq!(second.text().unwrap().len(), 10_000, "{mode}: the second append whole, alone");
    }
}
