//! The listing API under the control prefix: `GET {base}/__ds/streams?prefix=&start_after=&limit=`
//! (a page of stream metadata in name order, a cursor for the next, internal streams and
//! streams the caller may not read left out) and `GET {base}/__ds/streams/{name}` (one stream's
//! metadata as JSON: everything HEAD tells). Goes through the engine contract's `list` and
//! `head`, so every plugin serves it. Owns no stream behaviour.

use axum::http::StatusCode;
use axum::response::Response;
use durable_streams_core::abi::StreamMeta;
use durable_streams_core::{ttl, Offset};

use super::error::ApiError;
use super::json::json;
use crate::auth::{Caller, Op};
use crate::state::AppState;
use crate::subs::INTERNAL_PREFIX;

/// Default and largest page.
const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;
/// Engine pages looked at for one answer when the caller may read few of the names.
const MAX_SCANS: usize = 8;

/// One stream's metadata as JSON.
pub fn meta_json(name: &str, m: &StreamMeta) -> serde_json::Value {
    serde_json::json!({
        "name": name,
        "content_type": m.content_type.as_str(),
        "bytes": m.tail,
        "tail_offset": Offset(m.tail).to_string(),
        "closed": m.closed,
        "ttl_secs": m.lifetime.ttl_secs.into_option(),
        "expires_at": m.lifetime.expires_at_ms.into_option().map(ttl::format_unix_ms),
        "fork_source": m.fork_source.as_ref().into_option().map(|s| s.as_str()),
        "fork_offset": m.fork_source.is_some().then(|| Offset(m.fork_position).to_string()),
    })
}

struct ListQuery {
    prefix: String,
    start_after: Option<String>,
    limit: u32,
}

fn parse(query: Option<&str>) -> Result<ListQuery, ApiError> {
    let mut q = ListQuery {
        prefix: String::new(),
        start_after: None,
        limit: DEFAULT_LIMIT,
    };
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (super::query::decode(k)?, super::query::decode(v)?);
        match k.as_str() {
            "prefix" => q.prefix = v,
            "start_after" if !v.is_empty() => q.start_after = Some(v),
            "start_after" => {}
            "limit" => {
                q.limit = v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| ApiError::bad_request(format!("limit must be a whole number from 1 to {MAX_LIMIT}")))?;
            }
            crate::auth::QUERY_PARAM => {}
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown parameter '{other}' (prefix, start_after, limit)"
                )))
            }
        }
    }
    Ok(q)
}

/// `GET __ds/streams`: a page of the streams `caller` may read.
pub async fn list(state: &AppState, caller: &Caller, query: Option<&str>) -> Result<Response, ApiError> {
    let q = parse(query)?;
    let mut out = Vec::new();
    let mut cursor = q.start_after.clone();
    let mut next = None;
    for _ in 0..MAX_SCANS {
        let want = q.limit - out.len() as u32;
        let page = state.storage.list_page(q.prefix.clone(), cursor.clone(), want).await?;
        let exhausted = (page.len() as u32) < want;
        for l in page.iter() {
            let name = l.name.as_str();
            cursor = Some(name.to_string());
            if !name.starts_with(INTERNAL_PREFIX) && caller.may(Op::Read, name) {
                out.push(meta_json(name, &l.meta));
            }
        }
        if exhausted {
            next = None;
            break;
        }
        next = cursor.clone();
        if out.len() as u32 >= q.limit {
            break;
        }
    }
    Ok(json(
        StatusCode::OK,
        serde_json::json!({ "streams": out, "next_start_after": next }),
    ))
}

/// `GET __ds/streams/{name}`: one stream's metadata (needs `read` on it).
pub async fn one(state: &AppState, caller: &Caller, raw: &str) -> Result<Response, ApiError> {
    // The same decoding and validation as a stream's own path, so scopes match the same name.
    let name = super::path::stream_name("", raw)?;
    // (Internal names never get here: stream_name refuses the control prefix.)
    caller.require(Op::Read, &name)?;
    let meta = state.storage.head(name.clone()).await?;
    Ok(json(StatusCode::OK, meta_json(&name, &meta)))
}
