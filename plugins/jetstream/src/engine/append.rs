//! Appends: the appends to one stream that arrive together are decided in order under the
//! protocol's rules and stored as one message (one compare-and-set on the data subject for the
//! lot, at most the cluster's largest append); on conflict the lot is re-decided on a fresh tail.
//! Knows nothing of reads.

use std::sync::Arc;

use durable_streams_core::abi::*;
use durable_streams_core::producer::{ProducerStamp, ProducerState};
use durable_streams_core::rules::{self, AppendCheck, AppendDecision, WriterState};

use super::{Cached, JetStreamStorage};
use crate::cluster::unavailable;
use crate::data::{self, Appended, Tail};

/// A lot of appends decided against one tail: what each is answered, and what is stored.
struct Decided {
    /// One answer per append decided (a prefix of the appends offered).
    answers: Vec<Result<AppendOutcome, EngineError>>,
    /// The writer state after the accepted ones.
    writer: WriterState,
    /// Their bytes, concatenated (one copy out of the host's buffers).
    body: Vec<u8>,
    accepted: usize,
    /// Some answer other than an acceptance (a refusal or a duplicate).
    refused_some: bool,
}

fn ack(st: ProducerState) -> ProducerAck {
    ProducerAck {
        epoch: st.epoch,
        seq: st.last_seq,
    }
}

impl JetStreamStorage {
    /// Appends `reqs` (all to one stream, in submission order) and answers each, in order.
    pub(super) async fn append_all(&self, reqs: &[&AppendRequest<'_>]) -> Vec<Result<AppendOutcome, EngineError>> {
        let mut out = Vec::with_capacity(reqs.len());
        let mut rest = reqs;
        while !rest.is_empty() {
            match self.append_lot(rest).await {
                Ok(answers) => {
                    rest = &rest[answers.len()..];
                    out.extend(answers);
                }
                Err(e) => {
                    // The stream is missing or the cluster did not answer: the same for each.
                    out.extend(rest.iter().map(|_| Err(e.clone())));
                    break;
                }
            }
        }
        out
    }

    /// Decides (a prefix of) `reqs` against the tail and stores the accepted ones as one message.
    /// Decisions made on the cached tail that refuse or call something a duplicate are made again
    /// on a fresh tail (the cache may lag another host's appends).
    async fn append_lot(&self, reqs: &[&AppendRequest<'_>]) -> Result<Vec<Result<AppendOutcome, EngineError>>, EngineError> {
        let name = reqs[0].name.as_str();
        let now = reqs.iter().map(|r| r.now_ms).max().unwrap_or(0);
        let mut use_cache = true;
        for _ in 0..50 {
            let cached = if use_cache { self.cached_tail(name, now) } else { None };
            let fresh = cached.is_none();
            let (entry, tail) = match cached {
                Some(c) => c,
                None => self.live(name, now).await?,
            };
            use_cache = false;
            let d = self.decide(&entry, &tail, reqs);
            if d.refused_some && !fresh {
                continue;
            }
            if d.accepted == 0 {
                self.touch(&entry, now).await;
                return Ok(d.answers);
            }
            let next = tail.state.next(&d.writer, d.body.len() as u64);
            // Unknown until the cluster answers.
            *entry.tail.lock() = None;
            match data::append(&self.c, &entry.subject, &tail, &next, d.body.into(), name).await? {
                Appended::Stored(seq) => {
                    *entry.hint.lock() = Some((next.tail, seq + 1));
                    *entry.tail.lock() = Some(Arc::new(Tail { state: next, seq }));
                    self.touch(&entry, now).await;
                    return Ok(d.answers);
                }
                Appended::Conflict => continue,
            }
        }
        Err(unavailable(format!(
            "stream '{name}' is appended to too fast by other hosts; retry"
        )))
    }

    /// Decides appends in order against `tail`, up to the cluster's largest append in total.
    fn decide(&self, entry: &Cached, tail: &Tail, reqs: &[&AppendRequest<'_>]) -> Decided {
        let mut d = Decided {
            answers: Vec::with_capacity(reqs.len()),
            writer: tail.state.writer(),
            body: Vec::new(),
            accepted: 0,
            refused_some: false,
        };
        let mut at = tail.state.tail;
        for req in reqs {
            let stamp = req.producer.map(|p| ProducerStamp {
                id: p.id.as_str().to_string(),
                epoch: p.epoch,
                seq: p.seq,
            });
            let body = req.body.as_slice();
            let check = AppendCheck {
                stream_content_type: &entry.rec.content_type,
                content_type: req.content_type.map(|c| c.as_str()).into_option(),
                body_is_empty: body.is_empty(),
                close: req.close,
                producer: stamp.as_ref().into(),
                stream_seq: req.stream_seq.map(|s| s.as_str()).into_option(),
            };
            let answer = match rules::check_append(&d.writer, &check) {
                Ok(AppendDecision::Accept(update)) => {
                    let len = body.len() as u64;
                    if d.accepted > 0 && d.body.len() as u64 + len > self.c.max_append {
                        break; // the next message takes it
                    }
                    match self.check_size(at, len) {
                        Err(e) => Err(e),
                        Ok(()) => {
                            d.writer.apply(&update);
                            if d.accepted == 0 {
                                d.body
                                    .reserve(reqs.iter().map(|r| r.body.len()).sum::<usize>().min(self.c.max_append as usize));
                            }
                            d.body.extend_from_slice(body);
                            d.accepted += 1;
                            at += len;
                            Ok(AppendOutcome {
                                duplicate: false,
                                tail: at,
                                closed: d.writer.closed,
                                producer: update.producer.map(|(_, st)| ack(st)).into(),
                            })
                        }
                    }
                }
                Ok(AppendDecision::Duplicate { producer }) => {
                    d.refused_some = true;
                    Ok(AppendOutcome {
                        duplicate: true,
                        tail: at,
                        closed: d.writer.closed,
                        producer: producer.map(ack).into(),
                    })
                }
                Err(rejection) => {
                    d.refused_some = true;
                    Err(EngineError::from_rejection(rejection, at, d.writer.closed))
                }
            };
            d.answers.push(answer);
        }
        d
    }
}
