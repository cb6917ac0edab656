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
    /// A JWKS file of keys that verify application-minted JWTs; empty: JWTs are not accepted.
    pub jwt_keys_file: String,
    /// The `iss` a JWT must carry; empty: not checked.
    pub jwt_issuer: String,
    /// The `aud` a JWT must carry; empty: not checked.
    pub jwt_audience: String,
    /// Clock skew allowed on a JWT's `exp` and `nbf`, seconds.
    pub jwt_leeway_secs: u64,
    /// Live tokens issued over HTTP that may descend from one root credential; 0: no bound.
    pub max_tokens_per_issuer: usize,
    /// In token mode, data answers may be kept by a shared cache keyed by the credential
    /// (`public` with `Vary: Authorization`) instead of `private`: readers sharing a read token
    /// collapse behind a caching proxy (README "Fan-out through a CDN").
    pub shared_cache_per_credential: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            mode: "none".into(),
            tokens_file: String::new(),
            protect_metrics: true,
            jwt_keys_file: String::new(),
            jwt_issuer: String::new(),
            jwt_audience: String::new(),
            jwt_leeway_secs: 30,
            max_tokens_per_issuer: 1000,
            shared_cache_per_credential: false,
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
