//! Checks a whole export before anything is imported: the header, every record, each stream's
//! sequence (`stream`, `data`..., `end`) and its byte count, and the closing `summary`.

use std::collections::HashSet;
use std::io::BufRead;

use base64::Engine as _;
use durable_streams_core::abi::Lifetime;
use durable_streams_core::name;

use super::{TransferError, FORMAT, VERSION};

/// One stream of a checked export.
#[derive(Clone, Debug)]
pub struct StreamPlan {
    pub name: String,
    pub content_type: String,
    pub lifetime: Lifetime,
    pub closed: bool,
    pub tail: u64,
    /// Its earliest retained offset (version 2; 0 before).
    pub start: u64,
    /// (source, position) when exported as a fork of a stream earlier in the file.
    pub fork: Option<(String, u64)>,
    /// Producers, `Stream-Seq` and closure as `ext::DESCRIBE` gave them (version 2).
    pub writer: Option<serde_json::Value>,
}

impl StreamPlan {
    /// Where its exported bytes start.
    pub fn data_start(&self) -> u64 {
        match &self.fork {
            Some((_, pos)) => self.start.max(*pos),
            None => self.start,
        }
    }
}

/// A checked export: its streams in file order, its subscriptions, and its totals.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub streams: Vec<StreamPlan>,
    pub subscriptions: Vec<crate::subs::model::Sub>,
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

/// Refuses a stream name the HTTP routes would refuse (traversal, empty or dot segments, control
/// characters, too long or deep, the server's internal `__ds/` names): an export never holds
/// one, and a stream so named could be neither read nor deleted.
fn stream_name(name: &str, line: usize) -> Result<(), TransferError> {
    name::validate(name).map_err(|e| bad(line, format!("stream {name:?}: {e}")))
}

/// Refuses a subscription the HTTP routes could not have created: its id, type, and every stream
/// name it holds (explicit, linked, wake stream, a pending wake's snapshot).
fn subscription(sub: &crate::subs::model::Sub, line: usize) -> Result<(), TransferError> {
    if !crate::subs::model::valid_id(&sub.id) {
        return Err(bad(line, "subscription ids are 1-256 printable ASCII characters"));
    }
    let c = &sub.config;
    if !matches!(c.kind.as_str(), "webhook" | "pull-wake") {
        return Err(bad(line, format!("subscription '{}': type must be webhook or pull-wake", sub.id)));
    }
    let wake = sub.wake.iter().flat_map(|w| w.snapshot.iter().map(|(p, _)| p));
    for n in c.streams.iter().chain(sub.links.keys()).chain(c.wake_stream.iter()).chain(wake) {
        stream_name(n, line)?;
    }
    Ok(())
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
            if !(1..=VERSION).contains(&version) {
                return Err(bad(
                    line_no,
                    format!("export format version {version}; this server reads versions 1 to {VERSION}"),
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
            let subs = optional_number(&v, "subscriptions", line_no)?.unwrap_or(0);
            if subs != plan.subscriptions.len() as u64 {
                return Err(bad(
                    line_no,
                    format!(
                        "the summary says {subs} subscriptions, but the file holds {}",
                        plan.subscriptions.len()
                    ),
                ));
            }
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
        if kind == "subscription" {
            if let Some((s, _)) = &open {
                return Err(bad(line_no, format!("a subscription inside stream '{}' (no end record)", s.name)));
            }
            let sub: crate::subs::model::Sub = serde_json::from_value(v.get("sub").cloned().unwrap_or_default())
                .map_err(|e| bad(line_no, format!("subscription: {e}")))?;
            subscription(&sub, line_no)?;
            if plan.subscriptions.iter().any(|s| s.id == sub.id) {
                return Err(bad(line_no, format!("subscription '{}' appears twice", sub.id)));
            }
            plan.subscriptions.push(sub);
            continue;
        }
        let name = text(&v, "name", line_no)?;
        match (kind.as_str(), &mut open) {
            ("stream", None) => {
                stream_name(&name, line_no)?;
                if !seen.insert(name.clone()) {
                    return Err(bad(line_no, format!("stream '{name}' appears twice")));
                }
                let fork = match v.get("fork") {
                    None | Some(serde_json::Value::Null) => None,
                    Some(f) => {
                        let (src, pos) = f
                            .as_array()
                            .filter(|a| a.len() == 2)
                            .and_then(|a| Some((a[0].as_str()?.to_string(), a[1].as_u64()?)))
                            .ok_or_else(|| bad(line_no, "'fork' must be [source name, position]"))?;
                        if !plan.streams.iter().any(|s| s.name == src) {
                            return Err(bad(line_no, format!("fork '{name}' comes before its source '{src}'")));
                        }
                        Some((src, pos))
                    }
                };
                let s = StreamPlan {
                    name,
                    content_type: text(&v, "content_type", line_no)?,
                    lifetime: Lifetime {
                        ttl_secs: optional_number(&v, "ttl_secs", line_no)?.into(),
                        expires_at_ms: optional_number(&v, "expires_at_ms", line_no)?.into(),
                    },
                    closed: flag(&v, "closed", line_no)?,
                    tail: 0,
                    start: optional_number(&v, "start", line_no)?.unwrap_or(0),
                    fork,
                    writer: None,
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
                if tail != s.data_start() + *n {
                    return Err(bad(
                        line_no,
                        format!(
                            "stream '{name}' ends at {tail} but its data records hold {n} bytes from {}",
                            s.data_start()
                        ),
                    ));
                }
                let writer = match v.get("writer") {
                    None | Some(serde_json::Value::Null) => None,
                    Some(w) if w.is_object() => Some(w.clone()),
                    Some(_) => return Err(bad(line_no, "'writer' must be an object")),
                };
                let (mut s, n) = open.take().expect("matched Some");
                s.tail = tail;
                s.closed = closed;
                s.writer = writer;
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
