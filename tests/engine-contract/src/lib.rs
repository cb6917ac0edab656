//! The engine contract suite: cases every storage engine must pass, run against any `EngineBox`.
//!
//! Engines differ in how they are built (in-process rlib, `.so` loaded through the ABI); the suite
//! only needs a factory that opens a fresh, empty engine. Case modules follow the contract's
//! capabilities: lifecycle, append rules, reads, forks, lifetime, listing.

mod cases;
pub mod durability;
mod support;

pub use support::{delete, read_all, Append, Case, Create, Failure, Summary, NOW};

use durable_streams_core::abi::EngineBox;

/// Opens a fresh, empty engine for one case.
pub trait EngineFactory {
    fn open(&self) -> EngineBox;
}

impl<F: Fn() -> EngineBox> EngineFactory for F {
    fn open(&self) -> EngineBox {
        self()
    }
}

/// Every case of the suite.
pub fn cases() -> Vec<Case> {
    cases::all()
}

/// Runs every case, each on a fresh engine, catching panics as failures.
pub fn run(factory: &dyn EngineFactory) -> Summary {
    let mut summary = Summary::default();
    for case in cases() {
        let engine = factory.open();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (case.run)(&engine)));
        let outcome = match result {
            Ok(r) => r,
            Err(_) => Err(Failure::new("the case panicked")),
        };
        match outcome {
            Ok(()) => summary.passed.push(case.name),
            Err(f) => summary.failed.push((case.name, f)),
        }
        let _ = engine.shutdown();
    }
    summary
}
