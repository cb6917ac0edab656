//! Template storage engine (mode `template`): the smallest correct engine, meant to be copied.
//!
//! Everything lives in one mutex-guarded map: simple, not fast. Forks copy the inherited bytes
//! at creation (copy-on-fork), so reading never follows a chain; soft delete only needs a count
//! of the forks that name a stream as their source. The protocol rules (closure, producers,
//! `Stream-Seq`) come from `durable_streams_core::rules`; the panic guard and the root-module
//! export come from `durable_streams_core::abi`. Replace the storage, keep the rules.

use std::collections::BTreeMap;
use std::sync::Mutex;

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{ROption, RResult, RSlice, RStr, RString, RVec};
use durable_streams_core::abi::*;
use durable_streams_core::producer::ProducerStamp;
use durable_streams_core::rules::{check_append, AppendCheck, AppendDecision, WriterState};
use durable_streams_core::{content_type, ttl};

/// The mode this plugin provides.
pub const MODE: &str = "template";

struct Stream {
    incarnation: u64,
    content_type: String,
    lifetime: Lifetime,
    fork: Option<(String, u64)>,
    bytes: Vec<u8>,
    /// End position of every record (one per append), so reads return whole records.
    record_ends: Vec<u64>,
    writer: WriterState,
    last_access_ms: u64,
    /// Streams that name this one as their fork source.
    forks: u32,
    soft_deleted: bool,
}

impl Stream {
    fn meta(&self) -> StreamMeta {
        StreamMeta {
            content_type: self.content_type.as_str().into(),
            tail: self.bytes.len() as u64,
            closed: self.writer.closed,
            lifetime: self.lifetime,
            incarnation: self.incarnation,
            fork_source: self.fork.as_ref().map(|(n, _)| RString::from(n.as_str())).into(),
            fork_position: self.fork.as_ref().map_or(0, |f| f.1),
        }
    }
    fn expired(&self, now: u64) -> bool {
        ttl::is_expired(self.lifetime, self.last_access_ms, now)
    }
    fn push(&mut self, data: &[u8]) {
        if !data.is_empty() {
            self.bytes.extend_from_slice(data);
            self.record_ends.push(self.bytes.len() as u64);
        }
    }
}

#[derive(Default)]
struct State {
    streams: BTreeMap<String, Stream>,
    next_incarnation: u64,
}

/// The template engine.
#[derive(Default)]
pub struct TemplateStorage {
    state: Mutex<State>,
    /// Setting `storage.template_max_streams`: most streams held (0: no limit).
    max_streams: u64,
}

fn fail<T>(code: ErrorCode, msg: impl Into<String>) -> Result<T, EngineError> {
    Err(EngineError::new(code, msg))
}

impl State {
    /// A live stream: absent, soft-deleted and expired streams are errors.
    fn live(&mut self, name: &str, now: u64) -> Result<&mut Stream, EngineError> {
        match self.streams.get(name) {
            None => return Err(EngineError::not_found(name)),
            Some(s) if s.soft_deleted => return Err(EngineError::gone(name)),
            Some(s) if s.expired(now) => {
                self.remove(name);
                return Err(EngineError::not_found(name));
            }
            Some(_) => {}
        }
        Ok(self.streams.get_mut(name).expect("checked above"))
    }

    /// Removes a stream (soft while forks name it) and collects soft-deleted sources.
    fn remove(&mut self, name: &str) {
        let Some(s) = self.streams.get_mut(name) else { return };
        if s.forks > 0 {
            s.soft_deleted = true;
            return;
        }
        let mut next = self.streams.remove(name).and_then(|s| s.fork.map(|f| f.0));
        while let Some(src) = next.take() {
            if let Some(s) = self.streams.get_mut(&src) {
                s.forks -= 1;
                if s.forks == 0 && s.soft_deleted {
                    next = self.streams.remove(&src).and_then(|s| s.fork.map(|f| f.0));
                }
            }
        }
    }
}

impl TemplateStorage {
    fn create(&self, req: &CreateRequest<'_>) -> Result<CreateOutcome, EngineError> {
        let mut st = self.state.lock().expect("lock");
        let name = req.name.as_str();
        if let Some(s) = st.streams.get(name) {
            if s.soft_deleted {
                return fail(ErrorCode::CONFIG_CONFLICT, "stream was deleted but forks still use it");
            }
            if s.expired(req.now_ms) {
                st.remove(name);
            }
        }
        // Resolve the fork source first (copy-on-fork).
        let mut fork_data = None;
        if let ROption::RSome(f) = req.fork {
            let src = match st.streams.get(f.source.as_str()) {
                Some(s) if s.soft_deleted => return fail(ErrorCode::FORK_SOURCE_GONE, "fork source was deleted"),
                Some(s) if !s.expired(req.now_ms) => s,
                _ => return fail(ErrorCode::FORK_SOURCE_NOT_FOUND, "fork source does not exist"),
            };
            if f.position > src.bytes.len() as u64 {
                return fail(ErrorCode::OFFSET_BEYOND_TAIL, "fork offset is beyond the source's tail");
            }
            if let ROption::RSome(ct) = req.content_type {
                if !content_type::matches(ct.as_str(), &src.content_type) {
                    return fail(ErrorCode::CONTENT_TYPE_MISMATCH, "fork content type differs from the source's");
                }
            }
            let mut ends: Vec<u64> = src.record_ends.iter().copied().filter(|&e| e < f.position).collect();
            if f.position > 0 && ends.last() != Some(&f.position) {
                ends.push(f.position);
            }
            let lifetime = ttl::fork_lifetime(src.lifetime, req.lifetime);
            fork_data = Some((
                src.bytes[..f.position as usize].to_vec(),
                ends,
                src.content_type.clone(),
                lifetime,
                f.source.to_string(),
                f.position,
            ));
        }
        if let Some(s) = st.streams.get(name) {
            let lifetime = fork_data.as_ref().map_or(req.lifetime, |f| f.3);
            let same = req
                .content_type
                .map_or(true, |c| content_type::matches(c.as_str(), &s.content_type))
                && s.lifetime == lifetime
                && s.writer.closed == req.closed
                && s.fork == fork_data.as_ref().map(|f| (f.4.clone(), f.5));
            if same {
                return Ok(CreateOutcome {
                    created: false,
                    meta: s.meta(),
                });
            }
            return fail(ErrorCode::CONFIG_CONFLICT, "stream exists with a different configuration");
        }
        if self.max_streams > 0 && st.streams.len() as u64 >= self.max_streams {
            return fail(ErrorCode::STORAGE_FULL, "storage.template_max_streams reached");
        }
        st.next_incarnation += 1;
        let mut s = Stream {
            incarnation: st.next_incarnation,
            content_type: req
                .content_type
                .map(|c| c.to_string())
                .unwrap_or_else(|| "application/octet-stream".into()),
            lifetime: req.lifetime,
            fork: None,
            bytes: Vec::new(),
            record_ends: Vec::new(),
            writer: WriterState {
                closed: req.closed,
                ..Default::default()
            },
            last_access_ms: req.now_ms,
            forks: 0,
            soft_deleted: false,
        };
        if let Some((bytes, ends, ct, lifetime, src, pos)) = fork_data {
            (s.bytes, s.record_ends, s.content_type, s.lifetime, s.fork) = (bytes, ends, ct, lifetime, Some((src.clone(), pos)));
            st.streams.get_mut(&src).expect("source checked").forks += 1;
        }
        s.push(req.initial.as_slice());
        let meta = s.meta();
        st.streams.insert(name.to_string(), s);
        Ok(CreateOutcome { created: true, meta })
    }

    fn append(&self, req: &AppendRequest<'_>) -> Result<AppendOutcome, EngineError> {
        let mut st = self.state.lock().expect("lock");
        let s = st.live(req.name.as_str(), req.now_ms)?;
        s.last_access_ms = s.last_access_ms.max(req.now_ms);
        let stamp = req.producer.into_option().map(|p| ProducerStamp {
            id: p.id.to_string(),
            epoch: p.epoch,
            seq: p.seq,
        });
        let check = AppendCheck {
            stream_content_type: &s.content_type,
            content_type: req.content_type.map(|c| c.as_str()).into_option(),
            body_is_empty: req.body.is_empty(),
            close: req.close,
            producer: stamp.as_ref(),
            stream_seq: req.stream_seq.map(|q| q.as_str()).into_option(),
        };
        let tail = s.bytes.len() as u64;
        match check_append(&s.writer, &check) {
            Ok(AppendDecision::Accept(update)) => {
                s.push(req.body.as_slice());
                s.writer.apply(&update);
                let producer = update.producer.map(|(_, p)| ProducerAck {
                    epoch: p.epoch,
                    seq: p.last_seq,
                });
                Ok(AppendOutcome {
                    duplicate: false,
                    tail: s.bytes.len() as u64,
                    closed: s.writer.closed,
                    producer: producer.into(),
                })
            }
            Ok(AppendDecision::Duplicate { producer }) => Ok(AppendOutcome {
                duplicate: true,
                tail,
                closed: s.writer.closed,
                producer: producer
                    .map(|p| ProducerAck {
                        epoch: p.epoch,
                        seq: p.last_seq,
                    })
                    .into(),
            }),
            Err(r) => Err(EngineError::from_rejection(r, tail, s.writer.closed)),
        }
    }

    fn read(&self, req: &ReadRequest<'_>) -> Result<ReadChunk, EngineError> {
        let mut st = self.state.lock().expect("lock");
        let s = st.live(req.name.as_str(), req.now_ms)?;
        s.last_access_ms = s.last_access_ms.max(req.now_ms);
        let tail = s.bytes.len() as u64;
        let start = if req.start == ReadStart::Tail { tail } else { req.position };
        if start > tail {
            return fail(ErrorCode::OFFSET_BEYOND_TAIL, "offset is beyond the stream's tail");
        }
        // Whole records up to max_bytes; at least one record.
        let mut end = start;
        for &e in s.record_ends.iter().filter(|&&e| e > start) {
            if end > start && e - start > req.max_bytes {
                break;
            }
            end = e;
        }
        let data = RVec::from(s.bytes[start as usize..end as usize].to_vec());
        Ok(ReadChunk {
            data: ByteViewBox::from_value(data, TD_Opaque),
            next: end,
            meta: s.meta(),
        })
    }
}

impl Engine for TemplateStorage {
    fn create(&self, req: &CreateRequest<'_>) -> RResult<CreateOutcome, EngineError> {
        TemplateStorage::create(self, req).into()
    }
    fn append(&self, req: &AppendRequest<'_>) -> RResult<AppendOutcome, EngineError> {
        TemplateStorage::append(self, req).into()
    }
    fn append_many(&self, reqs: RSlice<'_, AppendRequest<'_>>) -> RVec<RResult<AppendOutcome, EngineError>> {
        reqs.iter().map(|r| TemplateStorage::append(self, r).into()).collect()
    }
    fn read(&self, req: &ReadRequest<'_>) -> RResult<ReadChunk, EngineError> {
        TemplateStorage::read(self, req).into()
    }
    fn head(&self, req: &HeadRequest<'_>) -> RResult<StreamMeta, EngineError> {
        let mut st = self.state.lock().expect("lock");
        st.live(req.name.as_str(), req.now_ms).map(|s| s.meta()).into()
    }
    fn delete(&self, req: &DeleteRequest<'_>) -> RResult<(), EngineError> {
        let mut st = self.state.lock().expect("lock");
        let name = req.name.as_str();
        let (expired, soft) = match st.streams.get(name) {
            None => return RResult::RErr(EngineError::not_found(name)),
            Some(s) => (s.expired(req.now_ms), s.soft_deleted),
        };
        if soft {
            return RResult::RErr(EngineError::gone(name));
        }
        if req.only_if_expired && !expired {
            return RResult::ROk(());
        }
        st.remove(name);
        if expired && !req.only_if_expired {
            return RResult::RErr(EngineError::not_found(name));
        }
        RResult::ROk(())
    }
    fn list(&self, req: &ListRequest<'_>) -> RResult<RVec<StreamListing>, EngineError> {
        let st = self.state.lock().expect("lock");
        let after = req.start_after.map(|a| a.to_string()).into_option();
        st.streams
            .iter()
            .filter(|(n, s)| n.starts_with(req.prefix.as_str()) && !s.soft_deleted && !s.expired(req.now_ms))
            .filter(|(n, _)| after.as_ref().is_none_or(|a| n.as_str() > a.as_str()))
            .take(req.limit as usize)
            .map(|(n, s)| StreamListing {
                name: n.as_str().into(),
                meta: s.meta(),
            })
            .collect::<RVec<_>>()
            .into_ok()
    }
    fn list_expired(&self, req: &ExpiredRequest) -> RResult<RVec<RString>, EngineError> {
        let st = self.state.lock().expect("lock");
        st.streams
            .iter()
            .filter(|(_, s)| !s.soft_deleted && s.expired(req.now_ms))
            .take(req.limit as usize)
            .map(|(n, _)| RString::from(n.as_str()))
            .collect::<RVec<_>>()
            .into_ok()
    }
    fn set_change_listener(&self, _listener: ChangeListenerBox) -> RResult<(), EngineError> {
        RResult::ROk(())
    }
    fn shutdown(&self) -> RResult<(), EngineError> {
        RResult::ROk(())
    }
    fn extension(&self, op: RStr<'_>, _input: RSlice<'_, u8>) -> RResult<RVec<u8>, EngineError> {
        RResult::RErr(EngineError::new(
            ErrorCode::UNSUPPORTED,
            format!("extension '{op}' is not supported"),
        ))
    }
}

trait IntoOk<T> {
    fn into_ok(self) -> RResult<T, EngineError>;
}

impl<T> IntoOk<T> for T {
    fn into_ok(self) -> RResult<T, EngineError> {
        RResult::ROk(self)
    }
}

/// What the plugin says about itself.
pub fn info() -> PluginInfo {
    PluginInfo {
        name: env!("CARGO_PKG_NAME").into(),
        version: env!("CARGO_PKG_VERSION").into(),
        abi_version: ABI_VERSION.into(),
        rustc: "".into(),
        modes: RVec::from(vec![ModeInfo {
            mode: MODE.into(),
            capabilities: Capabilities::default(),
            description: "template engine (in memory)".into(),
        }]),
    }
}

/// Opens the engine. `config` is the server's `[storage]` settings as JSON: this plugin's own
/// keys start with its mode name (`storage.template_max_streams`, `DS_STORAGE__TEMPLATE_MAX_STREAMS`);
/// `finish` refuses any other `template_*` key, naming where it was set.
pub fn open(mode: &str, config: &str) -> Result<EngineBox, EngineError> {
    if mode != MODE {
        return fail(ErrorCode::UNKNOWN_MODE, format!("this plugin provides '{MODE}', not '{mode}'"));
    }
    let settings = durable_streams_core::settings::Settings::parse(config, &[MODE])?;
    let max_streams = settings.u64("template_max_streams", 0, 0..=u64::MAX)?;
    settings.finish()?;
    if settings.validate_only() {
        return Ok(SettingsChecked::boxed());
    }
    let engine = TemplateStorage {
        max_streams,
        ..Default::default()
    };
    Ok(EngineBox::from_value(GuardedEngine::new(engine), TD_Opaque))
}

durable_streams_core::export_plugin!(info = info, open = open);
