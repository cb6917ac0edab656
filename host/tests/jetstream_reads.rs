//! Reads in the jetstream mode across hosts: what a host fetched ahead for a catch-up reader
//! never outlives a change made through another host, and a reader waiting on a host that lost
//! its cluster connection (and with it the notification of an append) is woken when it is back.

mod common;

use std::time::Duration;

use reqwest::blocking::Client;

#[test]
fn bytes_fetched_ahead_never_outlive_a_delete_on_another_host() {
    let cluster = ds_nats_cluster::Cluster::start(3);
    // Reads of at most 4096 bytes (two appends), one per response: every read below the tail
    // leaves a fetch ahead.
    let (a, b) = common::jetstream_hosts(
        &cluster.urls(),
        "xahead",
        &[
            ("DS_LIMITS__MAX_READ_CHUNK_BYTES", "4096"),
            ("DS_LIMITS__MAX_READ_RESPONSE_BYTES", "4096"),
        ],
    );
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

/// Host B talks to node 2 only. Node 2 hangs (SIGSTOP) while B's long-poll waits; A appends, and
/// the notification routed to B through node 2 is lost when B gives up on it and reconnects to
/// another node. B must wake its readers after reconnecting: the long-poll answers the data,
/// not its 30 s timeout.
#[test]
fn a_reader_waiting_through_a_reconnect_is_woken() {
    let cluster = ds_nats_cluster::Cluster::start(3);
    let urls = cluster.urls();
    let node2 = urls.split(',').nth(2).unwrap().to_string();
    let start = |u: &str| {
        common::Server::start(&[
            ("DS_STORAGE__MODE", "jetstream"),
            ("DS_STORAGE__JETSTREAM__URLS", u),
            ("DS_STORAGE__JETSTREAM__NAMESPACE", "xwake"),
            ("DS_SERVER__LONG_POLL_TIMEOUT_MS", "30000"),
        ])
    };
    let a = start(&urls);
    let b = start(&node2);
    let c = Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    let r = c.put(a.url("/v1/stream/w")).header("Content-Type", "text/plain").send().unwrap();
    assert_eq!(r.status(), 201);
    let tail = c.head(b.url("/v1/stream/w")).send().unwrap().headers()["stream-next-offset"]
        .to_str()
        .unwrap()
        .to_string();
    let url = b.url(&format!("/v1/stream/w?offset={tail}&live=long-poll"));
    // A client's loop: long-poll from the tail it knows, again after a 204 or a 503 (the cluster
    // moving its leaders away from the hung node), until the data comes.
    let waiting = std::thread::spawn(move || {
        let c = Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        let started = std::time::Instant::now();
        let mut answers = Vec::new();
        loop {
            let r = c.get(&url).send().unwrap();
            let status = r.status().as_u16();
            answers.push(status);
            if status == 200 {
                return (r.text().unwrap(), started.elapsed(), answers);
            }
            assert!(started.elapsed() < Duration::from_secs(50), "no data: {answers:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    cluster.pause(2);
    // Appended through A (with a retry while the cluster elects leaders away from node 2).
    let appended = std::time::Instant::now();
    common::wait_until(Duration::from_secs(20), "an append through A", || {
        c.post(a.url("/v1/stream/w"))
            .header("Content-Type", "text/plain")
            .body("while B was away")
            .send()
            .is_ok_and(|r| r.status() == 204)
    });
    let (body, waited, answers) = waiting.join().unwrap();
    cluster.resume(2);
    assert_eq!(body, "while B was away");
    println!(
        "a long-poll on B through B's reconnect: the data {:?} after the append (answers {answers:?})",
        appended.elapsed()
    );
    // Without a wake after the reconnect, the first long-poll would have run to its 30 s timeout.
    assert!(
        waited < Duration::from_secs(25),
        "woken by its timeout, not the reconnect: {waited:?} {answers:?}"
    );
}
