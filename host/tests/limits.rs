//! Operator limits through the binary: `limits.max_stream_bytes` (413) in every mode and
//! `limits.max_memory_bytes` (507) in memory mode, both as problem+json; what
//! `limits.max_read_chunk_bytes` and `limits.max_read_response_bytes` bound.

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

/// A server in `mode` reading 4096 bytes at a time, answering up to `response` bytes.
fn reads_of_4096(mode: &str, dir: &tempdir::Dir, response: &str) -> Server {
    Server::start(&[
        ("DS_STORAGE__MODE", mode),
        ("DS_STORAGE__DATA_DIR", dir.path.to_str().unwrap()),
        ("DS_LIMITS__MAX_READ_CHUNK_BYTES", "4096"),
        ("DS_LIMITS__MAX_READ_RESPONSE_BYTES", response),
    ])
}

/// `limits.max_read_chunk_bytes` bounds how much a read gathers, not an append: a read stops at
/// the first append that would take it past the bound, but always returns at least one whole
/// append (README and config/default.toml say so).
#[test]
fn a_read_chunk_holds_at_least_one_whole_append() {
    for mode in ["memory", "file-durable", "acid"] {
        let dir = tempdir::Dir::new();
        let s = reads_of_4096(mode, &dir, "4096");
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

/// Follows `Stream-Next-Offset` from the start to the tail: each response's body.
fn catch_up_all(c: &Client, url: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut offset = "-1".to_string();
    loop {
        let r = c.get(format!("{url}?offset={offset}")).send().unwrap();
        assert_eq!(r.status(), 200);
        let len: usize = r.headers()["content-length"].to_str().unwrap().parse().unwrap();
        let done = r.headers().get("stream-up-to-date").is_some();
        offset = r.headers()["stream-next-offset"].to_str().unwrap().to_string();
        let body = r.bytes().unwrap().to_vec();
        assert_eq!(body.len(), len, "Content-Length is the body's length");
        out.push(body);
        if done {
            return out;
        }
    }
}

/// A catch-up response runs on past one read, up to `limits.max_read_response_bytes`, read a
/// chunk at a time while it is sent: a byte stream's stops at the bound (inside an append if
/// need be) and the next read goes on from there; a JSON stream's runs on only to a tail within
/// the bound, so it always ends on a message.
#[test]
fn a_catch_up_response_runs_on_in_pieces() {
    for mode in ["memory", "file-durable", "acid"] {
        let dir = tempdir::Dir::new();
        let s = reads_of_4096(mode, &dir, "16384");
        let c = client();
        let bytes_url = s.url("/v1/stream/pieces");
        assert_eq!(c.put(&bytes_url).header("Content-Type", "text/plain").send().unwrap().status(), 201);
        let mut expected = Vec::new();
        for i in 0..300 {
            let body = format!("{i:0100}");
            expected.extend_from_slice(body.as_bytes());
            let r = c.post(&bytes_url).header("Content-Type", "text/plain").body(body).send().unwrap();
            assert_eq!(r.status(), 204);
        }
        let answers = catch_up_all(&c, &bytes_url);
        let sizes: Vec<usize> = answers.iter().map(Vec::len).collect();
        assert_eq!(sizes, [16384, 30000 - 16384], "{mode}: bounded by the response size, not one read");
        assert_eq!(answers.concat(), expected, "{mode}: every byte once, in order");

        let json_url = s.url("/v1/stream/pieces-json");
        assert_eq!(
            c.put(&json_url).header("Content-Type", "application/json").send().unwrap().status(),
            201
        );
        let message = |i: usize| format!("{{\"i\":{i},\"pad\":\"{}\"}}", "p".repeat(80));
        let append = |messages: std::ops::Range<usize>| {
            for i in messages {
                let r = c
                    .post(&json_url)
                    .header("Content-Type", "application/json")
                    .body(message(i))
                    .send()
                    .unwrap();
                assert_eq!(r.status(), 204);
            }
        };
        append(0..100);
        // 100 messages of about 100 bytes: past one read (4096) but within the response bound.
        let answers = catch_up_all(&c, &json_url);
        assert_eq!(answers.len(), 1, "{mode}: a JSON tail within the bound comes in one response");
        let values: Vec<serde_json::Value> = serde_json::from_slice(&answers[0]).unwrap();
        assert_eq!(values.len(), 100);
        assert!(values.iter().enumerate().all(|(i, v)| v["i"] == i), "{mode}: in order");
        append(100..300);
        // A tail past the bound: one read per response (its brackets and its separators make
        // the body one byte longer) until the rest fits, each a whole array of whole messages.
        let answers = catch_up_all(&c, &json_url);
        let mut all = Vec::new();
        let (last, runs) = answers.split_last().unwrap();
        assert!(last.len() > 4097 && last.len() <= 16385, "{mode}: the rest in one response");
        for body in runs {
            assert!(body.len() <= 4097, "{mode}: a JSON answer with the tail past the bound is one read");
        }
        for body in &answers {
            all.extend(serde_json::from_slice::<Vec<serde_json::Value>>(body).unwrap());
        }
        assert_eq!(all.len(), 300, "{mode}");
        assert!(
            all.iter().enumerate().all(|(i, v)| v["i"] == i),
            "{mode}: every message once, in order"
        );
    }
}
