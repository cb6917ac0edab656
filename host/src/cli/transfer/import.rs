//! Imports a checked export, all-or-nothing: conflicts are decided before the first write, and
//! when the engine fails part way the streams written so far are removed and the streams that
//! were being replaced are restored from a backup taken first.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;

use abi_stable::std_types::{ROption, RSlice, RStr};
use base64::Engine as _;
use durable_streams_core::abi::*;

use super::{check::Plan, end_progress, export_names, progress, Conflict, TransferError};
use crate::plugin::{OwnedAppend, Storage};
use crate::state::now_ms;

/// What an import did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub imported: usize,
    pub skipped: usize,
    pub replaced: usize,
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

/// Writes the streams of `plan` (read again from `path`, which [`super::check`] accepted).
fn write_all(storage: &Storage, plan: &Plan, path: &Path, skip: &HashSet<String>, created: &mut Vec<String>) -> Result<(), TransferError> {
    let file = std::fs::File::open(path).map_err(|source| TransferError::Input {
        path: path.to_path_buf(),
        source,
    })?;
    let by_name: std::collections::HashMap<&str, &super::StreamPlan> = plan.streams.iter().map(|s| (s.name.as_str(), s)).collect();
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
                storage.call_sync(|e| {
                    e.create(&CreateRequest {
                        name: RStr::from(name),
                        content_type: ROption::RSome(RStr::from(s.content_type.as_str())),
                        lifetime: s.lifetime,
                        closed: false,
                        initial: RSlice::from(&b""[..]),
                        fork: ROption::RNone,
                        now_ms: now_ms(),
                    })
                })?;
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
                if s.closed {
                    append(storage, name, None, Vec::new(), true)?;
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

/// Imports the export at `path` (already checked into `plan`). `scratch` holds the backup of
/// replaced streams while the import runs.
pub fn import(storage: &Storage, plan: &Plan, path: &Path, on_conflict: Conflict, scratch: &Path) -> Result<ImportReport, TransferError> {
    let mut existing = Vec::new();
    for s in &plan.streams {
        if exists(storage, &s.name)? {
            existing.push(s.name.clone());
        }
    }
    let mut report = ImportReport::default();
    let mut skip = HashSet::new();
    let backup = scratch.join(format!("ds-import-backup-{}.jsonl", std::process::id()));
    match on_conflict {
        Conflict::Fail if !existing.is_empty() => return Err(TransferError::Exists(existing)),
        Conflict::Fail => {}
        Conflict::Skip => {
            report.skipped = existing.len();
            skip.extend(existing.iter().cloned());
        }
        Conflict::Replace if !existing.is_empty() => {
            let mut out = std::io::BufWriter::new(std::fs::File::create(&backup).map_err(|source| TransferError::Output {
                path: backup.clone(),
                source,
            })?);
            export_names(storage, &existing, &mut out)?;
            drop(out);
            for name in &existing {
                delete(storage, name)?;
            }
            report.replaced = existing.len();
        }
        Conflict::Replace => {}
    }
    let mut created = Vec::new();
    let result = write_all(storage, plan, path, &skip, &mut created);
    end_progress();
    match result {
        Ok(()) => {
            let _ = std::fs::remove_file(&backup);
            report.imported = created.len();
            Ok(report)
        }
        Err(cause) => {
            let mut undone = format!("removed the {} stream(s) it had written", created.len());
            for name in &created {
                if let Err(e) = delete(storage, name) {
                    undone.push_str(&format!("; could not remove '{name}': {e}"));
                }
            }
            if report.replaced > 0 {
                let restored = super::check(&mut BufReader::new(std::fs::File::open(&backup)?))
                    .and_then(|p| import(storage, &p, &backup, Conflict::Fail, scratch).map(|_| p));
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
