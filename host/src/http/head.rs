//! HEAD: stream metadata (tail, closure, lifetime); never renews a sliding TTL, never cached.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use durable_streams_core::ttl;

use super::error::ApiError;
use super::headers as h;
use crate::state::AppState;

pub async fn handle(state: &AppState, name: &str) -> Result<Response, ApiError> {
    let meta = state.storage.head(name).await?;
    let mut resp = super::answer(StatusCode::OK);
    let out = resp.headers_mut();
    if let Some(v) = super::content_type_value(&meta.content_type) {
        out.insert(header::CONTENT_TYPE, v);
    }
    out.insert(h::STREAM_NEXT_OFFSET, super::offset_value(meta.tail));
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if meta.closed {
        out.insert(h::STREAM_CLOSED, HeaderValue::from_static("true"));
    }
    if let Some(t) = meta.lifetime.ttl_secs.into_option() {
        out.insert(h::STREAM_TTL, HeaderValue::from(t));
    }
    if let Some(at) = meta.lifetime.expires_at_ms.into_option() {
        if let Ok(v) = HeaderValue::from_str(&ttl::format_unix_ms(at)) {
            out.insert(h::STREAM_EXPIRES_AT, v);
        }
    }
    Ok(resp)
}
