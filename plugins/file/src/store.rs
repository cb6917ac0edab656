//! `FileStore`: the file engines' persistence. Each committed batch is one write of checksummed
//! records to the shared log (fdatasynced first in `file-durable`); each stream keeps in memory
//! only where its records are, and reads verify every record's checksum before a byte is
//! returned. Applies no protocol rule: the catalogue decided every change it is given.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use durable_streams_catalog::{Batch, Change, Persistence, Span};
use durable_streams_core::abi::{EngineError, ErrorCode};
use parking_lot::Mutex;

use crate::log::{Loc, Log, Tail};
use crate::record as rec;

/// Whether appends are fsynced before they are acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// `file-fast`: written to the OS before acknowledging; fsynced every interval.
    Buffered,
    /// `file-durable`: fdatasync before acknowledging.
    Synced,
}

/// Where one record's data lives: stream positions `start..start + data_len`.
#[derive(Clone, Copy, Debug)]
pub struct Extent {
    pub start: u64,
    pub data_len: u32,
    pub loc: Loc,
    /// Offset of the data inside the record.
    pub data_off: u32,
}

/// One stream's records in the log.
#[derive(Default)]
pub struct Extents(pub(crate) Mutex<Vec<Extent>>);

/// Where a committed record landed and where its data starts in it (records without data: none).
pub type Receipt = Option<(Loc, u32)>;

/// The log and its writer side.
pub struct FileStore {
    pub(crate) log: Log,
    pub(crate) tail: Mutex<Tail>,
    pub(crate) next_id: AtomicU64,
    pub(crate) durability: Durability,
    pub(crate) stop: Arc<AtomicBool>,
    /// Streams found at open (for the `recovery` extension).
    pub(crate) recovered_streams: usize,
}

/// Encodes one change as a log record at `lsn`; returns the offset of its data in the record
/// and whether it carries data.
fn encode(buf: &mut Vec<u8>, lsn: u64, change: &Change<'_>) -> (usize, bool) {
    let rec_start = buf.len();
    let mut data_at = 0;
    let has_data = match change {
        Change::Create(c) => {
            rec::encode(buf, lsn, rec::KIND_CREATE, |b| {
                rec::put_u64(b, c.id);
                rec::put_str(b, c.name);
                rec::put_str(b, c.content_type);
                rec::put_opt(b, c.lifetime.ttl_secs.into_option());
                rec::put_opt(b, c.lifetime.expires_at_ms.into_option());
                b.push(c.closed as u8);
                let (flag, src, pos) = c.fork.map_or((0u8, 0, 0), |(s, p)| (1, s, p));
                b.push(flag);
                rec::put_u64(b, src);
                rec::put_u64(b, pos);
                data_at = b.len();
                b.extend_from_slice(c.initial);
            });
            !c.initial.is_empty()
        }
        Change::Append(a) => {
            rec::encode(buf, lsn, rec::KIND_APPEND, |b| {
                rec::put_u64(b, a.id);
                let producer = a.update.producer.as_ref();
                let mut flags = 0u8;
                if a.update.close {
                    flags |= rec::FLAG_CLOSE;
                }
                if producer.is_some() {
                    flags |= rec::FLAG_PRODUCER;
                }
                if a.update.stream_seq.is_some() {
                    flags |= rec::FLAG_SEQ;
                }
                b.push(flags);
                if let Some((id, st)) = producer {
                    rec::put_str(b, id);
                    rec::put_u64(b, st.epoch);
                    rec::put_u64(b, st.last_seq);
                }
                if let Some(seq) = &a.update.stream_seq {
                    rec::put_str(b, seq);
                }
                data_at = b.len();
                b.extend_from_slice(a.body);
            });
            !a.body.is_empty()
        }
        Change::SoftDelete { id, hidden } => {
            rec::encode(buf, lsn, rec::KIND_SOFT_DELETE, |b| {
                rec::put_u64(b, *id);
                b.push(*hidden as u8);
            });
            false
        }
        Change::Delete { id } => {
            rec::encode(buf, lsn, rec::KIND_DELETE, |b| rec::put_u64(b, *id));
            false
        }
    };
    (data_at - rec_start.min(data_at), has_data)
}

impl Persistence for FileStore {
    type Data = Extents;
    type Receipt = Receipt;

    fn describe(&self) -> &'static str {
        "the file engine"
    }

    fn allocate_id(&self, _name: &str) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn commit(&self, batch: &Batch<'_>) -> Result<Vec<Receipt>, EngineError> {
        let mut tail = self.tail.lock();
        let first_lsn = tail.next_lsn;
        let mut buf = Vec::new();
        // (record start in buf, record length, data offset in the record) per change with data.
        let mut placed = Vec::with_capacity(batch.changes.len());
        for change in batch.changes {
            let rec_start = buf.len();
            let (data_off, has_data) = encode(&mut buf, tail.next_lsn, change);
            tail.next_lsn += 1;
            placed.push(has_data.then_some((rec_start, buf.len() - rec_start, data_off)));
        }
        let (seg, base_off) = match self.log.write(&mut tail, &buf, self.durability == Durability::Synced) {
            Ok(at) => at,
            Err(e) => {
                tail.next_lsn = first_lsn;
                return Err(e);
            }
        };
        Ok(placed
            .into_iter()
            .map(|p| {
                p.map(|(start, len, data_off)| {
                    let loc = Loc {
                        seg,
                        off: base_off + start as u64,
                        len: len as u32,
                    };
                    (loc, data_off as u32)
                })
            })
            .collect())
    }

    fn apply(data: &Extents, change: &Change<'_>, receipt: &Receipt) {
        let Some((loc, data_off)) = *receipt else { return };
        let (start, len) = match change {
            Change::Create(c) => (c.fork.map_or(0, |(_, pos)| pos), c.initial.len()),
            Change::Append(a) => (a.start, a.body.len()),
            Change::SoftDelete { .. } | Change::Delete { .. } => return,
        };
        data.0.lock().push(Extent {
            start,
            data_len: len as u32,
            loc,
            data_off,
        });
    }

    fn read(&self, _id: u64, data: &Extents, span: Span, out: &mut Vec<u8>) -> Result<u64, EngineError> {
        let Span { mut pos, end, max } = span;
        // Choose the records under the lock; read them without it.
        let picked = {
            let extents = data.0.lock();
            let first = extents.partition_point(|e| e.start + e.data_len as u64 <= pos);
            let mut picked = Vec::new();
            let mut budget = out.len();
            for e in &extents[first..] {
                if e.start >= end {
                    break;
                }
                let take = (e.start + e.data_len as u64).min(end) - pos.max(e.start);
                if budget > 0 && budget + take as usize > max {
                    break;
                }
                picked.push(*e);
                budget += take as usize;
                if budget >= max {
                    break;
                }
            }
            picked
        };
        let mut i = 0;
        while i < picked.len() {
            // Coalesce records that sit back to back in one segment into one read.
            let mut j = i + 1;
            while j < picked.len()
                && picked[j].loc.seg == picked[i].loc.seg
                && picked[j].loc.off == picked[j - 1].loc.off + picked[j - 1].loc.len as u64
            {
                j += 1;
            }
            let span_off = picked[i].loc.off;
            let span_len = (picked[j - 1].loc.off + picked[j - 1].loc.len as u64 - span_off) as usize;
            let buf = self.log.read(picked[i].loc.seg, span_off, span_len)?;
            for e in &picked[i..j] {
                let rel = (e.loc.off - span_off) as usize;
                let record = &buf[rel..rel + e.loc.len as usize];
                if !rec::verify(record) {
                    return Err(EngineError::new(
                        ErrorCode::CORRUPT,
                        format!(
                            "checksum mismatch in {} at byte {}: refusing to serve damaged data",
                            self.log.segment_path(e.loc.seg).display(),
                            e.loc.off
                        ),
                    ));
                }
                let from = pos.max(e.start);
                let to = (e.start + e.data_len as u64).min(end);
                let d0 = e.data_off as usize + (from - e.start) as usize;
                out.extend_from_slice(&record[d0..d0 + (to - from) as usize]);
                pos = to;
            }
            i = j;
        }
        Ok(pos)
    }

    fn shutdown(&self) -> Result<(), EngineError> {
        self.stop.store(true, Ordering::Release);
        let tail = self.tail.lock();
        self.log.sync_active(&tail)
    }

    fn stats(&self, out: &mut serde_json::Map<String, serde_json::Value>) {
        out.insert("disk_bytes".into(), self.log.disk_bytes().into());
    }

    fn extension(&self, op: &str, _input: &[u8]) -> Option<Result<Vec<u8>, EngineError>> {
        if op != durable_streams_core::abi::ext::RECOVERY {
            return None;
        }
        let r = &self.log.recovery;
        let v = serde_json::json!({
            "records_replayed": r.records,
            "segments": r.segments,
            "streams": self.recovered_streams,
            "cut_tail": r.cut_tail.as_ref().map(|(path, at, dropped)| serde_json::json!({
                "file": path.display().to_string(), "at": at, "dropped_bytes": dropped,
            })),
        });
        Some(Ok(v.to_string().into_bytes()))
    }
}
