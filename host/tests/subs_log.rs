//! The subscription log does not grow forever: every change appends the subscription's whole
//! state, so after many changes the server writes a snapshot of all subscriptions and drops the
//! log before it. Through the real binary (file-durable and acid): hundreds of changes leave
//! only a few tens of KiB of log; after kill -9 the subscription is there as last changed, and
//! changes go on.

mod common;

use std::time::{Duration, Instant};

use common::{tempdir, Server};
use reqwest::blocking::Client;

fn start(mode: &str, dir: &std::path::Path) -> Server {
    Server::start(&[("DS_STORAGE__MODE", mode), ("DS_STORAGE__DATA_DIR", dir.to_str().unwrap())])
}

fn links(c: &Client, s: &Server) -> Vec<String> {
    let r = c.get(s.url("/v1/stream/__ds/subscriptions/log-sub")).send().unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = serde_json::from_str(&r.text().unwrap()).unwrap();
    v["streams"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["link_type"] == "explicit")
        .map(|l| l["path"].as_str().unwrap().to_string())
        .collect()
}

fn log_compacts(mode: &str) {
    let dir = tempdir::Dir::new();
    let c = Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let mut s = start(mode, &dir.path);
    for name in ["x/a", "x/b"] {
        let r = c
            .put(s.url(&format!("/v1/stream/{name}")))
            .header("Content-Type", "text/plain")
            .send()
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let sub = r#"{"type":"pull-wake","pattern":"y/*","wake_stream":"log-wake"}"#;
    let r = c
        .put(s.url("/v1/stream/__ds/subscriptions/log-sub"))
        .header("Content-Type", "application/json")
        .body(sub)
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let base = common::metric(s.port, "ds_storage_stream_bytes");
    // 300 changes, each writing the subscription's whole state (a few hundred bytes).
    for i in 0..150 {
        let r = c
            .post(s.url("/v1/stream/__ds/subscriptions/log-sub/streams"))
            .header("Content-Type", "application/json")
            .body(r#"{"streams":["x/a"]}"#)
            .send()
            .unwrap();
        assert!(r.status().is_success(), "add {i}: {}", r.status());
        let r = c
            .delete(s.url("/v1/stream/__ds/subscriptions/log-sub/streams/x%2Fa"))
            .send()
            .unwrap();
        assert!(r.status().is_success(), "remove {i}: {}", r.status());
    }
    let r = c
        .post(s.url("/v1/stream/__ds/subscriptions/log-sub/streams"))
        .header("Content-Type", "application/json")
        .body(r#"{"streams":["x/b"]}"#)
        .send()
        .unwrap();
    assert!(r.status().is_success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut held = common::metric(s.port, "ds_storage_stream_bytes");
    while held.saturating_sub(base) > 48 << 10 {
        assert!(
            Instant::now() < deadline,
            "{mode}: the subscription log still holds {} bytes",
            held - base
        );
        std::thread::sleep(Duration::from_millis(100));
        held = common::metric(s.port, "ds_storage_stream_bytes");
    }
    assert_eq!(links(&c, &s), vec!["x/b".to_string()]);
    // kill -9: the compacted log loads to the same state, and takes new changes.
    s.child.kill().unwrap();
    let _ = s.child.wait();
    let s = start(mode, &dir.path);
    assert_eq!(links(&c, &s), vec!["x/b".to_string()], "{mode}: state after a restart");
    let r = c
        .post(s.url("/v1/stream/__ds/subscriptions/log-sub/streams"))
        .header("Content-Type", "application/json")
        .body(r#"{"streams":["x/a"]}"#)
        .send()
        .unwrap();
    assert!(r.status().is_success(), "a change after the restart: {}", r.status());
    let mut got = links(&c, &s);
    got.sort();
    assert_eq!(got, vec!["x/a".to_string(), "x/b".to_string()]);
    println!(
        "{mode}: 301 subscription changes compacted to {} bytes of log",
        held.saturating_sub(base)
    );
}

#[test]
fn subscription_log_compacts_file_durable() {
    log_compacts("file-durable");
}

#[test]
fn subscription_log_compacts_acid() {
    log_compacts("acid");
}
