//! `ds-counts engine-read`: the engine driven directly, no HTTP (issue 28's floor for catch-up):
//! fills one stream with 64 KiB appends in a child process, opens the engine afresh (as after a
//! restart: caches empty, the data on disk and in the page cache), then reads the stream from the
//! start in 1 MiB reads, as the server's catch-up does, and prints MB/s and process CPU per MB
//! of the read alone.

use abi_stable::std_types::RStr;
use durable_streams_core::abi::{ReadRequest, ReadStart};

const CHUNK: usize = 64 * 1024;
const READ: u64 = 1 << 20;

/// Process CPU time (user + system) in microseconds.
pub(crate) fn cpu_us() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let fields: Vec<&str> = stat.rsplit_once(") ").expect("stat").1.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    ticks * 1_000_000 / 100
}

/// Opens `mode` in `dir`.
pub(crate) fn open(mode: &str, dir: &std::path::Path) -> durable_streams_server::Storage {
    let mut config = durable_streams_server::Config::default();
    config.storage.mode = mode.into();
    config.storage.data_dir = dir.to_path_buf();
    durable_streams_server::engines::open_linked(&config).expect("engine")
}

/// Prints one line: mode, MB read, MB/s and CPU per MB of the read.
pub fn run(mode: &str, mb: u64, same_process: bool) {
    let dir = std::env::temp_dir().join(format!("ds-engine-read-{}-{mode}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let name = "engine-read";
    let total = mb * 1_000_000;
    let storage = if same_process {
        // Read what this process wrote (as a server reads back what it just took in); the only
        // way for memory, whose data dies with its process.
        let storage = open(mode, &dir);
        fill_into(&storage, total);
        storage
    } else {
        // The engine's threads keep it open for the life of the process: fill in a child.
        let status = std::process::Command::new(std::env::current_exe().expect("own path"))
            .args(["engine-fill", "--mode", mode, "--mb", &mb.to_string(), "--dir"])
            .arg(&dir)
            .status()
            .expect("run the filling child");
        assert!(status.success(), "filling {mode} failed");
        open(mode, &dir)
    };
    let (c0, t0) = (cpu_us(), std::time::Instant::now());
    let (mut pos, mut sum) = (0u64, 0u64);
    while pos < total {
        let chunk = storage
            .call_sync(|e| {
                e.read(&ReadRequest {
                    name: RStr::from(name),
                    start: ReadStart::At,
                    position: pos,
                    max_bytes: READ,
                    now_ms: 0,
                })
            })
            .expect("read");
        let data = chunk.data.bytes();
        // Touch the bytes once, as a server's socket write does.
        sum = sum.wrapping_add(data.iter().step_by(4096).map(|b| *b as u64).sum::<u64>());
        assert!(chunk.next > pos, "a read made no progress at {pos}");
        pos = chunk.next;
    }
    let (cpu, wall) = (cpu_us() - c0, t0.elapsed().as_secs_f64());
    std::hint::black_box(sum);
    println!(
        "{mode:<14} read {mb} MB ({}): {:.0} MB/s, {:.0} us CPU per MB",
        if same_process {
            "written by this process"
        } else {
            "after a restart"
        },
        mb as f64 / wall,
        cpu as f64 / mb as f64
    );
    drop(storage);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Fills stream `engine-read` of `mode` in `dir` with `mb` MB of 64 KiB appends.
pub fn fill(mode: &str, mb: u64, dir: &std::path::Path) {
    fill_into(&open(mode, dir), mb * 1_000_000);
}

/// Creates the octet-stream stream `name`, empty.
pub(crate) fn create(storage: &durable_streams_server::Storage, name: &str) {
    storage
        .call_sync(|e| e.create(&crate::requests::create_octets(name)))
        .expect("create");
}

fn fill_into(storage: &durable_streams_server::Storage, total: u64) {
    let name = "engine-read";
    create(storage, name);
    let body: Vec<u8> = (0..CHUNK).map(|i| (i * 31 % 251) as u8).collect();
    let mut written = 0u64;
    while written < total {
        let len = CHUNK.min((total - written) as usize);
        storage
            .call_sync(|e| e.append(&crate::requests::append_octets(name, &body[..len])))
            .expect("append");
        written += len as u64;
    }
}
