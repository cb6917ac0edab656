//! Both file modes, linked as a Rust library, against the engine contract suite; plus reopen.

use std::sync::atomic::{AtomicU64, Ordering};

use abi_stable::sabi_trait::TD_Opaque;
use ds_plugin_file::{durability_of, open_mode, FileOptions, MODE_DURABLE, MODE_FAST};
use durable_streams_core::abi::{EngineBox, GuardedEngine};

fn fresh_dir() -> std::path::PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let d = std::env::temp_dir().join(format!(
        "ds-file-contract-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn options(mode: &str) -> FileOptions {
    FileOptions::new(durability_of(mode).expect("mode"))
}

/// Tiny segments compacted every millisecond: the contract holds while records move.
fn churning(mode: &str) -> FileOptions {
    FileOptions {
        segment_bytes: 4096,
        compact_interval_ms: 1,
        ..options(mode)
    }
}

fn run(mode: &str) {
    run_with(mode, options(mode));
}

fn run_with(mode: &str, opts: FileOptions) {
    let summary = durable_streams_engine_tests::run(&|| {
        let e = open_mode(fresh_dir(), &opts).expect("open");
        EngineBox::from_value(GuardedEngine::new(e), TD_Opaque)
    });
    println!("{mode}: {}", summary.report());
    assert!(summary.ok(), "{}", summary.report());
}

#[test]
fn file_durable_passes_the_contract() {
    run(MODE_DURABLE);
}

#[test]
fn file_fast_passes_the_contract() {
    run(MODE_FAST);
}

#[test]
fn file_durable_passes_the_contract_while_compacting() {
    run_with(MODE_DURABLE, churning(MODE_DURABLE));
}

fn run_durable(mode: &str) {
    run_durable_with(mode, options(mode));
}

fn run_durable_with(mode: &str, opts: FileOptions) {
    let root = fresh_dir();
    let summary = durable_streams_engine_tests::durability::run(
        &|dir: &std::path::Path| {
            let e = open_mode(dir.to_path_buf(), &opts).expect("open");
            EngineBox::from_value(GuardedEngine::new(e), TD_Opaque)
        },
        &root,
    );
    println!("{mode} durability: {}", summary.report());
    let _ = std::fs::remove_dir_all(&root);
    assert!(summary.ok(), "{}", summary.report());
}

#[test]
fn file_durable_survives_reopen() {
    run_durable(MODE_DURABLE);
}

#[test]
fn file_fast_survives_reopen() {
    run_durable(MODE_FAST);
}

#[test]
fn file_durable_survives_reopen_while_compacting() {
    run_durable_with(MODE_DURABLE, churning(MODE_DURABLE));
}
