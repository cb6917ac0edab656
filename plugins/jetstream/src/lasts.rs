//! The last message of many subjects of one JetStream stream in one round trip (batched direct
//! get, `multi_last`, nats-server 2.11+), for listings. Any replica answers, so an answer may lag
//! the leader by the replication delay; callers check what must be current. Reads only.

use std::collections::HashMap;

use async_nats::jetstream::message::StreamMessage;
use durable_streams_core::abi::EngineError;
use futures_util::StreamExt;

use crate::cluster::{unavailable, Cluster};

/// Subjects asked for in one request.
const PER_REQUEST: usize = 256;

/// The last message of each of `subjects` on `stream`, by subject. Subjects without messages,
/// and any whose answer did not arrive within the request timeout, are absent (the caller reads
/// those from the leader).
pub async fn last_of_many(c: &Cluster, stream: &str, subjects: &[String]) -> Result<HashMap<String, StreamMessage>, EngineError> {
    let parts = subjects.chunks(PER_REQUEST).map(|part| one_request(c, stream, part));
    let mut found = HashMap::with_capacity(subjects.len());
    for part in futures_util::future::join_all(parts).await {
        found.extend(part?);
    }
    Ok(found)
}

async fn one_request(c: &Cluster, stream: &str, subjects: &[String]) -> Result<HashMap<String, StreamMessage>, EngineError> {
    let mut found = HashMap::with_capacity(subjects.len());
    if subjects.is_empty() {
        return Ok(found);
    }
    let inbox = c.client.new_inbox();
    let mut replies = c
        .client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| unavailable(format!("read {stream}: {e}")))?;
    let req = serde_json::json!({"multi_last": subjects, "batch": subjects.len()});
    c.client
        .publish_with_reply(format!("$JS.API.DIRECT.GET.{stream}"), inbox, req.to_string().into())
        .await
        .map_err(|e| unavailable(format!("read {stream}: {e}")))?;
    while found.len() < subjects.len() {
        let m = match tokio::time::timeout(c.timeout(), replies.next()).await {
            Ok(Some(m)) => m,
            _ => break,
        };
        if m.status.is_some() {
            break; // 204: end of the batch; 404: none of the subjects has a message
        }
        if let Ok(sm) = StreamMessage::try_from(m) {
            found.insert(sm.subject.to_string(), sm);
        }
    }
    let _ = replies.unsubscribe().await;
    Ok(found)
}
