//! Compaction under kill -9, through the real binary and plugin: tiny segments compacted every
//! few milliseconds while writers append (through producers) to streams that live throughout
//! and churners create, fill and delete streams; SIGKILL at random moments, restart, and check
//! that every acknowledged append is there once and in order, every acknowledged delete stays
//! deleted, and that compactions really ran. `CRASH_CYCLES` sets the cycle count.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{tempdir, Server, ServerRef};
use reqwest::blocking::Client;

const KEEPERS: usize = 2;
const CHURNERS: usize = 2;

fn msg(w: usize, seq: u64) -> Vec<u8> {
    let size = [10usize, 700, 3000, 150][(seq % 4) as usize];
    (0..size).map(|i| (w as u64 * 13 + seq * 7 + i as u64) as u8).collect()
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

fn start(mode: &str, dir: &std::path::Path) -> Server {
    Server::start(&[
        ("DS_STORAGE__MODE", mode),
        ("DS_STORAGE__DATA_DIR", dir.to_str().unwrap()),
        ("DS_STORAGE__FILE_SEGMENT_BYTES", "16384"),
        ("DS_STORAGE__FILE_COMPACT_INTERVAL_MS", "5"),
    ])
}

fn read_all(s: &Server, name: &str) -> Option<Vec<u8>> {
    let c = client();
    let mut out = Vec::new();
    let mut offset = "-1".to_string();
    loop {
        let r = c.get(s.url(&format!("/v1/stream/{name}?offset={offset}"))).send().unwrap();
        if r.status() == 404 {
            return None;
        }
        assert_eq!(r.status(), 200, "read {name}");
        let next = r.headers()["stream-next-offset"].to_str().unwrap().to_string();
        let done = r.headers().contains_key("stream-up-to-date");
        out.extend_from_slice(&r.bytes().unwrap());
        if done {
            return Some(out);
        }
        offset = next;
    }
}

#[derive(Default, Clone, Copy)]
struct Keeper {
    acked: u64,
    inflight: Option<u64>,
}

/// What churners did: streams whose delete was acknowledged, and the one in flight.
#[derive(Default)]
struct Churned {
    deleted: Vec<String>,
}

fn cycles(mode: &str) {
    let cycles: u64 = std::env::var("CRASH_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(6);
    let dir = tempdir::Dir::new();
    let keepers = Arc::new(Mutex::new(vec![Keeper::default(); KEEPERS]));
    let churned = Arc::new(Mutex::new(Churned::default()));
    let (mut compactions, mut verified_deletes) = (0u64, 0usize);
    for cycle in 0..=cycles {
        let mut server = start(mode, &dir.path);
        let c = client();
        if cycle == 0 {
            for w in 0..KEEPERS {
                let r = c
                    .put(server.url(&format!("/v1/stream/keep{w}")))
                    .header("Content-Type", "application/octet-stream")
                    .send()
                    .unwrap();
                assert_eq!(r.status(), 201);
            }
        }
        for w in 0..KEEPERS {
            let st = keepers.lock().unwrap()[w];
            let content = read_all(&server, &format!("keep{w}")).expect("a kept stream survives");
            let base = expected(w, st.acked);
            let included = if content == base {
                false
            } else if st.inflight.is_some() && content == expected(w, st.acked + 1) {
                true
            } else {
                panic!(
                    "{mode} cycle {cycle}: keep{w} holds {} bytes, expected {} ({} acknowledged appends) or one more",
                    content.len(),
                    base.len(),
                    st.acked
                );
            };
            if let Some(seq) = st.inflight {
                let status = ServerRef { port: server.port }
                    .post(&c, &format!("keep{w}"), w, seq, msg(w, seq))
                    .unwrap();
                assert_eq!(
                    status,
                    if included { 204 } else { 200 },
                    "{mode}: retry of seq {seq} after the crash"
                );
                keepers.lock().unwrap()[w] = Keeper {
                    acked: seq + 1,
                    inflight: None,
                };
            }
        }
        {
            let ch = churned.lock().unwrap();
            for name in &ch.deleted {
                assert!(
                    read_all(&server, name).is_none(),
                    "{mode} cycle {cycle}: deleted stream {name} came back"
                );
            }
            verified_deletes = ch.deleted.len();
        }
        if cycle == cycles {
            break;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let mut handles = Vec::new();
        let port = server.port;
        for w in 0..KEEPERS {
            let (keepers, stop) = (keepers.clone(), stop.clone());
            handles.push(std::thread::spawn(move || {
                let c = client();
                let s = ServerRef { port };
                while !stop.load(Ordering::Relaxed) {
                    let seq = keepers.lock().unwrap()[w].acked;
                    keepers.lock().unwrap()[w].inflight = Some(seq);
                    match s.post(&c, &format!("keep{w}"), w, seq, msg(w, seq)) {
                        Ok(200) => {
                            keepers.lock().unwrap()[w] = Keeper {
                                acked: seq + 1,
                                inflight: None,
                            }
                        }
                        Ok(other) => panic!("keeper {w}: unexpected status {other}"),
                        Err(_) => return,
                    }
                }
            }));
        }
        for w in 0..CHURNERS {
            let (churned, stop) = (churned.clone(), stop.clone());
            handles.push(std::thread::spawn(move || {
                let c = client();
                let url = |name: &str| format!("http://127.0.0.1:{port}/v1/stream/{name}");
                let chunk = vec![b'c'; 2000];
                for k in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let name = format!("churn/{cycle}/{w}/{k}");
                    let ok = c
                        .put(url(&name))
                        .header("Content-Type", "application/octet-stream")
                        .body(chunk.clone())
                        .send()
                        .is_ok_and(|r| r.status() == 201);
                    let ok = ok
                        && (0..3).all(|_| {
                            c.post(url(&name))
                                .header("Content-Type", "application/octet-stream")
                                .body(chunk.clone())
                                .send()
                                .is_ok_and(|r| r.status() == 204 || r.status() == 200)
                        });
                    if !ok {
                        return;
                    }
                    match c.delete(url(&name)).send() {
                        Ok(r) if r.status() == 204 => churned.lock().unwrap().deleted.push(name),
                        _ => return,
                    }
                }
            }));
        }
        let jitter = 300 + (cycle * 211 % 600);
        std::thread::sleep(Duration::from_millis(jitter));
        compactions += common::metric(server.port, "ds_storage_compactions");
        server.child.kill().unwrap();
        let _ = server.child.wait();
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            h.join().unwrap();
        }
        assert!(server.log_text().lines().all(|l| !l.contains("panicked")), "{}", server.log_text());
    }
    let acked: u64 = keepers.lock().unwrap().iter().map(|k| k.acked).sum();
    assert!(
        acked > 0 && verified_deletes > 0,
        "{mode}: nothing was acknowledged; the test proved nothing"
    );
    assert!(compactions > 0, "{mode}: no compaction ran before the kills");
    println!(
        "{mode}: {cycles} kill -9 cycles during compaction: {acked} acknowledged appends and {verified_deletes} deleted streams verified; {compactions} compactions seen before the kills"
    );
}

#[test]
fn kill_during_compaction_file_durable() {
    cycles("file-durable");
}

#[test]
fn kill_during_compaction_file_fast() {
    cycles("file-fast");
}
