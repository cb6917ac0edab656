//! Requests in flight, tracked only so that a shutdown can name the ones it cuts at the grace
//! deadline. Owns no protocol behaviour.

use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

/// The open requests: method, URI (only its path is ever logged) and start time.
#[derive(Clone, Default)]
pub struct InFlight {
    inner: Arc<Inner>,
}

/// One open request.
pub type Entry = (axum::http::Method, axum::http::Uri, Instant);

/// The open requests in a slab (entering and leaving reuse a slot).
#[derive(Default)]
struct Inner {
    open: Mutex<slab::Slab<Entry>>,
}

impl InFlight {
    /// Called at the grace deadline: logs every request still open (each will be cut).
    pub fn deadline_reached(&self, connections: usize) {
        let open: Vec<Entry> = self.inner.open.lock().iter().map(|(_, e)| e.clone()).collect();
        if connections > 0 || !open.is_empty() {
            tracing::warn!(
                connections,
                requests = open.len(),
                "shutdown grace deadline reached: closing the connections still open"
            );
        }
        for (method, uri, start) in open {
            tracing::warn!(
                http.request.method = %method,
                url.path = %uri.path(),
                elapsed_ms = start.elapsed().as_millis() as u64,
                "request cut at the shutdown grace deadline"
            );
        }
    }
}

/// Removes its request from the open set when the handler finishes or is dropped.
pub struct Guard {
    inflight: InFlight,
    slot: usize,
}

impl InFlight {
    /// Registers a request until the returned guard drops.
    pub fn enter(&self, method: &axum::http::Method, uri: &axum::http::Uri) -> Guard {
        let entry = (method.clone(), uri.clone(), Instant::now());
        let slot = self.inner.open.lock().insert(entry);
        Guard {
            inflight: self.clone(),
            slot,
        }
    }
}

impl Guard {
    /// The request's method, URI and start (for a log line about it).
    pub fn request(&self) -> Entry {
        self.inflight.inner.open.lock()[self.slot].clone()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.inflight.inner.open.lock().remove(self.slot);
    }
}
