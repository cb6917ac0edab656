//! `[console]`: the built-in web console (see `crate::http::console`). Settings only; no I/O.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Serve the console.
    pub enabled: bool,
    /// Where: a path outside `http.stream_base_path`, so it never shadows a stream.
    pub path: String,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            enabled: true,
            path: "/console".into(),
        }
    }
}

impl ConsoleConfig {
    /// The path without a trailing `/`.
    pub fn mount(&self) -> &str {
        self.path.trim_end_matches('/')
    }
}
