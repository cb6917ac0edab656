//! Clients that work through both hosts while faults come and go, recording every operation
//! (invocation, completion, answer) for `ds-history-check`; and the final read of every stream.
//! Producer appends are retried with the same stamp and body until they get a definite answer,
//! as a producer client does.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ds_history_check::{Answer, Final, FinalStream, Kind, Op, Stamp};
use reqwest::blocking::{Client, Response};

pub fn offset(pos: u64) -> String {
    format!("0000000000000000_{pos:016}")
}

fn position(v: &str) -> Option<u64> {
    v.rsplit('_').next()?.parse().ok()
}

/// The history being recorded; times are milliseconds on the harness's clock.
pub struct Recorder {
    start: Instant,
    next: AtomicU64,
    ops: Mutex<Vec<Op>>,
}

impl Recorder {
    pub fn new() -> Arc<Recorder> {
        Arc::new(Recorder {
            start: Instant::now(),
            next: AtomicU64::new(1),
            ops: Mutex::new(Vec::new()),
        })
    }

    pub fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Runs `request` and records it as `kind` on `stream` through `host`.
    pub fn run(&self, host: &str, stream: &str, kind: Kind, request: impl FnOnce() -> reqwest::Result<Response>) -> Answer {
        let invoked_ms = self.now_ms();
        let answer = match request() {
            Ok(r) => answer_of(r),
            Err(_) => Answer::default(),
        };
        let op = Op {
            id: self.next.fetch_add(1, Ordering::Relaxed),
            client: format!("{:?}", std::thread::current().id()),
            host: host.to_string(),
            stream: stream.to_string(),
            invoked_ms,
            completed_ms: self.now_ms(),
            kind,
            answer: answer.clone(),
        };
        self.ops.lock().unwrap().push(op);
        answer
    }

    /// Records something the harness received rather than asked for (a webhook wake).
    pub fn note(&self, host: &str, stream: &str, kind: Kind) {
        let at = self.now_ms();
        let op = Op {
            id: self.next.fetch_add(1, Ordering::Relaxed),
            client: "webhook".into(),
            host: host.to_string(),
            stream: stream.to_string(),
            invoked_ms: at,
            completed_ms: at,
            kind,
            answer: Answer {
                status: Some(200),
                ..Answer::default()
            },
        };
        self.ops.lock().unwrap().push(op);
    }

    pub fn ops(&self) -> Vec<Op> {
        self.ops.lock().unwrap().clone()
    }
}

fn answer_of(r: Response) -> Answer {
    let status = r.status().as_u16();
    let header = |n: &str| r.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
    let next = header("stream-next-offset").and_then(|v| position(&v));
    let up_to_date = header("stream-up-to-date").is_some_and(|v| v == "true");
    let closed = header("stream-closed").is_some_and(|v| v == "true");
    let data = r.text().ok();
    Answer {
        status: Some(status),
        next,
        data: if status == 200 { data } else { None },
        up_to_date,
        closed,
    }
}

/// What the clients send besides their operations: a bearer token (hosts with access
/// control), and a sliding TTL for the streams they create.
#[derive(Clone, Default)]
pub struct Profile {
    pub bearer: Option<String>,
    pub ttl_secs: Option<u64>,
}

impl Profile {
    /// A client giving up after `timeout`, sending the bearer token if there is one.
    pub fn client_with(&self, timeout: Duration) -> Client {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(t) = &self.bearer {
            headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {t}").parse().unwrap());
        }
        Client::builder().timeout(timeout).default_headers(headers).build().unwrap()
    }

    /// Longer than a host's own retries of an append whose outcome it does not know (30 s).
    pub fn client(&self) -> Client {
        self.client_with(Duration::from_secs(40))
    }
}

/// Creates `name` through `url` (retrying until the cluster answers), recorded.
pub fn create(rec: &Recorder, p: &Profile, host: &str, url: &str, name: &str) {
    let c = p.client();
    for _ in 0..100 {
        let a = rec.run(host, name, Kind::Create { ttl_secs: p.ttl_secs }, || {
            let put = c.put(format!("{url}/v1/stream/{name}")).header("Content-Type", "text/plain");
            match p.ttl_secs {
                Some(t) => put.header("Stream-TTL", t.to_string()),
                None => put,
            }
            .send()
        });
        if matches!(a.status, Some(200 | 201)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("could not create {name}");
}

/// A webhook subscription `w` to streams matching `pattern`, its wakes sent to the receiver on
/// the delivering host's own loopback at `port` (retrying until the cluster answers).
pub fn subscribe(p: &Profile, url: &str, pattern: &str, port: u16) {
    let c = p.client();
    let body = serde_json::json!({"type": "webhook", "pattern": pattern, "webhook": {"url": format!("http://127.0.0.1:{port}/hook")}});
    for _ in 0..100 {
        let r = c
            .put(format!("{url}/v1/stream/__ds/subscriptions/w"))
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send();
        match r.map(|r| r.status().as_u16()) {
            Ok(200 | 201) => return,
            Ok(s @ 400..=499) => panic!("subscription refused: {s}"),
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
    panic!("could not subscribe to {pattern}");
}

/// One client: until `until`, producer appends (70 %) and reads (30 %) on `streams`, through
/// the hosts in turn, giving up on an answer after 3 s. An append without a definite answer is
/// retried with the same stamp and body through the other host (until `give_up`), as a producer
/// behind a load balancer does.
/// A 404 is recorded and the append dropped (the checker decides whether the stream was gone
/// too early); any other refusal stops the run.
pub fn client_loop(
    rec: Arc<Recorder>,
    p: Profile,
    me: usize,
    hosts: Vec<(String, String)>,
    streams: Vec<String>,
    until: Instant,
    give_up: Instant,
) {
    let c = p.client_with(Duration::from_secs(3));
    let mut seq = vec![0u64; streams.len()];
    let mut tail = vec![0u64; streams.len()];
    let mut n = 0u64;
    let mut x = (me as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut rand = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    while Instant::now() < until {
        n += 1;
        let first = n as usize + me;
        let (host, url) = &hosts[first % hosts.len()];
        let s = (rand() % streams.len() as u64) as usize;
        let name = &streams[s];
        if rand() % 10 < 7 {
            let body = format!("<c{me}.{s}.{}>", seq[s]);
            let stamp = Stamp {
                id: format!("c{me}"),
                epoch: 0,
                seq: seq[s],
            };
            for attempt in 0.. {
                let (host, url) = &hosts[(first + attempt) % hosts.len()];
                let kind = Kind::Append {
                    body: body.clone(),
                    producer: Some(stamp.clone()),
                    close: false,
                };
                let a = rec.run(host, name, kind, || {
                    c.post(format!("{url}/v1/stream/{name}"))
                        .header("Content-Type", "text/plain")
                        .header("Producer-Id", &stamp.id)
                        .header("Producer-Epoch", stamp.epoch.to_string())
                        .header("Producer-Seq", stamp.seq.to_string())
                        .body(body.clone())
                        .send()
                });
                match a.status {
                    Some(200..=299) => {
                        seq[s] += 1;
                        tail[s] = tail[s].max(a.next.unwrap_or(0));
                        break;
                    }
                    Some(404) => break,
                    Some(400..=499) => panic!("append {body} to {name} refused: {a:?}"),
                    _ if Instant::now() < give_up => std::thread::sleep(Duration::from_millis(250)),
                    _ => return,
                }
            }
        } else {
            let from = if tail[s] == 0 { 0 } else { rand() % (tail[s] + 1) };
            rec.run(host, name, Kind::Read { offset: from }, || {
                c.get(format!("{url}/v1/stream/{name}?offset={}", offset(from))).send()
            });
        }
    }
}

/// Every stream read in full through `url` once the system answers again.
/// An error names the stream whose final read got no answer for 60 s (the system did not
/// resume).
pub fn final_state(p: &Profile, url: &str, streams: &[String]) -> Result<Final, String> {
    let c = p.client();
    let mut fin = Final::new();
    for name in streams {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut content = String::new();
        let mut at = 0u64;
        let mut last_error = String::new();
        let (exists, closed) = loop {
            let r = c.get(format!("{url}/v1/stream/{name}?offset={}", offset(at))).send();
            let a = match r {
                Ok(r) => answer_of(r),
                Err(e) => {
                    last_error = e.to_string();
                    Answer::default()
                }
            };
            match a.status {
                Some(404) => break (false, false),
                Some(200) => {
                    content.push_str(a.data.as_deref().unwrap_or(""));
                    at = a.next.unwrap_or(at);
                    if a.up_to_date {
                        break (true, a.closed);
                    }
                }
                _ if Instant::now() >= deadline => {
                    return Err(format!("the final read of {name} got no answer for 60 s: {a:?} {last_error}"));
                }
                _ => std::thread::sleep(Duration::from_millis(250)),
            }
        };
        fin.insert(name.clone(), FinalStream { exists, content, closed });
    }
    Ok(fin)
}
