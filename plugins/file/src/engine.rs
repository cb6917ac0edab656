//! `FileStorage`: the engine contract over one shared write-ahead log; mutations are serialized
//! by the writer lock and committed in groups (`append_many`), state applied only once durable.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use abi_stable::std_types::{ROption, RVec};
use durable_streams_core::abi::*;
use durable_streams_core::limits::Limits;
use durable_streams_core::producer::ProducerStamp;
use durable_streams_core::rules::{self, AppendCheck, AppendDecision, StateUpdate, WriterState};
use durable_streams_core::ttl;
use parking_lot::{Mutex, RwLock};

use crate::log::{Loc, Log, Tail};
use crate::record as rec;
use crate::replay;
use crate::stream::{Extent, FileStream, Inner};

/// Whether appends are fsynced before they are acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// `file-fast`: written to the OS before acknowledging; fsynced every interval.
    Buffered,
    /// `file-durable`: fdatasync before acknowledging.
    Synced,
}

pub(crate) struct WriterSide {
    pub tail: Tail,
    pub next_id: u64,
}

/// The file engine.
pub struct FileStorage {
    pub(crate) log: Log,
    pub(crate) writer: Mutex<WriterSide>,
    pub(crate) streams: RwLock<BTreeMap<String, Arc<FileStream>>>,
    durability: Durability,
    pub(crate) stop: Arc<AtomicBool>,
    limits: Limits,
}

fn err_now<T>(e: EngineError) -> Result<T, EngineError> {
    Err(e)
}

/// A pending mutation of one batch, applied after the write succeeds.
enum Effect {
    Append {
        stream: Arc<FileStream>,
        extent: Option<(u64, u32, usize, usize, u32)>,
        update: StateUpdate,
        tail: u64,
    },
}

impl FileStorage {
    /// Opens (recovering) the log under `dir`.
    pub fn open(dir: &Path, durability: Durability) -> Result<FileStorage, EngineError> {
        let r = replay::recover(dir)?;
        let engine = FileStorage {
            log: r.log,
            writer: Mutex::new(WriterSide {
                tail: r.tail,
                next_id: r.next_id,
            }),
            streams: RwLock::new(r.streams),
            durability,
            stop: Arc::new(AtomicBool::new(false)),
            limits: Limits::default(),
        };
        Ok(engine)
    }

    /// Enforces `limits.max_stream_bytes` on appends and creates.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// file-fast: fsync the active segment every `interval_ms` on a background thread.
    pub fn start_background_sync(self: &Arc<Self>, interval_ms: u64) {
        if self.durability != Durability::Buffered || interval_ms == 0 {
            return;
        }
        let weak = Arc::downgrade(self);
        let stop = self.stop.clone();
        let _ = std::thread::Builder::new().name("ds-file-sync".into()).spawn(move || loop {
            std::thread::sleep(std::time::Duration::from_millis(interval_ms));
            if stop.load(Ordering::Acquire) {
                return;
            }
            let Some(engine) = weak.upgrade() else { return };
            let file = {
                let w = engine.writer.lock();
                engine.log.active_file(&w.tail)
            };
            let _ = file.sync_data();
        });
    }

    fn sync(&self) -> bool {
        self.durability == Durability::Synced
    }

    pub(crate) fn expired(s: &FileStream, now_ms: u64) -> bool {
        ttl::is_expired(s.lifetime, s.last_access_ms.load(Ordering::Relaxed), now_ms)
    }

    pub(crate) fn live(&self, name: &str, now_ms: u64) -> Result<Arc<FileStream>, EngineError> {
        match self.streams.read().get(name) {
            None => Err(EngineError::not_found(name)),
            Some(s) if s.soft_deleted.load(Ordering::Acquire) => Err(EngineError::gone(name)),
            Some(s) if Self::expired(s, now_ms) => Err(EngineError::not_found(name)),
            Some(s) => Ok(s.clone()),
        }
    }

    /// Records that remove `stream` (soft when forked), plus the cascade up its fork chain.
    fn removal_records(
        buf: &mut Vec<u8>,
        w: &mut WriterSide,
        name: &str,
        stream: &Arc<FileStream>,
        hide_name: bool,
    ) -> Vec<(Arc<FileStream>, bool, String)> {
        let mut plan = Vec::new();
        if stream.refcount.load(Ordering::Acquire) > 0 {
            rec::encode(buf, w.tail.next_lsn, rec::KIND_SOFT_DELETE, |b| {
                rec::put_u64(b, stream.id);
                b.push(hide_name as u8);
            });
            w.tail.next_lsn += 1;
            plan.push((stream.clone(), false, name.to_string()));
            return plan;
        }
        rec::encode(buf, w.tail.next_lsn, rec::KIND_DELETE, |b| rec::put_u64(b, stream.id));
        w.tail.next_lsn += 1;
        plan.push((stream.clone(), true, name.to_string()));
        let mut current = stream.clone();
        while let Some((src_name, src)) = current.fork.clone() {
            let left = src.refcount.load(Ordering::Acquire).saturating_sub(1);
            if left == 0 && src.soft_deleted.load(Ordering::Acquire) {
                rec::encode(buf, w.tail.next_lsn, rec::KIND_DELETE, |b| rec::put_u64(b, src.id));
                w.tail.next_lsn += 1;
                plan.push((src.clone(), true, src_name));
                current = src;
            } else {
                break;
            }
        }
        plan
    }

    fn apply_removals(map: &mut BTreeMap<String, Arc<FileStream>>, plan: &[(Arc<FileStream>, bool, String)], hide_name: bool) {
        for (s, full, name) in plan {
            if *full {
                replay::forget(map, s);
                if map.get(name).is_some_and(|m| Arc::ptr_eq(m, s)) {
                    map.remove(name);
                }
            } else {
                s.soft_deleted.store(true, Ordering::Release);
                if hide_name && map.get(name).is_some_and(|m| Arc::ptr_eq(m, s)) {
                    map.remove(name);
                }
            }
        }
    }

    fn write(&self, w: &mut WriterSide, buf: &[u8], first_lsn: u64) -> Result<(u32, u64), EngineError> {
        match self.log.write(&mut w.tail, buf, self.sync()) {
            Ok(at) => Ok(at),
            Err(e) => {
                w.tail.next_lsn = first_lsn;
                Err(e)
            }
        }
    }

    pub(crate) fn do_create(&self, req: &CreateRequest<'_>) -> Result<CreateOutcome, EngineError> {
        let name = req.name.as_str();
        let mut w = self.writer.lock();
        let existing = self.streams.read().get(name).cloned();
        let mut buf = Vec::new();
        let first_lsn = w.tail.next_lsn;
        let mut removal = Vec::new();
        if let Some(ex) = &existing {
            if ex.soft_deleted.load(Ordering::Acquire) {
                return err_now(EngineError::new(
                    ErrorCode::CONFIG_CONFLICT,
                    format!("stream '{name}' was deleted and is still referenced by forks"),
                ));
            }
            if Self::expired(ex, req.now_ms) {
                removal = Self::removal_records(&mut buf, &mut w, name, ex, true);
            } else {
                let inner = ex.inner.lock();
                let view = rules::Existing {
                    content_type: &ex.content_type,
                    lifetime: ex.lifetime,
                    closed: inner.writer.closed,
                    fork: ex.fork.as_ref().map(|(n, src)| (n.as_str(), ex.base, src.lifetime)),
                };
                if rules::create_matches(&view, req) {
                    return Ok(CreateOutcome {
                        created: false,
                        meta: ex.meta(&inner),
                    });
                }
                return err_now(EngineError::new(
                    ErrorCode::CONFIG_CONFLICT,
                    format!("stream '{name}' exists with a different configuration"),
                ));
            }
        }
        let (ct, lifetime, fork) = match req.fork {
            ROption::RNone => (
                req.content_type
                    .map(|c| c.as_str().to_string())
                    .unwrap_or_else(|| "application/octet-stream".into()),
                req.lifetime,
                None,
            ),
            ROption::RSome(f) => {
                let src_name = f.source.as_str();
                let found = self.streams.read().get(src_name).cloned();
                let view = found.as_ref().map(|s| rules::ForkSource {
                    content_type: &s.content_type,
                    tail: s.inner.lock().tail,
                    soft_deleted: s.soft_deleted.load(Ordering::Acquire),
                    expired: Self::expired(s, req.now_ms),
                });
                rules::check_fork_source(src_name, view, f.position, req.content_type.map(|c| c.as_str()).into_option())?;
                let src = found.expect("checked");
                (
                    src.content_type.clone(),
                    ttl::fork_lifetime(src.lifetime, req.lifetime),
                    Some((src_name.to_string(), src, f.position)),
                )
            }
        };
        let base_pos = fork.as_ref().map(|f| f.2).unwrap_or(0);
        self.limits.check_stream(base_pos, req.initial.len() as u64)?;
        let id = w.next_id;
        let lsn = w.tail.next_lsn;
        let rec_start = buf.len();
        let mut data_at = 0;
        rec::encode(&mut buf, lsn, rec::KIND_CREATE, |b| {
            rec::put_u64(b, id);
            rec::put_str(b, name);
            rec::put_str(b, &ct);
            rec::put_opt(b, lifetime.ttl_secs.into_option());
            rec::put_opt(b, lifetime.expires_at_ms.into_option());
            b.push(req.closed as u8);
            let (flag, src_id, pos) = match &fork {
                Some((_, src, pos)) => (1u8, src.id, *pos),
                None => (0, 0, 0),
            };
            b.push(flag);
            rec::put_u64(b, src_id);
            rec::put_u64(b, pos);
            data_at = b.len();
            b.extend_from_slice(req.initial.as_slice());
        });
        let data_off = (data_at - rec_start) as u32;
        let rec_len = (buf.len() - rec_start) as u32;
        w.tail.next_lsn += 1;
        let (seg, base_off) = self.write(&mut w, &buf, first_lsn)?;
        w.next_id += 1;
        let base = fork.as_ref().map(|f| f.2).unwrap_or(0);
        let mut inner = Inner {
            tail: base,
            ..Default::default()
        };
        if !req.initial.is_empty() {
            inner.extents.push(Extent {
                start: base,
                data_len: req.initial.len() as u32,
                loc: Loc {
                    seg,
                    off: base_off + rec_start as u64,
                    len: rec_len,
                },
                data_off,
            });
            inner.tail += req.initial.len() as u64;
        }
        inner.writer.closed = req.closed;
        let stream = Arc::new(FileStream {
            id,
            content_type: ct,
            lifetime,
            fork: fork.map(|(n, s, _)| (n, s)),
            base,
            refcount: AtomicU32::new(0),
            soft_deleted: AtomicBool::new(false),
            last_access_ms: AtomicU64::new(req.now_ms),
            inner: Mutex::new(inner),
        });
        let mut map = self.streams.write();
        if !removal.is_empty() {
            Self::apply_removals(&mut map, &removal, true);
        }
        if let Some((_, src)) = &stream.fork {
            src.refcount.fetch_add(1, Ordering::AcqRel);
        }
        let meta = stream.meta(&stream.inner.lock());
        map.insert(name.to_string(), stream);
        Ok(CreateOutcome { created: true, meta })
    }

    pub(crate) fn do_append_many(&self, reqs: &[AppendRequest<'_>]) -> Vec<Result<AppendOutcome, EngineError>> {
        let mut w = self.writer.lock();
        let first_lsn = w.tail.next_lsn;
        let mut buf = Vec::new();
        let mut overlay: HashMap<u64, (WriterState, u64)> = HashMap::new();
        let mut effects: Vec<(usize, Effect)> = Vec::new();
        let mut results: Vec<Option<Result<AppendOutcome, EngineError>>> = Vec::with_capacity(reqs.len());
        for (i, req) in reqs.iter().enumerate() {
            let stream = match self.live(req.name.as_str(), req.now_ms) {
                Ok(s) => s,
                Err(e) => {
                    results.push(Some(Err(e)));
                    continue;
                }
            };
            let (state, tail) = overlay.entry(stream.id).or_insert_with(|| {
                let inner = stream.inner.lock();
                (inner.writer.clone(), inner.tail)
            });
            let stamp = req.producer.into_option().map(|p| ProducerStamp {
                id: p.id.as_str().to_string(),
                epoch: p.epoch,
                seq: p.seq,
            });
            let check = AppendCheck {
                stream_content_type: &stream.content_type,
                content_type: req.content_type.map(|c| c.as_str()).into_option(),
                body_is_empty: req.body.is_empty(),
                close: req.close,
                producer: stamp.as_ref(),
                stream_seq: req.stream_seq.map(|s| s.as_str()).into_option(),
            };
            stream.touch(req.now_ms);
            match rules::check_append(state, &check) {
                Ok(AppendDecision::Accept(update)) => {
                    if let Err(e) = self.limits.check_stream(*tail, req.body.len() as u64) {
                        results.push(Some(Err(e)));
                        continue;
                    }
                    let lsn = w.tail.next_lsn;
                    w.tail.next_lsn += 1;
                    let rec_start = buf.len();
                    let mut data_at = 0;
                    rec::encode(&mut buf, lsn, rec::KIND_APPEND, |b| {
                        rec::put_u64(b, stream.id);
                        let mut flags = 0u8;
                        if req.close {
                            flags |= rec::FLAG_CLOSE;
                        }
                        if stamp.is_some() {
                            flags |= rec::FLAG_PRODUCER;
                        }
                        if req.stream_seq.is_some() {
                            flags |= rec::FLAG_SEQ;
                        }
                        b.push(flags);
                        if let Some(s) = &stamp {
                            rec::put_str(b, &s.id);
                            rec::put_u64(b, s.epoch);
                            rec::put_u64(b, s.seq);
                        }
                        if let ROption::RSome(seq) = req.stream_seq {
                            rec::put_str(b, seq.as_str());
                        }
                        data_at = b.len();
                        b.extend_from_slice(req.body.as_slice());
                    });
                    let rec_len = (buf.len() - rec_start) as u32;
                    let data_off = (data_at - rec_start) as u32;
                    let extent = (!req.body.is_empty()).then_some((*tail, req.body.len() as u32, rec_start, data_off as usize, rec_len));
                    *tail += req.body.len() as u64;
                    state.apply(&update);
                    let out = AppendOutcome {
                        duplicate: false,
                        tail: *tail,
                        closed: state.closed,
                        producer: update
                            .producer
                            .as_ref()
                            .map(|(_, st)| ProducerAck {
                                epoch: st.epoch,
                                seq: st.last_seq,
                            })
                            .into(),
                    };
                    effects.push((
                        i,
                        Effect::Append {
                            stream: stream.clone(),
                            extent,
                            update,
                            tail: *tail,
                        },
                    ));
                    results.push(Some(Ok(out)));
                }
                Ok(AppendDecision::Duplicate { producer }) => results.push(Some(Ok(AppendOutcome {
                    duplicate: true,
                    tail: *tail,
                    closed: state.closed,
                    producer: producer
                        .map(|st| ProducerAck {
                            epoch: st.epoch,
                            seq: st.last_seq,
                        })
                        .into(),
                }))),
                Err(r) => results.push(Some(Err(EngineError::from_rejection(r, *tail, state.closed)))),
            }
        }
        if !buf.is_empty() {
            match self.write(&mut w, &buf, first_lsn) {
                Ok((seg, base_off)) => {
                    for (
                        _,
                        Effect::Append {
                            stream,
                            extent,
                            update,
                            tail,
                        },
                    ) in &effects
                    {
                        let mut inner = stream.inner.lock();
                        if let Some((start, data_len, rec_start, data_off, rec_len)) = extent {
                            inner.extents.push(Extent {
                                start: *start,
                                data_len: *data_len,
                                loc: Loc {
                                    seg,
                                    off: base_off + *rec_start as u64,
                                    len: *rec_len,
                                },
                                data_off: *data_off as u32,
                            });
                        }
                        inner.tail = *tail;
                        inner.writer.apply(update);
                    }
                }
                Err(e) => {
                    for (i, _) in &effects {
                        results[*i] = Some(Err(e.clone()));
                    }
                }
            }
        }
        results.into_iter().map(|r| r.expect("every request has a result")).collect()
    }

    pub(crate) fn do_read(&self, req: &ReadRequest<'_>) -> Result<ReadChunk, EngineError> {
        let name = req.name.as_str();
        let stream = self.live(name, req.now_ms)?;
        stream.touch(req.now_ms);
        let tail = stream.inner.lock().tail;
        let start = if req.start == ReadStart::Tail { tail } else { req.position };
        if start > tail {
            return err_now(EngineError::new(
                ErrorCode::OFFSET_BEYOND_TAIL,
                "offset is beyond the stream's tail",
            ));
        }
        let mut out = Vec::new();
        let next = if start == tail {
            start
        } else {
            stream.read_into(&self.log, start, u64::MAX, req.max_bytes as usize, &mut out)?
        };
        let meta = stream.meta(&stream.inner.lock());
        Ok(ReadChunk {
            data: ByteViewBox::from_value(RVec::from(out), abi_stable::sabi_trait::TD_Opaque),
            next,
            meta,
        })
    }

    pub(crate) fn do_delete(&self, req: &DeleteRequest<'_>) -> Result<(), EngineError> {
        let name = req.name.as_str();
        let mut w = self.writer.lock();
        let Some(stream) = self.streams.read().get(name).cloned() else {
            return err_now(EngineError::not_found(name));
        };
        if stream.soft_deleted.load(Ordering::Acquire) {
            return err_now(EngineError::gone(name));
        }
        let expired = Self::expired(&stream, req.now_ms);
        if req.only_if_expired && !expired {
            return Ok(());
        }
        let first_lsn = w.tail.next_lsn;
        let mut buf = Vec::new();
        let plan = Self::removal_records(&mut buf, &mut w, name, &stream, expired);
        self.write(&mut w, &buf, first_lsn)?;
        Self::apply_removals(&mut self.streams.write(), &plan, expired);
        if expired && !req.only_if_expired {
            return err_now(EngineError::not_found(name));
        }
        Ok(())
    }
}

impl Drop for FileStorage {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}
