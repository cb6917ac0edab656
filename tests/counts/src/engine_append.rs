//! `ds-counts engine-append`: the engine driven directly, no HTTP (issue 28's floor for fsynced
//! appends): `streams` streams, each group one append of `size` bytes to each of `group` of them
//! (round robin) handed to `append_many` back to back, as the server's group commit does with
//! every writer's append at once, for `secs` seconds. Prints appends/s, groups/s and process CPU
//! per append: what the engine can do at best, with nothing above it.

use abi_stable::std_types::RSlice;
use durable_streams_core::abi::AppendRequest;

use crate::engine_read::{cpu_us, create, open};

/// What one run measures.
pub struct Run<'a> {
    pub mode: &'a str,
    pub streams: usize,
    pub group: usize,
    pub size: usize,
    pub secs: f64,
}

pub fn run(r: &Run<'_>) {
    let dir = std::env::temp_dir().join(format!("ds-engine-append-{}-{}", std::process::id(), r.mode));
    let _ = std::fs::remove_dir_all(&dir);
    let storage = open(r.mode, &dir);
    let names: Vec<String> = (0..r.streams).map(|i| format!("engine-append-{i}")).collect();
    for name in &names {
        create(&storage, name);
    }
    let body: Vec<u8> = (0..r.size).map(|i| (i * 31 % 251) as u8).collect();
    let (c0, t0) = (cpu_us(), std::time::Instant::now());
    let (mut groups, mut appends, mut next) = (0u64, 0u64, 0usize);
    while t0.elapsed().as_secs_f64() < r.secs {
        let reqs: Vec<AppendRequest<'_>> = (0..r.group)
            .map(|i| crate::requests::append_octets(&names[(next + i) % names.len()], &body))
            .collect();
        next = (next + r.group) % names.len();
        let results = storage
            .call_sync(|e| abi_stable::std_types::RResult::ROk(e.append_many(RSlice::from(&reqs[..]))))
            .expect("append_many");
        for res in results.iter() {
            if let abi_stable::std_types::RResult::RErr(e) = res {
                panic!("append failed: {}", e.message);
            }
        }
        groups += 1;
        appends += r.group as u64;
    }
    let (cpu, wall) = (cpu_us() - c0, t0.elapsed().as_secs_f64());
    println!(
        "{:<14} {} streams, groups of {} x {} B: {:.0} appends/s, {:.0} groups/s, {:.1} us CPU per append",
        r.mode,
        r.streams,
        r.group,
        r.size,
        appends as f64 / wall,
        groups as f64 / wall,
        cpu as f64 / appends as f64
    );
    drop(storage);
    let _ = std::fs::remove_dir_all(&dir);
}
