//! `AcidStorage`: the engine contract over sharded redb databases. Every append group commits
//! data and writer state in one transaction per shard; memory is updated only after the commit.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use abi_stable::std_types::{ROption, RResult, RSlice, RStr, RString, RVec};
use durable_streams_core::abi::*;
use durable_streams_core::limits::Limits;
use durable_streams_core::producer::ProducerStamp;
use durable_streams_core::rules::{self, AppendCheck, AppendDecision, WriterState};
use durable_streams_core::ttl;
use parking_lot::{Mutex, RwLock};

use crate::load;
use crate::shard::{db_err, Shard, DATA, META, STATE, STREAMS};
use crate::stream::{encode_catalog, encode_state, AcidStream, Inner};

/// The acid engine.
pub struct AcidStorage {
    pub(crate) shards: Vec<Shard>,
    /// Serializes mutations; holds each shard's next id counter.
    pub(crate) writer: Mutex<Vec<u64>>,
    pub(crate) streams: RwLock<BTreeMap<String, Arc<AcidStream>>>,
    limits: Limits,
}

/// Where shards live.
pub enum Backend<'a> {
    /// Shard files in `dir`; `create: false` opens existing data only and creates no file
    /// (the offline `list` / `export` commands).
    File {
        dir: &'a Path,
        create: bool,
    },
    Memory,
}

/// Stable across restarts (FNV-1a), unlike std's hasher.
pub fn shard_of(name: &str, n: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % n as u64) as usize
}

impl AcidStorage {
    pub fn open(backend: Backend<'_>, shard_count: usize) -> Result<AcidStorage, EngineError> {
        if !(1..=1024).contains(&shard_count) {
            return Err(EngineError::new(
                ErrorCode::BAD_CONFIG,
                format!("storage.acid_shard_count must be between 1 and 1024, not {shard_count}"),
            ));
        }
        let shards = match backend {
            Backend::Memory => (0..shard_count).map(|_| Shard::open_memory()).collect::<Result<Vec<_>, _>>()?,
            Backend::File { dir, create } => load::open_shard_files(dir, shard_count, create)?,
        };
        let counters = shards.iter().map(|s| s.next_counter()).collect::<Result<Vec<_>, _>>()?;
        let streams = load::load_streams(&shards)?;
        let engine = AcidStorage {
            shards,
            writer: Mutex::new(counters),
            streams: RwLock::new(streams),
            limits: Limits::default(),
        };
        load::collect_orphans(&engine)?;
        Ok(engine)
    }

    /// Enforces `limits.max_stream_bytes` on appends and creates.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    fn expired(s: &AcidStream, now_ms: u64) -> bool {
        ttl::is_expired(s.lifetime, s.last_access_ms.load(Ordering::Relaxed), now_ms)
    }

    fn live(&self, name: &str, now_ms: u64) -> Result<Arc<AcidStream>, EngineError> {
        match self.streams.read().get(name) {
            None => Err(EngineError::not_found(name)),
            Some(s) if s.soft_deleted.load(Ordering::Acquire) => Err(EngineError::gone(name)),
            Some(s) if Self::expired(s, now_ms) => Err(EngineError::not_found(name)),
            Some(s) => Ok(s.clone()),
        }
    }

    /// Removes `stream` (soft when forks reference it) and collects soft-deleted sources whose
    /// last fork this was. Each step is one transaction in the stream's own shard.
    pub(crate) fn remove(&self, stream: &Arc<AcidStream>, hide_name: bool) -> Result<(), EngineError> {
        if stream.refcount.load(Ordering::Acquire) > 0 {
            let mut cat = stream.catalog();
            cat.soft_deleted = true;
            cat.hidden = hide_name;
            let bytes = encode_catalog(&cat);
            self.shards[stream.shard].write(|txn| {
                let mut t = txn.open_table(STREAMS).map_err(|e| db_err("open streams", e))?;
                t.insert(stream.id, bytes.as_slice()).map_err(|e| db_err("soft delete", e))?;
                Ok(())
            })?;
            stream.soft_deleted.store(true, Ordering::Release);
            stream.hidden.store(hide_name, Ordering::Release);
            if hide_name {
                self.unmap(stream);
            }
            return Ok(());
        }
        let mut current = stream.clone();
        loop {
            self.purge(&current)?;
            let Some((_, src)) = current.fork.clone() else { break };
            let left = src.refcount.fetch_sub(1, Ordering::AcqRel) - 1;
            if left == 0 && src.soft_deleted.load(Ordering::Acquire) {
                current = src;
            } else {
                break;
            }
        }
        Ok(())
    }

    /// Deletes every row of one stream and forgets it.
    pub(crate) fn purge(&self, s: &Arc<AcidStream>) -> Result<(), EngineError> {
        let id = s.id;
        self.shards[s.shard].write(|txn| {
            txn.open_table(STREAMS)
                .map_err(|e| db_err("open streams", e))?
                .remove(id)
                .map_err(|e| db_err("delete", e))?;
            txn.open_table(STATE)
                .map_err(|e| db_err("open state", e))?
                .remove(id)
                .map_err(|e| db_err("delete", e))?;
            txn.open_table(DATA)
                .map_err(|e| db_err("open data", e))?
                .retain_in((id, 0)..=(id, u64::MAX), |_, _| false)
                .map_err(|e| db_err("delete data", e))?;
            Ok(())
        })?;
        s.inner.lock().removed = true;
        self.unmap(s);
        Ok(())
    }

    fn unmap(&self, s: &Arc<AcidStream>) {
        let mut map = self.streams.write();
        if map.get(&s.name).is_some_and(|m| Arc::ptr_eq(m, s)) {
            map.remove(&s.name);
        }
    }

    fn do_create(&self, req: &CreateRequest<'_>) -> Result<CreateOutcome, EngineError> {
        let name = req.name.as_str();
        let mut counters = self.writer.lock();
        let existing = self.streams.read().get(name).cloned();
        if let Some(ex) = &existing {
            if ex.soft_deleted.load(Ordering::Acquire) {
                return Err(EngineError::new(
                    ErrorCode::CONFIG_CONFLICT,
                    format!("stream '{name}' was deleted and is still referenced by forks"),
                ));
            }
            if Self::expired(ex, req.now_ms) {
                self.remove(ex, true)?;
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
                return Err(EngineError::new(
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
        self.limits
            .check_stream(fork.as_ref().map(|f| f.2).unwrap_or(0), req.initial.len() as u64)?;
        let shard = shard_of(name, self.shards.len());
        let counter = counters[shard];
        let id = (counter << 16) | shard as u64;
        let base = fork.as_ref().map(|f| f.2).unwrap_or(0);
        let inner = Inner {
            tail: base + req.initial.len() as u64,
            writer: WriterState {
                closed: req.closed,
                ..Default::default()
            },
            removed: false,
        };
        let stream = Arc::new(AcidStream {
            id,
            shard,
            name: name.to_string(),
            content_type: ct,
            lifetime,
            fork: fork.map(|(n, s, _)| (n, s)),
            base,
            refcount: AtomicU32::new(0),
            soft_deleted: AtomicBool::new(false),
            hidden: AtomicBool::new(false),
            last_access_ms: AtomicU64::new(req.now_ms),
            inner: Mutex::new(inner.clone()),
        });
        let catalog = encode_catalog(&stream.catalog());
        let state = encode_state(&inner);
        let initial = req.initial.as_slice();
        self.shards[shard].write(|txn| {
            txn.open_table(STREAMS)
                .map_err(|e| db_err("open streams", e))?
                .insert(id, catalog.as_slice())
                .map_err(|e| db_err("create", e))?;
            txn.open_table(STATE)
                .map_err(|e| db_err("open state", e))?
                .insert(id, state.as_slice())
                .map_err(|e| db_err("create", e))?;
            if !initial.is_empty() {
                txn.open_table(DATA)
                    .map_err(|e| db_err("open data", e))?
                    .insert((id, base), initial)
                    .map_err(|e| db_err("create", e))?;
            }
            txn.open_table(META)
                .map_err(|e| db_err("open meta", e))?
                .insert("next", counter + 1)
                .map_err(|e| db_err("create", e))?;
            Ok(())
        })?;
        counters[shard] = counter + 1;
        if let Some((_, src)) = &stream.fork {
            src.refcount.fetch_add(1, Ordering::AcqRel);
        }
        let meta = stream.meta(&inner);
        self.streams.write().insert(name.to_string(), stream);
        Ok(CreateOutcome { created: true, meta })
    }

    fn do_append_many(&self, reqs: &[AppendRequest<'_>]) -> Vec<Result<AppendOutcome, EngineError>> {
        let _w = self.writer.lock();
        let mut overlay: HashMap<u64, (Arc<AcidStream>, Inner)> = HashMap::new();
        let mut rows: Vec<Vec<(u64, u64, usize)>> = vec![Vec::new(); self.shards.len()];
        let mut owner: Vec<Option<(usize, u64)>> = vec![None; reqs.len()];
        let mut results: Vec<Result<AppendOutcome, EngineError>> = Vec::with_capacity(reqs.len());
        for (i, req) in reqs.iter().enumerate() {
            let stream = match self.live(req.name.as_str(), req.now_ms) {
                Ok(s) => s,
                Err(e) => {
                    results.push(Err(e));
                    continue;
                }
            };
            let (_, st) = overlay
                .entry(stream.id)
                .or_insert_with(|| (stream.clone(), stream.inner.lock().clone()));
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
            match rules::check_append(&st.writer, &check) {
                Ok(AppendDecision::Accept(update)) => {
                    if let Err(e) = self.limits.check_stream(st.tail, req.body.len() as u64) {
                        results.push(Err(e));
                        continue;
                    }
                    if !req.body.is_empty() {
                        rows[stream.shard].push((stream.id, st.tail, i));
                    }
                    st.tail += req.body.len() as u64;
                    st.writer.apply(&update);
                    owner[i] = Some((stream.shard, stream.id));
                    results.push(Ok(AppendOutcome {
                        duplicate: false,
                        tail: st.tail,
                        closed: st.writer.closed,
                        producer: update
                            .producer
                            .as_ref()
                            .map(|(_, p)| ProducerAck {
                                epoch: p.epoch,
                                seq: p.last_seq,
                            })
                            .into(),
                    }));
                }
                Ok(AppendDecision::Duplicate { producer }) => results.push(Ok(AppendOutcome {
                    duplicate: true,
                    tail: st.tail,
                    closed: st.writer.closed,
                    producer: producer
                        .map(|p| ProducerAck {
                            epoch: p.epoch,
                            seq: p.last_seq,
                        })
                        .into(),
                })),
                Err(r) => results.push(Err(EngineError::from_rejection(r, st.tail, st.writer.closed))),
            }
        }
        // Streams whose state changed, per shard (closing an empty append changes state only).
        let mut touched: Vec<Vec<u64>> = vec![Vec::new(); self.shards.len()];
        for (shard, id) in owner.iter().flatten() {
            if !touched[*shard].contains(id) {
                touched[*shard].push(*id);
            }
        }
        let outcomes: Vec<Result<(), EngineError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..self.shards.len())
                .map(|shard| {
                    let rows = &rows[shard];
                    let touched = &touched[shard];
                    let overlay = &overlay;
                    scope.spawn(move || {
                        if touched.is_empty() {
                            return Ok(());
                        }
                        self.shards[shard].write(|txn| {
                            let mut data = txn.open_table(DATA).map_err(|e| db_err("open data", e))?;
                            for (id, start, i) in rows {
                                data.insert((*id, *start), reqs[*i].body.as_slice())
                                    .map_err(|e| db_err("append", e))?;
                            }
                            let mut state = txn.open_table(STATE).map_err(|e| db_err("open state", e))?;
                            for id in touched {
                                let (_, st) = &overlay[id];
                                state.insert(*id, encode_state(st).as_slice()).map_err(|e| db_err("append", e))?;
                            }
                            Ok(())
                        })
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(EngineError::new(ErrorCode::INTERNAL, "shard commit panicked")))
                })
                .collect()
        });
        for (shard, outcome) in outcomes.iter().enumerate() {
            match outcome {
                Ok(()) => {
                    for id in &touched[shard] {
                        let (stream, st) = &overlay[id];
                        let mut inner = stream.inner.lock();
                        inner.tail = st.tail;
                        inner.writer = st.writer.clone();
                    }
                }
                Err(e) => {
                    for (i, o) in owner.iter().enumerate() {
                        if o.is_some_and(|(s, _)| s == shard) {
                            results[i] = Err(e.clone());
                        }
                    }
                }
            }
        }
        results
    }

    fn read_into(&self, s: &AcidStream, pos: u64, limit: u64, max_bytes: usize, out: &mut Vec<u8>) -> Result<u64, EngineError> {
        let mut pos = pos;
        if pos < s.base {
            if let Some((_, src)) = &s.fork {
                pos = self.read_into(src, pos, limit.min(s.base), max_bytes, out)?;
                if pos < s.base.min(limit) {
                    return Ok(pos);
                }
            }
        }
        let end = s.inner.lock().tail.min(limit);
        if pos >= end {
            return Ok(pos);
        }
        self.shards[s.shard].read_into(s.id, pos, end, max_bytes, out)
    }

    fn do_read(&self, req: &ReadRequest<'_>) -> Result<ReadChunk, EngineError> {
        let stream = self.live(req.name.as_str(), req.now_ms)?;
        stream.touch(req.now_ms);
        let tail = stream.inner.lock().tail;
        let start = if req.start == ReadStart::Tail { tail } else { req.position };
        if start > tail {
            return Err(EngineError::new(
                ErrorCode::OFFSET_BEYOND_TAIL,
                "offset is beyond the stream's tail",
            ));
        }
        let mut out = Vec::new();
        let next = if start == tail {
            start
        } else {
            self.read_into(&stream, start, tail, req.max_bytes as usize, &mut out)?
        };
        let meta = stream.meta(&stream.inner.lock());
        Ok(ReadChunk {
            data: ByteViewBox::from_value(RVec::from(out), abi_stable::sabi_trait::TD_Opaque),
            next,
            meta,
        })
    }

    fn do_delete(&self, req: &DeleteRequest<'_>) -> Result<(), EngineError> {
        let name = req.name.as_str();
        let _w = self.writer.lock();
        let Some(stream) = self.streams.read().get(name).cloned() else {
            return Err(EngineError::not_found(name));
        };
        if stream.soft_deleted.load(Ordering::Acquire) {
            return Err(EngineError::gone(name));
        }
        let expired = Self::expired(&stream, req.now_ms);
        if req.only_if_expired && !expired {
            return Ok(());
        }
        self.remove(&stream, expired)?;
        if expired && !req.only_if_expired {
            return Err(EngineError::not_found(name));
        }
        Ok(())
    }
}

impl Engine for AcidStorage {
    fn create(&self, req: &CreateRequest<'_>) -> RResult<CreateOutcome, EngineError> {
        self.do_create(req).into()
    }
    fn append(&self, req: &AppendRequest<'_>) -> RResult<AppendOutcome, EngineError> {
        self.do_append_many(std::slice::from_ref(req)).pop().expect("one result").into()
    }
    fn append_many(&self, reqs: RSlice<'_, AppendRequest<'_>>) -> RVec<RResult<AppendOutcome, EngineError>> {
        self.do_append_many(reqs.as_slice()).into_iter().map(RResult::from).collect()
    }
    fn read(&self, req: &ReadRequest<'_>) -> RResult<ReadChunk, EngineError> {
        self.do_read(req).into()
    }
    fn head(&self, req: &HeadRequest<'_>) -> RResult<StreamMeta, EngineError> {
        self.live(req.name.as_str(), req.now_ms).map(|s| s.meta(&s.inner.lock())).into()
    }
    fn delete(&self, req: &DeleteRequest<'_>) -> RResult<(), EngineError> {
        self.do_delete(req).into()
    }
    fn list(&self, req: &ListRequest<'_>) -> RResult<RVec<StreamListing>, EngineError> {
        let map = self.streams.read();
        let prefix = req.prefix.as_str();
        let start = req.start_after.map(|s| s.as_str().to_string()).into_option();
        let range = match &start {
            Some(s) => map.range::<String, _>((std::ops::Bound::Excluded(s), std::ops::Bound::Unbounded)),
            None => map.range::<String, _>(..),
        };
        let out: RVec<StreamListing> = range
            .filter(|(n, _)| n.starts_with(prefix))
            .filter(|(_, s)| !s.soft_deleted.load(Ordering::Acquire) && !Self::expired(s, req.now_ms))
            .take(req.limit as usize)
            .map(|(n, s)| StreamListing {
                name: n.as_str().into(),
                meta: s.meta(&s.inner.lock()),
            })
            .collect();
        RResult::ROk(out)
    }
    fn list_expired(&self, req: &ExpiredRequest) -> RResult<RVec<RString>, EngineError> {
        let map = self.streams.read();
        let out: RVec<RString> = map
            .iter()
            .filter(|(_, s)| !s.soft_deleted.load(Ordering::Acquire) && Self::expired(s, req.now_ms))
            .take(req.limit as usize)
            .map(|(n, _)| RString::from(n.as_str()))
            .collect();
        RResult::ROk(out)
    }
    fn set_change_listener(&self, _listener: ChangeListenerBox) -> RResult<(), EngineError> {
        RResult::ROk(())
    }
    fn shutdown(&self) -> RResult<(), EngineError> {
        RResult::ROk(())
    }
    fn extension(&self, op: RStr<'_>, _input: RSlice<'_, u8>) -> RResult<RVec<u8>, EngineError> {
        if op.as_str() == ext::STATS {
            let v =
                serde_json::json!({"streams": self.streams.read().values().filter(|s| !s.soft_deleted.load(Ordering::Acquire)).count()});
            return RResult::ROk(RVec::from(v.to_string().into_bytes()));
        }
        if op.as_str() == ext::RECOVERY {
            let v = serde_json::json!({"streams": self.streams.read().len(), "shards": self.shards.len(), "cut_tail": null});
            return RResult::ROk(RVec::from(v.to_string().into_bytes()));
        }
        RResult::RErr(EngineError::new(
            ErrorCode::UNSUPPORTED,
            format!("extension '{op}' is not supported by the acid engine"),
        ))
    }
}
