//! GET `live=sse`: catch-up then live data as Server-Sent Events, each data event paired with a
//! control event in the same write; base64 for binary streams; rotated at the configured interval.

use std::pin::pin;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};
use durable_streams_core::{content_type, Offset, ReadFrom};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::cursor::next_cursor;
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

/// The control event after a chunk, written without building a JSON value (every field is a
/// number-like offset, a server-made cursor or a boolean: nothing needs escaping).
fn push_control(buf: &mut BytesMut, chunk: &Chunk, cursor: Option<&str>) {
    use std::fmt::Write as _;
    let mut line = String::with_capacity(96);
    let _ = write!(line, "{{\"streamNextOffset\":\"{}\"", Offset(chunk.next));
    if chunk.at_eof() {
        line.push_str(",\"streamClosed\":true,\"upToDate\":true");
    } else {
        if let Some(c) = cursor {
            let _ = write!(line, ",\"streamCursor\":{}", serde_json::Value::from(c));
        }
        if chunk.up_to_date() {
            line.push_str(",\"upToDate\":true");
        }
    }
    line.push('}');
    buf.put_slice(b"event: control\ndata:");
    buf.put_slice(line.as_bytes());
    buf.put_slice(b"\n\n");
}

/// Largest batch of catch-up events gathered into one write.
const BATCH_BYTES: usize = 1 << 20;

/// One SSE stream's task: what it reads, how it renders, where it writes, and what it holds.
struct Task {
    state: Arc<AppState>,
    name: String,
    start: u64,
    client_cursor: Option<String>,
    base64: bool,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    /// The client's live-read quota slot, given back when the stream ends.
    _slot: Option<LiveSlot>,
    /// The caller's credential, looked at again while the stream lasts.
    credential: CredentialWatch,
}

async fn run(task: Task) {
    let Task {
        state,
        name,
        start,
        client_cursor,
        base64,
        tx,
        _slot,
        mut credential,
    } = task;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(state.config.server.sse_reconnect_interval_secs);
    // One timer for the stream's life (not one registered and cleared per delivery).
    let rotate = tokio::time::sleep_until(deadline);
    let mut rotate = pin!(rotate);
    let waiter = state.live.watch(&name);
    let _live = crate::metrics::GaugeGuard::new(&state.metrics.sse);
    let mut from = ReadFrom::At(Offset(start));
    let mut first_round = true;
    let mut incarnation = 0;
    loop {
        // Register for wake-ups before reading, so an append that lands after the read wakes us.
        let notified = waiter.notify.notified();
        let mut notified = pin!(notified);
        notified.as_mut().enable();
        let mut buf = BytesMut::new();
        let chunk = loop {
            // The first read goes to the engine when it must renew a sliding TTL; reads after a
            // wake may share the chunk another subscriber just read.
            let read = if first_round {
                read_first(&state, &name, from, &waiter.entry).await
            } else {
                read_live(&state, &name, from, &waiter.entry, incarnation).await
            };
            let chunk = match read {
                Ok(c) => c,
                Err(_) => return,
            };
            incarnation = chunk.meta.incarnation;
            let cursor = next_cursor(client_cursor.as_deref());
            if !chunk.data.is_empty() {
                buf.put_slice(&data_event(&chunk, base64));
                push_control(&mut buf, &chunk, Some(&cursor));
            } else if first_round || chunk.at_eof() {
                push_control(&mut buf, &chunk, Some(&cursor));
            }
            first_round = false;
            from = ReadFrom::At(Offset(chunk.next));
            if chunk.up_to_date() || buf.len() >= BATCH_BYTES || chunk.data.is_empty() {
                break chunk;
            }
        };
        // A revoked or expired credential ends the stream (the client's reconnect gets its 401).
        if !credential.valid(&state.auth) {
            return;
        }
        if !buf.is_empty() && tx.send(Ok(buf.freeze())).await.is_err() {
            return;
        }
        if chunk.at_eof() {
            return;
        }
        if !chunk.up_to_date() {
            continue;
        }
        tokio::select! {
            _ = notified => {}
            _ = rotate.as_mut() => return,
            _ = tx.closed() => return,
            _ = credential.lapsed(&state.auth) => return,
        }
        if state.readiness.is_draining() {
            return;
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
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(run(Task {
        state,
        name,
        start: first.start,
        client_cursor: q.cursor.clone(),
        base64,
        tx,
        _slot: slot,
        credential,
    }));
    let mut resp = (StatusCode::OK, Body::from_stream(ReceiverStream::new(rx))).into_response();
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
