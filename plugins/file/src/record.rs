//! The on-disk record format of the file engines' write-ahead log (see FORMAT below); pure
//! encoding and decoding, no I/O.
//!
//! FORMAT. A segment file `seg-NNNNNNNN.log` is a sequence of records, little-endian:
//!
//! ```text
//! crc32c u32 | len u32 | lsn u64 | kind u8 | payload [len bytes]
//! ```
//!
//! `crc32c` covers `len`, `lsn`, `kind` and the payload. `lsn` is global and increases by exactly
//! one per record across segments (compacted segments: see COMPACTED), so stale bytes from an
//! earlier file are never taken for records; `len == 0 && crc == 0` (a zero-filled tail) ends a
//! segment: `file-durable` writes zeros ahead of its tail (preallocation), cut before the
//! segment is sealed, so only the last segment may end in zeros. Records of a stream follow its CREATE in log order; an APPEND's stream position is
//! implied by that order (compaction drops a stream's records all together, never some of
//! them). Payloads:
//!
//! - CREATE (1): id u64, name str, content_type str, ttl opt-u64, expires_at opt-u64, closed u8,
//!   fork opt(source_id u64, position u64), then the initial bytes to the end.
//! - APPEND (2): id u64, flags u8 (1 close, 2 producer, 4 stream-seq), [producer id str,
//!   epoch u64, seq u64], [stream_seq str], then the data bytes to the end.
//! - SOFT_DELETE (3): id u64, hidden u8. DELETE (4): id u64.
//! - TRIM (6): id u64, start u64: retention dropped the stream's positions below `start`.
//! - SKIP (7), written only by compaction in place of a stream's dropped (trimmed) records:
//!   id u64, to u64 (the stream continues at `to`), flags u8 (1 close, 4 stream-seq, 8 closed
//!   by a producer), producers u32 then each (id str, epoch u64, seq u64), [stream_seq str],
//!   [closed_by: id str, epoch u64, seq u64]: the writer state the dropped records carried.
//! - ACCESS (8): id u64, at_ms u64: the stream (with a sliding TTL) was last accessed then.
//! - COMPACTED (5), only as the first record of a segment written by compaction: first_lsn u64,
//!   last_lsn u64, next_id u64. Its `lsn` field is 0. The segment replaces every segment whose
//!   records lay in `first_lsn..=last_lsn`: it holds the records of that range that were still
//!   live, unchanged (their own `lsn`, strictly increasing, gaps where records were dropped), and
//!   the next segment continues at `last_lsn + 1`. `next_id` is a floor for new stream ids (the
//!   records of the highest ids may have been dropped).
//!
//! `str` is a u32 length plus UTF-8 bytes; `opt-u64` is a u8 flag plus a u64.

/// Bytes before the payload.
pub const HEADER_LEN: usize = 17;
/// Largest payload accepted on read (guards against a corrupt length).
pub const MAX_PAYLOAD: u32 = 1 << 30;

pub const KIND_CREATE: u8 = 1;
pub const KIND_APPEND: u8 = 2;
pub const KIND_SOFT_DELETE: u8 = 3;
pub const KIND_DELETE: u8 = 4;
pub const KIND_COMPACTED: u8 = 5;
pub const KIND_TRIM: u8 = 6;
pub const KIND_SKIP: u8 = 7;
pub const KIND_ACCESS: u8 = 8;

pub const FLAG_CLOSE: u8 = 1;
pub const FLAG_PRODUCER: u8 = 2;
pub const FLAG_SEQ: u8 = 4;
pub const FLAG_CLOSED_BY: u8 = 8;

/// Appends one framed record to `buf`; returns the offset of its payload within `buf`.
pub fn encode(buf: &mut Vec<u8>, lsn: u64, kind: u8, payload: impl FnOnce(&mut Vec<u8>)) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&[0u8; HEADER_LEN]);
    payload(buf);
    let len = (buf.len() - start - HEADER_LEN) as u32;
    buf[start + 4..start + 8].copy_from_slice(&len.to_le_bytes());
    buf[start + 8..start + 16].copy_from_slice(&lsn.to_le_bytes());
    buf[start + 16] = kind;
    let crc = crc32c::crc32c(&buf[start + 4..]);
    buf[start..start + 4].copy_from_slice(&crc.to_le_bytes());
    start + HEADER_LEN
}

pub use durable_streams_core::codec::{put_opt, put_str, put_u64};

/// A parsed record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub crc: u32,
    pub len: u32,
    pub lsn: u64,
    pub kind: u8,
}

pub fn parse_header(h: &[u8]) -> Header {
    Header {
        crc: u32::from_le_bytes(h[0..4].try_into().unwrap()),
        len: u32::from_le_bytes(h[4..8].try_into().unwrap()),
        lsn: u64::from_le_bytes(h[8..16].try_into().unwrap()),
        kind: h[16],
    }
}

/// Whether a full record (header + payload) passes its checksum.
pub fn verify(record: &[u8]) -> bool {
    record.len() >= HEADER_LEN && crc32c::crc32c(&record[4..]) == u32::from_le_bytes(record[0..4].try_into().unwrap())
}

pub use durable_streams_core::codec::{Malformed, Reader};

/// The fields of a CREATE record's payload; the initial bytes start at `data_at`.
pub struct CreateFields<'a> {
    pub id: u64,
    pub name: &'a str,
    pub content_type: &'a str,
    pub ttl: Option<u64>,
    pub expires_at: Option<u64>,
    pub closed: bool,
    pub fork: Option<(u64, u64)>,
    pub data_at: usize,
}

pub fn decode_create(payload: &[u8]) -> Result<CreateFields<'_>, Malformed> {
    let mut rd = Reader::new(payload);
    let id = rd.u64()?;
    let name = rd.str()?;
    let content_type = rd.str()?;
    let ttl = rd.opt()?;
    let expires_at = rd.opt()?;
    let closed = rd.u8()? != 0;
    let has_fork = rd.u8()? != 0;
    let src = rd.u64()?;
    let pos = rd.u64()?;
    Ok(CreateFields {
        id,
        name,
        content_type,
        ttl,
        expires_at,
        closed,
        fork: has_fork.then_some((src, pos)),
        data_at: rd.pos,
    })
}

/// The writer-state fields of an APPEND record's payload; the data starts at `data_at`.
pub struct AppendFields<'a> {
    pub id: u64,
    pub close: bool,
    pub producer: Option<(&'a str, u64, u64)>,
    pub stream_seq: Option<&'a str>,
    pub data_at: usize,
}

pub fn decode_append(payload: &[u8]) -> Result<AppendFields<'_>, Malformed> {
    let mut rd = Reader::new(payload);
    let id = rd.u64()?;
    let flags = rd.u8()?;
    let producer = if flags & FLAG_PRODUCER != 0 {
        Some((rd.str()?, rd.u64()?, rd.u64()?))
    } else {
        None
    };
    let stream_seq = if flags & FLAG_SEQ != 0 { Some(rd.str()?) } else { None };
    Ok(AppendFields {
        id,
        close: flags & FLAG_CLOSE != 0,
        producer,
        stream_seq,
        data_at: rd.pos,
    })
}

/// The payload of a SKIP record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Skip {
    pub id: u64,
    pub to: u64,
    pub close: bool,
    /// Each producer's last (epoch, seq) in the dropped records, in first-seen order.
    pub producers: Vec<(String, u64, u64)>,
    pub stream_seq: Option<String>,
    pub closed_by: Option<(String, u64, u64)>,
}

impl Skip {
    /// Folds one dropped APPEND's writer state in (later records win).
    pub fn absorb(&mut self, a: &AppendFields<'_>) {
        if let Some((pid, epoch, seq)) = a.producer {
            match self.producers.iter_mut().find(|p| p.0 == pid) {
                Some(p) => (p.1, p.2) = (epoch, seq),
                None => self.producers.push((pid.to_string(), epoch, seq)),
            }
            if a.close {
                self.closed_by = Some((pid.to_string(), epoch, seq));
            }
        }
        if let Some(s) = a.stream_seq {
            self.stream_seq = Some(s.to_string());
        }
        self.close |= a.close;
    }

    /// Folds in a SKIP met later in log order (its writer state is the newer).
    pub fn absorb_skip(&mut self, later: Skip) {
        self.to = self.to.max(later.to);
        for (pid, epoch, seq) in later.producers {
            match self.producers.iter_mut().find(|p| p.0 == pid) {
                Some(p) => (p.1, p.2) = (epoch, seq),
                None => self.producers.push((pid, epoch, seq)),
            }
        }
        if later.stream_seq.is_some() {
            self.stream_seq = later.stream_seq;
        }
        if later.closed_by.is_some() {
            self.closed_by = later.closed_by;
        }
        self.close |= later.close;
    }

    pub fn encode(&self, b: &mut Vec<u8>) {
        put_u64(b, self.id);
        put_u64(b, self.to);
        let mut flags = 0u8;
        if self.close {
            flags |= FLAG_CLOSE;
        }
        if self.stream_seq.is_some() {
            flags |= FLAG_SEQ;
        }
        if self.closed_by.is_some() {
            flags |= FLAG_CLOSED_BY;
        }
        b.push(flags);
        b.extend_from_slice(&(self.producers.len() as u32).to_le_bytes());
        for (pid, epoch, seq) in &self.producers {
            put_str(b, pid);
            put_u64(b, *epoch);
            put_u64(b, *seq);
        }
        if let Some(s) = &self.stream_seq {
            put_str(b, s);
        }
        if let Some((pid, epoch, seq)) = &self.closed_by {
            put_str(b, pid);
            put_u64(b, *epoch);
            put_u64(b, *seq);
        }
    }

    pub fn decode(payload: &[u8]) -> Result<Skip, Malformed> {
        let mut rd = Reader::new(payload);
        let id = rd.u64()?;
        let to = rd.u64()?;
        let flags = rd.u8()?;
        let n = rd.u32()?;
        let mut producers = Vec::new();
        for _ in 0..n {
            producers.push((rd.str()?.to_string(), rd.u64()?, rd.u64()?));
        }
        let stream_seq = if flags & FLAG_SEQ != 0 { Some(rd.str()?.to_string()) } else { None };
        let closed_by = if flags & FLAG_CLOSED_BY != 0 {
            Some((rd.str()?.to_string(), rd.u64()?, rd.u64()?))
        } else {
            None
        };
        Ok(Skip {
            id,
            to,
            close: flags & FLAG_CLOSE != 0,
            producers,
            stream_seq,
            closed_by,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_round_trip() {
        let mut skip = Skip {
            id: 9,
            to: 1234,
            ..Default::default()
        };
        skip.absorb(&AppendFields {
            id: 9,
            close: false,
            producer: Some(("p", 1, 5)),
            stream_seq: Some("a"),
            data_at: 0,
        });
        skip.absorb(&AppendFields {
            id: 9,
            close: true,
            producer: Some(("p", 1, 6)),
            stream_seq: None,
            data_at: 0,
        });
        assert_eq!(skip.producers, vec![("p".to_string(), 1, 6)]);
        assert_eq!(skip.closed_by, Some(("p".to_string(), 1, 6)));
        let mut b = Vec::new();
        skip.encode(&mut b);
        assert_eq!(Skip::decode(&b).unwrap(), skip);
    }

    #[test]
    fn round_trip_and_checksum() {
        let mut buf = Vec::new();
        let p = encode(&mut buf, 7, KIND_APPEND, |b| {
            put_u64(b, 42);
            put_str(b, "hi");
            b.extend_from_slice(b"data");
        });
        assert_eq!(p, HEADER_LEN);
        assert!(verify(&buf));
        let h = parse_header(&buf);
        assert_eq!((h.len as usize, h.lsn, h.kind), (buf.len() - HEADER_LEN, 7, KIND_APPEND));
        let mut r = Reader::new(&buf[HEADER_LEN..]);
        assert_eq!((r.u64().unwrap(), r.str().unwrap(), r.rest()), (42, "hi", &b"data"[..]));
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x10;
            assert!(!verify(&bad), "flip at {i} must be detected");
        }
    }
}
