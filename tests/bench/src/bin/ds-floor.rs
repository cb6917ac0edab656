//! `ds-floor`: the floor under a Durable Streams server for the per-request benchmarks (issue
//! 28): axum with one route shaped like the server's (`/v1/stream/{*name}`), static answers,
//! no storage, no layers. PUT answers 201, POST 204 (after reading the body whole, as a server
//! must), HEAD 200 and GET 200 with 100 bytes, each with the headers the server's answer
//! carries (its protocol headers and the security headers every answer gets), so `ds-bench
//! --scenario head` runs against it unchanged, and `--scenario appends --no-verify` too (the
//! idempotent-producer case fails: it answers no producer headers); `/readyz` answers 200.
//! What the server costs above this per request is the server's own.
//!
//!     ds-floor --port 4437

use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;

/// The position every append "reaches": one 100-byte append, as the HEAD scenario makes.
const TAIL: &str = "0000000000000000_0000000000000100";

const SECURITY: [(&str, &str); 3] = [
    ("x-content-type-options", "nosniff"),
    ("cross-origin-resource-policy", "cross-origin"),
    ("content-security-policy", "sandbox; default-src 'none'; frame-ancestors 'none'"),
];

fn answer(status: StatusCode, protocol: &[(HeaderName, &'static str)]) -> Response {
    let mut resp = status.into_response();
    let h = resp.headers_mut();
    for (name, value) in protocol {
        h.insert(name.clone(), HeaderValue::from_static(value));
    }
    for (name, value) in SECURITY {
        h.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
    }
    resp
}

async fn stream(method: Method, body: axum::body::Bytes) -> Response {
    // A server reads an append's body whole before answering; so does the floor.
    std::hint::black_box(&body);
    let next = HeaderName::from_static("stream-next-offset");
    match method {
        Method::HEAD => answer(
            StatusCode::OK,
            &[
                (header::CONTENT_TYPE, "application/octet-stream"),
                (next, TAIL),
                (header::CACHE_CONTROL, "no-store"),
            ],
        ),
        Method::PUT => answer(
            StatusCode::CREATED,
            &[
                (header::CONTENT_TYPE, "application/octet-stream"),
                (next, "0000000000000000_0000000000000000"),
            ],
        ),
        Method::POST => answer(StatusCode::NO_CONTENT, &[(next, TAIL)]),
        Method::GET => {
            let mut resp = answer(
                StatusCode::OK,
                &[
                    (header::CONTENT_TYPE, "application/octet-stream"),
                    (next, TAIL),
                    (HeaderName::from_static("stream-up-to-date"), "true"),
                    (header::CACHE_CONTROL, "public, max-age=60, stale-while-revalidate=300"),
                    (header::ETAG, "\"1:0:100\""),
                ],
            );
            *resp.body_mut() = axum::body::Body::from(&[b'x'; 100][..]);
            resp
        }
        _ => answer(StatusCode::METHOD_NOT_ALLOWED, &[]),
    }
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
        .route("/v1/stream/{*name}", any(stream));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, app).await
}
