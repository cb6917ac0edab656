//! Recovery: decodes the log's records, in log order, into the catalogue's changes and folds
//! them into the streams the catalogue opens with.

use std::collections::HashMap;
use std::path::Path;

use durable_streams_catalog::{Appended, Change, Created, Fold, Recovered};
use durable_streams_core::abi::{EngineError, ErrorCode, Lifetime};
use durable_streams_core::producer::ProducerState;
use durable_streams_core::rules::StateUpdate;

use crate::log::{Log, Replayed, Tail};
use crate::record::{self as rec, Reader};
use crate::store::{Extents, FileStore, Receipt};

fn malformed(r: &Replayed<'_>, path: &Path) -> EngineError {
    EngineError::new(
        ErrorCode::CORRUPT,
        format!("undecodable record in {} at byte {}; refusing to start", path.display(), r.loc.off),
    )
}

/// What recovery rebuilds.
pub struct Opened {
    pub log: Log,
    pub tail: Tail,
    pub streams: Vec<Recovered<Extents>>,
    pub next_id: u64,
    /// Removed streams whose CREATE record is still in the log (see `FileStore::tombs`).
    pub tombs: HashMap<u64, u32>,
    /// Records of removed streams skipped (left by compaction).
    pub orphans: u64,
}

/// What replay keeps beside the fold.
#[derive(Default)]
struct Replay {
    fold: Fold<FileStore>,
    /// Segment of each live stream's CREATE record.
    created_in: HashMap<u64, u32>,
    tombs: HashMap<u64, u32>,
}

impl Replay {
    fn feed(&mut self, r: &Replayed<'_>, change: &Change<'_>, receipt: &Receipt) -> Result<(), EngineError> {
        if r.after_compaction && self.fold.skip_orphan(change) {
            return Ok(());
        }
        match change {
            Change::Create(c) => {
                self.created_in.insert(c.id, r.loc.seg);
            }
            Change::Delete { id } => {
                if let Some(seg) = self.created_in.remove(id) {
                    self.tombs.insert(*id, seg);
                }
            }
            _ => {}
        }
        self.fold.apply(change, receipt)
    }
}

/// Feeds one record to the fold as the change it was committed as.
fn replay_one(replay: &mut Replay, r: &Replayed<'_>, path: &Path) -> Result<(), EngineError> {
    let bad = || malformed(r, path);
    let mut rd = Reader::new(r.payload);
    let receipt = |rd: &Reader<'_>| Receipt {
        loc: r.loc,
        data_off: (rec::HEADER_LEN + rd.pos) as u32,
    };
    match r.header.kind {
        rec::KIND_CREATE => {
            let id = rd.u64().map_err(|_| bad())?;
            let name = rd.str().map_err(|_| bad())?;
            let content_type = rd.str().map_err(|_| bad())?;
            let ttl = rd.opt().map_err(|_| bad())?;
            let exp = rd.opt().map_err(|_| bad())?;
            let closed = rd.u8().map_err(|_| bad())? != 0;
            let has_fork = rd.u8().map_err(|_| bad())? != 0;
            let src = rd.u64().map_err(|_| bad())?;
            let pos = rd.u64().map_err(|_| bad())?;
            let change = Change::Create(Created {
                id,
                name,
                content_type,
                lifetime: Lifetime {
                    ttl_secs: ttl.into(),
                    expires_at_ms: exp.into(),
                },
                closed,
                fork: has_fork.then_some((src, pos)),
                initial: rd.rest(),
            });
            replay.feed(r, &change, &receipt(&rd))
        }
        rec::KIND_APPEND => {
            let id = rd.u64().map_err(|_| bad())?;
            let flags = rd.u8().map_err(|_| bad())?;
            let producer = if flags & rec::FLAG_PRODUCER != 0 {
                let pid = rd.str().map_err(|_| bad())?.to_string();
                let epoch = rd.u64().map_err(|_| bad())?;
                let seq = rd.u64().map_err(|_| bad())?;
                Some((pid, epoch, seq))
            } else {
                None
            };
            let stream_seq = if flags & rec::FLAG_SEQ != 0 {
                Some(rd.str().map_err(|_| bad())?.to_string())
            } else {
                None
            };
            let close = flags & rec::FLAG_CLOSE != 0;
            let update = StateUpdate {
                closed_by: producer
                    .as_ref()
                    .filter(|_| close)
                    .map(|(id, epoch, seq)| durable_streams_core::producer::ProducerStamp {
                        id: id.clone(),
                        epoch: *epoch,
                        seq: *seq,
                    }),
                producer: producer.map(|(id, epoch, last_seq)| (id, ProducerState { epoch, last_seq })),
                stream_seq,
                close,
            };
            let change = Change::Append(Appended {
                id,
                // Follows from the stream's tail; the fold fills it in.
                start: 0,
                body: rd.rest(),
                update: &update,
            });
            replay.feed(r, &change, &receipt(&rd))
        }
        rec::KIND_SOFT_DELETE => {
            let id = rd.u64().map_err(|_| bad())?;
            let hidden = rd.u8().unwrap_or(0) != 0;
            replay.feed(r, &Change::SoftDelete { id, hidden }, &receipt(&rd))
        }
        rec::KIND_DELETE => {
            let id = rd.u64().map_err(|_| bad())?;
            replay.feed(r, &Change::Delete { id }, &receipt(&rd))
        }
        _ => Err(bad()),
    }
    .map_err(|e| {
        EngineError::new(
            e.code,
            format!("{} (record in {} at byte {})", e.message, path.display(), r.loc.off),
        )
    })
}

/// Replays the log in `dir` (segments roll over past `segment_bytes`).
pub fn recover(dir: &Path, segment_bytes: u64) -> Result<Opened, EngineError> {
    let mut replay = Replay::default();
    let (log, tail) = Log::open(dir, segment_bytes, |r| {
        let path = dir.join(format!("seg-{:08}.log", r.loc.seg));
        replay_one(&mut replay, &r, &path)
    })?;
    let next_id = (replay.fold.max_id() + 1).max(log.recovery.next_id_floor);
    let orphans = replay.fold.orphans();
    Ok(Opened {
        log,
        tail,
        streams: replay.fold.finish(),
        next_id,
        tombs: replay.tombs,
        orphans,
    })
}
