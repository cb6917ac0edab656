//! Record boundaries in the catalogue (`ext::RECORDS`): where each append of a stream began in a
//! range of positions, a fork's inherited range from its source chain. Decides the range (the
//! retained start, the tail, the fork position); the store finds the boundaries. Reads only.

use durable_streams_core::abi::*;

use crate::catalog::Catalog;
use crate::entry::Entry;
use crate::persist::Persistence;

/// The most starts one answer holds.
const MAX_LIMIT: u32 = 10_000;

#[derive(serde::Deserialize)]
struct RecordsInput {
    name: String,
    from: u64,
    #[serde(default = "u64_max")]
    to: u64,
    #[serde(default = "default_limit")]
    limit: u32,
    #[serde(default)]
    now_ms: u64,
}

fn u64_max() -> u64 {
    u64::MAX
}

fn default_limit() -> u32 {
    1000
}

impl<P: Persistence> Catalog<P> {
    /// The `ext::RECORDS` operation: JSON in, JSON out.
    pub(crate) fn records_ext(&self, input: &[u8]) -> Result<Vec<u8>, EngineError> {
        let req: RecordsInput =
            serde_json::from_slice(input).map_err(|e| EngineError::new(ErrorCode::INVALID_ARGUMENT, format!("records input: {e}")))?;
        let entry = self.live(&req.name, req.now_ms)?;
        let (tail, start) = {
            let st = entry.state.lock();
            (st.tail, st.start)
        };
        let limit = req.limit.clamp(1, MAX_LIMIT) as usize;
        let mut out = Vec::new();
        self.starts(&entry, req.from.max(start), req.to.min(tail), limit, &mut out)?;
        Ok(serde_json::json!({ "starts": out }).to_string().into_bytes())
    }

    fn starts(&self, entry: &Entry<P::Data>, from: u64, to: u64, limit: usize, out: &mut Vec<u64>) -> Result<(), EngineError> {
        if from >= to {
            return Ok(());
        }
        if from < entry.base {
            if let Some((_, src)) = &entry.fork {
                self.starts(src, from, to.min(entry.base), limit, out)?;
            }
        }
        let own = from.max(entry.base);
        if out.len() >= limit || own >= to {
            return Ok(());
        }
        let found = self
            .store
            .record_starts(entry.id, &entry.data, own..to, limit - out.len())
            .unwrap_or_else(|| {
                Err(EngineError::new(
                    ErrorCode::UNSUPPORTED,
                    format!("{} keeps no record boundaries", self.store.describe()),
                ))
            })?;
        out.extend(found);
        Ok(())
    }
}
