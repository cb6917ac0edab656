//! Reading segment files at open: which segments a finished compaction superseded, and the scan
//! of one segment's records (torn tails of the last segment cut, damage elsewhere refused,
//! sequence numbers checked across segments). Pure decisions over bytes; the caller does I/O.

use std::path::Path;

use durable_streams_core::abi::{EngineError, ErrorCode};

use crate::log::{Loc, Replayed};
use crate::record::{self, Reader, HEADER_LEN, KIND_COMPACTED, MAX_PAYLOAD};

/// The header of a segment written by compaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compacted {
    pub first_lsn: u64,
    pub last_lsn: u64,
    pub next_id: u64,
}

/// Bytes of a COMPACTED record.
pub const COMPACTED_LEN: usize = HEADER_LEN + 24;

/// Encodes the header of a compacted segment.
pub fn encode_compacted(buf: &mut Vec<u8>, c: &Compacted) {
    record::encode(buf, 0, KIND_COMPACTED, |b| {
        record::put_u64(b, c.first_lsn);
        record::put_u64(b, c.last_lsn);
        record::put_u64(b, c.next_id);
    });
}

/// The compaction header at the start of `bytes`, if it holds a valid one.
pub fn compacted_header(bytes: &[u8]) -> Option<Compacted> {
    if bytes.len() < COMPACTED_LEN {
        return None;
    }
    let h = record::parse_header(&bytes[..HEADER_LEN]);
    if h.kind != KIND_COMPACTED || h.len as usize != COMPACTED_LEN - HEADER_LEN || !record::verify(&bytes[..COMPACTED_LEN]) {
        return None;
    }
    let mut r = Reader::new(&bytes[HEADER_LEN..COMPACTED_LEN]);
    Some(Compacted {
        first_lsn: r.u64().ok()?,
        last_lsn: r.u64().ok()?,
        next_id: r.u64().ok()?,
    })
}

/// The first sequence number a segment holds (its compaction header's range start, or its
/// first record's), from the segment's first bytes; `None` for an empty or unreadable start.
pub fn first_lsn(bytes: &[u8]) -> Option<u64> {
    if let Some(c) = compacted_header(bytes) {
        return Some(c.first_lsn);
    }
    if bytes.len() < HEADER_LEN {
        return None;
    }
    let h = record::parse_header(&bytes[..HEADER_LEN]);
    let total = HEADER_LEN + h.len as usize;
    (h.len <= MAX_PAYLOAD && total <= bytes.len() && record::verify(&bytes[..total])).then_some(h.lsn)
}

/// Segments a later compacted segment replaced (its range starts at or before theirs): left
/// behind when a crash came between a compaction's rename and the removal of its inputs.
/// `starts` is each segment's number, first sequence number and compaction header, in order.
pub fn superseded(starts: &[(u32, Option<u64>, Option<Compacted>)]) -> Vec<u32> {
    let mut out = Vec::new();
    for (i, &(seg, first, _)) in starts.iter().enumerate() {
        let Some(first) = first else { continue };
        let replaced = starts[i + 1..].iter().any(|&(_, _, c)| c.is_some_and(|c| c.first_lsn <= first));
        if replaced {
            out.push(seg);
        }
    }
    out
}

pub fn corrupt(path: &Path, off: u64, why: &str) -> EngineError {
    EngineError::new(
        ErrorCode::CORRUPT,
        format!(
            "corrupt record in {} at byte {off}: {why}; refusing to start (restore the file or move it aside)",
            path.display()
        ),
    )
}

/// What scanning one segment found.
pub struct Scanned {
    /// Length of the valid prefix (the file is cut back to it).
    pub end: u64,
    /// The segment's compaction header, if it was written by compaction.
    pub compacted: Option<Compacted>,
}

/// Scans one segment, visiting each record; `next_lsn` is the sequence number the segment must
/// start at and is left at the one after it.
pub fn scan(
    path: &Path,
    seg: u32,
    bytes: &[u8],
    is_last: bool,
    after_compaction: bool,
    next_lsn: &mut u64,
    visit: &mut impl FnMut(Replayed<'_>) -> Result<(), EngineError>,
) -> Result<Scanned, EngineError> {
    let compacted = compacted_header(bytes);
    let mut off = 0usize;
    // In a compacted segment: the last sequence number seen (records may skip numbers).
    let mut last_seen = None;
    if let Some(c) = compacted {
        if c.first_lsn != *next_lsn || c.last_lsn < c.first_lsn {
            return Err(corrupt(
                path,
                0,
                &format!(
                    "compacted segment covers records {}..={} but record {} was expected next",
                    c.first_lsn, c.last_lsn, next_lsn
                ),
            ));
        }
        off = COMPACTED_LEN;
        last_seen = Some(c.first_lsn - 1);
    }
    // A compacted segment was complete (synced) before it got its name: never torn.
    let tearable = is_last && compacted.is_none();
    let torn = |off: usize, why: &str| -> Result<u64, EngineError> {
        if tearable {
            Ok(off as u64)
        } else {
            Err(corrupt(path, off as u64, why))
        }
    };
    let end = loop {
        if off >= bytes.len() {
            break off as u64;
        }
        if bytes.len() - off < HEADER_LEN {
            break torn(off, "truncated record header")?;
        }
        let h = record::parse_header(&bytes[off..off + HEADER_LEN]);
        if h.crc == 0 && h.len == 0 && h.lsn == 0 {
            // Zero-filled tail (preallocation, or a torn write of zero pages).
            if bytes[off..].iter().all(|&b| b == 0) {
                break torn(off, "zero-filled bytes inside a sealed segment")?;
            }
            break torn(off, "zeroed record header followed by data")?;
        }
        let total = HEADER_LEN + h.len as usize;
        if h.len > MAX_PAYLOAD || off + total > bytes.len() {
            break torn(off, "record runs past the end of the file")?;
        }
        let rec = &bytes[off..off + total];
        if !record::verify(rec) {
            // A damaged record followed by the next valid record is corruption of
            // acknowledged data, not a torn tail.
            let next = off + total;
            let followed = bytes.len() - next >= HEADER_LEN && {
                let nh = record::parse_header(&bytes[next..next + HEADER_LEN]);
                let nt = HEADER_LEN + nh.len as usize;
                nh.len <= MAX_PAYLOAD && next + nt <= bytes.len() && record::verify(&bytes[next..next + nt])
            };
            if followed || !tearable {
                return Err(corrupt(path, off as u64, "checksum mismatch"));
            }
            break torn(off, "checksum mismatch")?;
        }
        match (compacted, last_seen) {
            (Some(c), Some(prev)) => {
                // A SKIP after a CREATE whose bytes compaction dropped shares its number.
                let shared = h.kind == record::KIND_SKIP && h.lsn == prev;
                if (h.lsn <= prev && !shared) || h.lsn > c.last_lsn {
                    return Err(corrupt(
                        path,
                        off as u64,
                        &format!("record {} out of order in a compacted segment (after {prev})", h.lsn),
                    ));
                }
                last_seen = Some(h.lsn);
            }
            _ if h.lsn != *next_lsn => {
                if h.lsn < *next_lsn {
                    break torn(off, "stale record (old sequence number)")?;
                }
                return Err(corrupt(
                    path,
                    off as u64,
                    &format!("sequence gap: expected record {}, found {}", next_lsn, h.lsn),
                ));
            }
            _ => *next_lsn += 1,
        }
        visit(Replayed {
            loc: Loc {
                seg,
                off: off as u64,
                len: total as u32,
            },
            header: h,
            payload: &rec[HEADER_LEN..],
            after_compaction: after_compaction || compacted.is_some(),
        })?;
        off += total;
    };
    if let Some(c) = compacted {
        *next_lsn = c.last_lsn + 1;
    }
    Ok(Scanned { end, compacted })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(first: u64) -> Option<Compacted> {
        Some(Compacted {
            first_lsn: first,
            last_lsn: first + 100,
            next_id: 1,
        })
    }

    #[test]
    fn a_compacted_segment_supersedes_the_segments_it_covers() {
        // 3 and 4 were merged into 5 (range from 3's first record); the crash left them.
        let starts = [
            (1, Some(1), None),
            (3, Some(50), None),
            (4, Some(80), None),
            (5, Some(50), c(50)),
            (6, Some(151), None),
        ];
        assert_eq!(superseded(&starts), vec![3, 4]);
        // Nothing left behind: nothing superseded.
        let clean = [(1, Some(1), None), (5, Some(50), c(50)), (6, Some(151), None)];
        assert!(superseded(&clean).is_empty());
    }

    #[test]
    fn header_round_trip() {
        let mut buf = Vec::new();
        let h = Compacted {
            first_lsn: 7,
            last_lsn: 9,
            next_id: 3,
        };
        encode_compacted(&mut buf, &h);
        assert_eq!(buf.len(), COMPACTED_LEN);
        assert_eq!(compacted_header(&buf), Some(h));
        assert_eq!(first_lsn(&buf), Some(7));
        buf[20] ^= 1;
        assert_eq!(compacted_header(&buf), None);
    }
}
