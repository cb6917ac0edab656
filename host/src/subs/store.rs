//! Persistence of subscriptions and signing keys through the storage engine: two internal JSON
//! streams (`__ds/state/subscriptions`, `__ds/state/keys`) under the reserved prefix, appended on
//! every change (compare-and-set through `Stream-Seq`, see [`Cursor`]) and replayed at startup
//! and whenever another host may have written. Durable engines make them durable; clients cannot
//! address them (the `__ds` prefix is routed to the control API).

use std::collections::BTreeMap;

use abi_stable::std_types::{ROption, RSlice, RStr};
use durable_streams_core::abi::{CreateRequest, EngineError, ErrorCode, Lifetime, ReadRequest, ReadStart};
use durable_streams_core::json;

use super::model::Sub;
use super::signing::KeyRing;
use crate::clock::now_ms;
use crate::plugin::{OwnedAppend, Storage};

pub const SUBS_STREAM: &str = "__ds/state/subscriptions";
pub const KEYS_STREAM: &str = "__ds/state/keys";

/// A change to the subscription log.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Record {
    Put(Box<Sub>),
    Delete(String),
    /// Every subscription at once: replaces the state (the log's head before it may be gone).
    Snapshot(Vec<Sub>),
}

fn ensure(storage: &Storage, name: &str) -> Result<(), String> {
    let r = storage.call_sync(|e| {
        e.create(&CreateRequest {
            name: RStr::from(name),
            content_type: ROption::RSome(RStr::from("application/json")),
            lifetime: Lifetime::default(),
            closed: false,
            initial: RSlice::from(&b""[..]),
            fork: ROption::RNone,
            now_ms: now_ms(),
        })
    });
    match r {
        Ok(_) => Ok(()),
        Err(e) => Err(format!("cannot create {name}: {e}")),
    }
}

/// A reader's place in an internal stream: byte position and the number of records read.
/// Every change is appended with `Stream-Seq` = the position it is appended at (the tail the
/// writer saw), so a host whose view is stale cannot append (the engine answers
/// `STREAM_SEQ_REGRESSION`): the stream is a compare-and-set log that any number of hosts share,
/// and its head can be dropped (after a `Snapshot` record) without renumbering anything.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    pub pos: u64,
    pub count: u64,
}

impl Cursor {
    /// The `Stream-Seq` of the record that follows this cursor (zero-padded: it compares as a
    /// string). Logs written when it was the record count stay ordered: a position is always
    /// larger than the number of records before it.
    pub fn next_seq(&self) -> String {
        format!("{:020}", self.pos)
    }
}

/// The JSON messages of `name` after `from`, and the cursor after them.
fn read_chunk(storage: &Storage, name: &str, from: Cursor) -> Result<Option<(Vec<serde_json::Value>, Cursor, bool)>, EngineError> {
    let read = |pos: u64| {
        storage.call_sync(|e| {
            e.read(&ReadRequest {
                name: RStr::from(name),
                start: ReadStart::At,
                position: pos,
                max_bytes: 4 << 20,
                now_ms: now_ms(),
            })
        })
    };
    let (chunk, from) = match read(from.pos) {
        Ok(c) => (c, from),
        // Compacted: the retained log starts with a snapshot of everything before it.
        Err(e) if e.code == ErrorCode::TRIMMED => {
            let at = Cursor {
                pos: e.detail.tail,
                count: from.count,
            };
            (read(at.pos)?, at)
        }
        Err(e) if e.code == ErrorCode::NOT_FOUND => return Ok(None),
        Err(e) => return Err(e),
    };
    let data = chunk.data.bytes();
    let bytes = data.as_slice();
    let mut out = Vec::new();
    let mut start = 0;
    for end in json::message_ends(bytes) {
        let v = serde_json::from_slice(&bytes[start..end - 1])
            .map_err(|e| EngineError::new(ErrorCode::CORRUPT, format!("{name}: damaged record: {e}")))?;
        out.push(v);
        start = end;
    }
    let to = Cursor {
        pos: chunk.next,
        count: from.count + out.len() as u64,
    };
    Ok(Some((out, to, chunk.next >= chunk.meta.tail)))
}

/// Every JSON message of `name` after `from`, in order, and the cursor after the last.
pub fn read_from(storage: &Storage, name: &str, from: Cursor) -> Result<(Vec<serde_json::Value>, Cursor), EngineError> {
    let mut out = Vec::new();
    let mut at = from;
    while let Some((mut values, to, done)) = read_chunk(storage, name, at)? {
        out.append(&mut values);
        at = to;
        if done {
            break;
        }
    }
    Ok((out, at))
}

/// `read_from` off the async threads (on the blocking pool for blocking engines).
pub async fn read_from_async(storage: &Storage, name: &'static str, from: Cursor) -> Result<(Vec<serde_json::Value>, Cursor), EngineError> {
    if storage
        .capabilities()
        .contains(durable_streams_core::abi::Capabilities::BLOCKING_IO)
    {
        let s = storage.clone();
        tokio::task::spawn_blocking(move || read_from(&s, name, from))
            .await
            .map_err(|e| EngineError::new(ErrorCode::INTERNAL, format!("state read failed: {e}")))?
    } else {
        read_from(storage, name, from)
    }
}

/// What `load` found.
pub struct Loaded {
    pub subs: BTreeMap<String, Sub>,
    pub log: Cursor,
    pub ring: Option<KeyRing>,
    pub keys_log: Cursor,
}

/// Decodes one subscription record.
pub fn parse(v: serde_json::Value) -> Result<Record, EngineError> {
    serde_json::from_value::<Record>(v).map_err(|e| EngineError::new(ErrorCode::CORRUPT, format!("{SUBS_STREAM}: {e}")))
}

/// The last key ring among `values`.
pub fn last_ring(values: Vec<serde_json::Value>) -> Result<Option<KeyRing>, EngineError> {
    values
        .into_iter()
        .next_back()
        .map(serde_json::from_value::<KeyRing>)
        .transpose()
        .map_err(|e| EngineError::new(ErrorCode::CORRUPT, format!("{KEYS_STREAM}: {e}")))
}

/// Loads subscriptions and keys (creating the internal streams if absent).
pub fn load(storage: &Storage) -> Result<Loaded, String> {
    ensure(storage, SUBS_STREAM)?;
    ensure(storage, KEYS_STREAM)?;
    let mut subs = BTreeMap::new();
    let (values, log) = read_from(storage, SUBS_STREAM, Cursor::default()).map_err(|e| format!("cannot read {SUBS_STREAM}: {e}"))?;
    for v in values {
        match parse(v).map_err(|e| e.to_string())? {
            Record::Put(s) => {
                subs.insert(s.id.clone(), *s);
            }
            Record::Delete(id) => {
                subs.remove(&id);
            }
            Record::Snapshot(all) => {
                subs = all.into_iter().map(|s| (s.id.clone(), s)).collect();
            }
        }
    }
    let (values, keys_log) = read_from(storage, KEYS_STREAM, Cursor::default()).map_err(|e| format!("cannot read {KEYS_STREAM}: {e}"))?;
    let ring = last_ring(values).map_err(|e| e.to_string())?;
    Ok(Loaded { subs, log, ring, keys_log })
}

/// Where the retained part of an internal stream starts (after a compaction, its snapshot).
pub fn earliest(storage: &Storage, name: &str) -> u64 {
    let r = storage.call_sync(|e| {
        e.read(&ReadRequest {
            name: RStr::from(name),
            start: ReadStart::At,
            position: 0,
            max_bytes: 1,
            now_ms: now_ms(),
        })
    });
    match r {
        Err(e) if e.code == ErrorCode::TRIMMED => e.detail.tail,
        _ => 0,
    }
}

/// Appends `rec` to the subscription log after whatever it holds (offline tools: the running
/// service records its changes with `Subscriptions::mutate`).
pub fn append_record(storage: &Storage, rec: &Record) -> Result<(), EngineError> {
    ensure(storage, SUBS_STREAM).map_err(|e| EngineError::new(ErrorCode::IO, e))?;
    for _ in 0..16 {
        let (_, at) = read_from(storage, SUBS_STREAM, Cursor::default())?;
        match storage.call_sync(|e| e.append(&record(SUBS_STREAM, rec, at).as_request())) {
            Ok(_) => return Ok(()),
            Err(e) if e.code == ErrorCode::STREAM_SEQ_REGRESSION => continue,
            Err(e) => return Err(e),
        }
    }
    Err(EngineError::new(
        ErrorCode::UNAVAILABLE,
        "the subscription log changed too often to record this change; retry",
    ))
}

/// The append that records `value` in an internal stream as the record after `at`.
pub fn record(stream: &str, value: &impl serde::Serialize, at: Cursor) -> OwnedAppend {
    let mut body = serde_json::to_vec(value).unwrap_or_default();
    body.push(b',');
    OwnedAppend {
        name: stream.to_string(),
        content_type: Some("application/json".into()),
        body: body.into(),
        close: false,
        producer: None,
        stream_seq: Some(at.next_seq()),
        now_ms: now_ms(),
    }
}
