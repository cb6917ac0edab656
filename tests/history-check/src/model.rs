//! What a history is: every client operation with its invocation and completion time (the
//! harness's clock, which stands for the cluster's time) and its answer, and the final state of
//! every stream read after the faults healed. Read from JSON lines; knows no check.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A producer's stamp on an append (protocol section 5.2).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Stamp {
    pub id: String,
    pub epoch: u64,
    pub seq: u64,
}

/// What an operation asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Kind {
    /// A PUT; `ttl_secs` when the stream has a sliding TTL.
    Create {
        #[serde(default)]
        ttl_secs: Option<u64>,
    },
    /// A POST of `body` (unique across the history, so where it landed can be found), closing
    /// the stream when `close`.
    Append {
        body: String,
        #[serde(default)]
        producer: Option<Stamp>,
        #[serde(default)]
        close: bool,
    },
    /// A catch-up GET from byte position `offset`.
    Read {
        offset: u64,
    },
    Delete,
    /// A subscription wake received by the harness's webhook: which host delivered it, for which
    /// lease generation.
    Wake {
        subscription: String,
        generation: u64,
    },
}

/// The answer. No `status` (a timeout, a dropped connection) or a 5xx is indeterminate: the
/// operation may or may not have taken effect.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    #[serde(default)]
    pub status: Option<u16>,
    /// The byte position in `Stream-Next-Offset`.
    #[serde(default)]
    pub next: Option<u64>,
    /// A read's bytes.
    #[serde(default)]
    pub data: Option<String>,
    #[serde(default)]
    pub up_to_date: bool,
    #[serde(default)]
    pub closed: bool,
}

/// One operation of the history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    pub id: u64,
    #[serde(default)]
    pub client: String,
    /// The host it was sent to (or, for a wake, the host that delivered it).
    pub host: String,
    pub stream: String,
    pub invoked_ms: u64,
    pub completed_ms: u64,
    #[serde(flatten)]
    pub kind: Kind,
    #[serde(default)]
    pub answer: Answer,
}

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx answer.
    Ok,
    /// A 4xx answer: nothing happened.
    Refused,
    /// No answer or a 5xx: it may or may not have happened.
    Indeterminate,
}

impl Op {
    pub fn outcome(&self) -> Outcome {
        match self.answer.status {
            Some(s) if (200..300).contains(&s) => Outcome::Ok,
            Some(s) if (400..500).contains(&s) => Outcome::Refused,
            _ => Outcome::Indeterminate,
        }
    }
    /// Whether `self` finished before `other` began (real-time order).
    pub fn precedes(&self, other: &Op) -> bool {
        self.completed_ms < other.invoked_ms
    }
}

/// A stream as read after the run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalStream {
    pub exists: bool,
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub closed: bool,
}

/// Every stream of the history as read after the run.
pub type Final = BTreeMap<String, FinalStream>;

/// Why a history could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("history line {line}: {source}")]
    Line { line: usize, source: serde_json::Error },
    #[error("final state: {0}")]
    Final(serde_json::Error),
}

/// Parses a history (one JSON operation per line; blank lines skipped).
pub fn parse_history(text: &str) -> Result<Vec<Op>, ReadError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|source| ReadError::Line { line: i + 1, source }))
        .collect()
}

/// Parses the final state (one JSON object: stream name → stream).
pub fn parse_final(text: &str) -> Result<Final, ReadError> {
    serde_json::from_str(text).map_err(ReadError::Final)
}
