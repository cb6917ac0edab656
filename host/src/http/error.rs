//! The one HTTP error type: every failure becomes an `application/problem+json` response here,
//! and only here are engine error codes mapped to statuses. 5xx bodies never carry internals.

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use durable_streams_core::abi::{EngineError, ErrorCode};
use durable_streams_core::Offset;

use super::headers as h;

/// An error answered to the client.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub title: &'static str,
    pub detail: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(status: StatusCode, title: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            title,
            detail: detail.into(),
            headers: Vec::new(),
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "Bad Request", detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "Conflict", detail)
    }

    pub fn with_header(mut self, name: HeaderName, value: impl ToString) -> Self {
        if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
            self.headers.push((name, v));
        }
        self
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let d = e.detail;
        let msg = e.message.to_string();
        match e.code {
            ErrorCode::NOT_FOUND => ApiError::new(StatusCode::NOT_FOUND, "Not Found", msg),
            ErrorCode::GONE => ApiError::new(StatusCode::GONE, "Gone", msg),
            ErrorCode::CONFIG_CONFLICT
            | ErrorCode::CONTENT_TYPE_MISMATCH
            | ErrorCode::STREAM_SEQ_REGRESSION
            | ErrorCode::FORK_SOURCE_GONE => ApiError::conflict(msg),
            ErrorCode::CLOSED => ApiError::conflict(msg)
                .with_header(h::STREAM_CLOSED, "true")
                .with_header(h::STREAM_NEXT_OFFSET, Offset(d.tail)),
            ErrorCode::STALE_EPOCH => {
                ApiError::new(StatusCode::FORBIDDEN, "Forbidden", msg).with_header(h::PRODUCER_EPOCH, d.producer_epoch)
            }
            ErrorCode::NEW_EPOCH_SEQ_NOT_ZERO | ErrorCode::OFFSET_BEYOND_TAIL | ErrorCode::INVALID_ARGUMENT => ApiError::bad_request(msg),
            ErrorCode::SEQUENCE_GAP => ApiError::conflict(msg)
                .with_header(h::PRODUCER_EXPECTED_SEQ, d.expected_seq)
                .with_header(h::PRODUCER_RECEIVED_SEQ, d.received_seq),
            ErrorCode::FORK_SOURCE_NOT_FOUND => ApiError::new(StatusCode::NOT_FOUND, "Not Found", msg),
            ErrorCode::TOO_LARGE => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large", msg),
            ErrorCode::STORAGE_FULL => ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "Insufficient Storage",
                "storage is full; the write was not applied",
            ),
            ErrorCode::UNSUPPORTED => ApiError::new(StatusCode::NOT_IMPLEMENTED, "Not Implemented", msg),
            ErrorCode::POISONED => {
                tracing::error!(error = %e, "engine call refused");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Service Unavailable",
                    "storage engine is unavailable",
                )
            }
            _ => {
                tracing::error!(code = e.code.0, error = %e, "storage engine error");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error", "storage engine error")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "type": "about:blank",
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        let mut headers = HeaderMap::new();
        headers.insert(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        headers.insert(axum::http::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        for (k, v) in self.headers {
            headers.insert(k, v);
        }
        (self.status, headers, body.to_string()).into_response()
    }
}
