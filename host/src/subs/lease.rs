//! The delivery lease: with an engine shared by several hosts (`EXTERNAL_WRITERS`), one host at
//! a time issues wakes and sends webhooks. The lease is a compare-and-set register in the
//! engine (`ext::REGISTER_*`); its holder rewrites it every third of the lease time, and another
//! host takes it over once it has seen the register unchanged for a whole lease time (so clocks
//! never need to agree). Owns only the lease; knows nothing of subscriptions.

use std::time::{Duration, Instant};

use abi_stable::std_types::{RSlice, RStr};
use durable_streams_core::abi::{ext, EngineError, ErrorCode};
use parking_lot::Mutex;

use crate::plugin::Storage;

/// The register's key.
pub const KEY: &str = "__ds/lease/subscription-delivery";

/// How the lease is timed.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Unchanged for this long, the lease is free to take.
    pub ttl: Duration,
}

impl Timing {
    fn renew_every(&self) -> Duration {
        self.ttl / 3
    }
    /// The holder acts only this long after its last successful write: well before anyone else
    /// may take over (they wait a whole `ttl` from when they saw that write).
    fn valid_for(&self) -> Duration {
        self.ttl * 2 / 3
    }
}

#[derive(Default)]
struct View {
    /// The register as last read: (revision, value, when first seen at this revision).
    seen: Option<(u64, String, Instant)>,
    /// Our own last successful write: (revision, when).
    mine: Option<(u64, Instant)>,
    last_step: Option<Instant>,
    unsupported: bool,
    /// Given up for good (the host is shutting down).
    released: bool,
}

/// This host's side of the lease.
pub struct Lease {
    pub holder: String,
    timing: Timing,
    view: Mutex<View>,
    /// How many times this host has taken the lease (0: never).
    terms: std::sync::atomic::AtomicU64,
}

#[derive(serde::Deserialize)]
struct Got {
    revision: u64,
    value: String,
}

#[derive(serde::Deserialize)]
struct SetOk {
    revision: u64,
}

fn call(storage: &Storage, op: &str, input: serde_json::Value) -> Result<serde_json::Value, EngineError> {
    let bytes = input.to_string().into_bytes();
    let out = storage.call_sync(|e| e.extension(RStr::from(op), RSlice::from(bytes.as_slice())))?;
    serde_json::from_slice(out.as_slice())
        .map_err(|e| EngineError::new(ErrorCode::INTERNAL, format!("engine answered {op} with undecodable JSON: {e}")))
}

impl Lease {
    pub fn new(holder: String, timing: Timing) -> Lease {
        Lease {
            holder,
            timing,
            view: Mutex::new(View::default()),
            terms: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// This host's current term: grows each time it takes the lease (from another holder, or
    /// after losing it), so the delivery loop knows when to fence what an earlier holder left.
    pub fn term(&self) -> u64 {
        self.terms.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Whether this host holds the lease now.
    pub fn held(&self) -> bool {
        let v = self.view.lock();
        !v.released && (v.unsupported || v.mine.is_some_and(|(_, at)| at.elapsed() < self.timing.valid_for()))
    }

    /// Reads the register and renews or takes the lease when due. Blocking (engine calls): run
    /// it on the blocking pool for blocking engines.
    pub fn step(&self, storage: &Storage) {
        let now = Instant::now();
        {
            let mut v = self.view.lock();
            if v.released || v.unsupported || v.last_step.is_some_and(|t| now.duration_since(t) < Duration::from_millis(500)) {
                return;
            }
            v.last_step = Some(now);
        }
        let got = match call(storage, ext::REGISTER_GET, serde_json::json!({"key": KEY}))
            .and_then(|j| serde_json::from_value::<Got>(j).map_err(|e| EngineError::new(ErrorCode::INTERNAL, e.to_string())))
        {
            Ok(g) => g,
            Err(e) if e.code == ErrorCode::UNSUPPORTED => {
                tracing::warn!(
                    "the storage engine is shared by several hosts but has no register for a delivery lease; \
                     every host delivers subscription wakes (duplicates are possible)"
                );
                self.view.lock().unsupported = true;
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, "could not read the delivery lease");
                return;
            }
        };
        // A revision counts as seen from when the read returned, not when it was sent: a slow
        // read may have been answered after the holder's write, and the wait for a takeover
        // must start after that write.
        let read_at = Instant::now();
        let should_write = {
            let mut v = self.view.lock();
            if v.seen.as_ref().is_none_or(|(r, _, _)| *r != got.revision) {
                v.seen = Some((got.revision, got.value.clone(), read_at));
            }
            let since = v.seen.as_ref().map_or(Duration::ZERO, |(_, _, t)| read_at.duration_since(*t));
            let ours = v.mine.is_some_and(|(r, _)| r == got.revision) && got.value == self.holder;
            let due = v.mine.is_none_or(|(_, at)| now.duration_since(at) >= self.timing.renew_every());
            if ours {
                due
            } else {
                v.mine = None;
                got.value.is_empty() || since >= self.timing.ttl
            }
        };
        if !should_write {
            return;
        }
        let input = serde_json::json!({"key": KEY, "expect": got.revision, "value": self.holder});
        match call(storage, ext::REGISTER_SET, input)
            .and_then(|j| serde_json::from_value::<SetOk>(j).map_err(|e| EngineError::new(ErrorCode::INTERNAL, e.to_string())))
        {
            Ok(ok) => {
                let mut v = self.view.lock();
                // A new term when the lease came from another holder (or none); regained after a
                // failed write of our own, no other host can have delivered meanwhile.
                if v.mine.is_none() && got.value != self.holder {
                    self.terms.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                    tracing::info!(holder = %self.holder, "this host now delivers subscription wakes");
                }
                v.mine = Some((ok.revision, now));
                v.seen = Some((ok.revision, self.holder.clone(), now));
            }
            Err(e) => {
                self.view.lock().mine = None;
                tracing::debug!(error = %e, "could not write the delivery lease");
            }
        }
    }

    /// Gives the lease up (at shutdown) so another host takes it over at once.
    pub fn release(&self, storage: &Storage) {
        let mine = {
            let mut v = self.view.lock();
            v.released = true;
            v.mine.take()
        };
        if let Some((rev, _)) = mine {
            let _ = call(
                storage,
                ext::REGISTER_SET,
                serde_json::json!({"key": KEY, "expect": rev, "value": ""}),
            );
        }
    }
}
