//! Recovery: decodes the log's records, in log order, into the catalogue's changes and folds
//! them into the streams the catalogue opens with.

use std::path::Path;

use durable_streams_catalog::{Appended, Change, Created, Fold, Recovered};
use durable_streams_core::abi::{EngineError, ErrorCode, Lifetime};
use durable_streams_core::producer::ProducerState;
use durable_streams_core::rules::StateUpdate;

use crate::log::{Log, Replayed, Tail};
use crate::record::{self as rec, Reader};
use crate::store::{Extents, FileStore};

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
}

/// Feeds one record to `fold` as the change it was committed as.
fn replay_one(fold: &mut Fold<FileStore>, r: &Replayed<'_>, path: &Path) -> Result<(), EngineError> {
    let bad = || malformed(r, path);
    let mut rd = Reader::new(r.payload);
    let receipt = |rd: &Reader<'_>| (!rd.rest().is_empty()).then_some((r.loc, (rec::HEADER_LEN + rd.pos) as u32));
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
            fold.apply(&change, &receipt(&rd))
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
            fold.apply(&change, &receipt(&rd))
        }
        rec::KIND_SOFT_DELETE => {
            let id = rd.u64().map_err(|_| bad())?;
            let hidden = rd.u8().unwrap_or(0) != 0;
            fold.apply(&Change::SoftDelete { id, hidden }, &None)
        }
        rec::KIND_DELETE => {
            let id = rd.u64().map_err(|_| bad())?;
            fold.apply(&Change::Delete { id }, &None)
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

/// Replays the log in `dir`.
pub fn recover(dir: &Path) -> Result<Opened, EngineError> {
    let mut fold = Fold::<FileStore>::default();
    let (log, tail) = Log::open(dir, |r| {
        let path = dir.join(format!("seg-{:08}.log", r.loc.seg));
        replay_one(&mut fold, &r, &path)
    })?;
    let next_id = fold.max_id() + 1;
    Ok(Opened {
        log,
        tail,
        streams: fold.finish(),
        next_id,
    })
}
