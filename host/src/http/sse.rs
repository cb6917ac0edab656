//! GET `live=sse`: catch-up then live data as Server-Sent Events, each data event paired with a
//! control event in the same write; base64 for binary streams; rotated at the configured interval.

use std::pin::Pin;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};
use durable_streams_core::{content_type, Offset, ReadFrom};
use tokio::sync::futures::OwnedNotified;

use super::cursor::next_cursor_value;
use super::error::ApiError;
use super::headers as h;
use super::query::ReadQuery;
use super::read::{read_first, read_live, read_step, Chunk};
use crate::auth::quota::LiveSlot;
use crate::auth::CredentialWatch;
use crate::state::AppState;

/// Writes one `data:` line per payload line (split on CR, LF and CRLF).
fn push_data_lines(buf: &mut BytesMut, payload: &[u8]) {
    let mut rest = payload;
    loop {
        let cut = rest.iter().position(|&b| b == b'\n' || b == b'\r');
        let (line, next) = match cut {
            Some(i) => {
                let skip = if rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                (&rest[..i], Some(&rest[i + skip..]))
            }
            None => (rest, None),
        };
        buf.put_slice(b"data:");
        if line.first() == Some(&b' ') {
            buf.put_u8(b' ');
        }
        buf.put_slice(line);
        buf.put_u8(b'\n');
        match next {
            Some(n) => rest = n,
            None => break,
        }
    }
}

/// A chunk's data event, rendered once and shared by every subscriber given the same chunk
/// from its start (a thousand readers woken by one append render it once).
fn data_event(chunk: &Chunk, base64: bool) -> Bytes {
    chunk
        .sse
        .get_or_init(|| {
            let mut buf = BytesMut::with_capacity(chunk.data.len() + chunk.data.len() / 3 + 32);
            buf.put_slice(b"event: data\n");
            if base64 {
                let text = base64::engine::general_purpose::STANDARD.encode(&chunk.data);
                buf.put_slice(b"data:");
                buf.put_slice(text.as_bytes());
                buf.put_u8(b'\n');
            } else if chunk.is_json() {
                // `[` + the framed values without their last `,` + `]`, split into lines.
                let mut joined = Vec::with_capacity(chunk.data.len() + 1);
                joined.push(b'[');
                joined.extend_from_slice(&chunk.data[..chunk.data.len().saturating_sub(1)]);
                joined.push(b']');
                push_data_lines(&mut buf, &joined);
            } else {
                push_data_lines(&mut buf, &chunk.data);
            }
            buf.put_u8(b'\n');
            buf.freeze()
        })
        .clone()
}

/// The control event after a chunk, written straight into the output without building a JSON
/// value (every field is a number-like offset, a server-made number or a boolean: nothing needs
/// escaping).
fn push_control(buf: &mut BytesMut, chunk: &Chunk, cursor: u64) {
    use std::fmt::Write as _;
    let _ = write!(buf, "event: control\ndata:{{\"streamNextOffset\":\"{}\"", Offset(chunk.next));
    if chunk.at_eof() {
        buf.put_slice(b",\"streamClosed\":true,\"upToDate\":true");
    } else {
        let _ = write!(buf, ",\"streamCursor\":\"{cursor}\"");
        if chunk.up_to_date() {
            buf.put_slice(b",\"upToDate\":true");
        }
    }
    buf.put_slice(b"}\n\n");
}

/// Largest batch of catch-up events gathered into one write.
const BATCH_BYTES: usize = 1 << 20;

/// One SSE stream as its response body polls it: what it reads, how it renders, and what it
/// holds. The events are made inside the body's own stream (no task and channel per
/// subscriber); a client that goes away drops it, and with it the registration and the slot.
struct Sse {
    state: Arc<AppState>,
    name: String,
    client_cursor: Option<String>,
    base64: bool,
    waiter: crate::live::Waiter,
    from: ReadFrom,
    first_round: bool,
    incarnation: u64,
    /// Registered before the last read, awaited once it found the stream up to date.
    wake: Option<Pin<Box<OwnedNotified>>>,
    /// The rotation deadline (one timer for the stream's life).
    rotate: Pin<Box<tokio::time::Sleep>>,
    done: bool,
    /// The caller's credential, looked at again while the stream lasts.
    credential: CredentialWatch,
    /// The client's live-read quota slot, given back when the stream ends.
    _slot: Option<LiveSlot>,
    _live: crate::metrics::GaugeGuard,
}

impl Sse {
    /// The next write: catch-up events gathered up to `BATCH_BYTES`, or the events after a wake;
    /// `None` ends the stream (closed, rotated, credential lapsed, draining, or a failed read).
    async fn next_write(&mut self) -> Option<Bytes> {
        loop {
            if self.done {
                return None;
            }
            if let Some(wake) = self.wake.take() {
                tokio::select! {
                    biased;
                    _ = wake => {}
                    _ = self.rotate.as_mut() => return None,
                    _ = self.credential.lapsed(&self.state.auth) => return None,
                }
                if self.state.readiness.is_draining() {
                    return None;
                }
            }
            // Register for wake-ups before reading, so an append that lands after the read wakes us.
            let mut wake = Box::pin(self.waiter.notify.clone().notified_owned());
            wake.as_mut().enable();
            let mut buf = BytesMut::new();
            let chunk = loop {
                // The first read goes to the engine when it must renew a sliding TTL; reads after a
                // wake may share the chunk another subscriber just read.
                let read = if self.first_round {
                    read_first(&self.state, &self.name, self.from, &self.waiter.entry).await
                } else {
                    read_live(&self.state, &self.name, self.from, &self.waiter.entry, self.incarnation).await
                };
                let chunk = read.ok()?;
                self.incarnation = chunk.meta.incarnation;
                let cursor = next_cursor_value(self.client_cursor.as_deref());
                if !chunk.data.is_empty() {
                    let event = data_event(&chunk, self.base64);
                    buf.reserve(event.len() + 128);
                    buf.put_slice(&event);
                    push_control(&mut buf, &chunk, cursor);
                } else if self.first_round || chunk.at_eof() {
                    push_control(&mut buf, &chunk, cursor);
                }
                self.first_round = false;
                self.from = ReadFrom::At(Offset(chunk.next));
                if chunk.up_to_date() || buf.len() >= BATCH_BYTES || chunk.data.is_empty() {
                    break chunk;
                }
            };
            // A revoked or expired credential ends the stream (the client's reconnect gets its 401).
            if !self.credential.valid(&self.state.auth) {
                return None;
            }
            if chunk.at_eof() {
                self.done = true;
            } else if chunk.up_to_date() {
                self.wake = Some(wake);
            }
            if !buf.is_empty() {
                return Some(buf.freeze());
            }
        }
    }
}

/// `slot`: the client's live-read quota slot, held until the stream ends.
/// `credential`: the caller's, looked at again while the stream lasts.
pub async fn handle(
    state: Arc<AppState>,
    name: String,
    q: &ReadQuery,
    slot: Option<LiveSlot>,
    credential: CredentialWatch,
) -> Result<Response, ApiError> {
    // Resolve the start (and answer 404 / 410) before the stream begins; the task reads again
    // from there once it is registered for wake-ups.
    let first = read_step(&state, &name, q.from).await?;
    let base64 = content_type::sse_needs_base64(&first.meta.content_type);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(state.config.server.sse_reconnect_interval_secs);
    let sse = Sse {
        waiter: state.live.watch(&name),
        _live: crate::metrics::GaugeGuard::new(&state.metrics.sse),
        state,
        name,
        client_cursor: q.cursor.clone(),
        base64,
        from: ReadFrom::At(Offset(first.start)),
        first_round: true,
        incarnation: 0,
        wake: None,
        rotate: Box::pin(tokio::time::sleep_until(deadline)),
        done: false,
        credential,
        _slot: slot,
    };
    let events = futures_util::stream::unfold(sse, |mut sse| async move {
        let write = sse.next_write().await?;
        Some((Ok::<_, std::io::Error>(write), sse))
    });
    let mut resp = (StatusCode::OK, Body::from_stream(events)).into_response();
    let out = resp.headers_mut();
    out.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // A reverse proxy (nginx) passes events on as they come instead of buffering them.
    out.insert(HeaderName::from_static("x-accel-buffering"), HeaderValue::from_static("no"));
    if base64 {
        out.insert(h::STREAM_SSE_DATA_ENCODING, HeaderValue::from_static("base64"));
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_every_line_ending() {
        let mut b = BytesMut::new();
        push_data_lines(&mut b, b"a\nb\r\nc\rd\n event: control");
        assert_eq!(&b[..], b"data:a\ndata:b\ndata:c\ndata:d\ndata:  event: control\n");
    }
}
