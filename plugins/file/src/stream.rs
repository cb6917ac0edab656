//! One stream of the file engines: metadata, writer state, and the index of its records in the
//! log; reads verify each record's checksum before any byte is returned.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use durable_streams_core::abi::{EngineError, ErrorCode, Lifetime, StreamMeta};
use durable_streams_core::rules::WriterState;
use parking_lot::Mutex;

use crate::log::{Loc, Log};
use crate::record;

/// Where one record's data lives: stream positions `start..start + data_len`.
#[derive(Clone, Copy, Debug)]
pub struct Extent {
    pub start: u64,
    pub data_len: u32,
    pub loc: Loc,
    /// Offset of the data inside the record.
    pub data_off: u32,
}

/// A stream and everything the engine keeps about it in memory.
pub struct FileStream {
    pub id: u64,
    pub content_type: String,
    pub lifetime: Lifetime,
    pub fork: Option<(String, Arc<FileStream>)>,
    pub base: u64,
    pub refcount: AtomicU32,
    pub soft_deleted: AtomicBool,
    pub last_access_ms: AtomicU64,
    pub inner: Mutex<Inner>,
}

/// The mutable part.
#[derive(Default)]
pub struct Inner {
    pub extents: Vec<Extent>,
    pub tail: u64,
    pub writer: WriterState,
    pub removed: bool,
}

impl FileStream {
    pub fn meta(&self, inner: &Inner) -> StreamMeta {
        StreamMeta {
            content_type: self.content_type.as_str().into(),
            tail: inner.tail,
            closed: inner.writer.closed,
            lifetime: self.lifetime,
            incarnation: self.id,
            fork_source: self.fork.as_ref().map(|(n, _)| n.as_str().into()).into(),
            fork_position: self.base,
        }
    }

    pub fn touch(&self, now_ms: u64) {
        self.last_access_ms.fetch_max(now_ms, Ordering::Relaxed);
    }

    /// Copies whole records from `pos` (below `limit`) into `out` until `max_bytes` would be
    /// exceeded (one record always fits in an empty `out`); follows the fork chain below `base`.
    pub fn read_into(&self, log: &Log, pos: u64, limit: u64, max_bytes: usize, out: &mut Vec<u8>) -> Result<u64, EngineError> {
        let mut pos = pos;
        if pos < self.base {
            if let Some((_, src)) = &self.fork {
                pos = src.read_into(log, pos, limit.min(self.base), max_bytes, out)?;
                if pos < self.base.min(limit) {
                    return Ok(pos);
                }
            }
        }
        // Choose the records under the lock; read them without it.
        let (picked, end) = {
            let inner = self.inner.lock();
            let end = inner.tail.min(limit);
            if pos >= end {
                return Ok(pos);
            }
            let first = inner.extents.partition_point(|e| e.start + e.data_len as u64 <= pos);
            let mut picked = Vec::new();
            let mut budget = out.len();
            for e in &inner.extents[first..] {
                if e.start >= end {
                    break;
                }
                let take = (e.start + e.data_len as u64).min(end) - pos.max(e.start);
                if budget > 0 && budget + take as usize > max_bytes {
                    break;
                }
                picked.push(*e);
                budget += take as usize;
                if budget >= max_bytes {
                    break;
                }
            }
            (picked, end)
        };
        let mut i = 0;
        while i < picked.len() {
            // Coalesce records that sit back to back in one segment into one read.
            let mut j = i + 1;
            while j < picked.len()
                && picked[j].loc.seg == picked[i].loc.seg
                && picked[j].loc.off == picked[j - 1].loc.off + picked[j - 1].loc.len as u64
            {
                j += 1;
            }
            let span_off = picked[i].loc.off;
            let span_len = (picked[j - 1].loc.off + picked[j - 1].loc.len as u64 - span_off) as usize;
            let buf = log.read(picked[i].loc.seg, span_off, span_len)?;
            for e in &picked[i..j] {
                let rel = (e.loc.off - span_off) as usize;
                let rec = &buf[rel..rel + e.loc.len as usize];
                if !record::verify(rec) {
                    return Err(EngineError::new(
                        ErrorCode::CORRUPT,
                        format!(
                            "checksum mismatch in {} at byte {}: refusing to serve damaged data",
                            log.segment_path(e.loc.seg).display(),
                            e.loc.off
                        ),
                    ));
                }
                let from = pos.max(e.start);
                let to = (e.start + e.data_len as u64).min(end);
                let d0 = e.data_off as usize + (from - e.start) as usize;
                out.extend_from_slice(&rec[d0..d0 + (to - from) as usize]);
                pos = to;
            }
            i = j;
        }
        Ok(pos)
    }
}
