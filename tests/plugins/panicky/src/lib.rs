//! Test plugin (mode `panicky`): proves a panicking engine leaves the server alive and not ready.
//!
//! A toy engine: every stream exists and is empty; appending the body `panic` panics.

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RResult, RSlice, RStr, RString, RVec};
use durable_streams_core::abi::*;

struct Panicky;

fn meta() -> StreamMeta {
    StreamMeta {
        content_type: "text/plain".into(),
        tail: 0,
        closed: false,
        lifetime: Lifetime::default(),
        incarnation: 1,
        fork_source: None.into(),
        fork_position: 0,
    }
}

fn unsupported<T>() -> RResult<T, EngineError> {
    RResult::RErr(EngineError::new(ErrorCode::UNSUPPORTED, "the panicky test engine does not do that"))
}

impl Engine for Panicky {
    fn create(&self, _req: &CreateRequest<'_>) -> RResult<CreateOutcome, EngineError> {
        RResult::ROk(CreateOutcome {
            created: true,
            meta: meta(),
        })
    }
    fn append(&self, req: &AppendRequest<'_>) -> RResult<AppendOutcome, EngineError> {
        if req.body.as_slice() == b"panic" {
            panic!("deliberate test panic");
        }
        RResult::ROk(AppendOutcome {
            duplicate: false,
            tail: 0,
            closed: false,
            producer: None.into(),
        })
    }
    fn append_many(&self, reqs: RSlice<'_, AppendRequest<'_>>) -> RVec<RResult<AppendOutcome, EngineError>> {
        reqs.iter().map(|r| self.append(r)).collect()
    }
    fn read(&self, _req: &ReadRequest<'_>) -> RResult<ReadChunk, EngineError> {
        RResult::ROk(ReadChunk {
            data: ByteViewBox::from_value(RVec::<u8>::new(), TD_Opaque),
            next: 0,
            meta: meta(),
        })
    }
    fn head(&self, _req: &HeadRequest<'_>) -> RResult<StreamMeta, EngineError> {
        RResult::ROk(meta())
    }
    fn delete(&self, _req: &DeleteRequest<'_>) -> RResult<(), EngineError> {
        unsupported()
    }
    fn list(&self, _req: &ListRequest<'_>) -> RResult<RVec<StreamListing>, EngineError> {
        RResult::ROk(RVec::new())
    }
    fn list_expired(&self, _req: &ExpiredRequest) -> RResult<RVec<RString>, EngineError> {
        RResult::ROk(RVec::new())
    }
    fn set_change_listener(&self, _l: ChangeListenerBox) -> RResult<(), EngineError> {
        RResult::ROk(())
    }
    fn shutdown(&self) -> RResult<(), EngineError> {
        RResult::ROk(())
    }
    fn extension(&self, _op: RStr<'_>, _input: RSlice<'_, u8>) -> RResult<RVec<u8>, EngineError> {
        unsupported()
    }
}

fn info() -> PluginInfo {
    PluginInfo {
        name: "ds-test-plugin-panicky".into(),
        version: "0.1.0".into(),
        abi_version: ABI_VERSION.into(),
        rustc: "".into(),
        modes: RVec::from(vec![ModeInfo {
            mode: "panicky".into(),
            capabilities: Capabilities::default(),
            description: "test only".into(),
        }]),
    }
}

fn open(_mode: &str, _config: &str) -> Result<EngineBox, EngineError> {
    // Lets a test watch the server while its engine is still opening.
    if let Some(ms) = std::env::var("PANICKY_OPEN_DELAY_MS").ok().and_then(|v| v.parse().ok()) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    Ok(EngineBox::from_value(GuardedEngine::new(Panicky), TD_Opaque))
}

durable_streams_core::export_plugin!(info = info, open = open);
