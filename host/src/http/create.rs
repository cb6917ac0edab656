//! PUT: create a stream (optionally closed, with initial data) or a fork; idempotent on matching config.

use abi_stable::std_types::{ROption, RSlice, RStr};
use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use durable_streams_core::abi::{CreateRequest, ForkFrom, Lifetime, ReadStart, StreamMeta};
use durable_streams_core::{content_type, json, producer, ttl, ReadFrom};

use super::error::ApiError;
use super::{body, headers as h, path};
use crate::clock::now_ms;
use crate::state::AppState;

/// The fork part of a PUT, as sent.
struct ForkSpec {
    source: String,
    offset: Option<ReadFrom>,
    sub_offset: u64,
}

fn parse_lifetime(headers: &HeaderMap) -> Result<Lifetime, ApiError> {
    let ttl_v = h::text(headers, &h::STREAM_TTL);
    let exp_v = h::text(headers, &h::STREAM_EXPIRES_AT);
    if headers.contains_key(&h::STREAM_TTL) && ttl_v.is_none() || headers.contains_key(&h::STREAM_EXPIRES_AT) && exp_v.is_none() {
        return Err(ApiError::bad_request("lifetime headers must be ASCII"));
    }
    if ttl_v.is_some() && exp_v.is_some() {
        return Err(ApiError::bad_request("send Stream-TTL or Stream-Expires-At, not both"));
    }
    let ttl_secs = ttl_v
        .map(ttl::parse_ttl)
        .transpose()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let expires = exp_v
        .map(ttl::parse_expires_at)
        .transpose()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(Lifetime {
        ttl_secs: ttl_secs.into(),
        expires_at_ms: expires.into(),
    })
}

/// The source stream a `Stream-Forked-From` value names (a path, its query ignored).
fn fork_source_name(base: &str, from: &str) -> Result<String, ApiError> {
    path::stream_name(base, from.split(['?', '#']).next().unwrap_or("")).map(|n| n.into_owned())
}

/// The fork source a create names, if any (for access control: a fork reads its source).
pub(crate) fn fork_source(base: &str, headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    h::text(headers, &h::STREAM_FORKED_FROM)
        .map(|from| fork_source_name(base, from))
        .transpose()
}

fn parse_fork(state: &AppState, headers: &HeaderMap) -> Result<Option<ForkSpec>, ApiError> {
    let from = h::text(headers, &h::STREAM_FORKED_FROM);
    let offset = h::text(headers, &h::STREAM_FORK_OFFSET);
    let sub = h::text(headers, &h::STREAM_FORK_SUB_OFFSET);
    let Some(from) = from else {
        if offset.is_some() || sub.is_some() || headers.contains_key(&h::STREAM_FORKED_FROM) {
            return Err(ApiError::bad_request(
                "Stream-Fork-Offset and Stream-Fork-Sub-Offset require Stream-Forked-From",
            ));
        }
        return Ok(None);
    };
    let source = fork_source_name(state.config.base_path(), from)?;
    let offset = offset
        .map(|o| ReadFrom::parse(o.trim()).map_err(|e| ApiError::bad_request(format!("invalid Stream-Fork-Offset: {e}"))))
        .transpose()?;
    let sub_offset = match sub {
        None => 0,
        Some(s) => producer::parse_number(s.trim())
            .ok_or_else(|| ApiError::bad_request("Stream-Fork-Sub-Offset must be a non-negative integer"))?,
    };
    Ok(Some(ForkSpec {
        source,
        offset,
        sub_offset,
    }))
}

/// Resolves a fork's (offset, sub-offset) to a position in the source.
async fn resolve_fork_position(state: &AppState, spec: &ForkSpec, source: &StreamMeta) -> Result<u64, ApiError> {
    let anchor = match spec.offset {
        None | Some(ReadFrom::Now) => source.tail,
        Some(ReadFrom::Start) => 0,
        Some(ReadFrom::At(o)) => o.0,
    };
    if anchor > source.tail {
        return Err(ApiError::bad_request("Stream-Fork-Offset is beyond the source's tail"));
    }
    if spec.sub_offset == 0 {
        return Ok(anchor);
    }
    let chunk = super::read::engine_read(state, &spec.source, ReadStart::At, anchor, 1).await?;
    let record = chunk.data.bytes();
    let record = record.as_slice();
    let units = if content_type::is_json(&source.content_type) {
        json::message_ends(record)
    } else {
        Vec::new()
    };
    let overshoot = || ApiError::bad_request("Stream-Fork-Sub-Offset is past the end of the record at Stream-Fork-Offset");
    if record.is_empty() {
        return Err(overshoot());
    }
    let sub = spec.sub_offset;
    if content_type::is_json(&source.content_type) {
        let idx = usize::try_from(sub).map_err(|_| overshoot())?;
        let end = *units.get(idx - 1).ok_or_else(overshoot)?;
        Ok(anchor + end as u64)
    } else if sub <= record.len() as u64 {
        Ok(anchor + sub)
    } else {
        Err(overshoot())
    }
}

/// The new stream's absolute URL, from the request's public origin (a relative reference when
/// the request names no host at all).
fn location(state: &AppState, parts: &Parts) -> String {
    match super::origin::of(parts, state.origin_rules()) {
        Some(o) => format!("{}://{}{}", o.scheme, o.authority, parts.uri.path()),
        None => parts.uri.path().to_string(),
    }
}

pub async fn handle(state: &AppState, name: String, parts: &Parts, body: Body) -> Result<Response, ApiError> {
    let headers = &parts.headers;
    let ct = match headers.get(header::CONTENT_TYPE) {
        None => None,
        Some(v) => {
            let s = v
                .to_str()
                .map_err(|_| ApiError::bad_request("Content-Type must be ASCII"))?
                .trim()
                .to_string();
            if !content_type::is_valid(&s) {
                return Err(ApiError::bad_request(format!("invalid Content-Type '{s}'")));
            }
            Some(s)
        }
    };
    let lifetime = parse_lifetime(headers)?;
    let closed = h::closed_flag(headers);
    let fork = parse_fork(state, headers)?;
    let raw = body::read_limited(body, state.config.limits.max_body_bytes).await?;

    let mut fork_position = 0;
    let mut effective_ct = ct.clone().unwrap_or_else(|| "application/octet-stream".into());
    if let Some(spec) = &fork {
        let meta = state.storage.head(&spec.source).await.map_err(|e| match e.code {
            durable_streams_core::abi::ErrorCode::NOT_FOUND => {
                ApiError::new(StatusCode::NOT_FOUND, "Not Found", "fork source does not exist")
            }
            durable_streams_core::abi::ErrorCode::GONE => {
                ApiError::conflict(super::error::Conflict::ForkSourceDeleted, "fork source was deleted")
            }
            _ => ApiError::from(e),
        })?;
        fork_position = resolve_fork_position(state, spec, &meta).await?;
        if ct.is_none() {
            effective_ct = meta.content_type.to_string();
        }
    }
    let initial = if content_type::is_json(&effective_ct) && !raw.is_empty() {
        bytes::Bytes::from(json::frame(&raw, true).map_err(|e| ApiError::bad_request(e.to_string()))?.bytes)
    } else {
        raw
    };

    let req_name = name.clone();
    let outcome = state
        .storage
        .call(move |e| {
            let fork = match &fork {
                Some(f) => ROption::RSome(ForkFrom {
                    source: RStr::from(f.source.as_str()),
                    position: fork_position,
                }),
                None => ROption::RNone,
            };
            e.create(&CreateRequest {
                name: RStr::from(req_name.as_str()),
                content_type: ct.as_deref().map(RStr::from).into(),
                lifetime,
                closed,
                initial: RSlice::from(&initial[..]),
                fork,
                now_ms: now_ms(),
            })
        })
        .await?;
    let meta = &outcome.meta;
    let mut resp = super::answer(if outcome.created { StatusCode::CREATED } else { StatusCode::OK });
    let out = resp.headers_mut();
    if let Some(v) = super::content_type_value(&meta.content_type) {
        out.insert(header::CONTENT_TYPE, v);
    }
    out.insert(h::STREAM_NEXT_OFFSET, super::offset_value(meta.tail));
    if meta.closed {
        out.insert(h::STREAM_CLOSED, HeaderValue::from_static("true"));
    }
    if outcome.created {
        if let Ok(v) = HeaderValue::from_str(&location(state, parts)) {
            out.insert(header::LOCATION, v);
        }
        state.live.wake(&name);
        if let Some(subs) = &state.subs {
            subs.on_append(&name, meta.fork_position, meta.tail);
        }
    }
    Ok(resp)
}
