//! Turns a request path (or a `Stream-Forked-From` value) into a validated stream name.

use durable_streams_core::name;
use percent_encoding::percent_decode_str;

use super::error::ApiError;

/// Strips the base path and percent-decodes; refuses traversal, control characters and the like.
pub fn stream_name(base: &str, raw_path: &str) -> Result<String, ApiError> {
    let rest = raw_path.strip_prefix(base).unwrap_or(raw_path);
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    let decoded = percent_decode_str(rest)
        .decode_utf8()
        .map_err(|_| ApiError::bad_request("stream name is not valid UTF-8"))?;
    name::validate(&decoded).map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(decoded.into_owned())
}
