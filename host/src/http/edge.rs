//! The one layer every request passes first: in-flight registration, the request's span and
//! metric, and the headers every response carries (preflights included). Owns no protocol
//! behaviour; one layer instead of four keeps the per-request cost down.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, Request};
use axum::middleware::Next;
use axum::response::Response;

use crate::state::AppState;

const NOSNIFF: (HeaderName, HeaderValue) = (
    HeaderName::from_static("x-content-type-options"),
    HeaderValue::from_static("nosniff"),
);
/// Every answer but the console's own pages: a stored body (a stream created as `text/html` or
/// `image/svg+xml`, say) opened in a browser runs no script, loads nothing and gets an opaque
/// origin, so it can reach neither the console's storage nor this origin's API.
const SANDBOX: (HeaderName, HeaderValue) = (
    HeaderName::from_static("content-security-policy"),
    HeaderValue::from_static("sandbox; default-src 'none'; frame-ancestors 'none'"),
);
const CORP: (HeaderName, HeaderValue) = (
    HeaderName::from_static("cross-origin-resource-policy"),
    HeaderValue::from_static("cross-origin"),
);

/// Middleware: tracks, observes and stamps one request.
pub async fn edge(State(state): State<Arc<AppState>>, req: Request<Body>, next: Next) -> Response {
    let _open = state.inflight.enter(req.method(), req.uri());
    let (method, uri) = (req.method().clone(), req.uri().clone());
    let op = crate::metrics::operation(req.method(), req.uri().path(), req.uri().query());
    let span = tracing::debug_span!(
        "http.request",
        http.request.method = %req.method(),
        url.path = %req.uri().path(),
        durable_streams.operation = op,
        http.response.status_code = tracing::field::Empty,
        event.duration = tracing::field::Empty,
    );
    let started = std::time::Instant::now();
    let mut resp = if span.is_disabled() {
        next.run(req).await
    } else {
        tracing::Instrument::instrument(next.run(req), span.clone()).await
    };
    let status = resp.status().as_u16();
    let nanos = started.elapsed().as_nanos() as u64;
    state
        .metrics
        .requests
        .get_or_create(&crate::metrics::RequestLabels { operation: op, status })
        .inc();
    if status >= 500 {
        tracing::warn!(parent: &span, http.request.method = %method, url.path = %uri.path(), http.response.status_code = status, event.duration = nanos, "request failed");
    }
    if !span.is_disabled() {
        span.record("http.response.status_code", status);
        span.record("event.duration", nanos);
        tracing::debug!(parent: &span, http.response.status_code = status, event.duration = nanos, "request");
    }
    let headers = resp.headers_mut();
    headers.insert(NOSNIFF.0, NOSNIFF.1);
    headers.insert(CORP.0, CORP.1);
    if !headers.contains_key(&SANDBOX.0) {
        headers.insert(SANDBOX.0, SANDBOX.1);
    }
    resp
}
