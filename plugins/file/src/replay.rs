//! Recovery: rebuilds the stream map from the log's records, in log order.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use durable_streams_core::abi::{EngineError, ErrorCode, Lifetime};
use durable_streams_core::producer::ProducerStamp;
use durable_streams_core::producer::ProducerState;
use durable_streams_core::rules::StateUpdate;
use parking_lot::Mutex;

use crate::log::{Log, Replayed, Tail};
use crate::record::{self as rec, Reader};
use crate::stream::{Extent, FileStream, Inner};

/// Removes a fully deleted stream: marks it removed and releases its fork source.
pub fn forget(map: &mut BTreeMap<String, Arc<FileStream>>, s: &Arc<FileStream>) {
    s.inner.lock().removed = true;
    if let Some((_, src)) = &s.fork {
        src.refcount.fetch_sub(1, Ordering::AcqRel);
    }
    let _ = map;
}

fn malformed(r: &Replayed<'_>, path: &Path) -> EngineError {
    EngineError::new(
        ErrorCode::CORRUPT,
        format!("undecodable record in {} at byte {}; refusing to start", path.display(), r.loc.off),
    )
}

/// What recovery rebuilds.
pub struct Recovered {
    pub log: Log,
    pub tail: Tail,
    pub streams: BTreeMap<String, Arc<FileStream>>,
    pub next_id: u64,
}

/// Replays the log in `dir`.
pub fn recover(dir: &Path) -> Result<Recovered, EngineError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut by_id: HashMap<u64, Arc<FileStream>> = HashMap::new();
    let mut names: BTreeMap<String, Arc<FileStream>> = BTreeMap::new();
    let mut next_id = 1u64;
    let (log, tail) = Log::open(dir, |r| {
        let seg_path = dir.join(format!("seg-{:08}.log", r.loc.seg));
        let bad = |r: &Replayed<'_>| malformed(r, &seg_path);
        let mut rd = Reader::new(r.payload);
        match r.header.kind {
            rec::KIND_CREATE => {
                let id = rd.u64().map_err(|_| bad(&r))?;
                let name = rd.str().map_err(|_| bad(&r))?.to_string();
                let ct = rd.str().map_err(|_| bad(&r))?.to_string();
                let ttl = rd.opt().map_err(|_| bad(&r))?;
                let exp = rd.opt().map_err(|_| bad(&r))?;
                let closed = rd.u8().map_err(|_| bad(&r))? != 0;
                let has_fork = rd.u8().map_err(|_| bad(&r))? != 0;
                let src_id = rd.u64().map_err(|_| bad(&r))?;
                let pos = rd.u64().map_err(|_| bad(&r))?;
                let data_off = (rec::HEADER_LEN + rd.pos) as u32;
                let initial = rd.rest().len() as u32;
                let fork = if has_fork {
                    let src = by_id.get(&src_id).cloned().ok_or_else(|| bad(&r))?;
                    src.refcount.fetch_add(1, Ordering::AcqRel);
                    let src_name = names
                        .iter()
                        .find(|(_, s)| Arc::ptr_eq(s, &src))
                        .map(|(n, _)| n.clone())
                        .unwrap_or_default();
                    Some((src_name, src))
                } else {
                    None
                };
                let base = if has_fork { pos } else { 0 };
                let mut inner = Inner {
                    tail: base,
                    ..Default::default()
                };
                if initial > 0 {
                    inner.extents.push(Extent {
                        start: base,
                        data_len: initial,
                        loc: r.loc,
                        data_off,
                    });
                    inner.tail += initial as u64;
                }
                inner.writer.closed = closed;
                let s = Arc::new(FileStream {
                    id,
                    content_type: ct,
                    lifetime: Lifetime {
                        ttl_secs: ttl.into(),
                        expires_at_ms: exp.into(),
                    },
                    fork,
                    base,
                    refcount: AtomicU32::new(0),
                    soft_deleted: AtomicBool::new(false),
                    last_access_ms: AtomicU64::new(now),
                    inner: Mutex::new(inner),
                });
                next_id = next_id.max(id + 1);
                by_id.insert(id, s.clone());
                names.insert(name, s);
            }
            rec::KIND_APPEND => {
                let id = rd.u64().map_err(|_| bad(&r))?;
                let flags = rd.u8().map_err(|_| bad(&r))?;
                let producer = if flags & rec::FLAG_PRODUCER != 0 {
                    let pid = rd.str().map_err(|_| bad(&r))?.to_string();
                    let epoch = rd.u64().map_err(|_| bad(&r))?;
                    let seq = rd.u64().map_err(|_| bad(&r))?;
                    Some(ProducerStamp { id: pid, epoch, seq })
                } else {
                    None
                };
                let seq = if flags & rec::FLAG_SEQ != 0 {
                    Some(rd.str().map_err(|_| bad(&r))?.to_string())
                } else {
                    None
                };
                let data_off = (rec::HEADER_LEN + rd.pos) as u32;
                let len = rd.rest().len() as u32;
                let s = by_id.get(&id).ok_or_else(|| bad(&r))?;
                let mut inner = s.inner.lock();
                if len > 0 {
                    let start = inner.tail;
                    inner.extents.push(Extent {
                        start,
                        data_len: len,
                        loc: r.loc,
                        data_off,
                    });
                    inner.tail += len as u64;
                }
                let close = flags & rec::FLAG_CLOSE != 0;
                let update = StateUpdate {
                    producer: producer.as_ref().map(|p| {
                        (
                            p.id.clone(),
                            ProducerState {
                                epoch: p.epoch,
                                last_seq: p.seq,
                            },
                        )
                    }),
                    stream_seq: seq,
                    close,
                    closed_by: if close { producer } else { None },
                };
                inner.writer.apply(&update);
            }
            rec::KIND_SOFT_DELETE => {
                let id = rd.u64().map_err(|_| bad(&r))?;
                let hide = rd.u8().unwrap_or(0) != 0;
                let s = by_id.get(&id).cloned().ok_or_else(|| bad(&r))?;
                s.soft_deleted.store(true, Ordering::Release);
                if hide {
                    names.retain(|_, v| !Arc::ptr_eq(v, &s));
                }
            }
            rec::KIND_DELETE => {
                let id = rd.u64().map_err(|_| bad(&r))?;
                let s = by_id.remove(&id).ok_or_else(|| bad(&r))?;
                names.retain(|_, v| !Arc::ptr_eq(v, &s));
                forget(&mut names, &s);
            }
            _ => return Err(bad(&r)),
        }
        Ok(())
    })?;
    Ok(Recovered {
        log,
        tail,
        streams: names,
        next_id,
    })
}
