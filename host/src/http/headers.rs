//! Protocol header names and small header helpers.

use axum::http::{HeaderMap, HeaderName, HeaderValue};

pub const STREAM_NEXT_OFFSET: HeaderName = HeaderName::from_static("stream-next-offset");
pub const STREAM_UP_TO_DATE: HeaderName = HeaderName::from_static("stream-up-to-date");
pub const STREAM_CURSOR: HeaderName = HeaderName::from_static("stream-cursor");
pub const STREAM_CLOSED: HeaderName = HeaderName::from_static("stream-closed");
pub const STREAM_TTL: HeaderName = HeaderName::from_static("stream-ttl");
pub const STREAM_EXPIRES_AT: HeaderName = HeaderName::from_static("stream-expires-at");
pub const STREAM_SEQ: HeaderName = HeaderName::from_static("stream-seq");
pub const STREAM_FORKED_FROM: HeaderName = HeaderName::from_static("stream-forked-from");
pub const STREAM_FORK_OFFSET: HeaderName = HeaderName::from_static("stream-fork-offset");
pub const STREAM_FORK_SUB_OFFSET: HeaderName = HeaderName::from_static("stream-fork-sub-offset");
pub const STREAM_SSE_DATA_ENCODING: HeaderName = HeaderName::from_static("stream-sse-data-encoding");
pub const PRODUCER_ID: HeaderName = HeaderName::from_static("producer-id");
pub const PRODUCER_EPOCH: HeaderName = HeaderName::from_static("producer-epoch");
pub const PRODUCER_SEQ: HeaderName = HeaderName::from_static("producer-seq");
pub const PRODUCER_EXPECTED_SEQ: HeaderName = HeaderName::from_static("producer-expected-seq");
pub const PRODUCER_RECEIVED_SEQ: HeaderName = HeaderName::from_static("producer-received-seq");

/// Headers browsers may read from responses.
pub const EXPOSED: [&str; 16] = [
    "www-authenticate",
    "stream-next-offset",
    "stream-up-to-date",
    "stream-cursor",
    "stream-closed",
    "stream-ttl",
    "stream-expires-at",
    "stream-sse-data-encoding",
    "producer-epoch",
    "producer-seq",
    "producer-expected-seq",
    "producer-received-seq",
    "etag",
    "location",
    "content-type",
    "cache-control",
];

/// A header as UTF-8 text, if present and valid.
pub fn text<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `Stream-Closed` counts only when it is `true` (case-insensitive); other values are ignored.
pub fn closed_flag(headers: &HeaderMap) -> bool {
    text(headers, &STREAM_CLOSED).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// The headers an append reads, found in one walk over the request's headers: a lookup by name
/// hashes the name each time, and six lookups cost more than one pass over a request's few
/// headers. A repeated header counts by its first value, as a lookup would (the router refuses
/// repeated protocol headers before this runs).
#[derive(Default)]
pub struct AppendHeaders<'a> {
    pub content_type: Option<&'a HeaderValue>,
    pub producer_id: Option<&'a HeaderValue>,
    pub producer_epoch: Option<&'a HeaderValue>,
    pub producer_seq: Option<&'a HeaderValue>,
    pub stream_seq: Option<&'a HeaderValue>,
    pub stream_closed: Option<&'a HeaderValue>,
}

impl<'a> AppendHeaders<'a> {
    pub fn of(headers: &'a HeaderMap) -> AppendHeaders<'a> {
        let mut found = AppendHeaders::default();
        for (name, value) in headers {
            let slot = match name.as_str() {
                "content-type" => &mut found.content_type,
                "producer-id" => &mut found.producer_id,
                "producer-epoch" => &mut found.producer_epoch,
                "producer-seq" => &mut found.producer_seq,
                "stream-seq" => &mut found.stream_seq,
                "stream-closed" => &mut found.stream_closed,
                _ => continue,
            };
            slot.get_or_insert(value);
        }
        found
    }

    /// See [`closed_flag`].
    pub fn closed(&self) -> bool {
        self.stream_closed
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_walk_finds_what_lookups_find() {
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_static("text/plain"));
        h.insert("Producer-Id", HeaderValue::from_static("p"));
        h.insert("producer-epoch", HeaderValue::from_static("1"));
        h.insert("producer-seq", HeaderValue::from_static("2"));
        h.insert("stream-seq", HeaderValue::from_static("b"));
        h.insert("stream-closed", HeaderValue::from_static(" TRUE "));
        h.insert("x-other", HeaderValue::from_static("x"));
        h.append("stream-seq", HeaderValue::from_static("c"));
        let a = AppendHeaders::of(&h);
        assert_eq!(a.content_type, h.get("content-type"));
        assert_eq!(a.producer_id, h.get(PRODUCER_ID));
        assert_eq!(a.producer_epoch, h.get(PRODUCER_EPOCH));
        assert_eq!(a.producer_seq, h.get(PRODUCER_SEQ));
        assert_eq!(a.stream_seq, h.get(STREAM_SEQ), "the first of a repeated header");
        assert_eq!(a.closed(), closed_flag(&h));
        assert!(a.closed());
        let empty = HeaderMap::new();
        let none = AppendHeaders::of(&empty);
        assert!(none.content_type.is_none() && none.producer_id.is_none() && !none.closed());
    }
}
