//! `ds-fanout`: many readers of one stream through a caching proxy (issue 30). Live: `readers`
//! long-poll readers follow one stream through `--proxy`, echoing `Stream-Cursor` as clients
//! do, while a writer appends `appends` messages to `--origin` at a steady pace; every reader
//! must see every message once, in order. Catch-up: `catchup-readers` readers read a
//! `catchup-mb` stream from the start through the proxy. The origin's own counters
//! (`/metrics`: long-poll requests, stream bytes served) say how much reached it. Prints one
//! JSON object with the figures (scripts/cdn.sh turns it into the summary line).
//!
//!     ds-fanout --proxy http://127.0.0.1:8080/v1/stream --origin http://127.0.0.1:4437/v1/stream

#[path = "../client.rs"]
#[allow(dead_code)]
mod client;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use client::{enc, Client};

#[derive(Parser)]
#[command(about = "Readers through a caching proxy: collapsed long-polls and catch-up")]
struct Args {
    /// The proxy's stream base URL.
    #[arg(long)]
    proxy: String,
    /// The server's own stream base URL (writes and /metrics go there).
    #[arg(long)]
    origin: String,
    #[arg(long, default_value_t = 1000)]
    readers: usize,
    #[arg(long, default_value_t = 50)]
    appends: usize,
    /// Milliseconds between appends.
    #[arg(long, default_value_t = 200)]
    pace_ms: u64,
    #[arg(long, default_value_t = 200)]
    catchup_readers: usize,
    #[arg(long, default_value_t = 50)]
    catchup_mb: usize,
    /// A token every request sends (token mode); it also reads /metrics, so give it admin.
    #[arg(long)]
    token: Option<String>,
}

/// The sum of a counter's samples in the origin's /metrics whose line starts with `prefix`.
async fn counter(origin: &Client, root: &str, prefix: &str) -> u64 {
    let Ok(r) = origin.get(&format!("{root}/metrics")).await else {
        return 0;
    };
    String::from_utf8_lossy(&r.body)
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// One live reader: long-polls from the start until it has seen the last message.
async fn follow(proxy: Client, url: String, last: String) -> Result<Vec<u8>, String> {
    let mut offset = "-1".to_string();
    let mut cursor: Option<String> = None;
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    while Instant::now() < deadline {
        let mut u = format!("{url}?offset={}&live=long-poll", enc(&offset));
        if let Some(c) = &cursor {
            u.push_str(&format!("&cursor={}", enc(c)));
        }
        let r = match proxy.get(&u).await {
            Ok(r) => r,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        match r.status.as_u16() {
            200 | 204 => {
                if r.status.as_u16() == 200 {
                    got.extend_from_slice(&r.body);
                }
                if let Some(n) = r.next_offset() {
                    offset = n.to_string();
                }
                cursor = r.cursor().map(str::to_string);
                if got.ends_with(last.as_bytes()) {
                    return Ok(got);
                }
            }
            other => return Err(format!("status {other}")),
        }
    }
    Err("did not see the last message in 180 s".into())
}

/// One catch-up reader: reads the whole stream from the start; returns the bytes read.
async fn catch_up(proxy: Client, url: String) -> Result<u64, String> {
    let mut offset = "-1".to_string();
    let mut total = 0u64;
    loop {
        let r = proxy
            .get(&format!("{url}?offset={}", enc(&offset)))
            .await
            .map_err(|e| e.to_string())?;
        if r.status.as_u16() != 200 {
            return Err(format!("status {}", r.status));
        }
        total += r.body.len() as u64;
        offset = r.next_offset().ok_or("no Stream-Next-Offset")?.to_string();
        if r.up_to_date() {
            return Ok(total);
        }
    }
}

#[tokio::main]
async fn main() {
    let a = Args::parse();
    let token = a.token.as_deref();
    let origin = Client::new(&a.origin, token);
    let root = a.origin.trim_end_matches('/').trim_end_matches("/v1/stream").to_string();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();

    // Live: long-poll readers through the proxy, a writer at the origin.
    let name = format!("cdn/live-{stamp}");
    origin.create(&name, "text/plain").await.expect("create the live stream");
    let polls_before = counter(&origin, &root, "ds_http_requests_total{operation=\"long_poll\"").await;
    let url = format!("{}/{}", a.proxy.trim_end_matches('/'), name);
    let last = format!("m{};", a.appends - 1);
    let readers: Vec<_> = (0..a.readers)
        .map(|_| tokio::spawn(follow(Client::new(&a.proxy, token), url.clone(), last.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let started = Instant::now();
    for i in 0..a.appends {
        let at = started + Duration::from_millis(a.pace_ms * i as u64);
        tokio::time::sleep_until(at.into()).await;
        let r = origin
            .append(&name, "text/plain", Bytes::from(format!("m{i};")), None)
            .await
            .expect("append");
        assert!(r.status.is_success(), "append {i}: {}", r.status);
    }
    let (mut missed, mut duplicated, mut disordered, mut failed) = (0usize, 0usize, 0usize, 0usize);
    for r in readers {
        match r.await.unwrap() {
            Ok(got) => {
                let text = String::from_utf8_lossy(&got);
                let seen: Vec<usize> = text
                    .split(';')
                    .filter(|s| !s.is_empty())
                    .filter_map(|s| s.strip_prefix('m')?.parse().ok())
                    .collect();
                let mut count = vec![0usize; a.appends];
                for &i in &seen {
                    if i < a.appends {
                        count[i] += 1;
                    }
                }
                missed += count.iter().filter(|&&c| c == 0).count();
                duplicated += count.iter().map(|&c| c.saturating_sub(1)).sum::<usize>();
                disordered += usize::from(seen.windows(2).any(|w| w[0] >= w[1]));
            }
            Err(_) => {
                failed += 1;
                missed += a.appends;
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let polls = counter(&origin, &root, "ds_http_requests_total{operation=\"long_poll\"").await - polls_before;

    // Catch-up: one large stream, many readers from the start.
    let big = format!("cdn/big-{stamp}");
    origin
        .create(&big, "application/octet-stream")
        .await
        .expect("create the catch-up stream");
    let chunk = Bytes::from(vec![b'x'; 1 << 20]);
    for _ in 0..a.catchup_mb {
        let r = origin
            .append(&big, "application/octet-stream", chunk.clone(), None)
            .await
            .expect("append");
        assert!(r.status.is_success());
    }
    let size = (a.catchup_mb as u64) << 20;
    let bytes_before = counter(&origin, &root, "ds_read_bytes_total").await;
    let big_url = format!("{}/{}", a.proxy.trim_end_matches('/'), big);
    let started = Instant::now();
    let tasks: Vec<_> = (0..a.catchup_readers)
        .map(|_| tokio::spawn(catch_up(Client::new(&a.proxy, token), big_url.clone())))
        .collect();
    let mut delivered = 0u64;
    let mut short = 0usize;
    for t in tasks {
        match t.await.unwrap() {
            Ok(n) if n == size => delivered += n,
            Ok(n) => {
                delivered += n;
                short += 1;
            }
            Err(_) => short += 1,
        }
    }
    let catchup_secs = started.elapsed().as_secs_f64();
    let served = counter(&origin, &root, "ds_read_bytes_total").await - bytes_before;
    let out = Arc::new(serde_json::json!({
        "readers": a.readers,
        "appends": a.appends,
        "origin_long_polls": polls,
        "origin_long_polls_per_append": polls as f64 / a.appends as f64,
        "missed": missed,
        "duplicated": duplicated,
        "readers_out_of_order": disordered,
        "readers_failed": failed,
        "catchup_readers": a.catchup_readers,
        "stream_bytes": size,
        "delivered_bytes": delivered,
        "origin_bytes": served,
        "origin_bytes_x_stream": served as f64 / size as f64,
        "catchup_readers_short": short,
        "catchup_secs": catchup_secs,
    }));
    println!("{out}");
}
