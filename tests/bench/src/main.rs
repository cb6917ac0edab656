//! `ds-bench`: command line, scenario selection and exit status for the load generator.

mod client;
mod proc;
mod report;
mod scenarios;
mod stats;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Parser;

use client::Client;
use scenarios::Ctx;

/// Load generator for any Durable Streams server.
#[derive(Parser, Debug, Clone)]
#[command(name = "ds-bench", version)]
pub struct Opts {
    /// Stream base URL, e.g. http://127.0.0.1:4437/v1/stream (streams are <url>/<name>).
    #[arg(long, required_unless_present = "summarize", default_value = "")]
    pub url: String,
    /// head, appends, catch-up, fanout, many-streams, or all (comma-separated list allowed); also churn
    /// (not in all: it reads the server's /metrics).
    #[arg(long, default_value = "all")]
    pub scenario: String,
    /// Server process id: report its CPU per operation and (many-streams) memory per stream.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Processes beneath the server (a NATS cluster's nodes): their CPU per operation is
    /// reported beside the server's (`backend_cpu_us_per_op`).
    #[arg(long, value_delimiter = ',')]
    pub backend_pids: Vec<u32>,
    /// Length of each timed case (append cases, small-stream readers, fan-out writer).
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
    /// Print one JSON object per case on stdout (human lines go to stderr).
    #[arg(long)]
    pub json: bool,
    /// Writer counts for the append matrix.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 16, 64])]
    pub writers: Vec<usize>,
    /// Message sizes in bytes for the append matrix.
    #[arg(long, value_delimiter = ',', default_values_t = [100usize, 4096])]
    pub sizes: Vec<usize>,
    /// Writers for the idempotent-producer and JSON append cases.
    #[arg(long, default_value_t = 16)]
    pub special_writers: usize,
    /// Size of the catch-up stream in MB (filled with 64 KiB appends).
    #[arg(long, default_value_t = 100)]
    pub catchup_mb: u64,
    /// Concurrent readers of the small stream.
    #[arg(long, default_value_t = 1000)]
    pub catchup_readers: usize,
    /// Size of the small stream in KiB.
    #[arg(long, default_value_t = 64)]
    pub small_kb: usize,
    /// Subscriber counts for live fan-out (each run by SSE and by long-poll).
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 100, 1000])]
    pub subscribers: Vec<usize>,
    /// Fan-out writer interval in milliseconds.
    #[arg(long, default_value_t = 10)]
    pub interval_ms: u64,
    /// head: concurrent HEAD requesters.
    #[arg(long, default_value_t = 16)]
    pub head_concurrency: usize,
    /// many-streams: how many streams to create at most.
    #[arg(long, default_value_t = 1_000_000)]
    pub streams: u64,
    /// many-streams: stop creating after this many seconds.
    #[arg(long, default_value_t = 60)]
    pub max_secs: u64,
    /// many-streams: concurrent PUTs.
    #[arg(long, default_value_t = 64)]
    pub create_concurrency: usize,
    /// Stream-name prefix (default: bench-<pid>-<unix ms>).
    #[arg(long)]
    pub prefix: Option<String>,
    /// Label added to every JSON line, as GROUP/SERVER (e.g. memory/ours), for --summarize.
    #[arg(long)]
    pub label: Option<String>,
    /// Round number added to every JSON line.
    #[arg(long)]
    pub round: Option<u32>,
    /// Do not run anything: print markdown tables summarizing these JSON-lines files.
    #[arg(long, num_args = 1..)]
    pub summarize: Vec<std::path::PathBuf>,
    /// With --summarize: label SERVER parts starting with this are this server (ratio vs best peer).
    #[arg(long, default_value = "ours")]
    pub ours: String,
    /// Fan-out: create the stream and append through this base URL (another host serving the
    /// same data), while subscribers read through --url.
    #[arg(long)]
    pub writer_url: Option<String>,
    /// Keep streams after a case (default: delete append and catch-up streams once verified).
    #[arg(long)]
    pub keep: bool,
    /// Append cases: do not read the streams back to check every acknowledged append (for
    /// `ds-floor`, which stores nothing; the result says `verified=skipped`).
    #[arg(long)]
    pub no_verify: bool,
    /// Append cases: run only those whose name contains this (e.g. `own/w64`), for profiling
    /// one case.
    #[arg(long)]
    pub only: Option<String>,
    /// An access token sent as `Authorization: Bearer` with every request (a server in
    /// `auth.mode = "token"`).
    #[arg(long, env = "DS_BENCH_TOKEN")]
    pub token: Option<String>,
}

const SCENARIOS: [&str; 5] = ["head", "appends", "catch-up", "fanout", "many-streams"];

fn selected(spec: &str) -> Result<Vec<&'static str>, String> {
    let mut out = Vec::new();
    for s in spec.split(',').map(str::trim) {
        match s {
            "all" => out.extend(SCENARIOS),
            "catchup" | "catch-up" => out.push("catch-up"),
            "fanout" | "fan-out" | "live-fanout" => out.push("fanout"),
            "many-streams" | "streams" => out.push("many-streams"),
            "appends" => out.push("appends"),
            "head" | "heads" => out.push("head"),
            "churn" => out.push("churn"),
            other => return Err(format!("unknown scenario '{other}' (use {} or all)", SCENARIOS.join(", "))),
        }
    }
    Ok(out)
}

#[tokio::main]
async fn main() {
    let opts = Opts::parse();
    if !opts.summarize.is_empty() {
        match report::summarize(&opts.summarize, &opts.ours) {
            Ok(t) => print!("{t}"),
            Err(e) => {
                eprintln!("ds-bench: {e}");
                std::process::exit(2);
            }
        }
        return;
    }
    let list = match selected(&opts.scenario) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("ds-bench: {e}");
            std::process::exit(2);
        }
    };
    let prefix = opts.prefix.clone().unwrap_or_else(|| {
        let ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
        format!("bench-{}-{ms}", std::process::id())
    });
    let ctx = Ctx {
        client: Client::new(&opts.url, opts.token.as_deref()),
        writer: Client::new(opts.writer_url.as_deref().unwrap_or(&opts.url), opts.token.as_deref()),
        server: proc::Server::new(opts.server_pid, opts.backend_pids.clone()),
        prefix: Arc::from(prefix.as_str()),
        opts: Arc::new(opts),
    };
    let mut results = Vec::new();
    for s in list {
        eprintln!("# scenario {s} against {}", ctx.opts.url);
        let r = match s {
            "appends" => scenarios::appends::run(&ctx).await,
            "head" => scenarios::heads::run(&ctx).await,
            "catch-up" => scenarios::catchup::run(&ctx).await,
            "fanout" => scenarios::fanout::run(&ctx).await,
            "churn" => {
                let r = scenarios::churn::run(&ctx).await;
                ctx.report(&r);
                vec![r]
            }
            _ => scenarios::streams::run(&ctx).await,
        };
        results.extend(r);
    }
    let failed: Vec<_> = results.iter().filter(|r| !r.ok()).map(|r| r.name.clone()).collect();
    if !failed.is_empty() {
        eprintln!("ds-bench: {} case(s) FAILED: {}", failed.len(), failed.join(", "));
        std::process::exit(1);
    }
}
