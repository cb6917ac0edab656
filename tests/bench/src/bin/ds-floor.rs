//! `ds-floor`: the floor under a Durable Streams server for the per-request benchmarks (issue
//! 28): axum with one route shaped like the server's (`/v1/stream/{*name}`), no layers, and
//! the least a server must do: it keeps a copy of each stream's appended bodies in memory (one
//! lock per stream) and serves them back, shared, with the protocol's headers and framing.
//! PUT answers 201, POST 204 (after reading the body whole), HEAD 200, DELETE 204; GET serves a
//! catch-up read (up to 16 MiB from `offset`), a long-poll (`live=long-poll`, waiting up to 5 s)
//! or Server-Sent Events (`live=sse`: `data` and `control` events per append), each answer with
//! the headers the server's carries (its protocol headers and the security headers every answer
//! gets). So `ds-bench` runs its head, appends (`--no-verify`: byte streams only, no JSON
//! framing, no producer headers), catch-up and fanout scenarios against it unchanged; `/readyz`
//! answers 200. What the server costs above this per request is the server's own.
//!
//!     ds-floor --port 4437

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;

const SECURITY: [(&str, &str); 3] = [
    ("x-content-type-options", "nosniff"),
    ("cross-origin-resource-policy", "cross-origin"),
    ("content-security-policy", "sandbox; default-src 'none'; frame-ancestors 'none'"),
];
const MAX_READ: u64 = 16 << 20;
const LONG_POLL: Duration = Duration::from_secs(5);

/// One stream: its bodies in order, each with its start position.
struct Stream {
    content_type: HeaderValue,
    log: Mutex<Log>,
    grew: tokio::sync::watch::Sender<u64>,
}

#[derive(Default)]
struct Log {
    parts: Vec<(u64, Bytes)>,
    tail: u64,
}

impl Log {
    /// The bodies (or their parts) between `from` and `to`, without copying.
    fn slice(&self, from: u64, to: u64) -> Vec<Bytes> {
        let first = self.parts.partition_point(|(start, b)| start + b.len() as u64 <= from);
        let mut out = Vec::new();
        for (start, b) in &self.parts[first..] {
            if *start >= to {
                break;
            }
            let lo = from.saturating_sub(*start) as usize;
            let hi = ((to - start) as usize).min(b.len());
            out.push(b.slice(lo..hi));
        }
        out
    }
}

type Streams = Arc<Mutex<HashMap<String, Arc<Stream>>>>;

fn offset(pos: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("0000000000000000_{pos:016}")).expect("digits")
}

fn parse_offset(s: &str, tail: u64) -> Option<u64> {
    match s {
        "-1" => Some(0),
        "now" => Some(tail),
        _ => s.rsplit_once('_').and_then(|(_, p)| p.parse().ok()),
    }
}

fn answer(status: StatusCode, protocol: &[(HeaderName, HeaderValue)]) -> Response {
    let mut resp = status.into_response();
    let h = resp.headers_mut();
    for (name, value) in protocol {
        h.insert(name.clone(), value.clone());
    }
    for (name, value) in SECURITY {
        h.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
    }
    resp
}

const NEXT: HeaderName = HeaderName::from_static("stream-next-offset");
const UP_TO_DATE: HeaderName = HeaderName::from_static("stream-up-to-date");
const CURSOR: HeaderName = HeaderName::from_static("stream-cursor");

fn query<'q>(q: Option<&'q str>, key: &str) -> Option<&'q str> {
    q?.split('&')
        .find_map(|kv| kv.split_once('=').filter(|(k, _)| *k == key).map(|(_, v)| v))
}

async fn stream(State(streams): State<Streams>, req: Request) -> Response {
    // Everything borrowed from the request: no header map or name copied per request.
    let (parts, body) = req.into_parts();
    let name = parts.uri.path().strip_prefix("/v1/stream/").unwrap_or_default();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(_) => return answer(StatusCode::BAD_REQUEST, &[]),
    };
    let found = streams.lock().expect("streams").get(name).cloned();
    match (parts.method, found) {
        (Method::PUT, found) => {
            let s = found.unwrap_or_else(|| {
                let ct = parts
                    .headers
                    .get(header::CONTENT_TYPE)
                    .cloned()
                    .unwrap_or(HeaderValue::from_static("application/octet-stream"));
                let s = Arc::new(Stream {
                    content_type: ct,
                    log: Mutex::default(),
                    grew: tokio::sync::watch::channel(0).0,
                });
                streams.lock().expect("streams").entry(name.to_string()).or_insert(s).clone()
            });
            let tail = s.log.lock().expect("log").tail;
            answer(
                StatusCode::CREATED,
                &[(header::CONTENT_TYPE, s.content_type.clone()), (NEXT, offset(tail))],
            )
        }
        (_, None) => answer(StatusCode::NOT_FOUND, &[]),
        (Method::POST, Some(s)) => {
            let tail = {
                let mut log = s.log.lock().expect("log");
                let start = log.tail;
                log.tail += body.len() as u64;
                // A copy of its own: keeping the request's `Bytes` would pin hyper's read buffer
                // (a store copies into its own memory too).
                log.parts.push((start, Bytes::copy_from_slice(&body)));
                log.tail
            };
            s.grew.send_replace(tail);
            answer(StatusCode::NO_CONTENT, &[(NEXT, offset(tail))])
        }
        (Method::HEAD, Some(s)) => {
            let tail = s.log.lock().expect("log").tail;
            answer(
                StatusCode::OK,
                &[
                    (header::CONTENT_TYPE, s.content_type.clone()),
                    (NEXT, offset(tail)),
                    (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                ],
            )
        }
        (Method::DELETE, Some(_)) => {
            streams.lock().expect("streams").remove(name);
            answer(StatusCode::NO_CONTENT, &[])
        }
        (Method::GET, Some(s)) => read(s, parts.uri.query()).await,
        _ => answer(StatusCode::METHOD_NOT_ALLOWED, &[]),
    }
}

async fn read(s: Arc<Stream>, q: Option<&str>) -> Response {
    let tail = s.log.lock().expect("log").tail;
    let Some(from) = query(q, "offset").and_then(|o| parse_offset(o, tail)) else {
        return answer(StatusCode::BAD_REQUEST, &[]);
    };
    match query(q, "live") {
        Some("sse") => sse(s, from),
        Some("long-poll") if from >= tail => {
            let mut rx = s.grew.subscribe();
            let grew = tokio::time::timeout(LONG_POLL, rx.wait_for(|t| *t > from)).await;
            if matches!(grew, Ok(Ok(_))) {
                catch_up(&s, from)
            } else {
                answer(
                    StatusCode::NO_CONTENT,
                    &[
                        (NEXT, offset(from)),
                        (UP_TO_DATE, HeaderValue::from_static("true")),
                        (CURSOR, HeaderValue::from_static("1")),
                    ],
                )
            }
        }
        _ => catch_up(&s, from),
    }
}

/// A catch-up answer: the bytes from `from`, up to 16 MiB, as the stored pieces.
fn catch_up(s: &Stream, from: u64) -> Response {
    let (pieces, end, tail) = {
        let log = s.log.lock().expect("log");
        let end = log.tail.min(from + MAX_READ);
        (log.slice(from, end), end, log.tail)
    };
    let mut resp = answer(
        StatusCode::OK,
        &[
            (header::CONTENT_TYPE, s.content_type.clone()),
            (NEXT, offset(end)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=60, stale-while-revalidate=300"),
            ),
            (header::ETAG, HeaderValue::from_str(&format!("\"1:{from}:{end}\"")).expect("digits")),
            (CURSOR, HeaderValue::from_static("1")),
        ],
    );
    if end == tail {
        resp.headers_mut().insert(UP_TO_DATE, HeaderValue::from_static("true"));
    }
    resp.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(end - from));
    *resp.body_mut() = Body::from_stream(futures_util::stream::iter(pieces.into_iter().map(Ok::<_, Infallible>)));
    resp
}

/// One SSE control event.
fn control(out: &mut Vec<u8>, pos: u64) {
    out.extend_from_slice(b"event: control\ndata: {\"streamNextOffset\":\"0000000000000000_");
    out.extend_from_slice(format!("{pos:016}").as_bytes());
    out.extend_from_slice(b"\",\"streamCursor\":\"1\",\"upToDate\":true}\n\n");
}

/// Server-Sent Events from `from`: a control event now, then a data and a control event per
/// growth of the stream (text bodies, one `data:` line per line).
fn sse(s: Arc<Stream>, from: u64) -> Response {
    let rx = s.grew.subscribe();
    let mut first = Vec::new();
    control(&mut first, from);
    let start = futures_util::stream::once(std::future::ready(Ok::<_, Infallible>(Bytes::from(first))));
    let events = futures_util::stream::unfold((s, rx, from), |(s, mut rx, pos)| async move {
        rx.wait_for(|t| *t > pos).await.ok()?;
        let (pieces, end) = {
            let log = s.log.lock().expect("log");
            (log.slice(pos, log.tail), log.tail)
        };
        let mut out = b"event: data\n".to_vec();
        for piece in &pieces {
            for line in piece.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                out.extend_from_slice(b"data:");
                out.extend_from_slice(line);
                out.push(b'\n');
            }
        }
        out.push(b'\n');
        control(&mut out, end);
        Some((Ok::<_, Infallible>(Bytes::from(out)), (s, rx, end)))
    });
    let mut resp = answer(
        StatusCode::OK,
        &[
            (header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
    );
    *resp.body_mut() = Body::from_stream(futures_util::StreamExt::chain(start, events));
    resp
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port = std::env::args()
        .skip_while(|a| a != "--port")
        .nth(1)
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or(4437);
    let app = Router::new()
        .route("/readyz", get(|| async { "ready" }))
        .route("/v1/stream/{*name}", any(stream))
        .with_state(Streams::default());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, app).await
}
