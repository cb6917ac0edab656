//! The `memory` storage engine: streams held in process memory, lost on restart; exported as a plugin.
//!
//! Built both as a `cdylib` (loaded by the server through the stable ABI) and as an `rlib`
//! (linked by embedders and tests as [`InMemoryStorage`]). Knows nothing of HTTP or tokio.

mod store;

use abi_stable::sabi_trait::TD_Opaque;
use durable_streams_core::abi::{Capabilities, EngineBox, EngineError, ErrorCode, GuardedEngine, ModeInfo, PluginInfo};

pub use store::{InMemoryStorage, MemoryStore};

/// The storage mode this plugin provides.
pub const MODE: &str = "memory";

/// What this plugin reports about itself (also for embedders wrapping the engine in-process).
pub fn info() -> PluginInfo {
    durable_streams_core::plugin_info![ModeInfo::new(
        MODE,
        Capabilities::default(),
        "in-process memory; fast, lost on restart"
    )]
}

/// Opens the engine for `mode` from the JSON configuration, as the server would.
pub fn open(mode: &str, config: &str) -> Result<EngineBox, EngineError> {
    if mode != MODE {
        return Err(EngineError::new(
            ErrorCode::UNKNOWN_MODE,
            format!("the memory plugin does not provide mode '{mode}'"),
        ));
    }
    // No settings of its own: any `memory_*` key is refused, naming its source.
    let settings = durable_streams_core::settings::Settings::parse(config, &[MODE])?;
    settings.finish()?;
    if settings.validate_only() {
        return Ok(durable_streams_core::abi::SettingsChecked::boxed());
    }
    let limits = settings.limits();
    Ok(EngineBox::from_value(
        GuardedEngine::new(InMemoryStorage::with_limits(limits)),
        TD_Opaque,
    ))
}

#[cfg(feature = "export")]
durable_streams_core::export_plugin!(info = info, open = open);

/// Built as a plugin, its allocations (catalogue entries, each group's vectors, the streams'
/// blocks) go to mimalloc, as the host's do: 8-20 % less CPU per append than glibc's malloc
/// (BENCHMARKS.md). Memory crossing the ABI is freed by the side that allocated it (abi_stable's
/// vtables), so two allocators in one process never meet. The file and acid plugins keep
/// glibc's: there mimalloc's per-thread pages (creates run on up to 64 blocking threads) raised
/// the resident bytes per idle stream by half (acid: 393 to 606 B at a million streams), for a
/// CPU gain this box's noise did not let the benchmark separate.
#[cfg(feature = "export")]
#[global_allocator]
static ALLOCATOR: durable_streams_alloc::Mimalloc = durable_streams_alloc::Mimalloc;
