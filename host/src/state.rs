//! Shared server state handed to every handler: config, engine, live tail, readiness.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::Config;
use crate::live::LiveTail;
use crate::plugin::Storage;

/// Readiness switches: ready once the engine is open and recovered; not ready while draining.
#[derive(Clone, Debug)]
pub struct Readiness {
    ready: Arc<AtomicBool>,
    draining: Arc<AtomicBool>,
}

impl Readiness {
    pub fn new(ready: bool) -> Self {
        Readiness {
            ready: Arc::new(AtomicBool::new(ready)),
            draining: Arc::new(AtomicBool::new(false)),
        }
    }
    pub fn set_ready(&self, v: bool) {
        self.ready.store(v, Ordering::Release);
    }
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && !self.draining.load(Ordering::Acquire)
    }
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }
}

/// Everything a request handler needs.
pub struct AppState {
    pub config: Arc<Config>,
    pub storage: Storage,
    pub live: Arc<LiveTail>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Subscriptions (None when their state could not be loaded; the control API answers 503).
    pub subs: Option<Arc<crate::subs::Subscriptions>>,
    pub readiness: Readiness,
}

/// Wall-clock milliseconds, as engines expect for TTL decisions.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
