//! Appends: a group of requests decided in order against the state the earlier ones leave (the
//! overlay), with the rules of `durable_streams_core::rules`, then committed together (one batch
//! per commit unit of the store, in parallel, each succeeding or failing alone). Memory changes
//! only after a commit: the data first, then the tail that makes it visible.

use std::sync::Arc;

use durable_streams_core::abi::*;
use durable_streams_core::producer::{ProducerStamp, ProducerState};
use durable_streams_core::rules::{self, AppendCheck, AppendDecision, StateUpdate, WriterState};
use smallvec::SmallVec;

use crate::catalog::Catalog;
use crate::entry::Entry;
use crate::persist::*;

/// A stream the group touches, with its writer state and tail as the group leaves them (of the
/// producers, those the group's appends named: see `State::writer_for`).
struct Touched<D> {
    entry: Arc<Entry<D>>,
    writer: WriterState,
    tail: u64,
}

/// The streams a group touches (inline room for one: a group of one append allocates nothing).
type Overlay<D> = SmallVec<[Touched<D>; 1]>;

/// One accepted append, until its commit answers.
struct Pending<D> {
    index: usize,
    entry: Arc<Entry<D>>,
    start: u64,
    update: StateUpdate,
    unit: usize,
}

/// A decided request: its answer, and the append to commit if it was accepted.
type Decided<D> = (AppendOutcome, Option<Pending<D>>);

fn ack(p: ProducerState) -> ProducerAck {
    ProducerAck {
        epoch: p.epoch,
        seq: p.last_seq,
    }
}

/// Each request's answer, in request order (inline room for one: a single append allocates none).
pub(crate) type Answers = SmallVec<[Result<AppendOutcome, EngineError>; 1]>;

/// What committing each unit gave.
pub(crate) type UnitOutcomes<R> = SmallVec<[(usize, Result<R, EngineError>); 1]>;

/// Runs `commit` for each of `units` (in parallel when there are several: a store's units commit
/// independently) and answers each unit's outcome.
pub(crate) fn per_unit<R: Send>(units: &[usize], commit: impl Fn(usize) -> Result<R, EngineError> + Sync) -> UnitOutcomes<R> {
    if let [unit] = units {
        return smallvec::smallvec![(*unit, commit(*unit))];
    }
    let commit = &commit;
    // The calling thread commits the first unit itself: one thread fewer to start per group.
    let (first, rest) = units.split_first().expect("several units");
    std::thread::scope(|scope| {
        let handles: Vec<_> = rest.iter().map(|&u| (u, scope.spawn(move || commit(u)))).collect();
        // A panic here is an error of this unit, as it is when a spawned unit's commit panics.
        let own = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| commit(*first)))
            .unwrap_or_else(|_| Err(EngineError::new(ErrorCode::INTERNAL, "a commit panicked")));
        let mut out: UnitOutcomes<R> = smallvec::smallvec![(*first, own)];
        out.extend(handles.into_iter().map(|(u, h)| {
            let r = h
                .join()
                .unwrap_or_else(|_| Err(EngineError::new(ErrorCode::INTERNAL, "a commit panicked")));
            (u, r)
        }));
        out
    })
}

impl<P: Persistence> Catalog<P> {
    pub(crate) fn append_many(&self, reqs: &[AppendRequest<'_>]) -> Answers {
        if let [req] = reqs {
            if self.store.concurrent_appends() {
                // One append: appends to other streams go on beside it; creates, deletes and
                // groups wait for it.
                let _shared = self.writer.read();
                let entry = match self.live(req.name.as_str(), req.now_ms) {
                    Ok(e) => e,
                    Err(e) => return smallvec::smallvec![Err(e)],
                };
                let _one = entry.appending.lock();
                return self.append_locked(reqs);
            }
        }
        let _w = self.writer.write();
        self.append_locked(reqs)
    }

    /// [`Catalog::append_many`] with the mutation lock held.
    fn append_locked(&self, reqs: &[AppendRequest<'_>]) -> Answers {
        let mut overlay: Overlay<P::Data> = SmallVec::new();
        let mut pending: SmallVec<[Pending<P::Data>; 1]> = SmallVec::new();
        let mut results = Answers::with_capacity(reqs.len());
        for (index, req) in reqs.iter().enumerate() {
            match self.decide(index, req, &mut overlay) {
                Ok((outcome, accepted)) => {
                    if let Some(p) = accepted {
                        pending.push(p);
                    }
                    results.push(Ok(outcome));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        if pending.is_empty() {
            return results;
        }
        let mut units: SmallVec<[usize; 2]> = SmallVec::new();
        for p in &pending {
            if !units.contains(&p.unit) {
                units.push(p.unit);
            }
        }
        units.sort_unstable();
        let outcomes = per_unit(&units, |unit| self.commit_unit(reqs, &pending, &overlay, unit));
        for (unit, outcome) in outcomes {
            if let Err(e) = outcome {
                for p in pending.iter().filter(|p| p.unit == unit) {
                    results[p.index] = Err(e.clone());
                }
            }
        }
        results
    }

    /// Decides one request against the overlay: the answer, and the append to commit if any.
    fn decide(&self, index: usize, req: &AppendRequest<'_>, overlay: &mut Overlay<P::Data>) -> Result<Decided<P::Data>, EngineError> {
        let entry = self.live(req.name.as_str(), req.now_ms)?;
        let producer = req.producer.map(|p| p.id.as_str()).into_option();
        let slot = match overlay.iter().position(|t| Arc::ptr_eq(&t.entry, &entry)) {
            Some(i) => {
                // A producer this group has not named on the stream yet: its committed state
                // joins the overlay (the committed state does not change while the group runs).
                if let Some(id) = producer {
                    let writer = &mut overlay[i].writer;
                    if !writer.producers.contains_key(id) {
                        if let Some(known) = entry.state.lock().producer(id) {
                            writer.producers.insert(id.to_string(), known);
                        }
                    }
                }
                i
            }
            None => {
                let (writer, tail) = {
                    let st = entry.state.lock();
                    if st.removed {
                        return Err(EngineError::not_found(req.name.as_str()));
                    }
                    (st.writer_for(producer), st.tail)
                };
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
                self.limits.check_stream(*tail, add)?;
                self.store.admit(add)?;
                let start = *tail;
                *tail += add;
                writer.apply(&update);
                let outcome = AppendOutcome {
                    duplicate: false,
                    tail: *tail,
                    closed: writer.closed,
                    producer: update.producer.as_ref().map(|(_, p)| ack(*p)).into(),
                };
                let unit = self.store.unit(entry.id);
                Ok((
                    outcome,
                    Some(Pending {
                        index,
                        entry,
                        start,
                        update,
                        unit,
                    }),
                ))
            }
            Ok(AppendDecision::Duplicate { producer }) => Ok((
                AppendOutcome {
                    duplicate: true,
                    tail: *tail,
                    closed: writer.closed,
                    producer: producer.map(ack).into(),
                },
                None,
            )),
            Err(r) => Err(EngineError::from_rejection(r, *tail, writer.closed)),
        }
    }

    /// Commits the appends of one unit and applies them to memory.
    fn commit_unit(
        &self,
        reqs: &[AppendRequest<'_>],
        pending: &[Pending<P::Data>],
        overlay: &[Touched<P::Data>],
        unit: usize,
    ) -> Result<(), EngineError> {
        // (Pushed one by one: a group is most often one append, and a push into inline room is
        // cheaper than a collect's size-hinted extend.)
        let mut mine: SmallVec<[&Pending<P::Data>; 1]> = SmallVec::new();
        let mut changes: SmallVec<[Change<'_>; 1]> = SmallVec::new();
        for p in pending.iter().filter(|p| p.unit == unit) {
            mine.push(p);
            changes.push(Change::Append(Appended {
                id: p.entry.id,
                start: p.start,
                body: reqs[p.index].body.as_slice(),
                update: &p.update,
            }));
        }
        // A store that keeps state gets each stream's whole writer state: the committed one
        // with this unit's updates applied in order (the overlay holds only the producers named).
        let mut whole: SmallVec<[(u64, u64, WriterState); 1]> = SmallVec::new();
        if self.store.keeps_writer_state() {
            for t in overlay.iter().filter(|t| mine.iter().any(|p| Arc::ptr_eq(&p.entry, &t.entry))) {
                let mut writer = t.entry.state.lock().writer();
                for p in mine.iter().filter(|p| Arc::ptr_eq(&p.entry, &t.entry)) {
                    writer.apply(&p.update);
                }
                whole.push((t.entry.id, t.tail, writer));
            }
        }
        let mut after: SmallVec<[After<'_>; 1]> = SmallVec::new();
        for (id, tail, writer) in &whole {
            after.push(After {
                id: *id,
                tail: *tail,
                writer,
            });
        }
        let receipts = self.store.commit(&Batch {
            changes: &changes,
            after: &after,
        })?;
        for ((p, change), receipt) in mine.iter().zip(&changes).zip(&receipts) {
            let added = reqs[p.index].body.len() as u64;
            self.stored.fetch_add(added, std::sync::atomic::Ordering::Relaxed);
            P::apply(&p.entry.data, change, receipt);
            let mut st = p.entry.state.lock();
            st.tail = p.start + reqs[p.index].body.len() as u64;
            st.apply(&p.update);
        }
        Ok(())
    }
}
