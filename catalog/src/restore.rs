//! Backups through the engine: a stream's state as one consistent snapshot
//! (`ext::DESCRIBE`: retained start, tail, closure and writer state together), a stream created
//! where an exported one started (`ext::RESTORE`), and its writer state set after its bytes are
//! back (`ext::RESTORE_WRITER`), so that a restored stream answers exactly as the original did
//! (same offsets, producer retries recognised as duplicates). Committed like any change.

use durable_streams_core::abi::*;
use serde::Deserialize;

use crate::catalog::Catalog;
use crate::persist::{After, Appended, Batch, Change, Persistence};

pub use durable_streams_core::backup::Writer;
use durable_streams_core::backup::{Restore as RestoreInput, RestoreWriter as WriterInput};

#[derive(Deserialize)]
struct NameInput {
    name: String,
    #[serde(default)]
    now_ms: u64,
}

fn input<'a, T: Deserialize<'a>>(op: &str, bytes: &'a [u8]) -> Result<T, EngineError> {
    serde_json::from_slice(bytes).map_err(|e| EngineError::new(ErrorCode::INVALID_ARGUMENT, format!("{op} input: {e}")))
}

impl<P: Persistence> Catalog<P> {
    /// `ext::DESCRIBE`: `{"start", "tail", "writer"}` read together.
    pub(crate) fn describe_ext(&self, bytes: &[u8]) -> Result<Vec<u8>, EngineError> {
        let req: NameInput = input(ext::DESCRIBE, bytes)?;
        let entry = self.live(&req.name, req.now_ms)?;
        let st = entry.state.lock();
        let v = serde_json::json!({"start": st.start, "tail": st.tail, "writer": Writer::of(&st.writer())});
        Ok(v.to_string().into_bytes())
    }

    /// `ext::RESTORE`: creates the stream with no data, its offsets starting at `start`.
    pub(crate) fn restore_ext(&self, bytes: &[u8]) -> Result<Vec<u8>, EngineError> {
        let req: RestoreInput = input(ext::RESTORE, bytes)?;
        let create = req.create_request();
        if self.streams.read().contains_key(&req.name) {
            return Err(EngineError::new(
                ErrorCode::CONFIG_CONFLICT,
                format!("stream '{}' exists; a restore creates it", req.name),
            ));
        }
        let out = self.create_at(&create, req.start)?;
        if !out.created {
            return Err(EngineError::new(
                ErrorCode::CONFIG_CONFLICT,
                format!("stream '{}' exists; a restore creates it", req.name),
            ));
        }
        Ok(serde_json::json!({"tail": out.meta.tail}).to_string().into_bytes())
    }

    /// `ext::RESTORE_WRITER`: gives the stream the writer state (producers, `Stream-Seq`,
    /// closure) of the one it restores, committed as appends without bytes.
    pub(crate) fn restore_writer_ext(&self, bytes: &[u8]) -> Result<Vec<u8>, EngineError> {
        let req: WriterInput = input(ext::RESTORE_WRITER, bytes)?;
        let _w = self.writer.write();
        let entry = self.live(&req.name, req.now_ms)?;
        let (tail, mut writer) = {
            let st = entry.state.lock();
            (st.tail, st.writer())
        };
        let updates = req.writer.updates();
        if updates.is_empty() {
            return Ok(b"{}".to_vec());
        }
        for u in &updates {
            writer.apply(u);
        }
        let changes: Vec<Change<'_>> = updates
            .iter()
            .map(|update| {
                Change::Append(Appended {
                    id: entry.id,
                    start: tail,
                    body: &[],
                    update,
                })
            })
            .collect();
        let after = [After {
            id: entry.id,
            tail,
            writer: &writer,
        }];
        let receipts = self.store.commit(&Batch {
            changes: &changes,
            after: &after,
        })?;
        for (c, r) in changes.iter().zip(&receipts) {
            P::apply(&entry.data, c, r);
        }
        entry.state.lock().set_writer(writer);
        entry.touch(req.now_ms);
        Ok(b"{}".to_vec())
    }
}
