//! Subscriptions (protocol sections 6-7): durable cursors over streams that wake workers by
//! webhook or pull-wake, with generation fencing and leases. Owns subscription state and how it
//! is kept in the engine; `routes` owns the HTTP shapes, `delivery` outgoing webhooks, `tick`
//! the delivery loop, `lease` which host delivers when several share the engine.
//!
//! The state is a fold of an internal log stream. Every change is computed from the state under
//! a std mutex (never held across an await), appended as the log's next record with
//! compare-and-set (`store::Cursor`), and applied once the engine accepts it; a host that lost
//! the race reads the records it missed and computes the change again. With an engine several
//! hosts share (`EXTERNAL_WRITERS`), every host follows the log, so the control API and
//! callbacks work on any of them, and one host at a time delivers.

pub mod delivery;
pub mod lease;
pub mod model;
pub mod routes;
pub mod signing;
pub mod ssrf;
pub mod store;
mod tick;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use abi_stable::std_types::{RSlice, RStr};
use durable_streams_core::abi::{ext, Capabilities, EngineError, ErrorCode, HeadRequest};
use durable_streams_core::Offset;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::clock::now_ms;
use crate::config::SubscriptionsConfig;
use crate::plugin::Storage;
use model::{glob_match, Link, Sub};

pub use durable_streams_core::name::INTERNAL_PREFIX;
use signing::KeyRing;
use store::{Cursor, Record};

/// State guarded by the service's mutex.
pub struct Inner {
    pub subs: BTreeMap<String, Sub>,
    /// Last known tail of every linked stream.
    pub tails: HashMap<String, u64>,
    pub keys: KeyRing,
    /// Subscriptions with a webhook request on the wire from this host (not persisted).
    pub inflight: HashSet<String>,
    /// Where this host is in the subscription log and the key log.
    pub log: Cursor,
    pub keys_log: Cursor,
    /// Where the retained subscription log starts (its last snapshot, once compacted).
    pub log_start: u64,
    /// Linked streams written through another host, whose tail must be read again.
    pub stale: HashSet<String>,
}

/// Why a change was not made.
#[derive(Debug)]
pub enum Refusal<E> {
    /// The change's own rule refused it (the caller's answer).
    Refused(E),
    /// The engine could not record it.
    Engine(EngineError),
}

/// The subscription service.
pub struct Subscriptions {
    pub inner: Mutex<Inner>,
    pub storage: Storage,
    pub config: SubscriptionsConfig,
    /// Wakes the delivery loop.
    pub kick: Notify,
    pub http: reqwest::Client,
    /// Wakes live readers of pull-wake streams.
    pub live: Arc<crate::live::LiveTail>,
    /// Other hosts write the same engine: follow the log, and deliver only under the lease.
    pub shared: bool,
    pub lease: lease::Lease,
    /// The lease term (see [`lease::Lease::term`]) whose takeover has been fenced: the wakes
    /// outstanding when this host took the lease were issued again under new generations.
    pub fenced_term: std::sync::atomic::AtomicU64,
}

fn random_id(prefix: &str) -> String {
    let n: u128 = rand::random();
    format!("{prefix}{n:032x}")
}

/// Commits the key ring (first start, or rotation) unless another host did it first; returns
/// the ring in force and the key log's cursor.
fn settle_keys(
    storage: &Storage,
    config: &SubscriptionsConfig,
    mut ring: Option<KeyRing>,
    mut at: Cursor,
) -> Result<(KeyRing, Cursor), EngineError> {
    loop {
        let now = now_ms();
        let mut keys = ring.clone().unwrap_or_else(|| KeyRing::generate(now));
        let rotated = keys.rotate_if_due(now, config.key_rotation_days * 86_400_000, config.retired_key_days * 86_400_000);
        if ring.is_some() && !rotated {
            return Ok((keys, at));
        }
        match storage.call_sync(|e| e.append(&store::record(store::KEYS_STREAM, &keys, at).as_request())) {
            Ok(out) => {
                return Ok((
                    keys,
                    Cursor {
                        pos: out.tail,
                        count: at.count + 1,
                    },
                ))
            }
            Err(e) if e.code == ErrorCode::STREAM_SEQ_REGRESSION => {
                let (values, to) = store::read_from(storage, store::KEYS_STREAM, at)?;
                if let Some(r) = store::last_ring(values)? {
                    ring = Some(r);
                }
                at = to;
            }
            Err(e) => return Err(e),
        }
    }
}

impl Subscriptions {
    /// Loads persisted subscriptions and keys (creating keys on first start).
    pub fn open(storage: Storage, config: SubscriptionsConfig, live: Arc<crate::live::LiveTail>) -> Result<Arc<Subscriptions>, String> {
        let loaded = store::load(&storage)?;
        let (keys, keys_log) =
            settle_keys(&storage, &config, loaded.ring, loaded.keys_log).map_err(|e| format!("cannot record signing keys: {e}"))?;
        let now = now_ms();
        let mut tails = HashMap::new();
        for s in loaded.subs.values() {
            for p in s.links.keys() {
                if let Ok(m) = storage.call_sync(|e| {
                    e.head(&HeadRequest {
                        name: RStr::from(p.as_str()),
                        now_ms: now,
                    })
                }) {
                    tails.insert(p.clone(), m.tail);
                }
            }
        }
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(config.delivery_timeout_secs.max(1)))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        let shared = storage.capabilities().contains(Capabilities::EXTERNAL_WRITERS);
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into());
        let holder = format!("{host}/{}/{:08x}", std::process::id(), rand::random::<u32>());
        let timing = lease::Timing {
            ttl: std::time::Duration::from_secs(config.delivery_lease_secs.clamp(3, 60)),
        };
        Ok(Arc::new(Subscriptions {
            inner: Mutex::new(Inner {
                subs: loaded.subs,
                tails,
                keys,
                inflight: Default::default(),
                log: loaded.log,
                keys_log,
                log_start: store::earliest(&storage, store::SUBS_STREAM),
                stale: Default::default(),
            }),
            storage,
            config,
            kick: Notify::new(),
            http,
            live,
            shared,
            lease: lease::Lease::new(holder, timing),
            fenced_term: std::sync::atomic::AtomicU64::new(0),
        }))
    }

    /// Applies one record of the log to the state.
    fn apply(&self, inner: &mut Inner, rec: Record) {
        match rec {
            Record::Put(s) => {
                for (p, l) in &s.links {
                    let known = inner.tails.contains_key(p);
                    let t = inner.tails.entry(p.clone()).or_insert(l.acked);
                    *t = (*t).max(l.acked);
                    if self.shared && !known {
                        inner.stale.insert(p.clone());
                    }
                }
                inner.subs.insert(s.id.clone(), *s);
            }
            Record::Delete(id) => {
                inner.subs.remove(&id);
            }
            Record::Snapshot(all) => {
                inner.subs.clear();
                for s in all {
                    self.apply(inner, Record::Put(Box::new(s)));
                }
            }
        }
    }

    /// Compacts the subscription log once what follows its last snapshot outgrows the state it
    /// describes (at least 32 KiB, and four times a snapshot): appends a `Snapshot` of every
    /// subscription, then drops everything before it (`ext::TRIM`; an engine without retention
    /// keeps the log whole). Returns the bytes dropped.
    pub async fn compact_log(&self) -> Result<u64, EngineError> {
        let (span, size) = {
            let inner = self.inner.lock();
            let span = inner.log.pos.saturating_sub(inner.log_start);
            if span < 32 << 10 {
                return Ok(0);
            }
            let size = serde_json::to_vec(&inner.subs).map(|v| v.len() as u64).unwrap_or(0);
            (span, size)
        };
        if span < 4 * size {
            return Ok(0);
        }
        let at = self
            .mutate(|inner| {
                let all: Vec<Sub> = inner.subs.values().cloned().collect();
                Ok::<_, ()>((Some(Record::Snapshot(all)), inner.log.pos))
            })
            .await
            .map_err(|r| match r {
                Refusal::Engine(e) => e,
                Refusal::Refused(()) => EngineError::new(ErrorCode::INTERNAL, "snapshot refused"),
            })?;
        let input = serde_json::json!({"name": store::SUBS_STREAM, "before": at, "now_ms": now_ms()}).to_string();
        let out = self
            .storage
            .call(move |e| e.extension(RStr::from(ext::TRIM), RSlice::from(input.as_bytes())))
            .await;
        match out {
            Ok(v) => {
                let v: serde_json::Value = serde_json::from_slice(v.as_slice()).unwrap_or_default();
                let mut inner = self.inner.lock();
                inner.log_start = inner.log_start.max(v["start"].as_u64().unwrap_or(at));
                Ok(v["dropped_bytes"].as_u64().unwrap_or(0))
            }
            Err(e) if e.code == ErrorCode::UNSUPPORTED => {
                // Kept whole; counted from the snapshot so that it is not written again at once.
                self.inner.lock().log_start = at;
                Ok(0)
            }
            Err(e) => Err(e),
        }
    }

    /// Reads the log records (and key rings) other hosts wrote since this host last looked.
    pub async fn catch_up(&self) -> Result<(), EngineError> {
        let from = self.inner.lock().log;
        let (values, to) = store::read_from_async(&self.storage, store::SUBS_STREAM, from).await?;
        let mut records = Vec::with_capacity(values.len());
        for v in values {
            records.push(store::parse(v)?);
        }
        {
            let mut inner = self.inner.lock();
            // Another task of this host applied these records meanwhile.
            if inner.log == from {
                for r in records {
                    self.apply(&mut inner, r);
                }
                inner.log = to;
            }
        }
        let from = self.inner.lock().keys_log;
        let (values, to) = store::read_from_async(&self.storage, store::KEYS_STREAM, from).await?;
        let ring = store::last_ring(values)?;
        let mut inner = self.inner.lock();
        if inner.keys_log == from {
            if let Some(r) = ring {
                inner.keys = r;
            }
            inner.keys_log = to;
        }
        Ok(())
    }

    /// Before answering from the state: with a shared engine, read what other hosts wrote.
    pub async fn refresh(&self) -> Result<(), EngineError> {
        if self.shared {
            self.catch_up().await
        } else {
            Ok(())
        }
    }

    /// Makes one change: `change` looks at the state and answers the record to append (none:
    /// nothing to change) and a reply. It runs again after a lost race, on the newer state.
    pub async fn mutate<R, E>(&self, mut change: impl FnMut(&Inner) -> Result<(Option<Record>, R), E>) -> Result<R, Refusal<E>> {
        for _ in 0..64 {
            let (rec, reply, at) = {
                let inner = self.inner.lock();
                let (rec, reply) = change(&inner).map_err(Refusal::Refused)?;
                (rec, reply, inner.log)
            };
            let Some(rec) = rec else { return Ok(reply) };
            match self.storage.append(store::record(store::SUBS_STREAM, &rec, at)).await {
                Ok(out) => {
                    let mut inner = self.inner.lock();
                    // Unless a catch-up already read it, the record follows `at` exactly (the
                    // compare-and-set says so).
                    if inner.log == at {
                        self.apply(&mut inner, rec);
                        inner.log = Cursor {
                            pos: out.tail,
                            count: at.count + 1,
                        };
                    }
                    return Ok(reply);
                }
                Err(e) if e.code == ErrorCode::STREAM_SEQ_REGRESSION => self.catch_up().await.map_err(Refusal::Engine)?,
                Err(e) => return Err(Refusal::Engine(e)),
            }
        }
        Err(Refusal::Engine(EngineError::new(
            ErrorCode::UNAVAILABLE,
            "subscription state changed too often to record this change; retry",
        )))
    }

    /// The tail of `path` as last seen.
    fn tail_of(inner: &Inner, path: &str) -> Option<u64> {
        inner.tails.get(path).copied()
    }

    /// Pending (path, tail) pairs of a subscription.
    pub fn pending(inner: &Inner, sub: &Sub) -> Vec<(String, u64)> {
        sub.pending(&|p| Self::tail_of(inner, p))
    }

    fn relevant(inner: &Inner, path: &str) -> bool {
        inner
            .subs
            .values()
            .any(|s| s.links.contains_key(path) || s.config.pattern.as_deref().is_some_and(|p| glob_match(p, path)))
    }

    /// Called after every acknowledged append or create on this host: links newly matching
    /// streams (at the position before the append) and wakes the delivery loop.
    pub fn on_append(self: &Arc<Self>, path: &str, before: u64, tail: u64) {
        if path.starts_with(INTERNAL_PREFIX) {
            return;
        }
        let to_link: Vec<String> = {
            let mut inner = self.inner.lock();
            // Fast path: appends to streams no subscription watches cost one lock and a scan.
            if !Self::relevant(&inner, path) {
                return;
            }
            let t = inner.tails.entry(path.to_string()).or_insert(tail);
            *t = (*t).max(tail);
            inner
                .subs
                .values()
                .filter(|s| s.config.pattern.as_deref().is_some_and(|p| glob_match(p, path)) && !s.links.get(path).is_some_and(|l| l.glob))
                .map(|s| s.id.clone())
                .collect()
        };
        self.kick.notify_one();
        if to_link.is_empty() {
            return;
        }
        let this = self.clone();
        let path = path.to_string();
        tokio::spawn(async move {
            for id in to_link {
                let r = this
                    .mutate(|inner| -> Result<_, ()> {
                        let Some(cur) = inner.subs.get(&id) else { return Ok((None, ())) };
                        if cur.links.get(&path).is_some_and(|l| l.glob) {
                            return Ok((None, ()));
                        }
                        let mut sub = cur.clone();
                        sub.links
                            .entry(path.clone())
                            .or_insert(Link {
                                glob: false,
                                explicit: false,
                                acked: before,
                            })
                            .glob = true;
                        Ok((Some(Record::Put(Box::new(sub))), ()))
                    })
                    .await;
                if let Err(Refusal::Engine(e)) = r {
                    tracing::error!(error = %e, subscription = %id, "could not persist a subscription link");
                }
            }
            this.kick.notify_one();
        });
    }

    /// A stream changed through another host (the engine's change listener; any thread): its
    /// tail is read again before the next wake decision.
    pub fn external_change(&self, path: &str) {
        if path.is_empty() {
            // Anything may have changed (the engine missed notifications): every linked stream
            // is looked at again, and the shared state read again.
            {
                let mut inner = self.inner.lock();
                let linked: Vec<String> = inner.subs.values().flat_map(|s| s.links.keys().cloned()).collect();
                inner.stale.extend(linked);
            }
            self.kick.notify_one();
            return;
        }
        if path == store::SUBS_STREAM || path == store::KEYS_STREAM {
            self.kick.notify_one();
            return;
        }
        if path.starts_with(INTERNAL_PREFIX) {
            return;
        }
        {
            let mut inner = self.inner.lock();
            if !inner.subs.values().any(|s| s.links.contains_key(path)) {
                return;
            }
            inner.stale.insert(path.to_string());
        }
        self.kick.notify_one();
    }

    /// Current tails of every stream matching `pattern` (backfill on create).
    async fn matching_streams(&self, pattern: &str) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.storage.list_page(String::new(), after.clone(), 1000).await;
            let Ok(page) = page else { return out };
            if page.is_empty() {
                return out;
            }
            after = page.last().map(|l| l.name.to_string());
            for l in page.iter() {
                if !l.name.starts_with(INTERNAL_PREFIX) && glob_match(pattern, &l.name) {
                    out.push((l.name.to_string(), l.meta.tail));
                }
            }
        }
    }

    async fn tail_now(&self, path: &str) -> u64 {
        self.storage.head(path).await.map(|m| m.tail).unwrap_or(0)
    }

    /// Reads the tails of `paths` again (with a shared engine, before deciding on a wake).
    pub async fn refresh_tails(&self, paths: Vec<String>) {
        for p in paths {
            let t = self.tail_now(&p).await;
            let mut inner = self.inner.lock();
            let e = inner.tails.entry(p).or_insert(t);
            *e = (*e).max(t);
        }
    }

    /// The `streams` array of a wake or claim.
    pub fn streams_json(inner: &Inner, sub: &Sub, snapshot: &[(String, u64)]) -> Vec<serde_json::Value> {
        snapshot
            .iter()
            .map(|(p, t)| {
                let l = sub.links.get(p).cloned().unwrap_or_default();
                let tail = Self::tail_of(inner, p).unwrap_or(*t).max(*t);
                serde_json::json!({
                    "path": p,
                    "link_type": if l.explicit { "explicit" } else { "glob" },
                    "acked_offset": Offset(l.acked).to_string(),
                    "tail_offset": Offset(*t).to_string(),
                    "has_pending": tail > l.acked,
                })
            })
            .collect()
    }
}

pub use routes::dispatch;
mod access;
mod view;
pub use access::sub_within;
