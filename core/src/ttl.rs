//! Stream lifetimes: strict parsing of `Stream-TTL` and `Stream-Expires-At`.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Why a lifetime header was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TtlError {
    BadTtl,
    BadExpiresAt,
}

impl std::fmt::Display for TtlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TtlError::BadTtl => f.write_str("Stream-TTL must be a non-negative decimal integer without sign, leading zeros or fraction"),
            TtlError::BadExpiresAt => f.write_str("Stream-Expires-At must be an RFC 3339 timestamp"),
        }
    }
}

impl std::error::Error for TtlError {}

/// Parses `Stream-TTL` (seconds): `0` or a decimal without leading zeros, at most 2^53-1.
pub fn parse_ttl(s: &str) -> Result<u64, TtlError> {
    let ok = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0')) && s.len() <= 16;
    if !ok {
        return Err(TtlError::BadTtl);
    }
    let v: u64 = s.parse().map_err(|_| TtlError::BadTtl)?;
    if v > (1u64 << 53) - 1 {
        return Err(TtlError::BadTtl);
    }
    Ok(v)
}

/// Parses `Stream-Expires-At` into Unix milliseconds.
pub fn parse_expires_at(s: &str) -> Result<u64, TtlError> {
    let t = OffsetDateTime::parse(s.trim(), &Rfc3339).map_err(|_| TtlError::BadExpiresAt)?;
    let ms = t.unix_timestamp_nanos() / 1_000_000;
    u64::try_from(ms).map_err(|_| TtlError::BadExpiresAt)
}

/// Formats Unix milliseconds as RFC 3339 (UTC).
pub fn format_unix_ms(ms: u64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_ttl() {
        assert_eq!(parse_ttl("0"), Ok(0));
        assert_eq!(parse_ttl("3600"), Ok(3600));
        for bad in ["", "+3600", "03600", "3600.0", "3.6e3", "-1", " 1", "abc", "99999999999999999"] {
            assert_eq!(parse_ttl(bad), Err(TtlError::BadTtl), "{bad}");
        }
    }

    #[test]
    fn expires_at() {
        assert_eq!(parse_expires_at("1970-01-01T00:00:01Z"), Ok(1000));
        assert_eq!(parse_expires_at("2030-01-01T00:00:00+01:00"), Ok(1_893_452_400_000));
        assert!(parse_expires_at("tomorrow").is_err());
        assert_eq!(format_unix_ms(1000), "1970-01-01T00:00:01Z");
    }
}
