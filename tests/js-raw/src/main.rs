//! `js-raw`: the benchmark baseline for the jetstream mode. Does directly against JetStream what
//! the server does for a client, so BENCHMARKS.md can show the cost of the server layer:
//! `publish` (W writers, each awaiting the acknowledgement of its message before the next, on
//! its own subject of an R-replica stream) and `read` (an ordered read of one subject's bytes).
//! Prints one JSON line per run.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use clap::Parser;
use futures_util::StreamExt;

#[derive(Parser, Debug)]
struct Opts {
    /// NATS addresses, comma-separated.
    #[arg(long)]
    urls: String,
    /// publish or read.
    #[arg(long, default_value = "publish")]
    mode: String,
    #[arg(long, default_value_t = 64)]
    writers: usize,
    #[arg(long, default_value_t = 100)]
    size: usize,
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// read: megabytes to write, then read back.
    #[arg(long, default_value_t = 100)]
    mb: usize,
    #[arg(long, default_value_t = 3)]
    replicas: usize,
    /// publish: how many JetStream streams the writers' subjects are spread over (writer w on
    /// stream w mod N), like the jetstream mode's `shards` (8 by default).
    #[arg(long, default_value_t = 1)]
    streams: usize,
    /// publish: what each publish carries beyond its body, comma-separated, to see what the
    /// server's choices cost the cluster: msgid (Nats-Msg-Id), expect (expected last subject
    /// sequence), headers (the server's three DS-* headers), republish (headers-only republish,
    /// received by a subscriber on this connection as a host's change listener receives it).
    #[arg(long, default_value = "")]
    extras: String,
    /// The cluster's node processes: their CPU per operation is reported
    /// (`backend_cpu_us_per_op`), beside this client's own (`client_cpu_us_per_op`).
    #[arg(long, value_delimiter = ',')]
    backend_pids: Vec<u32>,
}

/// utime + stime of the processes, summed, in microseconds (clock ticks of 10 ms).
fn cpu_micros(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
            let f: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
            Some((f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?) * 10_000)
        })
        .sum()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let o = Opts::parse();
    let addrs: Vec<async_nats::ServerAddr> = o.urls.split(',').map(|u| u.parse()).collect::<Result<_, _>>()?;
    let client = async_nats::connect(addrs).await?;
    let js = jetstream::new(client.clone());
    let run = format!("r{}", std::process::id());
    let name = format!("RAW_{run}");
    let config = |k: usize| stream::Config {
        name: format!("{name}_{k}"),
        subjects: vec![format!("raw.{run}.{k}.>")],
        num_replicas: o.replicas,
        storage: stream::StorageType::File,
        republish: o.extras.contains("republish").then(|| stream::Republish {
            source: format!("raw.{run}.{k}.>"),
            destination: format!("rawn.{run}.{k}.>"),
            headers_only: true,
        }),
        ..Default::default()
    };
    let shards = o.streams.max(1);
    let mut streams = Vec::new();
    for k in 0..shards {
        streams.push(js.create_stream(config(k)).await?);
    }
    let st = streams[0].clone();
    let result = match o.mode.as_str() {
        "publish" => {
            if o.extras.contains("republish") {
                let mut notes = client.subscribe(format!("rawn.{run}.>")).await?;
                tokio::spawn(async move { while notes.next().await.is_some() {} });
            }
            let deadline = Instant::now() + Duration::from_secs(o.duration_secs);
            let started = Instant::now();
            let (backend0, client0) = (cpu_micros(&o.backend_pids), cpu_micros(&[std::process::id()]));
            let mut tasks = Vec::new();
            for w in 0..o.writers {
                let js = js.clone();
                let subject = format!("raw.{run}.{}.{w}", w % shards);
                let body = bytes::Bytes::from(vec![b'x'; o.size]);
                let extras = o.extras.clone();
                let stream_name = format!("{name}_{}", w % shards);
                tasks.push(tokio::spawn(async move {
                    let mut n = 0u64;
                    let mut last = 0u64;
                    while Instant::now() < deadline {
                        if extras.is_empty() {
                            js.publish(subject.clone(), body.clone()).await.unwrap().await.unwrap();
                        } else {
                            let mut m = jetstream::message::PublishMessage::build().payload(body.clone());
                            if extras.contains("msgid") {
                                m = m.message_id(format!("{w}.{n}"));
                            }
                            if extras.contains("expect") {
                                m = m.expected_last_subject_sequence(last);
                            }
                            if extras.contains("headers") {
                                m = m
                                    .header("DS-State", format!("{{\"tail\":{},\"n\":{n},\"closed\":false,\"closed_by\":null,\"stream_seq\":null,\"producers\":{{}},\"deleted\":null}}", n * 100))
                                    .header("DS-Nonce", "0123456789abcdef")
                                    .header("DS-Name", subject.as_str());
                            }
                            match js.send_publish(subject.clone(), m).await.unwrap().await {
                                Ok(ack) => last = ack.sequence,
                                Err(e) => {
                                    eprintln!("js-raw: {e}");
                                    let st = js.get_stream(&stream_name).await.unwrap();
                                    last = st.get_last_raw_message_by_subject(&subject).await.map_or(0, |m| m.sequence);
                                    continue;
                                }
                            }
                        }
                        n += 1;
                    }
                    n
                }));
            }
            let mut total = 0;
            for t in tasks {
                total += t.await?;
            }
            let secs = started.elapsed().as_secs_f64();
            let per_op = |used: u64| ((used as f64 / total.max(1) as f64) * 10.0).round() / 10.0;
            let backend = per_op(cpu_micros(&o.backend_pids) - backend0);
            let client = per_op(cpu_micros(&[std::process::id()]) - client0);
            let layout = if shards > 1 { format!("/{shards}streams") } else { String::new() };
            let case = match o.extras.as_str() {
                "" => format!("raw/publish{layout}/w{}/{}B", o.writers, o.size),
                x => format!("raw/publish+{x}{layout}/w{}/{}B", o.writers, o.size),
            };
            serde_json::json!({"case": case, "ops": total, "per_sec": (total as f64 / secs).round(),
                "client_cpu_us_per_op": client, "backend_cpu_us_per_op": backend})
        }
        _ => {
            let subject = format!("raw.{run}.0.read");
            let chunk = bytes::Bytes::from(vec![b'y'; 64 << 10]);
            let n = o.mb * 16;
            let mut acks = Vec::new();
            for _ in 0..n {
                acks.push(js.publish(subject.clone(), chunk.clone()).await?);
                if acks.len() >= 256 {
                    for a in acks.drain(..) {
                        a.await?;
                    }
                }
            }
            for a in acks {
                a.await?;
            }
            let started = Instant::now();
            let (backend0, client0) = (cpu_micros(&o.backend_pids), cpu_micros(&[std::process::id()]));
            let c = st
                .create_consumer(consumer::pull::OrderedConfig {
                    filter_subject: subject,
                    ..Default::default()
                })
                .await?;
            let mut msgs = c.messages().await?;
            let mut bytes = 0usize;
            let mut got = 0;
            while got < n {
                let m = msgs.next().await.ok_or("ended")??;
                bytes += m.payload.len();
                got += 1;
            }
            let secs = started.elapsed().as_secs_f64();
            // CPU per MB read: this client's, and the nodes' (with --backend-pids).
            let mb = bytes as f64 / 1e6;
            let client = (cpu_micros(&[std::process::id()]) - client0) as f64 / mb;
            let backend = (cpu_micros(&o.backend_pids) - backend0) as f64 / mb;
            serde_json::json!({"case": format!("raw/ordered-read/{}MB", o.mb), "bytes": bytes, "mb_per_sec": ((bytes as f64 / 1e6 / secs) * 10.0).round() / 10.0,
                "client_cpu_us_per_mb": client.round(), "backend_cpu_us_per_mb": backend.round()})
        }
    };
    println!("{result}");
    for k in 0..shards {
        let _ = js.delete_stream(format!("{name}_{k}")).await;
    }
    Ok(())
}
