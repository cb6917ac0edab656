//! durable-streams-server: the Durable Streams protocol over HTTP, with storage engines loaded as
//! stable-ABI plugins. The only crate that knows HTTP.
//!
//! Embedding: load a [`Config`] with [`ConfigLoadOptions`], open a [`Storage`] (from a plugin with
//! [`open_storage`], or from an engine linked in-process with [`Storage::from_engine`]), then mount
//! [`build_router`] or [`build_router_with_ready`] in an axum application.

pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod http;
pub mod live;
pub mod metrics;
pub mod plugin;
pub mod preflight;
pub mod retention;
pub mod server;
pub mod state;
pub mod subs;
pub mod sweeper;

use std::sync::Arc;

pub use config::{Config, ConfigError, ConfigLoadOptions};
pub use plugin::{LoadedPlugin, Storage};
pub use state::{AppState, Readiness};

use axum::Router;
use live::LiveTail;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Plugin(#[from] plugin::PluginError),
    #[error(transparent)]
    Storage(#[from] plugin::StorageError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Tls(#[from] server::TlsError),
    #[error("auth: {0}")]
    Auth(#[from] auth::AuthStartError),
}

impl StartupError {
    /// The process exit code: 2 for configuration the operator must change, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            StartupError::Config(_) | StartupError::Plugin(_) | StartupError::Auth(_) => 2,
            StartupError::Storage(e) if e.source.code == durable_streams_core::abi::ErrorCode::BAD_CONFIG => 2,
            _ => 1,
        }
    }
}

/// What an engine is opened for; travels to the plugin as the `open_existing` key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenIntent {
    /// The server, or a command that writes (`import`): data is created when there is none.
    Write,
    /// A read-only command (`list`, `export`): existing data only; the bundled plugins refuse a
    /// data directory without their data and create no file.
    ReadExisting,
    /// `config check`: the plugin checks its settings and opens nothing (`validate_only`).
    Check,
}

/// Finds the plugins (bundled beside the binary, plus `storage.plugin_dir`), logs each, and
/// opens the engine for `storage.mode`.
pub fn open_storage(config: &Config) -> Result<Storage, StartupError> {
    open_storage_for(config, OpenIntent::Write)
}

/// Checks that some plugin serves `storage.mode` and owns every plugin key (discovery and
/// selection only, nothing opened): `run` calls it before it listens, so a wrong mode fails
/// before anything is served or logged as listening.
pub fn check_storage_choice(config: &Config) -> Result<(), StartupError> {
    let bundled = plugin::loader_bundled_dir();
    let (plugins, rejected) = plugin::discover(bundled.as_deref(), config.storage.plugin_dir.as_deref());
    if let Err(e) = plugin::select(&plugins, &config.storage.mode, config.storage.plugin.as_deref()) {
        // Say why a plugin that may have served the mode was not taken (the open logs these
        // when the choice is good).
        for r in &rejected {
            tracing::warn!(path = %r.path.display(), reason = %r.reason, "plugin rejected");
        }
        return Err(e.into());
    }
    check_plugin_keys(config, &plugins)?;
    Ok(())
}

/// [`open_storage`] for a given intent.
pub fn open_storage_for(config: &Config, intent: OpenIntent) -> Result<Storage, StartupError> {
    let bundled = plugin::loader_bundled_dir();
    let (plugins, rejected) = plugin::discover(bundled.as_deref(), config.storage.plugin_dir.as_deref());
    for r in &rejected {
        tracing::warn!(path = %r.path.display(), reason = %r.reason, "plugin rejected");
    }
    let chosen = plugin::select(&plugins, &config.storage.mode, config.storage.plugin.as_deref())?;
    check_plugin_keys(config, &plugins)?;
    let mode_caps = chosen
        .info
        .modes
        .iter()
        .find(|m| m.mode.as_str() == config.storage.mode)
        .map(|m| m.capabilities)
        .unwrap_or_default();
    tracing::info!(
        plugin.name = %chosen.info.name,
        plugin.version = %chosen.info.version,
        plugin.abi_version = %chosen.info.abi_version,
        plugin.rustc = %chosen.info.rustc,
        plugin.path = %chosen.path.display(),
        storage.mode = %config.storage.mode,
        capabilities = ?mode_caps.names(),
        "storage plugin loaded"
    );
    Ok(Storage::open_with(
        chosen,
        &config.storage.mode,
        &engine_config_json_for(config, intent),
        config.storage.append_lanes,
    )?)
}

/// Refuses a `[storage]` plugin key that no plugin found could own: a plugin owns the keys that
/// start with one of its mode names (`acid_...`, `file_fast_...`, `jetstream.` ...). Keys of the
/// chosen plugin are then checked by the plugin itself when it opens.
pub fn check_plugin_keys(config: &Config, plugins: &[LoadedPlugin]) -> Result<(), ConfigError> {
    let modes: Vec<String> = plugins
        .iter()
        .flat_map(|p| p.info.modes.iter().map(|m| m.mode.to_string()))
        .collect();
    let modes: Vec<&str> = modes.iter().map(String::as_str).collect();
    for (key, _) in config.storage.engine_keys() {
        if !durable_streams_core::settings::in_namespace(&key, &modes) {
            return Err(ConfigError::Unknown {
                key: format!("storage.{key}"),
                source_name: config
                    .storage
                    .engine_sources
                    .get(&key)
                    .cloned()
                    .unwrap_or_else(|| "configuration".into()),
            });
        }
    }
    Ok(())
}

/// The JSON handed to a plugin's `open`: the `[storage]` settings plus the limits engines enforce.
pub fn engine_config_json(config: &Config) -> String {
    engine_config_json_for(config, OpenIntent::Write)
}

/// [`engine_config_json`] for a given intent (`open_existing: true` for read-only commands).
pub fn engine_config_json_for(config: &Config, intent: OpenIntent) -> String {
    let mut v = serde_json::to_value(&config.storage).unwrap_or_else(|_| serde_json::json!({}));
    v["max_stream_bytes"] = config.limits.max_stream_bytes.into();
    v["max_memory_bytes"] = config.limits.max_memory_bytes.into();
    v["ttl_save_interval_ms"] = (config.server.ttl_save_interval_secs * 1000).into();
    v["open_existing"] = (intent == OpenIntent::ReadExisting).into();
    v["validate_only"] = (intent == OpenIntent::Check).into();
    v["sources"] = config
        .storage
        .engine_keys()
        .into_iter()
        .map(|(k, _)| {
            let src = config
                .storage
                .engine_sources
                .get(&k)
                .cloned()
                .unwrap_or_else(|| "configuration".into());
            (k, serde_json::Value::String(src))
        })
        .collect::<serde_json::Map<_, _>>()
        .into();
    v.to_string()
}

/// The bundled engines linked in-process (feature `engines`), for embedding without `.so` files.
#[cfg(feature = "engines")]
pub mod engines {
    pub use ds_plugin_acid::AcidStorage;
    pub use ds_plugin_file::FileStorage;
    pub use ds_plugin_memory::InMemoryStorage;

    use super::{engine_config_json, plugin, Config, StartupError, Storage};

    /// Opens the bundled engine for `config.storage.mode` in-process, configured as the server would.
    pub fn open_linked(config: &Config) -> Result<Storage, StartupError> {
        let mode = config.storage.mode.as_str();
        let json = engine_config_json(config);
        let (opened, info) = match mode {
            "memory" => (ds_plugin_memory::open(mode, &json), ds_plugin_memory::info()),
            "file-fast" | "file-durable" => (ds_plugin_file::open(mode, &json), ds_plugin_file::info()),
            "acid" => (ds_plugin_acid::open(mode, &json), ds_plugin_acid::info()),
            other => {
                return Err(plugin::PluginError::UnknownMode {
                    mode: other.into(),
                    available: "memory, file-fast, file-durable, acid".into(),
                }
                .into())
            }
        };
        let engine = opened.map_err(|e| plugin::StorageError {
            plugin: info.name.to_string(),
            mode: mode.into(),
            source: Box::new(e),
        })?;
        Ok(Storage::embedded(engine, info, mode))
    }
}

#[cfg(feature = "engines")]
pub use engines::{AcidStorage, FileStorage, InMemoryStorage};

fn make_state(config: Config, storage: Storage, readiness: Readiness, auth: auth::Auth) -> Arc<AppState> {
    let live = Arc::new(LiveTail::default());
    {
        let live = live.clone();
        readiness.on_drain(move || live.wake_all());
    }
    let metrics = metrics::Metrics::new(&storage.commit);
    let info = metrics::PluginLabels {
        name: storage.plugin.name.to_string(),
        version: storage.plugin.version.to_string(),
        abi_version: storage.plugin.abi_version.to_string(),
        mode: storage.mode.clone(),
    };
    metrics.plugin.get_or_create(&info).set(1);
    if auth.quotas.limits_rate() && tokio::runtime::Handle::try_current().is_ok() {
        // Rate state of clients gone quiet is dropped, so a server meeting many addresses or
        // short-lived tokens over months does not keep them all (until the router is dropped).
        let quotas = Arc::downgrade(&auth.quotas);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                every.tick().await;
                let Some(quotas) = quotas.upgrade() else { return };
                quotas.forget_idle();
            }
        });
    }
    let subs = match subs::Subscriptions::open(storage.clone(), config.subscriptions.clone(), live.clone()) {
        Ok(s) => {
            if tokio::runtime::Handle::try_current().is_ok() {
                tokio::spawn(s.clone().run());
            }
            Some(s)
        }
        Err(e) => {
            tracing::error!(error = %e, "subscriptions are unavailable");
            None
        }
    };
    if storage
        .capabilities()
        .contains(durable_streams_core::abi::Capabilities::EXTERNAL_WRITERS)
    {
        // Writes that happen outside this host reach live readers and the subscription service
        // through the engine's callback.
        if let Some(s) = subs.clone() {
            // Hand delivery to another host at once instead of after the lease runs out. The
            // release is an engine call that may wait on the network: off the async workers.
            readiness.on_drain(move || {
                let s = s.clone();
                match tokio::runtime::Handle::try_current() {
                    Ok(rt) => drop(rt.spawn_blocking(move || s.lease.release(&s.storage))),
                    Err(_) => s.lease.release(&s.storage),
                }
            });
        }
        let observer = subs
            .clone()
            .map(|s| -> live::Observer { Arc::new(move |name: &str| s.external_change(name)) });
        if let Err(e) = storage.call_sync(|e| e.set_change_listener(live::listener(live.clone(), observer))) {
            tracing::error!(error = %e, "engine refused the change listener; live reads will miss external writes");
        }
    }
    let clock_kept = clock::sync_at_start(&storage);
    let sweep = std::time::Duration::from_secs(config.server.sweep_interval_secs.max(1));
    let retention = Arc::new(retention::Retention::new(config.retention.rules.clone()));
    let retention_every = std::time::Duration::from_millis(config.retention.interval_ms.max(1));
    let faults = config.testing.fault_injection.then(Default::default);
    let state = Arc::new(AppState {
        faults,
        config: Arc::new(config),
        storage,
        live,
        metrics,
        subs,
        readiness,
        retention: retention.clone(),
        inflight: Default::default(),
        auth: Arc::new(auth),
    });
    if tokio::runtime::Handle::try_current().is_ok() {
        // The TTL sweeper and retention run wherever the router does (binary and embedders).
        tokio::spawn(sweeper::run(state.clone(), sweep));
        let save_every = std::time::Duration::from_secs(state.config.server.ttl_save_interval_secs.max(1));
        tokio::spawn(sweeper::save_access(state.clone(), save_every));
        if clock_kept {
            let every = std::time::Duration::from_secs(state.config.server.clock_sync_interval_secs.max(1));
            tokio::spawn(clock::run(state.storage.clone(), every));
        }
        if !retention.is_empty() {
            tokio::spawn(retention::run(state.clone(), retention, retention_every));
        }
    }
    state
}

/// The protocol router, ready at once. Inside a tokio runtime it also starts the TTL sweeper
/// and the subscription delivery task; drain it with [`Readiness::start_draining`] (see
/// [`build_router_with_ready`]).
pub fn build_router(config: Config, storage: Storage) -> Router {
    build_router_with_ready(config, storage, Readiness::new(true))
}

/// The protocol router with readiness controlled by the caller (`/readyz` answers 503 until
/// `readiness.set_ready(true)`, and while draining).
pub fn build_router_with_ready(config: Config, storage: Storage, readiness: Readiness) -> Router {
    let access = auth::Auth::from_config(&config).unwrap_or_else(|e| {
        tracing::error!(error = %e, "access control could not start: every request is refused until this is fixed");
        auth::Auth::deny_all(config.auth.tokens_path(&config.storage.data_dir))
    });
    http::router(make_state(config, storage, readiness, access))
}

/// Whether `addr` (a bind address) only accepts local connections.
fn is_loopback(addr: &str) -> bool {
    let host = addr.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Logs what the engine found when it opened (records replayed, a torn tail cut back), for
/// engines that answer the `recovery` extension.
fn log_recovery(storage: &Storage) {
    use abi_stable::std_types::{RSlice, RStr};
    let Ok(bytes) = storage.call_sync(|e| e.extension(RStr::from(durable_streams_core::abi::ext::RECOVERY), RSlice::from(&b""[..]))) else {
        return;
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes.as_slice()) else {
        return;
    };
    if let Some(cut) = v.get("cut_tail").filter(|c| !c.is_null()) {
        tracing::warn!(
            file = %cut["file"].as_str().unwrap_or("?"),
            at_byte = cut["at"].as_u64().unwrap_or(0),
            dropped_bytes = cut["dropped_bytes"].as_u64().unwrap_or(0),
            "recovery cut back a torn tail (an unacknowledged write interrupted by a crash)"
        );
    }
    tracing::info!(
        records_replayed = v["records_replayed"].as_u64(),
        streams = v["streams"].as_u64(),
        "storage recovered"
    );
}

/// Serves an engine already open (e.g. one linked in-process, [`engines::open_linked`]) on
/// `listener` exactly as the binary serves (access control from `config`, plain HTTP), ready at
/// once, until `shutdown` completes. Used by the per-request allocation counter (`tests/counts`).
pub async fn serve_storage(
    config: Config,
    storage: Storage,
    listener: std::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), StartupError> {
    let access = auth::Auth::from_config(&config)?;
    let state = make_state(config, storage, Readiness::new(true), access);
    server::serve(listener, state, None, shutdown).await?;
    Ok(())
}

/// Runs the server until SIGINT / SIGTERM.
pub async fn run(config: Config) -> Result<(), StartupError> {
    let tls = match config.tls.files() {
        Some((cert, key)) => Some(server::tls_config(cert, key)?),
        None => None,
    };
    let access = auth::Auth::from_config(&config)?;
    if !access.enabled() && !is_loopback(&config.server.bind_address) {
        tracing::warn!(
            bind_address = %config.server.bind_address,
            "auth.mode is \"none\" on a non-loopback address: anyone who reaches this port may read, write and delete every stream (set auth.mode = \"token\")"
        );
    }
    if config.testing.fault_injection {
        if is_loopback(&config.server.bind_address) {
            tracing::info!(
                "testing.fault_injection is on: {}/_test/inject-error injects faults",
                config.http.stream_base_path
            );
        } else {
            tracing::warn!(
                bind_address = %config.server.bind_address,
                "testing.fault_injection is on beyond loopback: anyone who reaches this port can make requests fail (it is meant for client test suites)"
            );
        }
    }
    check_storage_choice(&config)?;
    let addr = format!("{}:{}", config.server.bind_address, config.server.port);
    let listener = std::net::TcpListener::bind(&addr).map_err(|source| StartupError::Bind {
        addr: addr.clone(),
        source,
    })?;
    let local = listener.local_addr()?;
    // While the engine opens and recovers, answer health checks: /healthz 200, /readyz 503.
    let starting = server::serve_starting(listener.try_clone()?, tls.clone())?;
    tracing::info!(address = %local, tls = tls.is_some(), "listening; opening the storage engine");
    let opened = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || open_storage(&config))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?
    };
    starting.stop().await;
    let storage = opened?;
    log_recovery(&storage);
    let readiness = Readiness::new(false);
    let state = make_state(config.clone(), storage.clone(), readiness.clone(), access);
    readiness.set_ready(true);
    tracing::info!(address = %local, tls = tls.is_some(), base_path = %config.http.stream_base_path, "ready");
    // Under systemd (Type=notify) `systemctl start` returns now; a no-op anywhere else.
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready, sd_notify::NotifyState::Status("serving")]);
    server::spawn_reload_on_hangup(state.clone());
    let shutdown = async {
        server::shutdown_signal().await;
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    };
    server::serve(listener, state, tls, shutdown).await?;
    if let Err(e) = storage.call_sync(|e| e.shutdown()) {
        tracing::error!(error = %e, "engine shutdown failed");
    }
    tracing::info!("stopped");
    Ok(())
}
