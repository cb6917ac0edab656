//! `/metrics` through the binary: the documented names, bounded labels (no stream names).

mod common;

use std::time::Duration;

use common::{tempdir, Server};
use reqwest::blocking::Client;

#[test]
fn metrics_names_and_bounded_labels() {
    for mode in ["memory", "file-durable"] {
        let dir = tempdir::Dir::new();
        let s = Server::start(&[
            ("DS_STORAGE__MODE", mode),
            ("DS_STORAGE__DATA_DIR", dir.path.to_str().unwrap()),
            ("DS_SERVER__LONG_POLL_TIMEOUT_MS", "100"),
        ]);
        let c = Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
        c.put(s.url("/v1/stream/secret-name"))
            .header("Content-Type", "application/json")
            .send()
            .unwrap();
        c.post(s.url("/v1/stream/secret-name"))
            .header("Content-Type", "application/json")
            .body("[1,2,3]")
            .send()
            .unwrap();
        c.get(s.url("/v1/stream/secret-name")).send().unwrap();
        c.get(s.url("/v1/stream/secret-name?offset=now&live=long-poll")).send().unwrap();
        c.get(s.url("/v1/stream/missing")).send().unwrap();
        let resp = c.get(s.url("/metrics")).send().unwrap();
        assert_eq!(
            resp.headers()["content-type"],
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            "served with the content type of the format it is written in"
        );
        let text = resp.text().unwrap();
        assert!(text.trim_end().ends_with("# EOF"), "OpenMetrics text ends with # EOF");
        for needle in [
            "ds_http_requests_total{operation=\"append\",status=\"204\"} 1",
            "ds_http_requests_total{operation=\"create\",status=\"201\"} 1",
            "ds_http_requests_total{operation=\"read\",status=\"404\"} 1",
            "ds_http_requests_total{operation=\"long_poll\",status=\"204\"} 1",
            "ds_appended_messages_total 3",
            "ds_appended_bytes_total 6",
            "ds_read_bytes_total",
            "ds_live_long_poll_connections 0",
            "ds_live_sse_connections 0",
            "ds_streams 1", // the server's internal __ds/ state streams are not counted
            "ds_commit_batch_size_count",
            "ds_commit_seconds_bucket",
        ] {
            assert!(text.contains(needle), "{mode}: missing {needle} in\n{text}");
        }
        assert!(
            text.contains(&format!(
                "ds_plugin_info{{name=\"durable-streams-plugin-{}\"",
                if mode == "memory" { "memory" } else { "file" }
            )),
            "{text}"
        );
        assert!(!text.contains("secret-name"), "stream names never appear in labels");
        if mode == "file-durable" {
            assert!(!text.contains("ds_commit_batch_size_count 0"), "group commits are recorded: {text}");
        }
    }
}

/// The gauge `name` in an OpenMetrics text.
fn gauge(text: &str, name: &str) -> i64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

/// Stream bytes follow what is stored and deleted; disk bytes show what the files hold, so
/// their difference is the dead data a compaction could reclaim.
#[test]
fn storage_byte_gauges_follow_data_and_deletes() {
    for mode in ["memory", "file-durable", "acid"] {
        let dir = tempdir::Dir::new();
        let s = Server::start(&[("DS_STORAGE__MODE", mode), ("DS_STORAGE__DATA_DIR", dir.path.to_str().unwrap())]);
        let c = Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
        let scrape = || c.get(s.url("/metrics")).send().unwrap().text().unwrap();
        let before = gauge(&scrape(), "ds_storage_stream_bytes");
        c.put(s.url("/v1/stream/bytes"))
            .header("Content-Type", "text/plain")
            .send()
            .unwrap();
        for _ in 0..10 {
            let r = c
                .post(s.url("/v1/stream/bytes"))
                .header("Content-Type", "text/plain")
                .body("x".repeat(1000))
                .send()
                .unwrap();
            assert_eq!(r.status(), 204);
        }
        let text = scrape();
        let held = gauge(&text, "ds_storage_stream_bytes");
        assert_eq!(held - before, 10_000, "{mode}: ten appends of 1000 bytes");
        let disk = gauge(&text, "ds_storage_disk_bytes");
        if mode == "memory" {
            assert_eq!(disk, 0, "memory has no files");
        } else {
            assert!(disk >= held, "{mode}: the files hold at least the data ({disk} < {held})");
        }
        assert_eq!(c.delete(s.url("/v1/stream/bytes")).send().unwrap().status(), 204);
        let after = gauge(&scrape(), "ds_storage_stream_bytes");
        assert_eq!(after, before, "{mode}: a deleted stream's bytes are no longer held");
    }
}
