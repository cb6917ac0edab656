//! Backups of running servers through the real binary: `export --url` from a file-durable server
//! while writers append, `import --url` into a running acid server, and back again into a
//! running file-durable one. Every exported stream is compared byte for byte at its offsets;
//! closure, TTL, fork relations, a retention-trimmed head and `Stream-Seq` come back; a producer's
//! retry after the restore is answered as a duplicate; subscriptions come back; and the second
//! export equals the first, stream for stream.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{tempdir, Server, ServerRef};
use reqwest::blocking::Client;

fn client() -> Client {
    Client::builder().timeout(Duration::from_secs(20)).build().unwrap()
}

fn start(mode: &str, dir: &std::path::Path) -> Server {
    Server::start(&[
        ("DS_STORAGE__MODE", mode),
        ("DS_STORAGE__DATA_DIR", dir.to_str().unwrap()),
        ("DS_RETENTION__INTERVAL_MS", "100"),
        ("DS_RETENTION__RULES", r#"[{"prefix": "cap/", "max_bytes": 2000}]"#),
    ])
}

fn text(o: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The export's stream lines by name (header and summary aside), as parsed JSON lines.
fn export_streams(path: &std::path::Path) -> BTreeMap<String, Vec<serde_json::Value>> {
    let mut out: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    for line in std::fs::read_to_string(path).unwrap().lines().skip(1) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let key = match v["type"].as_str().unwrap() {
            "summary" => continue,
            "subscription" => format!("subscription {}", v["sub"]["id"].as_str().unwrap()),
            _ => v["name"].as_str().unwrap().to_string(),
        };
        out.entry(key).or_default().push(v);
    }
    out
}

/// (status, bytes) of a catch-up read from `offset` (all of it).
fn read(c: &Client, s: &Server, name: &str, offset: &str) -> (u16, Vec<u8>) {
    let mut out = Vec::new();
    let mut at = offset.to_string();
    loop {
        let r = c.get(s.url(&format!("/v1/stream/{name}?offset={at}"))).send().unwrap();
        let status = r.status().as_u16();
        if status != 200 {
            return (status, out);
        }
        let next = r.headers()["stream-next-offset"].to_str().unwrap().to_string();
        let done = r.headers().contains_key("stream-up-to-date");
        out.extend_from_slice(&r.bytes().unwrap());
        if done {
            return (200, out);
        }
        at = next;
    }
}

fn offset(pos: u64) -> String {
    format!("0000000000000000_{pos:016}")
}

fn head(c: &Client, s: &Server, name: &str) -> reqwest::header::HeaderMap {
    let r = c.head(s.url(&format!("/v1/stream/{name}"))).send().unwrap();
    assert_eq!(r.status(), 200, "HEAD {name}");
    r.headers().clone()
}

#[test]
fn live_export_and_import_across_modes() {
    let (a_dir, b_dir, c_dir) = (tempdir::Dir::new(), tempdir::Dir::new(), tempdir::Dir::new());
    let a = start("file-durable", &a_dir.path);
    let c = client();
    let put = |s: &Server, name: &str, ct: &str, body: &str, extra: &[(&str, &str)]| {
        let mut r = c
            .put(s.url(&format!("/v1/stream/{name}")))
            .header("Content-Type", ct)
            .body(body.to_string());
        for (k, v) in extra {
            r = r.header(*k, *v);
        }
        let resp = r.send().unwrap();
        assert!(resp.status().is_success(), "PUT {name}: {}", resp.status());
    };
    put(&a, "t/text", "text/plain", "one ", &[]);
    put(&a, "t/json", "application/json", r#"[{"a":1},{"b":[2,3]}]"#, &[]);
    put(&a, "t/closed", "application/octet-stream", "bin", &[("Stream-Closed", "true")]);
    put(&a, "t/ttl", "text/plain", "lives", &[("Stream-TTL", "3600")]);
    put(&a, "t/fork", "text/plain", "+fork", &[("Stream-Forked-From", "/v1/stream/t/text")]);
    put(&a, "t/seq", "text/plain", "", &[]);
    for s in ["001", "002"] {
        let r = c
            .post(a.url("/v1/stream/t/seq"))
            .header("Content-Type", "text/plain")
            .header("Stream-Seq", s)
            .body(s)
            .send()
            .unwrap();
        assert_eq!(r.status(), 204);
    }
    // A retention-trimmed head: its offsets must survive.
    put(&a, "cap/log", "application/octet-stream", "", &[]);
    for i in 0..5u8 {
        let r = c
            .post(a.url("/v1/stream/cap/log"))
            .header("Content-Type", "application/octet-stream")
            .body(vec![i; 1000])
            .send()
            .unwrap();
        assert_eq!(r.status(), 204);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while read(&c, &a, "cap/log", &offset(0)).0 != 410 {
        assert!(std::time::Instant::now() < deadline, "retention did not trim cap/log");
        std::thread::sleep(Duration::from_millis(50));
    }
    let sub = r#"{"type":"pull-wake","pattern":"t/*","wake_stream":"t-wake"}"#;
    let r = c
        .put(a.url("/v1/stream/__ds/subscriptions/backup-sub"))
        .header("Content-Type", "application/json")
        .body(sub)
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "subscription: {}", r.text().unwrap_or_default());

    // Writers keep appending (through producers) while the export runs.
    for w in 0..2 {
        put(&a, &format!("hot/{w}"), "application/octet-stream", "", &[]);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Vec<AtomicU64>> = Arc::new((0..2).map(|_| AtomicU64::new(0)).collect());
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (stop, acked, port) = (stop.clone(), acked.clone(), a.port);
            std::thread::spawn(move || {
                let c = client();
                let s = ServerRef { port };
                let mut seq = 0;
                while !stop.load(Ordering::Relaxed) {
                    match s.post(&c, &format!("hot/{w}"), w, seq, vec![b'a' + (seq % 26) as u8; 300]) {
                        Ok(200) => {
                            seq += 1;
                            acked[w].store(seq, Ordering::Relaxed);
                        }
                        other => panic!("writer {w}: {other:?}"),
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let base_url = format!("http://127.0.0.1:{}", a.port);
    let first = a_dir.path.join("first.jsonl");
    let out = common::cli(&["export", "--url", &base_url, "--output", first.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    for h in writers {
        h.join().unwrap();
    }
    let exported = export_streams(&first);
    for n in [
        "t/text",
        "t/json",
        "t/closed",
        "t/ttl",
        "t/fork",
        "t/seq",
        "cap/log",
        "hot/0",
        "hot/1",
        "subscription backup-sub",
    ] {
        assert!(exported.contains_key(n), "{n} is in the export: {}", text(&out));
    }
    // The fork stays a fork of its source.
    assert_eq!(exported["t/fork"][0]["fork"], serde_json::json!(["t/text", 4]));
    assert_eq!(exported["cap/log"][0]["start"], 3000);

    // Into a running acid server.
    let b = start("acid", &b_dir.path);
    let b_url = format!("http://127.0.0.1:{}", b.port);
    // A damaged or truncated export is refused whole: 400 problem+json, nothing created.
    let full = std::fs::read_to_string(&first).unwrap();
    let cut = &full[..full.len() * 2 / 3];
    for (what, body) in [("truncated", cut.to_string()), ("not an export", "{\"hello\": 1}\n".to_string())] {
        let r = c
            .post(format!("{b_url}/v1/stream/__ds/import"))
            .header("Content-Type", "application/x-ndjson")
            .body(body)
            .send()
            .unwrap();
        assert_eq!(r.status(), 400, "{what}");
        assert_eq!(r.headers()["content-type"], "application/problem+json", "{what}");
    }
    let r = c
        .post(format!("{b_url}/v1/stream/__ds/import?on_conflict=sometimes"))
        .body("")
        .send()
        .unwrap();
    assert_eq!(r.status(), 400, "an unknown on_conflict");
    assert_eq!(
        c.head(format!("{b_url}/v1/stream/t/text")).send().unwrap().status(),
        404,
        "a refused import wrote nothing"
    );
    let out = common::cli(&["import", "--url", &b_url, "--input", first.to_str().unwrap()]);
    assert!(out.status.success() && text(&out).contains("1 subscription\n"), "{}", text(&out));
    let again = common::cli(&["import", "--url", &b_url, "--input", first.to_str().unwrap()]);
    assert!(
        !again.status.success() && text(&again).contains("409"),
        "fail is the default: {}",
        text(&again)
    );

    for (name, lines) in &exported {
        if name.starts_with("subscription ") {
            continue;
        }
        let (stream, end) = (&lines[0], lines.last().unwrap());
        let start = stream["start"].as_u64().unwrap();
        let tail = end["tail"].as_u64().unwrap();
        let (sa, from_a) = read(&c, &a, name, &offset(start));
        let (sb, from_b) = read(&c, &b, name, &offset(start));
        assert_eq!((sa, sb), (200, 200), "{name}");
        if name.starts_with("hot/") {
            // Still written after the export: the restored stream is the source's prefix.
            let len = (tail - start) as usize;
            assert!(
                from_a.len() >= len && from_b.len() == len,
                "{name}: {} / {} bytes, exported {len}",
                from_a.len(),
                from_b.len()
            );
            assert!(
                from_a[..len] == from_b[..],
                "{name}: the restored bytes equal the source's at the same offsets"
            );
        } else {
            assert!(from_a == from_b, "{name}: the restored stream reads as the source");
        }
        let h = head(&c, &b, name);
        assert_eq!(h["stream-next-offset"].to_str().unwrap(), offset(tail), "{name}: tail");
        assert_eq!(h.contains_key("stream-closed"), end["closed"] == true, "{name}: closure");
    }
    assert_eq!(head(&c, &b, "t/ttl")["stream-ttl"], "3600");
    assert_eq!(read(&c, &b, "cap/log", &offset(0)).0, 410, "the trimmed head stays trimmed");
    // A producer's retry of its last exported append is a duplicate; the next one is new.
    let hot0 = &exported["hot/0"];
    let exported_tail = hot0.last().unwrap()["tail"].as_u64().unwrap();
    let last_seq = exported_tail / 300 - 1;
    let s = ServerRef { port: b.port };
    let retry = s.post(&c, "hot/0", 0, last_seq, vec![b'a' + (last_seq % 26) as u8; 300]).unwrap();
    assert_eq!(retry, 204, "a producer retry after the restore is a duplicate");
    assert_eq!(s.post(&c, "hot/0", 0, last_seq + 1, vec![b'z'; 300]).unwrap(), 200);
    let r = c
        .post(b.url("/v1/stream/t/seq"))
        .header("Content-Type", "text/plain")
        .header("Stream-Seq", "002")
        .body("x")
        .send()
        .unwrap();
    assert_eq!(r.status(), 409, "Stream-Seq state came back");
    let r = c.get(b.url("/v1/stream/__ds/subscriptions/backup-sub")).send().unwrap();
    assert_eq!(r.status(), 200, "the subscription came back");
    assert!(r.text().unwrap().contains("t/*"));

    // And back into a running file-durable server: its export equals the first.
    let second = b_dir.path.join("second.jsonl");
    let (h0, h1) = (acked[0].load(Ordering::Relaxed), acked[1].load(Ordering::Relaxed));
    assert!(h0 > 0 && h1 > 0, "the writers wrote during the export");
    let c_srv = start("file-durable", &c_dir.path);
    let c_url = format!("http://127.0.0.1:{}", c_srv.port);
    // (hot/0 got one more append on b: export c's view of the first file instead.)
    let out = common::cli(&["import", "--url", &c_url, "--input", first.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let out = common::cli(&["export", "--url", &c_url, "--output", second.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let again = export_streams(&second);
    assert_eq!(again.keys().collect::<Vec<_>>(), exported.keys().collect::<Vec<_>>());
    for (name, lines) in &exported {
        assert_eq!(&again[name], lines, "{name}: exported again identically");
    }
    println!(
        "backup: {} streams and 1 subscription exported from file-durable under load ({h0} + {h1} appends), restored into acid and file-durable, identical",
        exported.len() - 1
    );
}
