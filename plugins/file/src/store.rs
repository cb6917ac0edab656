//! `FileStore`: the file engines' persistence. Each committed batch is one write of checksummed
//! records to the shared log (fdatasynced first in `file-durable`); each stream keeps in memory
//! only where its records are, and reads verify every record's checksum before a byte is
//! returned. Applies no protocol rule: the catalogue decided every change it is given.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use durable_streams_catalog::{Batch, Change, Persistence, Span};
use durable_streams_core::abi::{EngineError, ErrorCode};
use parking_lot::Mutex;

use crate::log::{Loc, Log, Seg, Tail};
use crate::record as rec;
use crate::vread;

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

/// One stream's records in the log: where its CREATE record is, and its records with data.
#[derive(Default)]
pub struct Extents {
    /// Segment key of the CREATE record.
    pub(crate) create_seg: AtomicU32,
    pub(crate) list: Mutex<Vec<Extent>>,
}

/// Where a committed record landed and where its data starts in it.
#[derive(Clone, Copy, Debug)]
pub struct Receipt {
    pub loc: Loc,
    pub data_off: u32,
}

/// What a CREATE record of a removed stream is counted as when its bytes are not known.
const CREATE_RECORD_ESTIMATE: u64 = 96;

/// What compaction has done since open.
#[derive(Default)]
pub struct Compactions {
    pub runs: AtomicU64,
    pub reclaimed_bytes: AtomicU64,
    pub failures: AtomicU64,
    pub last_error: Mutex<Option<String>>,
}

/// The log and its writer side.
pub struct FileStore {
    pub(crate) log: Log,
    pub(crate) tail: Mutex<Tail>,
    pub(crate) next_id: AtomicU64,
    pub(crate) durability: Durability,
    pub(crate) stop: Arc<AtomicBool>,
    /// Streams found at open (for the `recovery` extension).
    pub(crate) recovered_streams: usize,
    /// Records of removed streams skipped at open (compaction leaves some).
    pub(crate) orphans_skipped: u64,
    /// Removed streams whose CREATE record is still on disk: id -> segment key of the record.
    /// A DELETE record is kept by compaction while its stream's CREATE is in an earlier segment.
    pub(crate) tombs: Mutex<HashMap<u64, u32>>,
    pub(crate) compactions: Compactions,
    /// Serializes compaction passes.
    pub(crate) compacting: Mutex<()>,
}

/// Encodes one change as a log record at `lsn`; returns the offset of its data in the record.
fn encode(buf: &mut Vec<u8>, lsn: u64, change: &Change<'_>) -> usize {
    let rec_start = buf.len();
    let mut data_at = 0;
    match change {
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
        }
        Change::SoftDelete { id, hidden } => {
            rec::encode(buf, lsn, rec::KIND_SOFT_DELETE, |b| {
                rec::put_u64(b, *id);
                b.push(*hidden as u8);
            });
        }
        Change::Delete { id } => {
            rec::encode(buf, lsn, rec::KIND_DELETE, |b| rec::put_u64(b, *id));
        }
        Change::Trim { id, start } => {
            rec::encode(buf, lsn, rec::KIND_TRIM, |b| {
                rec::put_u64(b, *id);
                rec::put_u64(b, *start);
            });
        }
        Change::Access { id, at_ms } => {
            rec::encode(buf, lsn, rec::KIND_ACCESS, |b| {
                rec::put_u64(b, *id);
                rec::put_u64(b, *at_ms);
            });
        }
        _ => {}
    };
    data_at.saturating_sub(rec_start)
}

/// At least the size of a change's record (its fixed fields take under 64 bytes), so that a
/// batch's buffer is allocated once rather than grown record by record.
fn record_size(change: &Change<'_>) -> usize {
    rec::HEADER_LEN
        + 64
        + match change {
            Change::Create(c) => c.name.len() + c.content_type.len() + c.initial.len(),
            Change::Append(a) => {
                a.body.len()
                    + a.update.producer.as_ref().map_or(0, |(id, _)| id.len())
                    + a.update.stream_seq.as_ref().map_or(0, |s| s.len())
            }
            _ => 0,
        }
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
        let mut buf = Vec::with_capacity(batch.changes.iter().map(record_size).sum());
        // (record start in buf, record length, data offset in the record) per change.
        let mut placed = Vec::with_capacity(batch.changes.len());
        // Removal records are dead once their stream's CREATE is gone: counted dead at once.
        let mut dead = 0u64;
        for change in batch.changes {
            let rec_start = buf.len();
            let data_off = encode(&mut buf, tail.next_lsn, change);
            tail.next_lsn += 1;
            if matches!(change, Change::SoftDelete { .. } | Change::Delete { .. }) {
                dead += (buf.len() - rec_start) as u64;
            }
            placed.push((rec_start, buf.len() - rec_start, data_off));
        }
        let (seg, base_off) = match self.log.write(&mut tail, &buf, self.durability == Durability::Synced) {
            Ok(at) => at,
            Err(e) => {
                tail.next_lsn = first_lsn;
                return Err(e);
            }
        };
        if dead > 0 {
            self.log.add_dead(seg, dead);
        }
        Ok(placed
            .into_iter()
            .map(|(start, len, data_off)| Receipt {
                loc: Loc {
                    seg,
                    off: base_off + start as u64,
                    len: len as u32,
                },
                data_off: data_off as u32,
            })
            .collect())
    }

    fn apply(data: &Extents, change: &Change<'_>, receipt: &Receipt) {
        let (start, len) = match change {
            Change::Create(c) => {
                data.create_seg.store(receipt.loc.seg, Ordering::Relaxed);
                (c.fork.map_or(0, |(_, pos)| pos), c.initial.len())
            }
            Change::Append(a) => (a.start, a.body.len()),
            // Trimmed records stay listed until compaction drops them from the files (it
            // needs their positions); reads never go below the stream's start.
            _ => return,
        };
        if len == 0 {
            return;
        }
        data.list.lock().push(Extent {
            start,
            data_len: len as u32,
            loc: receipt.loc,
            data_off: receipt.data_off,
        });
    }

    fn persists_access(&self) -> bool {
        true
    }

    /// Each append's record carries its writer-state change; replay rebuilds the whole.
    fn keeps_writer_state(&self) -> bool {
        false
    }

    fn groups_creates(&self) -> bool {
        self.durability == Durability::Synced
    }

    fn record_floor(&self, _id: u64, data: &Extents, pos: u64) -> Option<Result<u64, EngineError>> {
        let list = data.list.lock();
        let i = list.partition_point(|e| e.start + e.data_len as u64 <= pos);
        Some(Ok(list.get(i).filter(|e| e.start <= pos).map_or(pos, |e| e.start)))
    }

    fn record_starts(&self, _id: u64, data: &Extents, range: std::ops::Range<u64>, limit: usize) -> Option<Result<Vec<u64>, EngineError>> {
        let list = data.list.lock();
        let i = list.partition_point(|e| e.start < range.start);
        Some(Ok(list[i..]
            .iter()
            .filter(|e| e.data_len > 0)
            .map(|e| e.start)
            .take_while(|&s| s < range.end)
            .take(limit)
            .collect()))
    }

    fn trimmed(&self, _id: u64, data: &Extents, dropped: std::ops::Range<u64>) {
        let list = data.list.lock();
        let from = list.partition_point(|e| e.start + e.data_len as u64 <= dropped.start);
        let to = list.partition_point(|e| e.start + e.data_len as u64 <= dropped.end);
        for e in &list[from..to] {
            self.log.add_dead(e.loc.seg, e.loc.len as u64);
        }
    }

    fn forget(&self, id: u64, data: &Extents) {
        let create_seg = data.create_seg.load(Ordering::Relaxed);
        self.log.add_dead(create_seg, CREATE_RECORD_ESTIMATE);
        for e in data.list.lock().iter() {
            self.log.add_dead(e.loc.seg, e.loc.len as u64);
        }
        self.tombs.lock().insert(id, create_seg);
    }

    fn read(&self, _id: u64, data: &Extents, span: Span, out: &mut Vec<u8>) -> Result<u64, EngineError> {
        let Span { mut pos, end, max } = span;
        // Choose the records and take their segments under the stream's lock (a compaction
        // moves a stream's records under it, and retires the old files only after), read
        // without it.
        let mut picked: Vec<(Extent, Arc<Seg>)> = Vec::new();
        {
            let extents = data.list.lock();
            let first = extents.partition_point(|e| e.start + e.data_len as u64 <= pos);
            let mut budget = out.len();
            for e in &extents[first..] {
                if e.start >= end {
                    break;
                }
                let take = (e.start + e.data_len as u64).min(end) - pos.max(e.start);
                if budget > 0 && budget + take as usize > max {
                    break;
                }
                let seg = match picked.last() {
                    Some((p, s)) if p.loc.seg == e.loc.seg => s.clone(),
                    _ => self.log.seg(e.loc.seg)?,
                };
                picked.push((*e, seg));
                budget += take as usize;
                if budget >= max {
                    break;
                }
            }
        }
        let mut i = 0;
        while i < picked.len() {
            // Coalesce records that sit back to back in one segment into one read.
            let mut j = i + 1;
            while j < picked.len()
                && picked[j].0.loc.seg == picked[i].0.loc.seg
                && picked[j].0.loc.off == picked[j - 1].0.loc.off + picked[j - 1].0.loc.len as u64
            {
                j += 1;
            }
            let (first, seg) = &picked[i];
            let parts: Vec<vread::Part> = picked[i..j]
                .iter()
                .map(|(e, _)| {
                    let from = pos.max(e.start);
                    let to = (e.start + e.data_len as u64).min(end);
                    pos = to;
                    vread::Part {
                        len: e.loc.len as usize,
                        from: e.data_off as usize + (from - e.start) as usize,
                        take: (to - from) as usize,
                    }
                })
                .collect();
            match vread::read_run(&seg.file, first.loc.off, &parts, out) {
                Ok(()) => {}
                Err(vread::RunError::Io(e)) => return Err(crate::log::io_err("read", &self.log.segment_path(seg), e)),
                Err(vread::RunError::Damaged(at)) => {
                    return Err(EngineError::new(
                        ErrorCode::CORRUPT,
                        format!(
                            "checksum mismatch in {} at byte {}: refusing to serve damaged data",
                            self.log.segment_path(seg).display(),
                            first.loc.off + at
                        ),
                    ))
                }
            }
            i = j;
        }
        Ok(pos)
    }

    fn shutdown(&self) -> Result<(), EngineError> {
        self.stop.store(true, Ordering::Release);
        let mut tail = self.tail.lock();
        self.log.cut_preallocated(&mut tail)?;
        self.log.sync_active(&tail)
    }

    fn stats(&self, out: &mut serde_json::Map<String, serde_json::Value>) {
        out.insert("disk_bytes".into(), self.log.disk_bytes().into());
        out.insert("dead_bytes".into(), self.log.dead_bytes().into());
        let c = &self.compactions;
        out.insert("compactions".into(), c.runs.load(Ordering::Relaxed).into());
        out.insert("compacted_bytes".into(), c.reclaimed_bytes.load(Ordering::Relaxed).into());
        out.insert("compaction_failures".into(), c.failures.load(Ordering::Relaxed).into());
        if let Some(e) = c.last_error.lock().as_ref() {
            out.insert("compaction_error".into(), e.clone().into());
        }
    }

    fn extension(&self, op: &str, _input: &[u8]) -> Option<Result<Vec<u8>, EngineError>> {
        if op != durable_streams_core::abi::ext::RECOVERY {
            return None;
        }
        let r = &self.log.recovery;
        let v = serde_json::json!({
            "records_replayed": r.records,
            "segments": r.segments,
            "compacted_segments": r.compacted_segments,
            "unfinished_compactions_removed": r.unfinished_compactions,
            "superseded_segments_removed": r.superseded_removed,
            "streams": self.recovered_streams,
            "orphan_records_skipped": self.orphans_skipped,
            "cut_tail": r.cut_tail.as_ref().map(|(path, at, dropped)| serde_json::json!({
                "file": path.display().to_string(), "at": at, "dropped_bytes": dropped,
            })),
        });
        Some(Ok(v.to_string().into_bytes()))
    }
}
