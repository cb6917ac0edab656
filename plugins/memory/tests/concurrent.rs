//! Single appends to different streams run side by side in the memory engine (the catalogue
//! lets them share its mutation lock); this checks that nothing is lost, doubled or misplaced
//! while other threads append to the same streams and delete and re-create one of them.

use std::sync::Arc;

use abi_stable::std_types::{RNone, ROption, RSlice, RStr};
use ds_plugin_memory::InMemoryStorage;
use durable_streams_core::abi::*;

fn create(e: &InMemoryStorage, name: &str) {
    let r = e.create(&CreateRequest {
        name: RStr::from(name),
        content_type: ROption::RSome(RStr::from("application/octet-stream")),
        lifetime: Lifetime::default(),
        closed: false,
        initial: RSlice::from(&b""[..]),
        fork: RNone,
        now_ms: 1,
    });
    assert!(r.is_ok(), "create {name}");
}

fn append(e: &InMemoryStorage, name: &str, body: &[u8]) -> Option<u64> {
    e.append(&AppendRequest {
        name: RStr::from(name),
        content_type: RNone,
        body: RSlice::from(body),
        close: false,
        producer: RNone,
        stream_seq: RNone,
        now_ms: 1,
    })
    .into_result()
    .ok()
    .map(|o| o.tail)
}

fn read_all(e: &InMemoryStorage, name: &str) -> Vec<u8> {
    let c = e
        .read(&ReadRequest {
            name: RStr::from(name),
            start: ReadStart::At,
            position: 0,
            max_bytes: u64::MAX,
            now_ms: 1,
        })
        .into_result()
        .expect("read");
    c.data.bytes().as_slice().to_vec()
}

#[test]
fn concurrent_single_appends_lose_nothing() {
    let e = Arc::new(InMemoryStorage::new());
    for s in ["a", "b", "c", "churn"] {
        create(&e, s);
    }
    let per_thread = 2000;
    let writers: Vec<_> = (0..6u8)
        .map(|t| {
            let e = e.clone();
            std::thread::spawn(move || {
                let stream = ["a", "b", "c"][t as usize % 3];
                let mut tails = Vec::new();
                for _ in 0..per_thread {
                    tails.push(append(&e, stream, &[t; 4]).expect("append to a live stream"));
                    let _ = append(&e, "churn", &[t; 4]);
                }
                (stream, tails)
            })
        })
        .collect();
    let churner = {
        let e = e.clone();
        std::thread::spawn(move || {
            for _ in 0..200 {
                let _ = e.delete(&DeleteRequest {
                    name: RStr::from("churn"),
                    now_ms: 1,
                    only_if_expired: false,
                });
                create(&e, "churn");
            }
        })
    };
    let mut acked: std::collections::HashMap<&str, Vec<u64>> = Default::default();
    for w in writers {
        let (stream, tails) = w.join().unwrap();
        acked.entry(stream).or_default().extend(tails);
    }
    churner.join().unwrap();
    for (stream, mut tails) in acked {
        tails.sort_unstable();
        let n = tails.len();
        tails.dedup();
        assert_eq!(tails.len(), n, "{stream}: two appends were given one tail");
        let data = read_all(&e, stream);
        assert_eq!(data.len(), n * 4, "{stream}: every acknowledged append is stored once");
        // Each 4-byte record is one writer's, never interleaved with another's.
        for rec in data.chunks(4) {
            assert!(rec.iter().all(|b| *b == rec[0]), "{stream}: a record was torn");
        }
    }
    // The churned stream holds whole records only, and as many as its tail says.
    let data = read_all(&e, "churn");
    assert_eq!(data.len() % 4, 0);
    assert_eq!(
        e.bytes_held(),
        6 * per_thread as u64 * 4 + data.len() as u64,
        "bytes held = bytes stored"
    );
    // Deleting every stream gives every byte back.
    for s in ["a", "b", "c", "churn"] {
        let r = e.delete(&DeleteRequest {
            name: RStr::from(s),
            now_ms: 1,
            only_if_expired: false,
        });
        assert!(r.is_ok());
    }
    assert_eq!(e.bytes_held(), 0, "deleted streams' bytes are released");
}
