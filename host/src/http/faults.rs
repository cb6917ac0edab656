//! The fault-injection endpoint for client test suites (`testing.fault_injection`, off by
//! default), compatible with the reference server's: `POST {base}/_test/inject-error` sets a
//! fault on one path (relative to the base), `DELETE` clears them all, and the next requests to
//! that path get it: a status, a delay, a dropped connection, a truncated or corrupted body, an
//! extra SSE event. Owns the fault table and what a fault does to an answer; never touches
//! storage, and costs nothing when off (`AppState::faults` is `None`).

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use parking_lot::Mutex;
use serde::Deserialize;

use super::error::ApiError;

/// The endpoint, relative to the stream base.
pub const ENDPOINT: &str = "_test/inject-error";
/// The name reserved while the endpoint is on.
pub const RESERVED: &str = "_test";

/// A request body: the reference server's fields (camelCase); unknown fields are ignored, as
/// the reference does, so a newer client suite still works.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Spec {
    path: Option<String>,
    status: Option<u16>,
    count: Option<u32>,
    retry_after: Option<u64>,
    delay_ms: Option<u64>,
    jitter_ms: Option<u64>,
    drop_connection: Option<bool>,
    truncate_body_bytes: Option<usize>,
    corrupt_body: Option<bool>,
    inject_sse_event: Option<SseEvent>,
    method: Option<String>,
    probability: Option<f64>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SseEvent {
    event_type: String,
    data: String,
}

/// One path's fault, as set.
#[derive(Clone, Debug)]
struct Fault {
    status: Option<StatusCode>,
    retry_after: Option<u64>,
    delay: Duration,
    jitter: Duration,
    drop_connection: bool,
    truncate: Option<usize>,
    corrupt: bool,
    sse: Option<SseEvent>,
    method: Option<Method>,
    probability: f64,
    left: u32,
}

/// The faults set, by path (`/name` relative to the base).
#[derive(Default)]
pub struct Faults {
    table: Mutex<HashMap<String, Fault>>,
}

/// Marks an answer whose connection must be closed before any byte is written (the server's
/// outermost service turns it into a connection error, see `crate::server`).
#[derive(Clone, Copy, Debug)]
pub struct DropConnection;

impl Faults {
    /// The fault for a request to `path` by `method`, used up by one; a fault for another
    /// method, or whose roll fails, is neither applied nor used up.
    fn take(&self, path: &str, method: &Method) -> Option<Fault> {
        let mut table = self.table.lock();
        let f = table.get_mut(path)?;
        if f.method.as_ref().is_some_and(|m| m != method) {
            return None;
        }
        if f.probability < 1.0 && rand::random::<f64>() >= f.probability {
            return None;
        }
        f.left -= 1;
        let taken = f.clone();
        if f.left == 0 {
            table.remove(path);
        }
        Some(taken)
    }
}

fn bad(detail: impl Into<String>) -> Response {
    ApiError::bad_request(detail).into_response()
}

fn ok() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], r#"{"ok":true}"#).into_response()
}

/// `path` as the table keys it: `/name`, whether given relative to the base or with it, with
/// any query left out.
fn key(base: &str, path: &str) -> String {
    let path = path.split(['?', '#']).next().unwrap_or("");
    let rel = match path.strip_prefix(base) {
        Some(rest) if !base.is_empty() && (rest.is_empty() || rest.starts_with('/')) => rest,
        _ => path,
    };
    format!("/{}", rel.trim_start_matches('/'))
}

/// The endpoint itself: POST sets a fault, DELETE clears them all.
pub async fn endpoint(faults: &Faults, base: &str, parts: &Parts, body: Body, max_body: u64) -> Response {
    match parts.method {
        Method::DELETE => {
            faults.table.lock().clear();
            ok()
        }
        Method::POST => {
            let raw = match super::read_body(body, max_body).await {
                Ok(b) => b,
                Err(e) => return e.into_response(),
            };
            let spec: Spec = match serde_json::from_slice(&raw) {
                Ok(s) => s,
                Err(e) => return bad(format!("the body must be a JSON object of fault fields: {e}")),
            };
            match fault_of(spec) {
                Ok((path, fault)) => {
                    faults.table.lock().insert(key(base, &path), fault);
                    ok()
                }
                Err(detail) => bad(detail),
            }
        }
        _ => {
            let mut r = ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed", "use POST or DELETE").into_response();
            r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST, DELETE"));
            r
        }
    }
}

/// Checks a request body and makes its fault.
fn fault_of(s: Spec) -> Result<(String, Fault), String> {
    let path = s.path.filter(|p| !p.trim().is_empty()).ok_or("'path' is required")?;
    let drop_connection = s.drop_connection.unwrap_or(false);
    let corrupt = s.corrupt_body.unwrap_or(false);
    if s.status.is_none()
        && s.delay_ms.is_none()
        && !drop_connection
        && s.truncate_body_bytes.is_none()
        && !corrupt
        && s.inject_sse_event.is_none()
    {
        return Err("give at least one fault: status, delayMs, dropConnection, truncateBodyBytes, corruptBody or injectSseEvent".into());
    }
    let status = match s.status {
        None => None,
        Some(n) if (200..=599).contains(&n) => Some(StatusCode::from_u16(n).map_err(|_| "'status' must be from 200 to 599")?),
        Some(_) => return Err("'status' must be from 200 to 599".into()),
    };
    let count = s.count.unwrap_or(1);
    if count == 0 {
        return Err("'count' must be at least 1".into());
    }
    let probability = s.probability.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&probability) {
        return Err("'probability' must be from 0 to 1".into());
    }
    let method = match s.method {
        None => None,
        Some(m) => Some(Method::from_bytes(m.to_ascii_uppercase().as_bytes()).map_err(|_| "'method' must be an HTTP method")?),
    };
    if let Some(e) = &s.inject_sse_event {
        if e.event_type.contains(['\r', '\n']) {
            return Err("'injectSseEvent.eventType' must be one line".into());
        }
    }
    let hour = 3_600_000;
    if s.delay_ms.unwrap_or(0) > hour || s.jitter_ms.unwrap_or(0) > hour {
        return Err("'delayMs' and 'jitterMs' must be at most an hour".into());
    }
    Ok((
        path,
        Fault {
            status,
            retry_after: s.retry_after,
            delay: Duration::from_millis(s.delay_ms.unwrap_or(0)),
            jitter: Duration::from_millis(s.jitter_ms.unwrap_or(0)),
            drop_connection,
            truncate: s.truncate_body_bytes,
            corrupt,
            sse: s.inject_sse_event,
            method,
            probability,
            left: count,
        },
    ))
}

/// What a fault does before the request is served: `Err` is the whole answer (a status, or a
/// dropped connection); `Ok` carries what must be done to the answer afterwards, if anything.
pub async fn before(faults: &Faults, rel: &str, method: &Method) -> Result<Option<After>, Response> {
    let Some(f) = faults.take(&format!("/{rel}"), method) else {
        return Ok(None);
    };
    let mut wait = f.delay;
    if !f.jitter.is_zero() {
        wait += f.jitter.mul_f64(rand::random::<f64>());
    }
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
    if f.drop_connection {
        let mut r = Response::new(Body::empty());
        r.extensions_mut().insert(DropConnection);
        return Err(r);
    }
    if let Some(status) = f.status {
        let mut r = (status, [(header::CONTENT_TYPE, "text/plain")], "Injected error for testing").into_response();
        if let Some(secs) = f.retry_after {
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        return Err(r);
    }
    Ok((f.truncate.is_some() || f.corrupt || f.sse.is_some()).then_some(After {
        truncate: f.truncate,
        corrupt: f.corrupt,
        sse: f.sse,
    }))
}

/// What a fault does to a served answer.
pub struct After {
    truncate: Option<usize>,
    corrupt: bool,
    sse: Option<SseEvent>,
}

impl After {
    /// An SSE answer gets the event right after its headers; a successful read with data gets
    /// its body truncated and / or corrupted; any other answer is left as it is.
    pub async fn apply(self, resp: Response) -> Response {
        if resp.status() != StatusCode::OK {
            return resp;
        }
        let is_sse = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        let (mut parts, body) = resp.into_parts();
        if is_sse {
            let Some(e) = self.sse else {
                return Response::from_parts(parts, body);
            };
            let first = Bytes::from(format!("event: {}\ndata: {}\n\n", e.event_type, e.data.replace('\n', "\ndata: ")));
            let stream = futures_util::stream::once(async move { Ok::<_, axum::Error>(first) });
            let rest = body.into_data_stream();
            return Response::from_parts(parts, Body::from_stream(futures_util::StreamExt::chain(stream, rest)));
        }
        if self.truncate.is_none() && !self.corrupt {
            return Response::from_parts(parts, body);
        }
        let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        if bytes.is_empty() {
            return Response::from_parts(parts, Body::from(bytes));
        }
        let mut data = bytes.to_vec();
        if let Some(n) = self.truncate {
            data.truncate(n);
        }
        if self.corrupt && !data.is_empty() {
            // As the reference does: the first bytes always (a JSON body no longer parses),
            // then about a tenth of the rest at random.
            data[0] = b'X';
            if data.len() > 1 {
                data[1] = b'Y';
            }
            // (never over the first two, which stay "XY": clients' tests look for them)
            if data.len() > 2 {
                for _ in 0..(data.len() / 10).max(1) {
                    let at = 2 + rand::random::<usize>() % (data.len() - 2);
                    data[at] = b'Z';
                }
            }
        }
        parts.headers.remove(header::CONTENT_LENGTH);
        Response::from_parts(parts, Body::from(data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_relative_to_the_base() {
        assert_eq!(key("/v1/stream", "/a/b"), "/a/b");
        assert_eq!(key("/v1/stream", "a/b"), "/a/b");
        assert_eq!(key("/v1/stream", "/v1/stream/a/b?offset=-1"), "/a/b");
        assert_eq!(key("/v1/stream", "/v1/streamer"), "/v1/streamer");
        assert_eq!(key("", "/a"), "/a");
    }

    #[test]
    fn a_fault_for_another_method_is_not_used_up() {
        let faults = Faults::default();
        let spec: Spec = serde_json::from_str(r#"{"path":"/a","status":503,"method":"post","count":2}"#).unwrap();
        let (path, f) = fault_of(spec).unwrap();
        faults.table.lock().insert(key("/v1/stream", &path), f);
        assert!(faults.take("/a", &Method::GET).is_none());
        assert!(faults.take("/a", &Method::POST).is_some());
        assert!(faults.take("/a", &Method::POST).is_some());
        assert!(faults.take("/a", &Method::POST).is_none());
    }

    #[test]
    fn a_failed_roll_is_not_used_up() {
        let faults = Faults::default();
        let spec: Spec = serde_json::from_str(r#"{"path":"/a","status":503,"probability":0}"#).unwrap();
        let (_, f) = fault_of(spec).unwrap();
        faults.table.lock().insert("/a".into(), f);
        for _ in 0..50 {
            assert!(faults.take("/a", &Method::GET).is_none());
        }
        assert_eq!(faults.table.lock().get("/a").map(|f| f.left), Some(1));
    }

    #[test]
    fn bad_bodies_are_refused() {
        for body in [
            r#"{}"#,
            r#"{"path":"/a"}"#,
            r#"{"path":"","status":500}"#,
            r#"{"path":"/a","status":99}"#,
            r#"{"path":"/a","status":503,"count":0}"#,
            r#"{"path":"/a","status":503,"probability":1.5}"#,
            r#"{"path":"/a","status":503,"method":"GE T"}"#,
            r#"{"path":"/a","injectSseEvent":{"eventType":"a\nb","data":"x"}}"#,
        ] {
            let spec: Spec = serde_json::from_str(body).unwrap();
            assert!(fault_of(spec).is_err(), "{body} was accepted");
        }
    }
}
