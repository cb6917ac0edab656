//! Operator limits through the binary: `limits.max_stream_bytes` (413) in every mode and
//! `limits.max_memory_bytes` (507) in memory mode, both as problem+json.

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
