//! The engine requests `ds-counts` and `ds-engine-floor` both make: an empty octet-stream
//! stream, and one append of bytes to it (no producer, no close). Values only, no I/O.

use abi_stable::std_types::{RSlice, RStr};
use durable_streams_core::abi::{AppendRequest, CreateRequest, Lifetime};

const OCTETS: &str = "application/octet-stream";

/// Creates `name` as an empty octet stream that never expires.
pub fn create_octets(name: &str) -> CreateRequest<'_> {
    CreateRequest {
        name: RStr::from(name),
        content_type: Some(RStr::from(OCTETS)).into(),
        lifetime: Lifetime {
            ttl_secs: None.into(),
            expires_at_ms: None.into(),
        },
        closed: false,
        initial: RSlice::from(&[][..]),
        fork: None.into(),
        now_ms: 0,
    }
}

/// Appends `body` to the octet stream `name`.
pub fn append_octets<'a>(name: &'a str, body: &'a [u8]) -> AppendRequest<'a> {
    AppendRequest {
        name: RStr::from(name),
        content_type: Some(RStr::from(OCTETS)).into(),
        body: RSlice::from(body),
        close: false,
        producer: None.into(),
        stream_seq: None.into(),
        now_ms: 0,
    }
}
