//! `AcidStore`: the acid engine's persistence over sharded redb databases. A stream lives in
//! one shard (by a hash of its name); a batch is one write transaction in its shard (catalogue,
//! state and data rows together), durable at commit for file shards. Applies no protocol rule.

use durable_streams_catalog::{Batch, Change, Persistence, Span};
use durable_streams_core::abi::{ext, EngineError, ErrorCode};
use durable_streams_core::rules::WriterState;
use parking_lot::Mutex;

use crate::rows::{decode_catalog, encode_catalog, encode_state, CatalogRow};
use redb::{ReadableTable, TableHandle};

use crate::shard::{db_err, Shard, ACCESS, DATA, META, STATE, STREAMS, TRIMS};

/// The shards and each one's next id counter.
pub struct AcidStore {
    pub(crate) shards: Vec<Shard>,
    pub(crate) counters: Mutex<Vec<u64>>,
    /// Streams found at open (for the `recovery` extension).
    pub(crate) recovered_streams: usize,
}

/// Stable across restarts (FNV-1a), unlike std's hasher.
pub fn shard_of(name: &str, n: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % n as u64) as usize
}

/// Ids carry their shard in the low 16 bits.
fn shard_of_id(id: u64) -> usize {
    (id & 0xffff) as usize
}

type Rows<'t, K, V> = Option<redb::Table<'t, K, V>>;

/// The tables one batch writes, each opened once for the whole batch (redb's `open_table`
/// looks the table up and writes its root back when dropped: opened per change, that was paid
/// three times per create), and the id counter to save once at the end.
struct Tables<'t> {
    txn: &'t redb::WriteTransaction,
    streams: Rows<'t, u64, &'static [u8]>,
    state: Rows<'t, u64, &'static [u8]>,
    data: Rows<'t, (u64, u64), &'static [u8]>,
    trims: Rows<'t, u64, u64>,
    access: Rows<'t, u64, u64>,
    /// The highest "next" id counter the batch's creates need (saved in `META` by `finish`).
    next: Option<u64>,
}

/// `slot`'s table, opened on first use.
fn opened<'s, 't, K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &'t redb::WriteTransaction,
    slot: &'s mut Rows<'t, K, V>,
    def: redb::TableDefinition<'static, K, V>,
) -> Result<&'s mut redb::Table<'t, K, V>, EngineError> {
    if slot.is_none() {
        *slot = Some(txn.open_table(def).map_err(|e| db_err(&format!("open {}", def.name()), e))?);
    }
    Ok(slot.as_mut().expect("opened above"))
}

impl<'t> Tables<'t> {
    fn new(txn: &'t redb::WriteTransaction) -> Tables<'t> {
        Tables {
            txn,
            streams: None,
            state: None,
            data: None,
            trims: None,
            access: None,
            next: None,
        }
    }

    fn streams(&mut self) -> Result<&mut redb::Table<'t, u64, &'static [u8]>, EngineError> {
        opened(self.txn, &mut self.streams, STREAMS)
    }

    fn state(&mut self) -> Result<&mut redb::Table<'t, u64, &'static [u8]>, EngineError> {
        opened(self.txn, &mut self.state, STATE)
    }

    fn data(&mut self) -> Result<&mut redb::Table<'t, (u64, u64), &'static [u8]>, EngineError> {
        opened(self.txn, &mut self.data, DATA)
    }

    fn trims(&mut self) -> Result<&mut redb::Table<'t, u64, u64>, EngineError> {
        opened(self.txn, &mut self.trims, TRIMS)
    }

    fn access(&mut self) -> Result<&mut redb::Table<'t, u64, u64>, EngineError> {
        opened(self.txn, &mut self.access, ACCESS)
    }

    /// Closes the tables, then saves the id counter and the bytes removed.
    fn finish(self, removed: u64) -> Result<(), EngineError> {
        let (txn, next) = (self.txn, self.next);
        drop(self);
        if let Some(next) = next {
            let mut meta = txn.open_table(META).map_err(|e| db_err("open meta", e))?;
            let current = meta.get("next").map_err(|e| db_err("read meta", e))?.map_or(0, |g| g.value());
            meta.insert("next", next.max(current)).map_err(|e| db_err("create", e))?;
        }
        if removed > 0 {
            crate::shard::add_dropped(txn, removed)?;
        }
        Ok(())
    }
}

/// Writes one change; returns the bytes of stream data it removed (deletes and trims).
fn write_change(t: &mut Tables<'_>, change: &Change<'_>) -> Result<u64, EngineError> {
    let mut removed = 0u64;
    let mut count = |_: (u64, u64), v: &[u8]| {
        removed += v.len() as u64;
        false
    };
    match change {
        Change::Create(c) => {
            let base = c.fork.map_or(0, |(_, pos)| pos);
            let row = CatalogRow {
                name: c.name.to_string(),
                content_type: c.content_type.to_string(),
                lifetime: c.lifetime,
                fork: c.fork,
                soft_deleted: false,
                hidden: false,
            };
            let writer = WriterState {
                closed: c.closed,
                ..Default::default()
            };
            t.streams()?
                .insert(c.id, encode_catalog(&row).as_slice())
                .map_err(|e| db_err("create", e))?;
            let state = encode_state(base + c.initial.len() as u64, &writer);
            t.state()?.insert(c.id, state.as_slice()).map_err(|e| db_err("create", e))?;
            if !c.initial.is_empty() {
                t.data()?.insert((c.id, base), c.initial).map_err(|e| db_err("create", e))?;
            }
            let next = (c.id >> 16) + 1;
            t.next = Some(t.next.map_or(next, |n| n.max(next)));
        }
        // Appends without bytes carry only writer state (written from the batch's `after`).
        Change::Append(a) if !a.body.is_empty() => {
            t.data()?.insert((a.id, a.start), a.body).map_err(|e| db_err("append", e))?;
        }
        Change::SoftDelete { id, hidden } => {
            let streams = t.streams()?;
            let bytes = streams.get(*id).map_err(|e| db_err("read stream", e))?.map(|g| g.value().to_vec());
            let mut row = bytes
                .as_deref()
                .and_then(|b| decode_catalog(b).ok())
                .ok_or_else(|| EngineError::new(ErrorCode::CORRUPT, format!("stream id {id} has no readable catalogue row")))?;
            row.soft_deleted = true;
            row.hidden = *hidden;
            streams
                .insert(*id, encode_catalog(&row).as_slice())
                .map_err(|e| db_err("soft delete", e))?;
        }
        Change::Delete { id } => {
            let id = *id;
            t.streams()?.remove(id).map_err(|e| db_err("delete", e))?;
            t.state()?.remove(id).map_err(|e| db_err("delete", e))?;
            t.data()?
                .retain_in((id, 0)..=(id, u64::MAX), &mut count)
                .map_err(|e| db_err("delete data", e))?;
            t.trims()?.remove(id).map_err(|e| db_err("delete", e))?;
            t.access()?.remove(id).map_err(|e| db_err("delete", e))?;
        }
        Change::Access { id, at_ms } => {
            t.access()?.insert(*id, *at_ms).map_err(|e| db_err("save access time", e))?;
        }
        Change::Trim { id, start } => {
            // `start` is a record boundary: the rows below it end at or before it.
            t.data()?
                .retain_in((*id, 0)..(*id, *start), &mut count)
                .map_err(|e| db_err("trim data", e))?;
            t.trims()?.insert(*id, *start).map_err(|e| db_err("trim", e))?;
            // A restored stream starts at `start`: its tail moves there with it.
            let st = t.state()?;
            let row = st.get(*id).map_err(|e| db_err("read state", e))?.map(|g| g.value().to_vec());
            if let Some(row) = row {
                let (tail, writer) = crate::rows::decode_state(&row)
                    .map_err(|_| EngineError::new(ErrorCode::CORRUPT, format!("stream id {id} has an undecodable state row")))?;
                if tail < *start {
                    st.insert(*id, encode_state(*start, &writer).as_slice())
                        .map_err(|e| db_err("trim", e))?;
                }
            }
        }
        _ => {}
    }
    Ok(removed)
}

impl Persistence for AcidStore {
    type Data = ();
    type Receipt = ();

    fn describe(&self) -> &'static str {
        "the acid engine"
    }

    fn allocate_id(&self, name: &str) -> u64 {
        let shard = shard_of(name, self.shards.len());
        let mut counters = self.counters.lock();
        let counter = counters[shard];
        counters[shard] = counter + 1;
        (counter << 16) | shard as u64
    }

    fn unit(&self, id: u64) -> usize {
        shard_of_id(id)
    }

    fn commit(&self, batch: &Batch<'_>) -> Result<Vec<()>, EngineError> {
        let Some(first) = batch.changes.first() else {
            return Ok(Vec::new());
        };
        let shard = &self.shards[shard_of_id(first.id())];
        let removed = shard.write(|txn| {
            let mut tables = Tables::new(txn);
            let mut removed = 0;
            for change in batch.changes {
                removed += write_change(&mut tables, change)?;
            }
            if !batch.after.is_empty() {
                let st = tables.state()?;
                for a in batch.after {
                    st.insert(a.id, encode_state(a.tail, a.writer).as_slice())
                        .map_err(|e| db_err("append", e))?;
                }
            }
            tables.finish(removed)?;
            Ok(removed)
        })?;
        shard.dropped.fetch_add(removed, std::sync::atomic::Ordering::Relaxed);
        Ok(vec![(); batch.changes.len()])
    }

    fn apply(_: &(), _: &Change<'_>, _: &()) {}

    fn groups_creates(&self) -> bool {
        true
    }

    fn shutdown(&self) -> Result<(), EngineError> {
        // Closing a redb file marks it cleanly shut: the next open skips the repair (a walk
        // verifying every page, minutes for a large file) that a file left open needs.
        for shard in &self.shards {
            shard.close();
        }
        Ok(())
    }

    fn persists_access(&self) -> bool {
        true
    }

    fn record_floor(&self, id: u64, _: &(), pos: u64) -> Option<Result<u64, EngineError>> {
        Some(self.shards[shard_of_id(id)].record_floor(id, pos))
    }

    fn record_starts(&self, id: u64, _: &(), range: std::ops::Range<u64>, limit: usize) -> Option<Result<Vec<u64>, EngineError>> {
        Some(self.shards[shard_of_id(id)].record_starts(id, range, limit))
    }

    fn read(&self, id: u64, _: &(), span: Span, out: &mut Vec<u8>) -> Result<u64, EngineError> {
        self.shards[shard_of_id(id)].read_into(id, span.pos, span.end, span.max, out)
    }

    fn stats(&self, out: &mut serde_json::Map<String, serde_json::Value>) {
        use std::sync::atomic::Ordering;
        let files = self.shards.iter().filter_map(|s| s.path.as_ref());
        let bytes: u64 = files.filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum();
        out.insert("disk_bytes".into(), bytes.into());
        let sum = |f: fn(&Shard) -> u64| -> u64 { self.shards.iter().map(f).sum() };
        out.insert("compactions".into(), sum(|s| s.compactions.load(Ordering::Relaxed)).into());
        // Free pages at the last compaction check (redb reuses them; compaction returns them).
        out.insert("dead_bytes".into(), sum(|s| s.free.load(Ordering::Relaxed)).into());
        out.insert(
            "compacted_bytes".into(),
            (sum(|s| s.compacted.load(Ordering::Relaxed)) + sum(|s| s.reclaimed)).into(),
        );
    }

    fn extension(&self, op: &str, _input: &[u8]) -> Option<Result<Vec<u8>, EngineError>> {
        if op != ext::RECOVERY {
            return None;
        }
        let reclaimed: u64 = self.shards.iter().map(|s| s.reclaimed).sum();
        let v = serde_json::json!({"streams": self.recovered_streams, "shards": self.shards.len(), "cut_tail": null, "compacted_bytes": reclaimed});
        Some(Ok(v.to_string().into_bytes()))
    }
}
