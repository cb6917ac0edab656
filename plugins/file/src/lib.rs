//! The `file-fast` and `file-durable` storage engines, exported as one plugin.
//!
//! Both modes share one on-disk format: a checksummed write-ahead log of segment files under
//! `<data_dir>/file/` (format in [`record`]), shared by every stream, so a million streams need
//! no million open files. `file-durable` fdatasyncs each group of appends before acknowledging
//! it; `file-fast` writes to the OS before acknowledging (a process crash loses nothing) and
//! fsyncs every `storage.file_fast_sync_interval_ms` (a machine crash may lose that window).

mod compact;
mod log;
pub mod record;
mod replay;
mod rewrite;
mod scan;
mod store;
mod vread;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use abi_stable::sabi_trait::TD_Opaque;
use durable_streams_catalog::{Catalog, OpenOptions};
use durable_streams_core::abi::*;
use durable_streams_core::limits::Limits;
use parking_lot::Mutex;

pub use compact::{Done as Compaction, Policy};
use durable_streams_catalog::Background;
pub use log::SEGMENT_BYTES;
pub use store::{Durability, FileStore};

/// How to open a file engine (the `[storage]` keys it reads, with their defaults).
#[derive(Clone, Copy, Debug)]
pub struct FileOptions {
    pub durability: Durability,
    pub limits: Limits,
    /// `file_segment_bytes`: segments roll over past this size.
    pub segment_bytes: u64,
    /// `file_fast_sync_interval_ms`: file-fast's periodic fsync (0: never).
    pub sync_interval_ms: u64,
    /// `file_compact_interval_ms`: how often the background compaction looks (0: never).
    pub compact_interval_ms: u64,
    /// `file_compact_dead_percent`.
    pub compaction: Policy,
    /// The host's `ttl_save_interval_ms`: slack for saved access times at open.
    pub access_slack_ms: u64,
}

impl FileOptions {
    /// The defaults for a durability.
    pub fn new(durability: Durability) -> FileOptions {
        FileOptions {
            durability,
            limits: Limits::default(),
            segment_bytes: SEGMENT_BYTES,
            sync_interval_ms: 1000,
            compact_interval_ms: 1000,
            compaction: Policy { dead_percent: 50 },
            access_slack_ms: 60_000,
        }
    }
}

durable_streams_catalog::named_engine! {
    /// The file engine: the stream catalogue over a [`FileStore`].
    pub struct FileStorage(FileStore);
}

impl FileStorage {
    /// Opens (recovering) the log under `dir` with the default options.
    pub fn open(dir: &Path, durability: Durability) -> Result<FileStorage, EngineError> {
        Self::open_with(dir, &FileOptions::new(durability))
    }

    /// Opens (recovering) the log under `dir`; starts no background thread.
    pub fn open_with(dir: &Path, opts: &FileOptions) -> Result<FileStorage, EngineError> {
        let r = replay::recover(dir, opts.segment_bytes)?;
        let store = FileStore {
            log: r.log,
            tail: Mutex::new(r.tail),
            next_id: AtomicU64::new(r.next_id),
            durability: opts.durability,
            stop: Arc::new(AtomicBool::new(false)),
            recovered_streams: r.streams.len(),
            orphans_skipped: r.orphans,
            tombs: Mutex::new(r.tombs),
            compactions: Default::default(),
            compacting: Mutex::new(()),
        };
        let open = OpenOptions {
            limits: opts.limits,
            collect_orphans: false,
            now_ms: now_ms(),
            access_slack_ms: opts.access_slack_ms,
        };
        let engine = FileStorage(Catalog::open(store, r.streams, open)?);
        engine.count_dead_at_open();
        Ok(engine)
    }

    /// Estimates each segment's dead bytes after replay: what no stream's record accounts for.
    fn count_dead_at_open(&self) {
        let log = &self.store().log;
        let mut live: std::collections::HashMap<u32, u64> = Default::default();
        self.0.visit_streams(|s| {
            *live.entry(s.data.create_seg.load(Ordering::Relaxed)).or_default() += 96;
            for e in s.data.list.lock().iter().filter(|e| e.start + e.data_len as u64 > s.start) {
                *live.entry(e.loc.seg).or_default() += e.loc.len as u64;
            }
        });
        let active = self.store().tail.lock().seg();
        for (key, seg) in log.segments.read().iter() {
            if seg.disk < active {
                let bytes = seg.bytes.load(Ordering::Relaxed);
                seg.dead
                    .store(bytes.saturating_sub(live.get(key).copied().unwrap_or(0)), Ordering::Relaxed);
            }
        }
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
        .union(Capabilities::BLOCKING_IO)
        .union(Capabilities::MEMORY_HEAD);
    durable_streams_core::plugin_info![
        ModeInfo::new(
            MODE_FAST,
            base,
            "write-ahead log, buffered: survives a process crash; fsync every interval"
        ),
        ModeInfo::new(
            MODE_DURABLE,
            base.union(Capabilities::SYNCED),
            "write-ahead log, fdatasync per group commit before acknowledging"
        ),
    ]
}

/// The durability of `mode`.
pub fn durability_of(mode: &str) -> Result<Durability, EngineError> {
    match mode {
        MODE_FAST => Ok(Durability::Buffered),
        MODE_DURABLE => Ok(Durability::Synced),
        _ => Err(EngineError::new(
            ErrorCode::UNKNOWN_MODE,
            format!("the file plugin does not provide mode '{mode}'"),
        )),
    }
}

/// A file engine with its background threads (file-fast's periodic fsync, compaction), which
/// are stopped and joined when it is dropped.
pub struct FileEngine {
    // Declared first: dropped (threads joined) before the engine.
    _background: Background,
    engine: Arc<FileStorage>,
}

impl std::ops::Deref for FileEngine {
    type Target = FileStorage;
    fn deref(&self) -> &FileStorage {
        &self.engine
    }
}

durable_streams_catalog::engine_via_deref!(FileEngine);

impl FileEngine {
    /// The engine itself (for embedders and tests that run compaction).
    pub fn storage(&self) -> Arc<FileStorage> {
        self.engine.clone()
    }
}

/// Opens a file engine in `data_dir/file` with its background threads.
pub fn open_mode(data_dir: PathBuf, opts: &FileOptions) -> Result<FileEngine, EngineError> {
    let engine = Arc::new(FileStorage::open_with(&data_dir.join("file"), opts)?);
    let mut background = Background::default();
    if opts.durability == Durability::Buffered && opts.sync_interval_ms > 0 {
        let weak = Arc::downgrade(&engine);
        background.every("ds-file-sync", opts.sync_interval_ms, move || {
            let Some(engine) = weak.upgrade() else { return false };
            let store = engine.store();
            if store.stop.load(Ordering::Acquire) {
                return false;
            }
            let seg = store.log.active_seg(&store.tail.lock());
            let _ = seg.file.sync_data();
            true
        });
    }
    if opts.compact_interval_ms > 0 {
        let weak = Arc::downgrade(&engine);
        let policy = opts.compaction;
        background.every("ds-file-compact", opts.compact_interval_ms, move || {
            let Some(engine) = weak.upgrade() else { return false };
            if engine.store().stop.load(Ordering::Acquire) {
                return false;
            }
            // A failure (a full disk) leaves the inputs as they were; counted, retried later.
            let _ = engine.compact(policy);
            true
        });
    }
    Ok(FileEngine {
        _background: background,
        engine,
    })
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
    let mut opts = FileOptions::new(durability_of(mode)?);
    opts.sync_interval_ms = settings.u64("file_fast_sync_interval_ms", 1000, 0..=3_600_000)?;
    opts.segment_bytes = settings.u64("file_segment_bytes", SEGMENT_BYTES, 4096..=(1 << 30))?;
    opts.compact_interval_ms = settings.u64("file_compact_interval_ms", 1000, 0..=86_400_000)?;
    opts.compaction.dead_percent = settings.u64("file_compact_dead_percent", 50, 10..=90)?;
    opts.limits = settings.limits();
    opts.access_slack_ms = settings.ttl_save_interval_ms();
    settings.finish()?;
    if settings.validate_only() {
        return Ok(SettingsChecked::boxed());
    }
    let data_dir = settings.data_dir();
    if settings.open_existing() {
        require_existing(&data_dir)?;
    }
    let engine = open_mode(data_dir, &opts)?;
    Ok(EngineBox::from_value(GuardedEngine::new(engine), TD_Opaque))
}

#[cfg(feature = "export")]
durable_streams_core::export_plugin!(info = info, open = open);
