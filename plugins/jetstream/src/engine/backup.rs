//! Backups in the cluster: a stream's retained start, tail and writer state from one tail read
//! (`ext::DESCRIBE`), a stream created where an exported one started (`ext::RESTORE`), and its
//! writer state set after its bytes are back (`ext::RESTORE_WRITER`, one empty message carrying
//! the state, compare-and-set like an append). Knows no export format.

use bytes::Bytes;
use durable_streams_core::abi::*;
use durable_streams_core::backup::{Restore, RestoreWriter, Writer};
use serde::Deserialize;

use super::retention::{input, retained};
use super::JetStreamStorage;
use crate::cluster::unavailable;
use crate::data::{self, Appended};

#[derive(Deserialize)]
struct NameInput {
    name: String,
    #[serde(default)]
    now_ms: u64,
}

impl JetStreamStorage {
    /// `ext::DESCRIBE`: `{"start", "tail", "writer"}` from one tail read.
    pub(super) async fn describe_ext(&self, bytes: &[u8]) -> Result<Vec<u8>, EngineError> {
        let req: NameInput = input(ext::DESCRIBE, bytes)?;
        let (entry, tail) = self.live(&req.name, req.now_ms).await?;
        let v = serde_json::json!({
            "start": retained(&entry.rec, &tail),
            "tail": tail.state.tail,
            "writer": Writer::of(&tail.state.writer()),
        });
        Ok(v.to_string().into_bytes())
    }

    /// `ext::RESTORE`: creates the stream with no data, its offsets starting at `start`.
    pub(super) async fn restore_ext(&self, bytes: &[u8]) -> Result<Vec<u8>, EngineError> {
        let req: Restore = input(ext::RESTORE, bytes)?;
        let out = self.create_at(&req.create_request(), req.start).await?;
        if !out.created {
            return Err(EngineError::new(
                ErrorCode::CONFIG_CONFLICT,
                format!("stream '{}' exists; a restore creates it", req.name),
            ));
        }
        Ok(serde_json::json!({"tail": out.meta.tail}).to_string().into_bytes())
    }

    /// `ext::RESTORE_WRITER`: gives the stream the writer state (producers, `Stream-Seq`,
    /// closure) of the one it restores.
    pub(super) async fn restore_writer_ext(&self, bytes: &[u8]) -> Result<Vec<u8>, EngineError> {
        let req: RestoreWriter = input(ext::RESTORE_WRITER, bytes)?;
        let updates = req.writer.updates();
        if updates.is_empty() {
            return Ok(b"{}".to_vec());
        }
        for _ in 0..50 {
            let (entry, tail) = self.live(&req.name, req.now_ms).await?;
            let mut writer = tail.state.writer();
            for u in &updates {
                writer.apply(u);
            }
            let next = tail.state.next(&writer, 0);
            let subj = entry.subject.clone();
            *entry.tail.lock() = None;
            if let Appended::Stored(seq) = data::append(&self.c, &subj, &tail, &next, Bytes::new(), &req.name).await? {
                *entry.tail.lock() = Some(std::sync::Arc::new(data::Tail { state: next, seq }));
                return Ok(b"{}".to_vec());
            }
        }
        Err(unavailable(format!(
            "stream '{}' kept changing while its state was restored",
            req.name
        )))
    }
}
