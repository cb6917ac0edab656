//! Requests in flight, tracked only so that a shutdown can name the ones it cuts at the grace
//! deadline. Owns no protocol behaviour.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

/// The open requests: method, URI (only its path is ever logged) and start time.
#[derive(Clone, Default)]
pub struct InFlight {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    next: AtomicU64,
    open: Mutex<HashMap<u64, (axum::http::Method, axum::http::Uri, Instant)>>,
}

impl InFlight {
    /// Called at the grace deadline: logs every request still open (each will be cut).
    pub fn deadline_reached(&self, connections: usize) {
        let open: Vec<(axum::http::Method, axum::http::Uri, Instant)> = self.inner.open.lock().values().cloned().collect();
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
    id: u64,
}

impl InFlight {
    /// Registers a request until the returned guard drops.
    pub fn enter(&self, method: &axum::http::Method, uri: &axum::http::Uri) -> Guard {
        let id = self.inner.next.fetch_add(1, Ordering::Relaxed);
        self.inner.open.lock().insert(id, (method.clone(), uri.clone(), Instant::now()));
        Guard {
            inflight: self.clone(),
            id,
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.inflight.inner.open.lock().remove(&self.id);
    }
}
