//! Checks a whole export before anything is imported: the header, every record, each stream's
//! sequence (`stream`, `data`..., `end`) and its byte count, and the closing `summary`.

use std::collections::HashSet;
use std::io::BufRead;

use base64::Engine as _;
use durable_streams_core::abi::Lifetime;

use super::{TransferError, FORMAT, VERSION};

/// One stream of a checked export.
#[derive(Clone, Debug)]
pub struct StreamPlan {
    pub name: String,
    pub content_type: String,
    pub lifetime: Lifetime,
    pub closed: bool,
    pub tail: u64,
}

/// A checked export: its streams in file order, and its totals.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub streams: Vec<StreamPlan>,
    pub bytes: u64,
}

fn bad(line: usize, reason: impl Into<String>) -> TransferError {
    TransferError::Format {
        line,
        reason: reason.into(),
    }
}

fn text(v: &serde_json::Value, k: &str, line: usize) -> Result<String, TransferError> {
    v.get(k)
        .and_then(|x| x.as_str())
        .map(str::to_string)
        .ok_or_else(|| bad(line, format!("'{k}' must be a string")))
}

fn number(v: &serde_json::Value, k: &str, line: usize) -> Result<u64, TransferError> {
    v.get(k)
        .and_then(|x| x.as_u64())
        .ok_or_else(|| bad(line, format!("'{k}' must be a non-negative integer")))
}

fn optional_number(v: &serde_json::Value, k: &str, line: usize) -> Result<Option<u64>, TransferError> {
    match v.get(k) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(x) => x
            .as_u64()
            .map(Some)
            .ok_or_else(|| bad(line, format!("'{k}' must be a non-negative integer or null"))),
    }
}

fn flag(v: &serde_json::Value, k: &str, line: usize) -> Result<bool, TransferError> {
    v.get(k)
        .and_then(|x| x.as_bool())
        .ok_or_else(|| bad(line, format!("'{k}' must be true or false")))
}

/// Reads and checks a whole export. Nothing is written anywhere.
pub fn check(input: &mut dyn BufRead) -> Result<Plan, TransferError> {
    let mut plan = Plan::default();
    let mut seen = HashSet::new();
    // The stream being read: its plan and the bytes seen so far.
    let mut open: Option<(StreamPlan, u64)> = None;
    let mut header = false;
    let mut summary = false;
    for (i, line) in input.lines().enumerate() {
        let line_no = i + 1;
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        if summary {
            return Err(bad(line_no, "records after the summary"));
        }
        let v: serde_json::Value = serde_json::from_str(&line).map_err(|e| bad(line_no, e.to_string()))?;
        if !header {
            if v.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
                return Err(bad(line_no, "not a durable-streams export"));
            }
            let version = v.get("version").and_then(|n| n.as_u64()).unwrap_or(0);
            if version != VERSION {
                return Err(bad(
                    line_no,
                    format!("export format version {version}; this server reads version {VERSION}"),
                ));
            }
            header = true;
            continue;
        }
        let kind = text(&v, "type", line_no)?;
        if kind == "summary" {
            if let Some((s, _)) = &open {
                return Err(TransferError::Incomplete(format!("stream '{}' has no end record", s.name)));
            }
            let (streams, bytes) = (number(&v, "streams", line_no)?, number(&v, "bytes", line_no)?);
            if streams != plan.streams.len() as u64 || bytes != plan.bytes {
                return Err(bad(
                    line_no,
                    format!(
                        "the summary says {streams} streams and {bytes} bytes, but the file holds {} streams and {} bytes",
                        plan.streams.len(),
                        plan.bytes
                    ),
                ));
            }
            summary = true;
            continue;
        }
        let name = text(&v, "name", line_no)?;
        match (kind.as_str(), &mut open) {
            ("stream", None) => {
                if !seen.insert(name.clone()) {
                    return Err(bad(line_no, format!("stream '{name}' appears twice")));
                }
                let s = StreamPlan {
                    name,
                    content_type: text(&v, "content_type", line_no)?,
                    lifetime: Lifetime {
                        ttl_secs: optional_number(&v, "ttl_secs", line_no)?.into(),
                        expires_at_ms: optional_number(&v, "expires_at_ms", line_no)?.into(),
                    },
                    closed: flag(&v, "closed", line_no)?,
                    tail: 0,
                };
                open = Some((s, 0));
            }
            ("data", Some((s, n))) if s.name == name => {
                let b64 = text(&v, "base64", line_no)?;
                let len = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|e| bad(line_no, e.to_string()))?
                    .len();
                *n += len as u64;
            }
            ("end", Some((s, n))) if s.name == name => {
                let tail = number(&v, "tail", line_no)?;
                let closed = flag(&v, "closed", line_no)?;
                if tail != *n {
                    return Err(bad(
                        line_no,
                        format!("stream '{name}' ends at {tail} but its data records hold {n} bytes"),
                    ));
                }
                let (mut s, n) = open.take().expect("matched Some");
                s.tail = n;
                s.closed = closed;
                plan.bytes += n;
                plan.streams.push(s);
            }
            ("stream" | "data" | "end", Some((s, _))) => {
                return Err(bad(
                    line_no,
                    format!("'{kind}' record for '{name}' inside stream '{}' (no end record)", s.name),
                ))
            }
            ("data" | "end", None) => return Err(bad(line_no, format!("'{kind}' record for '{name}' before its stream record"))),
            (other, _) => return Err(bad(line_no, format!("unknown record type '{other}'"))),
        }
    }
    if !header {
        return Err(TransferError::Incomplete("the input is empty".into()));
    }
    if let Some((s, _)) = open {
        return Err(TransferError::Incomplete(format!(
            "stream '{}' has no end record (truncated?)",
            s.name
        )));
    }
    if !summary {
        return Err(TransferError::Incomplete("no summary record at the end (truncated?)".into()));
    }
    Ok(plan)
}
