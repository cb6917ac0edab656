//! Webhook delivery: signed POSTs of a wake, `{done: true}` auto-acknowledgement, and retries
//! with exponential backoff (1 s to 60 s, 20 % jitter) whose schedule is persisted.

use std::sync::Arc;

use rand::Rng;

use super::model::Retry;
use super::store::Record;
use super::{ssrf, Inner, Refusal, Subscriptions};
use crate::clock::now_ms;

/// A webhook request ready to send.
pub struct Delivery {
    pub id: String,
    pub wake_id: String,
    pub generation: u64,
    pub url: String,
    pub body: Vec<u8>,
    pub signature: String,
}

/// Builds the request for a webhook subscription whose wake is due, marking it in flight.
pub fn prepare(inner: &mut Inner, id: &str, now: u64) -> Option<Delivery> {
    let sub = inner.subs.get(id)?;
    if sub.config.kind != "webhook" || inner.inflight.contains(id) {
        return None;
    }
    let wake = sub.wake.as_ref()?;
    if wake.delivered || sub.retry.as_ref().is_some_and(|r| r.next_attempt_at_ms > now) {
        return None;
    }
    let body = serde_json::json!({
        "subscription_id": sub.id,
        "wake_id": wake.wake_id,
        "generation": sub.generation,
        "streams": Subscriptions::streams_json(inner, sub, &wake.snapshot),
        "callback_url": format!("{}/__ds/subscriptions/{}/callback", sub.base_url, sub.id),
        "callback_token": inner.keys.token(&sub.id, sub.generation, &wake.wake_id),
    })
    .to_string()
    .into_bytes();
    let signature = inner.keys.sign(now / 1000, &body);
    let d = Delivery {
        id: sub.id.clone(),
        wake_id: wake.wake_id.clone(),
        generation: sub.generation,
        url: sub.config.webhook_url.clone().unwrap_or_default(),
        body,
        signature,
    };
    inner.inflight.insert(id.to_string());
    Some(d)
}

/// The delay before retry `attempt` (1-based): 1 s doubling to 60 s, with 20 % jitter.
pub fn backoff_ms(attempt: u32) -> u64 {
    let base = 1000u64.saturating_mul(1 << attempt.saturating_sub(1).min(6)).min(60_000);
    let jitter = rand::thread_rng().gen_range(0.8..=1.2);
    (base as f64 * jitter) as u64
}

async fn send(this: &Subscriptions, d: &Delivery) -> Result<Option<serde_json::Value>, String> {
    ssrf::check(&d.url, this.config.allow_loopback_http).await.map_err(|r| r.0)?;
    let resp = this
        .http
        .post(&d.url)
        .header("content-type", "application/json")
        .header("webhook-signature", &d.signature)
        .body(d.body.clone())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("webhook answered {}", resp.status()));
    }
    let bytes = resp.bytes().await.map_err(|e| e.to_string())?;
    Ok(serde_json::from_slice(&bytes).ok())
}

/// Sends one wake and records the outcome (auto-ack, waiting for the callback, or a retry).
pub async fn deliver(this: Arc<Subscriptions>, d: Delivery) {
    // With a shared engine the lease may have moved since this wake was prepared: the new
    // holder then sends it, under a generation of its own.
    if this.shared && !this.lease.held() {
        this.inner.lock().inflight.remove(&d.id);
        return;
    }
    let result = send(&this, &d).await;
    let now = now_ms();
    let attempt_failed = result.is_err();
    let recorded = this
        .mutate(|inner| -> Result<_, ()> {
            let Some(cur) = inner.subs.get(&d.id) else { return Ok((None, ())) };
            let current = cur.generation == d.generation && cur.wake.as_ref().is_some_and(|w| w.wake_id == d.wake_id);
            if !current {
                return Ok((None, ()));
            }
            let mut sub = cur.clone();
            match &result {
                Ok(body) if body.as_ref().and_then(|b| b.get("done")).and_then(|v| v.as_bool()) == Some(true) => {
                    let snapshot = sub.wake.take().map(|w| w.snapshot).unwrap_or_default();
                    for (p, t) in snapshot {
                        if let Some(l) = sub.links.get_mut(&p) {
                            l.acked = l.acked.max(t);
                        }
                    }
                    sub.retry = None;
                }
                Ok(_) => {
                    if let Some(w) = sub.wake.as_mut() {
                        w.delivered = true;
                        w.lease_until_ms = now + sub.config.lease_ttl_ms;
                    }
                    sub.retry = None;
                }
                Err(_) => {
                    let attempt = sub.retry.as_ref().map_or(1, |r| r.attempt + 1);
                    let next = now + backoff_ms(attempt);
                    sub.retry = Some(Retry {
                        attempt,
                        next_attempt_at_ms: next,
                    });
                    if let Some(w) = sub.wake.as_mut() {
                        w.lease_until_ms = w.lease_until_ms.max(next + sub.config.lease_ttl_ms);
                    }
                }
            }
            Ok((Some(Record::Put(Box::new(sub))), ()))
        })
        .await;
    // Only now: until the outcome is recorded, the loop must not send this wake again.
    this.inner.lock().inflight.remove(&d.id);
    if let (true, Err(why)) = (attempt_failed, &result) {
        tracing::warn!(subscription = %d.id, error = %why, "webhook delivery failed; retry scheduled");
    }
    if let Err(Refusal::Engine(e)) = recorded {
        tracing::error!(error = %e, "could not persist a delivery outcome");
    }
    this.kick.notify_one();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_minute_with_jitter() {
        for _ in 0..50 {
            let b1 = backoff_ms(1);
            assert!((800..=1200).contains(&b1));
            let b10 = backoff_ms(10);
            assert!((48_000..=72_000).contains(&b10));
        }
        assert!(backoff_ms(3) >= 3200 && backoff_ms(3) <= 4800);
    }
}
