//! The listing API under the control prefix: `GET {base}/__ds/streams?prefix=&start_after=&limit=`
//! (a page of stream metadata in name order, a cursor for the next, internal streams and
//! streams the caller may not read left out) and `GET {base}/__ds/streams/{name}` (one stream's
//! metadata as JSON: everything HEAD tells). Goes through the engine contract's `list` and
//! `head`, so every plugin serves it. Owns no stream behaviour.

use axum::http::StatusCode;
use axum::response::Response;
use durable_streams_core::abi::{ErrorCode, StreamMeta};
use durable_streams_core::{ttl, Offset};

use super::error::ApiError;
use super::json::json;
use crate::auth::scope::NameRange;
use crate::auth::{Caller, Op};
use crate::state::AppState;
use durable_streams_core::name::INTERNAL_PREFIX;

/// Default and largest page.
const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;
/// Engine pages looked at for one answer when internal streams take up a page.
const MAX_SCANS: usize = 8;

/// One stream's metadata as JSON, as `caller` may see it: a fork's source is named only when
/// the caller may read it (else `fork_source` is null; `fork_offset` still says it is a fork).
pub fn meta_json(caller: &Caller, name: &str, m: &StreamMeta) -> serde_json::Value {
    let source = m.fork_source.as_ref().into_option().map(|s| s.as_str());
    serde_json::json!({
        "name": name,
        "content_type": m.content_type.as_str(),
        "bytes": m.tail,
        "tail_offset": Offset(m.tail).to_string(),
        "closed": m.closed,
        "ttl_secs": m.lifetime.ttl_secs.into_option(),
        "expires_at": m.lifetime.expires_at_ms.into_option().map(ttl::format_unix_ms),
        "fork_source": source.filter(|s| caller.may(Op::Read, s)),
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
        match k.as_ref() {
            "prefix" => q.prefix = v.into_owned(),
            "start_after" if !v.is_empty() => q.start_after = Some(v.into_owned()),
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

/// `GET __ds/streams`: a page of the streams `caller` may read. Only the ranges of names the
/// caller may read are looked at, so neither a page nor its cursor shows any other name.
pub async fn list(state: &AppState, caller: &Caller, query: Option<&str>) -> Result<Response, ApiError> {
    let q = parse(query)?;
    let ranges = caller.ranges(Op::Read, &q.prefix);
    let mut out = Vec::new();
    let mut cursor = q.start_after;
    for _ in 0..MAX_SCANS {
        let want = q.limit - out.len() as u32;
        let (page, more) = scan(state, &ranges, cursor.as_deref(), want).await?;
        if let Some((last, _)) = page.last() {
            cursor = Some(last.clone());
        }
        out.extend(
            page.iter()
                .filter(|(n, _)| !n.starts_with(INTERNAL_PREFIX))
                .map(|(n, m)| meta_json(caller, n, m)),
        );
        if !more {
            cursor = None;
            break;
        }
        if out.len() as u32 >= q.limit {
            break;
        }
    }
    Ok(json(
        StatusCode::OK,
        serde_json::json!({ "streams": out, "next_start_after": cursor }),
    ))
}

/// Up to `want` streams after `after` across the disjoint `ranges`, in name order, and whether
/// more may follow.
async fn scan(
    state: &AppState,
    ranges: &[NameRange],
    after: Option<&str>,
    want: u32,
) -> Result<(Vec<(String, StreamMeta)>, bool), ApiError> {
    let mut page = Vec::new();
    // The smallest last name of a range that filled its page: beyond it, names are unseen.
    let mut bound: Option<String> = None;
    for r in ranges {
        match r {
            NameRange::Under(p) => {
                let got = state.storage.list_page(p.clone(), after.map(str::to_string), want).await?;
                if got.len() as u32 == want {
                    let last = got.last().map(|l| l.name.to_string()).unwrap_or_default();
                    bound = Some(bound.map_or(last.clone(), |b| b.min(last)));
                }
                page.extend(got.into_iter().map(|l| (l.name.into_string(), l.meta)));
            }
            NameRange::Exactly(n) if after.is_none_or(|a| n.as_str() > a) => match state.storage.head(n.clone()).await {
                Ok(meta) => page.push((n.clone(), meta)),
                Err(e) if e.code == ErrorCode::NOT_FOUND || e.code == ErrorCode::GONE => {}
                Err(e) => return Err(e.into()),
            },
            NameRange::Exactly(_) => {}
        }
    }
    page.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(b) = &bound {
        page.retain(|(n, _)| n <= b);
    }
    let more = bound.is_some() || page.len() > want as usize;
    page.truncate(want as usize);
    Ok((page, more))
}

/// `GET __ds/streams/{name}`: one stream's metadata (needs `read` on it).
pub async fn one(state: &AppState, caller: &Caller, raw: &str) -> Result<Response, ApiError> {
    // The same decoding and validation as a stream's own path, so scopes match the same name.
    let name = super::path::stream_name("", raw)?;
    // (Internal names never get here: stream_name refuses the control prefix.)
    caller.require(Op::Read, &name)?;
    let meta = state.storage.head(name.clone()).await?;
    Ok(json(StatusCode::OK, meta_json(caller, &name, &meta)))
}
