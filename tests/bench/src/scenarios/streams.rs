//! Many streams: PUT new streams as fast as possible at a fixed concurrency, up to a count or a
//! time limit; create rate, latency, and the server's resident memory growth per stream.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::StatusCode;
use rand::Rng;

use super::Ctx;
use crate::client::{fail, Res};
use crate::stats::{round1, BenchResult, Samples};

const OCTET: &str = "application/octet-stream";
/// How many of the created streams are read back as a spot check.
const SPOT_CHECKS: usize = 200;

fn stream_name(prefix: &str, i: u64) -> String {
    format!("{prefix}-m{i}")
}

/// One creator: PUTs until the limit or deadline, or the first error (which stops every creator).
async fn creator(ctx: Ctx, next: Arc<AtomicU64>, limit: u64, deadline: Instant) -> (u64, Samples, Option<String>) {
    let (mut made, mut lat) = (0u64, Samples::with_capacity(16 * 1024));
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= limit || Instant::now() >= deadline {
            return (made, lat, None);
        }
        let t0 = Instant::now();
        let err = match ctx.client.create(&stream_name(&ctx.prefix, i), OCTET).await {
            Ok(StatusCode::CREATED) => None,
            Ok(status) => Some(format!("PUT of a new stream answered {status}, not 201")),
            Err(e) => Some(e.to_string()),
        };
        if let Some(e) = err {
            next.store(limit, Ordering::Relaxed);
            return (made, lat, Some(format!("after {i} streams: {e}")));
        }
        lat.push(t0.elapsed());
        made += 1;
    }
}

async fn spot_check(ctx: &Ctx, created: u64) -> Res<()> {
    for _ in 0..SPOT_CHECKS.min(created as usize) {
        let i = rand::thread_rng().gen_range(0..created);
        let name = stream_name(&ctx.prefix, i);
        let r = ctx.client.get(&format!("{}?offset=-1", ctx.client.url(&name))).await?;
        if r.status != StatusCode::OK || !r.body.is_empty() || !r.up_to_date() {
            return fail(format!("GET {name}: expected an empty up-to-date 200, got {}", r.status));
        }
    }
    Ok(())
}

pub async fn run(ctx: &Ctx) -> Vec<BenchResult> {
    let limit = ctx.opts.streams;
    let rss_before = ctx.server.rss_bytes();
    let cpu = ctx.server.cpu_window();
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(ctx.opts.max_secs);
    let tasks: Vec<_> = (0..ctx.opts.create_concurrency.max(1))
        .map(|_| tokio::spawn(creator(ctx.clone(), next.clone(), limit, deadline)))
        .collect();
    let (mut created, mut lat, mut failure) = (0u64, Samples::default(), None);
    for t in tasks {
        match t.await {
            Ok((m, l, e)) => {
                created += m;
                lat.merge(l);
                failure = failure.or(e);
            }
            Err(e) => failure = failure.or(Some(format!("creator panicked: {e}"))),
        }
    }
    let elapsed = start.elapsed();
    let cpu_per = cpu.per_op(created);
    let backend_per = cpu.backend_per_op(created);
    // Let the allocator settle before sampling memory again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after = ctx.server.rss_bytes();
    let mut r = BenchResult::new("many-streams/create", created as f64, elapsed, "creates/s");
    r.cpu_us_per_op = cpu_per;
    r.backend_cpu_us_per_op = backend_per;
    r.latency = lat.summary();
    r = r.with_extra("streams", created);
    if let (Some(a), Some(b), true) = (rss_before, rss_after, created > 0) {
        let per = (b as f64 - a as f64) / created.max(1) as f64;
        r = r
            .with_extra("rss_before_mb", round1(a as f64 / 1e6))
            .with_extra("rss_after_mb", round1(b as f64 / 1e6))
            .with_extra("rss_bytes_per_stream", per.round());
    }
    if failure.is_none() {
        if let Err(e) = spot_check(ctx, created).await {
            failure = Some(format!("spot check: {e}"));
        }
    }
    r.failure = failure;
    ctx.report(&r);
    vec![r]
}
