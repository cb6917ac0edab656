//! Recovery: decodes the log's records, in log order, into the catalogue's changes and folds
//! them into the streams the catalogue opens with.

use std::collections::HashMap;
use std::path::Path;

use durable_streams_catalog::{Appended, Change, Created, Fold, Recovered};
use durable_streams_core::abi::{EngineError, ErrorCode, Lifetime};
use durable_streams_core::producer::{ProducerStamp, ProducerState};
use durable_streams_core::rules::StateUpdate;

use crate::log::{Log, Replayed, Tail};
use crate::record::{self as rec, Reader};
use crate::store::{Extents, FileStore, Receipt};

/// The segment file a replayed record came from (named only in errors).
fn seg_file(dir: &Path, r: &Replayed<'_>) -> std::path::PathBuf {
    dir.join(format!("seg-{:08}.log", r.loc.seg))
}

fn malformed(r: &Replayed<'_>, dir: &Path) -> EngineError {
    EngineError::new(
        ErrorCode::CORRUPT,
        format!(
            "undecodable record in {} at byte {}; refusing to start",
            seg_file(dir, r).display(),
            r.loc.off
        ),
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
    created_in: rustc_hash::FxHashMap<u64, u32>,
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

/// Feeds one record to the fold as the change(s) it was committed as.
fn replay_one(replay: &mut Replay, r: &Replayed<'_>, dir: &Path) -> Result<(), EngineError> {
    let bad = |_| malformed(r, dir);
    let receipt = |data_at: usize| Receipt {
        loc: r.loc,
        data_off: (rec::HEADER_LEN + data_at) as u32,
    };
    let p = r.payload;
    match r.header.kind {
        rec::KIND_CREATE => {
            let c = rec::decode_create(p).map_err(bad)?;
            let change = Change::Create(Created {
                id: c.id,
                name: c.name,
                content_type: c.content_type,
                lifetime: Lifetime {
                    ttl_secs: c.ttl.into(),
                    expires_at_ms: c.expires_at.into(),
                },
                closed: c.closed,
                fork: c.fork,
                initial: &p[c.data_at..],
            });
            replay.feed(r, &change, &receipt(c.data_at))
        }
        rec::KIND_APPEND => {
            let a = rec::decode_append(p).map_err(bad)?;
            let update = StateUpdate {
                closed_by: a.producer.filter(|_| a.close).map(|(id, epoch, seq)| ProducerStamp {
                    id: id.to_string(),
                    epoch,
                    seq,
                }),
                producer: a
                    .producer
                    .map(|(id, epoch, last_seq)| (id.to_string(), ProducerState { epoch, last_seq })),
                stream_seq: a.stream_seq.map(str::to_string),
                close: a.close,
            };
            let change = Change::Append(Appended {
                id: a.id,
                // Follows from the stream's tail; the fold fills it in.
                start: 0,
                body: &p[a.data_at..],
                update: &update,
            });
            replay.feed(r, &change, &receipt(a.data_at))
        }
        rec::KIND_SOFT_DELETE => {
            let mut rd = Reader::new(p);
            let id = rd.u64().map_err(bad)?;
            let hidden = rd.u8().unwrap_or(0) != 0;
            replay.feed(r, &Change::SoftDelete { id, hidden }, &receipt(0))
        }
        rec::KIND_DELETE => {
            let id = Reader::new(p).u64().map_err(bad)?;
            replay.feed(r, &Change::Delete { id }, &receipt(0))
        }
        rec::KIND_TRIM => {
            let mut rd = Reader::new(p);
            let id = rd.u64().map_err(bad)?;
            let start = rd.u64().map_err(bad)?;
            replay.feed(r, &Change::Trim { id, start }, &receipt(0))
        }
        rec::KIND_ACCESS => {
            let mut rd = Reader::new(p);
            let id = rd.u64().map_err(bad)?;
            let at_ms = rd.u64().map_err(bad)?;
            replay.feed(r, &Change::Access { id, at_ms }, &receipt(0))
        }
        rec::KIND_SKIP => {
            // Dropped records: the stream goes on at `to` with the writer state they carried.
            let skip = rec::Skip::decode(p).map_err(bad)?;
            let id = skip.id;
            replay.feed(r, &Change::Trim { id, start: skip.to }, &receipt(0))?;
            let mut updates: Vec<StateUpdate> = skip
                .producers
                .iter()
                .map(|(pid, epoch, seq)| StateUpdate {
                    producer: Some((
                        pid.clone(),
                        ProducerState {
                            epoch: *epoch,
                            last_seq: *seq,
                        },
                    )),
                    ..Default::default()
                })
                .collect();
            updates.push(StateUpdate {
                stream_seq: skip.stream_seq.clone(),
                close: skip.close,
                closed_by: skip.closed_by.as_ref().map(|(pid, epoch, seq)| ProducerStamp {
                    id: pid.clone(),
                    epoch: *epoch,
                    seq: *seq,
                }),
                producer: None,
            });
            for update in &updates {
                let change = Change::Append(Appended {
                    id,
                    start: 0,
                    body: &[],
                    update,
                });
                replay.feed(r, &change, &receipt(0))?;
            }
            Ok(())
        }
        _ => Err(malformed(r, dir)),
    }
    .map_err(|e| {
        EngineError::new(
            e.code,
            format!("{} (record in {} at byte {})", e.message, seg_file(dir, r).display(), r.loc.off),
        )
    })
}

/// Replays the log in `dir` (segments roll over past `segment_bytes`).
pub fn recover(dir: &Path, segment_bytes: u64) -> Result<Opened, EngineError> {
    let mut replay = Replay::default();
    let (log, tail) = Log::open(dir, segment_bytes, |r| replay_one(&mut replay, &r, dir))?;
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
