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

use crate::abi::Lifetime;
use abi_stable::std_types::ROption;

/// A fork's lifetime from its source's and its request's (the protocol's inheritance table):
/// anything requested wins; otherwise the source's TTL or Expires-At is inherited.
pub fn fork_lifetime(source: Lifetime, requested: Lifetime) -> Lifetime {
    if requested.ttl_secs.is_some() || requested.expires_at_ms.is_some() {
        requested
    } else {
        source
    }
}

/// Whether a stream with `lifetime`, last read or written at `last_access_ms`, has ended at `now_ms`.
pub fn is_expired(lifetime: Lifetime, last_access_ms: u64, now_ms: u64) -> bool {
    if let ROption::RSome(at) = lifetime.expires_at_ms {
        if now_ms >= at {
            return true;
        }
    }
    if let ROption::RSome(ttl) = lifetime.ttl_secs {
        if now_ms >= last_access_ms.saturating_add(ttl.saturating_mul(1000)) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod lifetime_tests {
    use super::*;

    fn lt(ttl: Option<u64>, at: Option<u64>) -> Lifetime {
        Lifetime {
            ttl_secs: ttl.into(),
            expires_at_ms: at.into(),
        }
    }

    #[test]
    fn inheritance_table() {
        assert_eq!(fork_lifetime(lt(None, None), lt(None, None)), lt(None, None));
        assert_eq!(fork_lifetime(lt(Some(5), None), lt(None, None)), lt(Some(5), None));
        assert_eq!(fork_lifetime(lt(None, Some(9)), lt(None, None)), lt(None, Some(9)));
        assert_eq!(fork_lifetime(lt(None, Some(9)), lt(Some(1), None)), lt(Some(1), None));
        assert_eq!(fork_lifetime(lt(Some(5), None), lt(None, Some(7))), lt(None, Some(7)));
    }

    #[test]
    fn expiry() {
        assert!(!is_expired(lt(None, None), 0, u64::MAX));
        assert!(is_expired(lt(Some(1), None), 1000, 2000));
        assert!(!is_expired(lt(Some(1), None), 1000, 1999));
        assert!(is_expired(lt(None, Some(50)), 0, 50));
    }
}
