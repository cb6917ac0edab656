//! `[testing]`: what only test suites need (see `crate::http::faults`). Settings only; no I/O.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TestingConfig {
    /// Serve the fault-injection endpoint `{base}/_test/inject-error` for client test suites.
    pub fault_injection: bool,
}
