//! Create (with forks), delete (soft while forks read it, cascading to sources), and the fork
//! counts they keep: every change is a compare-and-set on a catalogue record.

use abi_stable::std_types::ROption;
use bytes::Bytes;
use durable_streams_core::abi::*;
use durable_streams_core::rules::{self};
use durable_streams_core::ttl;

use super::{BoxFut, JetStreamStorage};
use crate::catalog::{self, hash_of, ForkRef, Hold, Put, Record, State};
use crate::cluster::unavailable;
use crate::data::{self, Appended, Stored, Tail};

/// A change to a source's forks.
pub(super) enum ForkChange<'a> {
    /// A fork named `name` (incarnation `gen`) at `position` is being made: it starts to be
    /// readable at the source's retained start (or its position, when lower).
    Add { name: &'a str, gen: u64, position: u64 },
    /// That fork is gone for good.
    Remove { name: &'a str, gen: u64 },
}

impl JetStreamStorage {
    /// Changes a source's fork count and holds by compare-and-set; returns the record written.
    pub(super) async fn adjust_forks(&self, source: &str, change: ForkChange<'_>) -> Result<Record, EngineError> {
        for _ in 0..50 {
            let Some((mut rec, seq)) = catalog::get(&self.c, source).await? else {
                return Err(EngineError::new(
                    ErrorCode::FORK_SOURCE_NOT_FOUND,
                    format!("fork source '{source}' does not exist"),
                ));
            };
            match change {
                ForkChange::Add { name, gen, position } => {
                    rec.forks += 1;
                    rec.holds.push(Hold {
                        name: name.to_string(),
                        gen,
                        position,
                        start: rec.start.min(position),
                    });
                }
                ForkChange::Remove { name, gen } => {
                    rec.forks = rec.forks.saturating_sub(1);
                    rec.holds.retain(|h| !(h.name == name && h.gen == gen));
                }
            }
            if let Put::Done = catalog::put(&self.c, &rec, seq).await? {
                self.forget(source);
                return Ok(rec);
            }
        }
        Err(unavailable(format!("fork count of '{source}' kept changing")))
    }

    /// Deletes a stream: a delete marker on its data (appends stop), then soft delete while
    /// forks read it, else a tombstone, the data purged, and the source's fork count lowered
    /// (collecting a soft-deleted source whose last fork this was).
    pub(super) fn remove<'a>(&'a self, rec: Record, mut seq: u64) -> BoxFut<'a, Result<(), EngineError>> {
        Box::pin(async move {
            let subj = self.subject(&rec);
            let mut rec = rec;
            loop {
                let t = data::tail(&self.c, &subj).await?;
                if t.state.deleted.is_some() || t.seq == 0 {
                    break;
                }
                let marker = Stored {
                    n: t.state.n + 1,
                    deleted: Some(rec.forks > 0),
                    ..t.state.clone()
                };
                if let Appended::Stored(_) = data::append(&self.c, &subj, &t, &marker, Bytes::new(), &rec.name).await? {
                    break;
                }
            }
            self.forget(&rec.name);
            loop {
                let next_state = if rec.forks > 0 { State::SoftDeleted } else { State::Deleted };
                let written = Record {
                    state: next_state,
                    ..rec.clone()
                };
                match catalog::put(&self.c, &written, seq).await? {
                    Put::Done => break,
                    Put::Conflict => match catalog::get(&self.c, &rec.name).await? {
                        Some((r, s)) if r.gen == rec.gen && r.state != State::Deleted => {
                            rec = r;
                            seq = s;
                        }
                        _ => return Ok(()),
                    },
                }
            }
            if rec.forks > 0 {
                return Ok(());
            }
            let _ = data::purge(&self.c, &subj).await;
            if let Some(f) = &rec.fork {
                let gone = ForkChange::Remove {
                    name: &rec.name,
                    gen: rec.gen,
                };
                let src = self.adjust_forks(&f.source, gone).await;
                if let Ok(src) = src {
                    if src.state == State::SoftDeleted && src.forks == 0 && src.gen == f.source_gen {
                        if let Some((r, s)) = catalog::get(&self.c, &f.source).await? {
                            if r.gen == f.source_gen && r.state == State::SoftDeleted && r.forks == 0 {
                                self.remove(r, s).await?;
                            }
                        }
                    }
                }
            }
            Ok(())
        })
    }

    pub(super) async fn create(&self, req: &CreateRequest<'_>) -> Result<CreateOutcome, EngineError> {
        self.create_at(req, 0).await
    }

    /// [`JetStreamStorage::create`] of a stream whose offsets start at `at` (a restore): its
    /// tail and earliest retained position are `at` when it has no bytes below.
    pub(super) async fn create_at(&self, req: &CreateRequest<'_>, at: u64) -> Result<CreateOutcome, EngineError> {
        let name = req.name.as_str();
        let now = req.now_ms;
        // A name this host holds no record of is most likely new: the first round writes as if
        // the catalogue had none (one round trip fewer); if it has one after all, that write is
        // refused, its data subject purged, and the next round reads the record.
        let mut assume_new = req.fork.is_none() && !self.cache.lock().contains_key(name);
        for _ in 0..10 {
            let current = if assume_new { None } else { catalog::get(&self.c, name).await? };
            assume_new = false;
            let expected = match current {
                None => 0,
                Some((rec, seq)) => match rec.state {
                    State::Deleted => seq,
                    State::SoftDeleted => {
                        return Err(EngineError::new(
                            ErrorCode::CONFIG_CONFLICT,
                            "the stream was deleted but forks still read it",
                        ))
                    }
                    State::Live if Self::expired(&rec, self.local_access(name), now) => {
                        self.remove(rec, seq).await?;
                        continue;
                    }
                    State::Live => return self.existing(req, rec).await,
                },
            };
            let gen = rand::random::<u64>();
            let mut start = 0;
            let mut content_type = req
                .content_type
                .map(|c| c.to_string())
                .unwrap_or_else(|| "application/octet-stream".into());
            let mut lifetime = req.lifetime;
            let mut fork = None;
            if let ROption::RSome(f) = req.fork {
                let src = catalog::get(&self.c, f.source.as_str())
                    .await?
                    .filter(|(r, _)| r.state != State::Deleted);
                let src_tail = match &src {
                    Some((r, _)) if r.state == State::Live => Some(data::tail(&self.c, &self.subject(r)).await?),
                    _ => None,
                };
                let view = src.as_ref().map(|(r, _)| rules::ForkSource {
                    content_type: &r.content_type,
                    tail: src_tail.as_ref().map_or(0, |t| t.state.tail),
                    soft_deleted: r.state == State::SoftDeleted,
                    expired: Self::expired(r, self.local_access(&r.name), now)
                        || src_tail.as_ref().is_some_and(|t| t.seq == 0 || t.state.deleted.is_some()),
                });
                rules::check_fork_source(
                    f.source.as_str(),
                    view,
                    f.position,
                    req.content_type.map(|c| c.as_str()).into_option(),
                )?;
                let (src, _) = src.expect("checked by check_fork_source");
                lifetime = ttl::fork_lifetime(src.lifetime(), req.lifetime);
                if req.content_type.is_none() {
                    content_type = src.content_type.clone();
                }
                let add = ForkChange::Add {
                    name,
                    gen,
                    position: f.position,
                };
                let src = self.adjust_forks(&src.name, add).await?;
                // Bytes the source no longer retains are not inherited.
                start = src.start.min(f.position);
                fork = Some(ForkRef {
                    source: src.name.clone(),
                    source_gen: src.gen,
                    source_shard: src.shard,
                    position: f.position,
                    source_base: src.base(),
                });
            }
            let undo_fork = |fork: &Option<ForkRef>| {
                let f = fork.clone();
                async move {
                    if let Some(f) = f {
                        let _ = self.adjust_forks(&f.source, ForkChange::Remove { name, gen }).await;
                    }
                }
            };
            let base = fork.as_ref().map_or(0, |f| f.position);
            let start = start.max(at);
            let initial = req.initial.as_slice();
            if let Err(e) = self.check_size(base, initial.len() as u64) {
                undo_fork(&fork).await;
                return Err(e);
            }
            let hash = hash_of(name);
            let shard = (u64::from_str_radix(&hash[..8], 16).unwrap_or(0) % u64::from(self.c.cfg.shards)) as u32;
            let rec = Record {
                name: name.to_string(),
                state: State::Live,
                gen,
                shard,
                content_type,
                ttl_secs: lifetime.ttl_secs.into_option(),
                expires_at_ms: lifetime.expires_at_ms.into_option(),
                access_ms: now,
                fork: fork.clone(),
                forks: 0,
                start,
                holds: Vec::new(),
            };
            // The first message exists for every stream (a purged subject then means deleted).
            let subj = self.subject(&rec);
            let empty = Tail {
                state: Stored {
                    tail: base.max(start),
                    start,
                    ..Default::default()
                },
                seq: 0,
            };
            let writer = durable_streams_core::rules::WriterState {
                closed: req.closed,
                ..Default::default()
            };
            let first = empty.state.next(&writer, initial.len() as u64);
            let stored = data::append(&self.c, &subj, &empty, &first, Bytes::copy_from_slice(initial), name).await;
            let seq = match stored {
                Ok(Appended::Stored(seq)) => seq,
                Ok(Appended::Conflict) | Err(_) => {
                    undo_fork(&fork).await;
                    return Err(stored.err().unwrap_or_else(|| unavailable("a fresh data subject was not empty")));
                }
            };
            match catalog::put(&self.c, &rec, expected).await {
                Ok(Put::Done) => {
                    let tail = Tail { state: first, seq };
                    let meta = Self::meta(&rec, &tail);
                    self.remember(rec);
                    return Ok(CreateOutcome { created: true, meta });
                }
                other => {
                    // Another host created the name first (or the outcome is unknown): undo ours.
                    let _ = data::purge(&self.c, &subj).await;
                    undo_fork(&fork).await;
                    other?;
                }
            }
        }
        Err(unavailable(format!("stream '{name}' kept changing while it was created")))
    }

    pub(super) async fn existing(&self, req: &CreateRequest<'_>, rec: Record) -> Result<CreateOutcome, EngineError> {
        let tail = data::tail(&self.c, &self.subject(&rec)).await?;
        let source_lifetime = match &rec.fork {
            Some(f) => catalog::get(&self.c, &f.source)
                .await?
                .map(|(r, _)| r.lifetime())
                .unwrap_or_default(),
            None => Lifetime::default(),
        };
        let view = rules::Existing {
            content_type: &rec.content_type,
            lifetime: rec.lifetime(),
            closed: tail.state.closed,
            fork: rec.fork.as_ref().map(|f| (f.source.as_str(), f.position, source_lifetime)),
        };
        if !rules::create_matches(&view, req) {
            return Err(EngineError::new(
                ErrorCode::CONFIG_CONFLICT,
                "stream exists with a different configuration",
            ));
        }
        let meta = Self::meta(&rec, &tail);
        self.remember(rec);
        Ok(CreateOutcome { created: false, meta })
    }

    pub(super) async fn delete(&self, req: &DeleteRequest<'_>) -> Result<(), EngineError> {
        let name = req.name.as_str();
        let Some((rec, seq)) = catalog::get(&self.c, name).await? else {
            return Err(EngineError::not_found(name));
        };
        match rec.state {
            State::Deleted => return Err(EngineError::not_found(name)),
            State::SoftDeleted => return Err(EngineError::gone(name)),
            State::Live => {}
        }
        let expired = Self::expired(&rec, self.local_access(name), req.now_ms);
        if req.only_if_expired && !self.sweepable(&rec, req.now_ms) {
            return Ok(());
        }
        self.remove(rec, seq).await?;
        if expired && !req.only_if_expired {
            return Err(EngineError::not_found(name));
        }
        Ok(())
    }

    /// The sweeper's test, on a record read from the cluster: expired, never early (see
    /// [`JetStreamStorage::expired`]).
    pub(super) fn sweepable(&self, rec: &Record, now: u64) -> bool {
        Self::expired(rec, self.local_access(&rec.name), now)
    }
}
