//! The jetstream mode across hosts: two real server processes on one real three-node NATS
//! cluster. Writes on A are read on B (catch-up, long-poll, SSE); concurrent appends from both
//! hosts to one stream are stored once each, in acknowledged order; a producer's retry on the
//! other host is a duplicate; a close on A refuses appends on B; create races give one stream.

mod common;

use std::collections::HashSet;
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Server;
use reqwest::blocking::Client;

/// One cluster at a time: each test runs three NATS nodes and two hosts, and timing-sensitive
/// faults (elections, hung nodes) should not compete with another test's cluster for the CPU.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn hosts(cluster: &ds_nats_cluster::Cluster, ns: &str) -> (Server, Server) {
    common::jetstream_hosts(&cluster.urls(), ns, &[("DS_SERVER__LONG_POLL_TIMEOUT_SECS", "10")])
}

fn client() -> Client {
    Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

#[test]
fn written_on_one_host_read_on_the_other() {
    let _serial = serial();
    let cluster = ds_nats_cluster::Cluster::start(3);
    let (a, b) = hosts(&cluster, "xread");
    let c = client();
    let r = c
        .put(a.url("/v1/stream/x"))
        .header("Content-Type", "text/plain")
        .body("one ")
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let tail = r.headers()["stream-next-offset"].to_str().unwrap().to_string();
    // Catch-up on B.
    assert_eq!(c.get(b.url("/v1/stream/x")).send().unwrap().text().unwrap(), "one ");
    // Long-poll on B, woken by an append on A.
    let lp = b.url(&format!("/v1/stream/x?offset={tail}&live=long-poll"));
    let waiting = std::thread::spawn(move || {
        let started = Instant::now();
        let r = client().get(lp).send().unwrap();
        (r.status().as_u16(), r.text().unwrap(), started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(500));
    let r = c
        .post(a.url("/v1/stream/x"))
        .header("Content-Type", "text/plain")
        .body("two")
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    let (status, body, waited) = waiting.join().unwrap();
    assert_eq!((status, body.as_str()), (200, "two"), "the long-poll on B sees A's append");
    assert!(waited < Duration::from_secs(5), "woken, not timed out: {waited:?}");
    // SSE on B, fed by A.
    let sse_url = b.url("/v1/stream/x?offset=-1&live=sse");
    let sse = std::thread::spawn(move || {
        let mut r = client().get(sse_url).send().unwrap();
        let mut seen = String::new();
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline && !seen.contains("three") {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
        seen
    });
    std::thread::sleep(Duration::from_millis(500));
    c.post(a.url("/v1/stream/x"))
        .header("Content-Type", "text/plain")
        .body("three")
        .send()
        .unwrap();
    let seen = sse.join().unwrap();
    assert!(
        seen.contains("one two") || (seen.contains("one ") && seen.contains("two")),
        "{seen}"
    );
    assert!(seen.contains("three"), "SSE on B receives A's append: {seen}");
}

#[test]
fn concurrent_appends_from_two_hosts_are_stored_once_in_order() {
    let _serial = serial();
    let cluster = ds_nats_cluster::Cluster::start(3);
    let (a, b) = hosts(&cluster, "xconc");
    let c = client();
    c.put(a.url("/v1/stream/race"))
        .header("Content-Type", "application/octet-stream")
        .send()
        .unwrap();
    let urls = Arc::new([a.url("/v1/stream/race"), b.url("/v1/stream/race")]);
    let mut workers = Vec::new();
    for w in 0..8 {
        let urls = urls.clone();
        workers.push(std::thread::spawn(move || {
            let c = client();
            let mut acked = Vec::new();
            for i in 0..25 {
                let body = format!("[w{w}-{i}]");
                let r = c
                    .post(&urls[w % 2])
                    .header("Content-Type", "application/octet-stream")
                    .body(body.clone())
                    .send()
                    .unwrap();
                assert_eq!(r.status(), 204, "{body}");
                let off = r.headers()["stream-next-offset"].to_str().unwrap().to_string();
                acked.push((off, body));
            }
            acked
        }));
    }
    let mut acked: Vec<(String, String)> = workers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    let offsets: HashSet<&String> = acked.iter().map(|(o, _)| o).collect();
    assert_eq!(offsets.len(), acked.len(), "every acknowledged offset is unique");
    acked.sort();
    let expected: String = acked.iter().map(|(_, b)| b.as_str()).collect();
    for host in [&a, &b] {
        let mut got = Vec::new();
        let mut offset = "-1".to_string();
        loop {
            let r = c.get(host.url(&format!("/v1/stream/race?offset={offset}"))).send().unwrap();
            let next = r.headers()["stream-next-offset"].to_str().unwrap().to_string();
            let up_to_date = r.headers().contains_key("stream-up-to-date");
            got.extend_from_slice(&r.bytes().unwrap());
            if up_to_date || next == offset {
                break;
            }
            offset = next;
        }
        assert_eq!(String::from_utf8(got).unwrap(), expected, "stored once each, in acknowledged order");
    }
}

#[test]
fn producers_closure_and_creates_hold_across_hosts() {
    let _serial = serial();
    let cluster = ds_nats_cluster::Cluster::start(3);
    let (a, b) = hosts(&cluster, "xrules");
    let c = client();
    c.put(a.url("/v1/stream/p")).header("Content-Type", "text/plain").send().unwrap();
    let post = |s: &Server, body: &str, extra: &[(&str, &str)]| {
        let mut r = c
            .post(s.url("/v1/stream/p"))
            .header("Content-Type", "text/plain")
            .body(body.to_string());
        for (k, v) in extra {
            r = r.header(*k, *v);
        }
        r.send().unwrap()
    };
    let stamp = [("Producer-Id", "w"), ("Producer-Epoch", "0"), ("Producer-Seq", "0")];
    assert_eq!(post(&a, "once", &stamp).status(), 200);
    let retry = post(&b, "once", &stamp);
    assert_eq!(retry.status(), 204, "a retry sent to the other host is a duplicate");
    assert_eq!(c.get(b.url("/v1/stream/p")).send().unwrap().text().unwrap(), "once");
    assert_eq!(post(&a, "", &[("Stream-Closed", "true")]).status(), 204);
    let late = post(&b, "late", &[]);
    assert_eq!(late.status(), 409, "closed on A, refused on B");
    assert_eq!(late.headers()["stream-closed"], "true");

    // Create races: the same config from both hosts gives one stream (201 once, 200 after).
    let mut racers = Vec::new();
    for host in [
        a.url("/v1/stream/new"),
        b.url("/v1/stream/new"),
        a.url("/v1/stream/new"),
        b.url("/v1/stream/new"),
    ] {
        racers.push(std::thread::spawn(move || {
            client()
                .put(host)
                .header("Content-Type", "text/plain")
                .send()
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut codes: Vec<u16> = racers.into_iter().map(|r| r.join().unwrap()).collect();
    codes.sort();
    assert_eq!(codes, [200, 200, 200, 201], "one create wins, the others re-confirm");
    let other = c
        .put(b.url("/v1/stream/new"))
        .header("Content-Type", "application/json")
        .send()
        .unwrap();
    assert_eq!(other.status(), 409, "another configuration conflicts, whichever host is asked");
    // An append over the cluster's largest message (max_payload 8 MB less room for headers) is
    // refused with 413 naming the limit, and nothing is stored.
    let big = c
        .post(a.url("/v1/stream/new"))
        .header("Content-Type", "text/plain")
        .body(vec![b'x'; 8 << 20])
        .send()
        .unwrap();
    assert_eq!(big.status(), 413);
    let problem = big.text().unwrap();
    assert!(problem.contains("max_append_bytes") && problem.contains("at most"), "{problem}");
    assert_eq!(c.get(b.url("/v1/stream/new")).send().unwrap().text().unwrap(), "");
    // Delete on B, gone on A.
    assert_eq!(c.delete(b.url("/v1/stream/new")).send().unwrap().status(), 204);
    assert_eq!(c.get(a.url("/v1/stream/new")).send().unwrap().status(), 404);
}

/// Appends with idempotent producers: writer `w` starts on `urls[w % len]` and retries (same
/// stamp) on 503, and on a dropped connection moves to `fallback` when given, until its append
/// is acknowledged. Returns (acknowledged offset, body, fresh) triples.
fn producer_writers(
    urls: Vec<String>,
    fallback: Option<String>,
    writers: usize,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Vec<std::thread::JoinHandle<Vec<(String, String, bool)>>> {
    (0..writers)
        .map(|w| {
            let mut url = urls[w % urls.len()].clone();
            let (stop, fallback) = (stop.clone(), fallback.clone());
            std::thread::spawn(move || {
                let c = Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
                let mut acked = Vec::new();
                let mut seq = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let body = format!("[w{w}-{seq}]");
                    loop {
                        let r = c
                            .post(&url)
                            .header("Content-Type", "application/octet-stream")
                            .header("Producer-Id", format!("w{w}"))
                            .header("Producer-Epoch", "0")
                            .header("Producer-Seq", seq.to_string())
                            .body(body.clone())
                            .send();
                        match r {
                            Ok(r) if r.status() == 200 || r.status() == 204 => {
                                let fresh = r.status() == 200;
                                acked.push((r.headers()["stream-next-offset"].to_str().unwrap().to_string(), body.clone(), fresh));
                                break;
                            }
                            Ok(r) if r.status() == 503 => std::thread::sleep(Duration::from_millis(200)),
                            Ok(r) => panic!("{body}: unexpected {}", r.status()),
                            Err(_) => match &fallback {
                                // The host is gone: retry the same stamp on the other one.
                                Some(f) => url = f.clone(),
                                None => std::thread::sleep(Duration::from_millis(200)),
                            },
                        }
                    }
                    seq += 1;
                }
                acked
            })
        })
        .collect()
}

/// Checks a stream of `[...]` bodies against what was acknowledged: each acknowledged body is
/// stored exactly once, nothing else is stored, and fresh appends (200) are stored in the order
/// of their acknowledged offsets. A duplicate (204: a retry of an append already stored, its
/// acknowledgement lost with a dead host) answers the tail at the time of the retry, so only its
/// presence is checked.
fn check_once_in_order(stored: &str, acked: &[(String, String, bool)]) {
    let tokens: Vec<String> = stored.split_inclusive(']').map(str::to_string).collect();
    let mut seen = HashSet::new();
    for t in &tokens {
        assert!(seen.insert(t.clone()), "{t} is stored twice");
    }
    let acked_set: HashSet<String> = acked.iter().map(|(_, b, _)| b.clone()).collect();
    assert_eq!(seen, acked_set, "stored exactly what was acknowledged");
    let mut fresh: Vec<&(String, String, bool)> = acked.iter().filter(|a| a.2).collect();
    fresh.sort();
    let fresh_set: HashSet<&String> = fresh.iter().map(|a| &a.1).collect();
    let stored_fresh: Vec<&String> = tokens.iter().filter(|t| fresh_set.contains(t)).collect();
    let acked_fresh: Vec<&String> = fresh.iter().map(|a| &a.1).collect();
    assert_eq!(stored_fresh, acked_fresh, "fresh appends in acknowledged order");
}

fn read_all(c: &Client, url: &str) -> Vec<u8> {
    let mut got = Vec::new();
    let mut offset = "-1".to_string();
    loop {
        let r = c.get(format!("{url}?offset={offset}")).send().unwrap();
        assert_eq!(r.status(), 200);
        let next = r.headers()["stream-next-offset"].to_str().unwrap().to_string();
        let up_to_date = r.headers().contains_key("stream-up-to-date");
        got.extend_from_slice(&r.bytes().unwrap());
        if up_to_date || next == offset {
            return got;
        }
        offset = next;
    }
}

/// Faults: kill -9 one NATS node while two hosts append; every acknowledged append is present
/// afterwards exactly once and in acknowledged order, writes continue after the election, and
/// the node catches up when it returns.
#[test]
fn a_killed_node_loses_nothing_acknowledged() {
    let _serial = serial();
    let mut cluster = ds_nats_cluster::Cluster::start(3);
    let (a, b) = hosts(&cluster, "xkill");
    let c = client();
    c.put(a.url("/v1/stream/k"))
        .header("Content-Type", "application/octet-stream")
        .send()
        .unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers = producer_writers(vec![a.url("/v1/stream/k"), b.url("/v1/stream/k")], None, 6, stop.clone());
    std::thread::sleep(Duration::from_secs(3));
    cluster.kill(0);
    std::thread::sleep(Duration::from_secs(12));
    cluster.restart(0);
    std::thread::sleep(Duration::from_secs(4));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let acked: Vec<(String, String, bool)> = writers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    for host in [&a, &b] {
        let got = String::from_utf8(read_all(&c, &host.url("/v1/stream/k"))).unwrap();
        check_once_in_order(&got, &acked);
    }
    println!("kill -9 of a node under load: {} acknowledged appends checked, lost 0", acked.len());
    // Writes continue with the restarted node back.
    let r = c
        .post(b.url("/v1/stream/k"))
        .header("Content-Type", "application/octet-stream")
        .body("after")
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
}

/// Faults: kill -9 a host mid-append; its writers' retries (same producer stamp) on the other
/// host are answered correctly: every acknowledged append once, nothing twice.
#[test]
fn a_killed_host_loses_nothing_acknowledged() {
    let _serial = serial();
    let cluster = ds_nats_cluster::Cluster::start(3);
    let (mut a, b) = hosts(&cluster, "xhost");
    let c = client();
    c.put(b.url("/v1/stream/h"))
        .header("Content-Type", "application/octet-stream")
        .send()
        .unwrap();
    // Writers start on A; after A dies they continue on B with the same producer stamps.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers = producer_writers(vec![a.url("/v1/stream/h")], Some(b.url("/v1/stream/h")), 4, stop.clone());
    std::thread::sleep(Duration::from_secs(2));
    a.child.kill().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let acked: Vec<(String, String, bool)> = writers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    let got = String::from_utf8(read_all(&c, &b.url("/v1/stream/h"))).unwrap();
    check_once_in_order(&got, &acked);
    let retried = acked.iter().filter(|a| !a.2).count();
    println!("  of which {retried} were retries on B of appends A had stored before it died");
    println!(
        "kill -9 of a host mid-append: {} acknowledged appends checked, lost 0, duplicated 0",
        acked.len()
    );
}

/// Faults: the whole cluster stops: requests get 503 with Retry-After and /readyz 503, no host
/// exits; when the cluster returns, service resumes by itself with nothing acknowledged lost.
/// Then one node hangs (SIGSTOP): requests still answer, nothing is lost.
#[test]
fn cluster_down_then_back_and_a_hung_node() {
    let _serial = serial();
    let mut cluster = ds_nats_cluster::Cluster::start(3);
    let (mut a, _b) = hosts(&cluster, "xdown");
    let c = client();
    c.put(a.url("/v1/stream/d"))
        .header("Content-Type", "text/plain")
        .body("before ")
        .send()
        .unwrap();
    for i in 0..3 {
        cluster.kill(i);
    }
    let r = c
        .post(a.url("/v1/stream/d"))
        .header("Content-Type", "text/plain")
        .body("lost?")
        .send()
        .unwrap();
    assert_eq!(r.status(), 503, "no cluster: 503");
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let ready = c.get(a.url("/readyz")).send().unwrap();
    assert_eq!(ready.status(), 503, "/readyz follows the cluster");
    assert!(a.is_alive(), "the host does not exit");
    for i in 0..3 {
        cluster.restart(i);
    }
    cluster.wait_ready(Duration::from_secs(60));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = c
            .post(a.url("/v1/stream/d"))
            .header("Content-Type", "text/plain")
            .body("after")
            .send()
            .unwrap();
        if r.status() == 204 {
            break;
        }
        assert!(Instant::now() < deadline, "service resumes by itself: {}", r.status());
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(c.get(a.url("/readyz")).send().unwrap().status(), 200);
    let body = c.get(a.url("/v1/stream/d")).send().unwrap().text().unwrap();
    assert!(body.starts_with("before ") && body.ends_with("after"), "{body}");

    // A hung node: slower, but answered, and nothing lost.
    cluster.pause(1);
    let started = Instant::now();
    let c = Client::builder().timeout(Duration::from_secs(90)).build().unwrap();
    let mut acked = Vec::new();
    for i in 0..20 {
        let r = c
            .post(a.url("/v1/stream/d"))
            .header("Content-Type", "text/plain")
            .body(format!("|{i}"))
            .send()
            .unwrap();
        // 503 only when the outcome could not be determined; then it may or may not be stored.
        assert!(r.status() == 204 || r.status() == 503, "{}", r.status());
        if r.status() == 204 {
            acked.push(i.to_string());
        }
    }
    cluster.resume(1);
    // Right after the node wakes, a read may still be told to retry (503 + Retry-After).
    let deadline = Instant::now() + Duration::from_secs(20);
    let body = loop {
        let r = c.get(a.url("/v1/stream/d")).send().unwrap();
        let status = r.status();
        let body = r.text().unwrap();
        if status == 200 || Instant::now() > deadline {
            assert_eq!(status, 200, "{body}");
            break body;
        }
        assert_eq!(status, 503, "only a retry-later answer is allowed meanwhile: {body}");
        std::thread::sleep(Duration::from_millis(500));
    };
    let tail = body.strip_prefix("before after").unwrap_or_else(|| panic!("{body}"));
    let stored: Vec<&str> = tail.split('|').skip(1).collect();
    let unique: HashSet<&str> = stored.iter().copied().collect();
    assert_eq!(unique.len(), stored.len(), "nothing stored twice: {body}");
    for i in &acked {
        assert!(unique.contains(i.as_str()), "acknowledged |{i} is stored: {body}");
    }
    assert!(acked.len() >= 10, "most appends answered 204 with one node hung: {acked:?}");
    println!("hung node: 20 appends answered in {:?}", started.elapsed());
    a.child.kill().unwrap();
}
