//! Retention rules (`[retention]`): by stream-name prefix, a maximum age and/or a maximum size;
//! a periodic pass asks the engine to drop each matching stream's head (`ext::TRIM`). Owns the
//! rules, the append-time marks age rules need, and the pass; never touches the server's own
//! `__ds/` streams. An engine without retention answers `UNSUPPORTED`, reported once.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use abi_stable::std_types::{RSlice, RStr};
use durable_streams_core::abi::{ext, ErrorCode};
use parking_lot::Mutex;

use crate::clock::now_ms;
use crate::config::RetentionRule;
use crate::state::AppState;

/// Per stream: (time, position) marks, oldest first: every byte below `position` was appended
/// at or before `time`. Kept only for streams under an age rule.
type Marks = VecDeque<(u64, u64)>;

/// The rules and what age rules need to know.
pub struct Retention {
    rules: Vec<RetentionRule>,
    marks: Mutex<HashMap<String, Marks>>,
    unsupported: AtomicBool,
}

impl Retention {
    pub fn new(rules: Vec<RetentionRule>) -> Retention {
        Retention {
            rules,
            marks: Mutex::new(HashMap::new()),
            unsupported: AtomicBool::new(false),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The mark spacing for `name`: a sixteenth of its shortest age rule, at least a second;
    /// `None` when no age rule covers it.
    fn spacing_ms(&self, name: &str) -> Option<u64> {
        self.rules
            .iter()
            .filter(|r| name.starts_with(&r.prefix))
            .filter_map(|r| r.max_age_secs)
            .min()
            .map(|age| (age * 1000 / 16).max(1000))
    }

    /// Told after every acknowledged append: `tail` is the stream's tail after it.
    pub fn note_append(&self, name: &str, tail: u64) {
        if self.rules.is_empty() || name.starts_with(durable_streams_core::name::INTERNAL_PREFIX) {
            return;
        }
        let Some(spacing) = self.spacing_ms(name) else { return };
        let mut marks = self.marks.lock();
        mark(marks.entry(name.to_string()).or_default(), now_ms(), tail, spacing);
    }

    /// The position below which `name`'s bytes were all appended before `cutoff_ms`. A stream
    /// without marks (first seen since start) gets one now: its bytes are taken as appended
    /// now, so a restart delays age-based dropping by up to the age, never hastens it.
    /// Bytes this host did not see appended (another host's, in a shared mode) are marked when
    /// a pass first sees the tail past the last mark: late by up to a pass, never early.
    fn aged_before(&self, name: &str, cutoff_ms: u64, tail: u64) -> u64 {
        let spacing = self.spacing_ms(name).unwrap_or(1000);
        let mut marks = self.marks.lock();
        let m = marks.entry(name.to_string()).or_default();
        if m.is_empty() {
            m.push_back((now_ms(), tail));
            return 0;
        }
        if m.back().is_some_and(|last| tail > last.1) {
            mark(m, now_ms(), tail, spacing);
        }
        let Some(i) = m.iter().rposition(|(t, _)| *t <= cutoff_ms) else {
            return 0;
        };
        let pos = m[i].1;
        m.drain(..i);
        pos
    }

    /// Where `rule` would have `name` start: max_bytes from the tail, and / or max age.
    fn before(&self, rule: &RetentionRule, name: &str, tail: u64, now: u64) -> u64 {
        let by_size = rule.max_bytes.map_or(0, |max| tail.saturating_sub(max));
        let by_age = rule
            .max_age_secs
            .map_or(0, |age| self.aged_before(name, now.saturating_sub(age * 1000), tail));
        by_size.max(by_age)
    }
}

/// Adds the mark "every byte below `tail` was appended by `now`", merged into the last one when
/// both fall in the same `spacing` slot (the merged mark takes the later time: never early).
fn mark(m: &mut Marks, now: u64, tail: u64, spacing: u64) {
    match m.back_mut() {
        Some(last) if last.0 / spacing == now / spacing => *last = (now, tail.max(last.1)),
        _ => m.push_back((now, tail)),
    }
}

/// Runs forever: one pass every `interval`.
pub async fn run(state: Arc<AppState>, retention: Arc<Retention>, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if retention.unsupported.load(Ordering::Relaxed) {
            return;
        }
        pass(&state, &retention).await;
    }
}

/// Applies every rule to every stream it covers.
async fn pass(state: &AppState, retention: &Retention) {
    let mut seen = HashSet::new();
    for rule in &retention.rules {
        let mut after: Option<String> = None;
        loop {
            let page = state.storage.list_page(rule.prefix.clone(), after.clone(), 1000).await;
            let page = match page {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, prefix = %rule.prefix, "retention: listing failed");
                    break;
                }
            };
            for l in page.iter() {
                let name = l.name.as_str();
                if name.starts_with(durable_streams_core::name::INTERNAL_PREFIX) {
                    continue;
                }
                seen.insert(name.to_string());
                let before = retention.before(rule, name, l.meta.tail, now_ms());
                if before > 0 && !trim(state, retention, name, before).await {
                    return;
                }
            }
            if page.len() < 1000 {
                break;
            }
            after = page.last().map(|l| l.name.to_string());
        }
    }
    retention.marks.lock().retain(|name, _| seen.contains(name));
}

/// One trim; false when the engine cannot (reported once, and the rules are left alone).
async fn trim(state: &AppState, retention: &Retention, name: &str, before: u64) -> bool {
    let input = serde_json::json!({"name": name, "before": before, "now_ms": now_ms()}).to_string();
    let r = state
        .storage
        .call(move |e| e.extension(RStr::from(ext::TRIM), RSlice::from(input.as_bytes())))
        .await;
    match r {
        Ok(out) => {
            let v: serde_json::Value = serde_json::from_slice(out.as_slice()).unwrap_or_default();
            let dropped = v["dropped_bytes"].as_u64().unwrap_or(0);
            if dropped > 0 {
                state.metrics.retention_trims.inc();
                state.metrics.retention_dropped_bytes.inc_by(dropped);
                tracing::debug!(stream = %name, start = v["start"].as_u64().unwrap_or(0), dropped, "retention dropped a stream's head");
            }
            true
        }
        Err(e) if e.code == ErrorCode::UNSUPPORTED => {
            if !retention.unsupported.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    mode = %state.config.storage.mode,
                    "retention rules are configured but the storage engine cannot drop a stream's head (its answer: {}); the rules are not applied",
                    e.message
                );
            }
            false
        }
        Err(e) => {
            tracing::debug!(stream = %name, error = %e, "retention trim skipped");
            true
        }
    }
}
