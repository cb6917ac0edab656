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
//! segment. Records of a stream follow its CREATE in log order; an APPEND's stream position is
//! implied by that order (compaction drops a stream's records all together, never some of
//! them). Payloads:
//!
//! - CREATE (1): id u64, name str, content_type str, ttl opt-u64, expires_at opt-u64, closed u8,
//!   fork opt(source_id u64, position u64), then the initial bytes to the end.
//! - APPEND (2): id u64, flags u8 (1 close, 2 producer, 4 stream-seq), [producer id str,
//!   epoch u64, seq u64], [stream_seq str], then the data bytes to the end.
//! - SOFT_DELETE (3): id u64, hidden u8. DELETE (4): id u64.
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

pub const FLAG_CLOSE: u8 = 1;
pub const FLAG_PRODUCER: u8 = 2;
pub const FLAG_SEQ: u8 = 4;

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

pub use durable_streams_core::codec::Reader;

#[cfg(test)]
mod tests {
    use super::*;

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
