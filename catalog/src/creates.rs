//! Creates of new names grouped into one commit per store unit (one fsync for many creates in
//! the durable stores that ask for it): a create queues itself; the first to find no leader
//! becomes it, decides and commits what is queued (in order, as one group), answers each
//! waiting create, and hands the queue to the first create queued meanwhile. Creates that are not plain new names (forks, large initial bodies,
//! names that exist or repeat in the group) are decided alone, in their turn.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use abi_stable::std_types::{ROption, RSlice, RStr};
use durable_streams_core::abi::*;
use parking_lot::{Condvar, Mutex};

use crate::catalog::Catalog;
use crate::entry::Entry;
use crate::persist::*;

/// How long a new leader lets concurrent creates join its first group.
const GATHER: std::time::Duration = std::time::Duration::from_micros(300);

/// Initial bodies up to this size are copied into the queue; larger creates go alone.
const GROUP_INITIAL_MAX: usize = 64 * 1024;

/// A create waiting in the queue, and its answer once decided.
pub(crate) struct Slot {
    name: String,
    content_type: Option<String>,
    lifetime: Lifetime,
    closed: bool,
    initial: Vec<u8>,
    now_ms: u64,
    answer: Mutex<Option<Result<CreateOutcome, EngineError>>>,
    answered: Condvar,
    /// Set once answered (the answer itself is taken by the waiting create).
    done: AtomicBool,
    /// Set when the previous leader hands the queue to this create.
    promoted: AtomicBool,
}

impl Slot {
    fn new(req: &CreateRequest<'_>) -> Slot {
        Slot {
            name: req.name.as_str().to_string(),
            content_type: req.content_type.map(|c| c.as_str().to_string()).into_option(),
            lifetime: req.lifetime,
            closed: req.closed,
            initial: req.initial.as_slice().to_vec(),
            now_ms: req.now_ms,
            answer: Mutex::new(None),
            answered: Condvar::new(),
            done: AtomicBool::new(false),
            promoted: AtomicBool::new(false),
        }
    }

    /// Waits until the leader answers (`Some`), or hands the queue to this create (`None`).
    fn wait(&self) -> Option<Result<CreateOutcome, EngineError>> {
        let mut a = self.answer.lock();
        loop {
            if let Some(r) = a.take() {
                return Some(r);
            }
            if self.promoted.load(Ordering::Acquire) {
                return None;
            }
            self.answered.wait(&mut a);
        }
    }

    /// Makes this waiting create the leader.
    fn promote(&self) {
        let _a = self.answer.lock();
        self.promoted.store(true, Ordering::Release);
        self.answered.notify_one();
    }

    fn request(&self) -> CreateRequest<'_> {
        CreateRequest {
            name: RStr::from(self.name.as_str()),
            content_type: self.content_type.as_deref().map(RStr::from).into(),
            lifetime: self.lifetime,
            closed: self.closed,
            initial: RSlice::from(self.initial.as_slice()),
            fork: ROption::RNone,
            now_ms: self.now_ms,
        }
    }

    fn answer(&self, r: Result<CreateOutcome, EngineError>) {
        self.done.store(true, Ordering::Release);
        *self.answer.lock() = Some(r);
        self.answered.notify_one();
    }
}

/// The creates waiting to be decided, and whether a create is deciding them (the leader).
#[derive(Default)]
pub(crate) struct Queue {
    state: Mutex<Waiting>,
}

#[derive(Default)]
struct Waiting {
    slots: Vec<Arc<Slot>>,
    leading: bool,
}

/// The leader's hold on the queue: if the leader unwinds (a panic caught at the plugin
/// boundary), the creates it was deciding and those still queued are answered with an error
/// and the queue gets a new leader at the next create, instead of waiting forever.
struct Lead<'a> {
    queue: &'a Queue,
    batch: Vec<Arc<Slot>>,
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let rest = {
            let mut w = self.queue.state.lock();
            w.leading = false;
            std::mem::take(&mut w.slots)
        };
        for s in self.batch.iter().chain(&rest).filter(|s| !s.done.load(Ordering::Acquire)) {
            s.answer(Err(EngineError::new(ErrorCode::INTERNAL, "the create deciding this one failed")));
        }
    }
}

/// A new stream of the group, decided and waiting for its commit.
struct Member {
    slot: Arc<Slot>,
    id: u64,
    content_type: Arc<str>,
    unit: usize,
}

impl<P: Persistence> Catalog<P> {
    /// `Engine::create`: in stores that group them, plain creates join the queue; the rest
    /// are decided alone.
    pub(crate) fn create(&self, req: &CreateRequest<'_>) -> Result<CreateOutcome, EngineError> {
        if !self.store.groups_creates() || req.fork.is_some() || req.initial.len() > GROUP_INITIAL_MAX {
            return self.create_at(req, 0);
        }
        let slot = Arc::new(Slot::new(req));
        let fresh = {
            let mut w = self.creates.state.lock();
            w.slots.push(slot.clone());
            let fresh = !w.leading;
            w.leading = true;
            fresh
        };
        if !fresh {
            if let Some(r) = slot.wait() {
                return r; // a leader decided it
            }
        } else {
            // A commit costs an fsync: creates arriving meanwhile are worth a short wait.
            std::thread::sleep(GATHER);
        }
        // The leader decides one group (everything queued, its own create included), then
        // hands the queue to the first create queued meanwhile: each create waits for at most
        // the group before its own.
        let mut lead = Lead {
            queue: &self.creates,
            batch: std::mem::take(&mut self.creates.state.lock().slots),
        };
        {
            let _w = self.writer.write();
            self.create_queued(&lead.batch);
        }
        lead.batch.clear();
        {
            let mut w = self.creates.state.lock();
            match w.slots.first() {
                Some(next) => next.promote(),
                None => w.leading = false,
            }
        }
        let answer = slot.answer.lock().take();
        answer.unwrap_or_else(|| Err(EngineError::new(ErrorCode::INTERNAL, "a queued create was not answered")))
    }

    /// Decides the queued creates in order, committing runs of new names together.
    fn create_queued(&self, queued: &[Arc<Slot>]) {
        let mut group: Vec<Member> = Vec::new();
        let mut names: HashSet<&str> = HashSet::new();
        for slot in queued {
            let name = slot.name.as_str();
            if names.contains(name) || self.streams.read().contains_key(name) {
                // Decided against what the group before it leaves.
                self.commit_group(std::mem::take(&mut group));
                names.clear();
                slot.answer(self.create_locked(&slot.request(), 0));
                continue;
            }
            match self.member(slot) {
                Ok(m) => {
                    names.insert(name);
                    group.push(m);
                }
                Err(e) => slot.answer(Err(e)),
            }
        }
        self.commit_group(group);
    }

    /// A new name's create, decided: limits checked, space admitted, an id allocated.
    fn member(&self, slot: &Arc<Slot>) -> Result<Member, EngineError> {
        let content_type = self.intern(slot.content_type.as_deref().unwrap_or("application/octet-stream"));
        self.limits.check_stream(0, slot.initial.len() as u64)?;
        self.store.admit(slot.initial.len() as u64)?;
        let id = self.store.allocate_id(&slot.name);
        Ok(Member {
            slot: slot.clone(),
            id,
            content_type,
            unit: self.store.unit(id),
        })
    }

    /// Commits the group (one batch per unit, units in parallel), then makes each created
    /// stream visible; a unit whose commit fails answers its creates with the error.
    fn commit_group(&self, group: Vec<Member>) {
        if group.is_empty() {
            return;
        }
        let mut units: Vec<usize> = group.iter().map(|m| m.unit).collect();
        units.sort_unstable();
        units.dedup();
        let commit = |unit: usize| -> Result<Vec<P::Receipt>, EngineError> {
            let changes: Vec<Change<'_>> = group
                .iter()
                .filter(|m| m.unit == unit)
                .map(|m| {
                    Change::Create(Created {
                        id: m.id,
                        name: &m.slot.name,
                        content_type: &m.content_type,
                        lifetime: m.slot.lifetime,
                        closed: m.slot.closed,
                        fork: None,
                        initial: &m.slot.initial,
                    })
                })
                .collect();
            self.store.commit(&Batch {
                changes: &changes,
                after: &[],
            })
        };
        let outcomes = crate::group::per_unit(&units, commit);
        for (unit, outcome) in outcomes {
            let members = group.iter().filter(|m| m.unit == unit);
            match outcome {
                Ok(receipts) => {
                    for (m, receipt) in members.zip(&receipts) {
                        m.slot.answer(Ok(self.install(m, receipt)));
                    }
                }
                Err(e) => members.for_each(|m| m.slot.answer(Err(e.clone()))),
            }
        }
    }

    /// Makes a committed create visible.
    fn install(&self, m: &Member, receipt: &P::Receipt) -> CreateOutcome {
        let s = &m.slot;
        let entry = Arc::new(Entry::new(m.id, m.content_type.clone(), s.lifetime, None, 0, P::Data::default()));
        entry.touch(s.now_ms);
        let change = Change::Create(Created {
            id: m.id,
            name: &s.name,
            content_type: &m.content_type,
            lifetime: s.lifetime,
            closed: s.closed,
            fork: None,
            initial: &s.initial,
        });
        P::apply(&entry.data, &change, receipt);
        {
            let mut st = entry.state.lock();
            st.tail = s.initial.len() as u64;
            st.closed = s.closed;
        }
        self.stored.fetch_add(s.initial.len() as u64, Ordering::Relaxed);
        let meta = entry.meta();
        self.streams.write().insert(s.name.clone(), entry);
        CreateOutcome { created: true, meta }
    }
}
