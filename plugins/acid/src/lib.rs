//! The `acid` storage engine (redb), exported as a plugin: data, producer state and closure of
//! each append group committed in one transaction per shard.
//!
//! Streams are spread over `storage.acid_shard_count` redb files (`<data_dir>/acid/shard-NNN.redb`)
//! by a stable hash of their name; `storage.acid_backend = "memory"` keeps the shards in memory.

mod load;
mod rows;
mod shard;
mod store;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use abi_stable::sabi_trait::TD_Opaque;
use durable_streams_catalog::{Catalog, OpenOptions};
use durable_streams_core::abi::*;
use durable_streams_core::limits::Limits;
use parking_lot::Mutex;

pub use store::{shard_of, AcidStore};

durable_streams_catalog::named_engine! {
    /// The acid engine: the stream catalogue over an [`AcidStore`].
    pub struct AcidStorage(AcidStore);
}

/// Where shards live.
pub enum Backend<'a> {
    /// Shard files in `dir`; `create: false` opens existing data only and creates no file
    /// (the offline `list` / `export` commands).
    File {
        dir: &'a Path,
        create: bool,
        /// `acid_quick_repair`: every commit also saves what a restart after a crash needs
        /// (about half the commit rate; a crash then costs no repair at the next start).
        quick_repair: bool,
    },
    Memory,
}

impl AcidStorage {
    pub fn open(backend: Backend<'_>, shard_count: usize) -> Result<AcidStorage, EngineError> {
        Self::open_with(backend, shard_count, Limits::default())
    }

    /// Opens the shards, enforcing `limits.max_stream_bytes`.
    pub fn open_with(backend: Backend<'_>, shard_count: usize, limits: Limits) -> Result<AcidStorage, EngineError> {
        Self::open_slack(backend, shard_count, limits, 60_000)
    }

    /// [`AcidStorage::open_with`], saved access times taken with `access_slack_ms` of slack.
    pub fn open_slack(backend: Backend<'_>, shard_count: usize, limits: Limits, access_slack_ms: u64) -> Result<AcidStorage, EngineError> {
        if shard_count > 1024 {
            return Err(EngineError::new(
                ErrorCode::BAD_CONFIG,
                format!("storage.acid_shard_count must be between 0 and 1024, not {shard_count}"),
            ));
        }
        let (shards, writable) = match backend {
            Backend::Memory => (
                (0..shard_count.max(1))
                    .map(|_| shard::Shard::open_memory())
                    .collect::<Result<Vec<_>, _>>()?,
                true,
            ),
            Backend::File { dir, create, quick_repair } => {
                let mut shards = load::open_shard_files(dir, shard_count, create)?;
                for s in &mut shards {
                    s.quick_repair = quick_repair;
                }
                (shards, create)
            }
        };
        let counters = shards.iter().map(|s| s.next_counter()).collect::<Result<Vec<_>, _>>()?;
        let streams = load::recovered(&shards)?;
        let store = AcidStore {
            shards,
            counters: Mutex::new(counters),
            recovered_streams: streams.len(),
        };
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let opts = OpenOptions {
            limits,
            collect_orphans: writable,
            now_ms,
            access_slack_ms,
        };
        Ok(AcidStorage(Catalog::open(store, streams, opts)?))
    }
}

pub const MODE: &str = "acid";

/// What this plugin reports about itself (also for embedders wrapping the engine in-process).
pub fn info() -> PluginInfo {
    durable_streams_core::plugin_info![ModeInfo::new(
        MODE,
        Capabilities::DURABLE
            .union(Capabilities::SYNCED)
            .union(Capabilities::BATCH_APPEND)
            .union(Capabilities::BLOCKING_IO)
            .union(Capabilities::MEMORY_HEAD),
        "redb: each append group committed in one transaction per shard"
    )]
}

/// Opens the acid engine: `backend` is "file" (under `data_dir/acid`) or "memory".
pub fn open_engine(data_dir: PathBuf, backend: &str, shards: usize, limits: Limits) -> Result<AcidEngine, EngineError> {
    open_engine_with(&AcidOptions {
        data_dir,
        backend,
        shard_count: shards,
        limits,
        open_existing: false,
        compact_interval_secs: 60,
        access_slack_ms: 60_000,
        quick_repair: false,
    })
}

/// The acid engine with its background compaction, stopped and joined when it is dropped.
pub struct AcidEngine {
    // Declared first: dropped (thread joined) before the engine.
    _background: durable_streams_catalog::Background,
    engine: Arc<AcidStorage>,
}

impl std::ops::Deref for AcidEngine {
    type Target = AcidStorage;
    fn deref(&self) -> &AcidStorage {
        &self.engine
    }
}

durable_streams_catalog::engine_via_deref!(AcidEngine);

impl AcidStorage {
    /// Compacts every shard file that is mostly free now; returns the bytes given back.
    pub fn compact(&self) -> Result<u64, EngineError> {
        let mut total = 0;
        for shard in &self.store().shards {
            total += shard.compact_now()?;
        }
        Ok(total)
    }
}

/// How to open the acid engine.
pub struct AcidOptions<'a> {
    pub data_dir: PathBuf,
    /// "file" (under `data_dir/acid`) or "memory".
    pub backend: &'a str,
    pub shard_count: usize,
    pub limits: Limits,
    /// Open existing data only, creating no file (offline `list` / `export`).
    pub open_existing: bool,
    /// `acid_compact_interval_secs`: how often shard files are checked for compaction (0: only
    /// at open).
    pub compact_interval_secs: u64,
    /// The host's `ttl_save_interval_ms` (see `OpenOptions::access_slack_ms`).
    pub access_slack_ms: u64,
    /// `acid_quick_repair` (see [`Backend::File`]).
    pub quick_repair: bool,
}

/// Opens the acid engine as `opts` say.
pub fn open_engine_with(opts: &AcidOptions<'_>) -> Result<AcidEngine, EngineError> {
    let dir = opts.data_dir.join("acid");
    let b = match opts.backend {
        "file" => Backend::File {
            dir: &dir,
            create: !opts.open_existing,
            quick_repair: opts.quick_repair,
        },
        "memory" => Backend::Memory,
        other => {
            return Err(EngineError::new(
                ErrorCode::BAD_CONFIG,
                format!("storage.acid_backend must be 'file' or 'memory', not '{other}'"),
            ))
        }
    };
    let engine = Arc::new(AcidStorage::open_slack(b, opts.shard_count, opts.limits, opts.access_slack_ms)?);
    let mut background = durable_streams_catalog::Background::default();
    if opts.compact_interval_secs > 0 && !opts.open_existing {
        let weak = Arc::downgrade(&engine);
        background.every("ds-acid-compact", opts.compact_interval_secs * 1000, move || {
            let Some(engine) = weak.upgrade() else { return false };
            // A failure (a full disk) leaves the file as it was; tried again next time.
            let _ = engine.compact();
            true
        });
    }
    Ok(AcidEngine {
        _background: background,
        engine,
    })
}

/// Opens the engine for `mode` from the JSON configuration, as the server would.
pub fn open(mode: &str, config: &str) -> Result<EngineBox, EngineError> {
    if mode != MODE {
        return Err(EngineError::new(
            ErrorCode::UNKNOWN_MODE,
            format!("the acid plugin does not provide mode '{mode}'"),
        ));
    }
    let settings = durable_streams_core::settings::Settings::parse(config, &[MODE])?;
    let backend = settings.one_of("acid_backend", "file", &["file", "memory"])?;
    let shards = settings.u64("acid_shard_count", 0, 0..=1024)? as usize;
    let compact_interval_secs = settings.u64("acid_compact_interval_secs", 60, 0..=86_400)?;
    let quick_repair = settings.bool("acid_quick_repair", false)?;
    settings.finish()?;
    if settings.validate_only() {
        return Ok(SettingsChecked::boxed());
    }
    let engine = open_engine_with(&AcidOptions {
        data_dir: settings.data_dir(),
        backend: &backend,
        shard_count: shards,
        limits: settings.limits(),
        open_existing: settings.open_existing(),
        compact_interval_secs,
        access_slack_ms: settings.ttl_save_interval_ms(),
        quick_repair,
    })?;
    Ok(EngineBox::from_value(GuardedEngine::new(engine), TD_Opaque))
}

#[cfg(feature = "export")]
durable_streams_core::export_plugin!(info = info, open = open);
