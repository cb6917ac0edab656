//! Opening a catalogue over a store's committed data: from the streams a state-keeping store
//! hands back ([`Recovered`]), or by folding a log of changes in commit order ([`Fold`]). Links
//! forks, counts references, and (when the store may be written) deletes soft-deleted streams
//! no fork references any more.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use durable_streams_core::abi::{EngineError, ErrorCode};
use durable_streams_core::limits::Limits;

use crate::catalog::Catalog;
use crate::entry::Entry;
use crate::persist::{Appended, Change, Persistence, Recovered};

/// How to open.
#[derive(Clone, Copy, Debug)]
pub struct OpenOptions {
    pub limits: Limits,
    /// Delete soft-deleted streams that no fork references (off for read-only tools).
    pub collect_orphans: bool,
    /// Now, ms: the access time of streams without a saved one.
    pub now_ms: u64,
    /// How stale a saved access time may be (the host's save interval): a stream is taken as
    /// last accessed this long after its saved time (never later than now), so a restart never
    /// shortens a sliding TTL, and lengthens it by at most this much.
    pub access_slack_ms: u64,
}

/// A built entry and its name.
type Named<D> = (String, Arc<Entry<D>>);

fn corrupt(msg: String) -> EngineError {
    EngineError::new(ErrorCode::CORRUPT, msg)
}

impl<P: Persistence> Catalog<P> {
    /// A catalogue over `store` holding `streams`.
    pub fn open(store: P, streams: Vec<Recovered<P::Data>>, opts: OpenOptions) -> Result<Self, EngineError> {
        let mut catalog = Catalog::with_streams(store, BTreeMap::new(), opts.limits);
        catalog.access_slack_ms = opts.access_slack_ms;
        let mut waiting: FxHashMap<u64, Recovered<P::Data>> = streams.into_iter().map(|r| (r.id, r)).collect();
        let mut built: FxHashMap<u64, Named<P::Data>> = FxHashMap::default();
        built.reserve(waiting.len());
        let ids: Vec<u64> = waiting.keys().copied().collect();
        for id in ids {
            catalog.build(id, &mut waiting, &mut built, opts.now_ms)?;
        }
        // Removed streams that only forks kept, and no fork keeps any more.
        let orphans: Vec<Named<P::Data>> = built
            .values()
            .filter(|(_, e)| e.is_soft_deleted() && e.refcount.load(Ordering::Acquire) == 0)
            .cloned()
            .collect();
        // Sorted once and built in bulk (a million names inserted one by one in hash order
        // cost seconds of comparisons). Two streams of one name (older data): the live one,
        // else the newer, which sorts last and is the one the bulk build keeps.
        // (name, (live, id): the rank among streams of one name, entry)
        type Ranked<D> = (String, (bool, u64), Arc<Entry<D>>);
        let mut named: Vec<Ranked<P::Data>> = built
            .into_values()
            .filter(|(_, e)| !e.hidden.load(Ordering::Acquire))
            .map(|(name, e)| (name, (!e.is_soft_deleted(), e.id), e))
            .collect();
        named.sort_unstable_by(|(a, x, _), (b, y, _)| a.cmp(b).then(x.cmp(y)));
        let named = named.into_iter().map(|(name, _, e)| (name, e));
        *catalog.streams.write() = BTreeMap::from_iter(named);
        if opts.collect_orphans {
            for (name, e) in orphans {
                // A cascade may have taken it already.
                if !e.state.lock().removed {
                    catalog.remove(&name, &e, true)?;
                }
            }
        }
        Ok(catalog)
    }

    /// Builds the entry `id` after its fork source.
    fn build(
        &self,
        id: u64,
        waiting: &mut FxHashMap<u64, Recovered<P::Data>>,
        built: &mut FxHashMap<u64, Named<P::Data>>,
        now_ms: u64,
    ) -> Result<(), EngineError> {
        let Some(r) = waiting.remove(&id) else { return Ok(()) };
        let fork = match r.fork {
            Some((src_id, _)) => {
                if waiting.contains_key(&src_id) {
                    self.build(src_id, waiting, built, now_ms)?;
                }
                let (src_name, src) = built
                    .get(&src_id)
                    .cloned()
                    .ok_or_else(|| corrupt(format!("stream '{}' is a fork of stream id {src_id}, which is missing", r.name)))?;
                src.refcount.fetch_add(1, Ordering::AcqRel);
                Some((src_name, src))
            }
            None => None,
        };
        let base = r.fork.map_or(0, |(_, pos)| pos);
        let entry = Entry::new(id, self.intern(&r.content_type), r.lifetime, fork, base, r.data);
        entry.soft_deleted.store(r.soft_deleted, Ordering::Release);
        entry.hidden.store(r.hidden, Ordering::Release);
        match r.last_access_ms {
            Some(at) => {
                entry.saved_access_ms.store(at, Ordering::Relaxed);
                entry.touch(at.saturating_add(self.access_slack_ms).min(now_ms));
            }
            None => entry.touch(now_ms),
        }
        {
            let mut st = entry.state.lock();
            st.tail = r.tail;
            st.start = r.start;
            st.set_writer(r.writer);
        }
        self.stored.fetch_add(r.tail.saturating_sub(base.max(r.start)), Ordering::Relaxed);
        built.insert(id, (r.name, Arc::new(entry)));
        Ok(())
    }
}

/// Rebuilds streams from a log of committed changes, in commit order, for
/// [`Catalog::open`]. The store decodes its records into [`Change`]s and feeds them here with
/// the receipt each would have had when committed.
pub struct Fold<P: Persistence> {
    streams: FxHashMap<u64, Recovered<P::Data>>,
    max_id: u64,
    orphans: u64,
}

impl<P: Persistence> Default for Fold<P> {
    fn default() -> Self {
        Fold {
            streams: FxHashMap::default(),
            max_id: 0,
            orphans: 0,
        }
    }
}

impl<P: Persistence> Fold<P> {
    /// Applies one committed change; an append or removal of an unknown stream is corruption.
    /// An append's `start` is not looked at: it follows from the stream's tail.
    pub fn apply(&mut self, change: &Change<'_>, receipt: &P::Receipt) -> Result<(), EngineError> {
        match change {
            Change::Create(c) => {
                self.max_id = self.max_id.max(c.id);
                let data = P::Data::default();
                P::apply(&data, change, receipt);
                let base = c.fork.map_or(0, |(_, pos)| pos);
                let writer = durable_streams_core::rules::WriterState {
                    closed: c.closed,
                    ..Default::default()
                };
                self.streams.insert(
                    c.id,
                    Recovered {
                        id: c.id,
                        name: c.name.to_string(),
                        content_type: c.content_type.to_string(),
                        lifetime: c.lifetime,
                        fork: c.fork,
                        soft_deleted: false,
                        hidden: false,
                        start: 0,
                        last_access_ms: None,
                        tail: base + c.initial.len() as u64,
                        writer,
                        data,
                    },
                );
            }
            Change::Append(a) => {
                let s = self.known(a.id)?;
                let placed = Appended { start: s.tail, ..*a };
                P::apply(&s.data, &Change::Append(placed), receipt);
                s.tail += a.body.len() as u64;
                s.writer.apply(a.update);
            }
            Change::SoftDelete { id, hidden } => {
                let s = self.known(*id)?;
                s.soft_deleted = true;
                s.hidden |= *hidden;
            }
            Change::Delete { id } => {
                self.streams
                    .remove(id)
                    .ok_or_else(|| corrupt(format!("delete of unknown stream id {id}")))?;
            }
            Change::Trim { id, start } => {
                let s = self.known(*id)?;
                P::apply(&s.data, change, receipt);
                s.start = s.start.max(*start);
                // A log compacted past dropped records says where the stream went on.
                s.tail = s.tail.max(*start);
            }
            Change::Access { id, at_ms } => {
                let s = self.known(*id)?;
                s.last_access_ms = Some(s.last_access_ms.unwrap_or(0).max(*at_ms));
            }
        }
        Ok(())
    }

    fn known(&mut self, id: u64) -> Result<&mut Recovered<P::Data>, EngineError> {
        self.streams
            .get_mut(&id)
            .ok_or_else(|| corrupt(format!("a change to unknown stream id {id}")))
    }

    /// Skips a change to a stream no longer in the log: a log compacted by dropping removed
    /// streams' records may keep some of them after the stream's CREATE is gone. Counted.
    pub fn skip_orphan(&mut self, change: &Change<'_>) -> bool {
        let orphan = !matches!(change, Change::Create(_)) && !self.streams.contains_key(&change.id());
        if orphan {
            self.max_id = self.max_id.max(change.id());
            self.orphans += 1;
        }
        orphan
    }

    /// Changes skipped by [`Fold::skip_orphan`].
    pub fn orphans(&self) -> u64 {
        self.orphans
    }

    /// The highest stream id created, deleted ones included (for a store's id counter).
    pub fn max_id(&self) -> u64 {
        self.max_id
    }

    /// The streams as they stand after every change fed.
    pub fn finish(self) -> Vec<Recovered<P::Data>> {
        self.streams.into_values().collect()
    }
}
