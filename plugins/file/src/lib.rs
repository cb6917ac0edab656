//! The `file-fast` and `file-durable` storage engines, exported as one plugin.
//!
//! Both modes share one on-disk format: a checksummed write-ahead log of segment files under
//! `<data_dir>/file/` (format in [`record`]), shared by every stream, so a million streams need
//! no million open files. `file-durable` fdatasyncs each group of appends before acknowledging
//! it; `file-fast` writes to the OS before acknowledging (a process crash loses nothing) and
//! fsyncs every `storage.file_fast_sync_interval_ms` (a machine crash may lose that window).

mod engine;
mod engine_abi;
mod log;
pub mod record;
mod replay;
mod stream;

use std::path::PathBuf;
use std::sync::Arc;

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::RVec;
use durable_streams_core::abi::*;
use durable_streams_core::limits::Limits;

pub use engine::{Durability, FileStorage};

pub const MODE_FAST: &str = "file-fast";
pub const MODE_DURABLE: &str = "file-durable";

/// What this plugin reports about itself (also for embedders wrapping the engine in-process).
pub fn info() -> PluginInfo {
    let base = Capabilities::DURABLE
        .union(Capabilities::BATCH_APPEND)
        .union(Capabilities::BLOCKING_IO);
    PluginInfo {
        name: env!("CARGO_PKG_NAME").into(),
        version: env!("CARGO_PKG_VERSION").into(),
        abi_version: ABI_VERSION.into(),
        rustc: option_env!("RUSTC_VERSION").unwrap_or("unknown").into(),
        modes: RVec::from(vec![
            ModeInfo {
                mode: MODE_FAST.into(),
                capabilities: base,
                description: "write-ahead log, buffered: survives a process crash; fsync every interval".into(),
            },
            ModeInfo {
                mode: MODE_DURABLE.into(),
                capabilities: base.union(Capabilities::SYNCED),
                description: "write-ahead log, fdatasync per group commit before acknowledging".into(),
            },
        ]),
    }
}

/// Opens a file engine in `data_dir/file` for `mode`.
pub fn open_mode(mode: &str, data_dir: PathBuf, sync_interval_ms: u64, limits: Limits) -> Result<Arc<FileStorage>, EngineError> {
    let durability = match mode {
        MODE_FAST => Durability::Buffered,
        MODE_DURABLE => Durability::Synced,
        _ => {
            return Err(EngineError::new(
                ErrorCode::UNKNOWN_MODE,
                format!("the file plugin does not provide mode '{mode}'"),
            ))
        }
    };
    let engine = Arc::new(FileStorage::open(&data_dir.join("file"), durability)?.with_limits(limits));
    engine.start_background_sync(sync_interval_ms);
    Ok(engine)
}

/// For the offline `list` / `export`: refuses a data directory holding no file-mode log rather
/// than creating one (a misspelt `storage.data_dir` would otherwise look like empty data).
pub fn require_existing(data_dir: &std::path::Path) -> Result<(), EngineError> {
    let dir = data_dir.join("file");
    let has_log = std::fs::read_dir(&dir).is_ok_and(|rd| {
        rd.flatten()
            .any(|e| e.file_name().to_str().is_some_and(|n| n.starts_with("seg-") && n.ends_with(".log")))
    });
    if has_log {
        return Ok(());
    }
    let hint = if data_dir.join("acid").is_dir() {
        format!(" ({} holds acid data: use storage.mode = \"acid\")", data_dir.display())
    } else {
        String::new()
    };
    Err(EngineError::new(
        ErrorCode::BAD_CONFIG,
        format!(
            "no file-mode data in {} (no {}/seg-*.log){hint}; check storage.data_dir",
            data_dir.display(),
            dir.display()
        ),
    ))
}

/// Opens the engine for `mode` from the JSON configuration, as the server would.
pub fn open(mode: &str, config: &str) -> Result<EngineBox, EngineError> {
    let settings = durable_streams_core::settings::Settings::parse(config, &[MODE_FAST, MODE_DURABLE])?;
    let interval = settings.u64("file_fast_sync_interval_ms", 1000, 0..=3_600_000)?;
    settings.finish()?;
    if ![MODE_FAST, MODE_DURABLE].contains(&mode) {
        return Err(EngineError::new(
            ErrorCode::UNKNOWN_MODE,
            format!("the file plugin does not provide mode '{mode}'"),
        ));
    }
    if settings.validate_only() {
        return Ok(SettingsChecked::boxed());
    }
    let data_dir = settings.data_dir();
    if settings.open_existing() {
        require_existing(&data_dir)?;
    }
    let engine = open_mode(mode, data_dir, interval, settings.limits())?;
    Ok(EngineBox::from_value(GuardedEngine::new(engine), TD_Opaque))
}

#[cfg(feature = "export")]
durable_streams_core::export_plugin!(info = info, open = open);
