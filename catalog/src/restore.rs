//! Backups through the engine: a stream's state as one consistent snapshot
//! (`ext::DESCRIBE`: retained start, tail, closure and writer state together), a stream created
//! where an exported one started (`ext::RESTORE`), and its writer state set after its bytes are
//! back (`ext::RESTORE_WRITER`), so that a restored stream answers exactly as the original did
//! (same offsets, producer retries recognised as duplicates). Committed like any change.

use abi_stable::std_types::{ROption, RSlice, RStr};
use durable_streams_core::abi::*;
use durable_streams_core::producer::{ProducerStamp, ProducerState};
use durable_streams_core::rules::{StateUpdate, WriterState};
use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::persist::{After, Appended, Batch, Change, Persistence};

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
    fn updates(&self) -> Vec<StateUpdate> {
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

#[derive(Deserialize)]
struct NameInput {
    name: String,
    #[serde(default)]
    now_ms: u64,
}

/// `ext::RESTORE` input.
#[derive(Deserialize)]
struct RestoreInput {
    name: String,
    content_type: String,
    #[serde(default)]
    ttl_secs: Option<u64>,
    #[serde(default)]
    expires_at_ms: Option<u64>,
    /// Where the stream's retained data starts (its first byte's offset).
    #[serde(default)]
    start: u64,
    /// (source name, position): restored as a fork of a stream restored before it.
    #[serde(default)]
    fork: Option<(String, u64)>,
    #[serde(default)]
    now_ms: u64,
}

#[derive(Deserialize)]
struct WriterInput {
    name: String,
    writer: Writer,
    #[serde(default)]
    now_ms: u64,
}

fn input<'a, T: Deserialize<'a>>(op: &str, bytes: &'a [u8]) -> Result<T, EngineError> {
    serde_json::from_slice(bytes).map_err(|e| EngineError::new(ErrorCode::INVALID_ARGUMENT, format!("{op} input: {e}")))
}

impl<P: Persistence> Catalog<P> {
    /// `ext::DESCRIBE`: `{"start", "tail", "writer"}` read together.
    pub(crate) fn describe_ext(&self, bytes: &[u8]) -> Result<Vec<u8>, EngineError> {
        let req: NameInput = input(ext::DESCRIBE, bytes)?;
        let entry = self.live(&req.name, req.now_ms)?;
        let st = entry.state.lock();
        let v = serde_json::json!({"start": st.start, "tail": st.tail, "writer": Writer::of(&st.writer())});
        Ok(v.to_string().into_bytes())
    }

    /// `ext::RESTORE`: creates the stream with no data, its offsets starting at `start`.
    pub(crate) fn restore_ext(&self, bytes: &[u8]) -> Result<Vec<u8>, EngineError> {
        let req: RestoreInput = input(ext::RESTORE, bytes)?;
        let create = CreateRequest {
            name: RStr::from(req.name.as_str()),
            content_type: ROption::RSome(RStr::from(req.content_type.as_str())),
            lifetime: Lifetime {
                ttl_secs: req.ttl_secs.into(),
                expires_at_ms: req.expires_at_ms.into(),
            },
            closed: false,
            initial: RSlice::from(&[][..]),
            fork: match &req.fork {
                Some((source, position)) => ROption::RSome(ForkFrom {
                    source: RStr::from(source.as_str()),
                    position: *position,
                }),
                None => ROption::RNone,
            },
            now_ms: req.now_ms,
        };
        if self.streams.read().contains_key(&req.name) {
            return Err(EngineError::new(
                ErrorCode::CONFIG_CONFLICT,
                format!("stream '{}' exists; a restore creates it", req.name),
            ));
        }
        let out = self.create_at(&create, req.start)?;
        if !out.created {
            return Err(EngineError::new(
                ErrorCode::CONFIG_CONFLICT,
                format!("stream '{}' exists; a restore creates it", req.name),
            ));
        }
        Ok(serde_json::json!({"tail": out.meta.tail}).to_string().into_bytes())
    }

    /// `ext::RESTORE_WRITER`: gives the stream the writer state (producers, `Stream-Seq`,
    /// closure) of the one it restores, committed as appends without bytes.
    pub(crate) fn restore_writer_ext(&self, bytes: &[u8]) -> Result<Vec<u8>, EngineError> {
        let req: WriterInput = input(ext::RESTORE_WRITER, bytes)?;
        let _w = self.writer.write();
        let entry = self.live(&req.name, req.now_ms)?;
        let (tail, mut writer) = {
            let st = entry.state.lock();
            (st.tail, st.writer())
        };
        let updates = req.writer.updates();
        if updates.is_empty() {
            return Ok(b"{}".to_vec());
        }
        for u in &updates {
            writer.apply(u);
        }
        let changes: Vec<Change<'_>> = updates
            .iter()
            .map(|update| {
                Change::Append(Appended {
                    id: entry.id,
                    start: tail,
                    body: &[],
                    update,
                })
            })
            .collect();
        let after = [After {
            id: entry.id,
            tail,
            writer: &writer,
        }];
        let receipts = self.store.commit(&Batch {
            changes: &changes,
            after: &after,
        })?;
        for (c, r) in changes.iter().zip(&receipts) {
            P::apply(&entry.data, c, r);
        }
        entry.state.lock().set_writer(writer);
        entry.touch(req.now_ms);
        Ok(b"{}".to_vec())
    }
}
