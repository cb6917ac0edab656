//! JSON mode framing: validation, one-level array flattening, and message boundaries.
//!
//! A JSON stream stores each message as its raw JSON text followed by a `,`. A read of any
//! message-aligned range is therefore served as `[` + range without its last byte + `]`, and
//! message boundaries are the top-level commas (found by [`message_ends`]).

use serde_json::value::RawValue;

/// Deepest nesting accepted in an appended JSON document.
pub const MAX_JSON_DEPTH: usize = 64;

/// Why a JSON body was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JsonError {
    Invalid(String),
    TooDeep,
    EmptyArray,
}

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JsonError::Invalid(e) => write!(f, "body is not valid JSON: {e}"),
            JsonError::TooDeep => write!(f, "JSON nesting is deeper than {MAX_JSON_DEPTH} levels"),
            JsonError::EmptyArray => f.write_str("an empty JSON array appends nothing"),
        }
    }
}

impl std::error::Error for JsonError {}

/// A body turned into stored framing.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Framed {
    pub bytes: Vec<u8>,
    pub messages: usize,
}

/// Validates `body` and frames it: a top-level array is flattened one level, any other value
/// is one message. `allow_empty` is true for PUT (an empty array creates an empty stream).
pub fn frame(body: &[u8], allow_empty: bool) -> Result<Framed, JsonError> {
    if nesting_depth(body) > MAX_JSON_DEPTH {
        return Err(JsonError::TooDeep);
    }
    let raw: &RawValue = serde_json::from_slice(body).map_err(|e| JsonError::Invalid(e.to_string()))?;
    let text = raw.get();
    let mut out = Framed::default();
    if text.starts_with('[') {
        let items: Vec<&RawValue> = serde_json::from_str(text).map_err(|e| JsonError::Invalid(e.to_string()))?;
        if items.is_empty() && !allow_empty {
            return Err(JsonError::EmptyArray);
        }
        out.bytes.reserve(text.len() + 1);
        for item in &items {
            out.bytes.extend_from_slice(item.get().as_bytes());
            out.bytes.push(b',');
        }
        out.messages = items.len();
    } else {
        out.bytes.reserve(text.len() + 1);
        out.bytes.extend_from_slice(text.as_bytes());
        out.bytes.push(b',');
        out.messages = 1;
    }
    Ok(out)
}

/// Maximum bracket nesting of a JSON text, ignoring brackets inside strings.
pub fn nesting_depth(body: &[u8]) -> usize {
    let (mut depth, mut max, mut in_str, mut esc) = (0usize, 0usize, false, false);
    for &b in body {
        if in_str {
            match (esc, b) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// End positions (exclusive, after the `,`) of each message in framed bytes.
pub fn message_ends(framed: &[u8]) -> Vec<usize> {
    let (mut depth, mut in_str, mut esc) = (0usize, false, false);
    let mut ends = Vec::new();
    for (i, &b) in framed.iter().enumerate() {
        if in_str {
            match (esc, b) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => depth += 1,
            b']' | b'}' => depth = depth.saturating_sub(1),
            b',' if depth == 0 => ends.push(i + 1),
            _ => {}
        }
    }
    ends
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flattens_one_level() {
        assert_eq!(frame(br#"{"a":1}"#, false).unwrap().bytes, br#"{"a":1},"#);
        let f = frame(br#"[[1,2], [3,4]]"#, false).unwrap();
        assert_eq!((f.bytes.as_slice(), f.messages), (&b"[1,2],[3,4],"[..], 2));
        assert_eq!(frame(b"[[[1,2,3]]]", false).unwrap().bytes, b"[[1,2,3]],");
    }

    #[test]
    fn empty_and_invalid() {
        assert_eq!(frame(b"[]", false), Err(JsonError::EmptyArray));
        assert_eq!(frame(b"[]", true).unwrap().messages, 0);
        assert!(matches!(frame(b"{oops", false), Err(JsonError::Invalid(_))));
        assert!(matches!(frame(b"", false), Err(JsonError::Invalid(_))));
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert_eq!(frame(deep.as_bytes(), false), Err(JsonError::TooDeep));
    }

    #[test]
    fn boundaries_skip_nested_and_quoted_commas() {
        let f = frame(br#"[{"a":"x,]y","b":[1,2]}, 3, "q\",w"]"#, false).unwrap();
        let ends = message_ends(&f.bytes);
        assert_eq!(ends.len(), 3);
        assert_eq!(*ends.last().unwrap(), f.bytes.len());
    }
}
