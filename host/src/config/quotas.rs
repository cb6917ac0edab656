//! `[quotas]`: per-client limits (see `crate::auth::quota`). Settings only; no I/O.

use serde::{Deserialize, Serialize};

/// A client is a token (its id; a JWT's `sub`) in `auth.mode = "token"`, else its address.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuotasConfig {
    /// Requests per second one client may make, sustained (0: no limit).
    pub requests_per_second: u32,
    /// Requests one client may make at once above the sustained rate (0: one second's worth).
    pub request_burst: u32,
    /// Live reads (long-polls and SSE streams) one client may hold open at once (0: no limit).
    pub live_connections: u32,
}
