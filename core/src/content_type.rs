//! Content types: comparison, JSON-mode detection and the SSE base64 rule.

/// The media type without parameters, trimmed and lower-cased.
pub fn essence(ct: &str) -> String {
    essence_of(ct).to_ascii_lowercase()
}

/// The media type without parameters, as written (compare it ignoring ASCII case).
fn essence_of(ct: &str) -> &str {
    // Byte-wise (';' is ASCII, so the cut is on a character boundary): it runs per request.
    let end = ct.bytes().position(|b| b == b';').unwrap_or(ct.len());
    ct[..end].trim_matches(|c: char| c.is_whitespace())
}

/// Whether two content types name the same media type (parameters such as charset are ignored).
pub fn matches(a: &str, b: &str) -> bool {
    // The usual append names its stream's type exactly as the stream was created with it.
    a == b || essence_of(a).eq_ignore_ascii_case(essence_of(b))
}

/// Whether the stream is in JSON mode (`application/json`, any parameters).
pub fn is_json(ct: &str) -> bool {
    essence_of(ct).eq_ignore_ascii_case("application/json")
}

/// Whether SSE data events must be base64-encoded: anything but `text/*` and `application/json`.
pub fn sse_needs_base64(ct: &str) -> bool {
    let e = essence_of(ct);
    let text = e.as_bytes().get(..5).is_some_and(|p| p.eq_ignore_ascii_case(b"text/"));
    !(text || e.eq_ignore_ascii_case("application/json"))
}

/// Whether the value is a syntactically plausible media type (`type/subtype`).
pub fn is_valid(ct: &str) -> bool {
    let e = essence(ct);
    let mut parts = e.splitn(2, '/');
    let (Some(t), Some(s)) = (parts.next(), parts.next()) else {
        return false;
    };
    let token = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
    token(t) && token(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_with_charset_is_json() {
        assert!(is_json("application/json; charset=utf-8"));
        assert!(is_json("Application/JSON"));
        assert!(!is_json("application/jsonx"));
    }

    #[test]
    fn matching_ignores_params_and_case() {
        assert!(matches("text/plain", "TEXT/plain; charset=utf-8"));
        assert!(!matches("text/plain", "text/html"));
    }

    #[test]
    fn base64_rule() {
        assert!(!sse_needs_base64("text/plain"));
        assert!(!sse_needs_base64("application/json"));
        assert!(sse_needs_base64("application/octet-stream"));
        assert!(sse_needs_base64("application/ndjson"));
    }

    #[test]
    fn validity() {
        assert!(is_valid("text/plain"));
        assert!(is_valid("application/vnd.x+json; a=b"));
        assert!(!is_valid("nonsense"));
        assert!(!is_valid("/x"));
    }
}
