//! Retention and live backups in the jetstream mode: two real server processes on one real
//! three-node NATS cluster, both applying a size and an age rule. A trim made by either host is seen by the
//! other (410 below the earliest retained offset, `offset=-1` from it, even where the stream's
//! record was cached before the trim), forks made on the other host keep what they inherit, a
//! fork of trimmed data starts at what is retained, and `export --url` / `import --url` carry a
//! trimmed stream's offsets and producer state into the cluster and out again.

mod common;

use std::time::Duration;

use common::Server;
use reqwest::blocking::Client;

const RULES: &str = r#"[{"prefix": "cap/", "max_bytes": 3000}, {"prefix": "age/", "max_age_secs": 2}]"#;

fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn client() -> Client {
    Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

fn offset(pos: u64) -> String {
    format!("0000000000000000_{pos:016}")
}

fn put(c: &Client, s: &Server, name: &str, fork_of: Option<&str>) {
    let mut r = c
        .put(s.url(&format!("/v1/stream/{name}")))
        .header("Content-Type", "application/octet-stream");
    if let Some(src) = fork_of {
        r = r.header("Stream-Forked-From", format!("/v1/stream/{src}"));
    }
    let r = r.send().unwrap();
    assert_eq!(r.status(), 201, "create {name}: {}", r.text().unwrap_or_default());
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

/// (status, body) of a catch-up read. A read that a concurrent trim cuts short is asked again:
/// a response longer than one engine read ends early, short of its `Content-Length`, when the
/// stream stops serving its bytes mid-way (`http/pieces.rs`: an incomplete answer, never a
/// wrong one), and the other host's retention may trim while this one answers.
fn get(c: &Client, s: &Server, name: &str, query: &str) -> (u16, Vec<u8>) {
    for _ in 0..20 {
        let r = c.get(s.url(&format!("/v1/stream/{name}?{query}"))).send().unwrap();
        let status = r.status().as_u16();
        if status == 410 {
            assert_eq!(r.headers()["content-type"], "application/problem+json");
        }
        match r.bytes() {
            Ok(body) => return (status, body.to_vec()),
            Err(e) => {
                eprintln!("a read of {name} was cut short ({e}); asking again");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    panic!("20 reads of {name} in a row were cut short");
}

fn record(i: u8) -> Vec<u8> {
    vec![i; 1000]
}

#[test]
fn retention_across_hosts_on_a_real_cluster() {
    let _serial = serial();
    let cluster = ds_nats_cluster::Cluster::start(3);
    let (a, b) = common::jetstream_hosts(
        &cluster.urls(),
        "xret",
        &[("DS_RETENTION__INTERVAL_MS", "200"), ("DS_RETENTION__RULES", RULES)],
    );
    let c = client();

    // B caches the stream's record before any trim.
    put(&c, &a, "cap/a", None);
    post(&c, &a, "cap/a", record(0));
    assert_eq!(get(&c, &b, "cap/a", "offset=-1").1, record(0));
    for i in 1..10 {
        post(&c, &a, "cap/a", record(i));
    }
    let kept: Vec<u8> = (7..10).flat_map(record).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = get(&c, &b, "cap/a", "offset=-1");
        if body == kept {
            break;
        }
        if std::time::Instant::now() > deadline {
            let tail = |t: String| {
                t.lines()
                    .rev()
                    .take(40)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            panic!(
                "timed out waiting until the size rule trimmed cap/a (B answers {status} with {} bytes)\nA's log:\n{}\nB's log:\n{}",
                body.len(),
                tail(a.log_text()),
                tail(b.log_text())
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for s in [&a, &b] {
        assert_eq!(get(&c, s, "cap/a", &format!("offset={}", offset(0))).0, 410);
        assert_eq!(get(&c, s, "cap/a", &format!("offset={}", offset(6999))).0, 410);
        assert_eq!(get(&c, s, "cap/a", &format!("offset={}", offset(7000))).1, kept);
        let lp = get(&c, s, "cap/a", &format!("offset={}&live=long-poll", offset(1000)));
        assert_eq!(lp.0, 410, "a long-poll behind the trim");
        let head = c.head(s.url("/v1/stream/cap/a")).send().unwrap();
        assert_eq!(head.headers()["stream-next-offset"].to_str().unwrap(), offset(10_000));
    }
    // The stream goes on, from either host.
    post(&c, &b, "cap/a", record(10));
    common::wait_until(Duration::from_secs(20), "cap/a trimmed again", || {
        get(&c, &a, "cap/a", &format!("offset={}", offset(7000))).0 == 410
    });
    let dropped = common::metric(a.port, "ds_retention_dropped_bytes_total") + common::metric(b.port, "ds_retention_dropped_bytes_total");
    assert_eq!(dropped, 8000, "what went was counted once, by whichever host trimmed it");

    // A fork made on B keeps what it inherits while it lives; the source is trimmed after.
    put(&c, &a, "cap/src", None);
    post(&c, &a, "cap/src", record(0));
    put(&c, &b, "forks/f", Some("cap/src"));
    for i in 1..4 {
        post(&c, &a, "cap/src", record(i));
    }
    std::thread::sleep(Duration::from_millis(1000));
    let all: Vec<u8> = (0..4).flat_map(record).collect();
    assert_eq!(get(&c, &a, "cap/src", "offset=-1").1, all, "the source keeps what its fork reads");
    assert_eq!(get(&c, &a, "forks/f", "offset=-1").1, record(0));
    assert_eq!(c.delete(b.url("/v1/stream/forks/f")).send().unwrap().status(), 204);
    let last3: Vec<u8> = (1..4).flat_map(record).collect();
    common::wait_until(Duration::from_secs(20), "cap/src trimmed once its fork is gone", || {
        get(&c, &b, "cap/src", "offset=-1").1 == last3
    });

    // A fork of trimmed data starts at what its source retains.
    put(&c, &b, "forks/g", Some("cap/a"));
    let g = get(&c, &a, "forks/g", "offset=-1").1;
    assert_eq!(g, (8..11).flat_map(record).collect::<Vec<u8>>());
    assert_eq!(get(&c, &a, "forks/g", &format!("offset={}", offset(0))).0, 410);

    // Age: data older than two seconds goes, whichever host appended it.
    put(&c, &a, "age/x", None);
    post(&c, &a, "age/x", b"old-a".to_vec());
    post(&c, &b, "age/x", b"old-b".to_vec());
    std::thread::sleep(Duration::from_millis(2600));
    post(&c, &b, "age/x", b"new".to_vec());
    for s in [&a, &b] {
        common::wait_until(Duration::from_secs(20), "the age rule trimmed age/x", || {
            get(&c, s, "age/x", "offset=-1").1 == b"new"
        });
        assert_eq!(get(&c, s, "age/x", &format!("offset={}", offset(0))).0, 410);
    }

    // A live export of the cluster carries the retained start and producer state; imported
    // into a memory-mode server (and that one's export back into a fresh namespace), the
    // stream answers as the original.
    put(&c, &a, "plain/p", None);
    let produce = |s: &Server, seq: u64| {
        c.post(s.url("/v1/stream/plain/p"))
            .header("Content-Type", "application/octet-stream")
            .header("Producer-Id", "w")
            .header("Producer-Epoch", "0")
            .header("Producer-Seq", seq.to_string())
            .body(format!("m{seq}"))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(produce(&a, 0), 200);
    assert_eq!(produce(&b, 1), 200);
    let dir = common::tempdir::Dir::new();
    let file = dir.path.join("cluster.jsonl");
    let out = common::cli(&["export", "--url", &a.url(""), "--output", file.to_str().unwrap()]);
    assert!(out.status.success(), "export: {}", String::from_utf8_lossy(&out.stderr));
    let m = Server::start(&[("DS_STORAGE__MODE", "memory")]);
    let out = common::cli(&["import", "--url", &m.url(""), "--input", file.to_str().unwrap()]);
    assert!(out.status.success(), "import: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(get(&c, &m, "cap/a", &format!("offset={}", offset(0))).0, 410);
    assert_eq!(get(&c, &m, "cap/a", "offset=-1").1, (8..11).flat_map(record).collect::<Vec<u8>>());
    assert_eq!(produce(&m, 1), 204, "a producer retry after the restore is a duplicate");
    let back = dir.path.join("memory.jsonl");
    let out = common::cli(&["export", "--url", &m.url(""), "--output", back.to_str().unwrap()]);
    assert!(out.status.success(), "export: {}", String::from_utf8_lossy(&out.stderr));
    let (a2, _b2) = common::jetstream_hosts(&cluster.urls(), "xret2", &[]);
    let out = common::cli(&["import", "--url", &a2.url(""), "--input", back.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "import into the cluster: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(get(&c, &a2, "cap/a", &format!("offset={}", offset(0))).0, 410);
    assert_eq!(get(&c, &a2, "cap/a", "offset=-1").1, (8..11).flat_map(record).collect::<Vec<u8>>());
    assert_eq!(get(&c, &a2, "plain/p", "offset=-1").1, b"m0m1");
    assert_eq!(produce(&a2, 1), 204, "a producer retry after a restore into the cluster");
    assert_eq!(produce(&a2, 2), 200);
    for s in [&a, &b, &m, &a2] {
        assert!(s.log_text().lines().all(|l| !l.contains("panicked")));
    }
}

/// A sliding TTL read only through host A never expires early on host B (which only looks,
/// with HEAD, which does not renew): B answers 200 until the TTL has run from A's last read,
/// then 404 within the documented slack (a quarter TTL plus a second) and a poll's margin.
#[test]
fn a_sliding_ttl_never_expires_early_on_a_host_that_did_not_serve_the_reads() {
    let _serial = serial();
    let cluster = ds_nats_cluster::Cluster::start(3);
    let (a, b) = common::jetstream_hosts(&cluster.urls(), "xttl", &[("DS_RETENTION__INTERVAL_MS", "200")]);
    let c = client();
    let r = c
        .put(a.url("/v1/stream/ttl/s"))
        .header("Content-Type", "text/plain")
        .header("Stream-TTL", "4")
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let head = |s: &Server| c.head(s.url("/v1/stream/ttl/s")).send().unwrap().status().as_u16();
    // B caches the record now, before any renewal.
    assert_eq!(head(&b), 200);
    let mut last_read = std::time::Instant::now();
    for _ in 0..16 {
        assert_eq!(get(&c, &a, "ttl/s", "offset=-1").0, 200);
        last_read = std::time::Instant::now();
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(head(&b), 200, "B called it expired while A was reading it");
        std::thread::sleep(Duration::from_millis(250));
    }
    let gone = loop {
        let status = head(&b);
        let since = last_read.elapsed();
        if status == 404 {
            break since;
        }
        assert_eq!(status, 200);
        assert!(since < Duration::from_secs(10), "still there {since:?} after the last read");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        gone >= Duration::from_secs(4),
        "B saw it expire {gone:?} after A's last read (TTL 4 s)"
    );
    // 4 s + 1 s (a quarter TTL) + 1 s (clock margin), and a poll's and a request's time.
    assert!(gone <= Duration::from_millis(7_500), "expired {gone:?} after the last read");
    println!("a 4 s sliding TTL read only on A was gone on B {gone:?} after the last read");
}
