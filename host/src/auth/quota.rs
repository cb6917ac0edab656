//! Quotas per client: a request rate (`governor`'s keyed GCRA limiter) and a count of live reads
//! (long-polls and SSE streams) held open at once. A client is a token's id in `token` mode, else
//! the client's address. Over a limit: 429 problem+json with `Retry-After`. Owns no protocol
//! behaviour and never names a token in an answer or a log.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::http::{header, StatusCode};
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};
use parking_lot::Mutex;

use crate::config::QuotasConfig;
use crate::http::error::ApiError;

/// Whom a quota counts.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ClientKey {
    Token(Arc<str>),
    Addr(IpAddr),
    /// No address known (an embedder's own transport).
    Unknown,
    /// Requests from this client whose credential was refused: a budget of their own, so a
    /// flood of bad tokens never starves the routes that need none.
    Refused(Box<ClientKey>),
}

/// The server's quotas.
pub struct Quotas {
    rate: Option<DefaultKeyedRateLimiter<ClientKey>>,
    live_max: u32,
    live: Mutex<HashMap<ClientKey, u32>>,
}

fn too_many(detail: String, retry_after_secs: u64) -> ApiError {
    ApiError::new(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests", detail).with_header(header::RETRY_AFTER, retry_after_secs.max(1))
}

impl Quotas {
    pub fn from_config(c: &QuotasConfig) -> Quotas {
        let rate = NonZeroU32::new(c.requests_per_second).map(|per_second| {
            let burst = NonZeroU32::new(c.request_burst).unwrap_or(per_second);
            DefaultKeyedRateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst))
        });
        Quotas {
            rate,
            live_max: c.live_connections,
            live: Mutex::new(HashMap::new()),
        }
    }

    /// No limits.
    pub fn none() -> Quotas {
        Quotas::from_config(&QuotasConfig::default())
    }

    /// Counts one request of `client`; 429 when it is over its rate.
    pub fn request(&self, client: &ClientKey) -> Result<(), ApiError> {
        let Some(limiter) = &self.rate else { return Ok(()) };
        limiter.check_key(client).map_err(|not_until| {
            let wait = not_until.wait_time_from(limiter.clock().now());
            too_many(
                "this client is over its request rate (quotas.requests_per_second)".into(),
                wait.as_secs_f64().ceil() as u64,
            )
        })
    }

    /// A slot for one live read of `client`, freed when dropped; 429 when all are taken.
    pub fn live(self: &Arc<Self>, client: &ClientKey) -> Result<Option<LiveSlot>, ApiError> {
        if self.live_max == 0 {
            return Ok(None);
        }
        let mut live = self.live.lock();
        let n = live.entry(client.clone()).or_insert(0);
        if *n >= self.live_max {
            return Err(too_many(
                format!("this client already holds {} live reads (quotas.live_connections)", self.live_max),
                1,
            ));
        }
        *n += 1;
        Ok(Some(LiveSlot {
            quotas: self.clone(),
            client: client.clone(),
        }))
    }

    /// Whether any quota counts clients (else a request's client, and so its address, is never
    /// looked at).
    pub fn counts_clients(&self) -> bool {
        self.rate.is_some() || self.live_max > 0
    }

    /// Whether a request rate is limited (else there is no rate state to forget).
    pub fn limits_rate(&self) -> bool {
        self.rate.is_some()
    }

    /// Forgets the rate state of clients idle long enough to be back at a full burst.
    pub fn forget_idle(&self) {
        if let Some(limiter) = &self.rate {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// One open live read, counted against its client until dropped.
pub struct LiveSlot {
    quotas: Arc<Quotas>,
    client: ClientKey,
}

impl Drop for LiveSlot {
    fn drop(&mut self) {
        let mut live = self.quotas.live.lock();
        if let Some(n) = live.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                live.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::response::IntoResponse;

    #[test]
    fn rate_and_live_slots() {
        let q = Arc::new(Quotas::from_config(&QuotasConfig {
            requests_per_second: 1,
            request_burst: 3,
            live_connections: 2,
        }));
        let a = ClientKey::Addr([127, 0, 0, 1].into());
        let b = ClientKey::Token(Arc::from("abc"));
        for _ in 0..3 {
            q.request(&a).unwrap();
        }
        let e = q.request(&a).unwrap_err();
        assert_eq!(e.into_response().status(), StatusCode::TOO_MANY_REQUESTS);
        q.request(&b).unwrap();
        let s1 = q.live(&a).unwrap();
        let _s2 = q.live(&a).unwrap();
        assert!(q.live(&a).is_err());
        assert!(q.live(&b).unwrap().is_some());
        drop(s1);
        assert!(q.live(&a).unwrap().is_some());
    }
}
