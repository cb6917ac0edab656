//! POST: append (JSON-framed in JSON mode), append-and-close, or close-only.

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use durable_streams_core::{content_type, json, producer};

use super::error::{ApiError, Conflict};
use super::{body, headers as h};
use crate::clock::now_ms;
use crate::plugin::AppendParts;
use crate::state::AppState;

/// After a JSON framing failure, decide whether the engine's answer (closed, type mismatch)
/// takes precedence over the 400.
async fn json_error_precedence(state: &AppState, name: &str, err: ApiError) -> ApiError {
    match state.storage.head(name).await {
        Err(e) => e.into(),
        Ok(meta) if meta.closed => ApiError::closed("stream is closed", meta.tail),
        Ok(meta) if !content_type::is_json(&meta.content_type) => {
            ApiError::conflict(Conflict::ContentType, "content type does not match the stream's")
        }
        Ok(_) => err,
    }
}

pub async fn handle(state: &AppState, name: &str, parts: &Parts, body: Body) -> Result<Response, ApiError> {
    let headers = &parts.headers;
    let found = h::AppendHeaders::of(headers);
    let close = found.closed();
    let stamp = producer::parse_headers(
        found.producer_id.map(|v| v.to_str().unwrap_or("\u{0}")),
        found.producer_epoch.map(|v| v.to_str().unwrap_or("x")),
        found.producer_seq.map(|v| v.to_str().unwrap_or("x")),
    )
    .map_err(|e| ApiError::bad_request(e.to_string()))?;
    if stamp.as_ref().is_some_and(|s| s.id.contains('\u{0}')) {
        return Err(ApiError::bad_request("Producer-Id must be valid text"));
    }
    let stream_seq = match found.stream_seq {
        None => None,
        Some(v) => Some(v.to_str().map_err(|_| ApiError::bad_request("Stream-Seq must be ASCII"))?),
    };
    let raw = body::read_limited(body, state.config.limits.max_body_bytes).await?;
    if raw.is_empty() && !close {
        return Err(ApiError::bad_request("an append needs a body (or Stream-Closed: true to close)"));
    }
    let ct = match found.content_type {
        Some(v) => Some(v.to_str().map_err(|_| ApiError::bad_request("Content-Type must be ASCII"))?.trim()),
        None => None,
    };
    if !raw.is_empty() && ct.is_none() {
        return Err(ApiError::bad_request("an append with a body needs a Content-Type"));
    }
    let (body_bytes, appended_messages): (Bytes, u64) = match ct {
        Some(c) if !raw.is_empty() && content_type::is_json(c) => match json::frame(&raw, false) {
            Ok(f) => (Bytes::from(f.bytes), f.messages as u64),
            // Boxed: a rare path's future does not make every append's larger.
            Err(e) => return Err(Box::pin(json_error_precedence(state, name, ApiError::bad_request(e.to_string()))).await),
        },
        _ => {
            let n = u64::from(!raw.is_empty());
            (raw, n)
        }
    };
    let has_body = !body_bytes.is_empty();
    let appended_bytes = body_bytes.len() as u64;
    let outcome = state
        .storage
        .append_parts(AppendParts {
            name,
            content_type: if has_body { ct } else { None },
            body: &body_bytes,
            close,
            producer: stamp.as_ref().map(|s| (s.id.as_str(), s.epoch, s.seq)),
            stream_seq,
            now_ms: now_ms(),
        })
        .await?;
    if !outcome.duplicate {
        state.live.wake(name);
        if let Some(subs) = &state.subs {
            subs.on_append(name, outcome.tail.saturating_sub(appended_bytes), outcome.tail);
        }
        state.metrics.appended_bytes.inc_by(appended_bytes);
        state.metrics.appended_messages.inc_by(appended_messages);
        state.retention.note_append(name, outcome.tail);
    }
    let status = if stamp.is_some() && has_body && !outcome.duplicate {
        StatusCode::OK
    } else {
        StatusCode::NO_CONTENT
    };
    let mut resp = super::answer(status);
    let out = resp.headers_mut();
    out.insert(h::STREAM_NEXT_OFFSET, super::offset_value(outcome.tail));
    if outcome.closed {
        out.insert(h::STREAM_CLOSED, HeaderValue::from_static("true"));
    }
    if let Some(p) = outcome.producer.into_option() {
        out.insert(h::PRODUCER_EPOCH, HeaderValue::from(p.epoch));
        out.insert(h::PRODUCER_SEQ, HeaderValue::from(p.seq));
    } else if let Some(s) = &stamp {
        out.insert(h::PRODUCER_EPOCH, HeaderValue::from(s.epoch));
        out.insert(h::PRODUCER_SEQ, HeaderValue::from(s.seq));
    }
    Ok(resp)
}
