//! One stream as the catalogue keeps it in memory: identity, lifetime, fork link and reference
//! count, deletion flags, tail and writer state, and the store's own data. Holds no rule; the
//! catalogue decides every change and updates an entry only after the store committed it.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use durable_streams_core::abi::{Lifetime, StreamMeta};
use durable_streams_core::producer::ProducerState;
use durable_streams_core::rules::{StateUpdate, WriterState};
use durable_streams_core::ttl;
use parking_lot::Mutex;

/// A stream known to the catalogue.
pub struct Entry<D> {
    pub id: u64,
    /// Interned: streams of one type share the string.
    pub content_type: Arc<str>,
    pub lifetime: Lifetime,
    /// The source's name (as it was when the fork was made) and entry.
    pub fork: Option<(String, Arc<Entry<D>>)>,
    /// Own bytes start here (the fork position; 0 for other streams).
    pub base: u64,
    pub(crate) refcount: AtomicU32,
    pub(crate) soft_deleted: AtomicBool,
    pub(crate) hidden: AtomicBool,
    pub(crate) last_access_ms: AtomicU64,
    /// The last access time the store holds (sliding TTLs; see `Catalog::save_access`).
    pub(crate) saved_access_ms: AtomicU64,
    pub(crate) state: Mutex<State>,
    /// Held by a single append running beside others (see `Catalog::writer`).
    pub(crate) appending: Mutex<()>,
    /// What the store keeps to find the bytes.
    pub data: D,
}

/// The mutable part, changed only after a commit.
#[derive(Default)]
pub(crate) struct State {
    pub tail: u64,
    /// The earliest readable position (retention; 0 when never trimmed). For a fork it may lie
    /// below its fork position (inherited bytes), where its source keeps them for it.
    pub start: u64,
    pub closed: bool,
    /// Producer / `Stream-Seq` state, allocated only once a stream has any (most never do).
    pub writer: Option<Box<WriterState>>,
    /// Set when the stream is gone for good, so a racing append cannot land in it.
    pub removed: bool,
}

impl State {
    /// The full writer state (a default carrying only closure when none was allocated).
    pub fn writer(&self) -> WriterState {
        match &self.writer {
            Some(w) => (**w).clone(),
            None => WriterState {
                closed: self.closed,
                ..Default::default()
            },
        }
    }

    /// The writer state an append by `producer` is decided against: closure and `Stream-Seq` in
    /// full, of the producers only that one (the others' states are not copied).
    pub fn writer_for(&self, producer: Option<&str>) -> WriterState {
        match &self.writer {
            Some(w) => WriterState {
                closed: w.closed,
                closed_by: w.closed_by.clone(),
                last_stream_seq: w.last_stream_seq.clone(),
                producers: producer
                    .and_then(|id| w.producers.get_key_value(id))
                    .map(|(k, v)| (k.clone(), *v))
                    .into_iter()
                    .collect(),
            },
            None => WriterState {
                closed: self.closed,
                ..Default::default()
            },
        }
    }

    /// One producer's committed state.
    pub fn producer(&self, id: &str) -> Option<ProducerState> {
        self.writer.as_ref().and_then(|w| w.producers.get(id).copied())
    }

    pub fn set_writer(&mut self, w: WriterState) {
        self.closed = w.closed;
        let plain = w.producers.is_empty() && w.last_stream_seq.is_none() && w.closed_by.is_none();
        self.writer = if plain { None } else { Some(Box::new(w)) };
    }

    pub fn apply(&mut self, update: &StateUpdate) {
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
}

impl<D> Entry<D> {
    pub(crate) fn new(
        id: u64,
        content_type: Arc<str>,
        lifetime: Lifetime,
        fork: Option<(String, Arc<Entry<D>>)>,
        base: u64,
        data: D,
    ) -> Self {
        Entry {
            id,
            content_type,
            lifetime,
            fork,
            base,
            refcount: AtomicU32::new(0),
            soft_deleted: AtomicBool::new(false),
            hidden: AtomicBool::new(false),
            last_access_ms: AtomicU64::new(0),
            saved_access_ms: AtomicU64::new(0),
            state: Mutex::new(State::default()),
            appending: Mutex::new(()),
            data,
        }
    }

    pub fn meta(&self) -> StreamMeta {
        let st = self.state.lock();
        self.meta_of(&st)
    }

    pub(crate) fn meta_of(&self, st: &State) -> StreamMeta {
        StreamMeta {
            content_type: (*self.content_type).into(),
            tail: st.tail,
            closed: st.closed,
            lifetime: self.lifetime,
            incarnation: self.id,
            fork_source: self.fork.as_ref().map(|(n, _)| n.as_str().into()).into(),
            fork_position: self.base,
        }
    }

    pub fn tail(&self) -> u64 {
        self.state.lock().tail
    }

    pub fn is_soft_deleted(&self) -> bool {
        self.soft_deleted.load(Ordering::Acquire)
    }

    pub(crate) fn expired(&self, now_ms: u64) -> bool {
        ttl::is_expired(self.lifetime, self.last_access_ms.load(Ordering::Relaxed), now_ms)
    }

    pub(crate) fn touch(&self, now_ms: u64) {
        self.last_access_ms.fetch_max(now_ms, Ordering::Relaxed);
    }
}
