//! `GET {base}/__ds/records/{name}?offset=&limit=`: where each append of a stream began, from
//! `offset` on (the engine's `ext::RECORDS`), as offsets: `{"starts": [offset, ...]}`, or
//! `{"starts": null}` from an engine that keeps no boundaries (the jetstream mode merges the
//! appends that arrive together). Needs `read` on the stream; for viewers (the console's rows
//! per append). Reads no message bytes.

use abi_stable::std_types::{RSlice, RStr};
use axum::http::StatusCode;
use axum::response::Response;
use durable_streams_core::abi::{ext, ErrorCode};
use durable_streams_core::offset::ReadFrom;
use durable_streams_core::Offset;

use super::error::ApiError;
use super::json::json;
use crate::auth::{Caller, Op};
use crate::state::AppState;

const DEFAULT_LIMIT: u32 = 1000;
const MAX_LIMIT: u32 = 10_000;

pub async fn handle(state: &AppState, caller: &Caller, raw: &str, query: Option<&str>) -> Result<Response, ApiError> {
    let name = super::path::stream_name("", raw)?;
    caller.require(Op::Read, &name)?;
    let (mut from, mut limit) = (ReadFrom::Start, DEFAULT_LIMIT);
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (super::query::decode(k)?, super::query::decode(v)?);
        match k.as_ref() {
            "offset" => from = ReadFrom::parse(&v).map_err(|e| ApiError::bad_request(format!("offset: {e}")))?,
            "limit" => {
                limit = v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| ApiError::bad_request(format!("limit must be a whole number from 1 to {MAX_LIMIT}")))?;
            }
            crate::auth::QUERY_PARAM => {}
            other => return Err(ApiError::bad_request(format!("unknown parameter '{other}' (offset, limit)"))),
        }
    }
    let meta = state.storage.head(&name).await?;
    let from = match from {
        ReadFrom::Start => 0,
        ReadFrom::Now => meta.tail,
        ReadFrom::At(o) => o.0,
    };
    let input = serde_json::json!({
        "name": name, "from": from, "to": meta.tail, "limit": limit, "now_ms": crate::clock::now_ms(),
    })
    .to_string();
    let answer = state
        .storage
        .call(move |e| e.extension(RStr::from(ext::RECORDS), RSlice::from(input.as_bytes())))
        .await;
    let starts = match answer {
        Ok(bytes) => {
            let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            let list: Vec<String> = v["starts"]
                .as_array()
                .map(|a| a.iter().filter_map(|x| x.as_u64()).map(|p| Offset(p).to_string()).collect())
                .unwrap_or_default();
            serde_json::Value::from(list)
        }
        Err(e) if e.code == ErrorCode::UNSUPPORTED => serde_json::Value::Null,
        Err(e) => return Err(e.into()),
    };
    Ok(json(StatusCode::OK, serde_json::json!({ "starts": starts })))
}
