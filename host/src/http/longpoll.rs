//! GET `live=long-poll`: answer at once when data is there, else wait for a write, a close or the timeout.

use std::pin::pin;

use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use durable_streams_core::{Offset, ReadFrom};

use super::cursor::next_cursor;
use super::error::ApiError;
use super::headers as h;
use super::query::ReadQuery;
use super::read::{data_response, read_first, read_live, Caching, Chunk};
use crate::auth::CredentialWatch;
use crate::state::AppState;

fn no_content(chunk: &Chunk, cursor: Option<String>) -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let out = resp.headers_mut();
    out.insert(h::STREAM_NEXT_OFFSET, super::offset_value(chunk.next));
    out.insert(h::STREAM_UP_TO_DATE, HeaderValue::from_static("true"));
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if chunk.at_eof() {
        out.insert(h::STREAM_CLOSED, HeaderValue::from_static("true"));
    } else if let Some(Ok(v)) = cursor.map(|c| HeaderValue::from_str(&c)) {
        out.insert(h::STREAM_CURSOR, v);
    }
    resp
}

/// `credential`: the caller's; a wait ends with 401 soon after it is revoked or expires.
pub async fn handle(
    state: &AppState,
    name: String,
    parts: &Parts,
    q: &ReadQuery,
    mut credential: CredentialWatch,
) -> Result<Response, ApiError> {
    let deadline = tokio::time::Instant::now() + state.config.server.long_poll_timeout();
    let cursor = || Some(next_cursor(q.cursor.as_deref()));
    let waiter = state.live.watch(&name);
    let _live = crate::metrics::GaugeGuard::new(&state.metrics.long_polls);
    let mut from = q.from;
    let mut first = true;
    let mut incarnation = 0;
    loop {
        let notified = waiter.notify.notified();
        let mut notified = pin!(notified);
        notified.as_mut().enable();
        // The first read goes to the engine when it must renew a sliding TTL; reads after a
        // wake may share the chunk another reader just read.
        let chunk = if first {
            read_first(state, &name, from, &waiter.entry).await?
        } else {
            read_live(state, &name, from, &waiter.entry, incarnation).await?
        };
        first = false;
        incarnation = chunk.meta.incarnation;
        if !chunk.data.is_empty() {
            state.metrics.read_bytes.inc_by(chunk.data.len() as u64);
            return Ok(data_response(parts, &chunk, cursor(), Caching::for_data(state)));
        }
        if chunk.at_eof() || state.readiness.is_draining() {
            return Ok(no_content(&chunk, cursor()));
        }
        from = ReadFrom::At(Offset(chunk.next));
        tokio::select! {
            _ = notified => continue,
            _ = tokio::time::sleep_until(deadline) => return Ok(no_content(&chunk, cursor())),
            _ = credential.lapsed(&state.auth) => {
                return Err(crate::auth::unauthorized("the access token was revoked or has expired", true))
            }
        }
    }
}
