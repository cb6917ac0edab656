//! The server's clock: the wall clock, corrected by the engine's own when the engine keeps one
//! (the `jetstream` mode's cluster time), so every host decides TTL expiry, subscription leases
//! and token expiry on one time. Owns the correction and its upkeep; no decisions of its own.
//!
//! One correction per process: a process serves one engine (embedders running two servers on
//! different replicated engines in one process share it).

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use abi_stable::std_types::{RSlice, RStr};
use durable_streams_core::abi::{ext, EngineError, ErrorCode};

use crate::plugin::Storage;

/// Milliseconds added to the wall clock: the engine's time minus ours (a lower bound).
static OFFSET_MS: AtomicI64 = AtomicI64::new(0);
/// Whether a correction was ever read (for the first reading's log line).
static SYNCED: AtomicBool = AtomicBool::new(false);

/// Beyond this, a host's clock is reported as off (the engine's own margins cover less).
const WARN_OFF_MS: i64 = 1000;

/// This process's wall clock in Unix milliseconds, uncorrected.
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Unix milliseconds on the server's clock: the wall clock plus the engine's correction.
pub fn now_ms() -> u64 {
    wall_ms().saturating_add_signed(OFFSET_MS.load(Ordering::Relaxed))
}

/// The correction in use, in milliseconds (0 for engines without a clock of their own).
pub fn offset_ms() -> i64 {
    OFFSET_MS.load(Ordering::Relaxed)
}

/// What one reading of the engine's clock found.
#[derive(Debug, serde::Deserialize)]
struct Reading {
    offset_ms: i64,
    #[serde(default)]
    round_trip_ms: u64,
}

/// Why a reading gave nothing.
#[derive(Debug, thiserror::Error)]
pub enum ClockError {
    #[error("the engine keeps no clock of its own")]
    Unsupported,
    #[error("the engine's clock could not be read: {0}")]
    Engine(EngineError),
    #[error("the engine's clock answer is not understood: {0}")]
    Answer(serde_json::Error),
}

fn apply(bytes: &[u8]) -> Result<(), ClockError> {
    let r: Reading = serde_json::from_slice(bytes).map_err(ClockError::Answer)?;
    let before = OFFSET_MS.swap(r.offset_ms, Ordering::Relaxed);
    let first = !SYNCED.swap(true, Ordering::Relaxed);
    let was_off = before.abs() > WARN_OFF_MS;
    if r.offset_ms.abs() > WARN_OFF_MS && (first || !was_off) {
        tracing::warn!(
            offset_ms = r.offset_ms,
            round_trip_ms = r.round_trip_ms,
            "this host's clock is off the storage's; TTLs, leases and token expiry follow the storage's time"
        );
    } else if first {
        tracing::info!(
            offset_ms = r.offset_ms,
            round_trip_ms = r.round_trip_ms,
            "clock read from the storage"
        );
    }
    Ok(())
}

fn classify(e: EngineError) -> ClockError {
    if e.code == ErrorCode::UNSUPPORTED {
        ClockError::Unsupported
    } else {
        ClockError::Engine(e)
    }
}

/// Reads the engine's clock once, now (at start, before anything is served).
pub fn sync_now(storage: &Storage) -> Result<(), ClockError> {
    let bytes = storage
        .call_sync(|e| e.extension(RStr::from(ext::CLOCK), RSlice::from(&b""[..])))
        .map_err(classify)?;
    apply(bytes.as_slice())
}

/// At start, before anything is served: reads the engine's clock, trying for up to five
/// seconds; answers whether the engine keeps a clock (to be read again periodically).
pub fn sync_at_start(storage: &Storage) -> bool {
    for attempt in 0..10 {
        match sync_now(storage) {
            Ok(()) => return true,
            Err(ClockError::Unsupported) => return false,
            Err(e) if attempt == 9 => {
                tracing::warn!(error = %e, "the engine's clock could not be read at start; this host's own clock is used until it can be");
            }
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
    true
}

/// Reads the engine's clock every `interval` until the engine says it keeps none.
pub async fn run(storage: Storage, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let r = storage
            .call(|e| e.extension(RStr::from(ext::CLOCK), RSlice::from(&b""[..])))
            .await
            .map_err(classify)
            .and_then(|b| apply(b.as_slice()));
        match r {
            Ok(()) => {}
            Err(ClockError::Unsupported) => return,
            Err(e) => tracing::debug!(error = %e, "clock reading skipped; the last correction stays"),
        }
    }
}
