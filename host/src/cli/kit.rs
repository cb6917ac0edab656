//! `plugins check`: the conformance kit for plugin authors. Loads a `.so` exactly as the server
//! does and runs the engine contract suite against it (plus crash-and-reopen cases for engines
//! that declare `DURABLE`), each case on a fresh engine in its own data directory.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use abi_stable::std_types::{RResult, RStr};
use durable_streams_core::abi::{Capabilities, EngineBox};
use durable_streams_engine_tests::{durability, Summary};

use crate::plugin::load_one;

/// Why the kit could not run.
#[derive(Debug, thiserror::Error)]
pub enum KitError {
    #[error("{path}: {reason}")]
    Load { path: String, reason: String },
    #[error("{path} does not provide mode '{mode}' (it provides: {available})")]
    NoMode { path: String, mode: String, available: String },
    #[error("cannot create a scratch directory: {0}")]
    Io(#[from] std::io::Error),
}

/// The kit's result: the contract run and, for durable engines, the reopen run.
pub struct KitReport {
    pub contract: Summary,
    pub durability: Option<Summary>,
}

impl KitReport {
    pub fn passed(&self) -> usize {
        self.contract.passed.len() + self.durability.as_ref().map_or(0, |d| d.passed.len())
    }
    pub fn failed(&self) -> usize {
        self.contract.failed.len() + self.durability.as_ref().map_or(0, |d| d.failed.len())
    }
    /// One line per failure, then `N passed, N failed`.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for (name, f) in self
            .contract
            .failed
            .iter()
            .chain(self.durability.iter().flat_map(|d| d.failed.iter()))
        {
            s.push_str(&format!("FAILED {name}: {f}\n"));
        }
        s.push_str(&format!("{} passed, {} failed", self.passed(), self.failed()));
        s
    }
}

/// Runs the kit against the plugin at `path` for `mode`; `scratch` holds the data directories.
pub fn check(path: &Path, mode: &str, scratch: &Path) -> Result<KitReport, KitError> {
    let plugin = load_one(path).map_err(|reason| KitError::Load {
        path: path.display().to_string(),
        reason,
    })?;
    let Some(info) = plugin.info.modes.iter().find(|m| m.mode.as_str() == mode) else {
        let available = plugin.info.modes.iter().map(|m| m.mode.to_string()).collect::<Vec<_>>().join(", ");
        return Err(KitError::NoMode {
            path: path.display().to_string(),
            mode: mode.into(),
            available,
        });
    };
    let durable = info.capabilities.contains(Capabilities::DURABLE);
    std::fs::create_dir_all(scratch)?;
    let counter = AtomicU64::new(0);
    let open_at = |dir: &Path| -> EngineBox {
        let cfg = serde_json::json!({"mode": mode, "data_dir": dir, "acid_shard_count": 2, "acid_backend": "file"}).to_string();
        match (plugin.module.open())(RStr::from(mode), RStr::from(cfg.as_str())) {
            RResult::ROk(e) => e,
            RResult::RErr(e) => panic!("open({mode}) failed: {e}"),
        }
    };
    let fresh = || -> EngineBox {
        let dir: PathBuf = scratch.join(format!("case-{}", counter.fetch_add(1, Ordering::Relaxed)));
        open_at(&dir)
    };
    let contract = durable_streams_engine_tests::run(&fresh);
    let durability = durable.then(|| durability::run(&open_at, &scratch.join("durability")));
    Ok(KitReport { contract, durability })
}
