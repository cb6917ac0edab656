//! One stream of the acid engine as kept in memory: catalog facts, tail and writer state (the
//! bytes stay in redb); plus the catalog record encoding.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use durable_streams_core::abi::{Lifetime, StreamMeta};
use durable_streams_core::codec::{self, Malformed, Reader};
use durable_streams_core::rules::WriterState;
use parking_lot::Mutex;

/// A stream and everything the engine keeps about it in memory.
pub struct AcidStream {
    pub id: u64,
    pub shard: usize,
    pub name: String,
    pub content_type: String,
    pub lifetime: Lifetime,
    pub fork: Option<(String, Arc<AcidStream>)>,
    pub base: u64,
    pub refcount: AtomicU32,
    pub soft_deleted: AtomicBool,
    pub hidden: AtomicBool,
    pub last_access_ms: AtomicU64,
    pub inner: Mutex<Inner>,
}

/// The mutable part.
#[derive(Default, Clone)]
pub struct Inner {
    pub tail: u64,
    pub writer: WriterState,
    pub removed: bool,
}

impl AcidStream {
    pub fn meta(&self, inner: &Inner) -> StreamMeta {
        StreamMeta {
            content_type: self.content_type.as_str().into(),
            tail: inner.tail,
            closed: inner.writer.closed,
            lifetime: self.lifetime,
            incarnation: self.id,
            fork_source: self.fork.as_ref().map(|(n, _)| n.as_str().into()).into(),
            fork_position: self.base,
        }
    }

    pub fn touch(&self, now_ms: u64) {
        self.last_access_ms.fetch_max(now_ms, Ordering::Relaxed);
    }
}

/// The catalog row of a stream.
pub struct Catalog {
    pub name: String,
    pub content_type: String,
    pub lifetime: Lifetime,
    pub fork: Option<(u64, u64)>,
    pub soft_deleted: bool,
    pub hidden: bool,
}

pub fn encode_catalog(c: &Catalog) -> Vec<u8> {
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

pub fn decode_catalog(bytes: &[u8]) -> Result<Catalog, Malformed> {
    let mut r = Reader::new(bytes);
    let name = r.str()?.to_string();
    let content_type = r.str()?.to_string();
    let ttl = r.opt()?;
    let exp = r.opt()?;
    let src = r.opt()?;
    let pos = r.u64()?;
    Ok(Catalog {
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

pub fn encode_state(inner: &Inner) -> Vec<u8> {
    let mut b = Vec::new();
    codec::put_u64(&mut b, inner.tail);
    codec::put_writer_state(&mut b, &inner.writer);
    b
}

pub fn decode_state(bytes: &[u8]) -> Result<Inner, Malformed> {
    let mut r = Reader::new(bytes);
    let tail = r.u64()?;
    let writer = codec::read_writer_state(&mut r)?;
    Ok(Inner {
        tail,
        writer,
        removed: false,
    })
}

impl AcidStream {
    pub fn catalog(&self) -> Catalog {
        Catalog {
            name: self.name.clone(),
            content_type: self.content_type.clone(),
            lifetime: self.lifetime,
            fork: self.fork.as_ref().map(|(_, s)| (s.id, self.base)),
            soft_deleted: self.soft_deleted.load(Ordering::Acquire),
            hidden: self.hidden.load(Ordering::Acquire),
        }
    }
}
