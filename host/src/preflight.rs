//! `config check` beyond parsing: what the server would trip over when it starts. Finds the
//! plugins, loads the TLS files, probes the data directory. Changes nothing.

use std::path::Path;

use durable_streams_core::abi::Capabilities;

use crate::config::Config;
use crate::plugin;

/// One problem found, as a line for the operator.
pub type Problem = String;

/// Where plugins are looked for, for messages that say so.
pub fn plugin_places(config: &Config) -> String {
    let bundled = plugin::loader_bundled_dir()
        .map(|d| format!("{} (libds_plugin_*.so)", d.display()))
        .unwrap_or_else(|| "beside the binary (location unknown)".into());
    match &config.storage.plugin_dir {
        Some(d) => format!("{bundled} and storage.plugin_dir {} (*.so)", d.display()),
        None => format!("{bundled}; storage.plugin_dir is not set"),
    }
}

/// Checks the mode, the TLS files and the data directory. Empty when all is well.
pub fn check(config: &Config) -> Vec<Problem> {
    let mut problems = Vec::new();
    let (found, rejected) = plugin::discover(plugin::loader_bundled_dir().as_deref(), config.storage.plugin_dir.as_deref());
    let mut durable = true;
    match plugin::select(&found, &config.storage.mode, config.storage.plugin.as_deref()) {
        Ok(p) => {
            durable = p
                .info
                .modes
                .iter()
                .find(|m| m.mode.as_str() == config.storage.mode)
                .is_some_and(|m| m.capabilities.contains(Capabilities::DURABLE));
            if let Err(e) = crate::check_plugin_keys(config, &found) {
                problems.push(e.to_string());
            }
            // The plugin checks its own settings, opening nothing.
            let json = crate::engine_config_json_for(config, crate::OpenIntent::Check);
            match crate::Storage::open(p, &config.storage.mode, &json) {
                Ok(storage) => {
                    let _ = storage.call_sync(|e| e.shutdown());
                }
                Err(e) => problems.push(e.source.message.to_string()),
            }
        }
        Err(e) => {
            problems.push(format!("storage.mode: {e} (looked in {})", plugin_places(config)));
            for r in &rejected {
                problems.push(format!("plugin rejected: {}: {}", r.path.display(), r.reason));
            }
        }
    }
    if let Some((cert, key)) = config.tls.files() {
        if let Err(e) = crate::server::tls_config(cert, key) {
            problems.push(format!(
                "{e} (serving plain HTTP behind a TLS-terminating proxy? set tls.enabled = false, DS_TLS__ENABLED=false)"
            ));
        }
    }
    if durable {
        if let Err(e) = usable_dir(&config.storage.data_dir) {
            problems.push(format!("storage.data_dir: {e}"));
        }
    }
    if let Err(e) = config.log_filter() {
        problems.push(e.to_string());
    }
    problems
}

/// What would not stop a start but deserves a look: token mode with no credential to accept yet.
pub fn warnings(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    if config.auth.mode == "token" {
        let tokens = config.auth.tokens_path(&config.storage.data_dir);
        let has_tokens = std::fs::read_to_string(&tokens).is_ok_and(|t| t.contains("\"id\""));
        if !has_tokens && config.auth.jwt_keys_file.is_empty() {
            out.push(format!(
                "auth.mode is \"token\" but no token is issued yet ({}) and no JWT keys file is set: every request will be refused until one is (durable-streams-server token issue --scope '*:all')",
                tokens.display()
            ));
        }
    }
    out
}

/// A directory the server can write in: it exists and takes a file, or it can be created
/// (its nearest existing ancestor takes a file).
fn usable_dir(dir: &Path) -> Result<(), String> {
    let mut probe_in = dir;
    while !probe_in.exists() {
        match probe_in.parent() {
            Some(p) if !p.as_os_str().is_empty() => probe_in = p,
            _ => {
                probe_in = Path::new(".");
                break;
            }
        }
    }
    if !probe_in.is_dir() {
        return Err(format!("{} is not a directory", probe_in.display()));
    }
    let probe = probe_in.join(format!(".ds-config-check-{}", std::process::id()));
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) if probe_in == dir => Err(format!("{} is not writable: {e}", dir.display())),
        Err(e) => Err(format!(
            "{} does not exist and cannot be created in {}: {e}",
            dir.display(),
            probe_in.display()
        )),
    }
}
