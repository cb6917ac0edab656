//! The JSON forms shared by the backup extension operations (`ext::DESCRIBE`,
//! `ext::RESTORE_WRITER`): a stream's writer state and how a fresh stream is given it. Pure
//! values; no I/O.

use abi_stable::std_types::{ROption, RSlice, RStr};
use serde::{Deserialize, Serialize};

use crate::abi::{CreateRequest, ForkFrom, Lifetime};

use crate::producer::{ProducerStamp, ProducerState};
use crate::rules::{StateUpdate, WriterState};

/// A stream's writer state as `ext::DESCRIBE` answers it and `ext::RESTORE_WRITER` takes it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Writer {
    /// (producer id, epoch, last sequence accepted), sorted by id.
    #[serde(default)]
    pub producers: Vec<(String, u64, u64)>,
    #[serde(default)]
    pub stream_seq: Option<String>,
    #[serde(default)]
    pub closed: bool,
    /// The producer request that closed the stream.
    #[serde(default)]
    pub closed_by: Option<(String, u64, u64)>,
}

impl Writer {
    pub fn of(w: &WriterState) -> Writer {
        let mut producers: Vec<_> = w.producers.iter().map(|(id, p)| (id.clone(), p.epoch, p.last_seq)).collect();
        producers.sort();
        Writer {
            producers,
            stream_seq: w.last_stream_seq.clone(),
            closed: w.closed,
            closed_by: w.closed_by.as_ref().map(|s| (s.id.clone(), s.epoch, s.seq)),
        }
    }

    /// The updates that give a fresh stream this state (one per producer, then the rest).
    pub fn updates(&self) -> Vec<StateUpdate> {
        let mut out: Vec<StateUpdate> = self
            .producers
            .iter()
            .map(|(id, epoch, seq)| StateUpdate {
                producer: Some((
                    id.clone(),
                    ProducerState {
                        epoch: *epoch,
                        last_seq: *seq,
                    },
                )),
                ..Default::default()
            })
            .collect();
        if self.stream_seq.is_some() || self.closed {
            out.push(StateUpdate {
                stream_seq: self.stream_seq.clone(),
                close: self.closed,
                closed_by: self.closed_by.as_ref().map(|(id, epoch, seq)| ProducerStamp {
                    id: id.clone(),
                    epoch: *epoch,
                    seq: *seq,
                }),
                producer: None,
            });
        }
        out
    }
}

/// `ext::RESTORE` input.
#[derive(Deserialize)]
pub struct Restore {
    pub name: String,
    pub content_type: String,
    #[serde(default)]
    pub ttl_secs: Option<u64>,
    #[serde(default)]
    pub expires_at_ms: Option<u64>,
    /// Where the stream's retained data starts (its first byte's offset).
    #[serde(default)]
    pub start: u64,
    /// (source name, position): restored as a fork of a stream restored before it.
    #[serde(default)]
    pub fork: Option<(String, u64)>,
    #[serde(default)]
    pub now_ms: u64,
}

impl Restore {
    /// The create the restore makes (no bytes; the engine then sets its offsets to `start`).
    pub fn create_request(&self) -> CreateRequest<'_> {
        CreateRequest {
            name: RStr::from(self.name.as_str()),
            content_type: ROption::RSome(RStr::from(self.content_type.as_str())),
            lifetime: Lifetime {
                ttl_secs: self.ttl_secs.into(),
                expires_at_ms: self.expires_at_ms.into(),
            },
            closed: false,
            initial: RSlice::from(&[][..]),
            fork: match &self.fork {
                Some((source, position)) => ROption::RSome(ForkFrom {
                    source: RStr::from(source.as_str()),
                    position: *position,
                }),
                None => ROption::RNone,
            },
            now_ms: self.now_ms,
        }
    }
}

/// `ext::RESTORE_WRITER` input.
#[derive(Deserialize)]
pub struct RestoreWriter {
    pub name: String,
    pub writer: Writer,
    #[serde(default)]
    pub now_ms: u64,
}
