//! The one layer every request passes first (a hand-written tower layer, one boxed future per
//! request): preflights, in-flight registration, the request's span and metric, a panic turned
//! into a 500, and the headers every answer carries (security, CORS). Owns no protocol
//! behaviour; one layer instead of four keeps the per-request cost down.

use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{header, HeaderName, HeaderValue, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::future::Either;
use futures_util::FutureExt;

use super::cors::Cors;
use super::error::ApiError;
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

/// Wraps every route in [`Edge`].
#[derive(Clone)]
pub struct EdgeLayer {
    state: Arc<AppState>,
    cors: Arc<Cors>,
}

impl EdgeLayer {
    pub fn new(state: Arc<AppState>) -> EdgeLayer {
        let cors = Arc::new(Cors::new(&state.config.http.cors_origins));
        EdgeLayer { state, cors }
    }
}

impl<S> tower::Layer<S> for EdgeLayer {
    type Service = Edge<S>;
    fn layer(&self, inner: S) -> Edge<S> {
        Edge {
            inner,
            state: self.state.clone(),
            cors: self.cors.clone(),
        }
    }
}

/// See the module documentation.
#[derive(Clone)]
pub struct Edge<S> {
    inner: S,
    state: Arc<AppState>,
    cors: Arc<Cors>,
}

fn panicked() -> Response {
    // Defense in depth: a bug must cost one request a 500, never the connection.
    tracing::error!("a request handler panicked");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error", "internal error").into_response()
}

impl<S> tower::Service<Request<Body>> for Edge<S>
where
    S: tower::Service<Request<Body>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let state = self.state.clone();
        let cors = self.cors.clone();
        let origin = req.headers().get(header::ORIGIN).cloned();
        let cacheable = matches!(*req.method(), Method::GET | Method::HEAD);
        let open = state.inflight.enter(req.method(), req.uri());
        let op = crate::metrics::operation(req.method(), req.uri().path(), req.uri().query());
        let span = tracing::debug_span!(
            "http.request",
            http.request.method = %req.method(),
            url.path = %req.uri().path(),
            durable_streams.operation = op,
            http.response.status_code = tracing::field::Empty,
            event.duration = tracing::field::Empty,
        );
        let preflight = cors.preflight(req.method(), req.headers());
        let is_preflight = preflight.is_some();
        // The service polled ready answers (its future owns what it needs: no clone here), and
        // the edge's own future is the only one boxed.
        let inner = &mut self.inner;
        let answer = match preflight {
            Some(resp) => Ok(Either::Left(futures_util::future::ready(Ok(resp)))),
            None => std::panic::catch_unwind(AssertUnwindSafe(move || Either::Right(inner.call(req)))),
        };
        Box::pin(async move {
            let mut resp = match answer {
                Err(_) => panicked(),
                Ok(fut) => {
                    let fut = AssertUnwindSafe(fut).catch_unwind();
                    let outcome = if span.is_disabled() {
                        fut.await
                    } else {
                        tracing::Instrument::instrument(fut, span.clone()).await
                    };
                    match outcome {
                        Ok(Ok(resp)) => resp,
                        Ok(Err(never)) => match never {},
                        Err(_) => panicked(),
                    }
                }
            };
            let status = resp.status().as_u16();
            state.metrics.count_request(op, status);
            if status >= 500 || !span.is_disabled() {
                // The method, URI and start time are the in-flight registry's (no copies kept
                // for the common case, where nothing is logged).
                let (method, uri, started) = open.request();
                let nanos = started.elapsed().as_nanos() as u64;
                if status >= 500 {
                    tracing::warn!(parent: &span, http.request.method = %method, url.path = %uri.path(), http.response.status_code = status, event.duration = nanos, "request failed");
                }
                if !span.is_disabled() {
                    span.record("http.response.status_code", status);
                    span.record("event.duration", nanos);
                    tracing::debug!(parent: &span, http.response.status_code = status, event.duration = nanos, "request");
                }
            }
            let headers = resp.headers_mut();
            // Room for what follows at once (one allocation, not a growth and a rehash).
            headers.reserve(6);
            headers.insert(NOSNIFF.0, NOSNIFF.1);
            headers.insert(CORP.0, CORP.1);
            if let axum::http::header::Entry::Vacant(v) = headers.entry(SANDBOX.0) {
                v.insert(SANDBOX.1);
            }
            if !is_preflight {
                cors.decorate(origin.as_ref(), cacheable, headers);
            }
            Ok(resp)
        })
    }
}
