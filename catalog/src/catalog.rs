//! `Catalog<P>`: the stream catalogue of a local engine and the rules of a stream's life over it
//! (create-or-match, forks and their reference counts, soft delete and its cascade, expiry).
//! Decides changes and hands them to the store; changes memory only after the commit. Appends
//! are `group`'s, grouped creates `creates`'.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use abi_stable::std_types::ROption;
use durable_streams_core::abi::*;
use durable_streams_core::limits::Limits;
use durable_streams_core::rules;
use durable_streams_core::ttl;
use parking_lot::{Mutex, RwLock};

use crate::entry::Entry;
use crate::persist::*;

/// A complete engine over the store `P`.
pub struct Catalog<P: Persistence> {
    pub(crate) store: P,
    /// Serializes mutations (decide, commit, apply): held exclusively, or shared by single
    /// appends of stores with concurrent appends (each holding its stream's `appending` lock).
    pub(crate) writer: RwLock<()>,
    pub(crate) streams: RwLock<BTreeMap<String, Arc<Entry<P::Data>>>>,
    pub(crate) limits: Limits,
    types: Mutex<rustc_hash::FxHashMap<String, Arc<str>>>,
    /// Bytes of stream data held (own bytes of every stream, deleted ones kept for forks too).
    pub(crate) stored: AtomicU64,
    /// See `OpenOptions::access_slack_ms`.
    pub(crate) access_slack_ms: u64,
    /// Creates waiting for the mutation lock (see `creates`).
    pub(crate) creates: crate::creates::Queue,
}

/// Streams leaving the catalogue: soft (kept for forks, name hidden or not) or for good.
struct Removal<D> {
    entry: Arc<Entry<D>>,
    name: String,
    full: bool,
    hidden: bool,
}

impl<P: Persistence> Catalog<P> {
    pub(crate) fn with_streams(store: P, streams: BTreeMap<String, Arc<Entry<P::Data>>>, limits: Limits) -> Self {
        Catalog {
            store,
            writer: RwLock::new(()),
            streams: RwLock::new(streams),
            limits,
            types: Mutex::new(Default::default()),
            stored: AtomicU64::new(0),
            access_slack_ms: 0,
            creates: Default::default(),
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
                let own = {
                    let mut st = r.entry.state.lock();
                    st.removed = true;
                    st.tail.saturating_sub(r.entry.base)
                };
                self.stored.fetch_sub(own, Ordering::Relaxed);
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

    /// Commits `changes` in order: in one batch when they share a commit unit, else one by one.
    /// Returns the receipts of the changes committed and the error that stopped the rest.
    fn commit_steps(&self, changes: &[Change<'_>]) -> (Vec<P::Receipt>, Option<EngineError>) {
        let unit = |c: &Change<'_>| self.store.unit(c.id());
        if changes.windows(2).all(|w| unit(&w[0]) == unit(&w[1])) {
            return match self.store.commit(&Batch { changes, after: &[] }) {
                Ok(r) => (r, None),
                Err(e) => (Vec::new(), Some(e)),
            };
        }
        let mut done = Vec::with_capacity(changes.len());
        for c in changes {
            match self.store.commit(&Batch {
                changes: std::slice::from_ref(c),
                after: &[],
            }) {
                Ok(r) => done.extend(r),
                Err(e) => return (done, Some(e)),
            }
        }
        (done, None)
    }

    /// Removes `entry` (named `name`) now: what committed is applied even if a later step of a
    /// cascade fails (a soft-deleted stream left without forks is collected at the next open).
    pub(crate) fn remove(&self, name: &str, entry: &Arc<Entry<P::Data>>, hidden: bool) -> Result<(), EngineError> {
        let plan = Self::removal_plan(name, entry, hidden);
        let changes: Vec<Change<'_>> = Self::removal_changes(&plan).collect();
        let (done, failed) = self.commit_steps(&changes);
        self.apply_removals(&plan[..done.len()]);
        failed.map_or(Ok(()), Err)
    }

    /// A create decided alone, for a stream whose offsets start at `at` (a restore: its tail and
    /// earliest retained position are `at` when it has no bytes below).
    pub(crate) fn create_at(&self, req: &CreateRequest<'_>, at: u64) -> Result<CreateOutcome, EngineError> {
        let _w = self.writer.write();
        self.create_locked(req, at)
    }

    /// [`Catalog::create_at`] with the mutation lock held.
    pub(crate) fn create_locked(&self, req: &CreateRequest<'_>, at: u64) -> Result<CreateOutcome, EngineError> {
        let name = req.name.as_str();
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
        // A fork of trimmed data inherits only what its source still holds.
        let start = fork.as_ref().map_or(0, |(_, src)| Self::fork_start(src, base)).max(at);
        let at = changes.len() - 1;
        if start > 0 {
            changes.push(Change::Trim { id, start });
        }
        let (receipts, failed) = self.commit_steps(&changes);
        self.apply_removals(&removal[..receipts.len().min(removal.len())]);
        if let Some(e) = failed {
            return Err(e);
        }
        let entry = Arc::new(Entry::new(id, content_type.clone(), lifetime, fork, base, P::Data::default()));
        entry.touch(req.now_ms);
        for (change, receipt) in changes[at..].iter().zip(&receipts[at..]) {
            P::apply(&entry.data, change, receipt);
        }
        {
            let mut st = entry.state.lock();
            st.tail = (base + initial.len() as u64).max(start);
            st.closed = req.closed;
            st.start = start;
        }
        if let Some((_, src)) = &entry.fork {
            src.refcount.fetch_add(1, Ordering::AcqRel);
        }
        self.stored.fetch_add(initial.len() as u64, Ordering::Relaxed);
        let meta = entry.meta();
        self.streams.write().insert(name.to_string(), entry);
        Ok(CreateOutcome { created: true, meta })
    }

    pub(crate) fn delete(&self, req: &DeleteRequest<'_>) -> Result<(), EngineError> {
        let name = req.name.as_str();
        let _w = self.writer.write();
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
