//! A catch-up response longer than one engine read: where it ends, and its body, read from the
//! engine one piece (`limits.max_read_chunk_bytes`) at a time while it is sent. Must not hold
//! more than one piece per response, nor decide anything after the headers are out.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use durable_streams_core::abi::ReadStart;
use futures_util::{Stream, StreamExt};
use http_body::{Frame, SizeHint};

use super::read::{engine_read, Chunk, View};
use crate::state::AppState;

/// Where a response that began with `first` ends: `None` when `first` is the whole answer
/// (up to date, or already at `budget`), else an offset every read from `first.start` can
/// stop at. That is the tail as `first` saw it when it is within `budget` (a JSON stream's
/// response must end on a message); a byte stream may also stop `budget` bytes in.
pub fn response_end(first: &Chunk, budget: u64) -> Option<u64> {
    let whole = first.data.len() as u64 == first.next - first.start;
    if !whole || first.data.is_empty() || first.up_to_date() || first.next - first.start >= budget {
        return None;
    }
    let tail = first.meta.tail;
    if tail - first.start <= budget {
        Some(tail)
    } else if first.is_json() {
        None
    } else {
        Some(first.start + budget)
    }
}

/// The body of a response from `first.start` to `end` (from [`response_end`]): `first`'s
/// bytes, then engine reads from where it stopped. Its length is exact (so `Content-Length`
/// is set); if the stream stops serving those bytes (deleted, re-created, trimmed) the body
/// ends in an error, which cuts the connection short of that length: the client sees an
/// incomplete answer, never a wrong one.
pub fn body(state: Arc<AppState>, name: String, first: &Chunk, end: u64) -> Body {
    let json = first.is_json();
    let len = end - first.start + if json { 1 } else { 0 };
    let reader = Reader {
        state,
        name,
        pos: first.next,
        end,
        incarnation: first.meta.incarnation,
        json,
        closed: false,
    };
    let mut head = Vec::with_capacity(2);
    if json {
        head.push(Ok(Bytes::from_static(b"[")));
    }
    head.push(Ok(first.data.clone()));
    let rest = futures_util::stream::unfold(reader, |mut r| async move { r.next().await.map(|item| (item, r)) });
    Body::new(Exact {
        inner: Box::pin(futures_util::stream::iter(head).chain(rest)),
        remaining: len,
    })
}

/// Reads the pieces after the first.
struct Reader {
    state: Arc<AppState>,
    name: String,
    pos: u64,
    end: u64,
    incarnation: u64,
    json: bool,
    /// The closing `]` of a JSON array has been given.
    closed: bool,
}

impl Reader {
    async fn next(&mut self) -> Option<io::Result<Bytes>> {
        if self.pos >= self.end {
            if self.json && !self.closed {
                self.closed = true;
                return Some(Ok(Bytes::from_static(b"]")));
            }
            return None;
        }
        let (pos, end) = (self.pos, self.end);
        let max = self.state.config.limits.max_read_chunk_bytes.min(end - pos);
        let chunk = match engine_read(&self.state, &self.name, ReadStart::At, pos, max).await {
            Ok(c) => c,
            Err(e) => return Some(Err(io::Error::other(format!("reading on at {pos}: {}", e.message)))),
        };
        if chunk.meta.incarnation != self.incarnation {
            return Some(Err(io::Error::other("the stream was re-created during the response")));
        }
        let data = Bytes::from_owner(View(chunk.data));
        let take = (data.len() as u64).min(end - pos) as usize;
        if take == 0 {
            return Some(Err(io::Error::other(format!("no bytes at {pos} before {end}"))));
        }
        self.pos += take as u64;
        self.state.metrics.read_bytes.inc_by(take as u64);
        // A JSON stream's last message loses its separator: the array closes after it.
        let keep = if self.json && self.pos == end { take - 1 } else { take };
        Some(Ok(data.slice(..keep)))
    }
}

/// A body of a known length made of a stream's pieces.
struct Exact {
    inner: Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>,
    remaining: u64,
}

impl http_body::Body for Exact {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        loop {
            return Poll::Ready(match ready!(self.inner.poll_next_unpin(cx)) {
                Some(Ok(b)) if b.is_empty() => continue,
                Some(Ok(b)) => match self.remaining.checked_sub(b.len() as u64) {
                    Some(left) => {
                        self.remaining = left;
                        Some(Ok(Frame::data(b)))
                    }
                    None => Some(Err(io::Error::other("a piece past the response's length"))),
                },
                Some(Err(e)) => Some(Err(e)),
                None if self.remaining > 0 => Some(Err(io::Error::other("the response ended short"))),
                None => None,
            });
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use durable_streams_core::abi::StreamMeta;

    fn first(ct: &str, start: u64, len: u64, tail: u64) -> Chunk {
        Chunk {
            data: Bytes::from(vec![b'x'; len as usize]),
            start,
            next: start + len,
            meta: Arc::new(StreamMeta {
                content_type: ct.into(),
                tail,
                closed: false,
                lifetime: Default::default(),
                incarnation: 1,
                fork_source: abi_stable::std_types::ROption::RNone,
                fork_position: 0,
            }),
            sse: Arc::default(),
        }
    }

    #[test]
    fn a_response_ends_where_every_read_can_stop() {
        let bytes = "application/octet-stream";
        let json = "application/json";
        assert_eq!(response_end(&first(bytes, 0, 100, 100), 1000), None, "up to date: one read");
        assert_eq!(response_end(&first(bytes, 0, 1000, 5000), 1000), None, "the first read fills it");
        assert_eq!(response_end(&first(bytes, 0, 0, 5000), 1000), None, "nothing read");
        assert_eq!(
            response_end(&first(bytes, 10, 100, 500), 1000),
            Some(500),
            "the tail within the bound"
        );
        assert_eq!(
            response_end(&first(bytes, 10, 100, 5000), 1000),
            Some(1010),
            "a byte stream stops at the bound"
        );
        assert_eq!(
            response_end(&first(json, 10, 100, 500), 1000),
            Some(500),
            "JSON: the tail is a message end"
        );
        assert_eq!(
            response_end(&first(json, 10, 100, 5000), 1000),
            None,
            "JSON: no message end known within the bound"
        );
    }
}
