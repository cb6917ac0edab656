//! The acid engine, linked as a Rust library, against the engine contract suite (file and memory backends).

use std::sync::atomic::{AtomicU64, Ordering};

use abi_stable::sabi_trait::TD_Opaque;
use ds_plugin_acid::open_engine;
use durable_streams_core::abi::{EngineBox, GuardedEngine};

fn fresh_dir() -> std::path::PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let d = std::env::temp_dir().join(format!(
        "ds-acid-contract-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn run(backend: &str, shards: usize) {
    let summary = durable_streams_engine_tests::run(&|| {
        let e = open_engine(fresh_dir(), backend, shards, Default::default()).expect("open");
        EngineBox::from_value(GuardedEngine::new(e), TD_Opaque)
    });
    println!("acid/{backend}/{shards}: {}", summary.report());
    assert!(summary.ok(), "{}", summary.report());
}

#[test]
fn acid_file_passes_the_contract() {
    run("file", 4);
}

#[test]
fn acid_memory_passes_the_contract() {
    run("memory", 2);
}

#[test]
fn acid_file_survives_reopen() {
    let root = fresh_dir();
    let summary = durable_streams_engine_tests::durability::run(
        &|dir: &std::path::Path| {
            let e = open_engine(dir.to_path_buf(), "file", 4, Default::default()).expect("open");
            EngineBox::from_value(GuardedEngine::new(e), TD_Opaque)
        },
        &root,
    );
    println!("acid durability: {}", summary.report());
    let _ = std::fs::remove_dir_all(&root);
    assert!(summary.ok(), "{}", summary.report());
}
