//! Background TTL sweeper: asks the engine for expired streams and deletes each if still expired.

use std::sync::Arc;
use std::time::Duration;

use abi_stable::std_types::RStr;
use durable_streams_core::abi::{DeleteRequest, ExpiredRequest};

use crate::state::{now_ms, AppState};

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
