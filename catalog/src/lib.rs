//! The stream catalogue shared by local engines: a complete `Engine` ([`Catalog`]) built from a
//! small persistence trait ([`Persistence`]). The catalogue owns every protocol rule of a
//! stream's life (create-or-match, forks and reference counts, soft delete and its cascade,
//! expiry and sliding renewal, listing, producer / `Stream-Seq` / closure checks and the group
//! overlay); a store owns only where bytes live: commit a batch atomically, read a stream's own
//! bytes, and hand back what was committed at open. No HTTP, no async runtime, no files.
//!
//! A plugin whose state lives elsewhere (a cluster) implements `Engine` directly instead.

mod access;
mod background;
mod catalog;
mod creates;
pub mod durable_fs;
mod engine;
mod entry;
mod group;
mod open;
mod persist;
mod reads;
mod records;
mod restore;
mod trim;

pub use background::Background;
pub use catalog::Catalog;
pub use open::{Fold, OpenOptions};
pub use persist::{After, Appended, Batch, Change, Created, Persistence, Recovered, Span};
pub use reads::StreamRef;
pub use restore::Writer;

/// What plugins built on the catalogue need of the ABI, for [`engine_via_deref!`].
pub mod abi {
    pub use abi_stable::std_types::{RResult, RSlice, RStr, RString, RVec};
    pub use durable_streams_core::abi::*;
}
