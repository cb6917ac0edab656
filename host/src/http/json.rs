//! JSON answers of the control API (`__ds/...`, the console's config): one shape, never cached
//! (they may carry a freshly issued token). Errors are `error::ApiError`'s, not here.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// `v` as an `application/json` answer with `status` and `Cache-Control: no-store`.
pub fn json(status: StatusCode, v: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")],
        v.to_string(),
    )
        .into_response()
}
