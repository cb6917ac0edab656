//! Crash safety through the real binary: SIGKILL at random moments under concurrent writers, then
//! restart on the same data dir and check that every acknowledged append is there, byte-exact,
//! once, in order; in-flight appends are all or nothing; producer retries after the crash are
//! answered as duplicates; append-with-close is atomic. `CRASH_CYCLES` sets the cycle count.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{tempdir, Server};
use reqwest::blocking::Client;

const WRITERS: usize = 4;
const SIZES: [usize; 8] = [1, 7, 100, 1000, 4096, 65536, 300, 1 << 20];

fn msg(w: usize, seq: u64) -> Vec<u8> {
    let h = (w as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seq.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    let mut size = SIZES[(h % SIZES.len() as u64) as usize];
    if size == 1 << 20 && !h.is_multiple_of(5) {
        size = 2048; // keep 1 MiB messages rare
    }
    (0..size).map(|i| (w as u64 * 31 + seq * 7 + i as u64) as u8).collect()
}

fn expected(w: usize, n: u64) -> Vec<u8> {
    (0..n).flat_map(|s| msg(w, s)).collect()
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(20))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

fn read_all(s: &Server, name: &str) -> (Vec<u8>, bool) {
    let c = client();
    let mut out = Vec::new();
    let mut offset = "-1".to_string();
    loop {
        let r = c.get(s.url(&format!("/v1/stream/{name}?offset={offset}"))).send().unwrap();
        assert_eq!(r.status(), 200, "read {name}");
        let next = r.headers()["stream-next-offset"].to_str().unwrap().to_string();
        let done = r.headers().contains_key("stream-up-to-date");
        let closed = r.headers().contains_key("stream-closed");
        let body = r.bytes().unwrap();
        out.extend_from_slice(&body);
        if done {
            return (out, closed);
        }
        offset = next;
    }
}

#[derive(Default, Clone, Copy)]
struct WriterState {
    acked: u64,
    inflight: Option<u64>,
}

fn start(mode: &str, dir: &std::path::Path) -> Server {
    start_with(mode, dir, &[])
}

fn start_with(mode: &str, dir: &std::path::Path, extra: &[(&str, &str)]) -> Server {
    let mut env = vec![("DS_STORAGE__MODE", mode), ("DS_STORAGE__DATA_DIR", dir.to_str().unwrap())];
    env.extend_from_slice(extra);
    Server::start(&env)
}

fn crash_cycles(mode: &str) {
    crash_cycles_with(mode, &[]);
}

fn crash_cycles_with(mode: &str, extra: &[(&str, &str)]) {
    let cycles: u64 = std::env::var("CRASH_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(4);
    let dir = tempdir::Dir::new();
    let states = Arc::new(Mutex::new(vec![WriterState::default(); WRITERS]));
    let mut close_checks: Vec<String> = Vec::new();
    let mut total_acked = 0;
    for cycle in 0..=cycles {
        let mut server = start_with(mode, &dir.path, extra);
        let c = client();
        if cycle == 0 {
            for w in 0..WRITERS {
                let r = c
                    .put(server.url(&format!("/v1/stream/w{w}")))
                    .header("Content-Type", "application/octet-stream")
                    .send()
                    .unwrap();
                assert_eq!(r.status(), 201);
            }
        }
        // Verify what survived, and resolve in-flight appends by retrying them.
        for w in 0..WRITERS {
            let st = states.lock().unwrap()[w];
            let (content, _) = read_all(&server, &format!("w{w}"));
            let with_inflight = st.inflight.map(|_| expected(w, st.acked + 1));
            let base = expected(w, st.acked);
            let included = if content == base {
                false
            } else if with_inflight.as_ref() == Some(&content) {
                true
            } else {
                panic!(
                    "{mode} cycle {cycle}: writer {w} has {} bytes, expected {} (acked {}) or the in-flight append too",
                    content.len(),
                    base.len(),
                    st.acked
                );
            };
            if let Some(seq) = st.inflight {
                let status = common::ServerRef { port: server.port }
                    .post(&c, &format!("w{w}"), w, seq, msg(w, seq))
                    .unwrap();
                assert_eq!(
                    status,
                    if included { 204 } else { 200 },
                    "{mode}: retry of in-flight seq {seq} after the crash"
                );
                let mut all = states.lock().unwrap();
                all[w] = WriterState {
                    acked: seq + 1,
                    inflight: None,
                };
                drop(all);
                let (after, _) = read_all(&server, &format!("w{w}"));
                assert_eq!(after, expected(w, seq + 1), "{mode}: the retried append is stored exactly once");
            }
        }
        for name in &close_checks {
            let (content, closed) = read_all(&server, name);
            assert_eq!(
                closed,
                content.ends_with(b"FINAL"),
                "{mode}: {name}: append-with-close must be atomic"
            );
        }
        if cycle == cycles {
            total_acked = states.lock().unwrap().iter().map(|s| s.acked).sum();
            break;
        }
        // Load, then SIGKILL at a random moment.
        let stop = Arc::new(AtomicBool::new(false));
        let mut handles = Vec::new();
        for w in 0..WRITERS {
            let states = states.clone();
            let stop = stop.clone();
            let url_port = server.port;
            handles.push(std::thread::spawn(move || {
                let c = client();
                let s = common::ServerRef { port: url_port };
                while !stop.load(Ordering::Relaxed) {
                    let seq = states.lock().unwrap()[w].acked;
                    states.lock().unwrap()[w].inflight = Some(seq);
                    match s.post(&c, &format!("w{w}"), w, seq, msg(w, seq)) {
                        Ok(200) => {
                            states.lock().unwrap()[w] = WriterState {
                                acked: seq + 1,
                                inflight: None,
                            }
                        }
                        Ok(other) => panic!("writer {w}: unexpected status {other}"),
                        Err(_) => return,
                    }
                }
            }));
        }
        let close_name = format!("close-{cycle}");
        c.put(server.url(&format!("/v1/stream/{close_name}")))
            .header("Content-Type", "text/plain")
            .body("start ")
            .send()
            .unwrap();
        close_checks.push(close_name.clone());
        let jitter = 150 + (cycle * 137 % 400);
        std::thread::sleep(Duration::from_millis(jitter / 2));
        let closer_port = server.port;
        let closer = std::thread::spawn(move || {
            let c = client();
            let _ = c
                .post(format!("http://127.0.0.1:{closer_port}/v1/stream/{close_name}"))
                .header("Content-Type", "text/plain")
                .header("Stream-Closed", "true")
                .body("FINAL")
                .send();
        });
        std::thread::sleep(Duration::from_millis(jitter / 2));
        server.child.kill().unwrap();
        let _ = server.child.wait();
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            h.join().unwrap();
        }
        let _ = closer.join();
        assert!(server.log_text().lines().all(|l| !l.contains("panicked")), "{}", server.log_text());
    }
    assert!(total_acked > 0, "{mode}: no append was acknowledged; the test proved nothing");
    println!("{mode}: {cycles} kill -9 cycles, {total_acked} acknowledged appends verified");
}

#[test]
fn crash_file_durable() {
    crash_cycles("file-durable");
}

#[test]
fn crash_file_fast() {
    crash_cycles("file-fast");
}

#[test]
fn crash_acid() {
    crash_cycles("acid");
}

/// With quick repair, a crash costs no repair at the next start: the same guarantees hold.
#[test]
fn crash_acid_quick_repair() {
    crash_cycles_with("acid", &[("DS_STORAGE__ACID_QUICK_REPAIR", "true")]);
}

/// Close racing appends: the close reports the true final offset; nothing is accepted past it.
fn close_race(mode: &str) {
    let dir = tempdir::Dir::new();
    let server = start(mode, &dir.path);
    let c = client();
    c.put(server.url("/v1/stream/race"))
        .header("Content-Type", "text/plain")
        .send()
        .unwrap();
    let acked_offsets = Arc::new(Mutex::new(Vec::new()));
    let mut handles = Vec::new();
    for w in 0..6 {
        let port = server.port;
        let acked = acked_offsets.clone();
        handles.push(std::thread::spawn(move || {
            let c = client();
            for i in 0..200 {
                let r = c
                    .post(format!("http://127.0.0.1:{port}/v1/stream/race"))
                    .header("Content-Type", "text/plain")
                    .body(format!("[{w}:{i}]"))
                    .send()
                    .unwrap();
                match r.status().as_u16() {
                    204 => acked
                        .lock()
                        .unwrap()
                        .push(r.headers()["stream-next-offset"].to_str().unwrap().to_string()),
                    409 => {
                        assert_eq!(r.headers()["stream-closed"], "true");
                        return;
                    }
                    other => panic!("unexpected {other}"),
                }
            }
        }));
    }
    std::thread::sleep(Duration::from_millis(30));
    let r = c
        .post(server.url("/v1/stream/race"))
        .header("Stream-Closed", "true")
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    let final_offset = r.headers()["stream-next-offset"].to_str().unwrap().to_string();
    for h in handles {
        h.join().unwrap();
    }
    for o in acked_offsets.lock().unwrap().iter() {
        assert!(
            *o <= final_offset,
            "{mode}: an append was acknowledged at {o}, past the close at {final_offset}"
        );
    }
    let (content, closed) = read_all(&server, "race");
    assert!(closed);
    let head = c.head(server.url("/v1/stream/race")).send().unwrap();
    assert_eq!(head.headers()["stream-next-offset"].to_str().unwrap(), final_offset);
    let pieces = content.iter().filter(|&&b| b == b'[').count();
    assert_eq!(
        pieces,
        acked_offsets.lock().unwrap().len(),
        "{mode}: every acknowledged append and nothing else"
    );
}

#[test]
fn close_race_all_modes() {
    for mode in ["memory", "file-fast", "file-durable", "acid"] {
        close_race(mode);
    }
}
