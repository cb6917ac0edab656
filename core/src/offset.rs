//! Offsets: the opaque, lexicographically sortable position tokens the protocol hands to clients.
//!
//! Inside the server an offset is a byte position in the stream's logical data (for JSON streams,
//! the position in its framed message bytes). On the wire it is 16 lowercase hex digits, so that
//! string order equals numeric order and no reserved character (`, & = ? /`) can appear. The
//! sentinels `-1` (start) and `now` (tail) are parsed but never generated.
//!
//! Wire form: `RRRRRRRRRRRRRRRR_PPPPPPPPPPPPPPPP`, two 16-digit zero-padded decimals. The first
//! part is reserved (always zero today); the second is the position. Clients (and the official
//! conformance suite) treat `0000000000000000_0000000000000000` as the start of a stream.

use std::fmt;

/// A position in a stream, as minted by this server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Offset(pub u64);

/// Length of the wire form.
pub const OFFSET_WIRE_LEN: usize = 33;

/// Largest position the wire form can carry.
pub const MAX_POSITION: u64 = 9_999_999_999_999_999;

impl Offset {
    pub const ZERO: Offset = Offset(0);

    /// Parses the wire form. Only offsets this server could have produced are accepted.
    pub fn parse(s: &str) -> Result<Offset, OffsetError> {
        let b = s.as_bytes();
        if b.len() != OFFSET_WIRE_LEN || b[16] != b'_' {
            return Err(OffsetError::Malformed);
        }
        let (reserved, pos) = (&s[..16], &s[17..]);
        if !reserved.bytes().all(|c| c == b'0') || !pos.bytes().all(|c| c.is_ascii_digit()) {
            return Err(OffsetError::Malformed);
        }
        pos.parse().map(Offset).map_err(|_| OffsetError::Malformed)
    }
}

impl Offset {
    /// The offset's 33 ASCII bytes, exactly as `Display` writes them, without the formatting
    /// machinery (a header value per answer).
    pub fn to_ascii(self) -> [u8; 33] {
        let mut out = *b"0000000000000000_0000000000000000";
        let mut v = self.0.min(MAX_POSITION);
        let mut i = out.len();
        while v > 0 && i > 17 {
            i -= 1;
            out[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        out
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0000000000000000_{:016}", self.0.min(MAX_POSITION))
    }
}

/// Where a read starts, as named by the `offset` query parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadFrom {
    /// `-1` or no offset: the beginning of the stream.
    Start,
    /// `now`: the current tail.
    Now,
    /// A concrete offset.
    At(Offset),
}

/// Why an offset was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetError {
    Empty,
    Malformed,
}

impl fmt::Display for OffsetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OffsetError::Empty => f.write_str("offset must not be empty"),
            OffsetError::Malformed => f.write_str("offset is not one this server issued"),
        }
    }
}

impl std::error::Error for OffsetError {}

impl ReadFrom {
    /// Parses a query-parameter value (`-1`, `now`, or a minted offset).
    pub fn parse(s: &str) -> Result<ReadFrom, OffsetError> {
        match s {
            "" => Err(OffsetError::Empty),
            "-1" => Ok(ReadFrom::Start),
            "now" => Ok(ReadFrom::Now),
            other => Offset::parse(other).map(ReadFrom::At),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_bytes_are_the_display_text() {
        for pos in [0, 1, 9, 10, 100, 12_345, 1 << 40, MAX_POSITION - 1, MAX_POSITION, u64::MAX] {
            assert_eq!(Offset(pos).to_ascii().as_slice(), Offset(pos).to_string().as_bytes(), "{pos}");
        }
    }

    #[test]
    fn wire_form_sorts_like_numbers() {
        let a = Offset(9).to_string();
        let b = Offset(10).to_string();
        let c = Offset(MAX_POSITION).to_string();
        assert!(a < b && b < c);
        assert_eq!(a.len(), OFFSET_WIRE_LEN);
    }

    #[test]
    fn round_trip() {
        for v in [0, 1, 255, 1 << 40, MAX_POSITION] {
            assert_eq!(Offset::parse(&Offset(v).to_string()), Ok(Offset(v)));
        }
    }

    #[test]
    fn sentinels_and_garbage() {
        assert_eq!(ReadFrom::parse("-1"), Ok(ReadFrom::Start));
        assert_eq!(ReadFrom::parse("now"), Ok(ReadFrom::Now));
        assert_eq!(ReadFrom::parse(""), Err(OffsetError::Empty));
        assert_eq!(ReadFrom::parse("0000000000000000_0000000000000000"), Ok(ReadFrom::At(Offset(0))));
        for bad in [
            "abc",
            "-2",
            "0000000000000000_000000000000000x",
            "0000000000000000-0000000000000000",
            "9999999999999999_9999999999999999",
            "NOW",
            "0,1",
            "0 1",
            "0000000000000000_000000000000000",
        ] {
            assert!(ReadFrom::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn never_generates_sentinels_or_reserved_chars() {
        for v in [0u64, 1, MAX_POSITION] {
            let s = Offset(v).to_string();
            assert!(s != "-1" && s != "now");
            assert!(!s.contains([',', '&', '=', '?', '/']));
        }
    }
}
