//! The `Engine` trait (the plugin ABI) implemented for `FileStorage`: thin wrappers over its
//! inherent methods, plus the `stats` extension.

use std::sync::atomic::Ordering;

use abi_stable::std_types::{RResult, RSlice, RStr, RString, RVec};
use durable_streams_core::abi::*;

use crate::engine::FileStorage;

impl Engine for FileStorage {
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
        range
            .filter(|(n, _)| n.starts_with(prefix))
            .filter(|(_, s)| !s.soft_deleted.load(Ordering::Acquire) && !Self::expired(s, req.now_ms))
            .take(req.limit as usize)
            .map(|(n, s)| StreamListing {
                name: n.as_str().into(),
                meta: s.meta(&s.inner.lock()),
            })
            .collect::<RVec<_>>()
            .into_ok()
    }
    fn list_expired(&self, req: &ExpiredRequest) -> RResult<RVec<RString>, EngineError> {
        let map = self.streams.read();
        map.iter()
            .filter(|(_, s)| !s.soft_deleted.load(Ordering::Acquire) && Self::expired(s, req.now_ms))
            .take(req.limit as usize)
            .map(|(n, _)| RString::from(n.as_str()))
            .collect::<RVec<_>>()
            .into_ok()
    }
    fn set_change_listener(&self, _listener: ChangeListenerBox) -> RResult<(), EngineError> {
        RResult::ROk(())
    }
    fn shutdown(&self) -> RResult<(), EngineError> {
        self.stop.store(true, Ordering::Release);
        let w = self.writer.lock();
        self.log.sync_active(&w.tail).into()
    }
    fn extension(&self, op: RStr<'_>, _input: RSlice<'_, u8>) -> RResult<RVec<u8>, EngineError> {
        if op.as_str() == ext::STATS {
            let v =
                serde_json::json!({"streams": self.streams.read().values().filter(|s| !s.soft_deleted.load(Ordering::Acquire)).count()});
            return RResult::ROk(RVec::from(v.to_string().into_bytes()));
        }
        if op.as_str() == ext::RECOVERY {
            let r = &self.log.recovery;
            let v = serde_json::json!({
                "records_replayed": r.records,
                "segments": r.segments,
                "streams": self.streams.read().len(),
                "cut_tail": r.cut_tail.as_ref().map(|(path, at, dropped)| serde_json::json!({
                    "file": path.display().to_string(), "at": at, "dropped_bytes": dropped,
                })),
            });
            return RResult::ROk(RVec::from(v.to_string().into_bytes()));
        }
        RResult::RErr(EngineError::new(
            ErrorCode::UNSUPPORTED,
            format!("extension '{op}' is not supported by the file engine"),
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
