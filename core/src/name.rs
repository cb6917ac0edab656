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
pub fn validate(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(NameError::TooLong);
    }
    // An ASCII name (the usual one) is checked byte by byte: its control characters are
    // 0x00-0x1f and 0x7f, what `char::is_control` finds among ASCII.
    let control = if name.is_ascii() {
        name.bytes().any(|b| b < 0x20 || b == 0x7f)
    } else {
        name.chars().any(char::is_control)
    };
    if control {
        return Err(NameError::ControlCharacter);
    }
    let mut depth = 0;
    for segment in name.split('/') {
        depth += 1;
        if depth > MAX_NAME_SEGMENTS {
            return Err(NameError::TooDeep);
        }
        match segment {
            "" => return Err(NameError::EmptySegment),
            "." | ".." => return Err(NameError::DotSegment),
            _ => {}
        }
    }
    if name == "__ds" || name.starts_with("__ds/") {
        return Err(NameError::Reserved);
    }
    Ok(())
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
    }
}
