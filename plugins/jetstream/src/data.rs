//! One stream incarnation's data subject: one message per append, each carrying the writer state
//! after it (`DS-State`), so the last message alone gives the tail, closure and producer state.
//! Appends are compare-and-set on the subject's last sequence with a message id per append
//! index; reads locate a byte position by binary search over the shard's sequences. Knows no
//! protocol rule beyond encoding the writer state.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage as Publish;
use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::stream::{DirectGetErrorKind, LastRawMessageErrorKind, RawMessageErrorKind};
use bytes::Bytes;
use durable_streams_core::abi::{EngineError, ErrorCode};
use durable_streams_core::producer::{ProducerStamp, ProducerState};
use durable_streams_core::rules::WriterState;
use serde::{Deserialize, Serialize};

use crate::cluster::{unavailable, Cluster};

/// Producers remembered per stream (the most recently used); older ones start afresh, which the
/// protocol allows (section 5.2.1, producer state cleanup).
pub const MAX_PRODUCERS: usize = 256;

/// Where a data subject lives.
#[derive(Clone, Debug)]
pub struct Subject {
    pub stream: String,
    pub subject: String,
    /// Message ids are `<id_prefix>.<n>`.
    pub id_prefix: String,
    /// First byte position of this incarnation's data.
    pub base: u64,
}

/// The writer state as stored in `DS-State`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Stored {
    /// End position after this message.
    pub tail: u64,
    /// Message index (1-based).
    pub n: u64,
    // What is at its default is left out: every message carries this, and every byte of it is
    // stored three times, replicated, and sent to every host with the change notification.
    #[serde(default, skip_serializing_if = "is_false")]
    pub closed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_by: Option<(String, u64, u64)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_seq: Option<String>,
    /// id → (epoch, last seq, n of last use).
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub producers: HashMap<String, (u64, u64, u64)>,
    /// A delete marker: `soft` while forks still read the data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<bool>,
    /// The earliest retained position (a trim marker sets it, appends carry it on).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn is_false(v: &bool) -> bool {
    !*v
}

impl Stored {
    pub fn writer(&self) -> WriterState {
        WriterState {
            closed: self.closed,
            closed_by: self.closed_by.as_ref().map(|(id, epoch, seq)| ProducerStamp {
                id: id.clone(),
                epoch: *epoch,
                seq: *seq,
            }),
            last_stream_seq: self.stream_seq.clone(),
            producers: self
                .producers
                .iter()
                .map(|(k, (epoch, last_seq, _))| {
                    (
                        k.clone(),
                        ProducerState {
                            epoch: *epoch,
                            last_seq: *last_seq,
                        },
                    )
                })
                .collect(),
        }
    }

    /// The state after an append that applied `writer` (already updated) and `len` bytes.
    pub fn next(&self, writer: &WriterState, len: u64) -> Stored {
        let n = self.n + 1;
        let mut producers: HashMap<String, (u64, u64, u64)> = writer
            .producers
            .iter()
            .map(|(k, st)| {
                let changed = self.producers.get(k).is_none_or(|p| (p.0, p.1) != (st.epoch, st.last_seq));
                let used = if changed { n } else { self.producers.get(k).map_or(n, |p| p.2) };
                (k.clone(), (st.epoch, st.last_seq, used))
            })
            .collect();
        if producers.len() > MAX_PRODUCERS {
            let mut by_use: Vec<(String, u64)> = producers.iter().map(|(k, v)| (k.clone(), v.2)).collect();
            by_use.sort_by_key(|(_, used)| *used);
            for (k, _) in by_use.into_iter().take(producers.len() - MAX_PRODUCERS) {
                producers.remove(&k);
            }
        }
        Stored {
            tail: self.tail + len,
            n,
            closed: writer.closed,
            closed_by: writer.closed_by.as_ref().map(|s| (s.id.clone(), s.epoch, s.seq)),
            stream_seq: writer.last_stream_seq.clone(),
            producers,
            deleted: None,
            start: self.start,
        }
    }
}

/// The last message of a subject: its stored state and sequence (0 when there is none).
#[derive(Clone, Debug, Default)]
pub struct Tail {
    pub state: Stored,
    pub seq: u64,
}

/// The tail a stream's last message records.
pub fn tail_of(m: &StreamMessage) -> Result<Tail, EngineError> {
    Ok(Tail {
        state: decode_state(m)?,
        seq: m.sequence,
    })
}

fn decode_state(m: &StreamMessage) -> Result<Stored, EngineError> {
    let raw = m.headers.get("DS-State").ok_or_else(|| {
        EngineError::new(
            ErrorCode::CORRUPT,
            format!("message {} on {} has no DS-State", m.sequence, m.subject),
        )
    })?;
    serde_json::from_str(raw.as_str()).map_err(|e| {
        EngineError::new(
            ErrorCode::CORRUPT,
            format!("message {} on {}: DS-State: {e}", m.sequence, m.subject),
        )
    })
}

/// The position of a message's first byte.
pub fn start_of(m: &StreamMessage, state: &Stored) -> u64 {
    state.tail - m.payload.len() as u64
}

/// The first byte position of message `m` (its state decoded).
pub fn first_byte(m: &StreamMessage) -> Result<u64, EngineError> {
    Ok(start_of(m, &decode_state(m)?))
}

/// The JetStream stream `name` (no info request).
async fn handle(c: &Cluster, name: &str) -> Result<async_nats::jetstream::stream::Stream<()>, EngineError> {
    c.js.get_stream_no_info(name)
        .await
        .map_err(|e| unavailable(format!("stream {name}: {e}")))
}

/// The subject's last message (leader read).
pub async fn tail(c: &Cluster, s: &Subject) -> Result<Tail, EngineError> {
    let stream = handle(c, &s.stream).await?;
    match stream.get_last_raw_message_by_subject(&s.subject).await {
        Ok(m) => Ok(Tail {
            state: decode_state(&m)?,
            seq: m.sequence,
        }),
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(Tail {
            state: Stored {
                tail: s.base,
                ..Default::default()
            },
            seq: 0,
        }),
        Err(e) => Err(unavailable(format!("read {}: {e}", s.subject))),
    }
}

/// The outcome of an append attempt.
pub enum Appended {
    /// Stored at this stream sequence.
    Stored(u64),
    /// Another writer appended first: reload the tail and decide again.
    Conflict,
}

/// Publishes the next message after `after` (compare-and-set on its sequence, message id
/// `<prefix>.<n>`). A lost acknowledgement is retried with the identical message for up to
/// 30 s; the nonce tells our earlier try from another writer's message with the same id.
pub async fn append(c: &Cluster, s: &Subject, after: &Tail, state: &Stored, body: Bytes, name: &str) -> Result<Appended, EngineError> {
    let nonce = c.nonce();
    let state_json = serde_json::to_string(state).map_err(|e| EngineError::new(ErrorCode::INTERNAL, e.to_string()))?;
    let id = format!("{}.{}", s.id_prefix, state.n);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut retried = false;
    loop {
        let msg = Publish::build()
            .payload(body.clone())
            .message_id(&id)
            .expected_last_subject_sequence(after.seq)
            .header("DS-State", state_json.as_str())
            .header("DS-Nonce", nonce.as_str())
            .header("DS-Name", name);
        let attempt = async {
            let ack = c.js.send_publish(s.subject.clone(), msg).await?;
            ack.await
        };
        match attempt.await {
            Ok(ack) if !ack.duplicate => return Ok(Appended::Stored(ack.sequence)),
            Ok(ack) => {
                // Same message id: our earlier try, or a racing writer's append of index n.
                let m = get(c, &s.stream, ack.sequence).await?;
                let ours = m.headers.get("DS-Nonce").map(|v| v.as_str()) == Some(nonce.as_str());
                return Ok(if ours { Appended::Stored(ack.sequence) } else { Appended::Conflict });
            }
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence && !retried => return Ok(Appended::Conflict),
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                // An earlier try may have been stored (its acknowledgement lost) and this one
                // refused by the sequence check before the id check: the message after `after`
                // tells which.
                let m = next(c, s, after.seq + 1, u64::MAX).await?;
                let ours = m.as_ref().and_then(|m| m.headers.get("DS-Nonce")).map(|v| v.as_str()) == Some(nonce.as_str());
                return Ok(match m {
                    Some(m) if ours => Appended::Stored(m.sequence),
                    _ => Appended::Conflict,
                });
            }
            Err(e) if e.kind() == PublishErrorKind::MaxPayloadExceeded => {
                return Err(EngineError::new(
                    ErrorCode::TOO_LARGE,
                    format!("the append exceeds the cluster's largest message: {e}"),
                ))
            }
            Err(e) if std::time::Instant::now() < deadline => {
                let _ = e;
                retried = true;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => {
                // It may be stored, and this host's readers then told of it by nobody.
                c.unsure.notify_one();
                return Err(unavailable(format!("append to {}: {e}; the outcome is unknown, retry", s.subject)));
            }
        }
    }
}

/// The message at stream sequence `seq` (leader read).
pub async fn get(c: &Cluster, stream: &str, seq: u64) -> Result<StreamMessage, EngineError> {
    let st = handle(c, stream).await?;
    st.get_raw_message(seq)
        .await
        .map_err(|e| unavailable(format!("read {stream}#{seq}: {e}")))
}

/// The first message of `s` at or after stream sequence `from` (leader read), if any.
async fn next(c: &Cluster, s: &Subject, from: u64, known_last: u64) -> Result<Option<StreamMessage>, EngineError> {
    let st = handle(c, &s.stream).await?;
    // Direct get first (any replica answers, payload not base64-encoded). A replica holds a
    // prefix of the log, so a message it returns is the right one; "not found" below a sequence
    // known to exist may be a lagging replica, and is asked again of the leader.
    match st
        .direct_get_builder()
        .sequence(from.max(1))
        .next_by_subject(s.subject.clone())
        .send()
        .await
    {
        Ok(m) => return Ok(Some(m)),
        Err(e) if e.kind() == DirectGetErrorKind::NotFound && from > known_last => return Ok(None),
        Err(_) => {}
    }
    match st
        .raw_message_builder()
        .sequence(from.max(1))
        .next_by_subject(s.subject.clone())
        .send()
        .await
    {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => Ok(None),
        Err(e) => Err(unavailable(format!("read {}: {e}", s.subject))),
    }
}

/// Messages fetched ahead by a read, in sequence order.
pub type Ahead = std::collections::VecDeque<StreamMessage>;

/// Up to `n` messages of `s` from stream sequence `from` on, about `max_bytes` of payload, in one
/// round trip (batched direct get, nats-server 2.11+; any replica answers). Empty when the
/// replica that answered has nothing there yet: the caller then asks the leader.
async fn batch(c: &Cluster, s: &Subject, from: u64, n: usize, max_bytes: usize) -> Result<Vec<StreamMessage>, EngineError> {
    batch_with(&c.client, c.timeout(), s, from, n, max_bytes).await
}

/// [`batch`] with the parts of a cluster it needs, for a task that outlives the read.
pub async fn batch_with(
    client: &async_nats::Client,
    timeout: Duration,
    s: &Subject,
    from: u64,
    n: usize,
    max_bytes: usize,
) -> Result<Vec<StreamMessage>, EngineError> {
    use futures_util::StreamExt;
    let inbox = client.new_inbox();
    let mut replies = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| unavailable(format!("read {}: {e}", s.subject)))?;
    let req = serde_json::json!({"seq": from.max(1), "next_by_subj": s.subject, "batch": n, "max_bytes": max_bytes});
    client
        .publish_with_reply(format!("$JS.API.DIRECT.GET.{}", s.stream), inbox, req.to_string().into())
        .await
        .map_err(|e| unavailable(format!("read {}: {e}", s.subject)))?;
    let mut out = Vec::new();
    loop {
        let m = match tokio::time::timeout(timeout, replies.next()).await {
            Ok(Some(m)) => m,
            // A silent or lost batch: what arrived is still in order; the leader read follows.
            _ => break,
        };
        if m.status.is_some() {
            break; // 204 end of batch, 404 nothing there (yet), or an error: the leader decides
        }
        match StreamMessage::try_from(m) {
            Ok(sm) => out.push(sm),
            Err(_) => break,
        }
        if out.len() >= n {
            break;
        }
    }
    let _ = replies.unsubscribe().await;
    Ok(out)
}

/// The next message of `s` at or after `from` (and at most `last_seq`), from `ahead` or a
/// new batch of about `want` bytes.
async fn next_ahead(
    c: &Cluster,
    s: &Subject,
    ahead: &mut Ahead,
    from: u64,
    last_seq: u64,
    want: usize,
) -> Result<Option<StreamMessage>, EngineError> {
    while ahead.front().is_some_and(|m| m.sequence < from) {
        ahead.pop_front();
    }
    if let Some(m) = ahead.pop_front() {
        return Ok(Some(m));
    }
    if from > last_seq {
        return Ok(None);
    }
    let got = batch(c, s, from, 1024, want.clamp(1, 8 << 20)).await?;
    if got.is_empty() {
        return next(c, s, from, last_seq).await;
    }
    ahead.extend(got.into_iter().filter(|m| m.sequence <= last_seq));
    Ok(ahead.pop_front())
}

/// The message holding byte `pos` (`pos` within `[base, tail)`; `last_seq` the subject's last
/// sequence): the first message kept at or after it when retention purged `pos`.
pub async fn holder(c: &Cluster, s: &Subject, pos: u64, last_seq: u64) -> Result<Option<StreamMessage>, EngineError> {
    locate(c, s, pos, 1, last_seq).await
}

/// The sequence of the message holding byte `pos` (`pos` within `[base, tail)`), found by
/// binary search over stream sequences `[from, to]`.
async fn locate(c: &Cluster, s: &Subject, pos: u64, from: u64, to: u64) -> Result<Option<StreamMessage>, EngineError> {
    let (mut lo, mut hi) = (from.max(1), to);
    let mut best: Option<StreamMessage> = None;
    while lo <= hi {
        let mid = lo + (hi - lo) / 2;
        let Some(m) = next(c, s, mid, to).await? else {
            if mid == 0 {
                break;
            }
            hi = mid - 1;
            continue;
        };
        if m.sequence > hi {
            if mid == 0 {
                break;
            }
            hi = mid - 1;
            continue;
        }
        let st = decode_state(&m)?;
        if start_of(&m, &st) <= pos {
            if st.tail > pos && !m.payload.is_empty() {
                return Ok(Some(m));
            }
            lo = m.sequence + 1;
            best = Some(m);
        } else {
            hi = mid.saturating_sub(1);
            if mid == 0 {
                break;
            }
        }
    }
    // `best` ends at or before pos: the holder is the next non-empty message after it.
    let mut from = best.map_or(from, |m| m.sequence + 1);
    while let Some(m) = next(c, s, from, to).await? {
        let st = decode_state(&m)?;
        if st.tail > pos && !m.payload.is_empty() {
            return Ok(Some(m));
        }
        from = m.sequence + 1;
        if m.sequence >= to {
            break;
        }
    }
    Ok(None)
}

/// A read of one data subject: whole records covering `[pos, end)`, at most `max` bytes (at
/// least one record); `last_seq` is the subject's last stream sequence and `hint` a stream
/// sequence at or before the message holding `pos`, when known.
#[derive(Clone, Copy, Debug)]
pub struct Span {
    pub pos: u64,
    pub end: u64,
    pub last_seq: u64,
    pub max: usize,
    pub hint: Option<u64>,
}

/// Reads `span` of `s` into `out`, taking messages from `ahead` (fetched earlier, in order, none
/// past `last_seq`) before asking the cluster. Returns the position reached and a hint for
/// continuing.
pub async fn read(c: &Cluster, s: &Subject, span: Span, ahead: &mut Ahead, out: &mut Vec<u8>) -> Result<(u64, u64), EngineError> {
    let Span {
        pos,
        end,
        last_seq,
        max,
        hint,
    } = span;
    // What is still wanted, for sizing batches.
    let wanted = |have: usize, at: u64| max.saturating_sub(have).min((end - at) as usize) + 1024;
    let first = match hint {
        Some(h) => {
            // The hinted message and the ones after it come in one batch.
            let mut from = h;
            let mut found = None;
            while let Some(m) = next_ahead(c, s, ahead, from, last_seq, wanted(0, pos)).await? {
                let st = decode_state(&m)?;
                if start_of(&m, &st) > pos {
                    break; // the hint was past pos: search instead
                }
                if st.tail > pos && !m.payload.is_empty() {
                    found = Some(m);
                    break;
                }
                from = m.sequence + 1;
                if m.sequence >= last_seq {
                    break;
                }
            }
            match found {
                Some(m) => Some(m),
                None => {
                    ahead.clear();
                    locate(c, s, pos, 1, last_seq).await?
                }
            }
        }
        None => locate(c, s, pos, 1, last_seq).await?,
    };
    let Some(mut m) = first else {
        return Err(EngineError::new(
            ErrorCode::CORRUPT,
            format!("no message holds byte {pos} of {} (tail {end})", s.subject),
        ));
    };
    let kept = first_byte(&m)?;
    if kept > pos {
        // Retention purged `pos` (another host trimmed since this one read the start).
        return Err(EngineError::trimmed(pos, kept));
    }
    let mut at = pos;
    let mut relocated = false;
    loop {
        let st = decode_state(&m)?;
        let start = start_of(&m, &st);
        if start > at {
            // A message before this one is missing (a reply of a batch read lost on the way, as
            // a slow subscriber's can be): ask the leader for the one holding `at`, once.
            ahead.clear();
            let found = if relocated { None } else { locate(c, s, at, 1, last_seq).await? };
            relocated = true;
            match found {
                Some(f) if first_byte(&f)? <= at => {
                    m = f;
                    continue;
                }
                _ if !out.is_empty() => return Ok((at, m.sequence)),
                _ => return Err(unavailable(format!("byte {at} of {} could not be read in order; retry", s.subject))),
            }
        }
        let stop = st.tail.min(end);
        if stop > at {
            let take = (stop - at) as usize;
            if !out.is_empty() && out.len() + take > max {
                return Ok((at, m.sequence));
            }
            let from = (at - start) as usize;
            out.extend_from_slice(&m.payload[from..from + take]);
            at = stop;
        }
        if at >= end || out.len() >= max || m.sequence >= last_seq {
            return Ok((at, m.sequence + 1));
        }
        // Following messages come in batches of about what is still wanted.
        match next_ahead(c, s, ahead, m.sequence + 1, last_seq, wanted(out.len(), at)).await? {
            Some(n) if n.sequence <= last_seq => m = n,
            _ => return Ok((at, m.sequence + 1)),
        }
    }
}

/// Removes the subject's messages below stream sequence `seq` (retention).
pub async fn purge_below(c: &Cluster, s: &Subject, seq: u64) -> Result<u64, EngineError> {
    let st = handle(c, &s.stream).await?;
    st.purge()
        .filter(&s.subject)
        .sequence(seq)
        .await
        .map(|r| r.purged)
        .map_err(|e| unavailable(format!("purge {} below {seq}: {e}", s.subject)))
}

/// Removes every message of the subject (the stream was deleted for good).
pub async fn purge(c: &Cluster, s: &Subject) -> Result<(), EngineError> {
    let st = handle(c, &s.stream).await?;
    st.purge()
        .filter(&s.subject)
        .await
        .map(|_| ())
        .map_err(|e| unavailable(format!("purge {}: {e}", s.subject)))
}

#[cfg(test)]
#[path = "data_tests.rs"]
mod tests;
