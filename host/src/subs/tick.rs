//! The delivery loop: expires leases, issues wakes (writing pull-wake events), rotates signing
//! keys when due and starts webhook deliveries. With a shared engine it first follows the log
//! and runs only on the host holding the delivery lease. Sends nothing itself (`delivery` does).

use std::sync::Arc;
use std::time::{Duration, Instant};

use durable_streams_core::abi::Capabilities;

use super::model::{Sub, Wake};
use super::store::Record;
use super::{delivery, random_id, Inner, Refusal, Subscriptions};
use crate::clock::now_ms;
use crate::plugin::OwnedAppend;

/// With a shared engine, every linked tail is read again this often (a missed change
/// notification delays a wake by at most this much).
const FULL_TAIL_REFRESH: Duration = Duration::from_secs(10);

impl Subscriptions {
    /// Gives `sub` a new wake if it is idle and has pending work.
    pub fn issue_wake(inner: &Inner, sub: &mut Sub, now: u64) -> bool {
        if sub.wake.is_some() {
            return false;
        }
        let pending = Self::pending(inner, sub);
        if pending.is_empty() {
            return false;
        }
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
        true
    }

    /// Pull-wake events for a wake, for the subscription's wake stream.
    fn wake_events(sub: &Sub) -> Option<OwnedAppend> {
        let wake = sub.wake.as_ref()?;
        let stream = sub.config.wake_stream.clone()?;
        let now = now_ms();
        let mut body = Vec::new();
        for (p, _) in &wake.snapshot {
            let e = serde_json::json!({"type": "wake", "subscription_id": sub.id, "stream": p, "generation": sub.generation, "ts": now});
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

    /// With a shared engine: follows the log, renews or takes the lease, and reads changed
    /// tails. Answers whether this host delivers now.
    async fn shared_step(self: &Arc<Self>, last_full: &mut Instant) -> bool {
        if let Err(e) = self.catch_up().await {
            tracing::debug!(error = %e, "could not follow the subscription log");
            return false;
        }
        let this = self.clone();
        let step = move || this.lease.step(&this.storage);
        if self.storage.capabilities().contains(Capabilities::BLOCKING_IO) {
            let _ = tokio::task::spawn_blocking(step).await;
        } else {
            step();
        }
        if !self.lease.held() {
            return false;
        }
        let paths: Vec<String> = {
            let mut inner = self.inner.lock();
            if last_full.elapsed() >= FULL_TAIL_REFRESH {
                *last_full = Instant::now();
                inner.stale.clear();
                inner.subs.values().flat_map(|s| s.links.keys().cloned()).collect()
            } else {
                inner.stale.drain().collect()
            }
        };
        self.refresh_tails(paths).await;
        true
    }

    /// Rotates the signing keys when due (another host may have done it: then its ring is read).
    async fn maintain_keys(&self) {
        let (ring, at) = {
            let inner = self.inner.lock();
            let day = 86_400_000;
            let (rotate, keep) = (self.config.key_rotation_days * day, self.config.retired_key_days * day);
            if !inner.keys.rotation_due(now_ms(), rotate, keep) {
                return;
            }
            (inner.keys.clone(), inner.keys_log)
        };
        let storage = self.storage.clone();
        let config = self.config.clone();
        let settled = tokio::task::spawn_blocking(move || super::settle_keys(&storage, &config, Some(ring), at)).await;
        match settled {
            Ok(Ok((keys, to))) => {
                let mut inner = self.inner.lock();
                if inner.keys_log == at {
                    inner.keys = keys;
                    inner.keys_log = to;
                }
            }
            Ok(Err(e)) => tracing::error!(error = %e, "could not rotate the webhook signing keys"),
            Err(e) => tracing::error!(error = %e, "key rotation task failed"),
        }
    }

    /// After taking the delivery lease: every webhook wake still outstanding was issued (and
    /// perhaps sent) by the previous holder, so it is issued again under a new generation
    /// rather than sent again under its old one. No generation is ever delivered by two hosts,
    /// and the earlier holder's callback tokens go stale. Answers whether all were recorded.
    async fn fence_takeover(&self) -> bool {
        // What the previous holder wrote up to its last moment is in the log now (its lease
        // ended before this host's write): read it first, or a wake it issued late is missed.
        if let Err(e) = self.catch_up().await {
            tracing::debug!(error = %e, "could not follow the subscription log before fencing");
            return false;
        }
        let outstanding: Vec<String> = {
            let inner = self.inner.lock();
            inner
                .subs
                .values()
                .filter(|s| s.config.kind == "webhook" && s.wake.is_some())
                .map(|s| s.id.clone())
                .collect()
        };
        let mut all = true;
        for id in outstanding {
            let now = now_ms();
            let r = self
                .mutate(|inner| -> Result<_, ()> {
                    let Some(cur) = inner.subs.get(&id) else { return Ok((None, ())) };
                    if cur.wake.is_none() {
                        return Ok((None, ()));
                    }
                    let mut sub = cur.clone();
                    sub.wake = None;
                    sub.retry = None;
                    Self::issue_wake(inner, &mut sub, now);
                    Ok((Some(Record::Put(Box::new(sub))), ()))
                })
                .await;
            if let Err(Refusal::Engine(e)) = r {
                tracing::warn!(error = %e, subscription = %id, "could not issue a wake again after taking the delivery lease");
                all = false;
            }
        }
        all
    }

    /// One pass of the delivery loop.
    pub async fn tick(self: &Arc<Self>, last_full: &mut Instant) {
        if self.shared && !self.shared_step(last_full).await {
            return;
        }
        if self.shared {
            let term = self.lease.term();
            if term != self.fenced_term.load(std::sync::atomic::Ordering::Acquire) {
                if !self.fence_takeover().await {
                    return;
                }
                self.fenced_term.store(term, std::sync::atomic::Ordering::Release);
            }
        }
        self.maintain_keys().await;
        let now = now_ms();
        let due: Vec<String> = {
            let inner = self.inner.lock();
            inner
                .subs
                .values()
                .filter(|s| match &s.wake {
                    Some(w) => w.lease_until_ms <= now,
                    None => !Self::pending(&inner, s).is_empty(),
                })
                .map(|s| s.id.clone())
                .collect()
        };
        for id in due {
            let woke = self
                .mutate(|inner| -> Result<_, ()> {
                    let Some(cur) = inner.subs.get(&id) else { return Ok((None, None)) };
                    let mut sub = cur.clone();
                    let mut changed = false;
                    // An expired lease clears the holder and the wake.
                    if sub.wake.as_ref().is_some_and(|w| w.lease_until_ms <= now) {
                        sub.wake = None;
                        sub.retry = None;
                        changed = true;
                    }
                    let woke = Self::issue_wake(inner, &mut sub, now);
                    let rec = (changed || woke).then(|| Record::Put(Box::new(sub.clone())));
                    Ok((rec, woke.then_some(sub)))
                })
                .await;
            match woke {
                Ok(Some(sub)) if sub.config.kind == "pull-wake" => {
                    if let Some(a) = Self::wake_events(&sub) {
                        let stream = a.name.clone();
                        match self.storage.append(a).await {
                            Ok(_) => self.live.wake(&stream),
                            Err(e) => {
                                tracing::warn!(error = %e, stream = %stream, "could not write a pull-wake event (does the wake stream exist?)")
                            }
                        }
                    }
                }
                Ok(_) => {}
                Err(Refusal::Engine(e)) => tracing::error!(error = %e, subscription = %id, "could not persist subscription state"),
                Err(Refusal::Refused(())) => {}
            }
        }
        // This pass may have waited on the engine long enough for the lease to move, and learnt
        // of wakes the new holder issued (a conflict reads the log): send only while the lease
        // is still held, in the term that was fenced.
        if self.shared && (!self.lease.held() || self.lease.term() != self.fenced_term.load(std::sync::atomic::Ordering::Acquire)) {
            return;
        }
        let deliveries: Vec<delivery::Delivery> = {
            let mut inner = self.inner.lock();
            let ids: Vec<String> = inner.subs.keys().cloned().collect();
            ids.iter().filter_map(|id| delivery::prepare(&mut inner, id, now)).collect()
        };
        for d in deliveries {
            let this = self.clone();
            tokio::spawn(async move { delivery::deliver(this, d).await });
        }
    }

    /// Runs the delivery loop until the process ends.
    pub async fn run(self: Arc<Self>) {
        let mut last_full = Instant::now();
        loop {
            self.tick(&mut last_full).await;
            if let Err(e) = self.compact_log().await {
                tracing::warn!(error = %e, "compacting the subscription log failed; retried later");
            }
            tokio::select! {
                _ = self.kick.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    }
}
