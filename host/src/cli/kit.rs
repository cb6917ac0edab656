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
/// The plugin's own settings come from `config` (the operator's configuration), so a plugin that
/// needs some (a cluster address) is checked as it will run. Each case opens a fresh engine with
/// its own `data_dir` and a unique `isolate` token (engines whose data lives elsewhere keep the
/// streams of different tokens apart).
pub fn check(path: &Path, mode: &str, scratch: &Path, config: &crate::Config) -> Result<KitReport, KitError> {
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
        let mut config = config.clone();
        config.storage.mode = mode.to_string();
        config.storage.data_dir = dir.to_path_buf();
        let mut cfg: serde_json::Value =
            serde_json::from_str(&crate::engine_config_json(&config)).unwrap_or_else(|_| serde_json::json!({}));
        cfg["isolate"] = format!(
            "kit-{}-{}",
            std::process::id(),
            dir.file_name().and_then(|n| n.to_str()).unwrap_or("case")
        )
        .into();
        let cfg = cfg.to_string();
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
