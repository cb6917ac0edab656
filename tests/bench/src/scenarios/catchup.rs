//! Catch-up reads: one large stream read from the start (MB/s, length + checksum checked), and
//! many concurrent readers each reading a small stream in full (reads/s, bytes compared).

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::StatusCode;

use super::Ctx;
use crate::client::{fail, Res};
use crate::stats::{round1, BenchResult, Fnv, Samples};

const OCTET: &str = "application/octet-stream";
const CHUNK: usize = 64 * 1024;

/// Deterministic pseudo-random content for chunk `i` (xorshift64, seeded by the index).
fn chunk(i: u64, len: usize) -> Bytes {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = BytesMut::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v.freeze()
}

async fn append_ok(ctx: &Ctx, name: &str, body: Bytes) -> Res<()> {
    let r = ctx.client.append(name, OCTET, body, None).await?;
    if r.status != StatusCode::NO_CONTENT && r.status != StatusCode::OK {
        return fail(format!("append to {name}: unexpected status {}", r.status));
    }
    Ok(())
}

/// Fills a stream to `--catchup-mb` with 64 KiB appends, then times reading it all back.
async fn large(ctx: &Ctx) -> Res<BenchResult> {
    let name = format!("{}-catchup", ctx.prefix);
    ctx.client.create(&name, OCTET).await?;
    let total = ctx.opts.catchup_mb * 1_000_000;
    let chunks = total.div_ceil(CHUNK as u64);
    let mut want = Fnv::default();
    let mut written = 0u64;
    let fill_start = Instant::now();
    for i in 0..chunks {
        let len = CHUNK.min((total - written) as usize);
        let c = chunk(i, len);
        want.update(&c);
        append_ok(ctx, &name, c).await?;
        written += len as u64;
    }
    let fill = fill_start.elapsed();

    let cpu = ctx.server.cpu_window();
    let start = Instant::now();
    let mut bodies: Vec<Bytes> = Vec::new();
    let gets = ctx
        .client
        .read_all(&name, true, |b| {
            bodies.push(b.clone());
            Ok(())
        })
        .await?;
    let elapsed = start.elapsed();
    let cpu_total = cpu.total();
    let backend_total = cpu.backend_per_op(1);
    // Checked after the clock stops so the client's hashing does not count against the server.
    let mut got = Fnv::default();
    let mut len = 0u64;
    for b in &bodies {
        got.update(b);
        len += b.len() as u64;
    }
    let mb = written as f64 / 1e6;
    let mut r = BenchResult::new("catch-up/large", mb, elapsed, "MB/s");
    r.cpu_us_per_op = cpu_total.map(|c| c as f64 / mb);
    r.backend_cpu_us_per_op = backend_total.map(|c| c / mb);
    r = r
        .with_extra("mb", round1(mb))
        .with_extra("gets", gets)
        .with_extra("fill_mb_s", round1(mb / fill.as_secs_f64()));
    if len != written {
        r.failure = Some(format!("read back {len} bytes, wrote {written}"));
    } else if got.0 != want.0 {
        r.failure = Some(format!("checksum mismatch: read {:016x}, wrote {:016x}", got.0, want.0));
    }
    let verified = if r.ok() { "yes" } else { "no" };
    r = r.with_extra("verified", verified);
    if !ctx.opts.keep {
        let _ = ctx.client.delete(&name).await;
    }
    Ok(r)
}

/// One small-stream reader: full reads until the deadline, each compared with the content.
async fn reader(ctx: Ctx, name: String, expected: Bytes, deadline: Instant) -> Res<(u64, Samples)> {
    let mut samples = Samples::with_capacity(1024);
    let mut reads = 0u64;
    let mut buf = BytesMut::with_capacity(expected.len());
    while Instant::now() < deadline {
        buf.clear();
        let t0 = Instant::now();
        ctx.client
            .read_all(&name, false, |b| {
                buf.extend_from_slice(b);
                Ok(())
            })
            .await?;
        samples.push(t0.elapsed());
        if buf[..] != expected[..] {
            return fail(format!(
                "{name}: a full read returned {} bytes that differ from the {} written",
                buf.len(),
                expected.len()
            ));
        }
        reads += 1;
    }
    Ok((reads, samples))
}

/// Many concurrent readers of one small stream, each reading it in full repeatedly.
async fn small(ctx: &Ctx) -> Res<BenchResult> {
    let name = format!("{}-small", ctx.prefix);
    ctx.client.create(&name, OCTET).await?;
    let size = ctx.opts.small_kb * 1024;
    let mut content = BytesMut::with_capacity(size);
    let mut i = 0;
    while content.len() < size {
        let c = chunk(1_000_000 + i, 4096.min(size - content.len()));
        append_ok(ctx, &name, c.clone()).await?;
        content.extend_from_slice(&c);
        i += 1;
    }
    let content = content.freeze();
    let n = ctx.opts.catchup_readers;
    let cpu = ctx.server.cpu_window();
    let start = Instant::now();
    let deadline = start + Duration::from_secs(ctx.opts.duration_secs);
    let tasks: Vec<_> = (0..n)
        .map(|_| tokio::spawn(reader(ctx.clone(), name.clone(), content.clone(), deadline)))
        .collect();
    let (mut reads, mut samples, mut failure) = (0u64, Samples::default(), None);
    for t in tasks {
        match t.await {
            Ok(Ok((k, s))) => {
                reads += k;
                samples.merge(s);
            }
            Ok(Err(e)) => failure = failure.or(Some(e.to_string())),
            Err(e) => failure = failure.or(Some(format!("reader panicked: {e}"))),
        }
    }
    let elapsed = start.elapsed();
    let mut r = BenchResult::new(
        format!("catch-up/small/r{n}/{}KiB", ctx.opts.small_kb),
        reads as f64,
        elapsed,
        "reads/s",
    );
    r.cpu_us_per_op = cpu.per_op(reads);
    r.backend_cpu_us_per_op = cpu.backend_per_op(reads);
    r.latency = samples.summary();
    r = r.with_extra("mb_s", round1(reads as f64 * size as f64 / elapsed.as_secs_f64() / 1e6));
    r.failure = failure;
    let verified = if r.ok() { "yes" } else { "no" };
    r = r.with_extra("verified", verified);
    if !ctx.opts.keep {
        let _ = ctx.client.delete(&name).await;
    }
    Ok(r)
}

pub async fn run(ctx: &Ctx) -> Vec<BenchResult> {
    let mut out = Vec::new();
    let large = large(ctx)
        .await
        .unwrap_or_else(|e| BenchResult::failed("catch-up/large", "MB/s", e.to_string()));
    ctx.report(&large);
    out.push(large);
    let small = small(ctx)
        .await
        .unwrap_or_else(|e| BenchResult::failed("catch-up/small", "reads/s", e.to_string()));
    ctx.report(&small);
    out.push(small);
    out
}
