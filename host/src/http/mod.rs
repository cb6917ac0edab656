//! The HTTP surface: routes, one module per protocol operation, and the layers every response gets.

mod admin;
mod append;
mod body;
mod console;
mod cors;
mod create;
mod cursor;
mod delete;
mod edge;
pub mod error;
pub mod faults;
mod head;
pub mod headers;
pub mod json;
mod listing;
mod longpoll;
pub mod origin;
mod path;
mod pieces;
pub mod query;
mod read;
mod records;
mod sse;
mod tokens;
mod whoami;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use durable_streams_core::Offset;

use crate::auth::Op;
use crate::state::AppState;
use error::ApiError;
use query::{LiveMode, ReadQuery};

/// An answer with room for every header it and the edge add (one allocation for the map, not a
/// first one and a growth).
pub(crate) fn answer(status: axum::http::StatusCode) -> Response {
    let mut resp = Response::new(axum::body::Body::empty());
    *resp.status_mut() = status;
    *resp.headers_mut() = axum::http::HeaderMap::with_capacity(12);
    resp
}

/// A stream's content type as a header value (the common ones without a copy); `None` when it
/// is not a valid header value.
pub(crate) fn content_type_value(ct: &str) -> Option<HeaderValue> {
    Some(match ct {
        "application/octet-stream" => HeaderValue::from_static("application/octet-stream"),
        "application/json" => HeaderValue::from_static("application/json"),
        "text/plain" => HeaderValue::from_static("text/plain"),
        "text/plain; charset=utf-8" => HeaderValue::from_static("text/plain; charset=utf-8"),
        other => return HeaderValue::from_str(other).ok(),
    })
}

/// A position as a `Stream-Next-Offset` header value.
pub(crate) fn offset_value(pos: u64) -> HeaderValue {
    HeaderValue::from_bytes(&Offset(pos).to_ascii()).expect("offsets are ASCII")
}

/// Protocol request headers that must not be repeated.
const SINGLE_HEADERS: [&str; 10] = [
    "content-type",
    "producer-id",
    "producer-epoch",
    "producer-seq",
    "stream-seq",
    "stream-ttl",
    "stream-expires-at",
    "stream-forked-from",
    "stream-fork-offset",
    "stream-fork-sub-offset",
];

pub use body::read_limited as read_body;

/// The stream routes. Not itself `async`: the route's future is [`serve_stream_route`]'s, not
/// one more level around it (each level is moved whole into the next, and axum boxes the last).
fn stream_route(State(state): State<Arc<AppState>>, req: Request<Body>) -> impl std::future::Future<Output = Response> {
    use futures_util::future::Either;
    let (parts, body) = req.into_parts();
    match state.faults.clone() {
        Some(faults) => Either::Left(Box::pin(with_faults(state, faults, parts, body))),
        None => Either::Right(serve_stream_route(state, parts, body)),
    }
}

/// The stream routes with the fault-injection endpoint on (`testing.fault_injection`).
async fn with_faults(state: Arc<AppState>, faults: Arc<faults::Faults>, parts: Parts, body: Body) -> Response {
    let base = state.config.base_path();
    let rel = parts
        .uri
        .path()
        .strip_prefix(base)
        .unwrap_or("")
        .trim_start_matches('/')
        .to_string();
    if rel == faults::ENDPOINT {
        // In token mode only an admin sets faults.
        if state.auth.enabled() {
            match state.auth.caller(&parts) {
                Ok(c) if c.may_somewhere(Op::Admin) => {}
                Ok(_) => return crate::auth::forbidden(Op::Admin).into_response(),
                Err(e) => return e.into_response(),
            }
        }
        return faults::endpoint(&faults, base, &parts, body, state.config.limits.max_body_bytes).await;
    }
    if rel == faults::RESERVED || rel.starts_with("_test/") {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "Not Found",
            "'_test' is reserved for the fault-injection endpoint while it is on",
        )
        .into_response();
    }
    match faults::before(&faults, &rel, &parts.method).await {
        Err(answer) => answer,
        Ok(None) => serve_stream_route(state, parts, body).await,
        Ok(Some(after)) => after.apply(serve_stream_route(state, parts, body).await).await,
    }
}

async fn serve_stream_route(state: Arc<AppState>, parts: Parts, body: Body) -> Response {
    // The reserved control prefix is routed before streams.
    let rel = parts
        .uri
        .path()
        .strip_prefix(state.config.base_path())
        .unwrap_or("")
        .trim_start_matches('/');
    let control = rel.strip_prefix("__ds/");
    let caller = if parts.method == Method::OPTIONS || control.is_some_and(|rest| !control_needs_token(&parts.method, rest)) {
        crate::auth::Caller::Anyone
    } else {
        match state.auth.caller(&parts) {
            Ok(c) => c,
            Err(e) => return e.into_response(),
        }
    };
    let client = state.auth.client(&caller, &parts);
    if let Err(e) = state.auth.quotas.request(&client) {
        return e.into_response();
    }
    if let Some(rest) = control {
        // One stream's metadata needs only `read` on it.
        if let Some(name) = rest.strip_prefix("streams/") {
            let r = match parts.method {
                Method::GET => listing::one(&state, &caller, name).await,
                _ => Err(ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed", "use GET")),
            };
            return r.unwrap_or_else(IntoResponse::into_response);
        }
        // Where a stream's appends began needs only `read` on it.
        if let Some(name) = rest.strip_prefix("records/") {
            let r = match parts.method {
                Method::GET => records::handle(&state, &caller, name, parts.uri.query()).await,
                _ => Err(ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed", "use GET")),
            };
            return r.unwrap_or_else(IntoResponse::into_response);
        }
        // Who the caller is: any caller, about itself.
        if rest == "whoami" {
            let r = match parts.method {
                Method::GET => whoami::handle(&state, &caller, parts.uri.query()),
                _ => Err(ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed", "use GET")),
            };
            return r.unwrap_or_else(IntoResponse::into_response);
        }
        // Listing, subscriptions, export, import and tokens need `admin`; each then keeps to the
        // streams the caller's scopes reach.
        if !caller.may_somewhere(Op::Admin) {
            return crate::auth::forbidden(Op::Admin).into_response();
        }
        if matches!(rest, "export" | "import") {
            if let Some(r) = Box::pin(admin::dispatch(&state, &caller, rest, &parts, body)).await {
                return r;
            }
            return ApiError::new(StatusCode::NOT_FOUND, "Not Found", "no such control route").into_response();
        }
        if rest == "streams" {
            let r = match parts.method {
                Method::GET => Box::pin(listing::list(&state, &caller, parts.uri.query())).await,
                _ => Err(ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed", "use GET")),
            };
            return r.unwrap_or_else(IntoResponse::into_response);
        }
        if tokens::is_tokens_route(rest) {
            return Box::pin(tokens::dispatch(&state, &caller, rest, &parts, body)).await;
        }
        return Box::pin(crate::subs::dispatch(&state, &caller, rest, &parts, body)).await;
    }
    // Only a request repeating some header (rare) is searched for a repeated protocol header.
    let repeats = parts.headers.len() != parts.headers.keys_len();
    if let Some(dup) = SINGLE_HEADERS
        .iter()
        .filter(|_| repeats)
        .find(|h| parts.headers.get_all(**h).iter().nth(1).is_some())
    {
        return ApiError::bad_request(format!("header '{dup}' must appear at most once")).into_response();
    }
    let name = match path::stream_name(state.config.base_path(), parts.uri.path()) {
        Ok(n) => n,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = authorize(&state, &caller, &parts, &name) {
        return e.into_response();
    }
    // Live reads and control routes are boxed: every request's route future is moved into its
    // box, so it stays the size of an append's, not of a long-poll's.
    let result = match parts.method {
        Method::PUT => create::handle(&state, name.into_owned(), &parts, body).await,
        Method::POST => append::handle(&state, &name, &parts, body).await,
        Method::HEAD => head::handle(&state, &name).await,
        Method::DELETE => delete::handle(&state, name.into_owned()).await,
        Method::GET => match ReadQuery::parse(parts.uri.query()) {
            Err(e) => Err(e),
            Ok(q) => match q.live {
                LiveMode::CatchUp => read::catch_up(&state, name.into_owned(), &parts, &q).await,
                // A live read holds one of its client's live slots until it ends.
                // A live read also ends soon after its credential is revoked or expires.
                LiveMode::LongPoll => match state.auth.quotas.live(&client) {
                    Ok(_slot) => {
                        Box::pin(longpoll::handle(
                            &state,
                            name.into_owned(),
                            &parts,
                            &q,
                            crate::auth::CredentialWatch::new(&caller),
                        ))
                        .await
                    }
                    Err(e) => Err(e),
                },
                LiveMode::Sse => match state.auth.quotas.live(&client) {
                    Ok(slot) => {
                        Box::pin(sse::handle(
                            state.clone(),
                            name.into_owned(),
                            &q,
                            slot,
                            crate::auth::CredentialWatch::new(&caller),
                        ))
                        .await
                    }
                    Err(e) => Err(e),
                },
            },
        },
        Method::OPTIONS => Ok(StatusCode::NO_CONTENT.into_response()),
        _ => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method Not Allowed",
            "use GET, HEAD, PUT, POST or DELETE",
        )),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

/// Whether a control route (`rest`: the path after `__ds/`) needs an access token: all but the
/// webhook signing keys (fetched by receivers) and the settling of a wake (`callback`, `ack`,
/// `release`), which carries that wake's own signed token in `Authorization`.
fn control_needs_token(method: &Method, rest: &str) -> bool {
    if rest == "jwks.json" {
        return false;
    }
    let settles = rest
        .strip_prefix("subscriptions/")
        .and_then(|after| after.split_once('/'))
        .is_some_and(|(_, tail)| matches!(tail, "callback" | "ack" | "release"));
    !(settles && method == Method::POST)
}

/// Whether `caller` may do what this request does to `name` (a fork also reads its source).
fn authorize(state: &AppState, caller: &crate::auth::Caller, parts: &axum::http::request::Parts, name: &str) -> Result<(), ApiError> {
    let op = match parts.method {
        Method::PUT => Op::Create,
        Method::POST => Op::Append,
        Method::DELETE => Op::Delete,
        Method::GET | Method::HEAD => Op::Read,
        _ => return Ok(()),
    };
    caller.require(op, name)?;
    if op == Op::Create {
        if let Some(source) = create::fork_source(state.config.base_path(), &parts.headers)? {
            caller.require(Op::Read, &source)?;
        }
    }
    Ok(())
}

async fn healthz() -> impl IntoResponse {
    (
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        r#"{"status":"ok"}"#,
    )
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if state.storage.is_poisoned() {
        return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable", "storage engine is poisoned").into_response();
    }
    if !state.readiness.is_ready() {
        return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable", "not ready").into_response();
    }
    let health = state
        .storage
        .call(|e| {
            e.extension(
                abi_stable::std_types::RStr::from(durable_streams_core::abi::ext::HEALTH),
                abi_stable::std_types::RSlice::from(&b""[..]),
            )
        })
        .await;
    if let Err(e) = health {
        if e.code == durable_streams_core::abi::ErrorCode::UNAVAILABLE {
            return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable", "storage is unreachable")
                .with_header(axum::http::header::RETRY_AFTER, 1)
                .into_response();
        }
    }
    (
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        r#"{"status":"ready"}"#,
    )
        .into_response()
}

/// The content type of what `Metrics::render` writes (prometheus-client's OpenMetrics text).
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

async fn metrics_route(State(state): State<Arc<AppState>>, req: Request<Body>) -> Response {
    use abi_stable::std_types::{RSlice, RStr};
    if state.auth.protects_metrics() {
        let (parts, _) = req.into_parts();
        if let Err(e) = state.auth.caller(&parts).and_then(|c| c.require(Op::Admin, "")) {
            return e.into_response();
        }
    }
    let total = state
        .storage
        .call(|e| e.extension(RStr::from(durable_streams_core::abi::ext::STATS), RSlice::from(&b""[..])))
        .await;
    let known = *state.metrics.internal_streams.lock();
    let internal = match known {
        Some((n, at)) if at.elapsed() < std::time::Duration::from_secs(600) => Ok(n),
        // The server's own state streams (`__ds/...`) are not application streams.
        _ => state
            .storage
            .list_page(durable_streams_core::name::INTERNAL_PREFIX.to_string(), None, 1000)
            .await
            .map(|l| {
                *state.metrics.internal_streams.lock() = Some((l.len(), std::time::Instant::now()));
                l.len()
            }),
    };
    if let (Ok(bytes), Ok(internal)) = (total, internal) {
        let stats = serde_json::from_slice::<serde_json::Value>(&bytes).unwrap_or_default();
        let figure = |key: &str| stats.get(key).and_then(|n| n.as_i64());
        if let Some(n) = figure("streams") {
            state.metrics.streams.set(n.saturating_sub(internal as i64).max(0));
        }
        if let Some(n) = figure("stream_bytes") {
            state.metrics.stream_bytes.set(n);
        }
        if let Some(n) = figure("disk_bytes") {
            state.metrics.disk_bytes.set(n);
        }
        for (key, gauge) in &state.metrics.engine_figures {
            if let Some(n) = figure(key) {
                gauge.set(n);
            }
        }
    }
    (
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        state.metrics.render(),
    )
        .into_response()
}

async fn not_found() -> Response {
    ApiError::new(StatusCode::NOT_FOUND, "Not Found", "no such route").into_response()
}

/// A route that exists, asked with a method it does not answer (`PUT /metrics`): problem+json
/// like every other error (axum adds `Allow`).
async fn method_not_allowed() -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "Method Not Allowed",
        "this route does not answer that method",
    )
    .into_response()
}

/// The router for a prepared state: health endpoints plus the protocol under the base path.
pub fn router(state: Arc<AppState>) -> Router {
    routes(state.clone()).layer(edge::EdgeLayer::new(state))
}

/// The server binary's service (see [`service`]).
pub type Service = edge::Edge<Router>;

/// The server binary's service: [`router`]'s routes behind one [`edge::Edge`] around the whole
/// router, rather than one around each route (which axum clones and boxes again per request).
/// The same behaviour, two allocations and a clone of the edge fewer per request.
pub fn service(state: Arc<AppState>) -> Service {
    tower::Layer::layer(&edge::EdgeLayer::new(state.clone()), routes(state))
}

/// The routes and fallbacks, without the edge.
fn routes(state: Arc<AppState>) -> Router {
    let base = state.config.base_path().to_string();
    let mut app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_route));
    if let Some(console) = console::routes(&state) {
        app = app.merge(console);
    }
    if base.is_empty() {
        app = app.route("/{*name}", any(stream_route));
    } else {
        app = app.route(&format!("{base}/{{*name}}"), any(stream_route));
    }
    // No body extractor is used (handlers read bodies with their own limits), so axum's default
    // body limit needs no layer; panics, CORS and the common headers are `edge`'s.
    app.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}
