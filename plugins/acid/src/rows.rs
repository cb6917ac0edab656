//! The acid engine's row encodings: a stream's catalogue row (name, type, lifetime, fork,
//! deletion flags) and its state row (tail and writer state).

use durable_streams_core::abi::Lifetime;
use durable_streams_core::codec::{self, Malformed, Reader};
use durable_streams_core::rules::WriterState;

/// The catalogue row of a stream.
pub struct CatalogRow {
    pub name: String,
    pub content_type: String,
    pub lifetime: Lifetime,
    /// Source id and fork position.
    pub fork: Option<(u64, u64)>,
    pub soft_deleted: bool,
    pub hidden: bool,
}

pub fn encode_catalog(c: &CatalogRow) -> Vec<u8> {
    let mut b = Vec::new();
    codec::put_str(&mut b, &c.name);
    codec::put_str(&mut b, &c.content_type);
    codec::put_opt(&mut b, c.lifetime.ttl_secs.into_option());
    codec::put_opt(&mut b, c.lifetime.expires_at_ms.into_option());
    codec::put_opt(&mut b, c.fork.map(|f| f.0));
    codec::put_u64(&mut b, c.fork.map(|f| f.1).unwrap_or(0));
    b.push(c.soft_deleted as u8);
    b.push(c.hidden as u8);
    b
}

pub fn decode_catalog(bytes: &[u8]) -> Result<CatalogRow, Malformed> {
    let mut r = Reader::new(bytes);
    let name = r.str()?.to_string();
    let content_type = r.str()?.to_string();
    let ttl = r.opt()?;
    let exp = r.opt()?;
    let src = r.opt()?;
    let pos = r.u64()?;
    Ok(CatalogRow {
        name,
        content_type,
        lifetime: Lifetime {
            ttl_secs: ttl.into(),
            expires_at_ms: exp.into(),
        },
        fork: src.map(|s| (s, pos)),
        soft_deleted: r.u8()? != 0,
        hidden: r.u8()? != 0,
    })
}

pub fn encode_state(tail: u64, writer: &WriterState) -> Vec<u8> {
    let mut b = Vec::new();
    codec::put_u64(&mut b, tail);
    codec::put_writer_state(&mut b, writer);
    b
}

pub fn decode_state(bytes: &[u8]) -> Result<(u64, WriterState), Malformed> {
    let mut r = Reader::new(bytes);
    let tail = r.u64()?;
    let writer = codec::read_writer_state(&mut r)?;
    Ok((tail, writer))
}
