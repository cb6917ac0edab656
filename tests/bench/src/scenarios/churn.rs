//! Churn: streams created with data, filled and deleted continuously (the workload that fills a
//! disk when space is never reclaimed) beside writers appending to streams that live throughout.
//! Reports the writers' append rate and latency, the server's disk and live bytes sampled from
//! its `/metrics` (`ds_storage_disk_bytes`, `ds_storage_stream_bytes`) and how fast compaction
//! gave bytes back (`ds_storage_compacted_bytes`). Run it twice, compaction on and off, to see
//! what compaction costs the writers.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;

use super::Ctx;
use crate::client::{fail, Res};
use crate::stats::{round1, BenchResult, Samples};

const OCTET: &str = "application/octet-stream";
const WRITERS: usize = 16;
const CHURNERS: usize = 8;
const CHUNK: usize = 16 << 10;

/// `http://host:port` of the stream URL.
fn origin(url: &str) -> String {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => url[..after_scheme + i].to_string(),
        None => url.to_string(),
    }
}

async fn metric(ctx: &Ctx, name: &str) -> Option<f64> {
    let r = ctx.client.get(&format!("{}/metrics", origin(&ctx.opts.url))).await.ok()?;
    let text = String::from_utf8_lossy(&r.body).into_owned();
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn churner(ctx: Ctx, w: usize, stop: Arc<AtomicBool>, churned: Arc<AtomicU64>) -> Res<()> {
    let body = Bytes::from(vec![b'c'; CHUNK]);
    let mut k = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let name = format!("{}-churn{w}-{k}", ctx.prefix);
        k += 1;
        if ctx.client.create(&name, OCTET).await? != StatusCode::CREATED {
            return fail(format!("PUT {name} was not created"));
        }
        for _ in 0..4 {
            let r = ctx.client.append(&name, OCTET, body.clone(), None).await?;
            if !r.status.is_success() {
                return fail(format!("append to {name}: {}", r.status));
            }
        }
        if ctx.client.delete(&name).await? != StatusCode::NO_CONTENT {
            return fail(format!("DELETE {name} failed"));
        }
        churned.fetch_add(4 * CHUNK as u64, Ordering::Relaxed);
    }
    Ok(())
}

async fn writer(ctx: Ctx, w: usize, deadline: Instant) -> Res<(u64, Samples)> {
    let name = format!("{}-live{w}", ctx.prefix);
    ctx.client.create(&name, OCTET).await?;
    let body = Bytes::from(vec![b'w'; 100]);
    let (mut n, mut lat) = (0u64, Samples::with_capacity(64 * 1024));
    while Instant::now() < deadline {
        let t0 = Instant::now();
        let r = ctx.client.append(&name, OCTET, body.clone(), None).await?;
        if !r.status.is_success() {
            return fail(format!("append to {name}: {}", r.status));
        }
        lat.push(t0.elapsed());
        n += 1;
    }
    Ok((n, lat))
}

pub async fn run(ctx: &Ctx) -> BenchResult {
    let secs = ctx.opts.duration_secs.max(5);
    let name = format!("churn/w{WRITERS}/100B+churn{CHURNERS}x{}KiB", 4 * CHUNK / 1024);
    let stop = Arc::new(AtomicBool::new(false));
    let churned = Arc::new(AtomicU64::new(0));
    let compacted0 = metric(ctx, "ds_storage_compacted_bytes").await.unwrap_or(0.0);
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(secs);
    let churners: Vec<_> = (0..CHURNERS)
        .map(|w| tokio::spawn(churner(ctx.clone(), w, stop.clone(), churned.clone())))
        .collect();
    let writers: Vec<_> = (0..WRITERS).map(|w| tokio::spawn(writer(ctx.clone(), w, deadline))).collect();
    // Disk and live bytes over the run: the ratio of the second half is the steady state.
    let mut samples = Vec::new();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let disk = metric(ctx, "ds_storage_disk_bytes").await.unwrap_or(0.0);
        let live = metric(ctx, "ds_storage_stream_bytes").await.unwrap_or(0.0);
        samples.push((t0.elapsed().as_secs_f64(), disk, live));
    }
    stop.store(true, Ordering::Relaxed);
    let (mut appends, mut lat, mut failure) = (0u64, Samples::default(), None);
    for h in writers {
        match h.await {
            Ok(Ok((n, l))) => {
                appends += n;
                lat.merge(l);
            }
            Ok(Err(e)) => failure = Some(e.to_string()),
            Err(e) => failure = Some(e.to_string()),
        }
    }
    for h in churners {
        if let Ok(Err(e)) = h.await {
            failure.get_or_insert(e.to_string());
        }
    }
    let elapsed = t0.elapsed();
    let compacted = metric(ctx, "ds_storage_compacted_bytes").await.unwrap_or(0.0) - compacted0;
    let half = &samples[samples.len() / 2..];
    let worst = half.iter().map(|(_, d, l)| d / l.max(1.0)).fold(0.0f64, f64::max);
    let last = samples.last().copied().unwrap_or_default();
    let mut r = BenchResult::new(name, appends as f64, elapsed, "appends/s");
    r.latency = lat.summary();
    r.failure = failure;
    r.with_extra("churned_mb", round1(churned.load(Ordering::Relaxed) as f64 / 1e6))
        .with_extra("disk_mb_end", round1(last.1 / 1e6))
        .with_extra("live_mb_end", round1(last.2 / 1e6))
        .with_extra("disk_over_live_worst_2nd_half", round1(worst))
        .with_extra("reclaimed_mb_per_s", round1(compacted / 1e6 / elapsed.as_secs_f64()))
}
