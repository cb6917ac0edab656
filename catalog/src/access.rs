//! Sliding TTLs across restarts: the last access times of streams with a TTL, saved in batches
//! (`ext::SAVE_ACCESS`, called by the host every save interval and at shutdown) for stores that
//! keep them, and taken back at open with the interval as slack (see `OpenOptions`). One change
//! per stream accessed since the last save, committed per unit; reads never write.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use durable_streams_core::abi::*;

use crate::catalog::Catalog;
use crate::entry::Entry;
use crate::persist::{Batch, Change, Persistence};

/// Changes per commit of a save.
const BATCH: usize = 4096;

impl<P: Persistence> Catalog<P> {
    /// `ext::SAVE_ACCESS` (its input carries nothing the save needs: the access times are the
    /// streams' own).
    pub(crate) fn save_access_ext(&self, _input: &[u8]) -> Result<Vec<u8>, EngineError> {
        let saved = self.save_access()?;
        Ok(serde_json::json!({ "saved": saved }).to_string().into_bytes())
    }

    /// Saves the access time of every stream with a sliding TTL accessed since its last save;
    /// returns how many were saved.
    pub fn save_access(&self) -> Result<usize, EngineError> {
        if !self.store.persists_access() {
            return Ok(0);
        }
        let _w = self.writer.write();
        let mut due: Vec<(Arc<Entry<P::Data>>, u64)> = self
            .streams
            .read()
            .values()
            .filter(|e| e.lifetime.ttl_secs.is_some())
            .filter_map(|e| {
                let at = e.last_access_ms.load(Ordering::Relaxed);
                (at > e.saved_access_ms.load(Ordering::Relaxed)).then(|| (e.clone(), at))
            })
            .collect();
        due.sort_by_key(|(e, _)| self.store.unit(e.id));
        let mut saved = 0;
        for group in due.chunk_by(|a, b| self.store.unit(a.0.id) == self.store.unit(b.0.id)) {
            for part in group.chunks(BATCH) {
                let changes: Vec<Change<'_>> = part.iter().map(|(e, at)| Change::Access { id: e.id, at_ms: *at }).collect();
                let receipts = self.store.commit(&Batch {
                    changes: &changes,
                    after: &[],
                })?;
                for ((e, at), (c, r)) in part.iter().zip(changes.iter().zip(&receipts)) {
                    P::apply(&e.data, c, r);
                    e.saved_access_ms.fetch_max(*at, Ordering::Relaxed);
                }
                saved += part.len();
            }
        }
        Ok(saved)
    }
}
