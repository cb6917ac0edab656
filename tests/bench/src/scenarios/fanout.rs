//! Live fan-out: N subscribers (SSE or long-poll) on one text stream while one writer appends
//! `<seq> <send-ns>` every interval; end-to-end latency, and gaps / duplicates per subscriber.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tokio::time::MissedTickBehavior;

use super::Ctx;
use crate::client::{enc, fail, flag, Res};
use crate::stats::{BenchResult, Samples};

const TEXT: &str = "text/plain";
/// How long subscribers may still wait for missing messages once the writer stops.
const GRACE: Duration = Duration::from_secs(10);
/// How often a waiting subscriber looks at whether the run is over.
const POLL: Duration = Duration::from_millis(200);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Sse,
    LongPoll,
}

/// State shared by the writer and all subscribers of one case.
struct Run {
    start: Instant,
    /// (messages sent, hard deadline) once the writer has finished.
    done: OnceLock<(u64, Instant)>,
    ready: AtomicUsize,
}

impl Run {
    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
    /// True when the subscriber has everything, or the grace period is over.
    fn over(&self, t: &Tally) -> bool {
        self.done
            .get()
            .is_some_and(|&(total, hard)| t.next >= total || Instant::now() >= hard)
    }
}

/// What one subscriber saw.
#[derive(Default)]
struct Tally {
    next: u64,
    received: u64,
    gaps: u64,
    dups: u64,
    reconnects: u64,
    latency: Samples,
    /// The first anomaly seen, as (expected seq, received seq), for the failure message.
    first_odd: Option<(u64, u64)>,
}

impl Tally {
    fn on_text(&mut self, text: &str, now_ns: u64) -> Res<()> {
        for line in text.split('\n').map(str::trim).filter(|l| !l.is_empty()) {
            let (seq, ts) = line.split_once(' ').ok_or_else(|| format!("unexpected message {line:?}"))?;
            let (seq, ts): (u64, u64) = (seq.parse()?, ts.parse()?);
            if seq != self.next && self.first_odd.is_none() {
                self.first_odd = Some((self.next, seq));
            }
            if seq < self.next {
                self.dups += 1;
                continue;
            }
            self.gaps += seq - self.next;
            self.next = seq + 1;
            self.received += 1;
            self.latency.push_us(now_ns.saturating_sub(ts) / 1000);
        }
        Ok(())
    }
}

/// Incremental Server-Sent Events parser yielding (event, data) pairs.
#[derive(Default)]
struct SseParser {
    buf: Vec<u8>,
    event: String,
    data: String,
    has_data: bool,
}

impl SseParser {
    fn push(&mut self, chunk: &[u8], out: &mut Vec<(String, String)>) {
        self.buf.extend_from_slice(chunk);
        let mut start = 0;
        while let Some(pos) = self.buf[start..].iter().position(|&b| b == b'\n' || b == b'\r') {
            let end = start + pos;
            let skip = match (self.buf[end], self.buf.get(end + 1)) {
                (b'\r', Some(b'\n')) => 2,
                (b'\r', None) => break, // a '\n' may follow in the next chunk
                _ => 1,
            };
            let line = String::from_utf8_lossy(&self.buf[start..end]).into_owned();
            self.line(&line, out);
            start = end + skip;
        }
        self.buf.drain(..start);
    }

    fn line(&mut self, line: &str, out: &mut Vec<(String, String)>) {
        if line.is_empty() {
            if self.has_data || !self.event.is_empty() {
                let ev = if self.event.is_empty() {
                    "message".to_string()
                } else {
                    std::mem::take(&mut self.event)
                };
                out.push((ev, std::mem::take(&mut self.data)));
            }
            self.event.clear();
            self.has_data = false;
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.event = value.to_string(),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            _ => {}
        }
    }
}

async fn sse_subscriber(ctx: Ctx, run: Arc<Run>, name: String) -> Res<Tally> {
    let mut t = Tally::default();
    let (mut offset, mut cursor) = ("now".to_string(), None::<String>);
    let mut counted_ready = false;
    let mut events = Vec::new();
    loop {
        let mut url = format!("{}?offset={}&live=sse", ctx.client.url(&name), enc(&offset));
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={}", enc(c)));
        }
        let req = Request::get(&url).body(Full::new(Bytes::new()))?;
        let resp = tokio::time::timeout(Duration::from_secs(30), ctx.client.open(req))
            .await
            .map_err(|_| "SSE connect timed out")??;
        if resp.status() != StatusCode::OK {
            return fail(format!("SSE GET {name}: unexpected status {}", resp.status()));
        }
        let b64 = resp
            .headers()
            .get("stream-sse-data-encoding")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"base64"));
        let mut body = resp.into_body();
        let mut parser = SseParser::default();
        loop {
            if run.over(&t) {
                return Ok(t);
            }
            let frame = match tokio::time::timeout(POLL, body.frame()).await {
                Err(_) => continue,
                Ok(None) | Ok(Some(Err(_))) => break,
                Ok(Some(Ok(f))) => f,
            };
            let Some(data) = frame.data_ref() else { continue };
            parser.push(data, &mut events);
            for (ev, data) in events.drain(..) {
                match ev.as_str() {
                    "data" if b64 => {
                        let clean: String = data.chars().filter(|c| *c != '\n' && *c != '\r').collect();
                        let raw = base64::engine::general_purpose::STANDARD.decode(clean)?;
                        t.on_text(&String::from_utf8_lossy(&raw), run.now_ns())?;
                    }
                    "data" => t.on_text(&data, run.now_ns())?,
                    "control" => {
                        let v: serde_json::Value = serde_json::from_str(&data)?;
                        if let Some(o) = v["streamNextOffset"].as_str() {
                            offset = o.to_string();
                        }
                        if let Some(c) = v["streamCursor"].as_str() {
                            cursor = Some(c.to_string());
                        }
                        if !counted_ready {
                            counted_ready = true;
                            run.ready.fetch_add(1, Ordering::SeqCst);
                        }
                        if v["streamClosed"].as_bool() == Some(true) {
                            return Ok(t);
                        }
                    }
                    _ => {}
                }
            }
        }
        if run.over(&t) {
            return Ok(t);
        }
        // The server ended the response (reconnect interval) or the connection broke.
        t.reconnects += 1;
    }
}

async fn long_poll_subscriber(ctx: Ctx, run: Arc<Run>, name: String) -> Res<Tally> {
    let mut t = Tally::default();
    let base = ctx.client.url(&name);
    let first = ctx.client.get(&format!("{base}?offset=now")).await?;
    if first.status != StatusCode::OK {
        return fail(format!("GET {name}?offset=now: unexpected status {}", first.status));
    }
    let mut offset = first.next_offset().ok_or("no Stream-Next-Offset on offset=now")?.to_string();
    let mut cursor: Option<String> = None;
    run.ready.fetch_add(1, Ordering::SeqCst);
    while !run.over(&t) {
        let mut url = format!("{base}?offset={}&live=long-poll", enc(&offset));
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={}", enc(c)));
        }
        let r = ctx.client.get(&url).await?;
        match r.status {
            StatusCode::OK => t.on_text(&String::from_utf8_lossy(&r.body), run.now_ns())?,
            StatusCode::NO_CONTENT => {}
            s => return fail(format!("long-poll {name}: unexpected status {s}")),
        }
        offset = r.next_offset().ok_or("long-poll answer without Stream-Next-Offset")?.to_string();
        cursor = r.cursor().map(str::to_string).or(cursor);
        if flag(&r.headers, "stream-closed") {
            break;
        }
    }
    Ok(t)
}

/// The writer: one `<seq> <ns>` line per interval until the duration is over.
async fn writer(ctx: &Ctx, run: &Run, name: &str) -> Res<(u64, Samples)> {
    let mut tick = tokio::time::interval(Duration::from_millis(ctx.opts.interval_ms.max(1)));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let end = Instant::now() + Duration::from_secs(ctx.opts.duration_secs);
    let (mut seq, mut lat) = (0u64, Samples::default());
    while Instant::now() < end {
        tick.tick().await;
        let body = Bytes::from(format!("{seq} {}\n", run.now_ns()));
        let t0 = Instant::now();
        let r = ctx.writer.append(name, TEXT, body, None).await?;
        if r.status != StatusCode::NO_CONTENT && r.status != StatusCode::OK {
            return fail(format!("append to {name}: unexpected status {}", r.status));
        }
        lat.push(t0.elapsed());
        seq += 1;
    }
    Ok((seq, lat))
}

async fn run_case(ctx: &Ctx, mode: Mode, n: usize) -> Res<BenchResult> {
    let label = if mode == Mode::Sse { "sse" } else { "long-poll" };
    let name = format!("{}-fan-{label}-{n}", ctx.prefix);
    ctx.writer.create(&name, TEXT).await?;
    let run = Arc::new(Run {
        start: Instant::now(),
        done: OnceLock::new(),
        ready: AtomicUsize::new(0),
    });
    let subs: Vec<_> = (0..n)
        .map(|_| match mode {
            Mode::Sse => tokio::spawn(sse_subscriber(ctx.clone(), run.clone(), name.clone())),
            Mode::LongPoll => tokio::spawn(long_poll_subscriber(ctx.clone(), run.clone(), name.clone())),
        })
        .collect();
    let wait_ready = Instant::now() + Duration::from_secs(60);
    while run.ready.load(Ordering::SeqCst) < n {
        if Instant::now() > wait_ready || subs.iter().any(|s| s.is_finished()) {
            let _ = run.done.set((0, Instant::now()));
            return fail(format!("only {} of {n} subscribers became ready", run.ready.load(Ordering::SeqCst)));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let cpu = ctx.server.cpu_window();
    let t0 = Instant::now();
    let mut written = writer(ctx, &run, &name).await;
    let write_secs = t0.elapsed();
    let total = *written.as_ref().map(|(s, _)| s).unwrap_or(&0);
    let _ = run.done.set((total, Instant::now() + GRACE));
    let (mut lat, mut failure) = (Samples::default(), written.as_ref().err().map(|e| e.to_string()));
    let (mut delivered, mut gaps, mut dups, mut reconnects) = (0u64, 0u64, 0u64, 0u64);
    let (mut odd, mut short) = (None, (0u64, 0u64));
    for s in subs {
        match s.await {
            Ok(Ok(t)) => {
                delivered += t.received;
                gaps += t.gaps + total.saturating_sub(t.next);
                odd = odd.or(t.first_odd);
                if t.next < total {
                    short = (short.0 + 1, short.1.max(total - t.next));
                }
                dups += t.dups;
                reconnects += t.reconnects;
                lat.merge(t.latency);
            }
            Ok(Err(e)) => failure = failure.or(Some(format!("subscriber: {e}"))),
            Err(e) => failure = failure.or(Some(format!("subscriber panicked: {e}"))),
        }
    }
    let mut r = BenchResult::new(format!("fanout/{label}/n{n}"), delivered as f64, write_secs, "deliveries/s");
    r.cpu_us_per_op = cpu.per_op(delivered);
    r.backend_cpu_us_per_op = cpu.backend_per_op(delivered);
    r.latency = lat.summary();
    let append_p50 = match &mut written {
        Ok((_, l)) => l.summary().map(|p| p.p50),
        Err(_) => None,
    };
    r = r
        .with_extra("msgs", total)
        .with_extra("gaps", gaps)
        .with_extra("dups", dups)
        .with_extra("reconnects", reconnects);
    if let Some(p) = append_p50 {
        r = r.with_extra("append_p50_us", p);
    }
    if failure.is_none() && (gaps > 0 || dups > 0) {
        let mut why = format!("{gaps} missing and {dups} duplicate deliveries across {n} subscribers");
        if let Some((want, got)) = odd {
            why.push_str(&format!("; first out of order: expected seq {want}, got {got}"));
        }
        if short.0 > 0 {
            why.push_str(&format!(
                "; {} subscribers lacked the last messages (up to {}) {}s after the writer stopped",
                short.0,
                short.1,
                GRACE.as_secs()
            ));
        }
        failure = Some(why);
    }
    r.failure = failure;
    if !ctx.opts.keep {
        let _ = ctx.client.delete(&name).await;
    }
    Ok(r)
}

pub async fn run(ctx: &Ctx) -> Vec<BenchResult> {
    let mut out = Vec::new();
    for mode in [Mode::Sse, Mode::LongPoll] {
        for &n in &ctx.opts.subscribers {
            let label = if mode == Mode::Sse { "sse" } else { "long-poll" };
            let r = run_case(ctx, mode, n)
                .await
                .unwrap_or_else(|e| BenchResult::failed(format!("fanout/{label}/n{n}"), "deliveries/s", e.to_string()));
            ctx.report(&r);
            out.push(r);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sse_across_chunks() {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        p.push(b"event: data\ndata:1 5\ndata:2 6\ndata:\n\n: keep\r\nevent: control\r", &mut out);
        p.push(b"\ndata:{\"streamNextOffset\":\"7\"}\n\n", &mut out);
        assert_eq!(out[0], ("data".to_string(), "1 5\n2 6\n".to_string()));
        assert_eq!(out[1].0, "control");
        let mut t = Tally::default();
        t.on_text(&out[0].1, 10_000).unwrap();
        t.on_text("1 5\n3 7\n", 10_000).unwrap();
        assert_eq!((t.received, t.dups, t.gaps, t.next), (3, 1, 1, 4));
    }
}
