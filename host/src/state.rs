//! Shared server state handed to every handler: config, engine, live tail, readiness.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::config::Config;
use crate::live::LiveTail;
use crate::plugin::Storage;

/// Called when draining starts (wakes the router's live readers).
type DrainHook = Box<dyn Fn() + Send + Sync>;

/// Readiness switches: ready once the engine is open and recovered; not ready once the server
/// leaves the load balancer's rotation; draining once live readers are being released.
#[derive(Clone)]
pub struct Readiness {
    ready: Arc<AtomicBool>,
    out_of_rotation: Arc<AtomicBool>,
    draining: Arc<AtomicBool>,
    on_drain: Arc<parking_lot::Mutex<Vec<DrainHook>>>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness")
            .field("ready", &self.is_ready())
            .field("draining", &self.is_draining())
            .finish()
    }
}

impl Readiness {
    pub fn new(ready: bool) -> Self {
        Readiness {
            ready: Arc::new(AtomicBool::new(ready)),
            out_of_rotation: Arc::new(AtomicBool::new(false)),
            draining: Arc::new(AtomicBool::new(false)),
            on_drain: Arc::default(),
        }
    }
    pub fn set_ready(&self, v: bool) {
        self.ready.store(v, Ordering::Release);
    }
    /// `/readyz` answers 503 from now on, while requests are still served normally (the first
    /// step of a drain: load balancers take the server out of rotation).
    pub fn leave_rotation(&self) {
        self.out_of_rotation.store(true, Ordering::Release);
    }
    /// Not ready, and live readers are released: waiting long-polls answer 204 and SSE streams
    /// end. Call this before stopping the HTTP server (embedders: before axum's graceful shutdown).
    pub fn start_draining(&self) {
        self.leave_rotation();
        self.draining.store(true, Ordering::Release);
        for f in self.on_drain.lock().iter() {
            f();
        }
    }
    /// Registers what `start_draining` must wake (the router's live readers).
    pub(crate) fn on_drain(&self, f: impl Fn() + Send + Sync + 'static) {
        self.on_drain.lock().push(Box::new(f));
    }
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && !self.out_of_rotation.load(Ordering::Acquire)
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
    pub retention: Arc<crate::retention::Retention>,
    /// Requests in flight (named in the log if a shutdown has to cut them).
    pub inflight: crate::server::inflight::InFlight,
    /// Who may do what (`[auth]`).
    pub auth: Arc<crate::auth::Auth>,
    /// The fault-injection endpoint's faults (`testing.fault_injection`; `None` when off).
    pub faults: Option<Arc<crate::http::faults::Faults>>,
}

impl AppState {
    /// How this server finds a request's public origin (for `Location`).
    pub fn origin_rules(&self) -> crate::http::origin::OriginRules {
        crate::http::origin::OriginRules {
            tls: self.config.tls.active(),
            trust_proxy_headers: self.config.http.trust_proxy_headers,
        }
    }
}

/// The server's clock lives in [`crate::clock`]; kept here for embedders that used it.
pub use crate::clock::now_ms;
