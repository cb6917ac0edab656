//! Panic guards: no panic may reach the FFI boundary (it would abort the whole server).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};

use abi_stable::std_types::{RResult, RSlice, RStr, RString, RVec};

use super::engine::{ChangeListenerBox, Engine};
use super::error::{EngineError, ErrorCode};
use super::types::*;

/// Runs `f`, turning a panic into a `PANICKED` error.
pub fn guard<T>(f: impl FnOnce() -> RResult<T, EngineError>) -> RResult<T, EngineError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "engine panicked".to_string());
            RResult::RErr(EngineError::new(ErrorCode::PANICKED, format!("engine panicked: {msg}")))
        }
    }
}

/// Wraps an engine so that every call runs under [`guard`]; after a panic the engine is
/// poisoned and every later call answers `POISONED`.
pub struct GuardedEngine<E> {
    inner: E,
    poisoned: AtomicBool,
}

impl<E: Engine> GuardedEngine<E> {
    pub fn new(inner: E) -> Self {
        GuardedEngine {
            inner,
            poisoned: AtomicBool::new(false),
        }
    }

    fn call<T>(&self, f: impl FnOnce(&E) -> RResult<T, EngineError>) -> RResult<T, EngineError> {
        if self.poisoned.load(Ordering::Acquire) {
            return RResult::RErr(EngineError::new(ErrorCode::POISONED, "engine is poisoned by an earlier panic"));
        }
        let r = guard(|| f(&self.inner));
        if let RResult::RErr(e) = &r {
            if e.code == ErrorCode::PANICKED {
                self.poisoned.store(true, Ordering::Release);
            }
        }
        r
    }
}

impl<E: Engine> Engine for GuardedEngine<E> {
    fn create(&self, req: &CreateRequest<'_>) -> RResult<CreateOutcome, EngineError> {
        self.call(|e| e.create(req))
    }
    fn append(&self, req: &AppendRequest<'_>) -> RResult<AppendOutcome, EngineError> {
        self.call(|e| e.append(req))
    }
    fn append_many(&self, reqs: RSlice<'_, AppendRequest<'_>>) -> RVec<RResult<AppendOutcome, EngineError>> {
        match self.call(|e| RResult::ROk(e.append_many(reqs))) {
            RResult::ROk(v) => v,
            RResult::RErr(err) => reqs.iter().map(|_| RResult::RErr(err.clone())).collect(),
        }
    }
    fn read(&self, req: &ReadRequest<'_>) -> RResult<ReadChunk, EngineError> {
        self.call(|e| e.read(req))
    }
    fn head(&self, req: &HeadRequest<'_>) -> RResult<StreamMeta, EngineError> {
        self.call(|e| e.head(req))
    }
    fn delete(&self, req: &DeleteRequest<'_>) -> RResult<(), EngineError> {
        self.call(|e| e.delete(req))
    }
    fn list(&self, req: &ListRequest<'_>) -> RResult<RVec<StreamListing>, EngineError> {
        self.call(|e| e.list(req))
    }
    fn list_expired(&self, req: &ExpiredRequest) -> RResult<RVec<RString>, EngineError> {
        self.call(|e| e.list_expired(req))
    }
    fn set_change_listener(&self, listener: ChangeListenerBox) -> RResult<(), EngineError> {
        self.call(|e| e.set_change_listener(listener))
    }
    fn shutdown(&self) -> RResult<(), EngineError> {
        self.call(|e| e.shutdown())
    }
    fn extension(&self, op: RStr<'_>, input: RSlice<'_, u8>) -> RResult<RVec<u8>, EngineError> {
        self.call(|e| e.extension(op, input))
    }
}

/// An engine shared behind an `Arc` (for engines that also hand themselves to background
/// threads) is an engine.
impl<E: Engine> Engine for std::sync::Arc<E> {
    fn create(&self, req: &CreateRequest<'_>) -> RResult<CreateOutcome, EngineError> {
        (**self).create(req)
    }
    fn append(&self, req: &AppendRequest<'_>) -> RResult<AppendOutcome, EngineError> {
        (**self).append(req)
    }
    fn append_many(&self, reqs: RSlice<'_, AppendRequest<'_>>) -> RVec<RResult<AppendOutcome, EngineError>> {
        (**self).append_many(reqs)
    }
    fn read(&self, req: &ReadRequest<'_>) -> RResult<ReadChunk, EngineError> {
        (**self).read(req)
    }
    fn head(&self, req: &HeadRequest<'_>) -> RResult<StreamMeta, EngineError> {
        (**self).head(req)
    }
    fn delete(&self, req: &DeleteRequest<'_>) -> RResult<(), EngineError> {
        (**self).delete(req)
    }
    fn list(&self, req: &ListRequest<'_>) -> RResult<RVec<StreamListing>, EngineError> {
        (**self).list(req)
    }
    fn list_expired(&self, req: &ExpiredRequest) -> RResult<RVec<RString>, EngineError> {
        (**self).list_expired(req)
    }
    fn set_change_listener(&self, listener: ChangeListenerBox) -> RResult<(), EngineError> {
        (**self).set_change_listener(listener)
    }
    fn shutdown(&self) -> RResult<(), EngineError> {
        (**self).shutdown()
    }
    fn extension(&self, op: RStr<'_>, input: RSlice<'_, u8>) -> RResult<RVec<u8>, EngineError> {
        (**self).extension(op, input)
    }
}
