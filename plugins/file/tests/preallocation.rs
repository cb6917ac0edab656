//! Zeros written ahead of file-durable's tail: small synced writes go over preallocated blocks;
//! a sealed segment never ends in zeros; a crash's zeros are cut at open without a torn-tail
//! report and no byte is lost; a clean shutdown leaves no zeros; large writes grow the file as
//! they go.

use std::path::{Path, PathBuf};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RSlice, RStr};

use ds_plugin_file::{open_mode, Durability, FileOptions};
use durable_streams_core::abi::*;
use durable_streams_engine_tests::{read_all, Append, Create, NOW};

const SEGMENT: u64 = 64 << 10;

fn fresh_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ds-file-prealloc-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn open(dir: &Path, segment_bytes: u64) -> EngineBox {
    let opts = FileOptions {
        segment_bytes,
        compact_interval_ms: 0,
        ..FileOptions::new(Durability::Synced)
    };
    EngineBox::from_value(open_mode(dir.to_path_buf(), &opts).expect("open"), TD_Opaque)
}

/// Each segment file's name and length, in log order.
fn segments(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir.join("file"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("seg-"))
        .map(|n| {
            let bytes = std::fs::read(dir.join("file").join(&n)).unwrap();
            (n, bytes)
        })
        .collect();
    v.sort();
    v
}

fn ends_in_zeros(bytes: &[u8]) -> bool {
    bytes.last() == Some(&0)
}

fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to.join("file")).unwrap();
    for entry in std::fs::read_dir(from.join("file")).unwrap().flatten() {
        std::fs::copy(entry.path(), to.join("file").join(entry.file_name())).unwrap();
    }
}

fn recovery(e: &EngineBox) -> serde_json::Value {
    let out = e
        .extension(RStr::from("recovery"), RSlice::from(&b""[..]))
        .into_result()
        .expect("recovery extension");
    serde_json::from_slice(out.as_slice()).unwrap()
}

#[test]
fn small_synced_writes_go_over_zeros_that_never_outlive_the_tail() {
    let dir = fresh_dir("small");
    let e = open(&dir, SEGMENT);
    Create::new("s").run(&e).into_result().unwrap();
    let mut want = Vec::new();
    for i in 0..10u32 {
        let body = format!("message-{i:04}|");
        Append::new("s", body.as_bytes()).run(&e).into_result().unwrap();
        want.extend_from_slice(body.as_bytes());
    }
    let segs = segments(&dir);
    assert_eq!(segs.len(), 1);
    assert_eq!(segs[0].1.len() as u64, SEGMENT, "the active segment is preallocated to its size");
    assert!(ends_in_zeros(&segs[0].1));

    // A crash now (a copy of the files as they are): the zeros are cut, not reported as torn.
    let crashed = fresh_dir("small-crashed");
    copy_dir(&dir, &crashed);
    {
        let c = open(&crashed, SEGMENT);
        assert_eq!(read_all(&c, "s", 0, 1 << 20, NOW).unwrap(), want);
        assert!(recovery(&c)["cut_tail"].is_null(), "{}", recovery(&c));
        Append::new("s", b"after").run(&c).into_result().unwrap();
        assert_eq!(read_all(&c, "s", 0, 1 << 20, NOW).unwrap(), [&want[..], b"after"].concat());
    }

    // Enough to seal several segments: none of them ends in zeros, and all of it reopens.
    let body = vec![b'x'; 3000];
    for _ in 0..100 {
        Append::new("s", &body).run(&e).into_result().unwrap();
        want.extend_from_slice(&body);
    }
    let segs = segments(&dir);
    assert!(segs.len() >= 4, "{} segments", segs.len());
    for (name, bytes) in &segs[..segs.len() - 1] {
        assert!(!ends_in_zeros(bytes), "sealed {name} ends in zeros");
    }
    let copy = fresh_dir("small-copy");
    copy_dir(&dir, &copy);
    assert_eq!(read_all(&open(&copy, SEGMENT), "s", 0, 1 << 22, NOW).unwrap(), want);

    // A clean shutdown leaves no zeros behind.
    e.shutdown().into_result().unwrap();
    drop(e);
    let segs = segments(&dir);
    assert!(!ends_in_zeros(&segs[segs.len() - 1].1));
    assert_eq!(read_all(&open(&dir, SEGMENT), "s", 0, 1 << 22, NOW).unwrap(), want);
    for d in [&dir, &crashed, &copy] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn large_synced_writes_grow_the_file_as_they_go() {
    let dir = fresh_dir("large");
    let e = open(&dir, 64 << 20);
    Create::new("s").run(&e).into_result().unwrap();
    let body = vec![b'y'; 128 << 10];
    // The first writes may still be preallocated for (the average starts low); later ones not.
    for _ in 0..40 {
        Append::new("s", &body).run(&e).into_result().unwrap();
    }
    let segs = segments(&dir);
    assert_eq!(segs.len(), 1);
    assert!(!ends_in_zeros(&segs[0].1), "large writes are not preallocated for");
    drop(e);
    let _ = std::fs::remove_dir_all(&dir);
}
