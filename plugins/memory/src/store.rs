//! `MemoryStore`: the memory engine's persistence, streams' bytes and record boundaries held in
//! process memory (nothing survives a restart); `InMemoryStorage` is the catalogue over it. Keeps
//! the budget of `limits.max_memory_bytes`; every protocol rule is the catalogue's.

use std::sync::atomic::{AtomicU64, Ordering};

use durable_streams_catalog::{Batch, Catalog, Change, OpenOptions, Persistence, Span};
use durable_streams_core::abi::EngineError;
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

#[derive(Default)]
struct HeldInner {
    /// Stream position of `bytes[0]`: the fork position, or where retention trimmed to.
    base: u64,
    bytes: Vec<u8>,
    record_ends: Vec<u64>,
}

impl HeldInner {
    fn push(&mut self, body: &[u8]) {
        if !body.is_empty() {
            self.bytes.extend_from_slice(body);
            self.record_ends.push(self.base + self.bytes.len() as u64);
        }
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
            Change::Trim { start, .. } if *start > h.base => {
                let gone = h.record_ends.partition_point(|&e| e <= *start);
                h.record_ends.drain(..gone);
                let cut = ((*start - h.base) as usize).min(h.bytes.len());
                h.bytes.drain(..cut);
                h.bytes.shrink_to_fit();
                h.base = *start;
            }
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
            let from = (pos - h.base) as usize;
            out.extend_from_slice(&h.bytes[from..from + len]);
            pos = stop;
            if pos >= span.end || out.len() >= span.max {
                break;
            }
        }
        Ok(pos)
    }

    fn forget(&self, _id: u64, data: &Held) {
        let mut h = data.0.lock();
        self.used.fetch_sub(h.bytes.len() as u64, Ordering::Relaxed);
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
