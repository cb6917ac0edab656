//! Single appends to different streams run side by side in the memory engine (the catalogue
//! lets them share its mutation lock); this checks that nothing is lost, doubled or misplaced
//! while other threads append to the same streams and delete and re-create one of them.

use std::sync::Arc;

use abi_stable::sabi_trait::TD_Opaque;
use ds_plugin_memory::InMemoryStorage;
use durable_streams_core::abi::*;
use durable_streams_engine_tests::{delete, read_all, Append, Create, NOW};

fn append(e: &EngineBox, name: &str, body: &[u8]) -> Option<u64> {
    Append::new(name, body).run(e).into_result().ok().map(|o| o.tail)
}

fn read(e: &EngineBox, name: &str) -> Vec<u8> {
    read_all(e, name, 0, u64::MAX, NOW).expect("read")
}

#[test]
fn concurrent_single_appends_lose_nothing() {
    let storage = Arc::new(InMemoryStorage::new());
    let e = Arc::new(EngineBox::from_value(storage.clone(), TD_Opaque));
    for s in ["a", "b", "c", "churn"] {
        assert!(Create::new(s).run(&e).is_ok());
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
                let _ = delete(&e, "churn", NOW);
                assert!(Create::new("churn").run(&e).is_ok());
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
        let data = read(&e, stream);
        assert_eq!(data.len(), n * 4, "{stream}: every acknowledged append is stored once");
        // Each 4-byte record is one writer's, never interleaved with another's.
        for rec in data.chunks(4) {
            assert!(rec.iter().all(|b| *b == rec[0]), "{stream}: a record was torn");
        }
    }
    // The churned stream holds whole records only, and as many as its tail says.
    let data = read(&e, "churn");
    assert_eq!(data.len() % 4, 0);
    assert_eq!(
        storage.bytes_held(),
        6 * per_thread as u64 * 4 + data.len() as u64,
        "bytes held = bytes stored"
    );
    // Deleting every stream gives every byte back.
    for s in ["a", "b", "c", "churn"] {
        assert!(delete(&e, s, NOW).is_ok());
    }
    assert_eq!(storage.bytes_held(), 0, "deleted streams' bytes are released");
}
