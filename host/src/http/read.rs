//! GET catch-up reads, and the read step, ETag and headers shared with the live modes.

use std::sync::{Arc, OnceLock};

use abi_stable::std_types::RStr;
use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use durable_streams_core::abi::{ByteViewBox, EngineError, ErrorCode, ReadChunk, ReadRequest, ReadStart, StreamMeta};
use durable_streams_core::{content_type, Offset, ReadFrom};

use super::body::ChunkBody;
use super::error::ApiError;
use super::headers as h;
use super::query::ReadQuery;
use crate::clock::now_ms;
use crate::state::AppState;

/// Plugin-owned bytes exposed to `Bytes` without a copy.
pub(super) struct View(pub(super) ByteViewBox);

impl AsRef<[u8]> for View {
    fn as_ref(&self) -> &[u8] {
        self.0.bytes().as_slice()
    }
}

/// One read step's result.
#[derive(Clone)]
pub struct Chunk {
    /// Raw stored bytes (framed JSON for JSON streams).
    pub data: Bytes,
    pub start: u64,
    pub next: u64,
    /// Shared by the parts served from this chunk (a clone per live reader would copy its
    /// content type).
    pub meta: Arc<StreamMeta>,
    /// This chunk's SSE data event, rendered once for every subscriber that gets the whole of it
    /// (shared by the parts taken from its start; see `sse::data_event`).
    pub sse: Arc<OnceLock<Bytes>>,
}

impl Chunk {
    pub fn up_to_date(&self) -> bool {
        self.next >= self.meta.tail
    }
    /// Closed and this response reaches the final offset.
    pub fn at_eof(&self) -> bool {
        self.meta.closed && self.up_to_date()
    }
    /// The part of this chunk from `pos` on (`start <= pos <= next`), when `pos` is a record
    /// boundary in it: what a read from `pos` would have answered at the same moment.
    pub fn from(&self, pos: u64) -> Option<Chunk> {
        if pos < self.start || pos > self.next || self.data.len() as u64 != self.next - self.start {
            return None;
        }
        let off = (pos - self.start) as usize;
        if off > 0 && self.is_json() && self.data[off - 1] != b',' {
            return None;
        }
        Some(Chunk {
            data: self.data.slice(off..),
            start: pos,
            next: self.next,
            meta: self.meta.clone(),
            sse: if off == 0 { self.sse.clone() } else { Arc::default() },
        })
    }
    pub fn is_json(&self) -> bool {
        content_type::is_json(&self.meta.content_type)
    }
    /// The response body chunks: JSON streams as one array, others as stored.
    pub fn body_parts(&self) -> Vec<Bytes> {
        if self.is_json() {
            if self.data.is_empty() {
                return vec![Bytes::from_static(b"[]")];
            }
            vec![
                Bytes::from_static(b"["),
                self.data.slice(..self.data.len() - 1),
                Bytes::from_static(b"]"),
            ]
        } else {
            vec![self.data.clone()]
        }
    }
    pub fn etag(&self) -> String {
        use std::fmt::Write;
        // Sized once: the longest tag fits (three 20-digit numbers and the marks).
        let mut tag = String::with_capacity(72);
        let eof = if self.at_eof() { ":c" } else { "" };
        let _ = write!(tag, "\"{}:{}:{}{eof}\"", self.meta.incarnation, self.start, self.next);
        tag
    }
}

/// One engine read of `name`: at most `max` bytes (but at least one whole append) from
/// `position`, or from the tail.
pub async fn engine_read(state: &AppState, name: &str, start: ReadStart, position: u64, max: u64) -> Result<ReadChunk, EngineError> {
    let name = name.to_string();
    state
        .storage
        .call(move |e| {
            e.read(&ReadRequest {
                name: RStr::from(name.as_str()),
                start,
                position,
                max_bytes: max,
                now_ms: now_ms(),
            })
        })
        .await
}

/// Reads from `from` (a position, or the tail).
pub async fn read_step(state: &AppState, name: &str, from: ReadFrom) -> Result<Chunk, ApiError> {
    let (start, position) = match from {
        ReadFrom::Start => (ReadStart::At, 0),
        ReadFrom::At(o) => (ReadStart::At, o.0),
        ReadFrom::Now => (ReadStart::Tail, 0),
    };
    let max = state.config.limits.max_read_chunk_bytes;
    let read = |position: u64| engine_read(state, name, start, position, max);
    let (chunk, position) = match read(position).await {
        // `offset=-1` starts at the earliest retained data when retention dropped the head.
        Err(e) if e.code == ErrorCode::TRIMMED && from == ReadFrom::Start => (read(e.detail.tail).await?, e.detail.tail),
        other => (other?, position),
    };
    let begin = if start == ReadStart::Tail { chunk.next } else { position };
    let next = chunk.next;
    let meta = Arc::new(chunk.meta);
    let data = Bytes::from_owner(View(chunk.data));
    Ok(Chunk {
        data,
        start: begin,
        next,
        meta,
        sse: Arc::default(),
    })
}

/// A live request's first read. When the stream has no sliding TTL to renew (and has not
/// expired), as its most recent live read shows: from a fresh recent chunk (read after the
/// latest wake), else from the engine read other readers at the same offset share. Otherwise
/// from the engine (each first read renews the TTL). A thousand long-polls re-arriving after
/// each write then cost about one engine read, not a thousand.
pub async fn read_first(state: &AppState, name: &str, from: ReadFrom, entry: &crate::live::Entry) -> Result<Chunk, ApiError> {
    let ReadFrom::At(at) = from else {
        return read_step(state, name, from).await;
    };
    let now = crate::clock::now_ms();
    let no_renewal = |c: &Chunk| {
        let lt = &c.meta.lifetime;
        lt.ttl_secs.is_none() && lt.expires_at_ms.into_option().is_none_or(|t| now < t)
    };
    let newest = entry.newest().and_then(|c| c.downcast::<Chunk>().ok());
    if !newest.as_deref().is_some_and(no_renewal) {
        return read_step(state, name, from).await;
    }
    let generation = entry.generation();
    if let Some((c, true)) = entry.covering(at.0, generation) {
        let part = c.downcast::<Chunk>().ok().and_then(|c| c.from(at.0));
        if let Some(part) = part.filter(|p| (!p.data.is_empty() || p.up_to_date()) && no_renewal(p)) {
            return Ok(part);
        }
    }
    shared_read(state, name, at, entry, generation).await
}

/// The engine read from `at` that readers woken at or before `generation` share.
async fn shared_read(state: &AppState, name: &str, at: Offset, entry: &crate::live::Entry, generation: u64) -> Result<Chunk, ApiError> {
    let from = ReadFrom::At(at);
    let flight = entry.flight(at.0, generation);
    let shared = flight
        .result
        .get_or_init(|| async {
            let chunk = read_step(state, name, from).await.ok()?;
            let next = chunk.next;
            let c: crate::live::Cached = std::sync::Arc::new(chunk);
            entry.offer(flight.generation, at.0, next, c.clone());
            Some(c)
        })
        .await;
    match shared.as_ref().and_then(|c| c.clone().downcast::<Chunk>().ok()) {
        Some(c) => Ok((*c).clone()),
        None => read_step(state, name, from).await,
    }
}

/// A live reader's read (after its first): served from a recent chunk of the same stream and
/// `incarnation` when one covers `from` (see `live::Entry::covering`), else from the one engine
/// read that readers woken by the same write share. 1000 SSE subscribers cost about one engine
/// read per append, not 1000, even when some lag behind the others.
pub async fn read_live(
    state: &AppState,
    name: &str,
    from: ReadFrom,
    entry: &crate::live::Entry,
    incarnation: u64,
) -> Result<Chunk, ApiError> {
    // Served from memory, a read completes without yielding: let other tasks run between the
    // reads of a reader that is catching up.
    tokio::task::consume_budget().await;
    let ReadFrom::At(at) = from else {
        return read_step(state, name, from).await;
    };
    let generation = entry.generation();
    if let Some((c, fresh)) = entry.covering(at.0, generation) {
        let part = c.downcast::<Chunk>().ok().and_then(|c| c.from(at.0));
        // Only bytes of the incarnation the reader follows (a name may be re-created).
        // An empty part of a chunk that stopped short of the tail says nothing: read instead.
        if let Some(mut part) = part.filter(|p| p.meta.incarnation == incarnation && (!p.data.is_empty() || p.up_to_date())) {
            if !fresh {
                // Older than the reader's wake: more may follow, so never "up to date" (the
                // reader reads again at once, instead of waiting for a wake already spent).
                let tail = part.meta.tail.max(part.next + 1);
                Arc::make_mut(&mut part.meta).tail = tail;
            }
            return Ok(part);
        }
    }
    // Readers woken by one write share one engine read (a thousand SSE readers of a stream
    // cost one read per write, not a thousand).
    shared_read(state, name, at, entry, generation).await
}

/// Headers common to catch-up and long-poll data responses.
pub fn data_headers(out: &mut HeaderMap, chunk: &Chunk) {
    if let Some(v) = super::content_type_value(&chunk.meta.content_type) {
        out.insert(header::CONTENT_TYPE, v);
    }
    out.insert(h::STREAM_NEXT_OFFSET, super::offset_value(chunk.next));
    if chunk.up_to_date() {
        out.insert(h::STREAM_UP_TO_DATE, HeaderValue::from_static("true"));
    }
    if chunk.at_eof() {
        out.insert(h::STREAM_CLOSED, HeaderValue::from_static("true"));
    }
}

/// Who may keep a data answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caching {
    /// Nobody (an empty read: the next one may differ).
    NoStore,
    /// Shared caches and CDNs (open mode: anyone could ask the same).
    Public,
    /// Only the client (token mode: the answer was for a credential, so a shared cache must
    /// not hand it to a caller without one).
    Private,
    /// Shared caches, each answer keyed by the credential that asked (token mode with
    /// `auth.shared_cache_per_credential`): `public` with `Vary: Authorization`.
    PerCredential,
}

impl Caching {
    /// For a chunk that holds data, as the server's access mode allows.
    pub fn for_data(state: &AppState) -> Caching {
        if state.auth.enabled() && state.config.auth.shared_cache_per_credential {
            Caching::PerCredential
        } else if state.auth.enabled() {
            Caching::Private
        } else {
            Caching::Public
        }
    }
}

/// A 200 response carrying the chunk, with ETag / 304 handling.
pub fn data_response(parts: &Parts, chunk: &Chunk, cursor: Option<String>, caching: Caching) -> Response {
    data_response_with(parts, chunk, cursor, caching, || ChunkBody::new(chunk.body_parts()).into_body())
}

/// [`data_response`] with the body `body` gives (not built for a 304).
fn data_response_with(parts: &Parts, chunk: &Chunk, cursor: Option<String>, caching: Caching, body: impl FnOnce() -> Body) -> Response {
    let etag = chunk.etag();
    let matches = parts
        .headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut resp = if matches {
        super::answer(StatusCode::NOT_MODIFIED)
    } else {
        let mut resp = super::answer(StatusCode::OK);
        *resp.body_mut() = body();
        resp
    };
    let out = resp.headers_mut();
    data_headers(out, chunk);
    // The tag's own buffer becomes the header value (no copy).
    if let Ok(v) = HeaderValue::from_maybe_shared(Bytes::from(etag)) {
        out.insert(header::ETAG, v);
    }
    let cc = match caching {
        Caching::Public | Caching::PerCredential => "public, max-age=60, stale-while-revalidate=300",
        Caching::Private => "private, max-age=60, stale-while-revalidate=300",
        Caching::NoStore => "no-store",
    };
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static(cc));
    if caching == Caching::PerCredential {
        out.append(header::VARY, HeaderValue::from_static("authorization"));
    }
    if let Some(c) = cursor.filter(|_| !chunk.at_eof()) {
        if let Ok(v) = HeaderValue::from_str(&c) {
            out.insert(h::STREAM_CURSOR, v);
        }
    }
    resp
}

/// Catch-up GET (including `offset=now`). One engine read answers, or, when there is more to
/// send, the response runs on to `limits.max_read_response_bytes` (see `pieces`).
pub async fn catch_up(state: &Arc<AppState>, name: String, parts: &Parts, q: &ReadQuery) -> Result<Response, ApiError> {
    let chunk = read_step(state, &name, q.from).await?;
    if q.from == ReadFrom::Now {
        let mut resp = (
            StatusCode::OK,
            ChunkBody::new(if chunk.is_json() { vec![Bytes::from_static(b"[]")] } else { vec![] }).into_body(),
        )
            .into_response();
        let out = resp.headers_mut();
        data_headers(out, &chunk);
        out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return Ok(resp);
    }
    let caching = if chunk.data.is_empty() {
        Caching::NoStore
    } else {
        Caching::for_data(state)
    };
    state.metrics.read_bytes.inc_by(chunk.data.len() as u64);
    if let Some(end) = super::pieces::response_end(&chunk, state.config.limits.max_read_response_bytes) {
        // The headers describe the whole response; its body reads on from where `chunk` stopped.
        let whole = Chunk {
            data: Bytes::new(),
            next: end,
            sse: Arc::default(),
            ..chunk.clone()
        };
        let body = || super::pieces::body(state.clone(), name, &chunk, end);
        return Ok(data_response_with(parts, &whole, None, caching, body));
    }
    Ok(data_response(parts, &chunk, None, caching))
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi_stable::std_types::ROption;

    fn chunk(ct: &str, data: &'static [u8], start: u64) -> Chunk {
        Chunk {
            sse: Arc::default(),
            data: Bytes::from_static(data),
            start,
            next: start + data.len() as u64,
            meta: Arc::new(StreamMeta {
                content_type: ct.into(),
                tail: start + data.len() as u64,
                closed: false,
                lifetime: Default::default(),
                incarnation: 7,
                fork_source: ROption::RNone,
                fork_position: 0,
            }),
        }
    }

    #[test]
    fn a_chunk_serves_reads_from_its_record_boundaries() {
        let json = chunk("application/json", b"{\"a\":1},{\"b\":2},", 100);
        let part = json.from(108).expect("108 starts the second message");
        assert_eq!((&part.data[..], part.start, part.next), (&b"{\"b\":2},"[..], 108, 116));
        assert!(part.up_to_date());
        assert!(json.from(104).is_none(), "inside a JSON message");
        assert!(json.from(99).is_none() && json.from(117).is_none(), "outside the chunk");
        assert_eq!(json.from(116).map(|p| p.data.len()), Some(0), "at its end: nothing new");
        let bytes = chunk("application/octet-stream", b"abcdef", 0);
        assert_eq!(&bytes.from(2).unwrap().data[..], b"cdef", "byte streams split anywhere");
    }
}
