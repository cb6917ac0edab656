//! Retention in the catalogue: dropping a stream's head (`ext::TRIM`) at a record boundary,
//! never below what a fork still reads, committed like any change and applied after. Forks made
//! of trimmed data start where their source's retained data starts. Decides where; the store
//! finds record boundaries and drops the bytes.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use durable_streams_core::abi::*;

use crate::catalog::Catalog;
use crate::entry::Entry;
use crate::persist::{Batch, Change, Persistence};

/// What a trim did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trimmed {
    /// The earliest retained position after it.
    pub start: u64,
    /// Own bytes dropped.
    pub dropped: u64,
}

#[derive(serde::Deserialize)]
struct TrimInput {
    name: String,
    before: u64,
    #[serde(default)]
    now_ms: u64,
}

fn unsupported(what: &str) -> EngineError {
    EngineError::new(ErrorCode::UNSUPPORTED, format!("{what} cannot drop a stream's head (no retention)"))
}

impl<P: Persistence> Catalog<P> {
    /// The `ext::TRIM` operation: JSON in, JSON out.
    pub(crate) fn trim_ext(&self, input: &[u8]) -> Result<Vec<u8>, EngineError> {
        let req: TrimInput =
            serde_json::from_slice(input).map_err(|e| EngineError::new(ErrorCode::INVALID_ARGUMENT, format!("trim input: {e}")))?;
        let t = self.trim(&req.name, req.before, req.now_ms)?;
        Ok(serde_json::json!({"start": t.start, "dropped_bytes": t.dropped})
            .to_string()
            .into_bytes())
    }

    /// Drops the records of `name` that end at or below `before`, never below what its forks
    /// read.
    pub fn trim(&self, name: &str, before: u64, now_ms: u64) -> Result<Trimmed, EngineError> {
        let _w = self.writer.write();
        let entry = self.live(name, now_ms)?;
        let (tail, current) = {
            let st = entry.state.lock();
            (st.tail, st.start)
        };
        let mut target = before.min(tail);
        if entry.refcount.load(Ordering::Acquire) > 0 {
            target = target.min(self.fork_floor(&entry));
        }
        if target <= current {
            return Ok(Trimmed {
                start: current,
                dropped: 0,
            });
        }
        let start = self.record_floor(&entry, target)?;
        if start <= current {
            return Ok(Trimmed {
                start: current,
                dropped: 0,
            });
        }
        let change = Change::Trim { id: entry.id, start };
        let receipts = self.store.commit(&Batch {
            changes: std::slice::from_ref(&change),
            after: &[],
        })?;
        P::apply(&entry.data, &change, &receipts[0]);
        entry.state.lock().start = start;
        let own = current.max(entry.base)..start.max(entry.base);
        let dropped = own.end - own.start;
        self.stored.fetch_sub(dropped, Ordering::Relaxed);
        self.store.trimmed(entry.id, &entry.data, own);
        Ok(Trimmed { start, dropped })
    }

    /// The start of the record holding `pos` in `entry`'s view (its source's below its fork
    /// position).
    fn record_floor(&self, entry: &Entry<P::Data>, pos: u64) -> Result<u64, EngineError> {
        if pos < entry.base {
            if let Some((_, src)) = &entry.fork {
                return self.record_floor(src, pos);
            }
        }
        self.store
            .record_floor(entry.id, &entry.data, pos)
            .unwrap_or_else(|| Err(unsupported(self.store.describe())))
    }

    /// The lowest position of `entry` that a fork (or a fork of a fork) still reads.
    fn fork_floor(&self, entry: &Arc<Entry<P::Data>>) -> u64 {
        let mut floor = u64::MAX;
        for fork in self.forks_of(entry) {
            let fork_start = fork.state.lock().start;
            let needs = if fork.refcount.load(Ordering::Acquire) > 0 {
                fork_start.min(self.fork_floor(&fork))
            } else {
                fork_start
            };
            if needs < fork.base {
                floor = floor.min(needs);
            }
        }
        floor
    }

    /// The streams forked from `entry` (a scan: only called for streams that have forks).
    fn forks_of(&self, entry: &Arc<Entry<P::Data>>) -> Vec<Arc<Entry<P::Data>>> {
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let map = self.streams.read();
        for e in map.values() {
            // Forks that left the map (hidden) are reached through their own forks.
            let mut cur = Some(e.clone());
            while let Some(node) = cur {
                let Some((_, src)) = &node.fork else { break };
                if Arc::ptr_eq(src, entry) && seen.insert(node.id) {
                    out.push(node.clone());
                }
                cur = Some(src.clone());
            }
        }
        out
    }

    /// Where a fork made at `position` of `src` starts to be readable: the part of its
    /// inherited range already dropped from the source is not inherited.
    pub(crate) fn fork_start(src: &Entry<P::Data>, position: u64) -> u64 {
        src.state.lock().start.min(position)
    }
}
