//! Background TTL upkeep: the sweeper asks the engine for expired streams and deletes each if
//! still expired; `save_access` has the engine save sliding-TTL access times periodically.

use std::sync::Arc;
use std::time::Duration;

use abi_stable::std_types::RSlice;
use abi_stable::std_types::RStr;
use durable_streams_core::abi::{ext, DeleteRequest, ErrorCode, ExpiredRequest};

use crate::clock::now_ms;
use crate::state::AppState;

/// Runs forever; one pass every `interval`.
pub async fn run(state: Arc<AppState>, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let names = match state
            .storage
            .call(|e| {
                e.list_expired(&ExpiredRequest {
                    now_ms: now_ms(),
                    limit: 1000,
                })
            })
            .await
        {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "expired-stream listing failed");
                continue;
            }
        };
        for name in names {
            let n = name.to_string();
            let r = state
                .storage
                .call(move |e| {
                    e.delete(&DeleteRequest {
                        name: RStr::from(n.as_str()),
                        now_ms: now_ms(),
                        only_if_expired: true,
                    })
                })
                .await;
            match r {
                Ok(()) => state.live.wake(name.as_str()),
                Err(e) => tracing::debug!(stream = %name, error = %e, "sweeper delete skipped"),
            }
        }
    }
}

/// Runs until the engine says it keeps no access times: one save every `interval`.
pub async fn save_access(state: Arc<AppState>, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let input = format!("{{\"now_ms\": {}}}", now_ms());
        let r = state
            .storage
            .call(move |e| e.extension(RStr::from(ext::SAVE_ACCESS), RSlice::from(input.as_bytes())))
            .await;
        match r {
            Ok(out) => tracing::debug!(answer = %String::from_utf8_lossy(out.as_slice()), "sliding-TTL access times saved"),
            Err(e) if e.code == ErrorCode::UNSUPPORTED => {
                tracing::debug!(error = %e, "the engine keeps no sliding-TTL access times");
                return;
            }
            Err(e) => tracing::warn!(error = %e, "saving sliding-TTL access times failed; retried next time"),
        }
    }
}
