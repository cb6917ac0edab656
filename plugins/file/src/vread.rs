//! Reads of back-to-back records straight into a read's output: one `preadv` puts each record's
//! served bytes where they belong in the output and the rest (headers, bytes outside the read)
//! in a small scratch buffer, so the data is copied once, from the page cache, and never zeroed
//! first. Every record is verified (CRC-32C over header and payload) before the output grows.
//! Owns this one unsafe spot; knows nothing of streams.

use std::io;
use std::os::fd::AsRawFd;

use crate::record::HEADER_LEN;

/// One record of a run: its length, and which of its bytes the read serves.
#[derive(Clone, Copy, Debug)]
pub struct Part {
    /// The record's length (header included).
    pub len: usize,
    /// Offset in the record of the first byte served.
    pub from: usize,
    /// Bytes served.
    pub take: usize,
}

/// What went wrong with a run.
#[derive(Debug)]
pub enum RunError {
    Io(io::Error),
    /// The record at this offset from the run's start failed its checksum.
    Damaged(u64),
}

/// At most this many buffers per `preadv` (Linux allows 1024).
const MAX_IOV: usize = 512;

/// Reads the records `parts`, back to back in `file` from `off`, appending their served bytes
/// to `out` once every record has been read and verified (on error `out` is unchanged).
pub fn read_run(file: &std::fs::File, off: u64, parts: &[Part], out: &mut Vec<u8>) -> Result<(), RunError> {
    let served: usize = parts.iter().map(|p| p.take).sum();
    let rest: usize = parts.iter().map(|p| p.len - p.take).sum();
    let mut scratch = vec![0u8; rest];
    out.reserve(served);
    let base = out.len();
    // Buffers in file order: before the served bytes, the served bytes (into `out`'s spare
    // capacity), after them.
    let mut iov: Vec<libc::iovec> = Vec::with_capacity(parts.len() * 3);
    {
        let out_ptr = out.spare_capacity_mut().as_mut_ptr().cast::<u8>();
        let mut s_at = 0usize;
        let mut o_at = 0usize;
        let mut push = |ptr: *mut u8, len: usize| {
            if len > 0 {
                iov.push(libc::iovec {
                    iov_base: ptr.cast(),
                    iov_len: len,
                });
            }
        };
        for p in parts {
            let after = p.len - p.from - p.take;
            push(scratch[s_at..].as_mut_ptr(), p.from);
            s_at += p.from;
            // SAFETY: `o_at + p.take <= served`, within the capacity reserved above.
            push(unsafe { out_ptr.add(o_at) }, p.take);
            o_at += p.take;
            push(scratch[s_at..].as_mut_ptr(), after);
            s_at += after;
        }
    }
    let mut at = off;
    for chunk in iov.chunks_mut(MAX_IOV) {
        at = preadv_all(file, chunk, at).map_err(RunError::Io)?;
    }
    // Verify in place: the CRC covers each record from byte 4 on.
    // SAFETY: the kernel wrote `served` bytes into the spare capacity (preadv_all read every
    // buffer in full); they are initialized.
    let got = unsafe { std::slice::from_raw_parts(out.as_ptr().add(base), served) };
    let (mut s_at, mut o_at, mut rec_off) = (0usize, 0usize, 0u64);
    for p in parts {
        let after = p.len - p.from - p.take;
        let head = &scratch[s_at..s_at + p.from];
        let body = &got[o_at..o_at + p.take];
        let tail = &scratch[s_at + p.from..s_at + p.from + after];
        let ok = p.from >= HEADER_LEN && {
            let crc = crc32c::crc32c_append(crc32c::crc32c_append(crc32c::crc32c(&head[4..]), body), tail);
            crc == u32::from_le_bytes([head[0], head[1], head[2], head[3]])
        };
        if !ok {
            return Err(RunError::Damaged(rec_off));
        }
        s_at += p.from + after;
        o_at += p.take;
        rec_off += p.len as u64;
    }
    // SAFETY: the `served` bytes after `base` are initialized (above) and verified.
    unsafe { out.set_len(base + served) };
    Ok(())
}

/// `preadv` until every buffer is full; answers the file offset after them.
fn preadv_all(file: &std::fs::File, iov: &mut [libc::iovec], mut off: u64) -> io::Result<u64> {
    let mut first = 0;
    while first < iov.len() {
        let bufs = &mut iov[first..];
        // SAFETY: every buffer points into memory owned by the caller for its full length.
        let n = unsafe { libc::preadv(file.as_raw_fd(), bufs.as_ptr(), bufs.len() as libc::c_int, off as libc::off_t) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the segment ends before the record does",
            ));
        }
        let mut n = n as usize;
        off += n as u64;
        while n > 0 {
            let b = &mut iov[first];
            if n >= b.iov_len {
                n -= b.iov_len;
                first += 1;
            } else {
                // SAFETY: advancing within the same buffer.
                b.iov_base = unsafe { b.iov_base.cast::<u8>().add(n) }.cast();
                b.iov_len -= n;
                n = 0;
            }
        }
        while first < iov.len() && iov[first].iov_len == 0 {
            first += 1;
        }
    }
    Ok(off)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn record(payload: &[u8]) -> Vec<u8> {
        let mut buf = Vec::new();
        crate::record::encode(&mut buf, 1, crate::record::KIND_APPEND, |b| b.extend_from_slice(payload));
        buf
    }

    #[test]
    fn served_bytes_land_in_order_and_damage_is_refused() {
        let dir = std::env::temp_dir().join(format!("vread-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("seg");
        let recs: Vec<Vec<u8>> = (0..700u32).map(|i| record(format!("payload-{i:04}").as_bytes())).collect();
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(b"xxxx").unwrap();
        for r in &recs {
            f.write_all(r).unwrap();
        }
        drop(f);
        let file = std::fs::File::open(&path).unwrap();
        // Every record whole except the first (from its 3rd payload byte) and the last (4 bytes).
        let n = recs.len();
        let parts: Vec<Part> = recs
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let from = if i == 0 { HEADER_LEN + 2 } else { HEADER_LEN };
                let take = if i == n - 1 { 4 } else { r.len() - from };
                Part { len: r.len(), from, take }
            })
            .collect();
        let mut out = b"prefix:".to_vec();
        read_run(&file, 4, &parts, &mut out).unwrap();
        let mut want = b"prefix:".to_vec();
        for (i, _) in recs.iter().enumerate() {
            let p = format!("payload-{i:04}");
            let p = p.as_bytes();
            want.extend_from_slice(if i == 0 {
                &p[2..]
            } else if i == n - 1 {
                &p[..4]
            } else {
                p
            });
        }
        assert_eq!(out, want);
        // A flipped bit in the 500th record's payload, outside what is served or not.
        let mut bytes = std::fs::read(&path).unwrap();
        let at = 4 + recs[..500].iter().map(Vec::len).sum::<usize>() + HEADER_LEN + 1;
        bytes[at] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let mut out = b"prefix:".to_vec();
        match read_run(&file, 4, &parts, &mut out) {
            Err(RunError::Damaged(off)) => assert_eq!(off, recs[..500].iter().map(Vec::len).sum::<usize>() as u64),
            other => panic!("damage not found: {other:?}"),
        }
        assert_eq!(out, b"prefix:", "nothing served from a damaged run");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
