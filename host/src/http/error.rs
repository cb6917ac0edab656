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
    /// For a 409: the rule that clashed, so clients can classify the conflict.
    pub conflict: Option<Conflict>,
}

/// The protocol rule a `409 Conflict` clashed with. The problem+json body names it in plain
/// words (`conflict`) and with the error code the official clients use (`code`); the protocol
/// headers (`Stream-Closed`, `Producer-Expected-Seq`, ...) are sent as well.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conflict {
    /// `Stream-Seq` regression or an idempotent producer's sequence gap.
    Sequence,
    /// The stream is closed.
    Closed,
    /// The request's content type is not the stream's.
    ContentType,
    /// A create names an existing stream with another configuration (or a deleted one).
    Exists,
    /// A fork names a source that was deleted.
    ForkSourceDeleted,
}

impl Conflict {
    /// Plain words naming the rule (the `conflict` member).
    pub fn words(self) -> &'static str {
        match self {
            Conflict::Sequence => "sequence",
            Conflict::Closed => "closed",
            Conflict::ContentType => "content type",
            Conflict::Exists => "exists",
            Conflict::ForkSourceDeleted => "fork source deleted",
        }
    }

    /// The client error code (the `code` member).
    pub fn code(self) -> &'static str {
        match self {
            Conflict::Sequence => "CONFLICT_SEQ",
            Conflict::Closed => "STREAM_CLOSED",
            Conflict::ContentType => "CONTENT_TYPE_MISMATCH",
            Conflict::Exists => "CONFLICT_EXISTS",
            Conflict::ForkSourceDeleted => "FORK_SOURCE_GONE",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Conflict::Sequence => "Sequence conflict",
            Conflict::Closed => "Stream closed",
            Conflict::ContentType => "Content type conflict",
            Conflict::Exists => "Stream exists with another configuration",
            Conflict::ForkSourceDeleted => "Fork source deleted",
        }
    }
}

impl ApiError {
    pub fn new(status: StatusCode, title: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            title,
            detail: detail.into(),
            headers: Vec::new(),
            conflict: None,
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "Bad Request", detail)
    }

    /// A 409 naming the rule that clashed; `detail` is prefixed with the rule's words.
    pub fn conflict(kind: Conflict, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        ApiError {
            conflict: Some(kind),
            ..Self::new(StatusCode::CONFLICT, kind.title(), format!("{}: {detail}", kind.words()))
        }
    }

    /// The 409 for a closed stream, with the headers clients rely on.
    pub fn closed(detail: impl Into<String>, tail: u64) -> Self {
        Self::conflict(Conflict::Closed, detail)
            .with_header(h::STREAM_CLOSED, "true")
            .with_header(h::STREAM_NEXT_OFFSET, Offset(tail))
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
            ErrorCode::GONE | ErrorCode::TRIMMED => ApiError::new(StatusCode::GONE, "Gone", msg),
            ErrorCode::CONFIG_CONFLICT => ApiError::conflict(Conflict::Exists, msg),
            ErrorCode::CONTENT_TYPE_MISMATCH => ApiError::conflict(Conflict::ContentType, msg),
            ErrorCode::STREAM_SEQ_REGRESSION => ApiError::conflict(Conflict::Sequence, msg),
            ErrorCode::FORK_SOURCE_GONE => ApiError::conflict(Conflict::ForkSourceDeleted, msg),
            ErrorCode::CLOSED => ApiError::closed(msg, d.tail),
            ErrorCode::STALE_EPOCH => {
                ApiError::new(StatusCode::FORBIDDEN, "Forbidden", msg).with_header(h::PRODUCER_EPOCH, d.producer_epoch)
            }
            ErrorCode::NEW_EPOCH_SEQ_NOT_ZERO | ErrorCode::OFFSET_BEYOND_TAIL | ErrorCode::INVALID_ARGUMENT => ApiError::bad_request(msg),
            ErrorCode::SEQUENCE_GAP => ApiError::conflict(Conflict::Sequence, msg)
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
            ErrorCode::UNAVAILABLE => {
                tracing::warn!(error = %e, "storage unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Service Unavailable",
                    "storage is unavailable; retry later",
                )
                .with_header(axum::http::header::RETRY_AFTER, 1)
            }
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
        let mut body = serde_json::json!({
            "type": "about:blank",
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        if let Some(c) = self.conflict {
            body["conflict"] = c.words().into();
            body["code"] = c.code().into();
        }
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
