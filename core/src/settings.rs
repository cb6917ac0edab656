//! A plugin's own settings: the keys under `[storage]` that the host does not own, as they reach
//! `open` (JSON, with each value's source). Typed getters record what the plugin read; `finish`
//! refuses any other key in the plugin's namespace with one line naming the key and its source.
//!
//! Namespaces: a plugin owns the `[storage]` keys that start with one of its mode names (`-`
//! written `_`) followed by `_` or `.`: `acid_shard_count`, `file_fast_sync_interval_ms`,
//! `jetstream.urls`. Keys of other plugins' namespaces are left to them. The host owns `mode`,
//! `data_dir`, `plugin_dir`, `plugin` and adds `max_stream_bytes`, `max_memory_bytes`,
//! `open_existing`, `validate_only`, `sources` (key → where its value came from) and, from the
//! conformance kit, `isolate` (a token per fresh engine: keep the streams of different tokens
//! apart when your data does not live in `data_dir`).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeInclusive;
use std::path::PathBuf;

use serde_json::Value;

use crate::abi::{EngineError, ErrorCode};
use crate::limits::Limits;

/// Keys the host sets in the `open` JSON; never a plugin's.
pub const HOST_KEYS: &[&str] = &[
    "mode",
    "data_dir",
    "plugin_dir",
    "plugin",
    "max_stream_bytes",
    "max_memory_bytes",
    "open_existing",
    "validate_only",
    "sources",
    "isolate",
    "ttl_save_interval_ms",
];

/// The namespace prefix of a mode: `file-fast` → `file_fast`.
pub fn namespace_of(mode: &str) -> String {
    mode.replace('-', "_")
}

/// Whether `key` (a dotted path under `[storage]`) is in the namespace of one of `modes`: it
/// starts with the mode's name (`file_fast_...`) or with its family, the part before the first
/// `-` (`file_...`: keys shared by the modes `file-fast` and `file-durable`).
pub fn in_namespace(key: &str, modes: &[&str]) -> bool {
    let under = |ns: &str| {
        key.strip_prefix(ns)
            .is_some_and(|rest| rest.starts_with('_') || rest.starts_with('.'))
    };
    modes
        .iter()
        .any(|m| under(&namespace_of(m)) || m.split_once('-').is_some_and(|(family, _)| under(family)))
}

/// The settings a plugin receives, read with typed getters.
pub struct Settings {
    root: Value,
    sources: BTreeMap<String, String>,
    namespaces: Vec<String>,
    read: RefCell<BTreeSet<String>>,
}

fn bad(key: &str, source: &str, why: impl std::fmt::Display) -> EngineError {
    EngineError::new(ErrorCode::BAD_CONFIG, format!("storage.{key} (from {source}): {why}"))
}

impl Settings {
    /// Parses the `open` JSON for a plugin providing `modes`.
    pub fn parse(config_json: &str, modes: &[&str]) -> Result<Settings, EngineError> {
        let root: Value = serde_json::from_str(config_json)
            .map_err(|e| EngineError::new(ErrorCode::BAD_CONFIG, format!("storage settings are not JSON: {e}")))?;
        let sources = root
            .get("sources")
            .and_then(|s| s.as_object())
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("configuration").to_string()))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Settings {
            root,
            sources,
            namespaces: modes.iter().map(|m| m.to_string()).collect(),
            read: RefCell::default(),
        })
    }

    /// Where `key`'s value came from (for messages).
    pub fn source(&self, key: &str) -> &str {
        self.sources.get(key).map(String::as_str).unwrap_or("built-in default")
    }

    fn lookup(&self, key: &str) -> Option<&Value> {
        self.read.borrow_mut().insert(key.to_string());
        let mut v = &self.root;
        for part in key.split('.') {
            v = v.get(part)?;
        }
        (!v.is_null()).then_some(v)
    }

    /// `storage.data_dir` (default `./data`).
    pub fn data_dir(&self) -> PathBuf {
        PathBuf::from(self.root.get("data_dir").and_then(|v| v.as_str()).unwrap_or("./data"))
    }

    /// A read-only command is opening the engine: open existing data only, create nothing.
    pub fn open_existing(&self) -> bool {
        self.root.get("open_existing").and_then(|v| v.as_bool()).unwrap_or(false)
    }

    /// `config check` is asking: validate the settings, open nothing.
    pub fn validate_only(&self) -> bool {
        self.root.get("validate_only").and_then(|v| v.as_bool()).unwrap_or(false)
    }

    /// From the conformance kit: a token per fresh engine; an engine whose data does not live in
    /// `data_dir` keeps the streams of different tokens apart. Only letters, digits, `-`, `_`.
    pub fn isolate(&self) -> Option<String> {
        self.root
            .get("isolate")
            .and_then(|v| v.as_str())
            .map(|s| s.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect())
    }

    /// The operator limits.
    pub fn limits(&self) -> Limits {
        Limits::from_config(&self.root)
    }

    /// How often the host saves sliding-TTL access times (`server.ttl_save_interval_secs`, in
    /// ms; 60 s when not given): the slack an engine allows at open (see `OpenOptions`).
    pub fn ttl_save_interval_ms(&self) -> u64 {
        self.root.get("ttl_save_interval_ms").and_then(Value::as_u64).unwrap_or(60_000)
    }

    /// An unsigned integer in `range` (strings of digits are accepted, as environment variables
    /// arrive), or `default` when unset.
    pub fn u64(&self, key: &str, default: u64, range: RangeInclusive<u64>) -> Result<u64, EngineError> {
        let Some(v) = self.lookup(key) else { return Ok(default) };
        let n = v
            .as_u64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .ok_or_else(|| bad(key, self.source(key), format!("must be a whole number, not {v}")))?;
        if !range.contains(&n) {
            return Err(bad(
                key,
                self.source(key),
                format!("must be between {} and {}, not {n}", range.start(), range.end()),
            ));
        }
        Ok(n)
    }

    /// A boolean, or `default` when unset.
    pub fn bool(&self, key: &str, default: bool) -> Result<bool, EngineError> {
        let Some(v) = self.lookup(key) else { return Ok(default) };
        v.as_bool()
            .or_else(|| match v.as_str() {
                Some("true") => Some(true),
                Some("false") => Some(false),
                _ => None,
            })
            .ok_or_else(|| bad(key, self.source(key), format!("must be true or false, not {v}")))
    }

    /// Text, or `None` when unset.
    pub fn text(&self, key: &str) -> Result<Option<String>, EngineError> {
        let Some(v) = self.lookup(key) else { return Ok(None) };
        match v {
            Value::String(s) => Ok(Some(s.clone())),
            Value::Number(n) => Ok(Some(n.to_string())),
            other => Err(bad(key, self.source(key), format!("must be text, not {other}"))),
        }
    }

    /// One of `allowed`, or `default` when unset.
    pub fn one_of(&self, key: &str, default: &str, allowed: &[&str]) -> Result<String, EngineError> {
        let v = self.text(key)?.unwrap_or_else(|| default.to_string());
        if !allowed.contains(&v.as_str()) {
            let list: Vec<String> = allowed.iter().map(|a| format!("\"{a}\"")).collect();
            return Err(bad(key, self.source(key), format!("must be {}, not \"{v}\"", list.join(" or "))));
        }
        Ok(v)
    }

    /// A list: a JSON array of text, or one comma-separated string (as environment variables
    /// arrive). Empty when unset.
    pub fn list(&self, key: &str) -> Result<Vec<String>, EngineError> {
        let Some(v) = self.lookup(key) else { return Ok(Vec::new()) };
        let items: Vec<String> = match v {
            Value::String(s) => s.split(',').map(|x| x.trim().to_string()).collect(),
            Value::Array(a) => a
                .iter()
                .map(|x| x.as_str().map(|s| s.trim().to_string()))
                .collect::<Option<_>>()
                .ok_or_else(|| bad(key, self.source(key), "must be a list of text"))?,
            other => return Err(bad(key, self.source(key), format!("must be a list, not {other}"))),
        };
        Ok(items.into_iter().filter(|s| !s.is_empty()).collect())
    }

    /// Refuses every key of this plugin's namespaces that no getter read: one line naming the
    /// key, its source and the keys this plugin knows.
    pub fn finish(&self) -> Result<(), EngineError> {
        let read = self.read.borrow();
        let modes: Vec<&str> = self.namespaces.iter().map(String::as_str).collect();
        for (key, source) in &self.sources {
            if in_namespace(key, &modes) && !read.contains(key) {
                let known: Vec<String> = read
                    .iter()
                    .filter(|k| in_namespace(k, &modes))
                    .map(|k| format!("storage.{k}"))
                    .collect();
                let known = if known.is_empty() { "none".to_string() } else { known.join(", ") };
                return Err(EngineError::new(
                    ErrorCode::BAD_CONFIG,
                    format!("unknown key `storage.{key}` (from {source}); this plugin's keys: {known}"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(v: Value) -> Settings {
        Settings::parse(&v.to_string(), &["acid", "file-fast"]).unwrap()
    }

    #[test]
    fn typed_getters_name_key_and_source() {
        let s = settings(serde_json::json!({
            "acid_shard_count": "0", "acid_backend": "disk", "file_fast_x": 1,
            "jetstream": {"urls": "nats://a:4222, nats://b:4222"},
            "sources": {"acid_shard_count": "environment variable DS_STORAGE__ACID_SHARD_COUNT"}
        }));
        let e = s.u64("acid_shard_count", 4, 1..=1024).unwrap_err();
        assert!(e
            .message
            .contains("storage.acid_shard_count (from environment variable DS_STORAGE__ACID_SHARD_COUNT)"));
        assert!(s
            .one_of("acid_backend", "file", &["file", "memory"])
            .unwrap_err()
            .message
            .contains("\"disk\""));
        assert_eq!(s.list("jetstream.urls").unwrap(), ["nats://a:4222", "nats://b:4222"]);
        assert_eq!(s.u64("acid_missing", 7, 0..=10).unwrap(), 7);
    }

    #[test]
    fn finish_refuses_unread_keys_of_its_namespace_only() {
        let s = settings(serde_json::json!({
            "acid_shard_count": 2, "acid_shrad": 1, "jetstream": {"urls": "x"},
            "sources": {"acid_shard_count": "a.toml", "acid_shrad": "b.toml", "jetstream.urls": "c.toml"}
        }));
        s.u64("acid_shard_count", 4, 1..=1024).unwrap();
        let e = s.finish().unwrap_err();
        assert!(e.message.contains("`storage.acid_shrad` (from b.toml)"), "{}", e.message);
        assert!(e.message.contains("storage.acid_shard_count"), "{}", e.message);
        let ok = settings(serde_json::json!({"jetstream": {"urls": "x"}, "sources": {"jetstream.urls": "c.toml"}}));
        assert!(ok.finish().is_ok(), "another plugin's namespace is left alone");
    }

    #[test]
    fn namespaces() {
        assert!(in_namespace("file_fast_sync_interval_ms", &["file-fast"]));
        assert!(in_namespace("jetstream.urls", &["jetstream"]));
        assert!(!in_namespace("acidic", &["acid"]));
        assert!(!in_namespace("acid", &["acid"]));
        assert!(in_namespace("file_segment_bytes", &["file-durable"]));
        assert!(!in_namespace("filesystem_x", &["file-durable"]));
    }
}
