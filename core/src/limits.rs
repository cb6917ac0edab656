//! Operator limits an engine enforces (passed in the `open` config JSON): the largest stream and,
//! for in-memory engines, the most bytes held. Zero means unlimited.

use crate::abi::{EngineError, ErrorCode};

/// Limits from `[limits]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    pub max_stream_bytes: u64,
    pub max_memory_bytes: u64,
}

impl Limits {
    /// Reads `max_stream_bytes` / `max_memory_bytes` from the engine config JSON.
    pub fn from_config(cfg: &serde_json::Value) -> Limits {
        let get = |k: &str| cfg.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
        Limits {
            max_stream_bytes: get("max_stream_bytes"),
            max_memory_bytes: get("max_memory_bytes"),
        }
    }

    /// Refuses growing a stream from `tail` by `add` bytes past `max_stream_bytes` (413).
    pub fn check_stream(&self, tail: u64, add: u64) -> Result<(), EngineError> {
        if self.max_stream_bytes > 0 && add > 0 && tail.saturating_add(add) > self.max_stream_bytes {
            return Err(EngineError::new(
                ErrorCode::TOO_LARGE,
                format!("the stream would exceed limits.max_stream_bytes ({} bytes)", self.max_stream_bytes),
            ));
        }
        Ok(())
    }

    /// Refuses holding `used + add` bytes past `max_memory_bytes` (507).
    pub fn check_memory(&self, used: u64, add: u64) -> Result<(), EngineError> {
        if self.max_memory_bytes > 0 && add > 0 && used.saturating_add(add) > self.max_memory_bytes {
            return Err(EngineError::new(
                ErrorCode::STORAGE_FULL,
                format!("the memory engine holds limits.max_memory_bytes ({} bytes)", self.max_memory_bytes),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_unlimited_and_limits_bite() {
        let none = Limits::default();
        assert!(none.check_stream(u64::MAX - 1, 1).is_ok());
        let l = Limits {
            max_stream_bytes: 10,
            max_memory_bytes: 100,
        };
        assert!(l.check_stream(5, 5).is_ok());
        assert_eq!(l.check_stream(5, 6).unwrap_err().code, ErrorCode::TOO_LARGE);
        assert_eq!(l.check_memory(99, 2).unwrap_err().code, ErrorCode::STORAGE_FULL);
        assert_eq!(Limits::from_config(&serde_json::json!({"max_stream_bytes": 7})).max_stream_bytes, 7);
    }
}
