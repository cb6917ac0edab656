//! The engine a plugin returns from `open` when the host only asked it to check its settings
//! (`validate_only`, for `config check`): it holds nothing and answers every call `UNSUPPORTED`.

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RResult, RSlice, RStr, RString, RVec};

use super::engine::{ChangeListenerBox, Engine, EngineBox};
use super::error::{EngineError, ErrorCode};
use super::types::*;

/// Settings checked, nothing opened.
pub struct SettingsChecked;

impl SettingsChecked {
    /// As the engine `open` returns.
    pub fn boxed() -> EngineBox {
        EngineBox::from_value(SettingsChecked, TD_Opaque)
    }
}

fn no<T>() -> RResult<T, EngineError> {
    RResult::RErr(EngineError::new(
        ErrorCode::UNSUPPORTED,
        "the engine was opened only to check its settings",
    ))
}

impl Engine for SettingsChecked {
    fn create(&self, _: &CreateRequest<'_>) -> RResult<CreateOutcome, EngineError> {
        no()
    }
    fn append(&self, _: &AppendRequest<'_>) -> RResult<AppendOutcome, EngineError> {
        no()
    }
    fn append_many(&self, reqs: RSlice<'_, AppendRequest<'_>>) -> RVec<RResult<AppendOutcome, EngineError>> {
        reqs.iter().map(|_| no()).collect()
    }
    fn read(&self, _: &ReadRequest<'_>) -> RResult<ReadChunk, EngineError> {
        no()
    }
    fn head(&self, _: &HeadRequest<'_>) -> RResult<StreamMeta, EngineError> {
        no()
    }
    fn delete(&self, _: &DeleteRequest<'_>) -> RResult<(), EngineError> {
        no()
    }
    fn list(&self, _: &ListRequest<'_>) -> RResult<RVec<StreamListing>, EngineError> {
        no()
    }
    fn list_expired(&self, _: &ExpiredRequest) -> RResult<RVec<RString>, EngineError> {
        no()
    }
    fn set_change_listener(&self, _: ChangeListenerBox) -> RResult<(), EngineError> {
        RResult::ROk(())
    }
    fn shutdown(&self) -> RResult<(), EngineError> {
        RResult::ROk(())
    }
    fn extension(&self, _: RStr<'_>, _: RSlice<'_, u8>) -> RResult<RVec<u8>, EngineError> {
        no()
    }
}
