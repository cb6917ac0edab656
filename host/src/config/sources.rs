//! Where each configuration value came from: flattens the layered `config` tree, names each
//! key's source (file path, `DS_*` variable, or built-in default), and refuses unknown keys.

use std::collections::{BTreeMap, BTreeSet};

use config::{Source, Value, ValueKind};

use super::{Config, ConfigError};

/// A flattened key (`server.port`) with its value and where it came from.
#[derive(Clone, Debug)]
pub struct Setting {
    pub value: Value,
    pub source: String,
}

fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, Setting>) {
    match &v.kind {
        ValueKind::Table(t) => {
            for (k, child) in t {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&key, child, out);
            }
        }
        _ => {
            let source = match v.origin() {
                None => "built-in default".to_string(),
                Some("the environment") => format!("environment variable {}", env_name(prefix)),
                Some(path) => path.to_string(),
            };
            out.insert(prefix.to_string(), Setting { value: v.clone(), source });
        }
    }
}

/// The environment variable that sets `key`.
pub fn env_name(key: &str) -> String {
    format!("DS_{}", key.replace('.', "__").to_ascii_uppercase())
}

/// Every key the configuration knows.
pub fn known_keys() -> BTreeSet<String> {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut BTreeSet<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, child) in m {
                    let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    walk(&key, child, out);
                }
            }
            _ => {
                out.insert(prefix.to_string());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk("", &serde_json::to_value(Config::default()).unwrap_or_default(), &mut out);
    out
}

/// Flattens the merged tree into key → setting.
pub fn settings(merged: &config::Config) -> Result<BTreeMap<String, Setting>, ConfigError> {
    let root = Value::new(None, ValueKind::Table(merged.collect()?));
    let mut out = BTreeMap::new();
    flatten("", &root, &mut out);
    Ok(out)
}

/// For a `[storage]` key that belongs to a plugin (not `mode`, `data_dir`, `plugin_dir`,
/// `plugin`): the key below `storage.` (`jetstream.urls`).
pub fn plugin_key(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("storage.")?;
    let first = rest.split('.').next().unwrap_or(rest);
    (!super::HOST_STORAGE_KEYS.contains(&first)).then_some(rest)
}

/// Refuses keys the configuration does not have, naming the key and its source. Plugin keys
/// under `[storage]` are left to the plugins (checked when the engine opens).
pub fn check_unknown(settings: &BTreeMap<String, Setting>) -> Result<(), ConfigError> {
    let known = known_keys();
    for (key, s) in settings {
        if !known.contains(key) && plugin_key(key).is_none() {
            return Err(ConfigError::Unknown {
                key: key.clone(),
                source_name: s.source.clone(),
            });
        }
    }
    Ok(())
}

/// The source of `key`, or of the nearest enclosing key.
pub fn source_of(settings: &BTreeMap<String, Setting>, key: &str) -> String {
    settings
        .get(key)
        .map(|s| s.source.clone())
        .unwrap_or_else(|| "built-in default".into())
}

fn flatten_json(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, serde_json::Value)>) {
    match v {
        serde_json::Value::Object(m) if prefix.is_empty() || !m.is_empty() => {
            for (k, child) in m {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten_json(&key, child, out);
            }
        }
        other => out.push((prefix.to_string(), other.clone())),
    }
}

/// `config check` output: the effective configuration as TOML, each value with its source.
pub fn render(config: &Config, settings: &BTreeMap<String, Setting>) -> String {
    let value = serde_json::to_value(config).unwrap_or_default();
    let mut out = String::new();
    if let serde_json::Value::Object(sections) = value {
        for (section, body) in sections {
            out.push_str(&format!("[{section}]\n"));
            if let serde_json::Value::Object(keys) = body {
                let mut flat = Vec::new();
                flatten_json("", &serde_json::Value::Object(keys), &mut flat);
                for (k, v) in flat {
                    let key = format!("{section}.{k}");
                    let src = source_of(settings, &key);
                    let owner = if section == "storage" && plugin_key(&key).is_some() {
                        ", checked by the storage plugin"
                    } else {
                        ""
                    };
                    let shown = match &v {
                        serde_json::Value::Null => format!("# {k} is not set"),
                        serde_json::Value::String(s) => format!("{k} = {s:?}"),
                        other => format!("{k} = {other}"),
                    };
                    out.push_str(&format!("{shown:<60} # from {src}{owner}\n"));
                }
            }
            out.push('\n');
        }
    }
    out
}
