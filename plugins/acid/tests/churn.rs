//! Space under churn: streams created with data and then deleted, round after round. The acid
//! engine deletes a removed stream's rows in the same transaction and redb reuses the freed
//! pages, so the shard files level off instead of growing with everything ever written; the
//! running engine compacts files that are mostly free and gives the space back.

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RSlice, RStr};
use ds_plugin_acid::{open_engine_with, AcidOptions};
use durable_streams_core::abi::*;
use durable_streams_engine_tests::{delete, Append, Create};

fn shard_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir.join("acid"))
        .unwrap()
        .flatten()
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

/// The acid engine on `shards` files in `dir`, checked for compaction every `interval` seconds.
fn open_files(dir: &std::path::Path, shards: usize, interval: u64) -> EngineBox {
    let opts = AcidOptions {
        data_dir: dir.to_path_buf(),
        backend: "file",
        shard_count: shards,
        limits: Default::default(),
        open_existing: false,
        compact_interval_secs: interval,
        access_slack_ms: 60_000,
        quick_repair: false,
    };
    EngineBox::from_value(open_engine_with(&opts).expect("open"), TD_Opaque)
}

#[test]
fn shard_files_level_off_under_churn() {
    let dir = std::env::temp_dir().join(format!("ds-acid-churn-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let open = || open_files(&dir, 2, 1);
    let e = open();
    let chunk = vec![7u8; 64 << 10];
    let (streams, appends) = (8, 8);
    let live = (streams * appends * chunk.len()) as u64;
    let mut sizes = Vec::new();
    for round in 0..12 {
        let names: Vec<String> = (0..streams).map(|i| format!("churn-{round}-{i}")).collect();
        for name in &names {
            assert!(Create::new(name).run(&e).is_ok());
            for _ in 0..appends {
                assert!(Append::new(name, &chunk).run(&e).is_ok());
            }
        }
        for name in &names {
            assert!(delete(&e, name, 1).is_ok());
        }
        sizes.push(shard_bytes(&dir));
    }
    let written = 12 * live;
    let last = *sizes.last().unwrap();
    // Bound: twice the most ever live at once, plus a fixed allowance for redb's own pages.
    let bound = 2 * live + (8 << 20);
    assert!(
        last <= bound,
        "shard files grew to {last} bytes after writing {written} (live at most {live}); sizes per round: {sizes:?}"
    );
    // And stopped growing: the last rounds reach no higher than the first half did (a running
    // compaction may shrink the files at any round, so the peak is what is compared).
    let early_peak = *sizes[..6].iter().max().unwrap();
    assert!(
        sizes[6..].iter().all(|&s| s <= early_peak + (2 << 20)),
        "shard files keep growing under churn: {sizes:?}"
    );
    // With every stream gone the files are mostly free: the running engine compacts them and
    // the space goes back to the filesystem, and its figures say how much.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    // (Files under 4 MiB are left alone: two shards may end anywhere below 8 MiB.)
    let goal = (last / 2).max(8 << 20);
    while shard_bytes(&dir) >= goal {
        assert!(
            std::time::Instant::now() < deadline,
            "no compaction while running: {} bytes",
            shard_bytes(&dir)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let compacted = shard_bytes(&dir);
    let stats = || {
        let out = e
            .extension(RStr::from(ext::STATS), RSlice::from(&b""[..]))
            .into_result()
            .expect("stats");
        serde_json::from_slice::<serde_json::Value>(out.as_slice()).unwrap()
    };
    let v = stats();
    assert!(
        v["compactions"].as_u64().unwrap_or(0) > 0 && v["compacted_bytes"].as_u64().unwrap_or(0) > 0,
        "{v}"
    );
    // The free-page figure is set when a compaction ends, just after the file shrinks: it
    // settles below the files' size.
    let mut v = v;
    while v["dead_bytes"].as_u64().is_none_or(|d| d >= shard_bytes(&dir)) {
        assert!(std::time::Instant::now() < deadline, "free pages are reported: {v}");
        std::thread::sleep(std::time::Duration::from_millis(50));
        v = stats();
    }
    // Still usable, and the same after a reopen.
    assert!(Create::new("after").run(&e).is_ok());
    assert!(Append::new("after", b"x").run(&e).is_ok());
    drop(e);
    let e = open();
    assert_eq!(durable_streams_engine_tests::read_all(&e, "after", 0, 1 << 20, 1).unwrap(), b"x");
    println!(
        "churn: {} rounds, shard files per round {sizes:?}; compacted while running: {last} -> {compacted} bytes",
        sizes.len()
    );
    drop(e);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The bytes a delete frees are counted durably: a server stopped before its running check
/// still gives the space back when it opens again, while a file with nothing deleted is not
/// walked at open (its free-page figure stays unknown until something is deleted).
#[test]
fn deleted_bytes_are_remembered_across_a_restart() {
    let dir = std::env::temp_dir().join(format!("ds-acid-dropped-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let open = || open_files(&dir, 1, 0);
    let stats = |e: &EngineBox| {
        let out = e
            .extension(RStr::from(ext::STATS), RSlice::from(&b""[..]))
            .into_result()
            .expect("stats");
        serde_json::from_slice::<serde_json::Value>(out.as_slice()).unwrap()
    };
    let chunk = vec![3u8; 256 << 10];
    let e = open();
    // "kept" last: the pages freed are not at the end of the file (which redb shortens itself).
    for name in ["gone", "gone too", "kept"] {
        assert!(Create::new(name).run(&e).is_ok());
        for _ in 0..24 {
            assert!(Append::new(name, &chunk).run(&e).is_ok());
        }
    }
    drop(e);
    // Nothing deleted yet: opening does not check the 18 MiB file.
    let e = open();
    assert_eq!(stats(&e)["compacted_bytes"].as_u64(), Some(0), "{}", stats(&e));
    assert!(delete(&e, "gone", 1).is_ok());
    assert!(delete(&e, "gone too", 1).is_ok());
    let before = shard_bytes(&dir);
    drop(e);
    // Two thirds of the data were deleted, then the server stopped: the reopen checks and
    // compacts.
    let e = open();
    let v = stats(&e);
    assert!(v["compacted_bytes"].as_u64().unwrap_or(0) > 0, "{v}");
    assert!(shard_bytes(&dir) < before, "{} >= {before}", shard_bytes(&dir));
    assert_eq!(
        durable_streams_engine_tests::read_all(&e, "kept", 0, 64 << 20, 1).unwrap().len(),
        24 * chunk.len()
    );
    drop(e);
    let _ = std::fs::remove_dir_all(&dir);
}
