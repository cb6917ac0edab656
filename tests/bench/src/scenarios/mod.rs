//! The scenarios and the context they share (client, options, server sampler, stream-name prefix).

pub mod appends;
pub mod catchup;
pub mod churn;
pub mod fanout;
pub mod heads;
pub mod streams;

use std::sync::Arc;

use crate::client::Client;
use crate::proc::Server;
use crate::stats::BenchResult;
use crate::Opts;

/// What every scenario task needs; cheap to clone into spawned tasks.
#[derive(Clone)]
pub struct Ctx {
    pub client: Client,
    /// Where the fan-out writer appends (`--writer-url`, another host of the same data set);
    /// the same as `client` by default.
    pub writer: Client,
    pub opts: Arc<Opts>,
    pub server: Server,
    /// Prefix of every stream name this run creates, unique per run.
    pub prefix: Arc<str>,
}

impl Ctx {
    /// Prints a finished case: the human line, and a JSON line with `--json` (human lines then go
    /// to stderr so stdout stays machine-readable).
    pub fn report(&self, r: &BenchResult) {
        if self.opts.json {
            eprintln!("{}", r.line());
            let mut v = r.to_json();
            if let Some(l) = &self.opts.label {
                v["label"] = l.as_str().into();
            }
            if let Some(n) = self.opts.round {
                v["round"] = n.into();
            }
            println!("{v}");
        } else {
            println!("{}", r.line());
        }
    }
}
