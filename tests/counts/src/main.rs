//! `ds-counts`: what one request costs this server in allocations and system calls (issue 28).
//!
//! `ds-counts allocs` serves each engine linked in-process (and a one-route axum floor) under a
//! counting global allocator, drives each request kind sequentially over one keep-alive
//! connection from a thread whose allocations are not counted, and prints allocations and bytes
//! allocated per request. `ds-counts drive --url U --kind K` only drives (for `strace -c`
//! around a real server, `scripts/bench-counts.sh`). `ds-counts engine-read` and `ds-counts
//! engine-append` drive an engine directly (the floors beneath catch-up and fsynced appends).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};

use clap::{Parser, Subcommand};

mod engine_append;
mod engine_read;
mod requests;

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Set on the driving thread: its allocations are the client's, not the server's.
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

thread_local! {
    /// Set while a backtrace is being taken (its own allocations are not traced).
    static IN_TRACE: Cell<bool> = const { Cell::new(false) };
}

/// While set (`--trace`), every counted allocation's backtrace is kept.
static TRACING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static TRACES: std::sync::Mutex<Vec<(usize, String)>> = std::sync::Mutex::new(Vec::new());

fn count(size: usize) {
    if !QUIET.try_with(Cell::get).unwrap_or(true) {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(size as u64, Ordering::Relaxed);
        if TRACING.load(Ordering::Relaxed) && !IN_TRACE.try_with(Cell::get).unwrap_or(true) {
            IN_TRACE.with(|t| t.set(true));
            let bt = std::backtrace::Backtrace::force_capture().to_string();
            TRACES.lock().unwrap().push((size, bt));
            IN_TRACE.with(|t| t.set(false));
        }
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[derive(Parser)]
#[command(about = "Allocations and system calls per request")]
struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand)]
enum What {
    /// Allocations per request kind, every engine linked in-process, and the axum floor.
    Allocs {
        /// Comma-separated: memory, file-fast, file-durable, acid, floor.
        #[arg(long, default_value = "floor,memory,file-durable,acid")]
        modes: String,
        #[arg(long, default_value_t = 20_000)]
        requests: u64,
        /// Print where each allocation of three requests of this kind comes from (first mode).
        #[arg(long)]
        trace: Option<String>,
    },
    /// The engine driven directly: fill a stream, reopen, time reading it back (no HTTP).
    EngineRead {
        #[arg(long, default_value = "acid")]
        mode: String,
        #[arg(long, default_value_t = 100)]
        mb: u64,
        /// Fill and read in this process (memory must: its data dies with the process).
        #[arg(long)]
        same_process: bool,
    },
    /// The engine driven directly: groups of appends to many streams through `append_many`,
    /// back to back (no HTTP): the most appends/s the engine gives.
    EngineAppend {
        #[arg(long, default_value = "acid")]
        mode: String,
        #[arg(long, default_value_t = 64)]
        streams: usize,
        /// Appends per group (one per stream).
        #[arg(long, default_value_t = 64)]
        group: usize,
        #[arg(long, default_value_t = 100)]
        size: usize,
        #[arg(long, default_value_t = 5.0)]
        secs: f64,
    },
    /// The filling half of `engine-read` (run by it in a child process).
    #[command(hide = true)]
    EngineFill {
        #[arg(long)]
        mode: String,
        #[arg(long)]
        mb: u64,
        #[arg(long)]
        dir: std::path::PathBuf,
    },
    /// Drives `requests` of one kind at a running server (nothing counted here).
    Drive {
        #[arg(long)]
        url: String,
        /// head, append, read or create; or idem (appends with producer headers, one producer
        /// counting up, to a stream that `--producers` others have appended to first).
        #[arg(long)]
        kind: String,
        #[arg(long, default_value_t = 20_000)]
        requests: u64,
        /// Producers that append once to the idem stream before the timed requests.
        #[arg(long, default_value_t = 0)]
        producers: u64,
    },
}

const KINDS: [&str; 4] = ["head", "append", "read", "create"];

/// One keep-alive HTTP/1.1 connection, requests written by hand (no client library).
struct Conn {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn open(addr: &str) -> Conn {
        let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        s.set_nodelay(true).unwrap();
        Conn {
            s,
            buf: Vec::with_capacity(1 << 16),
        }
    }

    /// Sends one request and reads its whole answer; returns the status.
    fn call(&mut self, method: &str, path: &str, headers: &str, body: &[u8]) -> u16 {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: counts\r\n{headers}Content-Length: {}\r\n\r\n",
            body.len()
        );
        self.s.write_all(head.as_bytes()).unwrap();
        self.s.write_all(body).unwrap();
        self.buf.clear();
        let end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            self.fill();
        };
        let text = String::from_utf8_lossy(&self.buf[..end]).to_ascii_lowercase();
        let status: u16 = text[9..12].parse().unwrap();
        let length: usize = text
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map(|v| v.trim().parse().unwrap())
            .unwrap_or(0);
        let want = if method == "HEAD" || status == 204 || status == 304 {
            0
        } else {
            length
        };
        while self.buf.len() < end + want {
            self.fill();
        }
        status
    }

    fn fill(&mut self) {
        let mut chunk = [0u8; 16384];
        let n = self.s.read(&mut chunk).unwrap();
        assert!(n > 0, "the server closed the connection");
        self.buf.extend_from_slice(&chunk[..n]);
    }
}

const BODY: [u8; 100] = [b'x'; 100];
const OCTETS: &str = "Content-Type: application/octet-stream\r\n";

/// Creates what the kinds use: `counts/s` for head and append, `counts/r` (one 100-byte
/// append, read whole) for read.
fn prepare(c: &mut Conn, prefix: &str) {
    for name in ["s", "r"] {
        let s = c.call("PUT", &format!("{prefix}/counts/{name}"), OCTETS, b"");
        assert!(s == 201 || s == 200, "create: {s}");
        assert_eq!(c.call("POST", &format!("{prefix}/counts/{name}"), OCTETS, &BODY), 204);
    }
}

/// The headers of producer `id`'s append number `seq` (epoch 0).
fn producer_headers(id: &str, seq: u64) -> String {
    format!("{OCTETS}Producer-Id: {id}\r\nProducer-Epoch: 0\r\nProducer-Seq: {seq}\r\n")
}

/// Creates `counts/p`, the idem kind's stream, and appends to it once from each of `producers`
/// producers (so that the timed producer's appends land on a stream with that many).
fn prepare_producers(c: &mut Conn, prefix: &str, producers: u64) {
    let s = c.call("PUT", &format!("{prefix}/counts/p"), OCTETS, b"");
    assert!(s == 201 || s == 200, "create: {s}");
    for p in 0..producers {
        let s = c.call(
            "POST",
            &format!("{prefix}/counts/p"),
            &producer_headers(&format!("producer-{p}"), 0),
            &BODY,
        );
        assert!(s < 300, "producer {p}'s first append: {s}");
    }
}

/// Runs `n` requests of `kind`; `i0` numbers the created streams.
fn drive(c: &mut Conn, prefix: &str, kind: &str, n: u64, i0: u64) {
    for i in 0..n {
        let status = match kind {
            "head" => c.call("HEAD", &format!("{prefix}/counts/s"), "", b""),
            "append" => c.call("POST", &format!("{prefix}/counts/s"), OCTETS, &BODY),
            "read" => c.call("GET", &format!("{prefix}/counts/r?offset=-1"), "", b""),
            "create" => c.call("PUT", &format!("{prefix}/counts/c{}", i0 + i), OCTETS, b""),
            "idem" => c.call("POST", &format!("{prefix}/counts/p"), &producer_headers("w", i), &BODY),
            other => panic!("unknown kind {other} (head, append, read, create, idem)"),
        };
        assert!(status < 300, "{kind}: status {status}");
    }
}

fn floor_router() -> axum::Router {
    use axum::http::{HeaderValue, Method, StatusCode};
    use axum::response::{IntoResponse, Response};
    async fn stream(method: Method, _body: axum::body::Bytes) -> Response {
        let (status, body): (StatusCode, &'static [u8]) = match method {
            Method::HEAD => (StatusCode::OK, b""),
            Method::GET => (StatusCode::OK, &BODY),
            Method::PUT => (StatusCode::CREATED, b""),
            _ => (StatusCode::NO_CONTENT, b""),
        };
        let mut r = (status, body).into_response();
        let h = r.headers_mut();
        h.insert("stream-next-offset", HeaderValue::from_static("0000000000000000_0000000000000100"));
        h.insert("content-type", HeaderValue::from_static("application/octet-stream"));
        h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
        r
    }
    axum::Router::new().route("/v1/stream/{*name}", axum::routing::any(stream))
}

/// Allocations per request of each kind against `mode`.
fn allocs(mode: &str, requests: u64, trace: Option<&str>) -> Vec<(String, f64, f64)> {
    let trace = trace.map(str::to_string);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("ds-counts-{}-{mode}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = if mode == "floor" {
        listener.set_nonblocking(true).unwrap();
        let _g = rt.enter();
        let l = tokio::net::TcpListener::from_std(listener).unwrap();
        rt.spawn(async move {
            let _ = axum::serve(l, floor_router())
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        })
    } else {
        let mut config = durable_streams_server::Config::default();
        config.storage.mode = mode.into();
        config.storage.data_dir = dir.clone();
        let _g = rt.enter();
        let storage = durable_streams_server::engines::open_linked(&config).expect("engine");
        rt.spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(e) = durable_streams_server::serve_storage(config, storage, listener, shutdown).await {
                eprintln!("serve: {e}");
            }
        })
    };
    let out = std::thread::spawn(move || {
        QUIET.with(|q| q.set(true));
        let mut c = Conn::open(&addr);
        let prefix = "/v1/stream";
        prepare(&mut c, prefix);
        let mut rows = Vec::new();
        for (k, kind) in KINDS.iter().enumerate() {
            let base = (k as u64 + 1) * 10_000_000;
            drive(&mut c, prefix, kind, requests / 10, base);
            let (a0, b0) = (ALLOCS.load(Ordering::Relaxed), BYTES.load(Ordering::Relaxed));
            drive(&mut c, prefix, kind, requests, base + requests);
            let (a1, b1) = (ALLOCS.load(Ordering::Relaxed), BYTES.load(Ordering::Relaxed));
            rows.push((
                kind.to_string(),
                (a1 - a0) as f64 / requests as f64,
                (b1 - b0) as f64 / requests as f64,
            ));
            if trace.as_deref() == Some(*kind) {
                TRACING.store(true, Ordering::Relaxed);
                drive(&mut c, prefix, kind, 3, base + 2 * requests);
                TRACING.store(false, Ordering::Relaxed);
            }
        }
        rows
    })
    .join()
    .unwrap();
    let _ = stop.send(());
    let _ = rt.block_on(server);
    drop(rt);
    let _ = std::fs::remove_dir_all(&dir);
    out
}

/// Each traced allocation: its size and the frames of this project's crates and of the
/// libraries beneath (hyper, axum, tokio), runtime and allocator frames left out.
fn print_traces() {
    for (size, bt) in TRACES.lock().unwrap().iter() {
        let frames: Vec<&str> = bt
            .lines()
            .map(str::trim)
            .filter(|l| l.contains(": ") && !l.starts_with("at "))
            .map(|l| l.split_once(": ").unwrap().1)
            .filter(|f| {
                let f = f.trim_start_matches('<');
                !["std::", "core::", "alloc::", "ds_counts::", "__rustc::"]
                    .iter()
                    .any(|p| f.starts_with(p))
            })
            .take(5)
            .collect();
        println!("{size:>8} B  {}", frames.join(" <- "));
    }
}

fn main() {
    match Args::parse().what {
        What::Allocs { modes, requests, trace } => {
            println!("{:<14} {:<8} {:>12} {:>12}", "mode", "kind", "allocs/req", "bytes/req");
            for mode in modes.split(',').map(str::trim).filter(|m| !m.is_empty()) {
                for (kind, a, b) in allocs(mode, requests, trace.as_deref()) {
                    println!("{mode:<14} {kind:<8} {a:>12.1} {b:>12.0}");
                }
                if trace.is_some() {
                    print_traces();
                    return;
                }
            }
        }
        What::EngineRead { mode, mb, same_process } => engine_read::run(&mode, mb, same_process || mode == "memory"),
        What::EngineFill { mode, mb, dir } => engine_read::fill(&mode, mb, &dir),
        What::EngineAppend {
            mode,
            streams,
            group,
            size,
            secs,
        } => engine_append::run(&engine_append::Run {
            mode: &mode,
            streams,
            group,
            size,
            secs,
        }),
        What::Drive {
            url,
            kind,
            requests,
            producers,
        } => {
            QUIET.with(|q| q.set(true));
            let rest = url.trim_start_matches("http://");
            let (addr, prefix) = rest
                .split_once('/')
                .map(|(a, p)| (a, format!("/{p}")))
                .unwrap_or((rest, String::new()));
            let prefix = format!("{}/v1/stream", prefix.trim_end_matches('/'));
            let mut c = Conn::open(addr);
            if kind == "idem" {
                prepare_producers(&mut c, &prefix, producers);
            } else if kind != "create" {
                prepare(&mut c, &prefix);
            }
            let i0 = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64;
            drive(&mut c, &prefix, &kind, requests, i0 * 1_000_000);
        }
    }
}
