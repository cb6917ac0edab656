//! `InMemoryStorage`: the engine contract over a name-ordered map of in-memory streams.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use abi_stable::std_types::{ROption, RResult, RSlice, RStr, RString, RVec};
use durable_streams_core::abi::*;
use durable_streams_core::limits::Limits;
use durable_streams_core::producer::ProducerStamp;
use durable_streams_core::rules::{self, AppendCheck, AppendDecision};
use durable_streams_core::ttl;
use parking_lot::RwLock;

use crate::stream::{Stream, StreamData};

/// The memory engine. Cheap to share: all state is behind locks.
pub struct InMemoryStorage {
    streams: RwLock<BTreeMap<String, Arc<Stream>>>,
    next_incarnation: AtomicU64,
    limits: Limits,
    /// Bytes held by all streams (for `limits.max_memory_bytes`).
    used: AtomicU64,
    types: parking_lot::Mutex<std::collections::HashMap<String, Arc<str>>>,
}

impl Default for InMemoryStorage {
    fn default() -> Self {
        Self::new()
    }
}

fn err<T>(e: EngineError) -> RResult<T, EngineError> {
    RResult::RErr(e)
}

impl InMemoryStorage {
    pub fn new() -> Self {
        Self::with_limits(Limits::default())
    }

    /// An engine enforcing `limits` (max stream size, max bytes held).
    pub fn with_limits(limits: Limits) -> Self {
        InMemoryStorage {
            streams: RwLock::new(BTreeMap::new()),
            next_incarnation: AtomicU64::new(1),
            limits,
            used: AtomicU64::new(0),
            types: Default::default(),
        }
    }

    /// The shared copy of a content type string.
    fn intern(&self, ct: &str) -> Arc<str> {
        let mut types = self.types.lock();
        if let Some(t) = types.get(ct) {
            return t.clone();
        }
        let t: Arc<str> = Arc::from(ct);
        if types.len() < 4096 {
            types.insert(ct.to_string(), t.clone());
        }
        t
    }

    /// Bytes currently held.
    pub fn bytes_held(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    fn release(&self, stream: &Stream) {
        let mut data = stream.data.lock();
        if !data.removed {
            data.removed = true;
            self.used.fetch_sub(data.bytes.len() as u64, Ordering::Relaxed);
        }
    }

    fn expired(s: &Stream, now_ms: u64) -> bool {
        ttl::is_expired(s.lifetime, s.last_access_ms.load(Ordering::Relaxed), now_ms)
    }

    /// Removes `name` from the map if it still maps to `stream`, then releases its fork source.
    fn remove_entry(&self, map: &mut BTreeMap<String, Arc<Stream>>, name: &str, stream: &Arc<Stream>) {
        if map.get(name).is_some_and(|s| Arc::ptr_eq(s, stream)) {
            map.remove(name);
        }
        self.release(stream);
        let mut current = stream.clone();
        while let Some((src_name, src)) = current.fork.clone() {
            let left = src.refcount.fetch_sub(1, Ordering::AcqRel) - 1;
            if left == 0 && src.soft_deleted.load(Ordering::Acquire) {
                if map.get(&src_name).is_some_and(|s| Arc::ptr_eq(s, &src)) {
                    map.remove(&src_name);
                }
                self.release(&src);
                current = src;
            } else {
                break;
            }
        }
    }

    /// Looks up a live stream; expired ones are dropped and reported absent.
    fn live(&self, name: &str, now_ms: u64) -> Result<Arc<Stream>, EngineError> {
        let found = self.streams.read().get(name).cloned();
        match found {
            None => Err(EngineError::not_found(name)),
            Some(s) if s.soft_deleted.load(Ordering::Acquire) => Err(EngineError::gone(name)),
            Some(s) if Self::expired(&s, now_ms) => {
                let mut map = self.streams.write();
                if s.refcount.load(Ordering::Acquire) > 0 {
                    s.soft_deleted.store(true, Ordering::Release);
                    map.remove(name);
                } else {
                    self.remove_entry(&mut map, name, &s);
                }
                Err(EngineError::not_found(name))
            }
            Some(s) => Ok(s),
        }
    }

    fn do_create(&self, req: &CreateRequest<'_>) -> Result<CreateOutcome, EngineError> {
        let name = req.name.as_str();
        let mut map = self.streams.write();
        if let Some(existing) = map.get(name).cloned() {
            if existing.soft_deleted.load(Ordering::Acquire) {
                return Err(EngineError::new(
                    ErrorCode::CONFIG_CONFLICT,
                    format!("stream '{name}' was deleted and is still referenced by forks"),
                ));
            }
            if Self::expired(&existing, req.now_ms) {
                if existing.refcount.load(Ordering::Acquire) > 0 {
                    existing.soft_deleted.store(true, Ordering::Release);
                    map.remove(name);
                } else {
                    self.remove_entry(&mut map, name, &existing);
                }
            } else {
                let data = existing.data.lock();
                let view = rules::Existing {
                    content_type: &existing.content_type,
                    lifetime: existing.lifetime,
                    closed: data.closed,
                    fork: existing.fork.as_ref().map(|(n, src)| (n.as_str(), existing.base, src.lifetime)),
                };
                if rules::create_matches(&view, req) {
                    return Ok(CreateOutcome {
                        created: false,
                        meta: existing.meta(&data),
                    });
                }
                return Err(EngineError::new(
                    ErrorCode::CONFIG_CONFLICT,
                    format!("stream '{name}' exists with a different configuration"),
                ));
            }
        }
        let (content_type, lifetime, fork, base) = match req.fork {
            ROption::RNone => {
                let ct = self.intern(req.content_type.map(|c| c.as_str()).unwrap_or("application/octet-stream"));
                (ct, req.lifetime, None, 0)
            }
            ROption::RSome(f) => {
                let src_name = f.source.as_str();
                let found = map.get(src_name).cloned();
                let view = found.as_ref().map(|s| rules::ForkSource {
                    content_type: &s.content_type,
                    tail: s.tail(&s.data.lock()),
                    soft_deleted: s.soft_deleted.load(Ordering::Acquire),
                    expired: Self::expired(s, req.now_ms),
                });
                rules::check_fork_source(src_name, view, f.position, req.content_type.map(|c| c.as_str()).into_option())?;
                let src = found.expect("checked");
                (
                    src.content_type.clone(),
                    ttl::fork_lifetime(src.lifetime, req.lifetime),
                    Some((src_name.to_string(), src)),
                    f.position,
                )
            }
        };
        let add = req.initial.len() as u64;
        self.limits.check_stream(base, add)?;
        self.limits.check_memory(self.used.load(Ordering::Relaxed), add)?;
        self.used.fetch_add(add, Ordering::Relaxed);
        let mut data = StreamData::default();
        data.push_record(base, req.initial.as_slice());
        data.closed = req.closed;
        let stream = Arc::new(Stream {
            incarnation: self.next_incarnation.fetch_add(1, Ordering::Relaxed),
            content_type,
            lifetime,
            fork,
            base,
            refcount: AtomicU32::new(0),
            soft_deleted: AtomicBool::new(false),
            last_access_ms: AtomicU64::new(req.now_ms),
            data: parking_lot::Mutex::new(data),
        });
        if let Some((_, src)) = &stream.fork {
            src.refcount.fetch_add(1, Ordering::AcqRel);
        }
        let meta = stream.meta(&stream.data.lock());
        map.insert(name.to_string(), stream);
        Ok(CreateOutcome { created: true, meta })
    }

    fn do_append(&self, req: &AppendRequest<'_>) -> Result<AppendOutcome, EngineError> {
        let name = req.name.as_str();
        let stream = self.live(name, req.now_ms)?;
        let mut data = stream.data.lock();
        if data.removed {
            return Err(EngineError::not_found(name));
        }
        let stamp = req.producer.map(|p| ProducerStamp {
            id: p.id.as_str().to_string(),
            epoch: p.epoch,
            seq: p.seq,
        });
        let check = AppendCheck {
            stream_content_type: &stream.content_type,
            content_type: req.content_type.map(|c| c.as_str()).into_option(),
            body_is_empty: req.body.is_empty(),
            close: req.close,
            producer: stamp.as_ref().into(),
            stream_seq: req.stream_seq.map(|s| s.as_str()).into_option(),
        };
        stream.touch(req.now_ms);
        match data.with_writer(|w| rules::check_append(w, &check)) {
            Ok(AppendDecision::Accept(update)) => {
                let add = req.body.len() as u64;
                self.limits.check_stream(stream.tail(&data), add)?;
                self.limits.check_memory(self.used.load(Ordering::Relaxed), add)?;
                self.used.fetch_add(add, Ordering::Relaxed);
                let base = stream.base;
                data.push_record(base, req.body.as_slice());
                data.apply(&update);
                let producer = update.producer.map(|(_, st)| ProducerAck {
                    epoch: st.epoch,
                    seq: st.last_seq,
                });
                Ok(AppendOutcome {
                    duplicate: false,
                    tail: stream.tail(&data),
                    closed: data.closed,
                    producer: producer.into(),
                })
            }
            Ok(AppendDecision::Duplicate { producer }) => Ok(AppendOutcome {
                duplicate: true,
                tail: stream.tail(&data),
                closed: data.closed,
                producer: producer
                    .map(|st| ProducerAck {
                        epoch: st.epoch,
                        seq: st.last_seq,
                    })
                    .into(),
            }),
            Err(rejection) => Err(EngineError::from_rejection(rejection, stream.tail(&data), data.closed)),
        }
    }

    fn do_read(&self, req: &ReadRequest<'_>) -> Result<ReadChunk, EngineError> {
        let name = req.name.as_str();
        let stream = self.live(name, req.now_ms)?;
        stream.touch(req.now_ms);
        let tail = stream.tail(&stream.data.lock());
        let start = match req.start {
            ReadStart::Tail => tail,
            ReadStart::At => req.position,
        };
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
            stream.read_into(start, u64::MAX, req.max_bytes as usize, &mut out)
        };
        let meta = stream.meta(&stream.data.lock());
        Ok(ReadChunk {
            data: ByteViewBox::from_value(RVec::from(out), abi_stable::sabi_trait::TD_Opaque),
            next,
            meta,
        })
    }

    fn do_delete(&self, req: &DeleteRequest<'_>) -> Result<(), EngineError> {
        let name = req.name.as_str();
        let mut map = self.streams.write();
        let Some(stream) = map.get(name).cloned() else {
            return Err(EngineError::not_found(name));
        };
        if stream.soft_deleted.load(Ordering::Acquire) {
            return Err(EngineError::gone(name));
        }
        let expired = Self::expired(&stream, req.now_ms);
        if req.only_if_expired && !expired {
            return Ok(());
        }
        if stream.refcount.load(Ordering::Acquire) > 0 {
            stream.soft_deleted.store(true, Ordering::Release);
            if expired {
                map.remove(name);
            }
        } else {
            self.remove_entry(&mut map, name, &stream);
        }
        if expired && !req.only_if_expired {
            return Err(EngineError::not_found(name));
        }
        Ok(())
    }
}

fn wrap<T>(r: Result<T, EngineError>) -> RResult<T, EngineError> {
    r.into()
}

impl Engine for InMemoryStorage {
    fn create(&self, req: &CreateRequest<'_>) -> RResult<CreateOutcome, EngineError> {
        wrap(self.do_create(req))
    }

    fn append(&self, req: &AppendRequest<'_>) -> RResult<AppendOutcome, EngineError> {
        wrap(self.do_append(req))
    }

    fn append_many(&self, reqs: RSlice<'_, AppendRequest<'_>>) -> RVec<RResult<AppendOutcome, EngineError>> {
        reqs.iter().map(|r| wrap(self.do_append(r))).collect()
    }

    fn read(&self, req: &ReadRequest<'_>) -> RResult<ReadChunk, EngineError> {
        wrap(self.do_read(req))
    }

    fn head(&self, req: &HeadRequest<'_>) -> RResult<StreamMeta, EngineError> {
        wrap(self.live(req.name.as_str(), req.now_ms).map(|s| s.meta(&s.data.lock())))
    }

    fn delete(&self, req: &DeleteRequest<'_>) -> RResult<(), EngineError> {
        wrap(self.do_delete(req))
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
                meta: s.meta(&s.data.lock()),
            })
            .collect();
        RResult::ROk(out)
    }

    fn list_expired(&self, req: &ExpiredRequest) -> RResult<RVec<RString>, EngineError> {
        let map = self.streams.read();
        let out = map
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
            let v = serde_json::json!({"streams": self.streams.read().values().filter(|s| !s.soft_deleted.load(Ordering::Acquire)).count(), "bytes": self.bytes_held()});
            return RResult::ROk(RVec::from(v.to_string().into_bytes()));
        }
        err(EngineError::new(
            ErrorCode::UNSUPPORTED,
            format!("extension '{op}' is not supported by the memory engine"),
        ))
    }
}
