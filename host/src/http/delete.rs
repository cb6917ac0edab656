//! DELETE: remove a stream (soft-deleted while forks reference it) and release its live readers.

use abi_stable::std_types::RStr;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use durable_streams_core::abi::DeleteRequest;

use super::error::ApiError;
use crate::clock::now_ms;
use crate::state::AppState;

pub async fn handle(state: &AppState, name: String) -> Result<Response, ApiError> {
    let n = name.clone();
    state
        .storage
        .call(move |e| {
            e.delete(&DeleteRequest {
                name: RStr::from(n.as_str()),
                now_ms: now_ms(),
                only_if_expired: false,
            })
        })
        .await?;
    state.live.wake(&name);
    Ok(StatusCode::NO_CONTENT.into_response())
}
