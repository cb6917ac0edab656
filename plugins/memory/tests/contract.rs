//! The memory engine, linked as a Rust library, against the engine contract suite.

use abi_stable::sabi_trait::TD_Opaque;
use ds_plugin_memory::InMemoryStorage;
use durable_streams_core::abi::{EngineBox, GuardedEngine};

#[test]
fn memory_engine_passes_the_contract() {
    let summary = durable_streams_engine_tests::run(&|| EngineBox::from_value(GuardedEngine::new(InMemoryStorage::new()), TD_Opaque));
    println!("{}", summary.report());
    assert!(summary.ok(), "{}", summary.report());
    assert!(summary.passed.len() >= 30);
}
