//! What a compaction writes: given a run's records and what the catalogue holds, which records
//! survive unchanged, which go, and the SKIP record that replaces a stream's trimmed ones (so
//! that replay still knows where the stream continues and what its writers last wrote). Pure:
//! bytes in, bytes out; no I/O, no locks.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use durable_streams_core::abi::EngineError;

use crate::record::{self as rec, Reader, Skip, HEADER_LEN};
use crate::scan::{self, Compacted, COMPACTED_LEN};

/// One record of an input segment.
pub struct Rec<'a> {
    pub kind: u8,
    pub id: u64,
    pub lsn: u64,
    pub off: u64,
    pub bytes: &'a [u8],
}

impl Rec<'_> {
    fn payload(&self) -> &[u8] {
        &self.bytes[HEADER_LEN..]
    }
}

/// Every record of a sealed segment (checksums verified), after its compaction header if any.
pub fn records<'a>(bytes: &'a [u8], path: &Path) -> Result<Vec<Rec<'a>>, EngineError> {
    let mut out = Vec::new();
    let mut off = if scan::compacted_header(bytes).is_some() {
        COMPACTED_LEN
    } else {
        0
    };
    while off < bytes.len() {
        let bad = |why: &str| scan::corrupt(path, off as u64, why);
        if bytes.len() - off < HEADER_LEN {
            return Err(bad("truncated record in a sealed segment"));
        }
        let h = rec::parse_header(&bytes[off..off + HEADER_LEN]);
        let total = HEADER_LEN + h.len as usize;
        if off + total > bytes.len() || !rec::verify(&bytes[off..off + total]) {
            return Err(bad("checksum mismatch"));
        }
        let id = Reader::new(&bytes[off + HEADER_LEN..off + total])
            .u64()
            .map_err(|_| bad("record without a stream id"))?;
        out.push(Rec {
            kind: h.kind,
            id,
            lsn: h.lsn,
            off: off as u64,
            bytes: &bytes[off..off + total],
        });
        off += total;
    }
    Ok(out)
}

/// A stream the catalogue still holds, as compaction needs it.
#[derive(Default)]
pub struct Live {
    /// The earliest retained position.
    pub start: u64,
    /// The last access time saved (only the ACCESS record holding it is kept).
    pub saved_access_ms: u64,
    /// Its records in the run that lie wholly below `start`: (segment key, offset) -> the
    /// stream position where the record's data ends.
    pub trimmed: HashMap<(u32, u64), u64>,
}

/// The output and what moved.
#[derive(Default)]
pub struct Rewritten {
    pub out: Vec<u8>,
    /// Per stream: (old key, old offset, new offset) of each record copied with its data.
    pub moved: HashMap<u64, Vec<(u32, u64, u64)>>,
    /// Bytes copied per stream (counted dead if the stream is gone by the time they move).
    pub copied_bytes: HashMap<u64, u64>,
    /// Streams whose CREATE record is in the output.
    pub creates_kept: HashSet<u64>,
    /// Trimmed records dropped, per stream: their locations leave the stream's list.
    pub dropped: HashMap<u64, HashSet<(u32, u64)>>,
}

enum Act {
    Drop,
    Keep,
    /// A CREATE whose initial bytes were trimmed: rewritten without them.
    Strip,
}

fn malformed(r: &Rec<'_>) -> EngineError {
    EngineError::new(
        durable_streams_core::abi::ErrorCode::CORRUPT,
        format!("undecodable record {} met by compaction", r.lsn),
    )
}

/// Builds the output of a compaction of `run` (segment keys with their records, in log order).
/// `delete_kept`: removed streams whose DELETE record must stay (their CREATE is earlier).
pub fn rewrite(
    run: &[(u32, Vec<Rec<'_>>)],
    live: &HashMap<u64, Live>,
    delete_kept: &HashSet<u64>,
    header: &Compacted,
) -> Result<Rewritten, EngineError> {
    // Pass 1: what happens to each record, and each stream's last dropped (trimmed) record.
    let mut acts = Vec::new();
    let mut last_dropped: HashMap<u64, (usize, usize)> = HashMap::new();
    for (i, (key, recs)) in run.iter().enumerate() {
        let mut row = Vec::with_capacity(recs.len());
        for (j, r) in recs.iter().enumerate() {
            let act = match (r.kind, live.get(&r.id)) {
                (rec::KIND_DELETE, _) if delete_kept.contains(&r.id) => Act::Keep,
                (_, None) => Act::Drop,
                (rec::KIND_TRIM, Some(l)) => {
                    let mut rd = Reader::new(r.payload());
                    let start = rd.u64().and_then(|_| rd.u64()).map_err(|_| malformed(r))?;
                    // Only the trim that set the current start is needed.
                    if start >= l.start {
                        Act::Keep
                    } else {
                        Act::Drop
                    }
                }
                (rec::KIND_ACCESS, Some(l)) => {
                    let mut rd = Reader::new(r.payload());
                    let at = rd.u64().and_then(|_| rd.u64()).map_err(|_| malformed(r))?;
                    if at >= l.saved_access_ms {
                        Act::Keep
                    } else {
                        Act::Drop
                    }
                }
                (rec::KIND_SKIP, Some(_)) => {
                    last_dropped.insert(r.id, (i, j));
                    Act::Drop
                }
                (rec::KIND_CREATE | rec::KIND_APPEND, Some(l)) if l.trimmed.contains_key(&(*key, r.off)) => {
                    last_dropped.insert(r.id, (i, j));
                    if r.kind == rec::KIND_CREATE {
                        Act::Strip
                    } else {
                        Act::Drop
                    }
                }
                _ => Act::Keep,
            };
            row.push(act);
        }
        acts.push(row);
    }

    // Pass 2: write, folding the writer state of a stream's records up to its last dropped one
    // into the SKIP written in place of that record.
    let mut w = Rewritten::default();
    scan::encode_compacted(&mut w.out, header);
    let mut skips: HashMap<u64, Skip> = HashMap::new();
    for (i, (key, recs)) in run.iter().enumerate() {
        for (j, r) in recs.iter().enumerate() {
            let last = last_dropped.get(&r.id).copied();
            let before_last = last.is_some_and(|at| (i, j) <= at);
            if before_last {
                let skip = skips.entry(r.id).or_insert_with(|| Skip {
                    id: r.id,
                    ..Default::default()
                });
                if let Some(l) = live.get(&r.id) {
                    if let Some(end) = l.trimmed.get(&(*key, r.off)) {
                        skip.to = skip.to.max(*end);
                    }
                }
                match r.kind {
                    rec::KIND_APPEND => skip.absorb(&rec::decode_append(r.payload()).map_err(|_| malformed(r))?),
                    rec::KIND_SKIP => {
                        let old = Skip::decode(r.payload()).map_err(|_| malformed(r))?;
                        skip.absorb_skip(old);
                    }
                    _ => {}
                }
            }
            match acts[i][j] {
                Act::Drop => {
                    if r.kind != rec::KIND_DELETE && live.contains_key(&r.id) {
                        w.dropped.entry(r.id).or_default().insert((*key, r.off));
                    }
                }
                Act::Keep => {
                    if r.kind == rec::KIND_CREATE {
                        w.creates_kept.insert(r.id);
                    }
                    if r.kind != rec::KIND_DELETE {
                        w.moved.entry(r.id).or_default().push((*key, r.off, w.out.len() as u64));
                        *w.copied_bytes.entry(r.id).or_default() += r.bytes.len() as u64;
                    }
                    w.out.extend_from_slice(r.bytes);
                }
                Act::Strip => {
                    let c = rec::decode_create(r.payload()).map_err(|_| malformed(r))?;
                    let at = w.out.len();
                    rec::encode(&mut w.out, r.lsn, rec::KIND_CREATE, |b| {
                        b.extend_from_slice(&r.payload()[..c.data_at]);
                    });
                    w.creates_kept.insert(r.id);
                    w.dropped.entry(r.id).or_default().insert((*key, r.off));
                    *w.copied_bytes.entry(r.id).or_default() += (w.out.len() - at) as u64;
                }
            }
            if last == Some((i, j)) {
                let skip = skips.remove(&r.id).expect("folded above");
                let at = w.out.len();
                // In place of the dropped record, with its sequence number (after a stripped
                // CREATE, sharing the CREATE's: replay allows a SKIP to).
                rec::encode(&mut w.out, r.lsn, rec::KIND_SKIP, |b| skip.encode(b));
                *w.copied_bytes.entry(r.id).or_default() += (w.out.len() - at) as u64;
            }
        }
    }
    Ok(w)
}
