//! Configuration: typed settings layered by the `config` crate; owns no I/O beyond reading its files.
//!
//! Order, later overriding earlier: built-in defaults, `config/default.toml`,
//! `config/<profile>.toml`, `config/local.toml`, `--config <path>`, `DS_*` environment variables
//! (`DS_SECTION__KEY`). Unknown keys are refused so a misspelling cannot pass silently.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod auth;
mod console;
mod quotas;
pub mod sources;
mod testing;

pub use auth::AuthConfig;
pub use console::ConsoleConfig;
pub use quotas::QuotasConfig;
pub use testing::TestingConfig;

/// The whole server configuration.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub http: HttpConfig,
    pub limits: LimitsConfig,
    pub storage: StorageConfig,
    pub tls: TlsConfig,
    pub log: LogConfig,
    pub subscriptions: SubscriptionsConfig,
    pub retention: RetentionConfig,
    pub auth: AuthConfig,
    pub quotas: QuotasConfig,
    pub console: ConsoleConfig,
    pub testing: TestingConfig,
}

/// `[retention]`: rules dropping the head of streams by name prefix (protocol sections 4, 5.6).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// How often the rules are applied.
    pub interval_ms: u64,
    /// The rules; in a TOML file an array of tables, in `DS_RETENTION__RULES` a JSON array.
    #[serde(deserialize_with = "rules_from_list_or_json")]
    pub rules: Vec<RetentionRule>,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            interval_ms: 60_000,
            rules: Vec::new(),
        }
    }
}

/// One retention rule: streams whose name starts with `prefix` keep at most `max_bytes` and/or
/// data at most `max_age_secs` old (whole messages: the one holding the limit stays).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RetentionRule {
    pub prefix: String,
    #[serde(default)]
    pub max_age_secs: Option<u64>,
    #[serde(default)]
    pub max_bytes: Option<u64>,
}

fn rules_from_list_or_json<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<RetentionRule>, D::Error> {
    use serde::de::Error;
    const SHAPE: &str = "a list of rules, each with prefix and max_age_secs and/or max_bytes";
    let list = match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) if s.trim().is_empty() => return Ok(Vec::new()),
        serde_json::Value::String(s) => {
            serde_json::from_str(&s).map_err(|e| D::Error::custom(format!("must be a JSON array of rules ({SHAPE}): {e}")))?
        }
        v @ serde_json::Value::Array(_) => v,
        other => return Err(D::Error::custom(format!("must be {SHAPE}, not {other}"))),
    };
    serde_json::from_value(list).map_err(|e| D::Error::custom(format!("must be {SHAPE}: {e}")))
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SubscriptionsConfig {
    /// Development only: allow `http://localhost` / `http://127.0.0.x` webhook URLs.
    pub allow_loopback_http: bool,
    /// Webhook signing keys are replaced after this many days.
    pub key_rotation_days: u64,
    /// Retired keys stay in the JWKS document this many days.
    pub retired_key_days: u64,
    /// How long one webhook request may take.
    pub delivery_timeout_secs: u64,
    /// Several hosts on one shared engine: the delivering host's lease is taken over after it
    /// has not been renewed for this long.
    pub delivery_lease_secs: u64,
}

impl Default for SubscriptionsConfig {
    fn default() -> Self {
        SubscriptionsConfig {
            allow_loopback_http: false,
            key_rotation_days: 30,
            retired_key_days: 7,
            delivery_timeout_secs: 10,
            delivery_lease_secs: 10,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub bind_address: String,
    pub port: u16,
    pub long_poll_timeout_secs: u64,
    /// Overrides `long_poll_timeout_secs` when set (for tests that need sub-second timeouts).
    pub long_poll_timeout_ms: Option<u64>,
    pub sse_reconnect_interval_secs: u64,
    pub header_read_timeout_secs: u64,
    pub sweep_interval_secs: u64,
    /// How often the last access times of streams with a sliding TTL are saved by engines that
    /// keep them: after a crash a TTL runs at most this much longer, never shorter.
    pub ttl_save_interval_secs: u64,
    /// How often the server reads the clock of an engine that keeps one (the `jetstream`
    /// mode's cluster time), on which it decides TTL expiry, leases and token expiry.
    pub clock_sync_interval_secs: u64,
    /// After SIGTERM / SIGINT, how long the server keeps accepting with `/readyz` answering 503
    /// (so load balancers take it out) before it stops accepting and drains.
    pub drain_delay_secs: u64,
    /// After SIGTERM / SIGINT, how long open connections may take to finish.
    pub shutdown_grace_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind_address: "0.0.0.0".into(),
            port: 4437,
            long_poll_timeout_secs: 30,
            long_poll_timeout_ms: None,
            sse_reconnect_interval_secs: 60,
            header_read_timeout_secs: 30,
            sweep_interval_secs: 5,
            ttl_save_interval_secs: 60,
            clock_sync_interval_secs: 10,
            drain_delay_secs: 0,
            shutdown_grace_secs: 10,
        }
    }
}

impl ServerConfig {
    pub fn long_poll_timeout(&self) -> Duration {
        match self.long_poll_timeout_ms {
            Some(ms) => Duration::from_millis(ms),
            None => Duration::from_secs(self.long_poll_timeout_secs),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub stream_base_path: String,
    /// `*` or a comma-separated list of allowed origins.
    pub cors_origins: String,
    /// Believe `Forwarded` / `X-Forwarded-Proto` / `X-Forwarded-Host` (set only behind a proxy
    /// that overwrites them).
    pub trust_proxy_headers: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            stream_base_path: "/v1/stream".into(),
            cors_origins: "*".into(),
            trust_proxy_headers: false,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub max_body_bytes: u64,
    pub max_read_chunk_bytes: u64,
    pub max_read_response_bytes: u64,
    /// 0 means unlimited.
    pub max_memory_bytes: u64,
    /// 0 means unlimited.
    pub max_stream_bytes: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_body_bytes: 64 << 20,
            max_read_chunk_bytes: 1 << 20,
            max_read_response_bytes: 16 << 20,
            max_memory_bytes: 0,
            max_stream_bytes: 0,
        }
    }
}

/// `[storage]`: the host owns `mode`, `data_dir`, `plugin_dir`, `plugin` and `append_lanes`; every other key
/// (nested tables included) belongs to a plugin, travels to its `open` as JSON with its source,
/// and is validated there (see `durable_streams_core::settings`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct StorageConfig {
    pub mode: String,
    pub data_dir: PathBuf,
    /// Extra directory scanned for plugin `.so` files (beside the bundled ones).
    pub plugin_dir: Option<PathBuf>,
    /// Plugin name to use when several plugins provide `mode`.
    pub plugin: Option<String>,
    /// Groups of appends in flight at once for engines that declare `concurrent_groups`
    /// (0 counts as 1); other engines always commit one group at a time.
    pub append_lanes: usize,
    /// The plugins' own settings (`acid_shard_count`, `jetstream.urls`, ...), as configured.
    #[serde(flatten)]
    pub engine: serde_json::Map<String, serde_json::Value>,
    /// Where each plugin setting came from (dotted key under `[storage]` → source).
    #[serde(skip)]
    pub engine_sources: std::collections::BTreeMap<String, String>,
}

/// The keys of `[storage]` the host owns.
pub const HOST_STORAGE_KEYS: [&str; 5] = ["mode", "data_dir", "plugin_dir", "plugin", "append_lanes"];

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            mode: "memory".into(),
            data_dir: PathBuf::from("./data"),
            plugin_dir: None,
            plugin: None,
            append_lanes: 1,
            engine: serde_json::Map::new(),
            engine_sources: Default::default(),
        }
    }
}

impl StorageConfig {
    /// Sets a plugin setting (embedders; `key` may be dotted: `jetstream.urls`).
    pub fn set_engine(&mut self, key: &str, value: impl Into<serde_json::Value>) {
        let mut parts: Vec<&str> = key.split('.').collect();
        let last = parts.pop().unwrap_or(key);
        let mut map = &mut self.engine;
        for p in parts {
            let entry = map
                .entry(p.to_string())
                .or_insert_with(|| serde_json::Value::Object(Default::default()));
            if !entry.is_object() {
                *entry = serde_json::Value::Object(Default::default());
            }
            map = entry.as_object_mut().expect("an object");
        }
        map.insert(last.to_string(), value.into());
        self.engine_sources
            .insert(key.to_string(), "set by the embedding application".into());
    }

    /// The plugin settings as dotted keys (`jetstream.urls`), with their values.
    pub fn engine_keys(&self) -> Vec<(String, serde_json::Value)> {
        fn walk(prefix: &str, m: &serde_json::Map<String, serde_json::Value>, out: &mut Vec<(String, serde_json::Value)>) {
            for (k, v) in m {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                match v {
                    serde_json::Value::Object(inner) => walk(&key, inner, out),
                    other => out.push((key, other.clone())),
                }
            }
        }
        let mut out = Vec::new();
        walk("", &self.engine, &mut out);
        out
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// `false` serves plain HTTP even when a profile sets the paths (behind a TLS-terminating proxy).
    pub enabled: bool,
    pub cert_path: Option<PathBuf>,
    pub key_path: Option<PathBuf>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            enabled: true,
            cert_path: None,
            key_path: None,
        }
    }
}

impl TlsConfig {
    /// The certificate and key to serve with, when TLS is on.
    pub fn files(&self) -> Option<(&std::path::Path, &std::path::Path)> {
        match (self.enabled, &self.cert_path, &self.key_path) {
            (true, Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
            _ => None,
        }
    }

    /// Whether the server speaks HTTPS.
    pub fn active(&self) -> bool {
        self.files().is_some()
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub rust_log: String,
    /// `text` or `json`.
    pub format: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            rust_log: "info".into(),
            format: "text".into(),
        }
    }
}

/// Where to find configuration files.
#[derive(Clone, Debug, Default)]
pub struct ConfigLoadOptions {
    /// Directory holding `default.toml`, profiles and `local.toml` (default `./config`).
    pub config_dir: Option<PathBuf>,
    pub profile: Option<String>,
    pub config_file: Option<PathBuf>,
    /// Skip `DS_*` environment variables (for tests).
    pub ignore_env: bool,
}

/// A configuration that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration error: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration error: {key} (from {source_name}): {reason}")]
    Invalid {
        key: &'static str,
        reason: String,
        source_name: String,
    },
    #[error("configuration error: unknown key `{key}` (from {source_name}); see config/default.toml for every key")]
    Unknown { key: String, source_name: String },
    #[error("configuration error: {message} (from {source_name})")]
    Value { message: String, source_name: String },
}

/// Checks `http.cors_origins`: `*`, or a comma-separated list of `scheme://host[:port]` origins.
pub fn check_cors_origins(v: &str) -> Result<(), String> {
    if v.trim() == "*" {
        return Ok(());
    }
    let list: Vec<&str> = v.split(',').map(str::trim).collect();
    if list.iter().all(|o| o.is_empty()) {
        return Err("must be \"*\" or a comma-separated list of origins such as https://app.example.com".into());
    }
    for o in list {
        let uri: axum::http::Uri = o.parse().map_err(|_| format!("{o:?} is not an origin (scheme://host[:port])"))?;
        let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
        let bare = uri.path_and_query().is_none_or(|p| p.as_str() == "/") && !o.ends_with('/');
        if !scheme_ok || uri.host().is_none() || !bare || o == "*" {
            return Err(format!(
                "{o:?} is not an origin: write scheme://host[:port] with no path, e.g. https://app.example.com"
            ));
        }
    }
    Ok(())
}

/// The environment variables that are configuration: `DS_<SECTION>__<KEY>`. Other `DS_*`
/// variables (no `__`) belong to other tools and are left alone.
fn config_env_vars() -> std::collections::HashMap<String, String> {
    std::env::vars()
        .filter(|(k, _)| k.strip_prefix("DS_").is_some_and(|rest| rest.contains("__")))
        .collect()
}

impl Config {
    /// Loads configuration from all sources in order.
    pub fn load(opts: &ConfigLoadOptions) -> Result<Config, ConfigError> {
        Self::load_with_sources(opts).map(|(c, _)| c)
    }

    /// Loads and also returns where each value came from (for `config check`).
    pub fn load_with_sources(
        opts: &ConfigLoadOptions,
    ) -> Result<(Config, std::collections::BTreeMap<String, sources::Setting>), ConfigError> {
        let dir = opts.config_dir.clone().unwrap_or_else(|| PathBuf::from("config"));
        let mut b = config::Config::builder()
            .add_source(config::Config::try_from(&Config::default())?)
            .add_source(config::File::from(dir.join("default.toml")).required(false));
        if let Some(p) = &opts.profile {
            b = b.add_source(config::File::from(dir.join(format!("{p}.toml"))).required(true));
        }
        b = b.add_source(config::File::from(dir.join("local.toml")).required(false));
        if let Some(f) = &opts.config_file {
            b = b.add_source(config::File::from(f.clone()).required(true));
        }
        if !opts.ignore_env {
            b = b.add_source(
                config::Environment::with_prefix("DS")
                    .prefix_separator("_")
                    .separator("__")
                    .try_parsing(true)
                    .source(Some(config_env_vars())),
            );
        }
        let merged = b.build()?;
        let settings = sources::settings(&merged)?;
        sources::check_unknown(&settings)?;
        let mut cfg: Config = merged.try_deserialize().map_err(|e| {
            // The key's source is named once, by us (the crate's own "in <origin>" left out).
            let (key, message) = match &e {
                config::ConfigError::Type {
                    key: Some(k),
                    unexpected,
                    expected,
                    ..
                } => (Some(k.clone()), format!("{k}: invalid type: {unexpected}, expected {expected}")),
                config::ConfigError::At { key: Some(k), error, .. } => (Some(k.clone()), format!("{k}: {error}")),
                _ => (None, String::new()),
            };
            match key {
                Some(k) => ConfigError::Value {
                    message,
                    source_name: sources::source_of(&settings, &k),
                },
                None => ConfigError::Load(e),
            }
        })?;
        cfg.storage.engine_sources = settings
            .iter()
            .filter_map(|(k, s)| Some((sources::plugin_key(k)?.to_string(), s.source.clone())))
            .collect();
        if cfg.testing.fault_injection && opts.profile.as_deref() == Some("prod") {
            return Err(ConfigError::Invalid {
                key: "testing.fault_injection",
                reason: "the fault-injection endpoint is for client test suites and is refused with the prod profile".into(),
                source_name: sources::source_of(&settings, "testing.fault_injection"),
            });
        }
        cfg.validate().map_err(|e| match e {
            ConfigError::Invalid { key, reason, .. } => ConfigError::Invalid {
                key,
                reason,
                source_name: sources::source_of(&settings, key),
            },
            other => other,
        })?;
        Ok((cfg, settings))
    }

    /// Checks values that parse but cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.to_string(),
                source_name: String::new(),
            })
        };
        let base = &self.http.stream_base_path;
        if !base.starts_with('/') {
            return invalid("http.stream_base_path", "must start with '/'");
        }
        if self.storage.mode.trim().is_empty() {
            return invalid("storage.mode", "must not be empty");
        }
        if self.limits.max_body_bytes == 0 {
            return invalid("limits.max_body_bytes", "must be greater than 0");
        }
        if self.limits.max_read_chunk_bytes < 4096 {
            return invalid("limits.max_read_chunk_bytes", "must be at least 4096");
        }
        if self.limits.max_read_response_bytes < 4096 {
            return invalid("limits.max_read_response_bytes", "must be at least 4096");
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return invalid("log.format", &format!("must be \"text\" or \"json\", not {:?}", self.log.format));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.rust_log) {
            return invalid("log.rust_log", &format!("not a valid tracing filter: {e}"));
        }
        if let Err(reason) = check_cors_origins(&self.http.cors_origins) {
            return invalid("http.cors_origins", &reason);
        }
        if self.tls.enabled && self.tls.cert_path.is_some() != self.tls.key_path.is_some() {
            let key = if self.tls.cert_path.is_some() {
                "tls.key_path"
            } else {
                "tls.cert_path"
            };
            return invalid(key, "tls.cert_path and tls.key_path must be set together");
        }
        if self.server.sse_reconnect_interval_secs == 0 {
            return invalid("server.sse_reconnect_interval_secs", "must be greater than 0");
        }
        if self.server.clock_sync_interval_secs == 0 {
            return invalid("server.clock_sync_interval_secs", "must be greater than 0");
        }
        if self.server.ttl_save_interval_secs == 0 {
            return invalid("server.ttl_save_interval_secs", "must be greater than 0");
        }
        if self.console.enabled {
            let mount = self.console.mount();
            let base = self.base_path();
            let reserved = ["/healthz", "/readyz", "/metrics"];
            // Plain segments only: the router would take `{x}` or `*x` as a capture.
            let plain = |seg: &str| {
                !seg.is_empty() && seg != "." && seg != ".." && seg.chars().all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c))
            };
            if !mount.starts_with('/') || !mount[1..].split('/').all(plain) || reserved.contains(&mount) {
                return invalid(
                    "console.path",
                    &format!(
                        "must be a path of plain segments (letters, digits, - . _ ~) such as \"/console\", not {:?}",
                        self.console.path
                    ),
                );
            }
            if !base.is_empty() && (mount == base || mount.starts_with(&format!("{base}/")) || base.starts_with(&format!("{mount}/"))) {
                return invalid(
                    "console.path",
                    &format!("{mount:?} overlaps http.stream_base_path {base:?}: the console must never shadow a stream"),
                );
            }
        }
        if !matches!(self.auth.mode.as_str(), "none" | "token") {
            return invalid("auth.mode", &format!("must be \"none\" or \"token\", not {:?}", self.auth.mode));
        }
        if self.retention.interval_ms == 0 {
            return invalid("retention.interval_ms", "must be greater than 0");
        }
        for r in &self.retention.rules {
            if r.max_age_secs.is_none() && r.max_bytes.is_none() {
                return invalid(
                    "retention.rules",
                    &format!("the rule for prefix {:?} sets neither max_age_secs nor max_bytes", r.prefix),
                );
            }
            if r.max_age_secs == Some(0) {
                return invalid(
                    "retention.rules",
                    &format!("max_age_secs of the rule for {:?} must be above 0", r.prefix),
                );
            }
            if r.prefix.starts_with(durable_streams_core::name::INTERNAL_PREFIX) {
                return invalid("retention.rules", "the server's own __ds/ streams are not subject to retention");
            }
        }
        Ok(())
    }

    /// The `RUST_LOG` variable when set (it overrides `log.rust_log`), checked like the key.
    pub fn log_filter(&self) -> Result<String, ConfigError> {
        match std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty()) {
            None => Ok(self.log.rust_log.clone()),
            Some(v) => match tracing_subscriber::EnvFilter::try_new(&v) {
                Ok(_) => Ok(v),
                Err(e) => Err(ConfigError::Value {
                    message: format!("RUST_LOG is not a valid tracing filter: {e}"),
                    source_name: "environment variable RUST_LOG".into(),
                }),
            },
        }
    }

    /// The stream base path without a trailing slash (`""` for `/`).
    pub fn base_path(&self) -> &str {
        self.http.stream_base_path.trim_end_matches('/')
    }
}
