//! Persistence of subscriptions and signing keys through the storage engine: two internal JSON
//! streams (`__ds/state/subscriptions`, `__ds/state/keys`) under the reserved prefix, appended on
//! every change and replayed at startup. Durable engines make them durable; clients cannot
//! address them (the `__ds` prefix is routed to the control API).

use std::collections::BTreeMap;

use abi_stable::std_types::{ROption, RSlice, RStr};
use durable_streams_core::abi::{CreateRequest, ErrorCode, Lifetime, ReadRequest, ReadStart};
use durable_streams_core::json;

use super::model::Sub;
use super::signing::KeyRing;
use crate::plugin::{OwnedAppend, Storage};
use crate::state::now_ms;

pub const SUBS_STREAM: &str = "__ds/state/subscriptions";
pub const KEYS_STREAM: &str = "__ds/state/keys";

/// A change to the subscription log.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Record {
    Put(Box<Sub>),
    Delete(String),
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

/// Every JSON message of an internal stream, in order.
fn read_all(storage: &Storage, name: &str) -> Result<Vec<serde_json::Value>, String> {
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        let chunk = match storage.call_sync(|e| {
            e.read(&ReadRequest {
                name: RStr::from(name),
                start: ReadStart::At,
                position: pos,
                max_bytes: 4 << 20,
                now_ms: now_ms(),
            })
        }) {
            Ok(c) => c,
            Err(e) if e.code == ErrorCode::NOT_FOUND => return Ok(out),
            Err(e) => return Err(format!("cannot read {name}: {e}")),
        };
        let data = chunk.data.bytes();
        let bytes = data.as_slice();
        let mut start = 0;
        for end in json::message_ends(bytes) {
            let v = serde_json::from_slice(&bytes[start..end - 1]).map_err(|e| format!("{name}: damaged record: {e}"))?;
            out.push(v);
            start = end;
        }
        pos = chunk.next;
        if chunk.next >= chunk.meta.tail {
            return Ok(out);
        }
    }
}

/// Loads subscriptions and keys (creating the internal streams and a first key if absent).
pub fn load(storage: &Storage) -> Result<(BTreeMap<String, Sub>, Option<KeyRing>), String> {
    ensure(storage, SUBS_STREAM)?;
    ensure(storage, KEYS_STREAM)?;
    let mut subs = BTreeMap::new();
    for v in read_all(storage, SUBS_STREAM)? {
        match serde_json::from_value::<Record>(v).map_err(|e| format!("{SUBS_STREAM}: {e}"))? {
            Record::Put(s) => {
                subs.insert(s.id.clone(), *s);
            }
            Record::Delete(id) => {
                subs.remove(&id);
            }
        }
    }
    let ring = read_all(storage, KEYS_STREAM)?
        .pop()
        .map(serde_json::from_value::<KeyRing>)
        .transpose()
        .map_err(|e| format!("{KEYS_STREAM}: {e}"))?;
    Ok((subs, ring))
}

/// The append that records `value` in an internal stream.
pub fn record(stream: &str, value: &impl serde::Serialize) -> OwnedAppend {
    let mut body = serde_json::to_vec(value).unwrap_or_default();
    body.push(b',');
    OwnedAppend {
        name: stream.to_string(),
        content_type: Some("application/json".into()),
        body: body.into(),
        close: false,
        producer: None,
        stream_seq: None,
        now_ms: now_ms(),
    }
}
