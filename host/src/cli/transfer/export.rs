//! Writes streams in the export format (see the parent module for the format). Each stream is
//! one consistent snapshot taken through the engine (`ext::DESCRIBE`: retained start, tail and
//! writer state together), so an export of a running server is safe: appends that land while
//! it runs are simply not in it.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;

use abi_stable::std_types::{RSlice, RStr};
use base64::Engine as _;
use durable_streams_core::abi::*;
use serde_json::json;

use super::{end_progress, progress, TransferError, FORMAT, VERSION};
use crate::clock::now_ms;
use crate::plugin::Storage;

const CHUNK: u64 = 1 << 20;

/// What an export wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Exported {
    pub streams: usize,
    pub bytes: u64,
    pub subscriptions: usize,
}

/// Writes every live stream (optionally under `prefix`) to `out`, and, for a whole export (no
/// prefix), the subscriptions.
pub fn export(storage: &Storage, prefix: &str, out: &mut dyn Write) -> Result<Exported, TransferError> {
    export_where(storage, prefix, |_| true, |_| true, out)
}

/// [`export`] of only the streams and subscriptions the filters keep (an export over HTTP keeps
/// what its token may see).
pub fn export_where(
    storage: &Storage,
    prefix: &str,
    keep_stream: impl Fn(&str) -> bool,
    keep_sub: impl Fn(&crate::subs::model::Sub) -> bool,
    out: &mut dyn Write,
) -> Result<Exported, TransferError> {
    let mut names = Vec::new();
    crate::cli::for_each_stream(storage, prefix, |l| {
        if keep_stream(&l.name) {
            names.push(l.name.to_string());
        }
        Ok(())
    })?;
    let subs = if prefix.is_empty() {
        subscriptions(storage)?.into_iter().filter(|s| keep_sub(s)).collect()
    } else {
        Vec::new()
    };
    export_names(storage, &names, &subs, out)
}

/// The subscriptions as their log leaves them (none when the log does not exist).
pub fn subscriptions(storage: &Storage) -> Result<Vec<crate::subs::model::Sub>, TransferError> {
    use crate::subs::store;
    let values = match store::read_from(storage, store::SUBS_STREAM, store::Cursor::default()) {
        Ok((v, _)) => v,
        Err(e) if e.code == ErrorCode::NOT_FOUND => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut subs = BTreeMap::new();
    for v in values {
        match store::parse(v)? {
            store::Record::Put(s) => {
                subs.insert(s.id.clone(), *s);
            }
            store::Record::Delete(id) => {
                subs.remove(&id);
            }
            store::Record::Snapshot(all) => {
                subs = all.into_iter().map(|s| (s.id.clone(), s)).collect();
            }
        }
    }
    Ok(subs.into_values().collect())
}

fn head(storage: &Storage, name: &str) -> Result<Option<StreamMeta>, TransferError> {
    match storage.call_sync(|e| {
        e.head(&HeadRequest {
            name: RStr::from(name),
            now_ms: now_ms(),
        })
    }) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.code == ErrorCode::NOT_FOUND || e.code == ErrorCode::GONE => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A stream's start, tail and writer state read together; without `ext::DESCRIBE` (engines
/// that lack it): start 0, the tail of `meta`, no writer state.
fn describe(storage: &Storage, name: &str, meta: &StreamMeta) -> Result<Option<(u64, u64, Option<serde_json::Value>)>, TransferError> {
    let input = json!({"name": name, "now_ms": now_ms()}).to_string();
    match storage.call_sync(|e| e.extension(RStr::from(ext::DESCRIBE), RSlice::from(input.as_bytes()))) {
        Ok(out) => {
            let v: serde_json::Value = serde_json::from_slice(out.as_slice())
                .map_err(|e| EngineError::new(ErrorCode::INTERNAL, format!("describe answered undecodable JSON: {e}")))?;
            let n = |k: &str| v[k].as_u64().unwrap_or(0);
            Ok(Some((n("start"), n("tail"), Some(v["writer"].clone()))))
        }
        Err(e) if e.code == ErrorCode::UNSUPPORTED => Ok(Some((0, meta.tail, None))),
        Err(e) if e.code == ErrorCode::NOT_FOUND || e.code == ErrorCode::GONE => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Orders `names` so that a fork comes after its source (when both are exported).
fn fork_order(storage: &Storage, names: &[String]) -> Result<Vec<(String, StreamMeta)>, TransferError> {
    let mut metas = BTreeMap::new();
    for name in names {
        if let Some(m) = head(storage, name)? {
            metas.insert(name.clone(), m);
        }
    }
    let mut done = HashSet::new();
    let mut out = Vec::with_capacity(metas.len());
    for name in metas.keys() {
        let mut chain = vec![name.clone()];
        while let Some(src) = metas.get(chain.last().unwrap()).and_then(|m| m.fork_source.as_ref().into_option()) {
            let src = src.to_string();
            if !metas.contains_key(&src) || done.contains(&src) || chain.contains(&src) {
                break;
            }
            chain.push(src);
        }
        for n in chain.into_iter().rev() {
            if done.insert(n.clone()) {
                let m = metas[&n].clone();
                out.push((n, m));
            }
        }
    }
    Ok(out)
}

/// Writes the named streams (those still live) and `subs` to `out`.
pub fn export_names(
    storage: &Storage,
    names: &[String],
    subs: &[crate::subs::model::Sub],
    out: &mut dyn Write,
) -> Result<Exported, TransferError> {
    writeln!(
        out,
        "{}",
        json!({"format": FORMAT, "version": VERSION, "mode": storage.mode, "exported_at_ms": now_ms()})
    )?;
    let mut done = Exported::default();
    let mut written = HashSet::new();
    for (name, meta) in fork_order(storage, names)? {
        let Some((start, tail, writer)) = describe(storage, &name, &meta)? else {
            continue;
        };
        // A fork stays a fork when its source is in the export; otherwise it is written whole.
        let fork = meta
            .fork_source
            .as_ref()
            .into_option()
            .map(|s| s.to_string())
            .filter(|s| written.contains(s))
            .map(|s| (s, meta.fork_position));
        let from = match &fork {
            Some((_, pos)) => start.max(*pos),
            None => start,
        };
        let closed = writer.as_ref().map_or(meta.closed, |w| w["closed"] == true);
        writeln!(
            out,
            "{}",
            json!({"type": "stream", "name": name, "content_type": meta.content_type.as_str(),
                   "ttl_secs": meta.lifetime.ttl_secs.into_option(), "expires_at_ms": meta.lifetime.expires_at_ms.into_option(),
                   "closed": closed, "start": start, "fork": fork})
        )?;
        let mut pos = from;
        while pos < tail {
            let chunk = storage.call_sync(|e| {
                e.read(&ReadRequest {
                    name: RStr::from(name.as_str()),
                    start: ReadStart::At,
                    position: pos,
                    max_bytes: CHUNK,
                    now_ms: now_ms(),
                })
            })?;
            let data = chunk.data.bytes();
            // Appends after the snapshot are not part of it (records end at the tail read).
            let keep = (tail.min(chunk.next) - pos) as usize;
            if keep > 0 {
                let b64 = base64::engine::general_purpose::STANDARD.encode(&data.as_slice()[..keep]);
                writeln!(out, "{}", json!({"type": "data", "name": name, "base64": b64}))?;
                done.bytes += keep as u64;
            }
            if chunk.next <= pos {
                break;
            }
            pos = chunk.next.min(tail);
        }
        writeln!(
            out,
            "{}",
            json!({"type": "end", "name": name, "tail": pos, "closed": closed, "writer": writer})
        )?;
        written.insert(name);
        done.streams += 1;
        progress(&format!("exported {} streams, {} bytes", done.streams, done.bytes));
    }
    for s in subs {
        writeln!(out, "{}", json!({"type": "subscription", "sub": s}))?;
        done.subscriptions += 1;
    }
    writeln!(
        out,
        "{}",
        json!({"type": "summary", "streams": done.streams, "bytes": done.bytes, "subscriptions": done.subscriptions})
    )?;
    out.flush()?;
    end_progress();
    Ok(done)
}
