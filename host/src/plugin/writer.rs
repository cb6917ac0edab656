//! Group commit: a writer thread hands every append queued while its previous group committed to
//! a single `append_many`, so a durable engine pays one fsync (or one transaction) per group.
//! Engines that declare `CONCURRENT_GROUPS` (a network engine, whose cost is a round trip, not
//! an fsync) get several lanes, each a thread with its own group in flight; a stream's appends
//! always take the same lane, so they commit in submission order.

use std::sync::mpsc;

use abi_stable::std_types::{RResult, RSlice, RStr};
use bytes::Bytes;
use durable_streams_core::abi::{AppendOutcome, AppendRequest, EngineBox, EngineError, ErrorCode, ProducerRef};
use std::sync::Arc;

/// An append that owns its bytes, so it can wait in a queue.
#[derive(Clone, Debug)]
pub struct OwnedAppend {
    pub name: String,
    pub content_type: Option<String>,
    pub body: Bytes,
    pub close: bool,
    pub producer: Option<(String, u64, u64)>,
    pub stream_seq: Option<String>,
    pub now_ms: u64,
}

impl OwnedAppend {
    /// The borrowed ABI view.
    pub fn as_request(&self) -> AppendRequest<'_> {
        self.parts().as_request()
    }

    /// The borrowed parts (nothing copied).
    pub fn parts(&self) -> AppendParts<'_> {
        AppendParts {
            name: &self.name,
            content_type: self.content_type.as_deref(),
            body: &self.body,
            close: self.close,
            producer: self.producer.as_ref().map(|(id, epoch, seq)| (id.as_str(), *epoch, *seq)),
            stream_seq: self.stream_seq.as_deref(),
            now_ms: self.now_ms,
        }
    }
}

/// An append whose names, headers and bytes the caller holds (an owned copy shares the bytes).
#[derive(Clone, Copy, Debug)]
pub struct AppendParts<'a> {
    pub name: &'a str,
    pub content_type: Option<&'a str>,
    pub body: &'a Bytes,
    pub close: bool,
    pub producer: Option<(&'a str, u64, u64)>,
    pub stream_seq: Option<&'a str>,
    pub now_ms: u64,
}

impl<'a> AppendParts<'a> {
    /// The borrowed ABI view.
    pub fn as_request(&self) -> AppendRequest<'a> {
        AppendRequest {
            name: RStr::from(self.name),
            content_type: self.content_type.map(RStr::from).into(),
            body: RSlice::from(&self.body[..]),
            close: self.close,
            producer: self
                .producer
                .map(|(id, epoch, seq)| ProducerRef {
                    id: RStr::from(id),
                    epoch,
                    seq,
                })
                .into(),
            stream_seq: self.stream_seq.map(RStr::from).into(),
            now_ms: self.now_ms,
        }
    }

    /// An owned copy of the names and headers, to wait in a queue (the body is shared).
    pub fn into_owned(self) -> OwnedAppend {
        OwnedAppend {
            name: self.name.to_string(),
            content_type: self.content_type.map(str::to_string),
            body: self.body.clone(),
            close: self.close,
            producer: self.producer.map(|(id, epoch, seq)| (id.to_string(), epoch, seq)),
            stream_seq: self.stream_seq.map(str::to_string),
            now_ms: self.now_ms,
        }
    }
}

type Reply = tokio::sync::oneshot::Sender<RResult<AppendOutcome, EngineError>>;

/// How a group writer runs.
#[derive(Clone, Copy, Debug)]
pub struct WriterSettings {
    /// How long a group waits for stragglers when it is smaller than the previous one.
    pub max_wait: std::time::Duration,
    /// Groups in flight at once, each on its own thread (a stream's appends always in one).
    pub lanes: usize,
}

/// The queues in front of the writer threads, one per lane.
pub struct GroupWriter {
    lanes: Vec<mpsc::Sender<(OwnedAppend, Reply)>>,
}

/// Most appends or bytes committed as one group.
const MAX_GROUP: usize = 1024;
const MAX_GROUP_BYTES: usize = 16 << 20;

/// One lane: hands everything queued while its previous group committed to one `append_many`.
fn run_lane(
    rx: mpsc::Receiver<(OwnedAppend, Reply)>,
    engine: Arc<EngineBox>,
    metrics: crate::metrics::CommitMetrics,
    max_wait: std::time::Duration,
    runtime: Option<tokio::runtime::Handle>,
) {
    // Size of the previous group: when this one is smaller, wait (at most `max_wait`) for the
    // writers that are still on their way back with their next append.
    let mut last = 1usize;
    while let Ok(first) = rx.recv() {
        // When the group was first found short (the clock is read only then).
        let mut opened: Option<std::time::Instant> = None;
        let mut group = vec![first];
        let mut bytes = group[0].0.body.len();
        loop {
            while group.len() < MAX_GROUP && bytes < MAX_GROUP_BYTES {
                match rx.try_recv() {
                    Ok(job) => {
                        bytes += job.0.body.len();
                        group.push(job);
                    }
                    Err(_) => break,
                }
            }
            if group.len() * 4 >= last * 3 || group.len() >= MAX_GROUP || bytes >= MAX_GROUP_BYTES {
                break;
            }
            let waited = opened.get_or_insert_with(std::time::Instant::now).elapsed();
            if waited >= max_wait {
                break;
            }
            // Sleep rather than block on the queue: a writer queueing meanwhile then wakes no
            // thread (a blocked receiver cost each append a futex wake-up: BENCHMARKS.md). In
            // slices, so that a group that fills early does not wait out the whole wait.
            std::thread::sleep((max_wait - waited).min(max_wait / 5));
        }
        last = group.len();
        let reqs: Vec<AppendRequest<'_>> = group.iter().map(|(a, _)| a.as_request()).collect();
        let started = std::time::Instant::now();
        let results = engine.append_many(RSlice::from(&reqs[..]));
        metrics.seconds.observe(started.elapsed().as_secs_f64());
        metrics.batch_size.observe(reqs.len() as f64);
        drop(reqs);
        let mut results = results.into_iter();
        // Each append's names and body go back with its answer, so that they are freed on the
        // runtime that allocated them, not here (a free from another thread takes mimalloc's
        // slower path).
        let answers: Vec<_> = group
            .into_iter()
            .map(|(append, reply)| {
                let r = results
                    .next()
                    .unwrap_or_else(|| RResult::RErr(EngineError::new(ErrorCode::INTERNAL, "engine returned fewer results than appends")));
                (append, reply, r)
            })
            .collect();
        // One task on the runtime wakes the group's requests, from a worker (one wake-up of the
        // runtime per group instead of one per append). One append, or outside a runtime: from here.
        match &runtime {
            Some(rt) if answers.len() > 1 => drop(rt.spawn(async move { answer(answers) })),
            _ => answer(answers),
        }
    }
}

/// Hands each append of a group its result.
fn answer(answers: Vec<(OwnedAppend, Reply, RResult<AppendOutcome, EngineError>)>) {
    for (append, reply, r) in answers {
        let _ = reply.send(r);
        drop(append);
    }
}

impl GroupWriter {
    pub fn start(engine: Arc<EngineBox>, metrics: crate::metrics::CommitMetrics, settings: WriterSettings) -> GroupWriter {
        let lanes = (0..settings.lanes.max(1))
            .map(|i| {
                let (tx, rx) = mpsc::channel::<(OwnedAppend, Reply)>();
                let (engine, metrics) = (engine.clone(), metrics.clone());
                let runtime = tokio::runtime::Handle::try_current().ok();
                std::thread::Builder::new()
                    .name(format!("ds-group-commit-{i}"))
                    .spawn(move || run_lane(rx, engine, metrics, settings.max_wait, runtime))
                    .expect("spawn a group-commit thread");
                tx
            })
            .collect();
        GroupWriter { lanes }
    }

    /// The lane of stream `name`: always the same one, so its appends commit in order.
    fn lane(&self, name: &str) -> &mpsc::Sender<(OwnedAppend, Reply)> {
        if self.lanes.len() == 1 {
            return &self.lanes[0];
        }
        let h = name
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3));
        &self.lanes[(h % self.lanes.len() as u64) as usize]
    }

    /// Queues an append and waits for its group to commit.
    /// Queues an append now (appends to one stream commit in submission order); await the
    /// result with `wait`.
    pub fn submit(&self, req: OwnedAppend) -> tokio::sync::oneshot::Receiver<RResult<AppendOutcome, EngineError>> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let _ = self.lane(&req.name).send((req, reply));
        rx
    }

    pub async fn wait(rx: tokio::sync::oneshot::Receiver<RResult<AppendOutcome, EngineError>>) -> RResult<AppendOutcome, EngineError> {
        rx.await
            .unwrap_or_else(|_| RResult::RErr(EngineError::new(ErrorCode::INTERNAL, "group-commit writer stopped")))
    }
}
