//! Sliding TTLs across a crash (file-durable, file-fast, acid): access times are saved every
//! `server.ttl_save_interval_secs`, so after kill -9 a stream idle past its TTL (plus at most
//! that interval) is gone instead of getting a fresh TTL, and a stream used just before the
//! crash is still there (a TTL never runs shorter). A clean stop saves them exactly.

mod common;

use std::time::Duration;

use common::{tempdir, Server};
use reqwest::blocking::Client;

fn start(mode: &str, dir: &std::path::Path) -> Server {
    Server::start(&[
        ("DS_STORAGE__MODE", mode),
        ("DS_STORAGE__DATA_DIR", dir.to_str().unwrap()),
        ("DS_SERVER__TTL_SAVE_INTERVAL_SECS", "1"),
        ("DS_SERVER__SWEEP_INTERVAL_SECS", "1"),
    ])
}

fn status(c: &Client, s: &Server, name: &str) -> u16 {
    c.get(s.url(&format!("/v1/stream/{name}?offset=-1")))
        .send()
        .unwrap()
        .status()
        .as_u16()
}

fn ttl_across_a_crash(mode: &str) {
    let dir = tempdir::Dir::new();
    let c = Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let mut s = start(mode, &dir.path);
    for name in ["idle", "busy"] {
        let r = c
            .put(s.url(&format!("/v1/stream/{name}")))
            .header("Content-Type", "text/plain")
            .header("Stream-TTL", "4")
            .body("x")
            .send()
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    // Both saved as accessed now; "busy" is read again after the next save.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(status(&c, &s, "busy"), 200);
    std::thread::sleep(Duration::from_millis(1500));
    // kill -9: "idle" was last used 4 s ago, "busy" 1.5 s ago (and saved).
    s.child.kill().unwrap();
    let _ = s.child.wait();
    std::thread::sleep(Duration::from_millis(1500));
    let s = start(mode, &dir.path);
    // idle: accessed at t0 (saved), +1 s of slack, +4 s TTL = gone by t0+5.5.
    assert_eq!(
        status(&c, &s, "idle"),
        404,
        "{mode}: a stream idle past its TTL before the crash stays expired"
    );
    assert_eq!(status(&c, &s, "busy"), 200, "{mode}: a stream used just before the crash lives on");
    // A clean stop saves exactly; the TTL still slides after the restart.
    drop(s);
    println!("{mode}: sliding TTL kept across kill -9 (expired stays expired, recent stays)");
}

#[test]
fn ttl_across_a_crash_file_durable() {
    ttl_across_a_crash("file-durable");
}

#[test]
fn ttl_across_a_crash_file_fast() {
    ttl_across_a_crash("file-fast");
}

#[test]
fn ttl_across_a_crash_acid() {
    ttl_across_a_crash("acid");
}
