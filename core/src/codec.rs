//! A small little-endian byte codec shared by engines for their on-disk records, and the
//! encoding of [`WriterState`] (closure, producers, `Stream-Seq`) that durable engines persist.

use crate::producer::{ProducerStamp, ProducerState};
use crate::rules::WriterState;

pub fn put_u64(b: &mut Vec<u8>, v: u64) {
    b.extend_from_slice(&v.to_le_bytes());
}

pub fn put_str(b: &mut Vec<u8>, s: &str) {
    b.extend_from_slice(&(s.len() as u32).to_le_bytes());
    b.extend_from_slice(s.as_bytes());
}

pub fn put_opt(b: &mut Vec<u8>, v: Option<u64>) {
    b.push(v.is_some() as u8);
    put_u64(b, v.unwrap_or(0));
}

/// Why bytes could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("malformed stored record")
    }
}

impl std::error::Error for Malformed {}

/// A cursor over encoded bytes.
pub struct Reader<'a> {
    pub buf: &'a [u8],
    pub pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    pub fn u8(&mut self) -> Result<u8, Malformed> {
        let v = *self.buf.get(self.pos).ok_or(Malformed)?;
        self.pos += 1;
        Ok(v)
    }
    pub fn u32(&mut self) -> Result<u32, Malformed> {
        let s = self.buf.get(self.pos..self.pos + 4).ok_or(Malformed)?;
        self.pos += 4;
        Ok(u32::from_le_bytes(s.try_into().map_err(|_| Malformed)?))
    }
    pub fn u64(&mut self) -> Result<u64, Malformed> {
        let s = self.buf.get(self.pos..self.pos + 8).ok_or(Malformed)?;
        self.pos += 8;
        Ok(u64::from_le_bytes(s.try_into().map_err(|_| Malformed)?))
    }
    pub fn str(&mut self) -> Result<&'a str, Malformed> {
        let l = self.u32()? as usize;
        let s = self.buf.get(self.pos..self.pos + l).ok_or(Malformed)?;
        self.pos += l;
        std::str::from_utf8(s).map_err(|_| Malformed)
    }
    pub fn opt(&mut self) -> Result<Option<u64>, Malformed> {
        let f = self.u8()?;
        let v = self.u64()?;
        Ok((f != 0).then_some(v))
    }
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos.min(self.buf.len())..]
    }
}

/// Encodes a writer state.
pub fn put_writer_state(b: &mut Vec<u8>, w: &WriterState) {
    b.push(w.closed as u8);
    match &w.closed_by {
        Some(p) => {
            b.push(1);
            put_str(b, &p.id);
            put_u64(b, p.epoch);
            put_u64(b, p.seq);
        }
        None => b.push(0),
    }
    match &w.last_stream_seq {
        Some(s) => {
            b.push(1);
            put_str(b, s);
        }
        None => b.push(0),
    }
    b.extend_from_slice(&(w.producers.len() as u32).to_le_bytes());
    let mut ids: Vec<&String> = w.producers.keys().collect();
    ids.sort();
    for id in ids {
        let st = w.producers[id];
        put_str(b, id);
        put_u64(b, st.epoch);
        put_u64(b, st.last_seq);
    }
}

/// Decodes a writer state written by [`put_writer_state`].
pub fn read_writer_state(r: &mut Reader<'_>) -> Result<WriterState, Malformed> {
    let mut w = WriterState {
        closed: r.u8()? != 0,
        ..Default::default()
    };
    if r.u8()? != 0 {
        let id = r.str()?.to_string();
        w.closed_by = Some(ProducerStamp {
            id,
            epoch: r.u64()?,
            seq: r.u64()?,
        });
    }
    if r.u8()? != 0 {
        w.last_stream_seq = Some(r.str()?.to_string());
    }
    let n = r.u32()?;
    for _ in 0..n {
        let id = r.str()?.to_string();
        let st = ProducerState {
            epoch: r.u64()?,
            last_seq: r.u64()?,
        };
        w.producers.insert(id, st);
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_state_round_trip() {
        let mut w = WriterState {
            closed: true,
            last_stream_seq: Some("0009".into()),
            ..Default::default()
        };
        w.closed_by = Some(ProducerStamp {
            id: "p".into(),
            epoch: 2,
            seq: 7,
        });
        w.producers.insert("p".into(), ProducerState { epoch: 2, last_seq: 7 });
        w.producers.insert("q".into(), ProducerState { epoch: 0, last_seq: 1 });
        let mut b = Vec::new();
        put_writer_state(&mut b, &w);
        let back = read_writer_state(&mut Reader::new(&b)).unwrap();
        assert_eq!(back, w);
        assert!(read_writer_state(&mut Reader::new(&b[..b.len() - 1])).is_err());
    }
}
