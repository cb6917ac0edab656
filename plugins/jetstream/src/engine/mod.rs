//! `JetStreamStorage`: the engine contract over the catalogue and data subjects. Every decision
//! that must hold across hosts is a compare-and-set in the cluster (create, append, delete, fork
//! counts); memory holds only a bounded cache of catalogue records and read positions.
//! `lifecycle` owns create / fork / delete, `io` appends and reads, `listing` lists and the
//! change listener, `retention` trims, `backup` describes and restores.

mod ahead;
mod append;
mod backup;
mod io;
mod lifecycle;
mod listing;
mod retention;
#[cfg(test)]
mod retention_tests;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use abi_stable::std_types::{RResult, RSlice, RStr, RString, RVec};
use durable_streams_core::abi::*;
use durable_streams_core::limits::Limits;
use durable_streams_core::ttl;
use parking_lot::Mutex;

use crate::catalog::{self, hash_of, ForkRef, Put, Record, State};
use crate::cluster::{unavailable, Cluster, ClusterSettings};
use crate::data::{self, Subject, Tail};
use crate::register;

/// A cached catalogue record with this host's view of access and read position.
struct Cached {
    rec: Record,
    /// Where its data lives (a digest of the name: computed once, not per append).
    subject: Subject,
    /// Last access through this host (sliding TTL), ms.
    local_access: AtomicU64,
    /// (position, stream sequence at or before the message holding it).
    hint: Mutex<Option<(u64, u64)>>,
    /// The tail this host last wrote or read: appends decide on it and the compare-and-set in
    /// the cluster catches it being stale (then it is reloaded and the append re-decided).
    tail: Mutex<Option<Arc<Tail>>>,
    /// Batches fetched ahead for this stream's catch-up readers.
    ahead: ahead::Slots,
}

/// An access renews a sliding TTL in the cluster when the recorded one is this much older.
fn renew_after_ms(ttl_secs: u64) -> u64 {
    (ttl_secs * 250).max(200)
}

/// What a host adds, beside the renewal interval, for the delay of a renewal's write and what
/// is left of the difference between host clocks once each follows the cluster's (`ext::CLOCK`:
/// a reading's round trip, and the NATS nodes' own differences), before it calls a stream
/// expired.
pub(super) const CLOCK_MARGIN_MS: u64 = 1000;

/// How much later than the recorded access another host may have read a sliding-TTL stream.
fn renewal_slack_ms(rec: &Record) -> u64 {
    rec.ttl_secs.map_or(0, |t| renew_after_ms(t) + CLOCK_MARGIN_MS)
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
    /// Catalogue scans for the sweeper and `/metrics` happen at most this often (seconds).
    sweep_scan_secs: u64,
    last_sweep_scan: Mutex<Option<std::time::Instant>>,
    live_count: Mutex<Option<(u64, std::time::Instant)>>,
    /// Builds of the name index, one at a time.
    index_build: tokio::sync::Mutex<()>,
    /// Set once the name index follows the catalogue's changes.
    following_catalog: tokio::sync::OnceCell<()>,
    read_ahead: ahead::ReadAhead,
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
        let sweep_scan_secs = cfg.sweep_scan_secs;
        let c = Cluster::connect(cfg)?;
        Ok(JetStreamStorage {
            c,
            limits,
            locks: (0..1024).map(|_| Mutex::new(())).collect(),
            cache: Mutex::new(HashMap::new()),
            listening: Mutex::new(false),
            sweep_scan_secs,
            last_sweep_scan: Mutex::new(None),
            live_count: Mutex::new(None),
            index_build: tokio::sync::Mutex::new(()),
            following_catalog: tokio::sync::OnceCell::new(),
            read_ahead: ahead::ReadAhead::default(),
        })
    }

    fn stripe(&self, name: &str) -> usize {
        let h = name
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3));
        (h % self.locks.len() as u64) as usize
    }

    fn lock(&self, name: &str) -> parking_lot::MutexGuard<'_, ()> {
        self.locks[self.stripe(name)].lock()
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

    /// Whether a stream has expired, never early: a sliding TTL runs from the latest access
    /// any host may have made, that is the access recorded in `rec` plus [`renewal_slack_ms`]
    /// (accesses are written to the cluster only that far apart), or this host's own, if later.
    /// So expiry is late by at most the slack, and early never, given a fresh `rec` and `now`
    /// on the cluster's clock (the host corrects its own with `ext::CLOCK`, see `clock.rs`)
    /// within [`CLOCK_MARGIN_MS`].
    fn expired(rec: &Record, local_access: u64, now: u64) -> bool {
        let anyones = rec.access_ms.saturating_add(renewal_slack_ms(rec));
        ttl::is_expired(rec.lifetime(), anyones.max(local_access), now)
    }

    fn remember(&self, rec: Record) -> Arc<Cached> {
        let entry = Arc::new(Cached {
            local_access: AtomicU64::new(rec.access_ms),
            subject: self.subject(&rec),
            rec,
            hint: Mutex::new(None),
            tail: Mutex::new(None),
            ahead: ahead::Slots::default(),
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
    async fn live(&self, name: &str, now: u64) -> Result<(Arc<Cached>, Arc<Tail>), EngineError> {
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
                if !fresh {
                    // Perhaps renewed by another host since this one cached it: ask the cluster.
                    continue;
                }
                return Err(EngineError::not_found(name));
            }
            let tail = Arc::new(data::tail(&self.c, &entry.subject).await?);
            if tail.seq != 0 && tail.state.deleted.is_none() {
                *entry.tail.lock() = Some(tail.clone());
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

    /// The cached entry and the tail this host last saw, when both are at hand and the stream
    /// has not expired: an append may decide on them (the compare-and-set checks them).
    fn cached_tail(&self, name: &str, now: u64) -> Option<(Arc<Cached>, Arc<Tail>)> {
        let entry = self.cache.lock().get(name).cloned()?;
        if Self::expired(&entry.rec, entry.local_access.load(Ordering::Relaxed), now) {
            return None;
        }
        let tail = entry.tail.lock().clone()?;
        Some((entry, tail))
    }

    /// Records an access for the sliding TTL: in memory always, in the cluster when the stored
    /// access is older than [`renew_after_ms`] (so other hosts see the stream alive; what they
    /// add to it before calling it expired, [`renewal_slack_ms`], relies on this). A write that
    /// loses a race is tried again on the record that won it.
    async fn touch(&self, entry: &Cached, now: u64) {
        entry.local_access.fetch_max(now, Ordering::Relaxed);
        let Some(ttl) = entry.rec.ttl_secs else { return };
        if now.saturating_sub(entry.rec.access_ms) < renew_after_ms(ttl) {
            return;
        }
        for _ in 0..5 {
            let Ok(Some((mut rec, seq))) = catalog::get(&self.c, &entry.rec.name).await else {
                return;
            };
            if rec.state != State::Live || rec.gen != entry.rec.gen {
                return;
            }
            if now.saturating_sub(rec.access_ms) < renew_after_ms(ttl) {
                // Another host renewed it meanwhile.
                self.remember(rec).local_access.fetch_max(now, Ordering::Relaxed);
                return;
            }
            rec.access_ms = now;
            match catalog::put(&self.c, &rec, seq).await {
                Ok(Put::Done) => {
                    self.remember(rec).local_access.fetch_max(now, Ordering::Relaxed);
                    return;
                }
                Ok(_) => continue,
                Err(_) => return,
            }
        }
    }

    /// Changes a stream's fork count by compare-and-set; returns the record written.
    fn local_access(&self, name: &str) -> u64 {
        self.cache.lock().get(name).map_or(0, |e| e.local_access.load(Ordering::Relaxed))
    }

    /// A create naming a live stream: 200 when it re-confirms the configuration, else 409.
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
}

/// The stream an extension request names (for its lock; an ill-formed request is refused later).
fn named(input: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Named {
        name: String,
    }
    serde_json::from_slice::<Named>(input).map(|n| n.name).unwrap_or_default()
}

fn wrap<T>(r: Result<T, EngineError>) -> RResult<T, EngineError> {
    r.into()
}

impl Engine for JetStreamStorage {
    fn create(&self, req: &CreateRequest<'_>) -> RResult<CreateOutcome, EngineError> {
        if let Err(e) = self.c.reachable() {
            return RResult::RErr(e);
        }
        let _g = self.lock(req.name.as_str());
        wrap(self.c.block(JetStreamStorage::create(self, req)))
    }
    fn append(&self, req: &AppendRequest<'_>) -> RResult<AppendOutcome, EngineError> {
        if let Err(e) = self.c.reachable() {
            return RResult::RErr(e);
        }
        let _g = self.lock(req.name.as_str());
        let mut answers = self.c.block(self.append_all(&[req]));
        wrap(
            answers
                .pop()
                .unwrap_or_else(|| Err(EngineError::new(ErrorCode::INTERNAL, "append not answered"))),
        )
    }
    /// A group from the host's writer thread: appends to different streams are in flight
    /// together, and the appends to one stream are stored as one message (see `append`), so a
    /// group costs about one round trip to the cluster rather than one per append.
    fn append_many(&self, reqs: RSlice<'_, AppendRequest<'_>>) -> RVec<RResult<AppendOutcome, EngineError>> {
        let reqs = reqs.as_slice();
        if let Err(e) = self.c.reachable() {
            return reqs.iter().map(|_| RResult::RErr(e.clone())).collect();
        }
        let mut by_stream: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut order: Vec<&str> = Vec::new();
        for (i, r) in reqs.iter().enumerate() {
            by_stream
                .entry(r.name.as_str())
                .or_insert_with(|| {
                    order.push(r.name.as_str());
                    Vec::new()
                })
                .push(i);
        }
        let mut stripes: Vec<usize> = order.iter().map(|n| self.stripe(n)).collect();
        stripes.sort_unstable();
        stripes.dedup();
        let _guards: Vec<_> = stripes.iter().map(|&i| self.locks[i].lock()).collect();
        let done = self.c.block(futures_util::future::join_all(order.iter().map(|n| {
            let idxs = &by_stream[n];
            async move {
                let lot: Vec<&AppendRequest<'_>> = idxs.iter().map(|&i| &reqs[i]).collect();
                idxs.iter().copied().zip(self.append_all(&lot).await).collect::<Vec<_>>()
            }
        })));
        let mut results: Vec<Option<RResult<AppendOutcome, EngineError>>> = (0..reqs.len()).map(|_| None).collect();
        for (i, r) in done.into_iter().flatten() {
            results[i] = Some(r.into());
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| RResult::RErr(EngineError::new(ErrorCode::INTERNAL, "append lost in a group"))))
            .collect()
    }
    fn read(&self, req: &ReadRequest<'_>) -> RResult<ReadChunk, EngineError> {
        if let Err(e) = self.c.reachable() {
            return RResult::RErr(e);
        }
        wrap(self.c.block(JetStreamStorage::read(self, req)))
    }
    fn head(&self, req: &HeadRequest<'_>) -> RResult<StreamMeta, EngineError> {
        if let Err(e) = self.c.reachable() {
            return RResult::RErr(e);
        }
        wrap(self.c.block(async {
            let (entry, tail) = self.live(req.name.as_str(), req.now_ms).await?;
            Ok(Self::meta(&entry.rec, &tail))
        }))
    }
    fn delete(&self, req: &DeleteRequest<'_>) -> RResult<(), EngineError> {
        if let Err(e) = self.c.reachable() {
            return RResult::RErr(e);
        }
        let _g = self.lock(req.name.as_str());
        wrap(self.c.block(JetStreamStorage::delete(self, req)))
    }
    fn list(&self, req: &ListRequest<'_>) -> RResult<RVec<StreamListing>, EngineError> {
        if let Err(e) = self.c.reachable() {
            return RResult::RErr(e);
        }
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
    fn extension(&self, op: RStr<'_>, input: RSlice<'_, u8>) -> RResult<RVec<u8>, EngineError> {
        let answer = |v: serde_json::Value| RVec::from(v.to_string().into_bytes());
        match op.as_str() {
            ext::REGISTER_GET => wrap(self.c.block(async {
                let req: register::GetInput = register::input(input.as_slice())?;
                register::get(&self.c, &req.key).await.map(answer)
            })),
            ext::REGISTER_SET => wrap(self.c.block(async {
                let req: register::SetInput = register::input(input.as_slice())?;
                register::set(&self.c, &req).await.map(answer)
            })),
            ext::HEALTH => {
                if self.c.connected.load(Ordering::Acquire) {
                    RResult::ROk(RVec::new())
                } else {
                    RResult::RErr(unavailable("not connected"))
                }
            }
            ext::TRIM => {
                let _g = self.lock(named(input.as_slice()).as_str());
                wrap(self.c.block(self.trim_ext(input.as_slice())).map(RVec::from))
            }
            ext::DESCRIBE => wrap(self.c.block(self.describe_ext(input.as_slice())).map(RVec::from)),
            ext::RESTORE => {
                let _g = self.lock(named(input.as_slice()).as_str());
                wrap(self.c.block(self.restore_ext(input.as_slice())).map(RVec::from))
            }
            ext::RESTORE_WRITER => {
                let _g = self.lock(named(input.as_slice()).as_str());
                wrap(self.c.block(self.restore_writer_ext(input.as_slice())).map(RVec::from))
            }
            ext::CLOCK => wrap(self.c.block(async {
                let r = crate::clock::read(&self.c).await?;
                Ok(answer(serde_json::to_value(r).unwrap_or_default()))
            })),
            ext::STATS => wrap(self.c.block(async {
                let n = self.live_count().await?;
                Ok(RVec::from(serde_json::json!({"streams": n}).to_string().into_bytes()))
            })),
            _ => RResult::RErr(EngineError::new(
                ErrorCode::UNSUPPORTED,
                format!("extension '{op}' is not supported by the jetstream engine"),
            )),
        }
    }
}
