//! Imports a checked export, all-or-nothing: conflicts are decided before the first write, and
//! when the engine fails part way the streams (and subscriptions) written so far are removed and
//! those that were being replaced are restored from a backup taken first. Streams are restored
//! at their offsets with their writer state (`ext::RESTORE`, `ext::RESTORE_WRITER`) where the
//! engine can; forks as forks; subscriptions through a [`SubscriptionSink`] (the log itself
//! offline, the running service through the server).

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;

use abi_stable::std_types::{ROption, RSlice, RStr};
use base64::Engine as _;
use durable_streams_core::abi::*;

use super::{check::Plan, check::StreamPlan, end_progress, export_names, progress, Conflict, TransferError};
use crate::clock::now_ms;
use crate::plugin::{OwnedAppend, Storage};
use crate::subs::model::Sub;
use crate::subs::store;

/// What an import did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub imported: usize,
    pub skipped: usize,
    pub replaced: usize,
    pub subscriptions: usize,
    /// Streams whose producer / `Stream-Seq` state the engine could not take (no
    /// `ext::RESTORE_WRITER`): imported with their bytes and closure only.
    pub without_writer_state: usize,
}

/// Where imported subscriptions go.
pub trait SubscriptionSink {
    /// The subscriptions there now.
    fn current(&self) -> Result<Vec<Sub>, TransferError>;
    /// Creates or replaces one.
    fn put(&self, sub: &Sub) -> Result<(), TransferError>;
    fn delete(&self, id: &str) -> Result<(), TransferError>;
}

/// Offline: the subscription log in the engine (read by the server when it starts).
pub struct LogSink<'a>(pub &'a Storage);

impl SubscriptionSink for LogSink<'_> {
    fn current(&self) -> Result<Vec<Sub>, TransferError> {
        super::export::subscriptions(self.0)
    }
    fn put(&self, sub: &Sub) -> Result<(), TransferError> {
        Ok(store::append_record(self.0, &store::Record::Put(Box::new(sub.clone())))?)
    }
    fn delete(&self, id: &str) -> Result<(), TransferError> {
        Ok(store::append_record(self.0, &store::Record::Delete(id.to_string()))?)
    }
}

fn exists(storage: &Storage, name: &str) -> Result<bool, TransferError> {
    match storage.call_sync(|e| {
        e.head(&HeadRequest {
            name: RStr::from(name),
            now_ms: now_ms(),
        })
    }) {
        Ok(_) => Ok(true),
        Err(e) if e.code == ErrorCode::NOT_FOUND => Ok(false),
        // A soft-deleted stream (kept for its forks) still holds the name.
        Err(e) if e.code == ErrorCode::GONE => Ok(true),
        Err(e) => Err(e.into()),
    }
}

fn delete(storage: &Storage, name: &str) -> Result<(), EngineError> {
    storage.call_sync(|e| {
        e.delete(&DeleteRequest {
            name: RStr::from(name),
            now_ms: now_ms(),
            only_if_expired: false,
        })
    })
}

fn append(storage: &Storage, name: &str, ct: Option<&str>, body: Vec<u8>, close: bool) -> Result<(), EngineError> {
    let req = OwnedAppend {
        name: name.to_string(),
        content_type: ct.map(str::to_string),
        body: body.into(),
        close,
        producer: None,
        stream_seq: None,
        now_ms: now_ms(),
    };
    storage.call_sync(|e| e.append(&req.as_request())).map(|_| ())
}

/// Calls extension `op` with a JSON input: `None` when the engine does not provide it.
fn ext_call(storage: &Storage, op: &str, input: serde_json::Value) -> Result<Option<()>, EngineError> {
    let input = input.to_string();
    match storage.call_sync(|e| e.extension(RStr::from(op), RSlice::from(input.as_bytes()))) {
        Ok(_) => Ok(Some(())),
        Err(e) if e.code == ErrorCode::UNSUPPORTED => Ok(None),
        Err(e) => Err(e),
    }
}

/// Creates `s` empty at its offsets (a fork of its source when exported as one).
fn create(storage: &Storage, s: &StreamPlan) -> Result<(), TransferError> {
    let restore = serde_json::json!({
        "name": s.name, "content_type": s.content_type, "ttl_secs": s.lifetime.ttl_secs.into_option(),
        "expires_at_ms": s.lifetime.expires_at_ms.into_option(), "start": s.start, "fork": s.fork, "now_ms": now_ms(),
    });
    if ext_call(storage, ext::RESTORE, restore)?.is_some() {
        return Ok(());
    }
    if s.start > 0 {
        return Err(TransferError::Engine(EngineError::new(
            ErrorCode::UNSUPPORTED,
            format!(
                "stream '{}' starts at offset {} (retention dropped its head) and this engine cannot restore a stream at its offsets",
                s.name, s.start
            ),
        )));
    }
    storage.call_sync(|e| {
        e.create(&CreateRequest {
            name: RStr::from(s.name.as_str()),
            content_type: ROption::RSome(RStr::from(s.content_type.as_str())),
            lifetime: s.lifetime,
            closed: false,
            initial: RSlice::from(&b""[..]),
            fork: match &s.fork {
                Some((src, pos)) => ROption::RSome(ForkFrom {
                    source: RStr::from(src.as_str()),
                    position: *pos,
                }),
                None => ROption::RNone,
            },
            now_ms: now_ms(),
        })
    })?;
    Ok(())
}

/// Gives `s` its writer state and closure; false when the engine could only close it.
fn finish(storage: &Storage, s: &StreamPlan) -> Result<bool, TransferError> {
    if let Some(writer) = &s.writer {
        let input = serde_json::json!({"name": s.name, "writer": writer, "now_ms": now_ms()});
        if ext_call(storage, ext::RESTORE_WRITER, input)?.is_some() {
            return Ok(true);
        }
    }
    if s.closed {
        append(storage, &s.name, None, Vec::new(), true)?;
    }
    Ok(s.writer.is_none())
}

/// Writes the streams of `plan` (read again from `path`, which [`super::check`] accepted).
fn write_all(
    storage: &Storage,
    plan: &Plan,
    path: &Path,
    skip: &HashSet<String>,
    created: &mut Vec<String>,
    report: &mut ImportReport,
) -> Result<(), TransferError> {
    let file = std::fs::File::open(path).map_err(|source| TransferError::Input {
        path: path.to_path_buf(),
        source,
    })?;
    let by_name: std::collections::HashMap<&str, &StreamPlan> = plan.streams.iter().map(|s| (s.name.as_str(), s)).collect();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line?;
        if i == 0 || line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line).map_err(|e| TransferError::Format {
            line: i + 1,
            reason: e.to_string(),
        })?;
        let (Some(kind), Some(name)) = (v["type"].as_str(), v["name"].as_str()) else {
            continue;
        };
        if skip.contains(name) {
            continue;
        }
        let Some(s) = by_name.get(name) else { continue };
        match kind {
            "stream" => {
                create(storage, s)?;
                created.push(name.to_string());
            }
            "data" => {
                let body = base64::engine::general_purpose::STANDARD
                    .decode(v["base64"].as_str().unwrap_or(""))
                    .map_err(|e| TransferError::Format {
                        line: i + 1,
                        reason: e.to_string(),
                    })?;
                append(storage, name, Some(&s.content_type), body, false)?;
            }
            "end" => {
                if !finish(storage, s)? {
                    report.without_writer_state += 1;
                }
                let meta = storage.call_sync(|e| {
                    e.head(&HeadRequest {
                        name: RStr::from(name),
                        now_ms: now_ms(),
                    })
                })?;
                if meta.tail != s.tail || meta.closed != s.closed {
                    return Err(TransferError::Format {
                        line: i + 1,
                        reason: format!(
                            "stream '{name}' ended at {} (closed: {}) after import, expected {} (closed: {})",
                            meta.tail, meta.closed, s.tail, s.closed
                        ),
                    });
                }
                progress(&format!("imported {} streams", created.len()));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Imports the export at `path` (already checked into `plan`), its subscriptions into `subs`.
/// `scratch` holds the backup of replaced streams while the import runs.
pub fn import(
    storage: &Storage,
    plan: &Plan,
    path: &Path,
    on_conflict: Conflict,
    scratch: &Path,
    subs: &dyn SubscriptionSink,
) -> Result<ImportReport, TransferError> {
    let mut existing = Vec::new();
    for s in &plan.streams {
        if exists(storage, &s.name)? {
            existing.push(s.name.clone());
        }
    }
    let current_subs = if plan.subscriptions.is_empty() {
        Vec::new()
    } else {
        subs.current()?
    };
    let clashing_subs: Vec<Sub> = current_subs
        .into_iter()
        .filter(|c| plan.subscriptions.iter().any(|s| s.id == c.id))
        .collect();
    let mut report = ImportReport::default();
    let mut skip = HashSet::new();
    let mut skip_subs = HashSet::new();
    let backup = scratch.join(format!("ds-import-backup-{}.jsonl", std::process::id()));
    match on_conflict {
        Conflict::Fail if !existing.is_empty() || !clashing_subs.is_empty() => {
            let mut names = existing;
            names.extend(clashing_subs.iter().map(|s| format!("subscription {}", s.id)));
            return Err(TransferError::Exists(names));
        }
        Conflict::Fail => {}
        Conflict::Skip => {
            report.skipped = existing.len();
            skip.extend(existing.iter().cloned());
            skip_subs.extend(clashing_subs.iter().map(|s| s.id.clone()));
        }
        Conflict::Replace if !existing.is_empty() => {
            let mut out = std::io::BufWriter::new(std::fs::File::create(&backup).map_err(|source| TransferError::Output {
                path: backup.clone(),
                source,
            })?);
            export_names(storage, &existing, &[], &mut out)?;
            drop(out);
            // Forks before their sources (a source with forks would only be soft-deleted).
            for name in existing.iter().rev() {
                delete(storage, name)?;
            }
            report.replaced = existing.len();
        }
        Conflict::Replace => {}
    }
    let mut created = Vec::new();
    let mut put_subs = Vec::new();
    let mut result = write_all(storage, plan, path, &skip, &mut created, &mut report);
    if result.is_ok() {
        for sub in plan.subscriptions.iter().filter(|s| !skip_subs.contains(&s.id)) {
            if let Err(e) = subs.put(sub) {
                result = Err(e);
                break;
            }
            put_subs.push(sub.id.clone());
        }
    }
    end_progress();
    match result {
        Ok(()) => {
            let _ = std::fs::remove_file(&backup);
            report.imported = created.len();
            report.subscriptions = put_subs.len();
            Ok(report)
        }
        Err(cause) => {
            let mut undone = format!("removed the {} stream(s) it had written", created.len());
            for name in created.iter().rev() {
                if let Err(e) = delete(storage, name) {
                    undone.push_str(&format!("; could not remove '{name}': {e}"));
                }
            }
            for id in &put_subs {
                let before = clashing_subs.iter().find(|s| &s.id == id);
                let r = match before {
                    Some(old) => subs.put(old),
                    None => subs.delete(id),
                };
                if let Err(e) = r {
                    undone.push_str(&format!("; could not undo subscription '{id}': {e}"));
                }
            }
            if report.replaced > 0 {
                let restored = super::check(&mut BufReader::new(std::fs::File::open(&backup)?))
                    .and_then(|p| import(storage, &p, &backup, Conflict::Fail, scratch, subs).map(|_| p));
                match restored {
                    Ok(p) => undone.push_str(&format!(" and restored the {} stream(s) it had replaced", p.streams.len())),
                    Err(e) => undone.push_str(&format!(
                        "; restoring the replaced streams failed ({e}): their export is kept at {}",
                        backup.display()
                    )),
                }
            }
            Err(TransferError::RolledBack {
                cause: Box::new(cause),
                undone,
            })
        }
    }
}
