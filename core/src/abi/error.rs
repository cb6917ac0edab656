//! Errors that cross the plugin boundary: an open integer code plus a message and details.

use abi_stable::std_types::RString;
use abi_stable::StableAbi;

/// An error class. An integer newtype rather than an enum, so later generations can add codes
/// that old hosts see as unknown (and answer 500) instead of undefined behaviour.
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub u32);

impl ErrorCode {
    pub const NOT_FOUND: ErrorCode = ErrorCode(1);
    /// The stream is soft-deleted (forks still reference it).
    pub const GONE: ErrorCode = ErrorCode(2);
    /// Create: a stream exists with another configuration (or the path is soft-deleted).
    pub const CONFIG_CONFLICT: ErrorCode = ErrorCode(3);
    pub const CLOSED: ErrorCode = ErrorCode(4);
    pub const CONTENT_TYPE_MISMATCH: ErrorCode = ErrorCode(5);
    pub const STREAM_SEQ_REGRESSION: ErrorCode = ErrorCode(6);
    /// Detail: `producer_epoch` holds the current epoch.
    pub const STALE_EPOCH: ErrorCode = ErrorCode(7);
    pub const NEW_EPOCH_SEQ_NOT_ZERO: ErrorCode = ErrorCode(8);
    /// Detail: `expected_seq`, `received_seq`.
    pub const SEQUENCE_GAP: ErrorCode = ErrorCode(9);
    pub const FORK_SOURCE_NOT_FOUND: ErrorCode = ErrorCode(10);
    pub const FORK_SOURCE_GONE: ErrorCode = ErrorCode(11);
    pub const OFFSET_BEYOND_TAIL: ErrorCode = ErrorCode(12);
    pub const INVALID_ARGUMENT: ErrorCode = ErrorCode(13);
    pub const TOO_LARGE: ErrorCode = ErrorCode(14);
    /// No space left for the write; nothing partial was kept.
    pub const STORAGE_FULL: ErrorCode = ErrorCode(15);
    /// Stored data failed its checksum or structure check.
    pub const CORRUPT: ErrorCode = ErrorCode(16);
    pub const IO: ErrorCode = ErrorCode(17);
    /// The engine panicked during this call.
    pub const PANICKED: ErrorCode = ErrorCode(18);
    /// The engine panicked earlier and refuses further calls.
    pub const POISONED: ErrorCode = ErrorCode(19);
    /// The operation (or extension op) is not provided by this engine.
    pub const UNSUPPORTED: ErrorCode = ErrorCode(20);
    pub const INTERNAL: ErrorCode = ErrorCode(21);
    /// The mode passed to `open` is not one this plugin provides.
    pub const UNKNOWN_MODE: ErrorCode = ErrorCode(22);
    /// The configuration passed to `open` is unusable.
    pub const BAD_CONFIG: ErrorCode = ErrorCode(23);
    /// The storage behind the engine cannot be reached now (a cluster without quorum, a lost
    /// connection), or the outcome of a write could not be determined: retry later (503 with
    /// `Retry-After`). Nothing acknowledged is lost.
    pub const UNAVAILABLE: ErrorCode = ErrorCode(24);
    /// The position is below the stream's earliest retained position (retention dropped the
    /// head, `ext::TRIM`); `detail.tail` holds that position. (410 Gone)
    pub const TRIMMED: ErrorCode = ErrorCode(25);

    /// A short stable name for logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::NOT_FOUND => "not_found",
            Self::GONE => "gone",
            Self::CONFIG_CONFLICT => "config_conflict",
            Self::CLOSED => "closed",
            Self::CONTENT_TYPE_MISMATCH => "content_type_mismatch",
            Self::STREAM_SEQ_REGRESSION => "stream_seq_regression",
            Self::STALE_EPOCH => "stale_epoch",
            Self::NEW_EPOCH_SEQ_NOT_ZERO => "new_epoch_seq_not_zero",
            Self::SEQUENCE_GAP => "sequence_gap",
            Self::FORK_SOURCE_NOT_FOUND => "fork_source_not_found",
            Self::FORK_SOURCE_GONE => "fork_source_gone",
            Self::OFFSET_BEYOND_TAIL => "offset_beyond_tail",
            Self::INVALID_ARGUMENT => "invalid_argument",
            Self::TOO_LARGE => "too_large",
            Self::STORAGE_FULL => "storage_full",
            Self::CORRUPT => "corrupt",
            Self::IO => "io",
            Self::PANICKED => "panicked",
            Self::POISONED => "poisoned",
            Self::UNSUPPORTED => "unsupported",
            Self::INTERNAL => "internal",
            Self::UNKNOWN_MODE => "unknown_mode",
            Self::BAD_CONFIG => "bad_config",
            Self::UNAVAILABLE => "unavailable",
            Self::TRIMMED => "trimmed",
            _ => "unknown",
        }
    }
}

/// Machine-readable context for some codes; zero where not applicable.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ErrorDetail {
    /// The stream's tail position (for `CLOSED`).
    pub tail: u64,
    pub closed: bool,
    pub producer_epoch: u64,
    pub expected_seq: u64,
    pub received_seq: u64,
}

/// An engine error as it crosses the boundary.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct EngineError {
    pub code: ErrorCode,
    pub message: RString,
    pub detail: ErrorDetail,
}

impl EngineError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        EngineError {
            code,
            message: RString::from(message.into()),
            detail: ErrorDetail::default(),
        }
    }

    pub fn with_detail(mut self, detail: ErrorDetail) -> Self {
        self.detail = detail;
        self
    }

    pub fn not_found(name: &str) -> Self {
        Self::new(ErrorCode::NOT_FOUND, format!("stream '{name}' does not exist"))
    }

    pub fn gone(name: &str) -> Self {
        Self::new(ErrorCode::GONE, format!("stream '{name}' was deleted"))
    }

    /// A read below the earliest retained position `start`.
    pub fn trimmed(pos: u64, start: u64) -> Self {
        Self::new(
            ErrorCode::TRIMMED,
            format!("offset {pos} is before the earliest retained position {start}: retention dropped it"),
        )
        .with_detail(ErrorDetail {
            tail: start,
            ..Default::default()
        })
    }
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code.name())
    }
}

impl std::error::Error for EngineError {}

impl EngineError {
    /// The boundary error for an append the rules refused, with its detail filled in.
    pub fn from_rejection(r: crate::rules::AppendRejection, tail: u64, closed: bool) -> EngineError {
        use crate::rules::AppendRejection as R;
        let mut detail = ErrorDetail {
            tail,
            closed,
            ..Default::default()
        };
        let (code, msg) = match r {
            R::Closed => (ErrorCode::CLOSED, "stream is closed".to_string()),
            R::ContentTypeMismatch => (
                ErrorCode::CONTENT_TYPE_MISMATCH,
                "content type does not match the stream's".to_string(),
            ),
            R::StreamSeqRegression => (
                ErrorCode::STREAM_SEQ_REGRESSION,
                "Stream-Seq must be greater than the last one".to_string(),
            ),
            R::StaleEpoch { current } => {
                detail.producer_epoch = current;
                (
                    ErrorCode::STALE_EPOCH,
                    format!("producer epoch is stale; current epoch is {current}"),
                )
            }
            R::NewEpochSeqNotZero => (
                ErrorCode::NEW_EPOCH_SEQ_NOT_ZERO,
                "a new producer epoch must start at Producer-Seq 0".to_string(),
            ),
            R::SequenceGap { expected, received } => {
                detail.expected_seq = expected;
                detail.received_seq = received;
                (
                    ErrorCode::SEQUENCE_GAP,
                    format!("producer sequence gap: expected {expected}, received {received}"),
                )
            }
        };
        EngineError::new(code, msg).with_detail(detail)
    }
}
