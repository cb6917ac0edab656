//! HEAD: metadata requests on existing streams at a fixed concurrency (`--head-concurrency`)
//! for `--duration-secs`; requests/s, latency and server CPU per request, the steadiest figure
//! of the per-request path (no body, no storage I/O needed). Every answer is checked: 200 and
//! the `Stream-Next-Offset` the stream's append returned.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;

use super::Ctx;
use crate::client::{fail, Res};
use crate::stats::{BenchResult, Samples};

const OCTET: &str = "application/octet-stream";
/// Streams the requests are spread over.
const STREAMS: usize = 64;

/// One requester: HEADs streams round-robin until the deadline, or the first wrong answer.
async fn requester(ctx: Ctx, streams: Arc<Vec<(String, String)>>, first: usize, deadline: Instant) -> Res<(u64, Samples)> {
    let (mut done, mut lat) = (0u64, Samples::with_capacity(64 * 1024));
    let mut i = first;
    while Instant::now() < deadline {
        let (name, tail) = &streams[i % streams.len()];
        i += 1;
        let t0 = Instant::now();
        let r = ctx.client.head(name).await?;
        lat.push(t0.elapsed());
        if r.status != StatusCode::OK || r.next_offset() != Some(tail.as_str()) {
            return fail(format!(
                "HEAD {name}: expected 200 at {tail}, got {} at {:?}",
                r.status,
                r.next_offset()
            ));
        }
        done += 1;
    }
    Ok((done, lat))
}

pub async fn run(ctx: &Ctx) -> Vec<BenchResult> {
    let mut streams = Vec::with_capacity(STREAMS);
    let mut failure = None;
    for i in 0..STREAMS {
        let name = format!("{}-h{i}", ctx.prefix);
        let made = async {
            ctx.client.create(&name, OCTET).await?;
            let r = ctx.client.append(&name, OCTET, Bytes::from(vec![b'h'; 100]), None).await?;
            match r.next_offset() {
                Some(t) if r.status.is_success() => Ok::<_, crate::client::BoxError>(t.to_string()),
                _ => fail(format!("append to {name} answered {}", r.status)),
            }
        };
        match made.await {
            Ok(tail) => streams.push((name, tail)),
            Err(e) => {
                failure = Some(format!("setup: {e}"));
                break;
            }
        }
    }
    let streams = Arc::new(streams);
    let concurrency = ctx.opts.head_concurrency.max(1);
    // Warm-up (connections, caches), not reported.
    if failure.is_none() {
        let warm = Instant::now() + Duration::from_millis(500);
        let tasks: Vec<_> = (0..concurrency)
            .map(|k| tokio::spawn(requester(ctx.clone(), streams.clone(), k, warm)))
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    }
    let cpu = ctx.server.cpu_window();
    let start = Instant::now();
    let deadline = start + Duration::from_secs(ctx.opts.duration_secs);
    let tasks: Vec<_> = (0..concurrency)
        .map(|k| tokio::spawn(requester(ctx.clone(), streams.clone(), k, deadline)))
        .collect();
    let (mut total, mut lat) = (0u64, Samples::default());
    for t in tasks {
        if failure.is_some() {
            let _ = t.await;
            continue;
        }
        match t.await {
            Ok(Ok((n, l))) => {
                total += n;
                lat.merge(l);
            }
            Ok(Err(e)) => failure = Some(e.to_string()),
            Err(e) => failure = Some(format!("requester panicked: {e}")),
        }
    }
    let elapsed = start.elapsed();
    let mut r = BenchResult::new(format!("head/c{concurrency}"), total as f64, elapsed, "requests/s");
    r.cpu_us_per_op = cpu.per_op(total);
    r.backend_cpu_us_per_op = cpu.backend_per_op(total);
    r.latency = lat.summary();
    r.failure = failure;
    ctx.report(&r);
    if !ctx.opts.keep {
        for (name, _) in streams.iter() {
            let _ = ctx.client.delete(name).await;
        }
    }
    vec![r]
}
