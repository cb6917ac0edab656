//! The stream catalogue: one record per stream name in the catalogue stream (last value per
//! subject), changed only by compare-and-set on the subject's last sequence, so hosts racing to
//! create, fork or delete the same name serialize in the cluster. Knows no data subject.

use std::time::Duration;

use async_nats::jetstream::consumer;
use async_nats::jetstream::message::PublishMessage as Publish;
use async_nats::jetstream::message::StreamMessage;
use durable_streams_core::abi::{EngineError, ErrorCode, Lifetime};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cluster::{unavailable, Cluster};

/// The name a catalogue record is for, in its headers and its republished change.
pub const NAME_HEADER: &str = "DS-Name";
/// "1" when a catalogue record is a live stream, in its headers and its republished change.
pub const LIVE_HEADER: &str = "DS-Live";

/// A stream name's catalogue subject token: 32 hex digits of its SHA-256.
pub fn hash_of(name: &str) -> String {
    let d = Sha256::digest(name.as_bytes());
    d[..16].iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Live,
    /// Deleted while forks still read it: kept for them, `GONE` to everyone else.
    SoftDeleted,
    /// A tombstone: the name is free.
    Deleted,
}

/// Where a fork's inherited bytes live.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForkRef {
    pub source: String,
    pub source_gen: u64,
    pub source_shard: u32,
    pub position: u64,
    /// The source's own fork, when the source is itself a fork (reads follow the chain).
    pub source_base: u64,
}

/// A fork registered on its source: what of the source it may still read (retention keeps it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub name: String,
    pub gen: u64,
    /// The fork's position in the source.
    pub position: u64,
    /// Where the fork started to be readable when it was registered (its current start is in
    /// its own record once that exists).
    pub start: u64,
}

/// One stream name's catalogue record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub name: String,
    pub state: State,
    /// The incarnation: a fresh random number at every create.
    pub gen: u64,
    pub shard: u32,
    pub content_type: String,
    pub ttl_secs: Option<u64>,
    pub expires_at_ms: Option<u64>,
    /// Last access written to the cluster (sliding TTL), in ms.
    pub access_ms: u64,
    pub fork: Option<ForkRef>,
    /// Live or soft-deleted forks naming this stream as their source.
    pub forks: u32,
    /// The earliest retained position (retention moved it up; 0 for records written before it
    /// existed). Written here before any byte below it is purged.
    #[serde(default)]
    pub start: u64,
    /// The forks counted in `forks`, each with what it may read (records written before holds
    /// existed count forks without them: their source is then never trimmed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holds: Vec<Hold>,
}

impl Record {
    pub fn lifetime(&self) -> Lifetime {
        Lifetime {
            ttl_secs: self.ttl_secs.into(),
            expires_at_ms: self.expires_at_ms.into(),
        }
    }
    /// The first byte position of this incarnation's own data (a fork's position, else 0).
    pub fn base(&self) -> u64 {
        self.fork.as_ref().map_or(0, |f| f.position)
    }
}

/// A record and the sequence to compare-and-set against.
pub type Versioned = (Record, u64);

/// The outcome of a compare-and-set.
pub enum Put {
    Done,
    /// Someone else changed the record first.
    Conflict,
}

fn corrupt(subject: &str, e: impl std::fmt::Display) -> EngineError {
    EngineError::new(ErrorCode::CORRUPT, format!("undecodable catalogue record on {subject}: {e}"))
}

/// The last message on a subject of the catalogue stream, if any (a leader read: it sees
/// every acknowledged write).
pub async fn last_on(c: &Cluster, subject: &str) -> Result<Option<StreamMessage>, EngineError> {
    let stream =
        c.js.get_stream_no_info(c.catalog_stream())
            .await
            .map_err(|e| unavailable(format!("catalogue stream: {e}")))?;
    match stream.get_last_raw_message_by_subject(subject).await {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == async_nats::jetstream::stream::LastRawMessageErrorKind::NoMessageFound => Ok(None),
        Err(e) => Err(unavailable(format!("read {subject}: {e}"))),
    }
}

/// The current record of `name` (leader read: read-after-write).
pub async fn get(c: &Cluster, name: &str) -> Result<Option<Versioned>, EngineError> {
    let subject = c.catalog_subject(&hash_of(name));
    let Some(m) = last_on(c, &subject).await? else { return Ok(None) };
    let rec: Record = serde_json::from_slice(&m.payload).map_err(|e| corrupt(&subject, e))?;
    if rec.name != name {
        return Err(EngineError::new(
            ErrorCode::INTERNAL,
            format!("catalogue hash collision between '{name}' and '{}'", rec.name),
        ));
    }
    Ok(Some((rec, m.sequence)))
}

/// Writes `rec` if the subject's last sequence is still `expected` (0: never written).
/// A lost acknowledgement is retried with the same message id, so it cannot apply twice.
pub async fn put(c: &Cluster, rec: &Record, expected: u64) -> Result<Put, EngineError> {
    let subject = c.catalog_subject(&hash_of(&rec.name));
    let payload = serde_json::to_vec(rec).map_err(|e| EngineError::new(ErrorCode::INTERNAL, e.to_string()))?;
    let id = format!("cat.{}.{expected}.{:016x}", hash_of(&rec.name), rand::random::<u64>());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let msg = Publish::build()
            .payload(payload.clone().into())
            .message_id(&id)
            .expected_last_subject_sequence(expected)
            // For the hosts' name indexes (the change is republished with these).
            .header(NAME_HEADER, rec.name.as_str())
            .header(LIVE_HEADER, if rec.state == State::Live { "1" } else { "0" });
        let attempt = async {
            let ack = c.js.send_publish(subject.clone(), msg).await?;
            ack.await
        };
        match attempt.await {
            Ok(ack) => {
                c.names.note(&rec.name, ack.sequence, rec.state == State::Live);
                return Ok(Put::Done);
            }
            Err(e) => {
                use async_nats::jetstream::context::PublishErrorKind as K;
                match e.kind() {
                    K::WrongLastSequence => return Ok(Put::Conflict),
                    _ if std::time::Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(250)).await,
                    _ => return Err(unavailable(format!("write catalogue: {e}; the outcome is unknown"))),
                }
            }
        }
    }
}

/// Calls `each` with every record (last value of every catalogue subject), in no particular
/// order, holding none of them: memory stays flat however many streams the cluster has.
pub async fn scan(c: &Cluster, mut each: impl FnMut(Record, u64)) -> Result<(), EngineError> {
    let stream =
        c.js.get_stream(c.catalog_stream())
            .await
            .map_err(|e| unavailable(format!("catalogue stream: {e}")))?;
    let cfg = consumer::pull::OrderedConfig {
        // One token after `cat`: stream records only (registers live at `cat.reg.<hash>`).
        filter_subject: format!("{}.cat.*", c.cfg.namespace),
        deliver_policy: consumer::DeliverPolicy::LastPerSubject,
        ..Default::default()
    };
    let consumer = stream
        .create_consumer(cfg)
        .await
        .map_err(|e| unavailable(format!("catalogue scan: {e}")))?;
    if consumer.cached_info().num_pending == 0 {
        return Ok(());
    }
    let mut messages = consumer.messages().await.map_err(|e| unavailable(format!("catalogue scan: {e}")))?;
    while let Some(m) = tokio::time::timeout(c.timeout(), messages.next())
        .await
        .map_err(|_| unavailable("catalogue scan timed out"))?
    {
        let m = m.map_err(|e| unavailable(format!("catalogue scan: {e}")))?;
        let rec: Record = serde_json::from_slice(&m.payload).map_err(|e| corrupt(&m.subject, e))?;
        let info = m.info().map_err(|e| unavailable(format!("catalogue scan: {e}")))?;
        let (seq, left) = (info.stream_sequence, info.pending);
        each(rec, seq);
        if left == 0 {
            break;
        }
    }
    Ok(())
}
