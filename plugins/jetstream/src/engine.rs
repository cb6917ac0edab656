//! `JetStreamStorage`: the engine contract over the catalogue and data subjects. Every decision
//! that must hold across hosts is a compare-and-set in the cluster (create, append, delete, fork
//! counts); memory holds only a bounded cache of catalogue records and read positions.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use abi_stable::std_types::{ROption, RResult, RSlice, RStr, RString, RVec};
use bytes::Bytes;
use durable_streams_core::abi::*;
use durable_streams_core::limits::Limits;
use durable_streams_core::producer::ProducerStamp;
use durable_streams_core::rules::{self, AppendCheck, AppendDecision};
use durable_streams_core::ttl;
use futures_util::StreamExt;
use parking_lot::Mutex;

use crate::catalog::{self, hash_of, ForkRef, Put, Record, State};
use crate::cluster::{unavailable, Cluster, ClusterSettings};
use crate::data::{self, Appended, Stored, Subject, Tail};

/// A cached catalogue record with this host's view of access and read position.
struct Cached {
    rec: Record,
    /// Last access through this host (sliding TTL), ms.
    local_access: AtomicU64,
    /// (position, stream sequence at or before the message holding it).
    hint: Mutex<Option<(u64, u64)>>,
}

/// The jetstream engine.
pub struct JetStreamStorage {
    c: Cluster,
    limits: Limits,
    /// Striped per-name locks: appends to one stream through this host queue here instead of
    /// racing each other in the cluster.
    locks: Vec<Mutex<()>>,
    cache: Mutex<HashMap<String, Arc<Cached>>>,
    listening: Mutex<bool>,
}

type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

fn gone_or_missing(rec: Option<&Record>, name: &str) -> EngineError {
    match rec.map(|r| r.state) {
        Some(State::SoftDeleted) => EngineError::gone(name),
        _ => EngineError::not_found(name),
    }
}

impl JetStreamStorage {
    /// Connects to the cluster and prepares its streams.
    pub fn open(cfg: ClusterSettings, limits: Limits) -> Result<JetStreamStorage, EngineError> {
        let c = Cluster::connect(cfg)?;
        Ok(JetStreamStorage {
            c,
            limits,
            locks: (0..1024).map(|_| Mutex::new(())).collect(),
            cache: Mutex::new(HashMap::new()),
            listening: Mutex::new(false),
        })
    }

    fn lock(&self, name: &str) -> parking_lot::MutexGuard<'_, ()> {
        let h = name
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3));
        self.locks[(h % self.locks.len() as u64) as usize].lock()
    }

    fn subject(&self, rec: &Record) -> Subject {
        let hash = hash_of(&rec.name);
        Subject {
            stream: self.c.data_stream(rec.shard),
            subject: self.c.data_subject(rec.shard, &hash, rec.gen),
            id_prefix: format!("{hash}.{:016x}", rec.gen),
            base: rec.base(),
        }
    }

    fn source_subject(&self, f: &ForkRef) -> Subject {
        let hash = hash_of(&f.source);
        Subject {
            stream: self.c.data_stream(f.source_shard),
            subject: self.c.data_subject(f.source_shard, &hash, f.source_gen),
            id_prefix: format!("{hash}.{:016x}", f.source_gen),
            base: f.source_base,
        }
    }

    fn expired(rec: &Record, local_access: u64, now: u64) -> bool {
        ttl::is_expired(rec.lifetime(), rec.access_ms.max(local_access), now)
    }

    fn remember(&self, rec: Record) -> Arc<Cached> {
        let entry = Arc::new(Cached {
            local_access: AtomicU64::new(rec.access_ms),
            rec,
            hint: Mutex::new(None),
        });
        let mut cache = self.cache.lock();
        if cache.len() >= self.c.cfg.cache_streams {
            // Bounded memory: drop an arbitrary tenth (records are re-read on demand).
            let drop_n = (cache.len() / 10).max(1);
            let victims: Vec<String> = cache.keys().take(drop_n).cloned().collect();
            for v in victims {
                cache.remove(&v);
            }
        }
        cache.insert(entry.rec.name.clone(), entry.clone());
        entry
    }

    fn forget(&self, name: &str) {
        self.cache.lock().remove(name);
    }

    fn meta(rec: &Record, tail: &Tail) -> StreamMeta {
        StreamMeta {
            content_type: rec.content_type.as_str().into(),
            tail: tail.state.tail,
            closed: tail.state.closed,
            lifetime: rec.lifetime(),
            incarnation: rec.gen,
            fork_source: rec.fork.as_ref().map(|f| RString::from(f.source.as_str())).into(),
            fork_position: rec.base(),
        }
    }

    /// A live stream and its current tail: `NOT_FOUND` for absent or expired names, `GONE` for
    /// soft-deleted ones. A cached record is checked against its data subject (a delete marker,
    /// or a purged subject, means it changed elsewhere).
    async fn live(&self, name: &str, now: u64) -> Result<(Arc<Cached>, Tail), EngineError> {
        let cached = self.cache.lock().get(name).cloned();
        for fresh in [cached.is_none(), true] {
            let entry = match (&cached, fresh) {
                (Some(e), false) => e.clone(),
                _ => match catalog::get(&self.c, name).await? {
                    Some((rec, _)) if rec.state == State::Live => self.remember(rec),
                    other => {
                        self.forget(name);
                        return Err(gone_or_missing(other.as_ref().map(|(r, _)| r), name));
                    }
                },
            };
            if Self::expired(&entry.rec, entry.local_access.load(Ordering::Relaxed), now) {
                return Err(EngineError::not_found(name));
            }
            let tail = data::tail(&self.c, &self.subject(&entry.rec)).await?;
            if tail.seq != 0 && tail.state.deleted.is_none() {
                return Ok((entry, tail));
            }
            self.forget(name);
            if fresh {
                // Deleted here and the catalogue not yet updated: a delete in progress.
                return Err(EngineError::not_found(name));
            }
        }
        Err(EngineError::not_found(name))
    }

    /// Records an access for the sliding TTL: in memory always, in the cluster when the stored
    /// access is older than a quarter of the TTL (so other hosts see the stream alive).
    async fn touch(&self, entry: &Cached, now: u64) {
        entry.local_access.fetch_max(now, Ordering::Relaxed);
        let Some(ttl) = entry.rec.ttl_secs else { return };
        if now.saturating_sub(entry.rec.access_ms) < (ttl * 250).max(200) {
            return;
        }
        if let Ok(Some((mut rec, seq))) = catalog::get(&self.c, &entry.rec.name).await {
            if rec.state == State::Live && rec.gen == entry.rec.gen && rec.access_ms < now {
                rec.access_ms = now;
                if let Ok(Put::Done) = catalog::put(&self.c, &rec, seq).await {
                    self.remember(rec).local_access.fetch_max(now, Ordering::Relaxed);
                }
            }
        }
    }

    /// Changes a stream's fork count by compare-and-set; returns the record written.
    async fn adjust_forks(&self, name: &str, delta: i64) -> Result<Record, EngineError> {
        for _ in 0..50 {
            let Some((mut rec, seq)) = catalog::get(&self.c, name).await? else {
                return Err(EngineError::new(
                    ErrorCode::FORK_SOURCE_NOT_FOUND,
                    format!("fork source '{name}' does not exist"),
                ));
            };
            rec.forks = (i64::from(rec.forks) + delta).max(0) as u32;
            if let Put::Done = catalog::put(&self.c, &rec, seq).await? {
                self.forget(name);
                return Ok(rec);
            }
        }
        Err(unavailable(format!("fork count of '{name}' kept changing")))
    }

    /// Deletes a stream: a delete marker on its data (appends stop), then soft delete while
    /// forks read it, else a tombstone, the data purged, and the source's fork count lowered
    /// (collecting a soft-deleted source whose last fork this was).
    fn remove<'a>(&'a self, rec: Record, mut seq: u64) -> BoxFut<'a, Result<(), EngineError>> {
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
                let src = self.adjust_forks(&f.source, -1).await;
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

    async fn create(&self, req: &CreateRequest<'_>) -> Result<CreateOutcome, EngineError> {
        let name = req.name.as_str();
        let now = req.now_ms;
        for _ in 0..10 {
            let current = catalog::get(&self.c, name).await?;
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
                let src = self.adjust_forks(&src.name, 1).await?;
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
                        let _ = self.adjust_forks(&f.source, -1).await;
                    }
                }
            };
            let base = fork.as_ref().map_or(0, |f| f.position);
            let initial = req.initial.as_slice();
            if let Err(e) = self.check_size(base, initial.len() as u64) {
                undo_fork(&fork).await;
                return Err(e);
            }
            let gen = rand::random::<u64>();
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
            };
            // The first message exists for every stream (a purged subject then means deleted).
            let subj = self.subject(&rec);
            let empty = Tail {
                state: Stored {
                    tail: base,
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

    fn local_access(&self, name: &str) -> u64 {
        self.cache.lock().get(name).map_or(0, |e| e.local_access.load(Ordering::Relaxed))
    }

    /// A create naming a live stream: 200 when it re-confirms the configuration, else 409.
    async fn existing(&self, req: &CreateRequest<'_>, rec: Record) -> Result<CreateOutcome, EngineError> {
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

    fn check_size(&self, tail: u64, add: u64) -> Result<(), EngineError> {
        if add > self.c.max_append {
            return Err(EngineError::new(
                ErrorCode::TOO_LARGE,
                format!(
                    "an append in the jetstream mode holds at most {} bytes (the cluster's largest message less room for headers; storage.jetstream.max_append_bytes)",
                    self.c.max_append
                ),
            ));
        }
        self.limits.check_stream(tail, add)
    }

    async fn append(&self, req: &AppendRequest<'_>) -> Result<AppendOutcome, EngineError> {
        let name = req.name.as_str();
        let stamp = req.producer.map(|p| ProducerStamp {
            id: p.id.as_str().to_string(),
            epoch: p.epoch,
            seq: p.seq,
        });
        let body = Bytes::copy_from_slice(req.body.as_slice());
        for _ in 0..50 {
            let (entry, tail) = self.live(name, req.now_ms).await?;
            let check = AppendCheck {
                stream_content_type: &entry.rec.content_type,
                content_type: req.content_type.map(|c| c.as_str()).into_option(),
                body_is_empty: body.is_empty(),
                close: req.close,
                producer: stamp.as_ref().into(),
                stream_seq: req.stream_seq.map(|s| s.as_str()).into_option(),
            };
            let mut writer = tail.state.writer();
            let ack = |st: durable_streams_core::producer::ProducerState| ProducerAck {
                epoch: st.epoch,
                seq: st.last_seq,
            };
            match rules::check_append(&writer, &check) {
                Ok(AppendDecision::Accept(update)) => {
                    self.check_size(tail.state.tail, body.len() as u64)?;
                    writer.apply(&update);
                    let next = tail.state.next(&writer, body.len() as u64);
                    let subj = self.subject(&entry.rec);
                    match data::append(&self.c, &subj, &tail, &next, body.clone(), name).await? {
                        Appended::Stored(seq) => {
                            *entry.hint.lock() = Some((next.tail, seq + 1));
                            self.touch(&entry, req.now_ms).await;
                            return Ok(AppendOutcome {
                                duplicate: false,
                                tail: next.tail,
                                closed: next.closed,
                                producer: update.producer.map(|(_, st)| ack(st)).into(),
                            });
                        }
                        Appended::Conflict => continue,
                    }
                }
                Ok(AppendDecision::Duplicate { producer }) => {
                    self.touch(&entry, req.now_ms).await;
                    return Ok(AppendOutcome {
                        duplicate: true,
                        tail: tail.state.tail,
                        closed: tail.state.closed,
                        producer: producer.map(ack).into(),
                    });
                }
                Err(rejection) => return Err(EngineError::from_rejection(rejection, tail.state.tail, tail.state.closed)),
            }
        }
        Err(unavailable(format!(
            "stream '{name}' is appended to too fast by other hosts; retry"
        )))
    }

    /// Reads bytes below a fork's position from its source chain.
    fn read_inherited<'a>(
        &'a self,
        f: &'a ForkRef,
        pos: u64,
        end: u64,
        max: usize,
        out: &'a mut Vec<u8>,
    ) -> BoxFut<'a, Result<u64, EngineError>> {
        Box::pin(async move {
            if pos < f.source_base {
                let Some((src, _)) = catalog::get(&self.c, &f.source).await? else {
                    return Err(EngineError::new(
                        ErrorCode::CORRUPT,
                        format!("fork source '{}' is missing", f.source),
                    ));
                };
                let Some(up) = src.fork.clone() else {
                    return Err(EngineError::new(
                        ErrorCode::CORRUPT,
                        format!("fork source '{}' has no source", f.source),
                    ));
                };
                let next = self.read_inherited(&up, pos, end.min(f.source_base), max, out).await?;
                if next < f.source_base || next >= end || out.len() >= max {
                    return Ok(next);
                }
                return self.read_own(f, next, end, max, out).await;
            }
            self.read_own(f, pos, end, max, out).await
        })
    }

    /// Reads a fork source's own bytes (at or above its base) up to `end`.
    fn read_own<'a>(
        &'a self,
        f: &'a ForkRef,
        pos: u64,
        end: u64,
        max: usize,
        out: &'a mut Vec<u8>,
    ) -> BoxFut<'a, Result<u64, EngineError>> {
        Box::pin(async move {
            let subj = self.source_subject(f);
            let t = data::tail(&self.c, &subj).await?;
            let span = data::Span {
                pos,
                end,
                last_seq: t.seq,
                max,
                hint: None,
            };
            let (next, _) = data::read(&self.c, &subj, span, out).await?;
            Ok(next)
        })
    }

    async fn read(&self, req: &ReadRequest<'_>) -> Result<ReadChunk, EngineError> {
        let (entry, tail) = self.live(req.name.as_str(), req.now_ms).await?;
        self.touch(&entry, req.now_ms).await;
        let end = tail.state.tail;
        let start = match req.start {
            ReadStart::Tail => end,
            ReadStart::At => req.position,
        };
        if start > end {
            return Err(EngineError::new(
                ErrorCode::OFFSET_BEYOND_TAIL,
                "offset is beyond the stream's tail",
            ));
        }
        let max = req.max_bytes.clamp(1, 64 << 20) as usize;
        let mut out = Vec::new();
        let base = entry.rec.base();
        let mut next = start;
        if start < base && start < end {
            // Inherited bytes come from the source chain, then the fork's own follow on.
            let f = entry.rec.fork.clone().expect("a base above 0 is a fork");
            next = self.read_inherited(&f, start, base.min(end), max, &mut out).await?;
        }
        if next >= base && next < end && out.len() < max {
            let hint = (*entry.hint.lock()).filter(|(p, _)| *p == next).map(|(_, s)| s);
            let span = data::Span {
                pos: next,
                end,
                last_seq: tail.seq,
                max,
                hint,
            };
            let (reached, seq) = data::read(&self.c, &self.subject(&entry.rec), span, &mut out).await?;
            *entry.hint.lock() = Some((reached, seq));
            next = reached;
        }
        Ok(ReadChunk {
            data: ByteViewBox::from_value(RVec::from(out), abi_stable::sabi_trait::TD_Opaque),
            next,
            meta: Self::meta(&entry.rec, &tail),
        })
    }

    async fn delete(&self, req: &DeleteRequest<'_>) -> Result<(), EngineError> {
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

    /// The sweeper's test: expired by the access recorded in the cluster plus a quarter TTL of
    /// slack (another host may have renewed it without writing yet), or by this host's own view.
    fn sweepable(&self, rec: &Record, now: u64) -> bool {
        let slack = rec.ttl_secs.map_or(0, |t| t * 250);
        let local = self.local_access(&rec.name);
        ttl::is_expired(rec.lifetime(), rec.access_ms.max(local) + slack, now)
    }

    async fn list(&self, req: &ListRequest<'_>) -> Result<RVec<StreamListing>, EngineError> {
        let prefix = req.prefix.as_str();
        let after = req.start_after.map(|s| s.as_str().to_string()).into_option();
        let mut recs: Vec<Record> = catalog::scan(&self.c)
            .await?
            .into_iter()
            .filter(|r| r.state == State::Live && r.name.starts_with(prefix))
            .filter(|r| after.as_ref().is_none_or(|a| r.name.as_str() > a.as_str()))
            .filter(|r| !Self::expired(r, self.local_access(&r.name), req.now_ms))
            .collect();
        recs.sort_by(|a, b| a.name.cmp(&b.name));
        let mut out = RVec::new();
        for rec in recs {
            if out.len() >= req.limit as usize {
                break;
            }
            let tail = data::tail(&self.c, &self.subject(&rec)).await?;
            if tail.seq == 0 || tail.state.deleted.is_some() {
                continue;
            }
            out.push(StreamListing {
                name: rec.name.as_str().into(),
                meta: Self::meta(&rec, &tail),
            });
        }
        Ok(out)
    }

    async fn list_expired(&self, req: &ExpiredRequest) -> Result<RVec<RString>, EngineError> {
        let names: Vec<RString> = catalog::scan(&self.c)
            .await?
            .into_iter()
            .filter(|r| r.state == State::Live && self.sweepable(r, req.now_ms))
            .take(req.limit as usize)
            .map(|r| RString::from(r.name))
            .collect();
        Ok(RVec::from(names))
    }

    fn listen(&self, listener: ChangeListenerBox) -> Result<(), EngineError> {
        let mut started = self.listening.lock();
        if *started {
            return Ok(());
        }
        let client = self.c.client.clone();
        let subject = self.c.notify_wildcard();
        let mut sub = self
            .c
            .block(client.subscribe(subject.clone()))
            .map_err(|e| unavailable(format!("subscribe {subject}: {e}")))?;
        self.c.rt.spawn(async move {
            while let Some(m) = sub.next().await {
                if let Some(name) = m.headers.as_ref().and_then(|h| h.get("DS-Name")) {
                    listener.stream_changed(RStr::from(name.as_str()));
                }
            }
        });
        *started = true;
        Ok(())
    }
}

fn wrap<T>(r: Result<T, EngineError>) -> RResult<T, EngineError> {
    r.into()
}

impl Engine for JetStreamStorage {
    fn create(&self, req: &CreateRequest<'_>) -> RResult<CreateOutcome, EngineError> {
        let _g = self.lock(req.name.as_str());
        wrap(self.c.block(JetStreamStorage::create(self, req)))
    }
    fn append(&self, req: &AppendRequest<'_>) -> RResult<AppendOutcome, EngineError> {
        let _g = self.lock(req.name.as_str());
        wrap(self.c.block(JetStreamStorage::append(self, req)))
    }
    fn append_many(&self, reqs: RSlice<'_, AppendRequest<'_>>) -> RVec<RResult<AppendOutcome, EngineError>> {
        reqs.iter().map(|r| Engine::append(self, r)).collect()
    }
    fn read(&self, req: &ReadRequest<'_>) -> RResult<ReadChunk, EngineError> {
        wrap(self.c.block(JetStreamStorage::read(self, req)))
    }
    fn head(&self, req: &HeadRequest<'_>) -> RResult<StreamMeta, EngineError> {
        wrap(self.c.block(async {
            let (entry, tail) = self.live(req.name.as_str(), req.now_ms).await?;
            Ok(Self::meta(&entry.rec, &tail))
        }))
    }
    fn delete(&self, req: &DeleteRequest<'_>) -> RResult<(), EngineError> {
        let _g = self.lock(req.name.as_str());
        wrap(self.c.block(JetStreamStorage::delete(self, req)))
    }
    fn list(&self, req: &ListRequest<'_>) -> RResult<RVec<StreamListing>, EngineError> {
        wrap(self.c.block(JetStreamStorage::list(self, req)))
    }
    fn list_expired(&self, req: &ExpiredRequest) -> RResult<RVec<RString>, EngineError> {
        wrap(self.c.block(JetStreamStorage::list_expired(self, req)))
    }
    fn set_change_listener(&self, listener: ChangeListenerBox) -> RResult<(), EngineError> {
        wrap(self.listen(listener))
    }
    fn shutdown(&self) -> RResult<(), EngineError> {
        // Every acknowledged append is already stored on a majority of replicas.
        let _ = self.c.block(self.c.client.flush());
        RResult::ROk(())
    }
    fn extension(&self, op: RStr<'_>, _input: RSlice<'_, u8>) -> RResult<RVec<u8>, EngineError> {
        match op.as_str() {
            ext::HEALTH => {
                if self.c.connected.load(Ordering::Acquire) {
                    RResult::ROk(RVec::new())
                } else {
                    RResult::RErr(unavailable("not connected"))
                }
            }
            ext::STATS => wrap(self.c.block(async {
                let n = catalog::scan(&self.c).await?.iter().filter(|r| r.state == State::Live).count();
                Ok(RVec::from(serde_json::json!({"streams": n}).to_string().into_bytes()))
            })),
            _ => RResult::RErr(EngineError::new(
                ErrorCode::UNSUPPORTED,
                format!("extension '{op}' is not supported by the jetstream engine"),
            )),
        }
    }
}
