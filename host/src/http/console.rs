//! The built-in web console: static files compiled into the binary (`host/console/`: the page,
//! its ES modules, the style sheet and the icon; no build step), and `config.json`, what the page needs to find the streams (base path, auth mode, plugin).
//! Served at `console.path`, outside the stream base path. Owns no data: the page uses the
//! public protocol and the `__ds` control API with the visitor's token.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use super::error::ApiError;
use crate::state::AppState;

const INDEX: &str = include_str!("../../console/index.html");
const STYLE: &str = include_str!("../../console/app.css");
const ICON: &str = include_str!("../../console/favicon.svg");
/// The page's modules, by file name.
const MODULES: [(&str, &str); 8] = [
    ("app.js", include_str!("../../console/app.js")),
    ("util.js", include_str!("../../console/util.js")),
    ("streams.js", include_str!("../../console/streams.js")),
    ("stream.js", include_str!("../../console/stream.js")),
    ("messages.js", include_str!("../../console/messages.js")),
    ("create.js", include_str!("../../console/create.js")),
    ("subs.js", include_str!("../../console/subs.js")),
    ("server.js", include_str!("../../console/server.js")),
];

/// Only this origin's scripts, styles and connections; never framed.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data: blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (HeaderName::from_static("content-security-policy"), HeaderValue::from_static(CSP)),
            (HeaderName::from_static("referrer-policy"), HeaderValue::from_static("no-referrer")),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    file("text/html; charset=utf-8", INDEX)
}

async fn asset(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    if let Some((_, body)) = MODULES.iter().find(|(n, _)| *n == name) {
        return file("text/javascript; charset=utf-8", body);
    }
    match name.as_str() {
        "app.css" => file("text/css; charset=utf-8", STYLE),
        "favicon.svg" => file("image/svg+xml", ICON),
        "config.json" => config(&state),
        _ => ApiError::new(StatusCode::NOT_FOUND, "Not Found", "no such console file").into_response(),
    }
}

fn config(state: &AppState) -> Response {
    let p = &state.storage.plugin;
    let v = serde_json::json!({
        "base_path": state.config.base_path(),
        "auth_mode": state.config.auth.mode,
        "version": env!("CARGO_PKG_VERSION"),
        "plugin": {
            "name": p.name.to_string(), "version": p.version.to_string(),
            "abi_version": p.abi_version.to_string(), "mode": state.storage.mode,
        },
        "capabilities": state.storage.capabilities().names(),
    });
    super::json::json(StatusCode::OK, v)
}

/// The console's routes, when enabled and the streams do not live at the root.
pub fn routes(state: &AppState) -> Option<Router<Arc<AppState>>> {
    let c = &state.config.console;
    if !c.enabled {
        return None;
    }
    if state.config.base_path().is_empty() {
        tracing::warn!("the console is not served: with http.stream_base_path empty it would shadow a stream");
        return None;
    }
    let mount = c.mount().to_string();
    let slash = format!("{mount}/");
    Some(
        Router::new()
            .route(&mount, get(move || async move { Redirect::permanent(&slash) }))
            .route(&format!("{mount}/"), get(index))
            .route(&format!("{mount}/{{file}}"), get(asset)),
    )
}
