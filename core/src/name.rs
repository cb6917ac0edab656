//! Stream names: the decoded path below the stream base path, validated before any engine sees it.

use std::fmt;

/// Longest accepted name, in bytes.
pub const MAX_NAME_BYTES: usize = 1024;
/// Deepest accepted name, in `/`-separated segments.
pub const MAX_NAME_SEGMENTS: usize = 32;
/// Names under this prefix are the server's own state streams (subscriptions and the like),
/// never application streams: listings, retention and exports leave them out.
pub const INTERNAL_PREFIX: &str = "__ds/";

/// Why a stream name was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameError {
    Empty,
    TooLong,
    TooDeep,
    EmptySegment,
    DotSegment,
    ControlCharacter,
    Reserved,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            NameError::Empty => "stream name is empty",
            NameError::TooLong => "stream name is longer than 1024 bytes",
            NameError::TooDeep => "stream name has more than 32 path segments",
            NameError::EmptySegment => "stream name has an empty path segment",
            NameError::DotSegment => "stream name has a '.' or '..' segment",
            NameError::ControlCharacter => "stream name contains a control character",
            NameError::Reserved => "stream names starting with '__ds' are reserved",
        };
        f.write_str(text)
    }
}

impl std::error::Error for NameError {}

/// Checks a decoded stream name (no leading `/`).
///
/// One pass over the bytes (names are checked on every request). A control character is
/// reported before a segment's fault, wherever each is.
pub fn validate(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(NameError::TooLong);
    }
    let bytes = name.as_bytes();
    let mut segment_fault = None;
    let mut depth = 1;
    let mut start = 0;
    let mut ascii = true;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'/' {
            if segment_fault.is_none() {
                segment_fault = segment_error(&bytes[start..i], depth);
            }
            depth += 1;
            start = i + 1;
        } else if b < 0x20 || b == 0x7f {
            // ASCII's control characters: what `char::is_control` finds among ASCII.
            return Err(NameError::ControlCharacter);
        } else if b >= 0x80 {
            ascii = false;
        }
    }
    if !ascii && name.chars().any(char::is_control) {
        return Err(NameError::ControlCharacter);
    }
    if let Some(e) = segment_fault.or_else(|| segment_error(&bytes[start..], depth)) {
        return Err(e);
    }
    if name == "__ds" || name.starts_with("__ds/") {
        return Err(NameError::Reserved);
    }
    Ok(())
}

/// What is wrong with the `depth`-th segment, if anything.
fn segment_error(segment: &[u8], depth: usize) -> Option<NameError> {
    if depth > MAX_NAME_SEGMENTS {
        return Some(NameError::TooDeep);
    }
    match segment {
        b"" => Some(NameError::EmptySegment),
        b"." | b".." => Some(NameError::DotSegment),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for ok in ["a", "chat/room-1", "x.y", "..a", "a..", "ünïcode/名字", "a b"] {
            assert_eq!(validate(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_traversal_and_control() {
        assert_eq!(validate(""), Err(NameError::Empty));
        assert_eq!(validate(".."), Err(NameError::DotSegment));
        assert_eq!(validate("a/../b"), Err(NameError::DotSegment));
        assert_eq!(validate("a/./b"), Err(NameError::DotSegment));
        assert_eq!(validate("a//b"), Err(NameError::EmptySegment));
        assert_eq!(validate("a\0b"), Err(NameError::ControlCharacter));
        assert_eq!(validate("a\r\nb"), Err(NameError::ControlCharacter));
        assert_eq!(validate(&"a".repeat(1025)), Err(NameError::TooLong));
        assert_eq!(validate(&["a"; 33].join("/")), Err(NameError::TooDeep));
        assert_eq!(validate("__ds/x"), Err(NameError::Reserved));
        // A control character is reported first, wherever it is; then the first bad segment.
        assert_eq!(validate("a//b\0"), Err(NameError::ControlCharacter));
        assert_eq!(validate("a//b/\u{85}"), Err(NameError::ControlCharacter));
        assert_eq!(validate("a/../b//c"), Err(NameError::DotSegment));
        assert_eq!(validate("a//b/.."), Err(NameError::EmptySegment));
        assert_eq!(validate("a/"), Err(NameError::EmptySegment));
        assert_eq!(validate("/a"), Err(NameError::EmptySegment));
    }
}
