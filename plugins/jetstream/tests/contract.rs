//! The jetstream engine against the engine contract suite, on a real three-node cluster: each
//! case opens a fresh engine in its own namespace of the cluster.

use std::sync::atomic::{AtomicU64, Ordering};

fn settings(urls: &str, namespace: &str) -> String {
    serde_json::json!({
        "jetstream": {"urls": urls, "namespace": namespace, "shards": 2, "sweep_scan_secs": 0},
        "sources": {"jetstream.urls": "test", "jetstream.namespace": "test", "jetstream.shards": "test", "jetstream.sweep_scan_secs": "test"},
    })
    .to_string()
}

#[test]
fn jetstream_passes_the_contract() {
    let cluster = ds_nats_cluster::Cluster::start(3);
    let urls = cluster.urls();
    let n = AtomicU64::new(0);
    let summary = durable_streams_engine_tests::run(&|| {
        let ns = format!("c{}", n.fetch_add(1, Ordering::Relaxed));
        ds_plugin_jetstream::open("jetstream", &settings(&urls, &ns)).expect("open")
    });
    println!("jetstream: {}", summary.report());
    assert!(summary.ok(), "{}", summary.report());
}
