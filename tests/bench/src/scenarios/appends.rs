//! Append throughput and latency: writers x message sizes on own or shared streams, plus
//! idempotent-producer and JSON appends; every stream is read back and checked afterwards.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use serde_json::Value;

use super::Ctx;
use crate::client::{fail, Res};
use crate::stats::{round1, BenchResult, Samples};

const OCTET: &str = "application/octet-stream";
const JSON: &str = "application/json";
/// `W00000S0000000000|`: writer id and sequence at the head of every binary record.
const HEADER_LEN: usize = 18;
/// Length of the unreported warm-up before the first case.
const WARMUP_MS: u64 = 1000;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Layout {
    Own,
    Shared,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Raw,
    Idempotent,
    Json,
}

#[derive(Clone, Copy, Debug)]
struct Case {
    layout: Layout,
    kind: Kind,
    writers: usize,
    size: usize,
}

impl Case {
    fn name(&self) -> String {
        let layout = match self.layout {
            Layout::Own => "own",
            Layout::Shared => "shared",
        };
        let kind = match self.kind {
            Kind::Raw => "",
            Kind::Idempotent => "idem/",
            Kind::Json => "json/",
        };
        format!("appends/{kind}{layout}/w{}/{}B", self.writers, self.size)
    }
    fn content_type(&self) -> &'static str {
        if self.kind == Kind::Json {
            JSON
        } else {
            OCTET
        }
    }
    /// Stream names: one per writer (own) or a single one (shared).
    fn streams(&self, prefix: &str, idx: usize) -> Vec<String> {
        match self.layout {
            Layout::Own => (0..self.writers).map(|w| format!("{prefix}-a{idx}-w{w}")).collect(),
            Layout::Shared => vec![format!("{prefix}-a{idx}")],
        }
    }
}

/// A fixed-size binary record: header then a pattern derived from (writer, seq).
fn record(w: usize, seq: u64, size: usize) -> Vec<u8> {
    let mut v = format!("W{w:05}S{seq:010}|").into_bytes();
    let base = w as u64 + seq;
    v.extend((v.len()..size).map(|i| b'a' + ((base + i as u64) % 26) as u8));
    v
}

fn parse_header(rec: &[u8]) -> Option<(usize, u64)> {
    let s = std::str::from_utf8(rec.get(..HEADER_LEN)?).ok()?;
    if !s.starts_with('W') || s.as_bytes()[6] != b'S' || !s.ends_with('|') {
        return None;
    }
    Some((s[1..6].parse().ok()?, s[7..17].parse().ok()?))
}

/// A JSON message of roughly `size` bytes: `{"w":W,"i":SEQ,"pad":"..."}`.
fn json_message(w: usize, seq: u64, size: usize) -> Vec<u8> {
    let head = format!(r#"{{"w":{w},"i":{seq},"pad":""#);
    let pad = size.saturating_sub(head.len() + 2).max(1);
    let mut v = head.into_bytes();
    v.extend((0..pad).map(|i| b'a' + ((w as u64 + seq + i as u64) % 26) as u8));
    v.extend_from_slice(b"\"}");
    v
}

/// Per-writer ordering check: each writer's sequence numbers must arrive as 0, 1, 2, ...
struct Verifier {
    next: Vec<u64>,
}

impl Verifier {
    fn accept(&mut self, w: usize, seq: u64) -> Res<()> {
        let Some(next) = self.next.get_mut(w) else {
            return fail(format!("record from unknown writer {w}"));
        };
        if seq != *next {
            let what = if seq < *next { "duplicate or reordered" } else { "missing" };
            return fail(format!("writer {w}: expected seq {} got {seq} ({what})", *next));
        }
        *next += 1;
        Ok(())
    }
    fn finish(&self, acked: &[u64]) -> Res<()> {
        for (w, (&got, &want)) in self.next.iter().zip(acked).enumerate() {
            if got != want {
                return fail(format!("writer {w}: read back {got} messages, {want} were acknowledged"));
            }
        }
        Ok(())
    }
}

/// Reads one stream back and checks every message; `writers` are the writer ids it may hold.
async fn verify_stream(ctx: &Ctx, case: Case, name: &str, writers: &[usize], acked: &[u64]) -> Res<()> {
    let mut v = Verifier {
        next: vec![0; case.writers],
    };
    let mut carry: Vec<u8> = Vec::new();
    ctx.client
        .read_all(name, true, |body| {
            if case.kind == Kind::Json {
                let items: Vec<Value> = serde_json::from_slice(body).map_err(|e| format!("{name}: body is not a JSON array: {e}"))?;
                for item in items {
                    let w = item["w"].as_u64().ok_or("JSON message without w")? as usize;
                    let seq = item["i"].as_u64().ok_or("JSON message without i")?;
                    let want: Value = serde_json::from_slice(&json_message(w, seq, case.size))?;
                    if item != want || !writers.contains(&w) {
                        return fail(format!("{name}: JSON message w={w} i={seq} differs from what was sent"));
                    }
                    v.accept(w, seq)?;
                }
                return Ok(());
            }
            carry.extend_from_slice(body);
            let whole = carry.len() / case.size * case.size;
            for rec in carry[..whole].chunks(case.size) {
                let (w, seq) = parse_header(rec).ok_or_else(|| format!("{name}: record header unreadable"))?;
                if !writers.contains(&w) || rec != record(w, seq, case.size).as_slice() {
                    return fail(format!("{name}: record w={w} seq={seq} differs from what was sent"));
                }
                v.accept(w, seq)?;
            }
            carry.drain(..whole);
            Ok(())
        })
        .await?;
    if !carry.is_empty() {
        return fail(format!("{name}: {} trailing bytes that are not a whole record", carry.len()));
    }
    let mut want = vec![0; case.writers];
    for &w in writers {
        want[w] = acked[w];
    }
    v.finish(&want)
}

/// One writer: appends until the deadline; returns (acknowledged appends, latencies).
async fn writer(ctx: Ctx, case: Case, w: usize, stream: String, deadline: Instant) -> Res<(u64, Samples)> {
    let mut samples = Samples::with_capacity(4096);
    let producer = format!("{}-p{w}", ctx.prefix);
    let mut seq = 0u64;
    while Instant::now() < deadline {
        let body = match case.kind {
            Kind::Json => json_message(w, seq, case.size),
            _ => record(w, seq, case.size),
        };
        let stamp = (case.kind == Kind::Idempotent).then_some((producer.as_str(), 0, seq));
        let t0 = Instant::now();
        let r = ctx.client.append(&stream, case.content_type(), Bytes::from(body), stamp).await?;
        let ok = match case.kind {
            // A fresh sequence number must be accepted as new data (200); 204 means "duplicate".
            Kind::Idempotent => r.status == StatusCode::OK,
            _ => r.status == StatusCode::NO_CONTENT || r.status == StatusCode::OK,
        };
        if !ok {
            return fail(format!(
                "append to {stream} (writer {w}, seq {seq}): unexpected status {} {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            ));
        }
        samples.push(t0.elapsed());
        seq += 1;
    }
    Ok((seq, samples))
}

async fn run_case(ctx: &Ctx, case: Case, idx: usize) -> BenchResult {
    let name = case.name();
    let streams = case.streams(&ctx.prefix, idx);
    for s in &streams {
        if let Err(e) = ctx.client.create(s, case.content_type()).await {
            return BenchResult::failed(name, "appends/s", e.to_string());
        }
    }
    let duration = Duration::from_secs(ctx.opts.duration_secs);
    let cpu = ctx.server.cpu_window();
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = (0..case.writers)
        .map(|w| {
            let stream = streams[if case.layout == Layout::Own { w } else { 0 }].clone();
            tokio::spawn(writer(ctx.clone(), case, w, stream, deadline))
        })
        .collect();
    let mut acked = vec![0u64; case.writers];
    let mut samples = Samples::default();
    let mut failure = None;
    for (w, t) in tasks.into_iter().enumerate() {
        match t.await {
            Ok(Ok((n, s))) => {
                acked[w] = n;
                samples.merge(s);
            }
            Ok(Err(e)) => failure = failure.or(Some(e.to_string())),
            Err(e) => failure = failure.or(Some(format!("writer {w} panicked: {e}"))),
        }
    }
    let elapsed = start.elapsed();
    let total: u64 = acked.iter().sum();
    let mut r = BenchResult::new(name, total as f64, elapsed, "appends/s");
    r.cpu_us_per_op = cpu.per_op(total);
    r.backend_cpu_us_per_op = cpu.backend_per_op(total);
    r.latency = samples.summary();
    r = r.with_extra("mb_s", round1(total as f64 * case.size as f64 / elapsed.as_secs_f64() / 1e6));
    if failure.is_none() && !ctx.opts.no_verify {
        let checks = match case.layout {
            Layout::Own => streams.iter().enumerate().map(|(w, s)| (s.clone(), vec![w])).collect::<Vec<_>>(),
            Layout::Shared => vec![(streams[0].clone(), (0..case.writers).collect())],
        };
        for (s, ws) in checks {
            if let Err(e) = verify_stream(ctx, case, &s, &ws, &acked).await {
                failure = Some(format!("verify: {e}"));
                break;
            }
        }
    }
    r.failure = failure;
    let verified = match (r.ok(), ctx.opts.no_verify) {
        (true, true) => "skipped",
        (true, false) => "yes",
        (false, _) => "no",
    };
    r = r.with_extra("verified", verified);
    if !ctx.opts.keep {
        for s in &streams {
            let _ = ctx.client.delete(s).await;
        }
    }
    r
}

/// All append cases, in order; each reports as soon as it finishes.
pub async fn run(ctx: &Ctx) -> Vec<BenchResult> {
    let mut cases = Vec::new();
    for layout in [Layout::Own, Layout::Shared] {
        for &writers in &ctx.opts.writers {
            for &size in &ctx.opts.sizes {
                cases.push(Case {
                    layout,
                    kind: Kind::Raw,
                    writers,
                    size: size.max(HEADER_LEN),
                });
            }
        }
    }
    // Warm-up (not reported): connections, server allocations and caches.
    let warm = Case {
        layout: Layout::Shared,
        kind: Kind::Raw,
        writers: 16,
        size: 100,
    };
    let warm_name = format!("{}-warmup", ctx.prefix);
    if ctx.client.create(&warm_name, OCTET).await.is_ok() {
        let deadline = Instant::now() + Duration::from_millis(WARMUP_MS);
        let tasks: Vec<_> = (0..warm.writers)
            .map(|w| tokio::spawn(writer(ctx.clone(), warm, w, warm_name.clone(), deadline)))
            .collect();
        for t in tasks {
            let _ = t.await;
        }
        let _ = ctx.client.delete(&warm_name).await;
    }
    let w = ctx.opts.special_writers;
    cases.push(Case {
        layout: Layout::Shared,
        kind: Kind::Idempotent,
        writers: w,
        size: 100,
    });
    cases.push(Case {
        layout: Layout::Shared,
        kind: Kind::Json,
        writers: w,
        size: 100,
    });
    let mut out = Vec::new();
    for (i, case) in cases.into_iter().enumerate() {
        if ctx.opts.only.as_deref().is_some_and(|o| !case.name().contains(o)) {
            continue;
        }
        let r = run_case(ctx, case, i).await;
        ctx.report(&r);
        out.push(r);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let r = record(63, 12345, 100);
        assert_eq!(r.len(), 100);
        assert_eq!(parse_header(&r), Some((63, 12345)));
        let j: Value = serde_json::from_slice(&json_message(3, 7, 100)).unwrap();
        assert_eq!((j["w"].as_u64(), j["i"].as_u64()), (Some(3), Some(7)));
        assert!(json_message(3, 7, 100).len() >= 99);
    }
}
