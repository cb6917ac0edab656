//! The `jetstream` storage engine: streams kept in a NATS JetStream cluster, so that several
//! hosts serve one data set and the loss of a node loses nothing acknowledged.
//!
//! Layout (see `ARCHITECTURE.md`): a catalogue stream `<ns>_cat` holds one record per stream name
//! (subject `<ns>.cat.<hash>`, last value only); the data of each stream incarnation lives on one
//! subject `<ns>.d.<k>.<hash>.<gen>` of one of `jetstream.shards` data streams `<ns>_d<k>`, one
//! message per append, each carrying the writer state after it. Appends are compare-and-set on
//! the subject's last sequence plus a message id, so racing hosts serialize and retries
//! deduplicate. Notifications of appends are republished (headers only) to `<ns>.n.>` and wake
//! live readers on every host. Small compare-and-set registers (`<ns>.cat.reg.<hash>`) carry the
//! hosts' shared leases.

mod catalog;
mod clock;
mod cluster;
mod data;
mod engine;
mod lasts;
mod names;
mod register;

use abi_stable::sabi_trait::TD_Opaque;
use durable_streams_core::abi::*;
use durable_streams_core::settings::Settings;

pub use cluster::{ClusterSettings, Credentials};
pub use engine::JetStreamStorage;

pub const MODE: &str = "jetstream";
/// The oldest NATS server this plugin runs on (checked when it connects).
pub const MIN_SERVER: (u64, u64, u64) = (2, 11, 0);

/// What this plugin reports about itself.
pub fn info() -> PluginInfo {
    durable_streams_core::plugin_info![ModeInfo::new(
        MODE,
        Capabilities::DURABLE
            .union(Capabilities::SYNCED)
            .union(Capabilities::BLOCKING_IO)
            .union(Capabilities::BATCH_APPEND)
            .union(Capabilities::CONCURRENT_GROUPS)
            .union(Capabilities::EXTERNAL_WRITERS),
        "NATS JetStream cluster: appends acknowledged once stored on a majority of replicas; shared by several hosts"
    )]
}

fn bad_config(msg: String) -> EngineError {
    EngineError::new(ErrorCode::BAD_CONFIG, msg)
}

/// Reads this plugin's settings (`storage.jetstream.*`).
pub fn settings(s: &Settings) -> Result<ClusterSettings, EngineError> {
    let urls = s.list("jetstream.urls")?;
    let credentials = Credentials {
        user: s.text("jetstream.user")?,
        password: s.text("jetstream.password")?,
        token: s.text("jetstream.token")?,
        creds_file: s.text("jetstream.creds_file")?,
        tls_ca_file: s.text("jetstream.tls_ca_file")?,
    };
    let mut namespace = s.text("jetstream.namespace")?.unwrap_or_else(|| "ds".into());
    let cfg = ClusterSettings {
        urls,
        credentials,
        replicas: s.u64("jetstream.replicas", 3, 1..=5)? as usize,
        shards: s.u64("jetstream.shards", 8, 1..=256)? as u32,
        request_timeout_ms: s.u64("jetstream.request_timeout_ms", 5000, 100..=600_000)?,
        connect_timeout_secs: s.u64("jetstream.connect_timeout_secs", 0, 0..=86_400)?,
        max_append_bytes: s.u64("jetstream.max_append_bytes", 0, 0..=64 << 20)?,
        cache_streams: s.u64("jetstream.cache_streams", 100_000, 16..=100_000_000)? as usize,
        sweep_scan_secs: s.u64("jetstream.sweep_scan_secs", 60, 0..=86_400)?,
        namespace: String::new(),
    };
    s.finish()?;
    if cfg.urls.is_empty() {
        return Err(bad_config(format!(
            "storage.jetstream.urls is not set (from {}): give the cluster's addresses, e.g. DS_STORAGE__JETSTREAM__URLS=nats://a:4222,nats://b:4222",
            s.source("jetstream.urls")
        )));
    }
    for u in &cfg.urls {
        if u.parse::<async_nats::ServerAddr>().is_err() {
            return Err(bad_config(format!(
                "storage.jetstream.urls (from {}): {u:?} is not a NATS address (nats://host:port)",
                s.source("jetstream.urls")
            )));
        }
    }
    if namespace.is_empty() || !namespace.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(bad_config(format!(
            "storage.jetstream.namespace (from {}): {namespace:?} must be letters, digits, '_' or '-'",
            s.source("jetstream.namespace")
        )));
    }
    if let Some(token) = s.isolate() {
        // The conformance kit: each case gets its own namespace in the cluster.
        namespace = format!("{namespace}-{token}");
    }
    Ok(ClusterSettings { namespace, ..cfg })
}

/// Opens the engine for `mode` from the JSON configuration, as the server would.
pub fn open(mode: &str, config: &str) -> Result<EngineBox, EngineError> {
    if mode != MODE {
        return Err(EngineError::new(
            ErrorCode::UNKNOWN_MODE,
            format!("the jetstream plugin does not provide mode '{mode}'"),
        ));
    }
    let s = Settings::parse(config, &[MODE])?;
    let cfg = settings(&s)?;
    if s.validate_only() {
        return Ok(SettingsChecked::boxed());
    }
    let engine = JetStreamStorage::open(cfg, s.limits())?;
    Ok(EngineBox::from_value(GuardedEngine::new(engine), TD_Opaque))
}

#[cfg(feature = "export")]
durable_streams_core::export_plugin!(info = info, open = open);

/// Built as a plugin, its allocations (the NATS client's parsing, each message's headers) go to
/// mimalloc: glibc's malloc was a fifth of a host's CPU per append under load. Memory crossing
/// the ABI is freed by the side that allocated it (abi_stable's vtables), so the host's
/// allocator does not matter here.
#[cfg(feature = "export")]
#[global_allocator]
static ALLOCATOR: durable_streams_alloc::Mimalloc = durable_streams_alloc::Mimalloc;
