//! Template storage engine (mode `template`): the smallest engine, meant to be copied.
//!
//! A plugin built on `durable-streams-catalog` writes only persistence: where bytes live. The
//! catalogue owns every protocol rule (create-or-match, forks, soft delete, TTL, producers,
//! `Stream-Seq`, closure, listing) and calls the three methods that matter here: `commit` a
//! batch of changes all or nothing, `apply` a committed change to a stream's in-memory data,
//! and `read` a stream's own bytes. This toy store keeps each record in memory (lost on
//! restart); a durable store writes the batch in `commit` and, at open, decodes what it wrote
//! into `Change`s for `Fold` (see the file engine). Replace the storage, keep the catalogue.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use abi_stable::sabi_trait::TD_Opaque;
use durable_streams_catalog::{Batch, Catalog, Change, OpenOptions, Persistence, Span};
use durable_streams_core::abi::*;

/// The mode this plugin provides.
pub const MODE: &str = "template";

/// The toy store.
pub struct ToyStore {
    next_id: AtomicU64,
    /// Streams held (deleted ones leave); at most `max_streams` (0: no limit).
    streams: AtomicU64,
    /// Setting `storage.template_max_streams`.
    max_streams: u64,
}

/// One stream's own records: (stream position of the first byte, bytes), in order.
#[derive(Default)]
pub struct Records(Mutex<Vec<(u64, Vec<u8>)>>);

impl Persistence for ToyStore {
    type Data = Records;
    type Receipt = ();

    fn describe(&self) -> &'static str {
        "the template engine"
    }

    fn allocate_id(&self, _name: &str) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// All or nothing: refuse the whole batch before changing anything.
    fn commit(&self, batch: &Batch<'_>) -> Result<Vec<()>, EngineError> {
        let created = batch.changes.iter().filter(|c| matches!(c, Change::Create(_))).count() as u64;
        let deleted = batch.changes.iter().filter(|c| matches!(c, Change::Delete { .. })).count() as u64;
        let held = (self.streams.load(Ordering::Relaxed) + created).saturating_sub(deleted);
        if self.max_streams > 0 && created > 0 && held > self.max_streams {
            return Err(EngineError::new(ErrorCode::STORAGE_FULL, "storage.template_max_streams reached"));
        }
        self.streams.fetch_add(created, Ordering::Relaxed);
        self.streams.fetch_sub(deleted, Ordering::Relaxed);
        Ok(vec![(); batch.changes.len()])
    }

    fn apply(data: &Records, change: &Change<'_>, _: &()) {
        let (start, bytes) = match change {
            Change::Create(c) => (c.fork.map_or(0, |(_, pos)| pos), c.initial),
            Change::Append(a) => (a.start, a.body),
            // Retention: the records that end at or below `start` go.
            Change::Trim { start, .. } => {
                data.0.lock().expect("records lock").retain(|(s, b)| s + b.len() as u64 > *start);
                return;
            }
            _ => return,
        };
        if !bytes.is_empty() {
            data.0.lock().expect("records lock").push((start, bytes.to_vec()));
        }
    }

    /// Retention: where the record holding `pos` starts (trims cut at record boundaries).
    fn record_floor(&self, _id: u64, data: &Records, pos: u64) -> Option<Result<u64, EngineError>> {
        let records = data.0.lock().expect("records lock");
        let holding = records.iter().find(|(s, b)| *s <= pos && pos < s + b.len() as u64);
        Some(Ok(holding.map_or(pos, |(s, _)| *s)))
    }

    fn read(&self, _id: u64, data: &Records, span: Span, out: &mut Vec<u8>) -> Result<u64, EngineError> {
        let records = data.0.lock().expect("records lock");
        let mut pos = span.pos;
        let first = records.partition_point(|(start, b)| start + b.len() as u64 <= pos);
        for (start, bytes) in &records[first..] {
            let stop = (start + bytes.len() as u64).min(span.end);
            if pos >= stop || (!out.is_empty() && out.len() + (stop - pos) as usize > span.max) {
                break;
            }
            out.extend_from_slice(&bytes[(pos - start) as usize..(stop - start) as usize]);
            pos = stop;
            if out.len() >= span.max {
                break;
            }
        }
        Ok(pos)
    }
}

durable_streams_catalog::named_engine! {
    /// The template engine: the catalogue over the toy store.
    pub struct TemplateStorage(ToyStore);
}

/// What the plugin says about itself.
pub fn info() -> PluginInfo {
    durable_streams_core::plugin_info![ModeInfo::new(MODE, Capabilities::default(), "template engine (in memory)")]
}

/// Opens the engine. `config` is the server's `[storage]` settings as JSON: this plugin's own
/// keys start with its mode name (`storage.template_max_streams`, `DS_STORAGE__TEMPLATE_MAX_STREAMS`);
/// `finish` refuses any other `template_*` key, naming where it was set.
pub fn open(mode: &str, config: &str) -> Result<EngineBox, EngineError> {
    if mode != MODE {
        return Err(EngineError::new(
            ErrorCode::UNKNOWN_MODE,
            format!("this plugin provides '{MODE}', not '{mode}'"),
        ));
    }
    let settings = durable_streams_core::settings::Settings::parse(config, &[MODE])?;
    let max_streams = settings.u64("template_max_streams", 0, 0..=u64::MAX)?;
    settings.finish()?;
    if settings.validate_only() {
        return Ok(SettingsChecked::boxed());
    }
    let store = ToyStore {
        next_id: AtomicU64::new(1),
        streams: AtomicU64::new(0),
        max_streams,
    };
    let opts = OpenOptions {
        limits: settings.limits(),
        collect_orphans: false,
        now_ms: 0,
        access_slack_ms: 0,
    };
    let engine = TemplateStorage(Catalog::open(store, Vec::new(), opts)?);
    Ok(EngineBox::from_value(GuardedEngine::new(engine), TD_Opaque))
}

durable_streams_core::export_plugin!(info = info, open = open);
