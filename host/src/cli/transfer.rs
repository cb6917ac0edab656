//! `export` and `import`: a versioned JSON-lines format that moves streams between engines.
//!
//! Format (version 1), one JSON object per line:
//! `{"format":"durable-streams-export","version":1,...}`, then per stream
//! `{"type":"stream","name","content_type","ttl_secs","expires_at_ms","closed"}`, its bytes as
//! `{"type":"data","name","base64"}` chunks (stored form: JSON streams keep their framing), and
//! `{"type":"end","name","tail","closed"}`; last `{"type":"summary","streams","bytes"}`.
//! Forks are exported materialized; producer and `Stream-Seq` state, subscriptions and signing
//! keys (the internal `__ds/` streams) are not exported.

use std::io::{BufRead, IsTerminal, Write};

use abi_stable::std_types::{ROption, RSlice, RStr};
use base64::Engine as _;
use durable_streams_core::abi::*;
use serde_json::json;

use crate::plugin::{OwnedAppend, Storage};
use crate::state::now_ms;

pub const FORMAT: &str = "durable-streams-export";
pub const VERSION: u64 = 1;
const CHUNK: u64 = 1 << 20;

/// What `import` does when a stream already exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Conflict {
    Skip,
    Fail,
    Replace,
}

/// Why a transfer failed.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("storage: {0}")]
    Engine(#[from] EngineError),
    #[error("line {line}: {reason}")]
    Format { line: usize, reason: String },
    #[error("stream '{0}' already exists (use --on-conflict skip or replace)")]
    Exists(String),
}

fn progress(msg: &str) {
    if std::io::stderr().is_terminal() {
        eprint!("\r{msg}");
    }
}

/// Writes every live stream (optionally under `prefix`) to `out`.
pub fn export(storage: &Storage, prefix: &str, out: &mut dyn Write) -> Result<(usize, u64), TransferError> {
    writeln!(
        out,
        "{}",
        json!({"format": FORMAT, "version": VERSION, "mode": storage.mode, "exported_at_ms": now_ms()})
    )?;
    let mut names = Vec::new();
    super::for_each_stream(storage, prefix, |l| {
        names.push(l.name.to_string());
        Ok(())
    })?;
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
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
    Ok((streams, bytes))
}

fn field<'a>(v: &'a serde_json::Value, k: &str, line: usize) -> Result<&'a serde_json::Value, TransferError> {
    v.get(k).ok_or_else(|| TransferError::Format {
        line,
        reason: format!("missing '{k}'"),
    })
}

fn text(v: &serde_json::Value, k: &str, line: usize) -> Result<String, TransferError> {
    field(v, k, line)?
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| TransferError::Format {
            line,
            reason: format!("'{k}' must be a string"),
        })
}

/// Reads an export from `input` into the engine. Returns (streams imported, streams skipped).
pub fn import(storage: &Storage, input: &mut dyn BufRead, on_conflict: Conflict) -> Result<(usize, usize), TransferError> {
    let (mut imported, mut skipped) = (0usize, 0usize);
    let mut skipping: Option<String> = None;
    let mut ct = String::new();
    for (i, line) in input.lines().enumerate() {
        let line_no = i + 1;
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line).map_err(|e| TransferError::Format {
            line: line_no,
            reason: e.to_string(),
        })?;
        if line_no == 1 {
            if v.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
                return Err(TransferError::Format {
                    line: 1,
                    reason: "not a durable-streams export".into(),
                });
            }
            let version = v.get("version").and_then(|n| n.as_u64()).unwrap_or(0);
            if version != VERSION {
                return Err(TransferError::Format {
                    line: 1,
                    reason: format!("export format version {version}; this server reads version {VERSION}"),
                });
            }
            continue;
        }
        let kind = text(&v, "type", line_no)?;
        if kind == "summary" {
            continue;
        }
        let name = text(&v, "name", line_no)?;
        if skipping.as_deref() == Some(name.as_str()) {
            if kind == "end" {
                skipping = None;
            }
            continue;
        }
        match kind.as_str() {
            "stream" => {
                ct = text(&v, "content_type", line_no)?;
                let lifetime = Lifetime {
                    ttl_secs: v.get("ttl_secs").and_then(|t| t.as_u64()).into(),
                    expires_at_ms: v.get("expires_at_ms").and_then(|t| t.as_u64()).into(),
                };
                let exists = storage
                    .call_sync(|e| {
                        e.head(&HeadRequest {
                            name: RStr::from(name.as_str()),
                            now_ms: now_ms(),
                        })
                    })
                    .is_ok();
                if exists {
                    match on_conflict {
                        Conflict::Skip => {
                            skipped += 1;
                            skipping = Some(name);
                            continue;
                        }
                        Conflict::Fail => return Err(TransferError::Exists(name)),
                        Conflict::Replace => storage.call_sync(|e| {
                            e.delete(&DeleteRequest {
                                name: RStr::from(name.as_str()),
                                now_ms: now_ms(),
                                only_if_expired: false,
                            })
                        })?,
                    }
                }
                storage.call_sync(|e| {
                    e.create(&CreateRequest {
                        name: RStr::from(name.as_str()),
                        content_type: ROption::RSome(RStr::from(ct.as_str())),
                        lifetime,
                        closed: false,
                        initial: RSlice::from(&b""[..]),
                        fork: ROption::RNone,
                        now_ms: now_ms(),
                    })
                })?;
            }
            "data" => {
                let b64 = text(&v, "base64", line_no)?;
                let body = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|e| TransferError::Format {
                        line: line_no,
                        reason: e.to_string(),
                    })?;
                let req = OwnedAppend {
                    name: name.clone(),
                    content_type: Some(ct.clone()),
                    body: body.into(),
                    close: false,
                    producer: None,
                    stream_seq: None,
                    now_ms: now_ms(),
                };
                storage.call_sync(|e| e.append(&req.as_request()))?;
            }
            "end" => {
                if field(&v, "closed", line_no)?.as_bool() == Some(true) {
                    let req = OwnedAppend {
                        name: name.clone(),
                        content_type: None,
                        body: Default::default(),
                        close: true,
                        producer: None,
                        stream_seq: None,
                        now_ms: now_ms(),
                    };
                    storage.call_sync(|e| e.append(&req.as_request()))?;
                }
                let want = field(&v, "tail", line_no)?.as_u64().unwrap_or(0);
                let meta = storage.call_sync(|e| {
                    e.head(&HeadRequest {
                        name: RStr::from(name.as_str()),
                        now_ms: now_ms(),
                    })
                })?;
                if meta.tail != want {
                    return Err(TransferError::Format {
                        line: line_no,
                        reason: format!("stream '{name}' ended at {} after import, expected {want}", meta.tail),
                    });
                }
                imported += 1;
                progress(&format!("imported {imported} streams"));
            }
            other => {
                return Err(TransferError::Format {
                    line: line_no,
                    reason: format!("unknown record type '{other}'"),
                })
            }
        }
    }
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
    Ok((imported, skipped))
}
