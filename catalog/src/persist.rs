//! The persistence trait a local engine implements: commit a batch of changes atomically, read
//! a stream's own bytes, and hand back what was committed at open. Owns the vocabulary of
//! changes; applies no protocol rule (the catalogue decided every change before it gets here).

use durable_streams_core::abi::{ByteViewBox, EngineError, Lifetime};
use durable_streams_core::rules::{StateUpdate, WriterState};

/// A stream created (a fork when `fork` names its source's id and the fork position).
#[derive(Clone, Copy, Debug)]
pub struct Created<'a> {
    pub id: u64,
    pub name: &'a str,
    pub content_type: &'a str,
    pub lifetime: Lifetime,
    pub closed: bool,
    pub fork: Option<(u64, u64)>,
    /// The first record (may be empty).
    pub initial: &'a [u8],
}

/// Bytes appended to a stream with the writer-state change they carry (an empty `body` is a
/// close without data).
#[derive(Clone, Copy, Debug)]
pub struct Appended<'a> {
    pub id: u64,
    /// Stream position of the first byte of `body`.
    pub start: u64,
    pub body: &'a [u8],
    pub update: &'a StateUpdate,
}

/// One change of a batch. Non-exhaustive: stores match it with a wildcard arm, so that new kinds
/// of change (each sent only to stores that opt in) do not break them.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Change<'a> {
    Create(Created<'a>),
    Append(Appended<'a>),
    /// Deleted while forks still read it: kept for them. `hidden`: its name is free again.
    SoftDelete {
        id: u64,
        hidden: bool,
    },
    /// Gone for good: its bytes may be dropped.
    Delete {
        id: u64,
    },
    /// Retention dropped the stream's head: positions below `start` (a record boundary) are no
    /// longer readable and the store may drop the records that end at or below it. Sent only to
    /// stores whose [`Persistence::record_floor`] answers.
    Trim {
        id: u64,
        start: u64,
    },
    /// The stream (which has a sliding TTL) was last read or written at `at_ms`. Sent only to
    /// stores whose [`Persistence::persists_access`] says so.
    Access {
        id: u64,
        at_ms: u64,
    },
}

impl Change<'_> {
    /// The stream the change is about.
    pub fn id(&self) -> u64 {
        match self {
            Change::Create(c) => c.id,
            Change::Append(a) => a.id,
            Change::SoftDelete { id, .. } | Change::Delete { id } | Change::Trim { id, .. } | Change::Access { id, .. } => *id,
        }
    }
}

/// A stream's tail and writer state after a batch, for every stream an append of it changed
/// (stores that keep state rather than a log of changes write this).
#[derive(Clone, Copy, Debug)]
pub struct After<'a> {
    pub id: u64,
    pub tail: u64,
    pub writer: &'a WriterState,
}

/// What one commit must make durable, all or nothing.
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a> {
    pub changes: &'a [Change<'a>],
    pub after: &'a [After<'a>],
}

/// A read of a stream's own bytes: whole records covering `[pos, end)` appended after `out`,
/// stopping before a record that would take `out` past `max` bytes (one record always fits
/// in an empty `out`). Every byte returned must have passed the store's checksum, if it has one.
#[derive(Clone, Copy, Debug)]
pub struct Span {
    pub pos: u64,
    pub end: u64,
    pub max: usize,
}

/// A stream as a store that keeps state (rather than a log) hands it back at open.
pub struct Recovered<D> {
    pub id: u64,
    pub name: String,
    pub content_type: String,
    pub lifetime: Lifetime,
    /// Source id and fork position.
    pub fork: Option<(u64, u64)>,
    pub soft_deleted: bool,
    pub hidden: bool,
    /// The earliest readable position (retention; 0 when never trimmed).
    pub start: u64,
    /// The last access time saved (sliding TTLs), if any.
    pub last_access_ms: Option<u64>,
    pub tail: u64,
    pub writer: WriterState,
    pub data: D,
}

/// Where a local engine keeps streams. Calls arrive one mutation at a time (the catalogue
/// serializes `commit`), reads concurrently with it and with each other.
pub trait Persistence: Send + Sync + 'static {
    /// What the store keeps in memory per stream to find its bytes (locations, or the bytes).
    type Data: Default + Send + Sync + 'static;
    /// What `commit` learned about one change (for example where its record landed).
    type Receipt: Send;

    /// The engine's name in messages ("the memory engine").
    fn describe(&self) -> &'static str;

    /// A new stream id, unique for the life of the data (ids of failed creates may be skipped).
    fn allocate_id(&self, name: &str) -> u64;

    /// Makes `batch` durable as the mode promises, all of it or none of it; one receipt per
    /// change, in order. An error leaves the store as it was before. Every change of a batch
    /// belongs to one commit unit (see [`Persistence::unit`]).
    fn commit(&self, batch: &Batch<'_>) -> Result<Vec<Self::Receipt>, EngineError>;

    /// The commit unit of stream `id`: changes commit atomically only within one unit (the
    /// acid engine's shard files). An append group is committed as one batch per unit, in
    /// parallel, each succeeding or failing alone; a removal spanning units, step by step.
    fn unit(&self, _id: u64) -> usize {
        0
    }

    /// Whether `commit` may run for single appends to different streams at the same time (the
    /// memory engine: nothing to serialize). Otherwise every mutation is serialized.
    fn concurrent_appends(&self) -> bool {
        false
    }

    /// Whether `commit` reads a batch's `after` (each appended stream's tail and whole writer
    /// state, every producer's included): a store that keeps state rather than a log of changes.
    /// A store that logs each append's `update` instead says `false`, and its appends are decided
    /// against the producer they name alone (no copy of the stream's other producers).
    fn keeps_writer_state(&self) -> bool {
        true
    }

    /// Teaches a stream's in-memory data a committed `Create` or `Append` (also called by
    /// [`crate::Fold`] while replaying a log, before the store is open).
    fn apply(data: &Self::Data, change: &Change<'_>, receipt: &Self::Receipt);

    /// Reads `span` of stream `id`'s own bytes (never below its fork position) into `out`;
    /// returns the position after the last byte copied.
    fn read(&self, id: u64, data: &Self::Data, span: Span, out: &mut Vec<u8>) -> Result<u64, EngineError>;

    /// Reads `span` as [`Persistence::read`] does, but answers bytes the store already holds
    /// in memory without copying them (a view that keeps them alive); it may stop earlier than
    /// `read` would (at a block of its own), never inside a record, and gives at least one
    /// record. `None` (the default, or for a span it cannot serve so): the catalogue copies
    /// through `read`.
    fn read_shared(&self, _id: u64, _data: &Self::Data, _span: Span) -> Option<Result<(ByteViewBox, u64), EngineError>> {
        None
    }

    /// Releases a deleted stream's in-memory data.
    fn forget(&self, _id: u64, _data: &Self::Data) {}

    /// Retention support: the start of the record of stream `id` holding position `pos` (`pos`
    /// itself at a record boundary or the tail); `pos` lies in the stream's own range. `None`
    /// (the default): the store cannot drop a stream's head, and trims answer `UNSUPPORTED`.
    fn record_floor(&self, _id: u64, _data: &Self::Data, _pos: u64) -> Option<Result<u64, EngineError>> {
        None
    }

    /// Where the records (appends) of stream `id` that begin in `range` (within its own range)
    /// begin, in order, at most `limit`. `None` (the default): the store keeps no boundaries.
    fn record_starts(
        &self,
        _id: u64,
        _data: &Self::Data,
        _range: std::ops::Range<u64>,
        _limit: usize,
    ) -> Option<Result<Vec<u64>, EngineError>> {
        None
    }

    /// Whether the store keeps `Change::Access` (last access times of streams with a sliding
    /// TTL, so that a restart neither extends nor shortens them beyond the save interval).
    fn persists_access(&self) -> bool {
        false
    }

    /// Told after a committed `Trim` was applied: own positions `dropped` went (for the store's
    /// accounting: a budget, dead bytes).
    fn trimmed(&self, _id: u64, _data: &Self::Data, _dropped: std::ops::Range<u64>) {}

    /// Whether creates of new names should be committed together (a commit costs an fsync):
    /// concurrent creates then queue and one of them commits the queue as one batch per unit.
    /// Stores whose commits are cheap leave it false (the queue would cost more than it saves).
    fn groups_creates(&self) -> bool {
        false
    }

    /// Refuses an addition of `bytes` the store cannot hold (the memory engine's budget).
    fn admit(&self, _bytes: u64) -> Result<(), EngineError> {
        Ok(())
    }

    /// Makes everything committed durable before exit.
    fn shutdown(&self) -> Result<(), EngineError> {
        Ok(())
    }

    /// Figures the store adds to the `stats` extension.
    fn stats(&self, _out: &mut serde_json::Map<String, serde_json::Value>) {}

    /// Extension operations of the store's own (`None`: not one of its operations).
    fn extension(&self, _op: &str, _input: &[u8]) -> Option<Result<Vec<u8>, EngineError>> {
        None
    }
}
