//! `MemoryStore`: the memory engine's persistence, streams' bytes and record boundaries held in
//! process memory (nothing survives a restart); `InMemoryStorage` is the catalogue over it. Keeps
//! the budget of `limits.max_memory_bytes`; every protocol rule is the catalogue's.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::RSlice;

use durable_streams_catalog::{Batch, Catalog, Change, OpenOptions, Persistence, Span};
use durable_streams_core::abi::{ByteView, ByteViewBox, EngineError, ErrorCode};
use durable_streams_core::limits::Limits;
use parking_lot::Mutex;

/// The store: an id counter and the bytes held.
pub struct MemoryStore {
    next_id: AtomicU64,
    /// Bytes held by all streams (for `limits.max_memory_bytes`).
    used: AtomicU64,
    limits: Limits,
}

/// One stream's own bytes (from its fork position on) and where each record ends.
#[derive(Default)]
pub struct Held(Mutex<HeldInner>);

/// The largest block: a sealed block of this size is what one catch-up read lends whole.
const BLOCK_MAX: usize = 1 << 20;

/// A stream's bytes in blocks of whole records: sealed blocks are never written again, so a
/// read inside one is answered with a view of it (no copy); the open block takes appends. A
/// block is sealed when the next record would take it past its size (4 KiB for a stream's
/// first block, doubling to [`BLOCK_MAX`]), so a small stream holds one small block.
#[derive(Default)]
struct HeldInner {
    /// Stream position of the first byte held: the fork position, or where retention trimmed to.
    base: u64,
    /// Sealed blocks in position order, each with the stream position of its first byte (the
    /// first may start below `base` after a trim). The open block starts where the last ends,
    /// or at `base` when none is left.
    sealed: Vec<(u64, Arc<Vec<u8>>)>,
    open: Vec<u8>,
    record_ends: Vec<u64>,
}

/// Whole records lent from a sealed block.
struct Lent {
    block: Arc<Vec<u8>>,
    range: std::ops::Range<usize>,
}

impl ByteView for Lent {
    fn bytes(&self) -> RSlice<'_, u8> {
        RSlice::from(&self.block[self.range.clone()])
    }
}

impl HeldInner {
    /// Stream position of `open[0]`.
    fn open_start(&self) -> u64 {
        self.sealed.last().map_or(self.base, |(start, b)| start + b.len() as u64)
    }

    fn end(&self) -> u64 {
        self.open_start() + self.open.len() as u64
    }

    fn push(&mut self, body: &[u8]) {
        if body.is_empty() {
            return;
        }
        let size = (4096usize << self.sealed.len().min(8)).min(BLOCK_MAX);
        if !self.open.is_empty() && self.open.len() + body.len() > size {
            let start = self.open_start();
            let block = std::mem::take(&mut self.open);
            self.sealed.push((start, Arc::new(block)));
            let next = (4096usize << self.sealed.len().min(8)).min(BLOCK_MAX);
            self.open.reserve_exact(next.max(body.len()));
        }
        self.open.extend_from_slice(body);
        self.record_ends.push(self.end());
    }

    /// The block holding position `pos`, with its start position (`None` below what is held).
    fn block_at(&self, pos: u64) -> Option<(u64, &[u8])> {
        let open_start = self.open_start();
        if pos >= open_start {
            return Some((open_start, &self.open));
        }
        let i = self.sealed.partition_point(|(start, _)| *start <= pos).checked_sub(1)?;
        Some((self.sealed[i].0, &self.sealed[i].1))
    }

    fn trim(&mut self, start: u64) {
        let gone = self.record_ends.partition_point(|&e| e <= start);
        self.record_ends.drain(..gone);
        // Sealed blocks wholly below `start` go; one it cuts stays whole (it is shared).
        let open_start = self.open_start();
        let ends_by = |i: usize, sealed: &[(u64, Arc<Vec<u8>>)]| sealed.get(i + 1).map_or(open_start, |b| b.0);
        let mut keep_from = 0;
        while keep_from < self.sealed.len() && ends_by(keep_from, &self.sealed) <= start {
            keep_from += 1;
        }
        self.sealed.drain(..keep_from);
        // Cut into the open block, or (a restore) past anything held: either way no sealed
        // block is left and the open one starts at the new base.
        if start > open_start {
            let cut = ((start - open_start) as usize).min(self.open.len());
            self.open.drain(..cut);
            self.open.shrink_to_fit();
        }
        self.base = start;
    }
}

impl Persistence for MemoryStore {
    type Data = Held;
    type Receipt = ();

    fn describe(&self) -> &'static str {
        "the memory engine"
    }

    fn allocate_id(&self, _name: &str) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn concurrent_appends(&self) -> bool {
        true
    }

    fn keeps_writer_state(&self) -> bool {
        false
    }

    fn commit(&self, batch: &Batch<'_>) -> Result<Vec<()>, EngineError> {
        Ok(vec![(); batch.changes.len()])
    }

    fn apply(data: &Held, change: &Change<'_>, _: &()) {
        let mut h = data.0.lock();
        match change {
            Change::Create(c) => {
                h.base = c.fork.map_or(0, |(_, pos)| pos);
                h.push(c.initial);
            }
            Change::Append(a) => h.push(a.body),
            // A record boundary: whole records go.
            Change::Trim { start, .. } if *start > h.base => h.trim(*start),
            _ => {}
        }
    }

    fn record_floor(&self, _id: u64, data: &Held, pos: u64) -> Option<Result<u64, EngineError>> {
        let h = data.0.lock();
        let i = h.record_ends.partition_point(|&e| e <= pos);
        let start = if i == 0 { h.base } else { h.record_ends[i - 1] };
        Some(Ok(start.min(pos)))
    }

    fn record_starts(&self, _id: u64, data: &Held, range: std::ops::Range<u64>, limit: usize) -> Option<Result<Vec<u64>, EngineError>> {
        let h = data.0.lock();
        // Record i begins where record i - 1 ended (the first at `base`).
        let start_of = |i: usize| if i == 0 { h.base } else { h.record_ends[i - 1] };
        let first = if h.base >= range.start {
            0
        } else {
            h.record_ends.partition_point(|&e| e < range.start) + 1
        };
        Some(Ok((first..h.record_ends.len())
            .map(start_of)
            .take_while(|&s| s < range.end)
            .take(limit)
            .collect()))
    }

    fn trimmed(&self, _id: u64, _data: &Held, dropped: std::ops::Range<u64>) {
        self.used.fetch_sub(dropped.end - dropped.start, Ordering::Relaxed);
    }

    fn read(&self, _id: u64, data: &Held, span: Span, out: &mut Vec<u8>) -> Result<u64, EngineError> {
        let h = data.0.lock();
        let mut pos = span.pos;
        let first = h.record_ends.partition_point(|&e| e <= pos);
        for &rec_end in &h.record_ends[first..] {
            let stop = rec_end.min(span.end);
            let len = (stop - pos) as usize;
            if !out.is_empty() && out.len() + len > span.max {
                break;
            }
            // A record lies in one block.
            let piece = h
                .block_at(pos)
                .and_then(|(start, block)| block.get((pos - start) as usize..).and_then(|b| b.get(..len)));
            let Some(piece) = piece else {
                return Err(EngineError::new(ErrorCode::INTERNAL, format!("position {pos} is not held")));
            };
            out.extend_from_slice(piece);
            pos = stop;
            if pos >= span.end || out.len() >= span.max {
                break;
            }
        }
        Ok(pos)
    }

    fn read_shared(&self, _id: u64, data: &Held, span: Span) -> Option<Result<(ByteViewBox, u64), EngineError>> {
        let h = data.0.lock();
        if span.pos >= h.open_start() || span.pos < h.base {
            return None; // the open block is copied (it is still written)
        }
        let i = h.sealed.partition_point(|(start, _)| *start <= span.pos).checked_sub(1)?;
        let (start, block) = &h.sealed[i];
        let block_end = start + block.len() as u64;
        // Whole records from `pos`, within the block, the span and `max` (at least one).
        let limit = span.end.min(block_end).min(span.pos.saturating_add(span.max as u64));
        let first = h.record_ends.partition_point(|&e| e <= span.pos);
        let upto = h.record_ends.partition_point(|&e| e <= limit);
        let stop = if upto > first {
            h.record_ends[upto - 1]
        } else {
            h.record_ends.get(first).copied()?
        };
        if stop > span.end || stop > block_end {
            return None;
        }
        // A short piece at a block's end, when more follows, is better copied with what follows.
        if stop == block_end && stop < span.end && ((stop - span.pos) as usize) < span.max / 4 {
            return None;
        }
        let range = (span.pos - start) as usize..(stop - start) as usize;
        let lent = Lent {
            block: block.clone(),
            range,
        };
        Some(Ok((ByteViewBox::from_value(lent, TD_Opaque), stop)))
    }

    fn forget(&self, _id: u64, data: &Held) {
        let mut h = data.0.lock();
        self.used.fetch_sub(h.end() - h.base, Ordering::Relaxed);
        *h = HeldInner::default();
    }

    /// Reserves `bytes` of the budget (the catalogue commits what it admits).
    fn admit(&self, bytes: u64) -> Result<(), EngineError> {
        self.limits.check_memory(self.used.load(Ordering::Relaxed), bytes)?;
        self.used.fetch_add(bytes, Ordering::Relaxed);
        Ok(())
    }

    fn stats(&self, out: &mut serde_json::Map<String, serde_json::Value>) {
        out.insert("bytes".into(), self.used.load(Ordering::Relaxed).into());
    }
}

durable_streams_catalog::named_engine! {
    /// The memory engine: the stream catalogue over a [`MemoryStore`].
    pub struct InMemoryStorage(MemoryStore);
}

impl Default for InMemoryStorage {
    fn default() -> Self {
        Self::new()
    }
}

impl InMemoryStorage {
    pub fn new() -> Self {
        Self::with_limits(Limits::default())
    }

    /// An engine enforcing `limits` (max stream size, max bytes held).
    pub fn with_limits(limits: Limits) -> Self {
        let store = MemoryStore {
            next_id: AtomicU64::new(1),
            used: AtomicU64::new(0),
            limits,
        };
        let opts = OpenOptions {
            limits,
            collect_orphans: false,
            now_ms: 0,
            access_slack_ms: 0,
        };
        InMemoryStorage(Catalog::open(store, Vec::new(), opts).expect("an empty catalogue opens"))
    }

    /// Bytes currently held.
    pub fn bytes_held(&self) -> u64 {
        self.0.store().used.load(Ordering::Relaxed)
    }
}
