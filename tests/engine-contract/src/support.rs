//! Helpers for writing cases: request builders, assertions with readable failures.

use abi_stable::std_types::{ROption, RResult, RSlice, RStr};
use durable_streams_core::abi::*;

/// One contract case.
pub struct Case {
    pub name: &'static str,
    pub run: fn(&EngineBox) -> Result<(), Failure>,
}

/// Why a case failed.
#[derive(Debug, Clone)]
pub struct Failure {
    pub message: String,
}

impl Failure {
    pub fn new(message: impl Into<String>) -> Self {
        Failure { message: message.into() }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Results of a run.
#[derive(Debug, Default)]
pub struct Summary {
    pub passed: Vec<&'static str>,
    pub failed: Vec<(&'static str, Failure)>,
}

impl Summary {
    pub fn ok(&self) -> bool {
        self.failed.is_empty()
    }
    /// `N passed, N failed` plus one line per failure.
    pub fn report(&self) -> String {
        let mut s = String::new();
        for (name, f) in &self.failed {
            s.push_str(&format!("FAILED {name}: {f}\n"));
        }
        s.push_str(&format!("{} passed, {} failed", self.passed.len(), self.failed.len()));
        s
    }
}

pub const NOW: u64 = 1_800_000_000_000;

pub fn check(cond: bool, what: impl FnOnce() -> String) -> Result<(), Failure> {
    if cond {
        Ok(())
    } else {
        Err(Failure::new(what()))
    }
}

pub fn ok<T>(r: RResult<T, EngineError>, what: &str) -> Result<T, Failure> {
    match r {
        RResult::ROk(v) => Ok(v),
        RResult::RErr(e) => Err(Failure::new(format!("{what}: unexpected error {e}"))),
    }
}

pub fn code<T>(r: RResult<T, EngineError>, want: ErrorCode, what: &str) -> Result<EngineError, Failure> {
    match r {
        RResult::ROk(_) => Err(Failure::new(format!("{what}: expected error {}, got success", want.name()))),
        RResult::RErr(e) if e.code == want => Ok(e),
        RResult::RErr(e) => Err(Failure::new(format!("{what}: expected {}, got {e}", want.name()))),
    }
}

/// Builder for create requests.
pub struct Create<'a> {
    pub name: &'a str,
    pub ct: Option<&'a str>,
    pub lifetime: Lifetime,
    pub closed: bool,
    pub initial: &'a [u8],
    pub fork: Option<(&'a str, u64)>,
    pub now: u64,
}

impl<'a> Create<'a> {
    pub fn new(name: &'a str) -> Self {
        Create {
            name,
            ct: Some("text/plain"),
            lifetime: Lifetime::default(),
            closed: false,
            initial: b"",
            fork: None,
            now: NOW,
        }
    }
    pub fn run(&self, e: &EngineBox) -> RResult<CreateOutcome, EngineError> {
        e.create(&CreateRequest {
            name: RStr::from(self.name),
            content_type: self.ct.map(RStr::from).into(),
            lifetime: self.lifetime,
            closed: self.closed,
            initial: RSlice::from(self.initial),
            fork: match self.fork {
                Some((s, p)) => ROption::RSome(ForkFrom {
                    source: RStr::from(s),
                    position: p,
                }),
                None => ROption::RNone,
            },
            now_ms: self.now,
        })
    }
}

/// Builder for append requests.
pub struct Append<'a> {
    pub name: &'a str,
    pub ct: Option<&'a str>,
    pub body: &'a [u8],
    pub close: bool,
    pub producer: Option<(&'a str, u64, u64)>,
    pub seq: Option<&'a str>,
    pub now: u64,
}

impl<'a> Append<'a> {
    pub fn new(name: &'a str, body: &'a [u8]) -> Self {
        Append {
            name,
            ct: Some("text/plain"),
            body,
            close: false,
            producer: None,
            seq: None,
            now: NOW,
        }
    }
    pub fn req(&self) -> AppendRequest<'a> {
        AppendRequest {
            name: RStr::from(self.name),
            content_type: if self.body.is_empty() {
                ROption::RNone
            } else {
                self.ct.map(RStr::from).into()
            },
            body: RSlice::from(self.body),
            close: self.close,
            producer: self
                .producer
                .map(|(id, epoch, seq)| ProducerRef {
                    id: RStr::from(id),
                    epoch,
                    seq,
                })
                .into(),
            stream_seq: self.seq.map(RStr::from).into(),
            now_ms: self.now,
        }
    }
    pub fn run(&self, e: &EngineBox) -> RResult<AppendOutcome, EngineError> {
        e.append(&self.req())
    }
}

/// One read of at most `max` bytes (one record at least) from `pos`.
pub fn read_at(e: &EngineBox, name: &str, pos: u64, max: u64, now: u64) -> RResult<ReadChunk, EngineError> {
    e.read(&ReadRequest {
        name: RStr::from(name),
        start: ReadStart::At,
        position: pos,
        max_bytes: max,
        now_ms: now,
    })
}

/// Reads everything from `pos` to the tail in chunks of `max` bytes.
pub fn read_all(e: &EngineBox, name: &str, pos: u64, max: u64, now: u64) -> Result<Vec<u8>, Failure> {
    let mut out = Vec::new();
    let mut pos = pos;
    for _ in 0..100_000 {
        let c = ok(read_at(e, name, pos, max, now), "read")?;
        let data = c.data.bytes();
        out.extend_from_slice(data.as_slice());
        check(c.next >= pos, || "read went backwards".into())?;
        if c.next == c.meta.tail {
            return Ok(out);
        }
        check(c.next > pos, || {
            format!("read at {pos} made no progress before the tail {}", c.meta.tail)
        })?;
        pos = c.next;
    }
    Err(Failure::new("read did not reach the tail"))
}

pub fn head(e: &EngineBox, name: &str, now: u64) -> RResult<StreamMeta, EngineError> {
    e.head(&HeadRequest {
        name: RStr::from(name),
        now_ms: now,
    })
}

pub fn delete(e: &EngineBox, name: &str, now: u64) -> RResult<(), EngineError> {
    e.delete(&DeleteRequest {
        name: RStr::from(name),
        now_ms: now,
        only_if_expired: false,
    })
}

/// Calls extension `op` with a JSON input; decodes its JSON answer.
pub fn ext_call(e: &EngineBox, op: &str, input: serde_json::Value) -> RResult<serde_json::Value, EngineError> {
    let bytes = input.to_string().into_bytes();
    match e.extension(RStr::from(op), RSlice::from(bytes.as_slice())) {
        RResult::ROk(out) => match serde_json::from_slice(out.as_slice()) {
            Ok(v) => RResult::ROk(v),
            Err(err) => RResult::RErr(EngineError::new(
                ErrorCode::INTERNAL,
                format!("{op} answered undecodable JSON: {err}"),
            )),
        },
        RResult::RErr(err) => RResult::RErr(err),
    }
}

/// Trims `name` before `before` (`ext::TRIM`); `None` when the engine has no retention.
pub fn trim(e: &EngineBox, name: &str, before: u64) -> Result<Option<serde_json::Value>, Failure> {
    match ext_call(e, ext::TRIM, serde_json::json!({"name": name, "before": before, "now_ms": NOW})) {
        RResult::RErr(err) if err.code == ErrorCode::UNSUPPORTED => Ok(None),
        other => ok(other, &format!("trim {name} before {before}")).map(Some),
    }
}

/// A read at `pos` that must answer `TRIMMED` naming `start` as the earliest retained position.
pub fn read_trimmed(e: &EngineBox, name: &str, pos: u64, start: u64) -> Result<(), Failure> {
    let r = e.read(&ReadRequest {
        name: RStr::from(name),
        start: ReadStart::At,
        position: pos,
        max_bytes: 1 << 20,
        now_ms: NOW,
    });
    let err = code(r, ErrorCode::TRIMMED, &format!("read {name} at {pos}, below its retained start"))?;
    check(err.detail.tail == start, || {
        format!(
            "TRIMMED names the earliest retained position {start} in detail.tail, not {}",
            err.detail.tail
        )
    })
}
