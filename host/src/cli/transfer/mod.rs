//! `export` and `import`: a versioned JSON-lines format that moves streams between engines.
//!
//! Format (version 2; version 1 files are read too), one JSON object per line:
//! `{"format":"durable-streams-export","version":2,...}`, then per stream
//! `{"type":"stream","name","content_type","ttl_secs","expires_at_ms","closed","start","fork"}`
//! (`start`: its earliest retained offset; `fork`: `[source, position]` when its source comes
//! earlier in the file, else null and the fork is written whole), its bytes from `start` (a
//! fork's own bytes) as `{"type":"data","name","base64"}` chunks (stored form: JSON streams keep
//! their framing), and `{"type":"end","name","tail","closed","writer"}` (`writer`: producers'
//! epochs and sequences, last `Stream-Seq`, who closed it: so that a retry after a restore is
//! still a duplicate); then `{"type":"subscription","sub"}` per subscription (whole exports
//! only); last `{"type":"summary","streams","bytes","subscriptions"}`. Offsets are preserved.
//! Webhook signing keys are not exported: a restored server publishes its own.
//!
//! An import is checked whole before the engine is touched ([`check`]: every record, every
//! stream's `end`, the `summary` counts), and is all-or-nothing: when the engine fails part way,
//! what it wrote is removed and the streams it replaced are restored.

mod check;
mod export;
mod import;

use std::io::IsTerminal;
use std::path::PathBuf;

use durable_streams_core::abi::EngineError;

pub use check::{check, Plan};
pub use export::{export, export_names, export_where, Exported};
pub use import::{import, ImportReport, LogSink, SubscriptionSink};

pub const FORMAT: &str = "durable-streams-export";
pub const VERSION: u64 = 2;

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
    #[error("cannot read --input {}: {source}", path.display())]
    Input { path: PathBuf, source: std::io::Error },
    #[error("cannot write --output {}: {source}", path.display())]
    Output { path: PathBuf, source: std::io::Error },
    #[error("storage: {0}")]
    Engine(#[from] EngineError),
    #[error("line {line}: {reason}")]
    Format { line: usize, reason: String },
    #[error("not a complete export: {0}; nothing was imported")]
    Incomplete(String),
    #[error("{} already exist{}: {} (use --on-conflict skip or replace); nothing was imported", if .0.len() == 1 { "a stream" } else { "streams" }, if .0.len() == 1 { "s" } else { "" }, .0.join(", "))]
    Exists(Vec<String>),
    #[error("storage.mode {mode:?} keeps no data between processes, so `{command}` has nothing to work on; use it with a durable mode (file-durable, file-fast, acid)")]
    NotDurable { mode: String, command: &'static str },
    #[error("{0}")]
    Remote(String),
    #[error("{cause}; the import was rolled back ({undone})")]
    RolledBack { cause: Box<TransferError>, undone: String },
}

pub(crate) fn progress(msg: &str) {
    if std::io::stderr().is_terminal() {
        eprint!("\r{msg}");
    }
}

pub(crate) fn end_progress() {
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
}
