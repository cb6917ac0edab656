//! The listing API under the control prefix: `GET {base}/__ds/streams?prefix=&start_after=&limit=&delimiter=`
//! (a page of stream metadata in name order, a cursor for the next, internal streams and
//! streams the caller may not read left out; with `delimiter`, as S3's `ListObjectsV2`: the
//! names directly under the prefix and the common prefixes below it) and `GET {base}/__ds/streams/{name}` (one stream's
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
/// Engine pages looked at for one answer with a delimiter (each folder passed over may take
/// one); a page that stops short still carries its cursor.
const MAX_GROUP_SCANS: usize = 32;
/// The longest delimiter accepted.
const MAX_DELIMITER: usize = 16;

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
    delimiter: Option<String>,
}

fn parse(query: Option<&str>) -> Result<ListQuery, ApiError> {
    let mut q = ListQuery {
        prefix: String::new(),
        start_after: None,
        limit: DEFAULT_LIMIT,
        delimiter: None,
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
            "delimiter" if v.len() > MAX_DELIMITER => {
                return Err(ApiError::bad_request(format!("delimiter must be at most {MAX_DELIMITER} bytes")))
            }
            "delimiter" if !v.is_empty() => q.delimiter = Some(v.into_owned()),
            "delimiter" => {}
            crate::auth::QUERY_PARAM => {}
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown parameter '{other}' (prefix, start_after, limit, delimiter)"
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
    if let Some(d) = q.delimiter.clone() {
        return list_grouped(state, caller, q, &d).await;
    }
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

/// The common prefix `name` falls in under `prefix` (up to and including the first `delim`
/// after the prefix), if any.
fn group_of<'n>(name: &'n str, prefix: &str, delim: &str) -> Option<&'n str> {
    let rest = name.strip_prefix(prefix)?;
    rest.find(delim).map(|i| &name[..prefix.len() + i + delim.len()])
}

/// With a delimiter: the streams directly under `q.prefix` and the common prefixes below it,
/// `q.limit` of both together, in name order. A cursor that is a common prefix resumes after
/// every name in it. Folders come from names the caller may read, so none shows another's.
async fn list_grouped(state: &AppState, caller: &Caller, q: ListQuery, delim: &str) -> Result<Response, ApiError> {
    let ranges = caller.ranges(Op::Read, &q.prefix);
    // The folder answered last (the cursor's, when a page ended on one): its names are passed.
    let mut last_group: Option<String> = q.start_after.clone().filter(|a| group_of(a, &q.prefix, delim) == Some(a.as_str()));
    let past = |g: &str| format!("{g}\u{10FFFF}");
    let mut after = match &last_group {
        Some(g) => Some(past(g)),
        None => q.start_after.clone(),
    };
    let (mut streams, mut prefixes) = (Vec::new(), Vec::new());
    let mut emitted = 0u32;
    let mut next: Option<String> = None;
    for _ in 0..MAX_GROUP_SCANS {
        let (page, more) = scan(state, &ranges, after.as_deref(), q.limit - emitted).await?;
        let mut stopped_at = None;
        for (i, (name, meta)) in page.iter().enumerate() {
            if name.starts_with(INTERNAL_PREFIX) {
                continue;
            }
            let key = match group_of(name, &q.prefix, delim) {
                Some(g) if last_group.as_deref() == Some(g) => continue,
                Some(g) => {
                    prefixes.push(serde_json::json!({ "prefix": g }));
                    last_group = Some(g.to_string());
                    g.to_string()
                }
                None => {
                    streams.push(meta_json(caller, name, meta));
                    name.clone()
                }
            };
            emitted += 1;
            if emitted == q.limit {
                stopped_at = Some((i, key));
                break;
            }
        }
        if let Some((i, key)) = stopped_at {
            next = (more || i + 1 < page.len()).then_some(key);
            break;
        }
        if !more {
            next = None;
            break;
        }
        // The next engine page: past the folder this one ended in, else past its last name.
        let last = page.last().map(|(n, _)| n.as_str());
        after = match (&last_group, last) {
            (Some(g), Some(n)) if n.starts_with(g.as_str()) => Some(past(g)),
            (_, n) => n.map(str::to_string).or(after),
        };
        // Out of engine pages for this answer: the next one resumes here.
        next = after.clone();
    }
    Ok(json(
        StatusCode::OK,
        serde_json::json!({ "streams": streams, "common_prefixes": prefixes, "next_start_after": next }),
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
            NameRange::Exactly(n) if after.is_none_or(|a| n.as_str() > a) => match state.storage.head(n).await {
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
    let meta = state.storage.head(&name).await?;
    Ok(json(StatusCode::OK, meta_json(caller, &name, &meta)))
}
