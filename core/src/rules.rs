//! The append decision: closure, content type, idempotent producers and `Stream-Seq`, in the
//! order the protocol fixes. Every engine calls [`check_append`] under its own per-stream lock
//! and commits the resulting [`WriterState`] change atomically with the data.

use std::collections::HashMap;

use crate::content_type;
use crate::producer::{ProducerStamp, ProducerState};

/// Per-stream writer state an engine keeps (and, if durable, persists with the data).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriterState {
    pub closed: bool,
    /// The producer request that closed the stream, if a producer closed it.
    pub closed_by: Option<ProducerStamp>,
    /// Highest `Stream-Seq` accepted (byte-wise lexicographic).
    pub last_stream_seq: Option<String>,
    pub producers: HashMap<String, ProducerState>,
}

/// The parts of an append request the rules look at.
#[derive(Clone, Copy, Debug)]
pub struct AppendCheck<'a> {
    /// The stream's content type.
    pub stream_content_type: &'a str,
    /// The request's content type, if it sent one.
    pub content_type: Option<&'a str>,
    pub body_is_empty: bool,
    pub close: bool,
    pub producer: Option<&'a ProducerStamp>,
    pub stream_seq: Option<&'a str>,
}

/// What the engine should do with an append that passed the rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppendDecision {
    /// Write the body (possibly empty, for close-only) and apply `update`.
    Accept(StateUpdate),
    /// Nothing to write: a retried producer batch, or a repeated close. Answer success.
    Duplicate { producer: Option<ProducerState> },
}

/// The writer-state change that must commit atomically with the appended bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateUpdate {
    pub producer: Option<(String, ProducerState)>,
    pub stream_seq: Option<String>,
    pub close: bool,
    pub closed_by: Option<ProducerStamp>,
}

/// Why an append was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppendRejection {
    Closed,
    ContentTypeMismatch,
    StreamSeqRegression,
    StaleEpoch { current: u64 },
    NewEpochSeqNotZero,
    SequenceGap { expected: u64, received: u64 },
}

/// Decides an append against the stream's writer state. Pure: the caller applies the result.
pub fn check_append(state: &WriterState, req: &AppendCheck<'_>) -> Result<AppendDecision, AppendRejection> {
    let known = req.producer.and_then(|p| state.producers.get(&p.id).copied());
    if let (Some(p), Some(s)) = (req.producer, known) {
        if p.epoch < s.epoch {
            return Err(AppendRejection::StaleEpoch { current: s.epoch });
        }
    }
    if state.closed {
        if let Some(p) = req.producer {
            if state.closed_by.as_ref() == Some(p) {
                return Ok(AppendDecision::Duplicate { producer: known });
            }
            if let Some(s) = known {
                if p.epoch == s.epoch && p.seq <= s.last_seq && !(req.close && req.body_is_empty) {
                    // A retried batch from before the close: it is already in the stream.
                    return Ok(AppendDecision::Duplicate { producer: Some(s) });
                }
            }
        }
        // A close-only request is idempotent (section 5.3), but only without producer headers:
        // a producer whose tuple is not the one that closed the stream gets 409 (section 5.2.1).
        if req.close && req.body_is_empty && req.producer.is_none() {
            return Ok(AppendDecision::Duplicate { producer: known });
        }
        return Err(AppendRejection::Closed);
    }
    if !req.body_is_empty {
        if let Some(ct) = req.content_type {
            if !content_type::matches(ct, req.stream_content_type) {
                return Err(AppendRejection::ContentTypeMismatch);
            }
        }
    }
    let mut producer_update = None;
    if let Some(p) = req.producer {
        match known {
            Some(s) if p.epoch == s.epoch => {
                if p.seq <= s.last_seq {
                    return Ok(AppendDecision::Duplicate { producer: Some(s) });
                }
                if p.seq != s.last_seq + 1 {
                    return Err(AppendRejection::SequenceGap {
                        expected: s.last_seq + 1,
                        received: p.seq,
                    });
                }
            }
            Some(_) => {
                if p.seq != 0 {
                    return Err(AppendRejection::NewEpochSeqNotZero);
                }
            }
            None => {
                if p.seq != 0 {
                    return Err(AppendRejection::SequenceGap {
                        expected: 0,
                        received: p.seq,
                    });
                }
            }
        }
        producer_update = Some((
            p.id.clone(),
            ProducerState {
                epoch: p.epoch,
                last_seq: p.seq,
            },
        ));
    }
    if let Some(seq) = req.stream_seq {
        if let Some(last) = &state.last_stream_seq {
            if seq.as_bytes() <= last.as_bytes() {
                return Err(AppendRejection::StreamSeqRegression);
            }
        }
    }
    Ok(AppendDecision::Accept(StateUpdate {
        producer: producer_update,
        stream_seq: req.stream_seq.map(str::to_string),
        close: req.close,
        closed_by: if req.close { req.producer.cloned() } else { None },
    }))
}

impl WriterState {
    /// Applies an accepted update.
    pub fn apply(&mut self, update: &StateUpdate) {
        if let Some((id, st)) = &update.producer {
            self.producers.insert(id.clone(), *st);
        }
        if let Some(seq) = &update.stream_seq {
            self.last_stream_seq = Some(seq.clone());
        }
        if update.close {
            self.closed = true;
            self.closed_by = update.closed_by.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(epoch: u64, seq: u64) -> ProducerStamp {
        ProducerStamp {
            id: "p".into(),
            epoch,
            seq,
        }
    }

    fn check(state: &WriterState, p: Option<&ProducerStamp>, close: bool, empty: bool) -> Result<AppendDecision, AppendRejection> {
        check_append(
            state,
            &AppendCheck {
                stream_content_type: "text/plain",
                content_type: Some("text/plain"),
                body_is_empty: empty,
                close,
                producer: p,
                stream_seq: None,
            },
        )
    }

    fn accept(state: &mut WriterState, p: &ProducerStamp) {
        match check(state, Some(p), false, false).unwrap() {
            AppendDecision::Accept(u) => state.apply(&u),
            d => panic!("expected accept, got {d:?}"),
        }
    }

    #[test]
    fn producer_sequence_rules() {
        let mut st = WriterState::default();
        assert_eq!(
            check(&st, Some(&stamp(0, 1)), false, false),
            Err(AppendRejection::SequenceGap { expected: 0, received: 1 })
        );
        accept(&mut st, &stamp(0, 0));
        accept(&mut st, &stamp(0, 1));
        assert!(matches!(
            check(&st, Some(&stamp(0, 1)), false, false),
            Ok(AppendDecision::Duplicate { .. })
        ));
        assert!(matches!(
            check(&st, Some(&stamp(0, 0)), false, false),
            Ok(AppendDecision::Duplicate { .. })
        ));
        assert_eq!(
            check(&st, Some(&stamp(0, 5)), false, false),
            Err(AppendRejection::SequenceGap { expected: 2, received: 5 })
        );
        assert_eq!(
            check(&st, Some(&stamp(1, 3)), false, false),
            Err(AppendRejection::NewEpochSeqNotZero)
        );
        accept(&mut st, &stamp(1, 0));
        assert_eq!(
            check(&st, Some(&stamp(0, 2)), false, false),
            Err(AppendRejection::StaleEpoch { current: 1 })
        );
    }

    #[test]
    fn closed_stream_rules() {
        let mut st = WriterState::default();
        let closer = stamp(0, 0);
        match check(&st, Some(&closer), true, false).unwrap() {
            AppendDecision::Accept(u) => st.apply(&u),
            d => panic!("{d:?}"),
        }
        assert!(st.closed);
        assert!(matches!(
            check(&st, Some(&closer), true, false),
            Ok(AppendDecision::Duplicate { .. })
        ));
        assert_eq!(check(&st, None, false, false), Err(AppendRejection::Closed));
        assert_eq!(check(&st, None, true, false), Err(AppendRejection::Closed));
        assert!(matches!(check(&st, None, true, true), Ok(AppendDecision::Duplicate { .. })));
        assert_eq!(check(&st, Some(&stamp(0, 1)), false, false), Err(AppendRejection::Closed));
        // Close-only from a producer that did not close the stream: 409, not a duplicate.
        assert_eq!(check(&st, Some(&stamp(0, 1)), true, true), Err(AppendRejection::Closed));
        let other = ProducerStamp {
            id: "q".into(),
            epoch: 0,
            seq: 0,
        };
        assert_eq!(check(&st, Some(&other), true, true), Err(AppendRejection::Closed));
        // The closing tuple, close-only: still the duplicate success.
        assert!(matches!(
            check(&st, Some(&closer), true, true),
            Ok(AppendDecision::Duplicate { .. })
        ));
        // A stale epoch is fenced with 403 even on a closed stream.
        st.producers.insert("p".into(), ProducerState { epoch: 2, last_seq: 0 });
        assert_eq!(
            check(&st, Some(&stamp(1, 0)), false, false),
            Err(AppendRejection::StaleEpoch { current: 2 })
        );
    }

    #[test]
    fn closed_is_checked_before_content_type() {
        let st = WriterState {
            closed: true,
            ..Default::default()
        };
        let r = check_append(
            &st,
            &AppendCheck {
                stream_content_type: "text/plain",
                content_type: Some("application/json"),
                body_is_empty: false,
                close: false,
                producer: None,
                stream_seq: None,
            },
        );
        assert_eq!(r, Err(AppendRejection::Closed));
    }

    #[test]
    fn stream_seq_is_bytewise() {
        let st = WriterState {
            last_stream_seq: Some("2".into()),
            ..Default::default()
        };
        let req = |seq| AppendCheck {
            stream_content_type: "text/plain",
            content_type: None,
            body_is_empty: false,
            close: false,
            producer: None,
            stream_seq: Some(seq),
        };
        assert_eq!(check_append(&st, &req("10")), Err(AppendRejection::StreamSeqRegression));
        assert_eq!(check_append(&st, &req("2")), Err(AppendRejection::StreamSeqRegression));
        assert!(check_append(&st, &req("3")).is_ok());
    }
}

/// What an engine knows about an existing stream when a create request names it.
#[derive(Clone, Copy, Debug)]
pub struct Existing<'a> {
    pub content_type: &'a str,
    pub lifetime: crate::abi::Lifetime,
    pub closed: bool,
    /// For forks: the source's name, the fork position and the source's lifetime.
    pub fork: Option<(&'a str, u64, crate::abi::Lifetime)>,
}

/// Whether `req` re-confirms `existing` (an idempotent create, answered 200) rather than
/// conflicting with it (409): same content type (ignoring parameters and case), same lifetime
/// (a fork's as inherited), same closure, same fork source and position.
pub fn create_matches(existing: &Existing<'_>, req: &crate::abi::CreateRequest<'_>) -> bool {
    use abi_stable::std_types::ROption;
    let lifetime = match (&req.fork, &existing.fork) {
        (ROption::RSome(_), Some((_, _, src))) => crate::ttl::fork_lifetime(*src, req.lifetime),
        _ => req.lifetime,
    };
    let ct_ok = req
        .content_type
        .into_option()
        .is_none_or(|c| content_type::matches(c.as_str(), existing.content_type));
    let fork_ok = match (&req.fork, &existing.fork) {
        (ROption::RNone, None) => true,
        (ROption::RSome(f), Some((name, pos, _))) => f.source.as_str() == *name && f.position == *pos,
        _ => false,
    };
    ct_ok && fork_ok && existing.lifetime == lifetime && existing.closed == req.closed
}

/// A fork source as an engine sees it when a fork is created.
#[derive(Clone, Copy, Debug)]
pub struct ForkSource<'a> {
    pub content_type: &'a str,
    pub tail: u64,
    pub soft_deleted: bool,
    pub expired: bool,
}

/// Checks a fork request against its source (`None`: no stream of that name): the source
/// must be live and not soft-deleted, the position within its tail, and a requested content
/// type must match the source's.
pub fn check_fork_source(
    name: &str,
    source: Option<ForkSource<'_>>,
    position: u64,
    requested_content_type: Option<&str>,
) -> Result<(), crate::abi::EngineError> {
    use crate::abi::{EngineError, ErrorCode};
    let src = match source {
        Some(s) if s.soft_deleted => {
            return Err(EngineError::new(
                ErrorCode::FORK_SOURCE_GONE,
                format!("fork source '{name}' was deleted"),
            ))
        }
        Some(s) if !s.expired => s,
        _ => {
            return Err(EngineError::new(
                ErrorCode::FORK_SOURCE_NOT_FOUND,
                format!("fork source '{name}' does not exist"),
            ))
        }
    };
    if position > src.tail {
        return Err(EngineError::new(
            ErrorCode::OFFSET_BEYOND_TAIL,
            "fork offset is beyond the source's tail",
        ));
    }
    if requested_content_type.is_some_and(|ct| !content_type::matches(ct, src.content_type)) {
        return Err(EngineError::new(
            ErrorCode::CONTENT_TYPE_MISMATCH,
            "fork content type differs from the source's",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod fork_tests {
    use super::*;
    use crate::abi::ErrorCode;

    #[test]
    fn fork_source_rules() {
        let src = |soft_deleted, expired| {
            Some(ForkSource {
                content_type: "text/plain",
                tail: 10,
                soft_deleted,
                expired,
            })
        };
        let code = |r: Result<(), crate::abi::EngineError>| r.err().map(|e| e.code);
        assert_eq!(code(check_fork_source("s", None, 0, None)), Some(ErrorCode::FORK_SOURCE_NOT_FOUND));
        assert_eq!(
            code(check_fork_source("s", src(false, true), 0, None)),
            Some(ErrorCode::FORK_SOURCE_NOT_FOUND)
        );
        assert_eq!(
            code(check_fork_source("s", src(true, false), 0, None)),
            Some(ErrorCode::FORK_SOURCE_GONE)
        );
        assert_eq!(
            code(check_fork_source("s", src(false, false), 11, None)),
            Some(ErrorCode::OFFSET_BEYOND_TAIL)
        );
        assert_eq!(
            code(check_fork_source("s", src(false, false), 10, Some("application/json"))),
            Some(ErrorCode::CONTENT_TYPE_MISMATCH)
        );
        assert_eq!(
            code(check_fork_source("s", src(false, false), 10, Some("Text/Plain; charset=utf-8"))),
            None
        );
    }
}
