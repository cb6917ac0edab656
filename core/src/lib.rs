//! Protocol values and rules of Durable Streams, plus the stable plugin ABI; no HTTP, no tokio, no files.
//!
//! Everything here is pure: parsing and formatting of offsets, stream names, TTLs and producer
//! headers; the append decision rules every engine applies under its own per-stream lock; the
//! JSON-mode framing; and, in [`abi`], every type that crosses the plugin boundary.
//!
//! Architecture invariant: this crate depends on no async runtime, no HTTP crate and does no I/O.

pub mod abi;
pub mod backup;
pub mod codec;
pub mod content_type;
pub mod json;
pub mod limits;
pub mod name;
pub mod offset;
pub mod producer;
pub mod rules;
pub mod settings;
pub mod ttl;

pub use offset::{Offset, OffsetError, ReadFrom};
