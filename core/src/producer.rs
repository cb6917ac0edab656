//! Idempotent producers: parsing the `Producer-Id` / `Producer-Epoch` / `Producer-Seq` triple.

/// Largest epoch or sequence number a producer may send (JavaScript's safe integer limit).
pub const MAX_PRODUCER_NUMBER: u64 = (1u64 << 53) - 1;

/// One producer request's identity: who, which session, which batch.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProducerStamp {
    pub id: String,
    pub epoch: u64,
    pub seq: u64,
}

/// What the server remembers about one producer on one stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerState {
    pub epoch: u64,
    /// Highest sequence number accepted in `epoch`.
    pub last_seq: u64,
}

/// Why producer headers were refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProducerHeaderError {
    /// Some but not all three headers were sent.
    Incomplete,
    EmptyId,
    BadEpoch,
    BadSeq,
}

impl std::fmt::Display for ProducerHeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ProducerHeaderError::Incomplete => "Producer-Id, Producer-Epoch and Producer-Seq must be sent together",
            ProducerHeaderError::EmptyId => "Producer-Id must not be empty",
            ProducerHeaderError::BadEpoch => "Producer-Epoch must be a non-negative integer no larger than 2^53-1",
            ProducerHeaderError::BadSeq => "Producer-Seq must be a non-negative integer no larger than 2^53-1",
        })
    }
}

impl std::error::Error for ProducerHeaderError {}

/// Parses a strict non-negative decimal no larger than 2^53-1 (no sign, no leading zeros).
pub fn parse_number(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 16 || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    s.parse::<u64>().ok().filter(|v| *v <= MAX_PRODUCER_NUMBER)
}

/// Builds a stamp from the three optional header values.
pub fn parse_headers(id: Option<&str>, epoch: Option<&str>, seq: Option<&str>) -> Result<Option<ProducerStamp>, ProducerHeaderError> {
    match (id, epoch, seq) {
        (None, None, None) => Ok(None),
        (Some(id), Some(epoch), Some(seq)) => {
            if id.is_empty() {
                return Err(ProducerHeaderError::EmptyId);
            }
            let epoch = parse_number(epoch.trim()).ok_or(ProducerHeaderError::BadEpoch)?;
            let seq = parse_number(seq.trim()).ok_or(ProducerHeaderError::BadSeq)?;
            Ok(Some(ProducerStamp {
                id: id.to_string(),
                epoch,
                seq,
            }))
        }
        _ => Err(ProducerHeaderError::Incomplete),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_or_nothing() {
        assert_eq!(parse_headers(None, None, None), Ok(None));
        assert_eq!(parse_headers(Some("p"), Some("0"), None), Err(ProducerHeaderError::Incomplete));
        assert_eq!(parse_headers(Some(""), Some("0"), Some("0")), Err(ProducerHeaderError::EmptyId));
        assert_eq!(
            parse_headers(Some("p"), Some("1"), Some("2")),
            Ok(Some(ProducerStamp {
                id: "p".into(),
                epoch: 1,
                seq: 2
            }))
        );
    }

    #[test]
    fn strict_numbers() {
        assert_eq!(parse_number("0"), Some(0));
        assert_eq!(parse_number("9007199254740991"), Some(MAX_PRODUCER_NUMBER));
        for bad in ["", "-1", "+1", "01", "1.0", "9007199254740992", "abc", "1e3"] {
            assert_eq!(parse_number(bad), None, "{bad}");
        }
    }
}
