//! Plain data that crosses the plugin boundary: plugin metadata, requests and outcomes.
//!
//! Positions are `u64` byte positions in the stream's logical data; the host formats them as
//! protocol offsets. Bytes in are borrowed (`RSlice`) and copied by the engine if kept.

use abi_stable::std_types::{ROption, RSlice, RStr, RString, RVec};
use abi_stable::StableAbi;

/// Capability bits a storage mode declares.
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Capabilities(pub u64);

impl Capabilities {
    /// Acknowledged writes survive a process crash.
    pub const DURABLE: Capabilities = Capabilities(1);
    /// `append_many` commits a group more cheaply than one call per append.
    pub const BATCH_APPEND: Capabilities = Capabilities(1 << 1);
    /// Calls may block on I/O: the host calls it off its async workers.
    pub const BLOCKING_IO: Capabilities = Capabilities(1 << 2);
    /// Data can change outside this host; the engine delivers change notifications.
    pub const EXTERNAL_WRITERS: Capabilities = Capabilities(1 << 3);
    /// Acknowledged writes survive a machine crash (fsync before acknowledging).
    pub const SYNCED: Capabilities = Capabilities(1 << 4);
    /// `head` never blocks (it is answered from memory, holding no lock across I/O): the host
    /// calls it on its async workers even when `BLOCKING_IO` is set. Engines that do not say
    /// so have every call made off the workers.
    pub const MEMORY_HEAD: Capabilities = Capabilities(1 << 5);
    /// `append_many` may be called from several threads at once, each call with its own
    /// streams, and gains from it (its cost is a round trip to a cluster, not an fsync): the
    /// host keeps several groups in flight (`storage.append_lanes`). Only with `BATCH_APPEND`.
    pub const CONCURRENT_GROUPS: Capabilities = Capabilities(1 << 6);

    pub const fn union(self, other: Capabilities) -> Capabilities {
        Capabilities(self.0 | other.0)
    }

    pub const fn contains(self, other: Capabilities) -> bool {
        self.0 & other.0 == other.0
    }

    /// Names of the set bits, for logs.
    pub fn names(self) -> Vec<&'static str> {
        let all = [
            (Self::DURABLE, "durable"),
            (Self::BATCH_APPEND, "batch_append"),
            (Self::BLOCKING_IO, "blocking_io"),
            (Self::EXTERNAL_WRITERS, "external_writers"),
            (Self::SYNCED, "synced"),
            (Self::MEMORY_HEAD, "memory_head"),
            (Self::CONCURRENT_GROUPS, "concurrent_groups"),
        ];
        all.iter().filter(|(c, _)| self.contains(*c)).map(|(_, n)| *n).collect()
    }
}

/// One storage mode a plugin provides.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct ModeInfo {
    pub mode: RString,
    pub capabilities: Capabilities,
    pub description: RString,
}

impl ModeInfo {
    /// A mode's name, capabilities and one-line description.
    pub fn new(mode: &str, capabilities: Capabilities, description: &str) -> ModeInfo {
        ModeInfo {
            mode: mode.into(),
            capabilities,
            description: description.into(),
        }
    }
}

/// What a plugin says about itself.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct PluginInfo {
    pub name: RString,
    pub version: RString,
    /// The [`ABI_VERSION`](super::ABI_VERSION) the plugin was built against.
    pub abi_version: RString,
    /// The rustc that built the plugin (informational).
    pub rustc: RString,
    pub modes: RVec<ModeInfo>,
}

impl PluginInfo {
    /// What `info()` reports if building the real info panicked: no modes.
    pub fn panicked() -> PluginInfo {
        PluginInfo {
            name: "<panicked>".into(),
            version: "0".into(),
            abi_version: super::ABI_VERSION.into(),
            rustc: "".into(),
            modes: RVec::new(),
        }
    }
}

/// The fork source of a create request.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct ForkFrom<'a> {
    pub source: RStr<'a>,
    /// Divergence position in the source, already resolved by the host (sub-offsets included).
    pub position: u64,
}

/// Lifetime settings of a stream.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lifetime {
    /// Sliding TTL in seconds.
    pub ttl_secs: ROption<u64>,
    /// Absolute expiry, Unix milliseconds.
    pub expires_at_ms: ROption<u64>,
}

/// `PUT`: create a stream, a closed stream, or a fork; idempotent when the config matches.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct CreateRequest<'a> {
    pub name: RStr<'a>,
    /// `None` only for forks (inherit the source's type).
    pub content_type: ROption<RStr<'a>>,
    pub lifetime: Lifetime,
    pub closed: bool,
    /// Initial bytes (already framed for JSON streams).
    pub initial: RSlice<'a, u8>,
    pub fork: ROption<ForkFrom<'a>>,
    pub now_ms: u64,
}

/// The result of a create.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct CreateOutcome {
    /// `true`: newly created (201); `false`: it existed with matching config (200).
    pub created: bool,
    pub meta: StreamMeta,
}

/// A producer's identity on an append.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct ProducerRef<'a> {
    pub id: RStr<'a>,
    pub epoch: u64,
    pub seq: u64,
}

/// `POST`: append bytes (maybe none) and maybe close, committed atomically with the producer
/// state and `Stream-Seq`.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct AppendRequest<'a> {
    pub name: RStr<'a>,
    /// The request's content type, when it sent a body.
    pub content_type: ROption<RStr<'a>>,
    /// Bytes to append (already framed for JSON streams); empty for close-only.
    pub body: RSlice<'a, u8>,
    pub close: bool,
    pub producer: ROption<ProducerRef<'a>>,
    pub stream_seq: ROption<RStr<'a>>,
    pub now_ms: u64,
}

/// A producer's state after an append.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerAck {
    pub epoch: u64,
    /// Highest accepted sequence number in `epoch`.
    pub seq: u64,
}

/// The result of an append.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct AppendOutcome {
    /// Nothing was written: a retried producer batch or a repeated close.
    pub duplicate: bool,
    /// Tail position after the append.
    pub tail: u64,
    pub closed: bool,
    pub producer: ROption<ProducerAck>,
}

/// Where a read starts.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadStart {
    /// At `position`.
    At,
    /// At the tail (`offset=now`).
    Tail,
}

/// `GET`: read a bounded range of whole records, stitched across fork boundaries.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct ReadRequest<'a> {
    pub name: RStr<'a>,
    pub start: ReadStart,
    pub position: u64,
    /// Upper bound on returned bytes; at least one record is returned even if larger.
    pub max_bytes: u64,
    pub now_ms: u64,
}

/// A read's bytes and the stream state when it was generated.
#[repr(C)]
#[derive(StableAbi)]
pub struct ReadChunk {
    pub data: super::ByteViewBox,
    /// Position just after the returned bytes.
    pub next: u64,
    pub meta: StreamMeta,
}

/// `HEAD` and listings: a stream's metadata. Does not renew a sliding TTL.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct StreamMeta {
    pub content_type: RString,
    pub tail: u64,
    pub closed: bool,
    pub lifetime: Lifetime,
    /// Unique per stream incarnation (re-creating a name gives a new id); used in ETags.
    pub incarnation: u64,
    pub fork_source: ROption<RString>,
    pub fork_position: u64,
}

/// Metadata lookup.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct HeadRequest<'a> {
    pub name: RStr<'a>,
    pub now_ms: u64,
}

/// `DELETE` (soft when forks reference the stream), or a sweeper's expiry removal.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct DeleteRequest<'a> {
    pub name: RStr<'a>,
    pub now_ms: u64,
    /// Only delete if the stream is expired at `now_ms` (the sweeper's race-free form).
    pub only_if_expired: bool,
}

/// Listing streams in name order.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct ListRequest<'a> {
    pub prefix: RStr<'a>,
    pub start_after: ROption<RStr<'a>>,
    pub limit: u32,
    pub now_ms: u64,
}

/// One listed stream.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct StreamListing {
    pub name: RString,
    pub meta: StreamMeta,
}

/// Streams whose lifetime ended by `now_ms`.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct ExpiredRequest {
    pub now_ms: u64,
    pub limit: u32,
}
