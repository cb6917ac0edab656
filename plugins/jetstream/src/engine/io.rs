//! Reads: a stream's own data (with batches fetched ahead) and a fork's inherited bytes stitched
//! from its source chain. Appends are `append`'s.

use abi_stable::std_types::RVec;
use durable_streams_core::abi::*;

use super::ahead::Fetch;
use super::{BoxFut, JetStreamStorage};
use crate::catalog::{self, ForkRef};
use crate::data;

/// A data read started before the tail read answers (see [`JetStreamStorage::early`]).
struct Early<'a> {
    subject: String,
    seq: u64,
    messages: BoxFut<'a, Vec<async_nats::jetstream::message::StreamMessage>>,
}

impl JetStreamStorage {
    /// Reads bytes below a fork's position from its source chain.
    pub(super) fn read_inherited<'a>(
        &'a self,
        f: &'a ForkRef,
        pos: u64,
        end: u64,
        max: usize,
        out: &'a mut Vec<u8>,
    ) -> BoxFut<'a, Result<u64, EngineError>> {
        Box::pin(async move {
            if pos < f.source_base {
                let Some((src, _)) = catalog::get(&self.c, &f.source).await? else {
                    return Err(EngineError::new(
                        ErrorCode::CORRUPT,
                        format!("fork source '{}' is missing", f.source),
                    ));
                };
                let Some(up) = src.fork.clone() else {
                    return Err(EngineError::new(
                        ErrorCode::CORRUPT,
                        format!("fork source '{}' has no source", f.source),
                    ));
                };
                let next = self.read_inherited(&up, pos, end.min(f.source_base), max, out).await?;
                if next < f.source_base || next >= end || out.len() >= max {
                    return Ok(next);
                }
                return self.read_own(f, next, end, max, out).await;
            }
            self.read_own(f, pos, end, max, out).await
        })
    }

    /// Reads a fork source's own bytes (at or above its base) up to `end`.
    pub(super) fn read_own<'a>(
        &'a self,
        f: &'a ForkRef,
        pos: u64,
        end: u64,
        max: usize,
        out: &'a mut Vec<u8>,
    ) -> BoxFut<'a, Result<u64, EngineError>> {
        Box::pin(async move {
            let subj = self.source_subject(f);
            let t = data::tail(&self.c, &subj).await?;
            let span = data::Span {
                pos,
                end,
                last_seq: t.seq,
                max,
                hint: None,
            };
            let (next, _) = data::read(&self.c, &subj, span, &mut data::Ahead::new(), out).await?;
            Ok(next)
        })
    }

    /// What a read at `pos` of `name` can fetch before its tail read answers: the batch fetched
    /// ahead for that position, or (when this host knows a tail past `pos` and where `pos`
    /// lies) that batch now. The caller keeps only what the tail read allows.
    fn early(&self, name: &str, pos: u64, max: usize) -> Option<Early<'_>> {
        let entry = self.cache.lock().get(name).cloned()?;
        if pos < entry.rec.base() {
            return None;
        }
        let subject = entry.subject.clone();
        let timeout = self.c.timeout();
        if let Some(slot) = entry.ahead.take(pos, &subject.subject) {
            let seq = slot.seq;
            return Some(Early {
                subject: subject.subject,
                seq,
                messages: Box::pin(slot.messages(timeout)),
            });
        }
        let below_tail = entry.tail.lock().as_ref().is_some_and(|t| t.state.tail > pos);
        let seq = (*entry.hint.lock()).filter(|(p, _)| *p == pos && below_tail).map(|(_, s)| s)?;
        let client = &self.c.client;
        Some(Early {
            subject: subject.subject.clone(),
            seq,
            messages: Box::pin(async move {
                data::batch_with(client, timeout, &subject, seq, 1024, max + 1024)
                    .await
                    .unwrap_or_default()
            }),
        })
    }

    pub(super) async fn read(&self, req: &ReadRequest<'_>) -> Result<ReadChunk, EngineError> {
        let name = req.name.as_str();
        let max = req.max_bytes.clamp(1, 64 << 20) as usize;
        // The tail read and the data read go out together; the tail read decides what is served.
        let early = match req.start {
            ReadStart::At => self.early(name, req.position, max),
            ReadStart::Tail => None,
        };
        let early = async move {
            match early {
                Some(e) => Some((e.subject, e.seq, e.messages.await)),
                None => None,
            }
        };
        let (live, early) = futures_util::future::join(self.live(name, req.now_ms), early).await;
        let (entry, tail) = live?;
        self.touch(&entry, req.now_ms).await;
        let end = tail.state.tail;
        let start = match req.start {
            ReadStart::Tail => end,
            ReadStart::At => req.position,
        };
        if start > end {
            return Err(EngineError::new(
                ErrorCode::OFFSET_BEYOND_TAIL,
                "offset is beyond the stream's tail",
            ));
        }
        let retained = super::retention::retained(&entry.rec, &tail);
        if start < retained {
            return Err(EngineError::trimmed(start, retained));
        }
        match self.read_from(&entry, &tail, start, max, early).await {
            Err(e) if e.code == ErrorCode::TRIMMED => {
                // Another host trimmed since this one cached the record: read it afresh next time.
                self.forget(name);
                Err(e)
            }
            other => other,
        }
    }

    /// Reads from `start` (retained, at most the tail) on.
    async fn read_from(
        &self,
        entry: &super::Cached,
        tail: &data::Tail,
        start: u64,
        max: usize,
        early: Option<(String, u64, Vec<async_nats::jetstream::message::StreamMessage>)>,
    ) -> Result<ReadChunk, EngineError> {
        let end = tail.state.tail;
        let mut out = Vec::with_capacity(max.min((end - start) as usize));
        let base = entry.rec.base();
        let mut next = start;
        if start < base && start < end {
            // Inherited bytes come from the source chain, then the fork's own follow on.
            let f = entry.rec.fork.clone().expect("a base above 0 is a fork");
            next = self.read_inherited(&f, start, base.min(end), max, &mut out).await?;
        }
        if next >= base && next < end && out.len() < max {
            let subj = entry.subject.clone();
            let mut hint = (*entry.hint.lock()).filter(|(p, _)| *p == next).map(|(_, s)| s);
            let mut ahead = data::Ahead::new();
            if let Some((subject, seq, messages)) = early {
                if subject == subj.subject && next == start {
                    hint = Some(seq);
                    ahead.extend(messages.into_iter().filter(|m| m.sequence >= seq && m.sequence <= tail.seq));
                }
            }
            let span = data::Span {
                pos: next,
                end,
                last_seq: tail.seq,
                max,
                hint,
            };
            let (reached, seq) = data::read(&self.c, &subj, span, &mut ahead, &mut out).await?;
            *entry.hint.lock() = Some((reached, seq));
            if reached < end {
                // A reader still behind the tail will most likely ask for what follows.
                let fetch = Fetch {
                    subject: &subj,
                    pos: reached,
                    seq,
                    bytes: max.min((end - reached) as usize) + 1024,
                };
                self.read_ahead
                    .start(&self.c.rt, &self.c.client, self.c.timeout(), &entry.ahead, fetch);
            }
            next = reached;
        }
        Ok(ReadChunk {
            data: ByteViewBox::from_value(RVec::from(out), abi_stable::sabi_trait::TD_Opaque),
            next,
            meta: Self::meta(&entry.rec, tail),
        })
    }
}
