//! The cluster's clock as this host can know it: the catalogue stream leader's time, read from
//! a stream-info answer (`ts`), as an offset from this process's wall clock. Reads only.

use std::time::{SystemTime, UNIX_EPOCH};

use durable_streams_core::abi::EngineError;
use durable_streams_core::ttl::parse_expires_at;

use crate::cluster::{unavailable, Cluster};

/// One reading: `wall + offset_ms` is never ahead of the cluster's time (the leader stamped its
/// answer before it arrived), and behind it by at most `round_trip_ms`.
#[derive(Debug, serde::Serialize)]
pub struct Reading {
    pub offset_ms: i64,
    pub round_trip_ms: u64,
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[derive(serde::Deserialize)]
struct Info {
    #[serde(default)]
    ts: Option<String>,
}

/// Reads the cluster's clock once.
pub async fn read(c: &Cluster) -> Result<Reading, EngineError> {
    let subject = format!("$JS.API.STREAM.INFO.{}", c.catalog_stream());
    let sent = wall_ms();
    let answer = tokio::time::timeout(c.timeout(), c.client.request(subject, bytes::Bytes::new()))
        .await
        .map_err(|_| unavailable("clock: stream info timed out"))?
        .map_err(|e| unavailable(format!("clock: {e}")))?;
    let received = wall_ms();
    let info: Info = serde_json::from_slice(&answer.payload).map_err(|e| unavailable(format!("clock: stream info not understood: {e}")))?;
    let ts = info.ts.ok_or_else(|| unavailable("clock: stream info carries no time stamp"))?;
    let leader_ms = parse_expires_at(&ts).map_err(|_| unavailable(format!("clock: time stamp '{ts}' not understood")))?;
    Ok(Reading {
        offset_ms: leader_ms as i64 - received,
        round_trip_ms: (received - sent).max(0) as u64,
    })
}
