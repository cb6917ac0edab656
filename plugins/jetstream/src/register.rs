//! Compare-and-set registers (`ext::REGISTER_GET` / `ext::REGISTER_SET`): one subject per key,
//! `<ns>.cat.reg.<hash>`, in the catalogue stream (last value only, so a register never grows).
//! The revision is the JetStream sequence of its last write. Knows no stream record.

use async_nats::jetstream::message::PublishMessage as Publish;
use durable_streams_core::abi::{EngineError, ErrorCode};
use serde::{Deserialize, Serialize};

use crate::catalog::{self, hash_of};
use crate::cluster::{unavailable, Cluster};

#[derive(Deserialize)]
pub struct GetInput {
    pub key: String,
}

#[derive(Deserialize)]
pub struct SetInput {
    pub key: String,
    pub expect: u64,
    pub value: String,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    key: String,
    value: String,
}

fn subject(c: &Cluster, key: &str) -> String {
    format!("{}.cat.reg.{}", c.cfg.namespace, hash_of(key))
}

fn invalid(e: impl std::fmt::Display) -> EngineError {
    EngineError::new(ErrorCode::INVALID_ARGUMENT, format!("register request: {e}"))
}

/// Parses an extension input.
pub fn input<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, EngineError> {
    serde_json::from_slice(bytes).map_err(invalid)
}

/// `{"revision", "value"}` of `key` (a leader read: it sees every acknowledged write).
pub async fn get(c: &Cluster, key: &str) -> Result<serde_json::Value, EngineError> {
    let subject = subject(c, key);
    let Some(m) = catalog::last_on(c, &subject).await? else {
        return Ok(serde_json::json!({"revision": 0, "value": ""}));
    };
    let s: Stored = serde_json::from_slice(&m.payload)
        .map_err(|e| EngineError::new(ErrorCode::CORRUPT, format!("undecodable register on {subject}: {e}")))?;
    Ok(serde_json::json!({"revision": m.sequence, "value": s.value}))
}

/// Writes `value` if the register is still at revision `expect`: `{"revision"}` or
/// `CONFIG_CONFLICT`. A lost acknowledgement is retried with the same message id.
pub async fn set(c: &Cluster, req: &SetInput) -> Result<serde_json::Value, EngineError> {
    let subject = subject(c, &req.key);
    let payload = serde_json::to_vec(&Stored {
        key: req.key.clone(),
        value: req.value.clone(),
    })
    .map_err(invalid)?;
    let id = format!("reg.{}.{}.{:016x}", hash_of(&req.key), req.expect, rand::random::<u64>());
    let deadline = std::time::Instant::now() + c.timeout() * 3;
    loop {
        let msg = Publish::build()
            .payload(payload.clone().into())
            .message_id(&id)
            .expected_last_subject_sequence(req.expect);
        let attempt = async {
            let ack = c.js.send_publish(subject.clone(), msg).await?;
            ack.await
        };
        match attempt.await {
            Ok(ack) => return Ok(serde_json::json!({"revision": ack.sequence})),
            Err(e) => {
                use async_nats::jetstream::context::PublishErrorKind as K;
                match e.kind() {
                    K::WrongLastSequence => {
                        return Err(EngineError::new(
                            ErrorCode::CONFIG_CONFLICT,
                            format!("register '{}' moved past revision {}", req.key, req.expect),
                        ))
                    }
                    _ if std::time::Instant::now() < deadline => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
                    _ => return Err(unavailable(format!("write register: {e}; the outcome is unknown"))),
                }
            }
        }
    }
}
