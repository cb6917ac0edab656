//! The plugin ABI's `Engine` for a catalogue, and [`engine_via_deref!`] for plugin types that
//! wrap one. Thin: every method forwards to the catalogue.

use abi_stable::std_types::{RResult, RSlice, RStr, RString, RVec};
use durable_streams_core::abi::*;

use crate::catalog::Catalog;
use crate::persist::Persistence;

impl<P: Persistence> Engine for Catalog<P> {
    fn create(&self, req: &CreateRequest<'_>) -> RResult<CreateOutcome, EngineError> {
        Catalog::create(self, req).into()
    }
    fn append(&self, req: &AppendRequest<'_>) -> RResult<AppendOutcome, EngineError> {
        Catalog::append_many(self, std::slice::from_ref(req))
            .pop()
            .unwrap_or_else(|| Err(EngineError::new(ErrorCode::INTERNAL, "an append gave no answer")))
            .into()
    }
    fn append_many(&self, reqs: RSlice<'_, AppendRequest<'_>>) -> RVec<RResult<AppendOutcome, EngineError>> {
        Catalog::append_many(self, reqs.as_slice()).into_iter().map(RResult::from).collect()
    }
    fn read(&self, req: &ReadRequest<'_>) -> RResult<ReadChunk, EngineError> {
        Catalog::read(self, req).into()
    }
    fn head(&self, req: &HeadRequest<'_>) -> RResult<StreamMeta, EngineError> {
        Catalog::head(self, req).into()
    }
    fn delete(&self, req: &DeleteRequest<'_>) -> RResult<(), EngineError> {
        Catalog::delete(self, req).into()
    }
    fn list(&self, req: &ListRequest<'_>) -> RResult<RVec<StreamListing>, EngineError> {
        RResult::ROk(Catalog::list(self, req))
    }
    fn list_expired(&self, req: &ExpiredRequest) -> RResult<RVec<RString>, EngineError> {
        RResult::ROk(Catalog::list_expired(self, req))
    }
    fn set_change_listener(&self, _listener: ChangeListenerBox) -> RResult<(), EngineError> {
        RResult::ROk(())
    }
    fn shutdown(&self) -> RResult<(), EngineError> {
        // Access times first: a clean stop keeps sliding TTLs exact.
        let saved = self.save_access();
        let _w = self.writer.write();
        saved.and_then(|_| self.store.shutdown()).into()
    }
    fn extension(&self, op: RStr<'_>, input: RSlice<'_, u8>) -> RResult<RVec<u8>, EngineError> {
        let run = match op.as_str() {
            ext::TRIM => Some(Self::trim_ext as fn(&Self, &[u8]) -> Result<Vec<u8>, EngineError>),
            ext::RECORDS => Some(Self::records_ext as _),
            ext::DESCRIBE => Some(Self::describe_ext as _),
            ext::RESTORE => Some(Self::restore_ext as _),
            ext::RESTORE_WRITER => Some(Self::restore_writer_ext as _),
            ext::SAVE_ACCESS => Some(Self::save_access_ext as _),
            _ => None,
        };
        if let Some(run) = run {
            return run(self, input.as_slice()).map(RVec::from).into();
        }
        if let Some(r) = self.store.extension(op.as_str(), input.as_slice()) {
            return r.map(RVec::from).into();
        }
        if op.as_str() == ext::STATS {
            let mut v = serde_json::Map::new();
            v.insert("streams".into(), self.live_streams().into());
            v.insert("stream_bytes".into(), self.stored.load(std::sync::atomic::Ordering::Relaxed).into());
            self.store.stats(&mut v);
            return RResult::ROk(RVec::from(serde_json::Value::Object(v).to_string().into_bytes()));
        }
        RResult::RErr(EngineError::new(
            ErrorCode::UNSUPPORTED,
            format!("extension '{op}' is not supported by {}", self.store.describe()),
        ))
    }
}

/// Declares a plugin's named engine type over a store: a newtype of [`Catalog`] that derefs to
/// it, converts from it, and is an `Engine`.
///
/// ```ignore
/// durable_streams_catalog::named_engine! {
///     /// The memory engine.
///     pub struct InMemoryStorage(MemoryStore);
/// }
/// ```
#[macro_export]
macro_rules! named_engine {
    ($(#[$meta:meta])* $vis:vis struct $name:ident($store:ty);) => {
        $(#[$meta])*
        $vis struct $name($crate::Catalog<$store>);

        impl ::std::ops::Deref for $name {
            type Target = $crate::Catalog<$store>;
            fn deref(&self) -> &Self::Target {
                &self.0
            }
        }

        impl ::std::convert::From<$crate::Catalog<$store>> for $name {
            fn from(catalog: $crate::Catalog<$store>) -> Self {
                $name(catalog)
            }
        }

        $crate::engine_via_deref!($name);
    };
}

/// Implements `Engine` for a type that derefs to a [`Catalog`] (a plugin's named engine type),
/// forwarding every method.
#[macro_export]
macro_rules! engine_via_deref {
    ($t:ty) => {
        impl $crate::abi::Engine for $t {
            fn create(
                &self,
                req: &$crate::abi::CreateRequest<'_>,
            ) -> $crate::abi::RResult<$crate::abi::CreateOutcome, $crate::abi::EngineError> {
                $crate::abi::Engine::create(&**self, req)
            }
            fn append(
                &self,
                req: &$crate::abi::AppendRequest<'_>,
            ) -> $crate::abi::RResult<$crate::abi::AppendOutcome, $crate::abi::EngineError> {
                $crate::abi::Engine::append(&**self, req)
            }
            fn append_many(
                &self,
                reqs: $crate::abi::RSlice<'_, $crate::abi::AppendRequest<'_>>,
            ) -> $crate::abi::RVec<$crate::abi::RResult<$crate::abi::AppendOutcome, $crate::abi::EngineError>> {
                $crate::abi::Engine::append_many(&**self, reqs)
            }
            fn read(&self, req: &$crate::abi::ReadRequest<'_>) -> $crate::abi::RResult<$crate::abi::ReadChunk, $crate::abi::EngineError> {
                $crate::abi::Engine::read(&**self, req)
            }
            fn head(&self, req: &$crate::abi::HeadRequest<'_>) -> $crate::abi::RResult<$crate::abi::StreamMeta, $crate::abi::EngineError> {
                $crate::abi::Engine::head(&**self, req)
            }
            fn delete(&self, req: &$crate::abi::DeleteRequest<'_>) -> $crate::abi::RResult<(), $crate::abi::EngineError> {
                $crate::abi::Engine::delete(&**self, req)
            }
            fn list(
                &self,
                req: &$crate::abi::ListRequest<'_>,
            ) -> $crate::abi::RResult<$crate::abi::RVec<$crate::abi::StreamListing>, $crate::abi::EngineError> {
                $crate::abi::Engine::list(&**self, req)
            }
            fn list_expired(
                &self,
                req: &$crate::abi::ExpiredRequest,
            ) -> $crate::abi::RResult<$crate::abi::RVec<$crate::abi::RString>, $crate::abi::EngineError> {
                $crate::abi::Engine::list_expired(&**self, req)
            }
            fn set_change_listener(&self, l: $crate::abi::ChangeListenerBox) -> $crate::abi::RResult<(), $crate::abi::EngineError> {
                $crate::abi::Engine::set_change_listener(&**self, l)
            }
            fn shutdown(&self) -> $crate::abi::RResult<(), $crate::abi::EngineError> {
                $crate::abi::Engine::shutdown(&**self)
            }
            fn extension(
                &self,
                op: $crate::abi::RStr<'_>,
                input: $crate::abi::RSlice<'_, u8>,
            ) -> $crate::abi::RResult<$crate::abi::RVec<u8>, $crate::abi::EngineError> {
                $crate::abi::Engine::extension(&**self, op, input)
            }
        }
    };
}
