//! Both file modes, linked as a Rust library, against the engine contract suite; plus reopen.

use std::sync::atomic::{AtomicU64, Ordering};

use abi_stable::sabi_trait::TD_Opaque;
use ds_plugin_file::{open_mode, MODE_DURABLE, MODE_FAST};
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

fn run(mode: &str) {
    let summary = durable_streams_engine_tests::run(&|| {
        let e = open_mode(mode, fresh_dir(), 1000, Default::default()).expect("open");
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

fn run_durable(mode: &str) {
    let root = fresh_dir();
    let summary = durable_streams_engine_tests::durability::run(
        &|dir: &std::path::Path| {
            let e = open_mode(mode, dir.to_path_buf(), 1000, Default::default()).expect("open");
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
