//! Finds plugin `.so` files, loads them through abi_stable's header path and picks the one for a mode.
//!
//! Plugins are never unloaded. Each rejection is one line naming the file and the reason.

use std::path::{Path, PathBuf};

use abi_stable::library::{lib_header_from_path, LibraryError};
use durable_streams_core::abi::{PluginInfo, PluginModRef, ABI_VERSION};

/// A plugin that loaded and passed the ABI checks.
#[derive(Clone)]
pub struct LoadedPlugin {
    pub path: PathBuf,
    pub module: PluginModRef,
    pub info: PluginInfo,
}

/// A file that looked like a plugin but was refused.
#[derive(Clone, Debug)]
pub struct Rejected {
    pub path: PathBuf,
    pub reason: String,
}

/// Why no engine could be chosen.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("unknown storage mode '{mode}'; available modes: {available}")]
    UnknownMode { mode: String, available: String },
    #[error("storage mode '{mode}' is provided by several plugins ({candidates}); set storage.plugin to one of them")]
    Ambiguous { mode: String, candidates: String },
    #[error("storage.plugin is '{pin}' but no loaded plugin of that name provides mode '{mode}'")]
    PinNotFound { pin: String, mode: String },
}

fn is_library(path: &Path) -> bool {
    matches!(path.extension().and_then(|e| e.to_str()), Some("so" | "dylib" | "dll"))
}

/// The bundled plugins sit beside the binary and are named `libds_plugin_*`.
fn is_bundled_name(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("libds_plugin_") || n.starts_with("ds_plugin_"))
}

/// Where the bundled plugins are: beside the running executable (where they are built), or, for
/// an installed binary in `<prefix>/bin`, `<prefix>/lib/durable-streams/plugins`.
pub fn bundled_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?.to_path_buf();
    // `cargo test` runs binaries from target/<profile>/deps; the plugins are one level up.
    if dir.file_name().is_some_and(|n| n == "deps") {
        return dir.parent().map(Path::to_path_buf);
    }
    // Installed (the Debian package, or `make install`-like layouts): the binary in
    // <prefix>/bin, the bundled plugins in their own <prefix>/lib/durable-streams/plugins.
    if dir.file_name().is_some_and(|n| n == "bin") {
        let installed = dir.parent()?.join("lib/durable-streams/plugins");
        if installed.is_dir() {
            return Some(installed);
        }
    }
    Some(dir)
}

fn candidates(dir: &Path, bundled_only: bool) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| is_library(p) && (!bundled_only || is_bundled_name(p)))
        .collect();
    v.sort();
    v
}

/// Shortens abi_stable's (sometimes very long) errors to one line.
fn one_line(err: &LibraryError) -> String {
    match err {
        LibraryError::IncompatibleVersionNumber {
            expected_version,
            actual_version,
            ..
        } => {
            format!("built for plugin ABI {actual_version}, but this host loads ABI {expected_version} (same major, minor no newer)")
        }
        LibraryError::OpenError { path, err } => {
            let mut msg = format!("cannot open {}: {err}", path.display());
            let mut src = std::error::Error::source(&**err);
            while let Some(s) = src {
                msg.push_str(&format!(": {s}"));
                src = s.source();
            }
            msg
        }
        other => {
            let full = other.to_string();
            tracing::debug!(error = %full, "full plugin load error");
            let first = full.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string();
            let kind = match other {
                LibraryError::AbiInstability(_) => "incompatible type layout (built against another interface crate)",
                LibraryError::InvalidAbiHeader(_) => "incompatible abi_stable header",
                LibraryError::GetSymbolError { .. } => "not a durable-streams plugin (no root module symbol)",
                _ => "load failed",
            };
            format!("{kind}: {first}")
        }
    }
}

/// Loads one plugin file exactly as discovery does; the error is the one-line refusal.
pub fn load_one(path: &Path) -> Result<LoadedPlugin, String> {
    let header = lib_header_from_path(path).map_err(|e| one_line(&e))?;
    let module = header.init_root_module::<PluginModRef>().map_err(|e| one_line(&e))?;
    let info = (module.info())();
    if info.modes.is_empty() {
        return Err(format!("plugin '{}' provides no storage modes", info.name));
    }
    if info.abi_version.split('.').next() != ABI_VERSION.split('.').next() {
        return Err(format!(
            "plugin '{}' reports ABI {}, this host loads ABI {ABI_VERSION}",
            info.name, info.abi_version
        ));
    }
    Ok(LoadedPlugin {
        path: path.to_path_buf(),
        module,
        info,
    })
}

/// Loads every plugin found: the bundled ones beside the binary (unless `bundled` is `None`)
/// and every library in `extra_dir`.
pub fn discover(bundled: Option<&Path>, extra_dir: Option<&Path>) -> (Vec<LoadedPlugin>, Vec<Rejected>) {
    let mut paths: Vec<PathBuf> = Vec::new();
    if let Some(d) = bundled {
        paths.extend(candidates(d, true));
    }
    if let Some(d) = extra_dir {
        paths.extend(candidates(d, false));
    }
    let mut seen = std::collections::HashSet::new();
    let (mut ok, mut bad) = (Vec::new(), Vec::new());
    for p in paths {
        let canon = std::fs::canonicalize(&p).unwrap_or_else(|_| p.clone());
        if !seen.insert(canon) {
            continue;
        }
        match load_one(&p) {
            Ok(l) => ok.push(l),
            Err(reason) => bad.push(Rejected { path: p, reason }),
        }
    }
    (ok, bad)
}

/// Chooses the plugin for `mode`, honouring a pin by plugin name.
pub fn select<'a>(plugins: &'a [LoadedPlugin], mode: &str, pin: Option<&str>) -> Result<&'a LoadedPlugin, PluginError> {
    let providing: Vec<&LoadedPlugin> = plugins
        .iter()
        .filter(|p| p.info.modes.iter().any(|m| m.mode.as_str() == mode))
        .collect();
    let describe = |ps: &[&LoadedPlugin]| {
        ps.iter()
            .map(|p| format!("{} at {}", p.info.name, p.path.display()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(pin) = pin {
        return providing
            .into_iter()
            .find(|p| p.info.name.as_str() == pin)
            .ok_or(PluginError::PinNotFound {
                pin: pin.into(),
                mode: mode.into(),
            });
    }
    match providing.len() {
        0 => {
            let mut modes: Vec<String> = plugins
                .iter()
                .flat_map(|p| p.info.modes.iter().map(|m| m.mode.to_string()))
                .collect();
            modes.sort();
            modes.dedup();
            let available = if modes.is_empty() {
                "none (no plugin found; build them with `cargo build --workspace`)".to_string()
            } else {
                modes.join(", ")
            };
            Err(PluginError::UnknownMode {
                mode: mode.into(),
                available,
            })
        }
        1 => Ok(providing[0]),
        _ => Err(PluginError::Ambiguous {
            mode: mode.into(),
            candidates: describe(&providing),
        }),
    }
}
