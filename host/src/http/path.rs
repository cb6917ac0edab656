//! Turns a request path (or a `Stream-Forked-From` value) into a validated stream name.

use std::borrow::Cow;

use durable_streams_core::name;
use percent_encoding::percent_decode_str;

use super::error::ApiError;

/// Strips the base path and percent-decodes; refuses traversal, control characters and the like.
/// A path with no `%` is its own name (borrowed: nothing to decode, nothing copied).
pub fn stream_name<'a>(base: &str, raw_path: &'a str) -> Result<Cow<'a, str>, ApiError> {
    let rest = raw_path.strip_prefix(base).unwrap_or(raw_path);
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    let decoded = if rest.as_bytes().contains(&b'%') {
        percent_decode_str(rest)
            .decode_utf8()
            .map_err(|_| ApiError::bad_request("stream name is not valid UTF-8"))?
    } else {
        Cow::Borrowed(rest)
    };
    name::validate(&decoded).map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_are_borrowed_and_encoded_ones_decoded() {
        assert!(matches!(stream_name("/v1/stream", "/v1/stream/a/b").unwrap(), Cow::Borrowed("a/b")));
        assert_eq!(stream_name("/v1/stream", "/v1/stream/a%20b").unwrap(), "a b");
        assert!(stream_name("/v1/stream", "/v1/stream/a%ffb").is_err(), "not UTF-8");
        assert!(
            stream_name("/v1/stream", "/v1/stream/a/%2e%2e/b").is_err(),
            "a dot segment, encoded"
        );
        assert!(
            stream_name("/v1/stream", "/v1/stream/a%00b").is_err(),
            "a control character, encoded"
        );
        assert!(stream_name("/v1/stream", "/v1/stream/a/../b").is_err(), "a dot segment");
    }
}
