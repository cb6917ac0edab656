//! Reads in the jetstream mode across hosts: what a host fetched ahead for a catch-up reader
//! never outlives a change made through another host.

mod common;

use std::time::Duration;

use reqwest::blocking::Client;

#[test]
fn bytes_fetched_ahead_never_outlive_a_delete_on_another_host() {
    let cluster = ds_nats_cluster::Cluster::start(3);
    // Reads of at most 4096 bytes (two appends): every read below the tail leaves a fetch ahead.
    let (a, b) = common::jetstream_hosts(&cluster.urls(), "xahead", &[("DS_LIMITS__MAX_READ_CHUNK_BYTES", "4096")]);
    let c = Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let fill = |byte: &str| {
        let r = c.put(b.url("/v1/stream/r")).header("Content-Type", "text/plain").send().unwrap();
        assert_eq!(r.status(), 201);
        for _ in 0..6 {
            let r = c
                .post(b.url("/v1/stream/r"))
                .header("Content-Type", "text/plain")
                .body(byte.repeat(2048))
                .send()
                .unwrap();
            assert_eq!(r.status(), 204, "append through B");
        }
    };
    fill("a");
    // A reads the first chunk, then continues: both served, the second from what A fetched ahead.
    let r = c.get(a.url("/v1/stream/r?offset=-1")).send().unwrap();
    let next = r.headers()["stream-next-offset"].to_str().unwrap().to_string();
    assert_eq!(r.text().unwrap(), "a".repeat(4096));
    let r = c.get(a.url(&format!("/v1/stream/r?offset={next}"))).send().unwrap();
    let next = r.headers()["stream-next-offset"].to_str().unwrap().to_string();
    assert_eq!(r.text().unwrap(), "a".repeat(4096), "the continued read on A");
    // B deletes the stream and creates it again with other bytes; A kept a fetch ahead of the old one.
    assert_eq!(c.delete(b.url("/v1/stream/r")).send().unwrap().status(), 204);
    fill("z");
    let r = c.get(a.url(&format!("/v1/stream/r?offset={next}"))).send().unwrap();
    let status = r.status();
    let body = r.text().unwrap();
    assert!(
        !body.contains('a'),
        "A served bytes of the deleted stream ({status}, {} bytes)",
        body.len()
    );
    let first = c.get(a.url("/v1/stream/r?offset=-1")).send().unwrap().text().unwrap();
    assert_eq!(first, "z".repeat(4096), "the new stream read through A");
}
