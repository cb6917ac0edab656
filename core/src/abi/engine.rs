//! The engine contract: a synchronous, blocking, `Send + Sync` storage engine behind an FFI-safe
//! trait object. Every method's invariants are stated where it is declared.

use abi_stable::sabi_trait;
use abi_stable::std_types::{RBox, RResult, RSlice, RStr, RVec};

use super::error::EngineError;
use super::types::*;

/// Bytes owned by the plugin, handed to the host without copying.
#[sabi_trait]
pub trait ByteView: Send + Sync + 'static {
    /// The bytes; stable for the lifetime of the view.
    fn bytes(&self) -> RSlice<'_, u8>;
}

/// An owned [`ByteView`].
pub type ByteViewBox = ByteView_TO<RBox<()>>;

impl ByteView for RVec<u8> {
    fn bytes(&self) -> RSlice<'_, u8> {
        self.as_rslice()
    }
}

/// Receives change notifications from an engine with [`Capabilities::EXTERNAL_WRITERS`].
/// Called from the plugin's own threads; implementations only touch thread-safe sync primitives.
#[sabi_trait]
pub trait ChangeListener: Send + Sync + 'static {
    /// `name`'s tail or closure changed outside this host. An empty name says that anything
    /// may have changed (the engine may have missed notifications, e.g. while it was
    /// disconnected from its cluster): the host wakes every reader, which looks again.
    fn stream_changed(&self, name: RStr<'_>);
}

/// An owned [`ChangeListener`].
pub type ChangeListenerBox = ChangeListener_TO<RBox<()>>;

/// A storage engine. All methods are blocking and may be called from many threads at once.
///
/// Common invariants: a stream whose lifetime ended at `now_ms` behaves as absent (`NOT_FOUND`)
/// and may be re-created; a soft-deleted stream answers `GONE` to everything but fork reads;
/// reads and appends (not `head`) renew a sliding TTL from `now_ms`.
#[sabi_trait]
pub trait Engine: Send + Sync + 'static {
    /// Creates a stream, or answers `created: false` if one exists with the same content type,
    /// lifetime, closure and fork source; otherwise `CONFIG_CONFLICT` (also for a soft-deleted
    /// name). A fork inherits content type and lifetime per the protocol's table, starts open,
    /// shares the source's positions below `fork.position`, and never inherits writer state.
    /// Errors: `FORK_SOURCE_NOT_FOUND`, `FORK_SOURCE_GONE`, `OFFSET_BEYOND_TAIL`,
    /// `CONTENT_TYPE_MISMATCH` (fork type differs from the source).
    fn create(&self, req: &CreateRequest<'_>) -> RResult<CreateOutcome, EngineError>;

    /// Appends under the rules of `durable_streams_core::rules::check_append`, committing
    /// data, producer state, `Stream-Seq` and closure together. Errors carry `ErrorDetail`.
    fn append(&self, req: &AppendRequest<'_>) -> RResult<AppendOutcome, EngineError>;

    /// Appends a group (any streams) with one commit where the engine can; results in order.
    /// Must equal calling `append` on each in order.
    fn append_many(&self, reqs: RSlice<'_, AppendRequest<'_>>) -> RVec<RResult<AppendOutcome, EngineError>>;

    /// Reads whole records from `position` (or the tail) up to `max_bytes` (at least one record),
    /// stitching inherited source data below a fork's position. Never returns unverified bytes.
    /// Errors: `OFFSET_BEYOND_TAIL`.
    fn read(&self, req: &ReadRequest<'_>) -> RResult<ReadChunk, EngineError>;

    /// Metadata without renewing the TTL.
    fn head(&self, req: &HeadRequest<'_>) -> RResult<StreamMeta, EngineError>;

    /// Deletes a stream; soft-deletes it while forks reference it, and collects soft-deleted
    /// sources whose last fork goes (cascading up the chain).
    fn delete(&self, req: &DeleteRequest<'_>) -> RResult<(), EngineError>;

    /// Live (not soft-deleted, not expired) streams in name order.
    fn list(&self, req: &ListRequest<'_>) -> RResult<RVec<StreamListing>, EngineError>;

    /// Names of streams whose lifetime ended, for the host's sweeper.
    fn list_expired(&self, req: &ExpiredRequest) -> RResult<RVec<abi_stable::std_types::RString>, EngineError>;

    /// Registers the host's listener (only used by `EXTERNAL_WRITERS` engines; others ignore it).
    fn set_change_listener(&self, listener: ChangeListenerBox) -> RResult<(), EngineError>;

    /// Makes everything acknowledged so far durable and releases resources before exit.
    fn shutdown(&self) -> RResult<(), EngineError>;

    /// Untyped extension: operation name plus bytes. Unknown ops answer `UNSUPPORTED`.
    #[sabi(last_prefix_field)]
    fn extension(&self, op: RStr<'_>, input: RSlice<'_, u8>) -> RResult<RVec<u8>, EngineError>;
}

/// An owned engine as it crosses the boundary.
pub type EngineBox = Engine_TO<RBox<()>>;
