//! `[auth]`: who may do what (see `crate::auth`). Settings only; no I/O.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `none` (anyone who reaches the port may do anything) or `token`.
    pub mode: String,
    /// The issued tokens' file; empty: `<storage.data_dir>/auth/tokens.json`.
    pub tokens_file: String,
    /// In `token` mode, `/metrics` needs a token with `admin`.
    pub protect_metrics: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            mode: "none".into(),
            tokens_file: String::new(),
            protect_metrics: true,
        }
    }
}

impl AuthConfig {
    /// Where the tokens live for data in `data_dir`.
    pub fn tokens_path(&self, data_dir: &std::path::Path) -> PathBuf {
        if self.tokens_file.is_empty() {
            data_dir.join("auth").join("tokens.json")
        } else {
            PathBuf::from(&self.tokens_file)
        }
    }

    pub fn token_mode(&self) -> bool {
        self.mode == "token"
    }
}
