//! A trim that stopped after its catalogue write (the host killed between that write and the
//! purge) is finished by the next trim: the messages below the start are purged and the start
//! is marked in the data. On a real three-node cluster.

use abi_stable::std_types::{RResult, RSlice, RStr};
use durable_streams_core::abi::*;
use durable_streams_core::settings::Settings;

use super::JetStreamStorage;
use crate::catalog::{self, Put, Record};
use crate::data;

fn open(urls: &str) -> JetStreamStorage {
    let config = serde_json::json!({
        "jetstream": {"urls": urls, "namespace": "rt", "shards": 1, "sweep_scan_secs": 0},
        "sources": {"jetstream.urls": "test", "jetstream.namespace": "test", "jetstream.shards": "test", "jetstream.sweep_scan_secs": "test"},
    })
    .to_string();
    let s = Settings::parse(&config, &[crate::MODE]).expect("settings");
    JetStreamStorage::open(crate::settings(&s).expect("cluster settings"), s.limits()).expect("open")
}

fn ok<T>(r: RResult<T, EngineError>, what: &str) -> T {
    match r {
        RResult::ROk(v) => v,
        RResult::RErr(e) => panic!("{what}: {e}"),
    }
}

fn trim(e: &JetStreamStorage, before: u64) -> serde_json::Value {
    let input = serde_json::json!({"name": "s", "before": before, "now_ms": 1}).to_string();
    let out = ok(e.extension(RStr::from(ext::TRIM), RSlice::from(input.as_bytes())), "trim");
    serde_json::from_slice(out.as_slice()).unwrap()
}

#[test]
fn a_trim_stopped_after_its_catalogue_write_is_finished_by_the_next() {
    let cluster = ds_nats_cluster::Cluster::start(3);
    let e = open(&cluster.urls());
    let create = CreateRequest {
        name: RStr::from("s"),
        content_type: abi_stable::std_types::ROption::RNone,
        lifetime: Lifetime::default(),
        closed: false,
        initial: RSlice::from(&b""[..]),
        fork: abi_stable::std_types::ROption::RNone,
        now_ms: 1,
    };
    ok(Engine::create(&e, &create), "create");
    for body in [&b"aaaa"[..], b"bbbb", b"cccc"] {
        let req = AppendRequest {
            name: RStr::from("s"),
            content_type: abi_stable::std_types::ROption::RSome(RStr::from("application/octet-stream")),
            body: RSlice::from(body),
            close: false,
            producer: abi_stable::std_types::ROption::RNone,
            stream_seq: abi_stable::std_types::ROption::RNone,
            now_ms: 1,
        };
        ok(Engine::append(&e, &req), "append");
    }
    // What a host killed right after the catalogue write leaves behind.
    let (rec, seq) = e.c.block(catalog::get(&e.c, "s")).unwrap().unwrap();
    let moved = Record { start: 4, ..rec.clone() };
    assert!(matches!(e.c.block(catalog::put(&e.c, &moved, seq)).unwrap(), Put::Done));
    let subj = e.subject(&moved);
    let count = |e: &JetStreamStorage| {
        let t = e.c.block(data::tail(&e.c, &subj)).unwrap();
        let first = e.c.block(data::holder(&e.c, &subj, 0, t.seq)).unwrap().unwrap();
        (t.state.start, data::first_byte(&first).unwrap())
    };
    assert_eq!(count(&e), (0, 0), "data not purged nor marked yet");
    // A fresh host reads the record: below 4 is trimmed already.
    let fresh = open(&cluster.urls());
    let read = |e: &JetStreamStorage, pos| {
        Engine::read(
            e,
            &ReadRequest {
                name: RStr::from("s"),
                start: ReadStart::At,
                position: pos,
                max_bytes: 1 << 20,
                now_ms: 1,
            },
        )
    };
    match read(&fresh, 0) {
        RResult::RErr(err) => assert_eq!((err.code, err.detail.tail), (ErrorCode::TRIMMED, 4)),
        RResult::ROk(_) => panic!("read below the catalogue's start"),
    }
    // Nothing more to drop, but the next trim finishes the first.
    let t = trim(&fresh, 2);
    assert_eq!((t["start"].as_u64(), t["dropped_bytes"].as_u64()), (Some(4), Some(0)));
    assert_eq!(count(&fresh), (4, 4), "purged below 4 and marked");
    let chunk = ok(read(&e, 4), "read from the start");
    assert_eq!(chunk.data.bytes().as_slice(), b"bbbbcccc");
    // And a further trim goes on from there.
    let t = trim(&e, 9);
    assert_eq!((t["start"].as_u64(), t["dropped_bytes"].as_u64()), (Some(8), Some(4)));
    assert_eq!(count(&e), (8, 8));
}
