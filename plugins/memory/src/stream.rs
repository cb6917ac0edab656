//! One in-memory stream: its bytes, record boundaries, writer state and fork link.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use durable_streams_core::abi::{Lifetime, StreamMeta};
use durable_streams_core::rules::WriterState;
use parking_lot::Mutex;

/// A stream and everything the engine keeps about it.
pub struct Stream {
    pub incarnation: u64,
    /// Interned: streams of one type share the string.
    pub content_type: Arc<str>,
    pub lifetime: Lifetime,
    /// The source stream and the divergence position, for forks.
    pub fork: Option<(String, Arc<Stream>)>,
    /// Own data starts here (the fork position; 0 for ordinary streams).
    pub base: u64,
    /// Forks that reference this stream.
    pub refcount: AtomicU32,
    pub soft_deleted: AtomicBool,
    pub last_access_ms: AtomicU64,
    pub data: Mutex<StreamData>,
}

/// The mutable part, guarded by the stream's lock.
#[derive(Default)]
pub struct StreamData {
    pub bytes: Vec<u8>,
    /// Absolute end position of every record (one per append).
    pub record_ends: Vec<u64>,
    /// Producer / `Stream-Seq` state, allocated only once a stream has any (most never do);
    /// `closed` alone lives inline.
    pub writer: Option<Box<WriterState>>,
    pub closed: bool,
    /// Set when the stream leaves the map, so a racing append cannot land in a dead stream.
    pub removed: bool,
}

impl StreamData {
    /// Runs `f` with the full writer state (a transient default when none was allocated).
    pub fn with_writer<T>(&self, f: impl FnOnce(&WriterState) -> T) -> T {
        match &self.writer {
            Some(w) => f(w),
            None => f(&WriterState {
                closed: self.closed,
                ..Default::default()
            }),
        }
    }

    /// Applies an accepted update, allocating the writer state only when it carries anything.
    pub fn apply(&mut self, update: &durable_streams_core::rules::StateUpdate) {
        if self.writer.is_none() && (update.producer.is_some() || update.stream_seq.is_some() || update.closed_by.is_some()) {
            self.writer = Some(Box::new(WriterState {
                closed: self.closed,
                ..Default::default()
            }));
        }
        if let Some(w) = self.writer.as_mut() {
            w.apply(update);
        }
        self.closed |= update.close;
    }

    pub fn push_record(&mut self, base: u64, body: &[u8]) {
        if body.is_empty() {
            return;
        }
        self.bytes.extend_from_slice(body);
        self.record_ends.push(base + self.bytes.len() as u64);
    }
}

impl Stream {
    pub fn tail(&self, data: &StreamData) -> u64 {
        self.base + data.bytes.len() as u64
    }

    pub fn meta(&self, data: &StreamData) -> StreamMeta {
        StreamMeta {
            content_type: (*self.content_type).into(),
            tail: self.tail(data),
            closed: data.closed,
            lifetime: self.lifetime,
            incarnation: self.incarnation,
            fork_source: self.fork.as_ref().map(|(n, _)| n.as_str().into()).into(),
            fork_position: self.base,
        }
    }

    pub fn touch(&self, now_ms: u64) {
        self.last_access_ms.fetch_max(now_ms, Ordering::Relaxed);
    }

    /// Appends bytes from `pos` up to `limit` (exclusive) into `out`, whole records only, until
    /// `max_bytes` would be exceeded (one record always fits if `out` is empty). Follows the
    /// fork chain for positions below `base`. Returns the position after the last byte copied.
    pub fn read_into(&self, pos: u64, limit: u64, max_bytes: usize, out: &mut Vec<u8>) -> u64 {
        let mut pos = pos;
        if pos < self.base {
            if let Some((_, src)) = &self.fork {
                pos = src.read_into(pos, limit.min(self.base), max_bytes, out);
                if pos < self.base.min(limit) {
                    return pos;
                }
            }
        }
        let data = self.data.lock();
        let end = self.tail(&data).min(limit);
        if pos >= end {
            return pos;
        }
        let first = data.record_ends.partition_point(|&e| e <= pos);
        for &rec_end in &data.record_ends[first..] {
            let stop = rec_end.min(end);
            let len = (stop - pos) as usize;
            if !out.is_empty() && out.len() + len > max_bytes {
                break;
            }
            let from = (pos - self.base) as usize;
            out.extend_from_slice(&data.bytes[from..from + len]);
            pos = stop;
            if pos >= end || out.len() >= max_bytes {
                break;
            }
        }
        pos
    }
}
