//! Writes streams in the export format (see the parent module for the format).

use std::io::Write;

use abi_stable::std_types::RStr;
use base64::Engine as _;
use durable_streams_core::abi::*;
use serde_json::json;

use super::{end_progress, progress, TransferError, FORMAT, VERSION};
use crate::plugin::Storage;
use crate::state::now_ms;

const CHUNK: u64 = 1 << 20;

/// Writes every live stream (optionally under `prefix`) to `out`. Returns (streams, bytes).
pub fn export(storage: &Storage, prefix: &str, out: &mut dyn Write) -> Result<(usize, u64), TransferError> {
    let mut names = Vec::new();
    crate::cli::for_each_stream(storage, prefix, |l| {
        names.push(l.name.to_string());
        Ok(())
    })?;
    export_names(storage, &names, out)
}

/// Writes the named streams (those still live) to `out`. Returns (streams, bytes).
pub fn export_names(storage: &Storage, names: &[String], out: &mut dyn Write) -> Result<(usize, u64), TransferError> {
    writeln!(
        out,
        "{}",
        json!({"format": FORMAT, "version": VERSION, "mode": storage.mode, "exported_at_ms": now_ms()})
    )?;
    let (mut streams, mut bytes) = (0usize, 0u64);
    for name in names {
        let meta = match storage.call_sync(|e| {
            e.head(&HeadRequest {
                name: RStr::from(name.as_str()),
                now_ms: now_ms(),
            })
        }) {
            Ok(m) => m,
            Err(e) if e.code == ErrorCode::NOT_FOUND || e.code == ErrorCode::GONE => continue,
            Err(e) => return Err(e.into()),
        };
        writeln!(
            out,
            "{}",
            json!({"type": "stream", "name": name, "content_type": meta.content_type.as_str(),
                   "ttl_secs": meta.lifetime.ttl_secs.into_option(), "expires_at_ms": meta.lifetime.expires_at_ms.into_option(),
                   "closed": meta.closed})
        )?;
        let mut pos = 0u64;
        let mut closed;
        loop {
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
            if !data.is_empty() {
                let b64 = base64::engine::general_purpose::STANDARD.encode(data.as_slice());
                writeln!(out, "{}", json!({"type": "data", "name": name, "base64": b64}))?;
                bytes += data.len() as u64;
            }
            pos = chunk.next;
            closed = chunk.meta.closed;
            if chunk.next >= chunk.meta.tail {
                break;
            }
        }
        writeln!(out, "{}", json!({"type": "end", "name": name, "tail": pos, "closed": closed}))?;
        streams += 1;
        progress(&format!("exported {streams} streams, {bytes} bytes"));
    }
    writeln!(out, "{}", json!({"type": "summary", "streams": streams, "bytes": bytes}))?;
    out.flush()?;
    end_progress();
    Ok((streams, bytes))
}
