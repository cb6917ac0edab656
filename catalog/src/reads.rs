//! Reads of the catalogue: a stream's bytes (stitching a fork's inherited bytes from its
//! source chain), metadata, listings and the names the sweeper may delete. Changes nothing but
//! the sliding-TTL access time.

use std::ops::Bound;

use abi_stable::std_types::{RString, RVec};
use durable_streams_core::abi::*;

use crate::catalog::Catalog;
use crate::entry::Entry;
use crate::persist::{Persistence, Span};

impl<P: Persistence> Catalog<P> {
    /// Copies whole records of `entry` from `pos` below `limit` into `out` (following the fork
    /// chain below its base); returns the position reached.
    fn read_into(&self, entry: &Entry<P::Data>, pos: u64, limit: u64, max: usize, out: &mut Vec<u8>) -> Result<u64, EngineError> {
        let mut pos = pos;
        if pos < entry.base {
            if let Some((_, src)) = &entry.fork {
                pos = self.read_into(src, pos, limit.min(entry.base), max, out)?;
                if pos < entry.base.min(limit) || (!out.is_empty() && out.len() >= max) {
                    return Ok(pos);
                }
            }
        }
        let end = entry.tail().min(limit);
        if pos >= end {
            return Ok(pos);
        }
        self.store.read(entry.id, &entry.data, Span { pos, end, max }, out)
    }

    pub(crate) fn read(&self, req: &ReadRequest<'_>) -> Result<ReadChunk, EngineError> {
        let entry = self.live(req.name.as_str(), req.now_ms)?;
        entry.touch(req.now_ms);
        let tail = entry.tail();
        let start = match req.start {
            ReadStart::Tail => tail,
            ReadStart::At => req.position,
        };
        if start > tail {
            return Err(EngineError::new(
                ErrorCode::OFFSET_BEYOND_TAIL,
                "offset is beyond the stream's tail",
            ));
        }
        let retained = entry.state.lock().start;
        if start < retained {
            return Err(EngineError::trimmed(start, retained));
        }
        let max = req.max_bytes as usize;
        if start < tail && start >= entry.base {
            // The stream's own bytes: a store holding them in memory lends them without a copy.
            let span = Span {
                pos: start,
                end: tail,
                max,
            };
            if let Some(shared) = self.store.read_shared(entry.id, &entry.data, span) {
                let (data, next) = shared?;
                return Ok(ReadChunk {
                    data,
                    next,
                    meta: entry.meta(),
                });
            }
        }
        let mut out = Vec::new();
        let next = if start == tail {
            start
        } else {
            out.reserve(max.min((tail - start) as usize));
            self.read_into(&entry, start, tail, max, &mut out)?
        };
        Ok(ReadChunk {
            data: ByteViewBox::from_value(RVec::from(out), abi_stable::sabi_trait::TD_Opaque),
            next,
            meta: entry.meta(),
        })
    }

    pub(crate) fn head(&self, req: &HeadRequest<'_>) -> Result<StreamMeta, EngineError> {
        self.live(req.name.as_str(), req.now_ms).map(|e| e.meta())
    }

    pub(crate) fn list(&self, req: &ListRequest<'_>) -> RVec<StreamListing> {
        let map = self.streams.read();
        let prefix = req.prefix.as_str();
        let start = req.start_after.map(|s| s.as_str().to_string()).into_option();
        let lower = match &start {
            Some(s) => Bound::Excluded(s),
            None => Bound::Unbounded,
        };
        map.range::<String, _>((lower, Bound::Unbounded))
            .skip_while(|(n, _)| !n.starts_with(prefix) && n.as_str() < prefix)
            .take_while(|(n, _)| n.starts_with(prefix))
            .filter(|(_, e)| !e.is_soft_deleted() && !e.expired(req.now_ms))
            .take(req.limit as usize)
            .map(|(n, e)| StreamListing {
                name: n.as_str().into(),
                meta: e.meta(),
            })
            .collect()
    }

    pub(crate) fn list_expired(&self, req: &ExpiredRequest) -> RVec<RString> {
        self.streams
            .read()
            .iter()
            .filter(|(_, e)| !e.is_soft_deleted() && e.expired(req.now_ms))
            .take(req.limit as usize)
            .map(|(n, _)| RString::from(n.as_str()))
            .collect()
    }

    /// Streams in the catalogue, soft-deleted ones aside.
    pub fn live_streams(&self) -> usize {
        self.streams.read().values().filter(|e| !e.is_soft_deleted()).count()
    }
}

impl<P: Persistence> Catalog<P> {
    /// Visits every stream the catalogue holds, deleted ones still read by forks included, once
    /// each; under the catalogue's read lock (keep `f` short).
    /// A stream committed before this call is visited unless it was removed (and forgotten).
    pub fn visit_streams(&self, mut f: impl FnMut(StreamRef<'_, P::Data>)) {
        let map = self.streams.read();
        let mut off_map = std::collections::HashSet::new();
        for e in map.values() {
            f(StreamRef::of(e));
            // Sources that left the map (hidden, or shadowed at open) are reached through forks.
            let mut cur = e.fork.as_ref();
            while let Some((src_name, src)) = cur {
                let in_map = map.get(src_name).is_some_and(|m| std::sync::Arc::ptr_eq(m, src));
                if in_map || !off_map.insert(src.id) {
                    break;
                }
                f(StreamRef::of(src));
                cur = src.fork.as_ref();
            }
        }
    }
}

/// A stream as [`Catalog::visit_streams`] shows it.
pub struct StreamRef<'a, D> {
    pub id: u64,
    /// The earliest readable position (retention).
    pub start: u64,
    /// The last access time the store holds (0: none).
    pub saved_access_ms: u64,
    pub data: &'a D,
}

impl<'a, D> StreamRef<'a, D> {
    fn of(e: &'a Entry<D>) -> Self {
        StreamRef {
            id: e.id,
            start: e.state.lock().start,
            saved_access_ms: e.saved_access_ms.load(std::sync::atomic::Ordering::Relaxed),
            data: &e.data,
        }
    }
}
