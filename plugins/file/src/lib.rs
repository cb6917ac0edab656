//! The `file-fast` and `file-durable` storage engines, exported as one plugin.
//!
//! Both modes share one on-disk format: a checksummed write-ahead log of segment files under
//! `<data_dir>/file/` (format in [`record`]), shared by every stream, so a million streams need
//! no million open files. `file-durable` fdatasyncs each group of appends before acknowledging
//! it; `file-fast` writes to the OS before acknowledging (a process crash loses nothing) and
//! fsyncs every `storage.file_fast_sync_interval_ms` (a machine crash may lose that window).

mod log;
pub mod record;
mod replay;
mod store;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::RVec;
use durable_streams_catalog::{Catalog, OpenOptions};
use durable_streams_core::abi::*;
use durable_streams_core::limits::Limits;
use parking_lot::Mutex;

pub use store::{Durability, FileStore};

durable_streams_catalog::named_engine! {
    /// The file engine: the stream catalogue over a [`FileStore`].
    pub struct FileStorage(FileStore);
}

impl FileStorage {
    /// Opens (recovering) the log under `dir`.
    pub fn open(dir: &Path, durability: Durability) -> Result<FileStorage, EngineError> {
        Self::open_with(dir, durability, Limits::default())
    }

    /// Opens the log under `dir`, enforcing `limits.max_stream_bytes`.
    pub fn open_with(dir: &Path, durability: Durability, limits: Limits) -> Result<FileStorage, EngineError> {
        let r = replay::recover(dir)?;
        let store = FileStore {
            log: r.log,
            tail: Mutex::new(r.tail),
            next_id: AtomicU64::new(r.next_id),
            durability,
            stop: Arc::new(AtomicBool::new(false)),
            recovered_streams: r.streams.len(),
        };
        let opts = OpenOptions {
            limits,
            collect_orphans: false,
            now_ms: now_ms(),
        };
        Ok(FileStorage(Catalog::open(store, r.streams, opts)?))
    }

    /// file-fast: fsync the active segment every `interval_ms` on a background thread.
    pub fn start_background_sync(self: &Arc<Self>, interval_ms: u64) {
        if self.store().durability != Durability::Buffered || interval_ms == 0 {
            return;
        }
        let weak = Arc::downgrade(self);
        let stop = self.store().stop.clone();
        let _ = std::thread::Builder::new().name("ds-file-sync".into()).spawn(move || loop {
            std::thread::sleep(std::time::Duration::from_millis(interval_ms));
            if stop.load(Ordering::Acquire) {
                return;
            }
            let Some(engine) = weak.upgrade() else { return };
            let file = {
                let tail = engine.store().tail.lock();
                engine.store().log.active_file(&tail)
            };
            let _ = file.sync_data();
        });
    }
}

impl Drop for FileStorage {
    fn drop(&mut self) {
        self.store().stop.store(true, Ordering::Release);
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

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
    let engine = Arc::new(FileStorage::open_with(&data_dir.join("file"), durability, limits)?);
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
