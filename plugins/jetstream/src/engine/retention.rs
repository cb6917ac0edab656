//! Retention (`ext::TRIM`) in the cluster: a trim moves
//! the stream's start in its catalogue record (compare-and-set, so a fork registering meanwhile
//! makes it decide again), then purges the messages wholly below it, then marks it in the data
//! (an empty message every host's tail read sees). Never below what a fork reads.

use bytes::Bytes;
use durable_streams_core::abi::*;
use serde::Deserialize;

use super::{BoxFut, JetStreamStorage};
use crate::catalog::{self, ForkRef, Put, Record, State};
use crate::data::{self, Appended, Stored, Subject};

#[derive(Deserialize)]
struct TrimInput {
    name: String,
    before: u64,
    #[serde(default)]
    now_ms: u64,
}

pub(super) fn input<'a, T: Deserialize<'a>>(op: &str, bytes: &'a [u8]) -> Result<T, EngineError> {
    serde_json::from_slice(bytes).map_err(|e| EngineError::new(ErrorCode::INVALID_ARGUMENT, format!("{op} input: {e}")))
}

/// The earliest retained position of a stream: its record's, or its data's when a trim reached
/// the data first in this host's view.
pub(super) fn retained(rec: &Record, tail: &data::Tail) -> u64 {
    rec.start.max(tail.state.start)
}

impl JetStreamStorage {
    /// `ext::TRIM`: JSON in, `{"start", "dropped_bytes"}` out.
    pub(super) async fn trim_ext(&self, bytes: &[u8]) -> Result<Vec<u8>, EngineError> {
        let req: TrimInput = input(ext::TRIM, bytes)?;
        let (start, dropped) = self.trim(&req.name, req.before, req.now_ms).await?;
        Ok(serde_json::json!({"start": start, "dropped_bytes": dropped})
            .to_string()
            .into_bytes())
    }

    /// Drops `name`'s messages that end at or below `before` (never below what its forks read);
    /// answers the new start and the own bytes dropped.
    async fn trim(&self, name: &str, before: u64, now: u64) -> Result<(u64, u64), EngineError> {
        for _ in 0..20 {
            let Some((rec, seq)) = catalog::get(&self.c, name).await? else {
                return Err(EngineError::not_found(name));
            };
            match rec.state {
                State::Live if !Self::expired(&rec, self.local_access(name), now) => {}
                State::SoftDeleted => return Err(EngineError::gone(name)),
                _ => return Err(EngineError::not_found(name)),
            }
            let subj = self.subject(&rec);
            let t = data::tail(&self.c, &subj).await?;
            if t.seq == 0 || t.state.deleted.is_some() {
                return Err(EngineError::not_found(name));
            }
            if rec.start > t.state.start {
                // A trim stopped after its catalogue write (a crash): finish it first.
                if !self.drop_below(&rec, &subj, name).await? {
                    return Err(EngineError::not_found(name));
                }
            }
            let current = retained(&rec, &t);
            let mut target = before.min(t.state.tail);
            if rec.forks > 0 {
                target = target.min(self.fork_floor(&rec).await?);
            }
            if target <= current {
                return Ok((current, 0));
            }
            // The start is the first byte of the message holding the target.
            let start = if target >= t.state.tail {
                t.state.tail
            } else if target < rec.base() {
                let f = rec.fork.as_ref().expect("a base above 0 is a fork");
                self.chain_floor(f, target).await?
            } else {
                match data::holder(&self.c, &subj, target, t.seq).await? {
                    Some(m) => data::first_byte(&m)?,
                    None => t.state.tail,
                }
            };
            if start <= current {
                return Ok((current, 0));
            }
            let moved = Record { start, ..rec.clone() };
            if let Put::Conflict = catalog::put(&self.c, &moved, seq).await? {
                continue; // a fork registered, or another host trimmed: decide again
            }
            self.forget(name);
            if !self.drop_below(&moved, &subj, name).await? {
                return Err(EngineError::not_found(name));
            }
            let base = rec.base();
            return Ok((start, start.max(base) - current.max(base)));
        }
        Err(crate::cluster::unavailable(format!(
            "stream '{name}' kept changing while it was trimmed"
        )))
    }

    /// After `rec.start` is in the catalogue: purges the stream's own messages wholly below it
    /// (the last one, which carries the state, always stays), then appends an empty message
    /// carrying it (so every host's next tail read sees it). Purging first means a trim stopped
    /// half-way shows as a record ahead of its data, which the next trim finishes. False when
    /// the stream was deleted meanwhile.
    async fn drop_below(&self, rec: &Record, subj: &Subject, name: &str) -> Result<bool, EngineError> {
        let start = rec.start;
        for _ in 0..50 {
            let t = data::tail(&self.c, subj).await?;
            if t.seq == 0 || t.state.deleted.is_some() {
                return Ok(false);
            }
            if t.state.start >= start {
                return Ok(true);
            }
            if start > rec.base() {
                let keep = if start >= t.state.tail {
                    t.seq
                } else {
                    match data::holder(&self.c, subj, start, t.seq).await? {
                        Some(m) => m.sequence.min(t.seq),
                        None => t.seq,
                    }
                };
                data::purge_below(&self.c, subj, keep).await?;
            }
            let marker = Stored {
                n: t.state.n + 1,
                start,
                ..t.state.clone()
            };
            if let Appended::Stored(_) = data::append(&self.c, subj, &t, &marker, Bytes::new(), name).await? {
                return Ok(true);
            }
        }
        Err(crate::cluster::unavailable(format!(
            "stream '{name}' is appended to too fast to trim; retry"
        )))
    }

    /// The first byte of the message holding `pos` in a fork's source chain.
    fn chain_floor<'a>(&'a self, f: &'a ForkRef, pos: u64) -> BoxFut<'a, Result<u64, EngineError>> {
        Box::pin(async move {
            if pos < f.source_base {
                let up = match catalog::get(&self.c, &f.source).await? {
                    Some((src, _)) => src.fork,
                    None => None,
                };
                let Some(up) = up else {
                    return Err(EngineError::new(
                        ErrorCode::CORRUPT,
                        format!("fork source '{}' has no source below {pos}", f.source),
                    ));
                };
                return self.chain_floor(&up, pos).await;
            }
            let subj = self.source_subject(f);
            let t = data::tail(&self.c, &subj).await?;
            match data::holder(&self.c, &subj, pos, t.seq).await? {
                Some(m) => data::first_byte(&m),
                None => Ok(pos),
            }
        })
    }

    /// The lowest position of `rec` that a fork (or a fork of a fork) still reads.
    fn fork_floor<'a>(&'a self, rec: &'a Record) -> BoxFut<'a, Result<u64, EngineError>> {
        Box::pin(async move {
            if (rec.forks as usize) > rec.holds.len() {
                return Ok(0); // forks made before holds were kept: what they read is unknown
            }
            let mut floor = u64::MAX;
            for h in &rec.holds {
                let needs = match catalog::get(&self.c, &h.name).await? {
                    Some((f, _)) if f.gen == h.gen => {
                        if f.state == State::Deleted {
                            continue;
                        }
                        let mut needs = f.start;
                        if f.forks > 0 {
                            needs = needs.min(self.fork_floor(&f).await?);
                        }
                        needs
                    }
                    // Still being made (or its removal was interrupted): what it registered.
                    _ => h.start,
                };
                if needs < h.position {
                    floor = floor.min(needs);
                }
            }
            Ok(floor)
        })
    }
}
