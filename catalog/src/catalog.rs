//! `Catalog<P>`: the stream catalogue of a local engine and every protocol rule over it
//! (create-or-match, forks and their reference counts, soft delete and its cascade, expiry and
//! sliding renewal, producer / `Stream-Seq` / closure checks with the group overlay). Decides
//! changes and hands them to the store as one batch; changes memory only after the commit.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use abi_stable::std_types::ROption;
use durable_streams_core::abi::*;
use durable_streams_core::limits::Limits;
use durable_streams_core::producer::ProducerStamp;
use durable_streams_core::rules::{self, AppendCheck, AppendDecision, StateUpdate, WriterState};
use durable_streams_core::ttl;
use parking_lot::{Mutex, RwLock};

use crate::entry::Entry;
use crate::persist::*;

/// A complete engine over the store `P`.
pub struct Catalog<P: Persistence> {
    pub(crate) store: P,
    /// Serializes mutations (decide, commit, apply).
    pub(crate) writer: Mutex<()>,
    pub(crate) streams: RwLock<BTreeMap<String, Arc<Entry<P::Data>>>>,
    pub(crate) limits: Limits,
    types: Mutex<HashMap<String, Arc<str>>>,
}

/// Streams leaving the catalogue: soft (kept for forks, name hidden or not) or for good.
struct Removal<D> {
    entry: Arc<Entry<D>>,
    name: String,
    full: bool,
    hidden: bool,
}

/// A stream an append group touches, with its writer state and tail as the group leaves them.
struct Touched<D> {
    entry: Arc<Entry<D>>,
    writer: WriterState,
    tail: u64,
}

/// One accepted append of a group, until the commit answers.
struct Pending<D> {
    index: usize,
    entry: Arc<Entry<D>>,
    start: u64,
    update: StateUpdate,
}

fn ack(p: durable_streams_core::producer::ProducerState) -> ProducerAck {
    ProducerAck {
        epoch: p.epoch,
        seq: p.last_seq,
    }
}

impl<P: Persistence> Catalog<P> {
    pub(crate) fn with_streams(store: P, streams: BTreeMap<String, Arc<Entry<P::Data>>>, limits: Limits) -> Self {
        Catalog {
            store,
            writer: Mutex::new(()),
            streams: RwLock::new(streams),
            limits,
            types: Mutex::new(HashMap::new()),
        }
    }

    /// The store under this catalogue.
    pub fn store(&self) -> &P {
        &self.store
    }

    /// The shared copy of a content type string.
    pub(crate) fn intern(&self, ct: &str) -> Arc<str> {
        let mut types = self.types.lock();
        if let Some(t) = types.get(ct) {
            return t.clone();
        }
        let t: Arc<str> = Arc::from(ct);
        if types.len() < 4096 {
            types.insert(ct.to_string(), t.clone());
        }
        t
    }

    /// A live stream: `NOT_FOUND` when absent or expired, `GONE` when soft-deleted.
    pub(crate) fn live(&self, name: &str, now_ms: u64) -> Result<Arc<Entry<P::Data>>, EngineError> {
        match self.streams.read().get(name) {
            None => Err(EngineError::not_found(name)),
            Some(s) if s.is_soft_deleted() => Err(EngineError::gone(name)),
            Some(s) if s.expired(now_ms) => Err(EngineError::not_found(name)),
            Some(s) => Ok(s.clone()),
        }
    }

    /// What removing `entry` takes: a soft delete while forks reference it, else a delete plus
    /// the soft-deleted sources whose last fork this was (up the chain).
    fn removal_plan(name: &str, entry: &Arc<Entry<P::Data>>, hidden: bool) -> Vec<Removal<P::Data>> {
        if entry.refcount.load(Ordering::Acquire) > 0 {
            return vec![Removal {
                entry: entry.clone(),
                name: name.to_string(),
                full: false,
                hidden,
            }];
        }
        let mut plan = vec![Removal {
            entry: entry.clone(),
            name: name.to_string(),
            full: true,
            hidden,
        }];
        let mut current = entry.clone();
        while let Some((src_name, src)) = current.fork.clone() {
            if src.refcount.load(Ordering::Acquire) == 1 && src.is_soft_deleted() {
                plan.push(Removal {
                    entry: src.clone(),
                    name: src_name,
                    full: true,
                    hidden: true,
                });
                current = src;
            } else {
                break;
            }
        }
        plan
    }

    fn removal_changes(plan: &[Removal<P::Data>]) -> impl Iterator<Item = Change<'static>> + '_ {
        plan.iter().map(|r| {
            if r.full {
                Change::Delete { id: r.entry.id }
            } else {
                Change::SoftDelete {
                    id: r.entry.id,
                    hidden: r.hidden,
                }
            }
        })
    }

    /// Applies a committed removal plan to memory.
    fn apply_removals(&self, plan: &[Removal<P::Data>]) {
        let mut map = self.streams.write();
        for r in plan {
            let mapped = map.get(&r.name).is_some_and(|m| Arc::ptr_eq(m, &r.entry));
            if r.full {
                r.entry.state.lock().removed = true;
                if let Some((_, src)) = &r.entry.fork {
                    src.refcount.fetch_sub(1, Ordering::AcqRel);
                }
                self.store.forget(r.entry.id, &r.entry.data);
                if mapped {
                    map.remove(&r.name);
                }
            } else {
                r.entry.soft_deleted.store(true, Ordering::Release);
                r.entry.hidden.store(r.hidden, Ordering::Release);
                if r.hidden && mapped {
                    map.remove(&r.name);
                }
            }
        }
    }

    /// Removes `entry` (named `name`) now, committing the plan; used at open for orphans too.
    pub(crate) fn remove(&self, name: &str, entry: &Arc<Entry<P::Data>>, hidden: bool) -> Result<(), EngineError> {
        let plan = Self::removal_plan(name, entry, hidden);
        let changes: Vec<Change<'_>> = Self::removal_changes(&plan).collect();
        self.store.commit(&Batch {
            changes: &changes,
            after: &[],
        })?;
        self.apply_removals(&plan);
        Ok(())
    }

    pub(crate) fn create(&self, req: &CreateRequest<'_>) -> Result<CreateOutcome, EngineError> {
        let name = req.name.as_str();
        let _w = self.writer.lock();
        let existing = self.streams.read().get(name).cloned();
        let mut removal = Vec::new();
        if let Some(ex) = &existing {
            if ex.is_soft_deleted() {
                return Err(EngineError::new(
                    ErrorCode::CONFIG_CONFLICT,
                    format!("stream '{name}' was deleted and is still referenced by forks"),
                ));
            }
            if ex.expired(req.now_ms) {
                // An expired stream gives its name up in the same commit as the new one.
                removal = Self::removal_plan(name, ex, true);
            } else {
                let st = ex.state.lock();
                let view = rules::Existing {
                    content_type: &ex.content_type,
                    lifetime: ex.lifetime,
                    closed: st.closed,
                    fork: ex.fork.as_ref().map(|(n, src)| (n.as_str(), ex.base, src.lifetime)),
                };
                if rules::create_matches(&view, req) {
                    return Ok(CreateOutcome {
                        created: false,
                        meta: ex.meta_of(&st),
                    });
                }
                return Err(EngineError::new(
                    ErrorCode::CONFIG_CONFLICT,
                    format!("stream '{name}' exists with a different configuration"),
                ));
            }
        }
        let (content_type, lifetime, fork, base) = match req.fork {
            ROption::RNone => {
                let ct = self.intern(req.content_type.map(|c| c.as_str()).unwrap_or("application/octet-stream"));
                (ct, req.lifetime, None, 0)
            }
            ROption::RSome(f) => {
                let src_name = f.source.as_str();
                let found = self.streams.read().get(src_name).cloned();
                let view = found.as_ref().map(|s| rules::ForkSource {
                    content_type: &s.content_type,
                    tail: s.tail(),
                    soft_deleted: s.is_soft_deleted(),
                    expired: s.expired(req.now_ms),
                });
                rules::check_fork_source(src_name, view, f.position, req.content_type.map(|c| c.as_str()).into_option())?;
                let src = found.expect("checked");
                let lifetime = ttl::fork_lifetime(src.lifetime, req.lifetime);
                (src.content_type.clone(), lifetime, Some((src_name.to_string(), src)), f.position)
            }
        };
        let initial = req.initial.as_slice();
        self.limits.check_stream(base, initial.len() as u64)?;
        self.store.admit(initial.len() as u64)?;
        let id = self.store.allocate_id(name);
        let mut changes: Vec<Change<'_>> = Self::removal_changes(&removal).collect();
        changes.push(Change::Create(Created {
            id,
            name,
            content_type: &content_type,
            lifetime,
            closed: req.closed,
            fork: fork.as_ref().map(|(_, src)| (src.id, base)),
            initial,
        }));
        let receipts = self.store.commit(&Batch {
            changes: &changes,
            after: &[],
        })?;
        if !removal.is_empty() {
            self.apply_removals(&removal);
        }
        let entry = Arc::new(Entry::new(id, content_type.clone(), lifetime, fork, base, P::Data::default()));
        entry.touch(req.now_ms);
        let created = changes.last().expect("the create");
        self.store
            .apply(&entry.data, created, receipts.last().expect("a receipt per change"));
        {
            let mut st = entry.state.lock();
            st.tail = base + initial.len() as u64;
            st.closed = req.closed;
        }
        if let Some((_, src)) = &entry.fork {
            src.refcount.fetch_add(1, Ordering::AcqRel);
        }
        let meta = entry.meta();
        self.streams.write().insert(name.to_string(), entry);
        Ok(CreateOutcome { created: true, meta })
    }

    /// Appends a group: each request decided in order against the state the earlier ones of
    /// the group leave (the overlay), all accepted ones committed together.
    pub(crate) fn append_many(&self, reqs: &[AppendRequest<'_>]) -> Vec<Result<AppendOutcome, EngineError>> {
        let _w = self.writer.lock();
        let mut overlay: Vec<Touched<P::Data>> = Vec::new();
        let mut pending: Vec<Pending<P::Data>> = Vec::new();
        let mut results: Vec<Result<AppendOutcome, EngineError>> = Vec::with_capacity(reqs.len());
        for (index, req) in reqs.iter().enumerate() {
            let entry = match self.live(req.name.as_str(), req.now_ms) {
                Ok(e) => e,
                Err(e) => {
                    results.push(Err(e));
                    continue;
                }
            };
            let slot = match overlay.iter().position(|t| Arc::ptr_eq(&t.entry, &entry)) {
                Some(i) => i,
                None => {
                    let st = entry.state.lock();
                    if st.removed {
                        drop(st);
                        results.push(Err(EngineError::not_found(req.name.as_str())));
                        continue;
                    }
                    let (writer, tail) = (st.writer(), st.tail);
                    drop(st);
                    overlay.push(Touched {
                        entry: entry.clone(),
                        writer,
                        tail,
                    });
                    overlay.len() - 1
                }
            };
            let Touched { writer, tail, .. } = &mut overlay[slot];
            let stamp = req.producer.into_option().map(|p| ProducerStamp {
                id: p.id.as_str().to_string(),
                epoch: p.epoch,
                seq: p.seq,
            });
            let check = AppendCheck {
                stream_content_type: &entry.content_type,
                content_type: req.content_type.map(|c| c.as_str()).into_option(),
                body_is_empty: req.body.is_empty(),
                close: req.close,
                producer: stamp.as_ref(),
                stream_seq: req.stream_seq.map(|s| s.as_str()).into_option(),
            };
            entry.touch(req.now_ms);
            match rules::check_append(writer, &check) {
                Ok(AppendDecision::Accept(update)) => {
                    let add = req.body.len() as u64;
                    if let Err(e) = self.limits.check_stream(*tail, add).and_then(|_| self.store.admit(add)) {
                        results.push(Err(e));
                        continue;
                    }
                    let start = *tail;
                    *tail += add;
                    writer.apply(&update);
                    results.push(Ok(AppendOutcome {
                        duplicate: false,
                        tail: *tail,
                        closed: writer.closed,
                        producer: update.producer.as_ref().map(|(_, p)| ack(*p)).into(),
                    }));
                    pending.push(Pending {
                        index,
                        entry,
                        start,
                        update,
                    });
                }
                Ok(AppendDecision::Duplicate { producer }) => results.push(Ok(AppendOutcome {
                    duplicate: true,
                    tail: *tail,
                    closed: writer.closed,
                    producer: producer.map(ack).into(),
                })),
                Err(r) => results.push(Err(EngineError::from_rejection(r, *tail, writer.closed))),
            }
        }
        if pending.is_empty() {
            return results;
        }
        let changes: Vec<Change<'_>> = pending
            .iter()
            .map(|p| {
                Change::Append(Appended {
                    id: p.entry.id,
                    start: p.start,
                    body: reqs[p.index].body.as_slice(),
                    update: &p.update,
                })
            })
            .collect();
        let after: Vec<After<'_>> = overlay
            .iter()
            .filter(|t| pending.iter().any(|p| Arc::ptr_eq(&p.entry, &t.entry)))
            .map(|t| After {
                id: t.entry.id,
                tail: t.tail,
                writer: &t.writer,
            })
            .collect();
        match self.store.commit(&Batch {
            changes: &changes,
            after: &after,
        }) {
            Ok(receipts) => {
                for ((p, change), receipt) in pending.iter().zip(&changes).zip(&receipts) {
                    // Data first, then the tail that makes it visible to readers.
                    self.store.apply(&p.entry.data, change, receipt);
                    let mut st = p.entry.state.lock();
                    st.tail = p.start + reqs[p.index].body.len() as u64;
                    st.apply(&p.update);
                }
            }
            Err(e) => {
                for p in &pending {
                    results[p.index] = Err(e.clone());
                }
            }
        }
        results
    }

    pub(crate) fn delete(&self, req: &DeleteRequest<'_>) -> Result<(), EngineError> {
        let name = req.name.as_str();
        let _w = self.writer.lock();
        let Some(entry) = self.streams.read().get(name).cloned() else {
            return Err(EngineError::not_found(name));
        };
        if entry.is_soft_deleted() {
            return Err(EngineError::gone(name));
        }
        let expired = entry.expired(req.now_ms);
        if req.only_if_expired && !expired {
            return Ok(());
        }
        self.remove(name, &entry, expired)?;
        if expired && !req.only_if_expired {
            return Err(EngineError::not_found(name));
        }
        Ok(())
    }
}
