//! Subscriptions (protocol sections 6-7): durable cursors over streams that wake workers by
//! webhook or pull-wake, with generation fencing and leases. Owns subscription state and its
//! persistence; `routes` owns the HTTP shapes; `delivery` owns outgoing webhooks.
//!
//! A std mutex guards the state: it is never held across an await. Changes are persisted by
//! submitting an append to the engine while the lock is held (so they commit in order) and
//! awaiting the result after releasing it.

pub mod delivery;
pub mod model;
pub mod routes;
pub mod signing;
pub mod ssrf;
pub mod store;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use abi_stable::std_types::{ROption, RStr};
use durable_streams_core::abi::{EngineError, HeadRequest, ListRequest};
use durable_streams_core::Offset;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::config::SubscriptionsConfig;
use crate::plugin::{OwnedAppend, Storage};
use crate::state::now_ms;
use model::{glob_match, Link, Sub, Wake};

/// Names under this prefix are the server's own state streams, never application streams.
pub const INTERNAL_PREFIX: &str = "__ds/";
use signing::KeyRing;
use store::Record;

type Persist = Pin<Box<dyn Future<Output = Result<(), EngineError>> + Send>>;

/// State guarded by the service's mutex.
pub struct Inner {
    pub subs: BTreeMap<String, Sub>,
    /// Last known tail of every linked stream.
    pub tails: HashMap<String, u64>,
    pub keys: KeyRing,
    /// Subscriptions with a webhook request on the wire (not persisted).
    pub inflight: std::collections::HashSet<String>,
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
}

fn random_id(prefix: &str) -> String {
    let n: u128 = rand::random();
    format!("{prefix}{n:032x}")
}

impl Subscriptions {
    /// Loads persisted subscriptions and keys (creating keys on first start).
    pub fn open(storage: Storage, config: SubscriptionsConfig, live: Arc<crate::live::LiveTail>) -> Result<Arc<Subscriptions>, String> {
        let (subs, ring) = store::load(&storage)?;
        let now = now_ms();
        let mut keys = ring.clone().unwrap_or_else(|| KeyRing::generate(now));
        let rotated = keys.rotate_if_due(now, config.key_rotation_days * 86_400_000, config.retired_key_days * 86_400_000);
        if ring.is_none() || rotated {
            storage
                .call_sync(|e| e.append(&store::record(store::KEYS_STREAM, &keys).as_request()))
                .map_err(|e| e.to_string())?;
        }
        let mut tails = HashMap::new();
        for s in subs.values() {
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
        Ok(Arc::new(Subscriptions {
            inner: Mutex::new(Inner {
                subs,
                tails,
                keys,
                inflight: Default::default(),
            }),
            storage,
            config,
            kick: Notify::new(),
            http,
            live,
        }))
    }

    /// Submits the persistence of `sub` (or its deletion) in order; await after unlocking.
    fn persist(&self, rec: &Record) -> Persist {
        let fut = self.storage.submit_append(store::record(store::SUBS_STREAM, rec));
        Box::pin(async move { fut.await.map(|_| ()) })
    }

    fn save(&self, sub: &Sub) -> Persist {
        self.persist(&Record::Put(Box::new(sub.clone())))
    }

    /// The tail of `path` as last seen.
    fn tail_of(inner: &Inner, path: &str) -> Option<u64> {
        inner.tails.get(path).copied()
    }

    /// Pending (path, tail) pairs of a subscription.
    pub fn pending(inner: &Inner, sub: &Sub) -> Vec<(String, u64)> {
        sub.pending(&|p| Self::tail_of(inner, p))
    }

    /// Called after every acknowledged append or create: links newly matching streams (at the
    /// position before the append) and wakes the delivery loop.
    pub fn on_append(&self, path: &str, before: u64, tail: u64) {
        if path.starts_with(INTERNAL_PREFIX) {
            return;
        }
        let mut saves = Vec::new();
        {
            let mut inner = self.inner.lock();
            // Fast path: appends to streams no subscription watches cost one lock and a scan.
            let relevant = inner
                .subs
                .values()
                .any(|s| s.links.contains_key(path) || s.config.pattern.as_deref().is_some_and(|p| glob_match(p, path)));
            if !relevant {
                return;
            }
            inner.tails.insert(path.to_string(), tail);
            let ids: Vec<String> = inner.subs.keys().cloned().collect();
            for id in ids {
                let sub = inner.subs.get_mut(&id).expect("listed");
                let glob = sub.config.pattern.as_deref().is_some_and(|p| glob_match(p, path));
                if glob && !sub.links.get(path).is_some_and(|l| l.glob) {
                    let link = sub.links.entry(path.to_string()).or_insert(Link {
                        glob: false,
                        explicit: false,
                        acked: before,
                    });
                    link.glob = true;
                    saves.push(self.save(sub));
                }
            }
        }
        self.kick.notify_one();
        if !saves.is_empty() {
            tokio::spawn(async move {
                for s in saves {
                    if let Err(e) = s.await {
                        tracing::error!(error = %e, "could not persist a subscription link");
                    }
                }
            });
        }
    }

    /// Current tails of every stream matching `pattern` (backfill on create).
    async fn matching_streams(&self, pattern: &str) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let a = after.clone();
            let page = self
                .storage
                .call(move |e| {
                    e.list(&ListRequest {
                        prefix: RStr::from(""),
                        start_after: match &a {
                            Some(s) => ROption::RSome(RStr::from(s.as_str())),
                            None => ROption::RNone,
                        },
                        limit: 1000,
                        now_ms: now_ms(),
                    })
                })
                .await;
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
        let p = path.to_string();
        self.storage
            .call(move |e| {
                e.head(&HeadRequest {
                    name: RStr::from(p.as_str()),
                    now_ms: now_ms(),
                })
            })
            .await
            .map(|m| m.tail)
            .unwrap_or(0)
    }

    /// Issues a wake for `sub` if it is idle and has pending work. Returns the wake if issued.
    pub fn maybe_wake(inner: &mut Inner, id: &str, now: u64) -> Option<Sub> {
        let pending = {
            let sub = inner.subs.get(id)?;
            if sub.wake.is_some() {
                return None;
            }
            Self::pending(inner, sub)
        };
        if pending.is_empty() {
            return None;
        }
        let sub = inner.subs.get_mut(id)?;
        sub.generation += 1;
        let pull = sub.config.kind == "pull-wake";
        sub.wake = Some(Wake {
            wake_id: random_id("w_"),
            snapshot: pending,
            holder: None,
            lease_until_ms: if pull { u64::MAX } else { now + sub.config.lease_ttl_ms },
            delivered: false,
        });
        sub.retry = None;
        Some(sub.clone())
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

    /// Writes pull-wake events for a wake to the subscription's wake stream.
    fn wake_events(&self, sub: &Sub) -> Option<OwnedAppend> {
        let wake = sub.wake.as_ref()?;
        let stream = sub.config.wake_stream.clone()?;
        let now = now_ms();
        let events: Vec<serde_json::Value> = wake
            .snapshot
            .iter()
            .map(|(p, _)| serde_json::json!({"type": "wake", "subscription_id": sub.id, "stream": p, "generation": sub.generation, "ts": now}))
            .collect();
        let mut body = Vec::new();
        for e in events {
            body.extend_from_slice(e.to_string().as_bytes());
            body.push(b',');
        }
        Some(OwnedAppend {
            name: stream,
            content_type: Some("application/json".into()),
            body: body.into(),
            close: false,
            producer: None,
            stream_seq: None,
            now_ms: now,
        })
    }
}

pub use routes::dispatch;

impl Subscriptions {
    /// One pass of the delivery loop: expire leases, issue wakes, start due webhook deliveries.
    pub async fn tick(self: &Arc<Self>) {
        let now = now_ms();
        let mut saves = Vec::new();
        let mut pull_events = Vec::new();
        let mut deliveries = Vec::new();
        {
            let mut inner = self.inner.lock();
            let ids: Vec<String> = inner.subs.keys().cloned().collect();
            for id in ids {
                // Expired leases clear the holder and the wake.
                let expired = inner
                    .subs
                    .get(&id)
                    .and_then(|s| s.wake.as_ref())
                    .is_some_and(|w| w.lease_until_ms <= now);
                if expired {
                    let sub = inner.subs.get_mut(&id).expect("listed");
                    sub.wake = None;
                    sub.retry = None;
                    saves.push(self.save(sub));
                }
                if let Some(sub) = Self::maybe_wake(&mut inner, &id, now) {
                    saves.push(self.save(&sub));
                    if sub.config.kind == "pull-wake" {
                        if let Some(a) = self.wake_events(&sub) {
                            let stream = a.name.clone();
                            pull_events.push((stream, self.storage.submit_append(a)));
                        }
                    }
                }
                if let Some(d) = delivery::prepare(&mut inner, &id, now) {
                    deliveries.push(d);
                }
            }
        }
        for s in saves {
            if let Err(e) = s.await {
                tracing::error!(error = %e, "could not persist subscription state");
            }
        }
        for (stream, p) in pull_events {
            match p.await {
                Ok(_) => self.live.wake(&stream),
                Err(e) => tracing::warn!(error = %e, stream = %stream, "could not write a pull-wake event (does the wake stream exist?)"),
            }
        }
        for d in deliveries {
            let this = self.clone();
            tokio::spawn(async move { delivery::deliver(this, d).await });
        }
    }

    /// Runs the delivery loop forever.
    pub async fn run(self: Arc<Self>) {
        loop {
            self.tick().await;
            tokio::select! {
                _ = self.kick.notified() => {}
                _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {}
            }
        }
    }
}
