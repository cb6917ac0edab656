//! The read query string: `offset`, `live` and `cursor`, strictly parsed (unknown keys ignored).

use durable_streams_core::ReadFrom;
use percent_encoding::percent_decode_str;

use super::error::ApiError;

/// Which read mode a GET asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LiveMode {
    CatchUp,
    LongPoll,
    Sse,
}

/// A parsed read request.
#[derive(Clone, Debug)]
pub struct ReadQuery {
    pub from: ReadFrom,
    pub offset_given: bool,
    pub live: LiveMode,
    pub cursor: Option<String>,
}

/// A query parameter's name or value, percent-decoded (`+` is a space); 400 if not UTF-8.
/// Borrowed when there is nothing to decode.
pub fn decode(v: &str) -> Result<std::borrow::Cow<'_, str>, ApiError> {
    if !v.bytes().any(|b| b == b'+' || b == b'%') {
        return Ok(std::borrow::Cow::Borrowed(v));
    }
    let plus = v.replace('+', " ");
    percent_decode_str(&plus)
        .decode_utf8()
        .map(|c| std::borrow::Cow::Owned(c.into_owned()))
        .map_err(|_| ApiError::bad_request("query parameter is not valid UTF-8"))
}

impl ReadQuery {
    pub fn parse(query: Option<&str>) -> Result<ReadQuery, ApiError> {
        let (mut offset, mut live, mut cursor) = (None, None, None);
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match decode(k)?.as_ref() {
                "offset" => &mut offset,
                "live" => &mut live,
                "cursor" => &mut cursor,
                _ => continue,
            };
            if slot.is_some() {
                return Err(ApiError::bad_request(format!("query parameter '{k}' is repeated")));
            }
            *slot = Some(decode(v)?);
        }
        let live = match live.as_deref() {
            None => LiveMode::CatchUp,
            Some("long-poll") => LiveMode::LongPoll,
            Some("sse") => LiveMode::Sse,
            Some(other) => return Err(ApiError::bad_request(format!("live must be 'long-poll' or 'sse', not '{other}'"))),
        };
        let offset_given = offset.is_some();
        let from = match &offset {
            None => ReadFrom::Start,
            Some(o) => ReadFrom::parse(o).map_err(|e| ApiError::bad_request(format!("invalid offset: {e}")))?,
        };
        if live != LiveMode::CatchUp && !offset_given {
            return Err(ApiError::bad_request("live reads require an offset"));
        }
        Ok(ReadQuery {
            from,
            offset_given,
            live,
            cursor: cursor.map(std::borrow::Cow::into_owned),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        let q = ReadQuery::parse(Some("offset=-1&foo=bar")).unwrap();
        assert_eq!(q.from, ReadFrom::Start);
        assert!(ReadQuery::parse(Some("offset=")).is_err());
        assert!(ReadQuery::parse(Some("offset=-1&offset=now")).is_err());
        assert!(ReadQuery::parse(Some("live=sse")).is_err());
        assert!(ReadQuery::parse(Some("offset=0%2C1")).is_err());
        assert!(ReadQuery::parse(Some("offset=..%2Fx")).is_err());
        assert_eq!(
            ReadQuery::parse(Some("offset=now&live=long-poll")).unwrap().live,
            LiveMode::LongPoll
        );
    }
}
