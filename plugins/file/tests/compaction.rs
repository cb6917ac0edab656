//! Log compaction in the file engines: a random workload of creates, appends (some through a
//! producer), forks and deletes on tiny segments, compacted and reopened again and again, is
//! checked against a model (every live stream byte for byte, deleted ones gone, producers still
//! recognising retries); disk use stays within twice the live data plus a few segments; and the
//! states an interrupted compaction leaves on disk open to the same data.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RSlice, RStr};
use std::sync::Arc;

use ds_plugin_file::{open_mode, Durability, FileOptions, FileStorage, Policy};
use durable_streams_core::abi::*;
use durable_streams_engine_tests::{delete, read_all, Append, Create, NOW};

const SEGMENT: u64 = 16 << 10;
const POLICY: Policy = Policy { dead_percent: 50 };

fn options() -> FileOptions {
    FileOptions {
        segment_bytes: SEGMENT,
        // Compaction is run by the test, at chosen moments.
        compact_interval_ms: 0,
        ..FileOptions::new(Durability::Synced)
    }
}

fn fresh_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ds-file-compaction-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// An open engine: behind the ABI's box (what the host calls), and the storage itself for
/// running compaction. Dropped in this order: the box joins the background threads.
struct Engine {
    boxed: EngineBox,
    inner: Arc<FileStorage>,
}

fn open(dir: &Path) -> Engine {
    let engine = open_mode(dir.to_path_buf(), &options()).expect("open");
    let inner = engine.storage();
    Engine {
        boxed: EngineBox::from_value(engine, TD_Opaque),
        inner,
    }
}

fn disk_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir.join("file"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("seg-"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

fn stats(e: &EngineBox, op: &str) -> serde_json::Value {
    let out = e
        .extension(RStr::from(op), RSlice::from(&b""[..]))
        .into_result()
        .expect("extension");
    serde_json::from_slice(out.as_slice()).unwrap()
}

/// A small deterministic generator (xorshift).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// What the streams should hold.
#[derive(Default)]
struct Model {
    /// Live streams: bytes (from position 0), the producer sequence last used (if a producer
    /// wrote) and the earliest retained position.
    live: BTreeMap<String, (Vec<u8>, Option<u64>, u64)>,
    deleted: Vec<String>,
    next: u64,
}

impl Model {
    fn live_bytes(&self) -> u64 {
        self.live.values().map(|(b, _, start)| b.len() as u64 - start).sum()
    }

    fn pick(&self, rng: &mut Rng) -> Option<String> {
        if self.live.is_empty() {
            return None;
        }
        let i = rng.below(self.live.len() as u64) as usize;
        self.live.keys().nth(i).cloned()
    }

    fn step(&mut self, e: &EngineBox, rng: &mut Rng) {
        let roll = rng.below(100);
        let body: Vec<u8> = (0..1 + rng.below(1500))
            .map(|i| (i as u8).wrapping_mul(31) ^ rng.next() as u8)
            .collect();
        match roll {
            0..=24 => {
                self.next += 1;
                let name = format!("s/{}", self.next);
                let initial = if rng.below(2) == 0 { &body[..] } else { &b""[..] };
                let mut c = Create::new(&name);
                c.initial = initial;
                assert!(c.run(e).is_ok(), "create {name}");
                self.live.insert(name, (initial.to_vec(), None, 0));
            }
            25..=69 => {
                let Some(name) = self.pick(rng) else { return };
                let (data, seq, _) = self.live.get_mut(&name).unwrap();
                let mut a = Append::new(&name, &body);
                let use_producer = rng.below(3) == 0;
                if use_producer {
                    let s = seq.map_or(0, |s| s + 1);
                    a.producer = Some(("p", 0, s));
                    *seq = Some(s);
                }
                let out = a.run(e).into_result().unwrap_or_else(|err| panic!("append {name}: {err:?}"));
                assert!(!out.duplicate);
                data.extend_from_slice(&body);
            }
            70..=77 => {
                // Retention drops a head; the engine says where the stream now starts.
                let Some(name) = self.pick(rng) else { return };
                let len = self.live[&name].0.len() as u64;
                let before = rng.below(len + 1);
                let input = serde_json::json!({"name": name, "before": before, "now_ms": NOW}).to_string();
                let out = e
                    .extension(RStr::from(ext::TRIM), RSlice::from(input.as_bytes()))
                    .into_result()
                    .unwrap_or_else(|err| panic!("trim {name}: {err:?}"));
                let v: serde_json::Value = serde_json::from_slice(out.as_slice()).unwrap();
                let start = v["start"].as_u64().unwrap();
                let entry = self.live.get_mut(&name).unwrap();
                assert!(start >= entry.2 && start <= before.max(entry.2), "trim {name} before {before}: {v}");
                entry.2 = start;
            }
            78..=89 => {
                let Some(name) = self.pick(rng) else { return };
                assert!(delete(e, &name, NOW).is_ok(), "delete {name}");
                self.live.remove(&name);
                self.deleted.push(name);
            }
            _ => {
                let Some(src) = self.pick(rng) else { return };
                let (src_data, _, src_start) = self.live[&src].clone();
                let pos = rng.below(src_data.len() as u64 + 1);
                self.next += 1;
                let name = format!("f/{}", self.next);
                let mut c = Create::new(&name);
                c.fork = Some((&src, pos));
                assert!(c.run(e).is_ok(), "fork {name} of {src} at {pos}");
                self.live
                    .insert(name, (src_data[..pos as usize].to_vec(), None, src_start.min(pos)));
            }
        }
    }

    fn verify(&self, e: &EngineBox, when: &str) {
        for (name, (data, seq, start)) in &self.live {
            let got = read_all(e, name, *start, 1 << 20, NOW).unwrap_or_else(|f| panic!("{when}: read {name}: {f:?}"));
            let want = &data[*start as usize..];
            assert!(
                got == want,
                "{when}: {name} holds {} bytes from {start}, expected {}",
                got.len(),
                want.len()
            );
            if *start > 0 {
                assert!(
                    read_all(e, name, 0, 1 << 20, NOW).is_err(),
                    "{when}: {name} read below its start {start}"
                );
            }
            if let Some(s) = seq {
                // The producer's last batch, retried: recognised, nothing written.
                let mut a = Append::new(name, b"retry");
                a.producer = Some(("p", 0, *s));
                let out = a
                    .run(e)
                    .into_result()
                    .unwrap_or_else(|err| panic!("{when}: retry on {name}: {err:?}"));
                assert!(out.duplicate, "{when}: a retry on {name} after compaction must be a duplicate");
            }
        }
        for name in &self.deleted {
            let read = read_all(e, name, 0, 1 << 20, NOW);
            assert!(read.is_err(), "{when}: deleted stream {name} came back");
        }
    }
}

#[test]
fn random_churn_compacted_and_reopened_matches_the_model() {
    let dir = fresh_dir("model");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut model = Model::default();
    let mut e = open(&dir);
    let (mut runs, mut peak_ratio) = (0usize, 0f64);
    let mut curve = Vec::new();
    for round in 0..12 {
        for _ in 0..400 {
            model.step(&e.boxed, &mut rng);
        }
        runs += e.inner.compact(POLICY).expect("compact").len();
        model.verify(&e.boxed, &format!("round {round}, compacted"));
        let (disk, live) = (disk_bytes(&dir), model.live_bytes());
        // Twice the live data, plus the active segment, one being compacted, headers and the
        // records of live streams that carry no data.
        let bound = 2 * live + 4 * SEGMENT;
        assert!(disk <= bound, "round {round}: {disk} bytes on disk for {live} live (bound {bound})");
        peak_ratio = peak_ratio.max(disk as f64 / live.max(1) as f64);
        curve.push((disk, live));
        if round % 3 == 2 {
            drop(e);
            e = open(&dir);
            model.verify(&e.boxed, &format!("round {round}, reopened"));
        }
    }
    assert!(runs > 10, "compaction ran {runs} times");
    let s = stats(&e.boxed, ext::STATS);
    assert!(s["compactions"].as_u64().unwrap() > 0 || runs > 0, "{s}");
    println!("model churn: {runs} compactions; (disk, live) per round {curve:?}; worst disk/live {peak_ratio:.2}");
    drop(e);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Streams created with data and deleted, round after round: the log levels off.
#[test]
fn disk_levels_off_under_create_delete_churn() {
    let dir = fresh_dir("level");
    let e = open(&dir);
    let chunk = vec![3u8; 2000];
    let mut sizes = Vec::new();
    // One stream lives throughout (its records must survive every compaction).
    assert!(Create::new("keep").run(&e.boxed).is_ok());
    for round in 0..30 {
        for i in 0..8 {
            let name = format!("c/{round}/{i}");
            assert!(Create::new(&name).run(&e.boxed).is_ok());
            for _ in 0..4 {
                assert!(Append::new(&name, &chunk).run(&e.boxed).is_ok());
            }
            assert!(Append::new("keep", b"k").run(&e.boxed).is_ok());
            assert!(delete(&e.boxed, &name, NOW).is_ok());
        }
        e.inner.compact(POLICY).expect("compact");
        sizes.push(disk_bytes(&dir));
    }
    let written = 30 * 8 * 4 * chunk.len() as u64;
    let last = *sizes.last().unwrap();
    assert!(last <= 6 * SEGMENT, "{last} bytes on disk after writing {written}: {sizes:?}");
    assert_eq!(read_all(&e.boxed, "keep", 0, 1 << 20, NOW).unwrap(), vec![b'k'; 240]);
    let s = stats(&e.boxed, ext::STATS);
    assert!(s["compacted_bytes"].as_u64().unwrap() > written / 2, "{s}");
    println!("create/delete churn: wrote {written} bytes, disk per round {sizes:?}; stats {s}");
    drop(e);
    let _ = std::fs::remove_dir_all(&dir);
}

fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

fn segment_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("seg-"))
        .collect();
    v.sort();
    v
}

/// The two states a crash inside a compaction can leave, rebuilt from copies taken before and
/// after it: (1) the output still under its temporary name, (2) the output named but the other
/// inputs not yet removed. Both open to exactly the streams of an uninterrupted compaction.
#[test]
fn an_interrupted_compaction_opens_to_the_same_data() {
    let dir = fresh_dir("crash");
    let mut rng = Rng(42);
    let mut model = Model::default();
    let e = open(&dir);
    // Until a compaction merges several segments into one: its before and after are kept.
    let before = fresh_dir("crash-before");
    let mut merged = false;
    for _ in 0..20 {
        for _ in 0..500 {
            model.step(&e.boxed, &mut rng);
        }
        copy_dir(&dir.join("file"), &before);
        let done = e.inner.compact(POLICY).expect("compact");
        if done.iter().any(|d| d.inputs > 1) {
            merged = true;
            break;
        }
    }
    assert!(merged, "no compaction merged segments");
    drop(e);
    let after = fresh_dir("crash-after");
    copy_dir(&dir.join("file"), &after);
    let (names_before, names_after) = (segment_names(&before), segment_names(&after));

    // (1) Inputs intact, output under its temporary name: the output is dropped at open.
    let state1 = fresh_dir("crash-state1");
    copy_dir(&before, &state1.join("file"));
    let out = names_after.iter().find(|n| !names_before.contains(n) || n.as_str() != "").unwrap();
    std::fs::copy(after.join(out), state1.join("file").join(format!("{out}.compacting"))).unwrap();
    let e1 = open(&state1);
    model.verify(&e1.boxed, "output left under its temporary name");
    let r = stats(&e1.boxed, ext::RECOVERY);
    assert_eq!(r["unfinished_compactions_removed"], 1, "{r}");
    drop(e1);

    // (2) Output named, every input it replaced still there: they are removed at open.
    let state2 = fresh_dir("crash-state2");
    copy_dir(&after, &state2.join("file"));
    for n in &names_before {
        if !names_after.contains(n) {
            std::fs::copy(before.join(n), state2.join("file").join(n)).unwrap();
        }
    }
    let e2 = open(&state2);
    model.verify(&e2.boxed, "inputs left beside the output");
    let r = stats(&e2.boxed, ext::RECOVERY);
    assert!(r["superseded_segments_removed"].as_u64().unwrap() > 0, "{r}");
    drop(e2);
    // And the same again after that open finished the job.
    let e2 = open(&state2);
    model.verify(&e2.boxed, "reopened after finishing the compaction");
    drop(e2);
    for d in [&dir, &before, &after, &state1, &state2] {
        let _ = std::fs::remove_dir_all(d);
    }
}
