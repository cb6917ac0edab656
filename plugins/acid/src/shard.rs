//! One redb database (a shard): its tables, and the transactions the engine runs on it.
//!
//! Tables: `streams` (id → catalog record), `state` (id → tail + writer state), `data`
//! ((id, start position) → the bytes of one append), `meta` ("next" → id counter).

use std::path::{Path, PathBuf};

use durable_streams_core::abi::{EngineError, ErrorCode};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

pub const STREAMS: TableDefinition<u64, &[u8]> = TableDefinition::new("streams");
pub const STATE: TableDefinition<u64, &[u8]> = TableDefinition::new("state");
pub const DATA: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("data");
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Streams whose head retention dropped: id -> the earliest retained position.
pub const TRIMS: TableDefinition<u64, u64> = TableDefinition::new("trims");
/// Streams with a sliding TTL: id -> their last access time saved (ms).
pub const ACCESS: TableDefinition<u64, u64> = TableDefinition::new("access");

/// Maps any redb error to the boundary error (disk full → `STORAGE_FULL`, damage → `CORRUPT`).
pub fn db_err(what: &str, e: impl Into<redb::Error>) -> EngineError {
    let e: redb::Error = e.into();
    let code = match &e {
        redb::Error::Io(io) if io.raw_os_error() == Some(28) => ErrorCode::STORAGE_FULL,
        redb::Error::Corrupted(_) => ErrorCode::CORRUPT,
        _ => ErrorCode::IO,
    };
    EngineError::new(code, format!("{what}: {e}"))
}

/// One stream's stored rows.
pub struct StoredRow {
    pub id: u64,
    pub catalog: Vec<u8>,
    pub state: Option<Vec<u8>>,
    /// Its earliest retained position (retention).
    pub start: u64,
    /// Its last access time saved (sliding TTLs).
    pub last_access_ms: Option<u64>,
}

/// A shard and where it lives.
pub struct Shard {
    db: parking_lot::RwLock<Option<Database>>,
    pub path: Option<PathBuf>,
    pub durable: bool,
    /// Bytes given back to the filesystem by compaction at open.
    pub reclaimed: u64,
    /// Compactions while running, and the bytes they gave back.
    pub compactions: std::sync::atomic::AtomicU64,
    pub compacted: std::sync::atomic::AtomicU64,
    /// Bytes of the file not in use (free pages) at the last check.
    pub free: std::sync::atomic::AtomicU64,
    /// Bytes of stream data deleted or trimmed since the last check (kept in `META` too, so a
    /// restart does not forget them). A check walks every page of the file, so it is made only
    /// once a quarter of the file may have become free: a large, live file costs nothing at
    /// startup or while running.
    pub dropped: std::sync::atomic::AtomicU64,
    /// Commits save the allocator state (redb quick-repair): see `acid_quick_repair`.
    pub quick_repair: bool,
}

/// `META` key of [`Shard::dropped`]; absent in files from before it existed (one check then).
const DROPPED: &str = "dropped_since_check";

/// Adds `n` removed bytes to the shard's persisted count, inside the transaction removing them.
pub fn add_dropped(txn: &redb::WriteTransaction, n: u64) -> Result<(), EngineError> {
    let mut meta = txn.open_table(META).map_err(|e| db_err("open meta", e))?;
    let current = meta.get(DROPPED).map_err(|e| db_err("read meta", e))?.map_or(0, |g| g.value());
    meta.insert(DROPPED, current.saturating_add(n))
        .map_err(|e| db_err("write meta", e))?;
    Ok(())
}

/// Whether a file of `len` bytes with `dropped` bytes removed since its last check is worth
/// walking (see [`Shard::dropped`]).
fn worth_checking(len: u64, dropped: u64) -> bool {
    len >= 4 << 20 && dropped.saturating_mul(4) >= len
}

/// The persisted [`Shard::dropped`], if this file has one.
fn stored_dropped(db: &Database) -> Result<Option<u64>, EngineError> {
    let r = db.begin_read().map_err(|e| db_err("begin read", e))?;
    match r.open_table(META) {
        Ok(meta) => Ok(meta.get(DROPPED).map_err(|e| db_err("read meta", e))?.map(|g| g.value())),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(db_err("open meta", e)),
    }
}

/// Compacts a file of at least 4 MiB of which less than half is in use (the pages of deleted
/// streams): redb reuses free pages while it runs, but only compaction shortens the file.
/// Returns the bytes given back.
fn compact_if_mostly_free(db: &mut Database, path: &Path, free: &std::sync::atomic::AtomicU64) -> Result<u64, EngineError> {
    let len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let before = len(path);
    // What was dropped so far is counted below (in `free`, or given back). redb releases the
    // pages a transaction freed only in later commits: two small ones go first, so that the
    // pages of recent deletes count as free.
    for _ in 0..2 {
        let mut txn = db.begin_write().map_err(|e| db_err("begin write", e))?;
        txn.set_two_phase_commit(true);
        txn.open_table(META)
            .map_err(|e| db_err("open meta", e))?
            .insert(DROPPED, 0)
            .map_err(|e| db_err("write meta", e))?;
        txn.commit().map_err(|e| db_err("commit", e))?;
    }
    let used = {
        let txn = db.begin_write().map_err(|e| db_err("begin write", e))?;
        let stats = txn.stats().map_err(|e| db_err("stats", e))?;
        let used = stats.allocated_pages() * stats.page_size() as u64;
        txn.abort().map_err(|e| db_err("abort", e))?;
        used
    };
    free.store(before.saturating_sub(used), std::sync::atomic::Ordering::Relaxed);
    if before < 4 << 20 || used.saturating_mul(2) >= before {
        return Ok(0);
    }
    db.compact()
        .map_err(|e| EngineError::new(ErrorCode::IO, format!("compact {}: {e}", path.display())))?;
    let after = len(path);
    free.store(after.saturating_sub(used), std::sync::atomic::Ordering::Relaxed);
    Ok(before.saturating_sub(after))
}

impl Shard {
    /// Opens (creating) the shard file, refusing damaged files with one message naming it;
    /// `compact`: give the free space of a mostly free file back to the filesystem first.
    pub fn open_file(path: &Path, compact: bool) -> Result<Shard, EngineError> {
        // redb asserts on some damaged layouts; contain that (quietly) and refuse the file.
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let opened = std::panic::catch_unwind(|| Database::create(path));
        std::panic::set_hook(hook);
        let mut db = match opened {
            Ok(Ok(db)) => db,
            Ok(Err(redb::DatabaseError::DatabaseAlreadyOpen)) => {
                return Err(EngineError::new(
                    ErrorCode::IO,
                    format!(
                        "{} is in use by another process (is a server running on this data?); stop it first",
                        path.display()
                    ),
                ))
            }
            Ok(Err(e)) => {
                return Err(EngineError::new(
                    ErrorCode::CORRUPT,
                    format!(
                        "cannot open redb file {}: {e}; refusing to start (restore the file or move it aside)",
                        path.display()
                    ),
                ))
            }
            Err(payload) => {
                let why = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "inconsistent layout".into());
                return Err(EngineError::new(
                    ErrorCode::CORRUPT,
                    format!(
                        "redb file {} is damaged (truncated or extended?): {why}; refusing to start",
                        path.display()
                    ),
                ));
            }
        };
        let mut reclaimed = 0;
        let free = std::sync::atomic::AtomicU64::new(0);
        let dropped = stored_dropped(&db)?;
        let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        if compact && worth_checking(len, dropped.unwrap_or(len)) {
            match compact_if_mostly_free(&mut db, path, &free) {
                Ok(n) => reclaimed = n,
                // A compaction that fails (a full disk) is not a reason to refuse the data: it
                // is opened again as it stands and serves uncompacted.
                Err(_) => {
                    drop(db);
                    db = Database::create(path).map_err(|e| db_err("reopen after a failed compaction", e))?;
                }
            }
        }
        let shard = Shard {
            db: parking_lot::RwLock::new(Some(db)),
            path: Some(path.to_path_buf()),
            durable: true,
            reclaimed,
            compactions: Default::default(),
            compacted: Default::default(),
            free,
            dropped: Default::default(),
            quick_repair: false,
        };
        shard.ensure_tables()?;
        // After the check above (which zeroes it), or as stored. A file without the count is
        // either new (it starts at 0) or from before the count existed (checked once).
        let after = match shard.with_db(stored_dropped)? {
            Some(n) => n,
            None if compact && len < 4 << 20 => {
                shard.write(|txn| add_dropped(txn, 0))?;
                0
            }
            None => len,
        };
        shard.dropped.store(after, std::sync::atomic::Ordering::Relaxed);
        Ok(shard)
    }

    /// An in-memory shard (`acid_backend = "memory"`).
    pub fn open_memory() -> Result<Shard, EngineError> {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|e| db_err("create in-memory redb", e))?;
        let shard = Shard {
            db: parking_lot::RwLock::new(Some(db)),
            path: None,
            durable: false,
            reclaimed: 0,
            compactions: Default::default(),
            compacted: Default::default(),
            free: Default::default(),
            dropped: Default::default(),
            quick_repair: false,
        };
        shard.ensure_tables()?;
        Ok(shard)
    }

    /// Compacts the file now if it is mostly free (see `compact_if_mostly_free`); the shard's
    /// reads and writes wait meanwhile. A failed compaction reopens the file as it stands.
    /// Returns the bytes given back.
    pub fn compact_now(&self) -> Result<u64, EngineError> {
        use std::sync::atomic::Ordering;
        let Some(path) = &self.path else { return Ok(0) };
        let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        if !worth_checking(len, self.dropped.load(Ordering::Relaxed)) {
            return Ok(0);
        }
        let mut g = self.db.write();
        let Some(db) = g.as_mut() else { return Ok(0) };
        let result = compact_if_mostly_free(db, path, &self.free);
        if result.is_ok() {
            self.dropped.store(0, Ordering::Relaxed);
        }
        match result {
            Ok(0) => Ok(0),
            Ok(n) => {
                self.compactions.fetch_add(1, Ordering::Relaxed);
                self.compacted.fetch_add(n, Ordering::Relaxed);
                Ok(n)
            }
            Err(e) => {
                drop(g.take());
                match Database::create(path) {
                    Ok(db) => *g = Some(db),
                    Err(e2) => eprintln!("acid: could not reopen {} after a failed compaction: {e2}", path.display()),
                }
                Err(e)
            }
        }
    }

    /// Closes the database (at shutdown): later calls fail as during a reopen.
    pub fn close(&self) {
        drop(self.db.write().take());
    }

    /// Runs `f` with the open database.
    fn with_db<T>(&self, f: impl FnOnce(&Database) -> Result<T, EngineError>) -> Result<T, EngineError> {
        let g = self.db.read();
        match g.as_ref() {
            Some(db) => f(db),
            None => Err(EngineError::new(
                ErrorCode::IO,
                "redb database is being reopened after an I/O error",
            )),
        }
    }

    /// After a failed write redb refuses further use; reopen the file so that it recovers to
    /// its last committed state (which is what memory holds: it is updated only after commits).
    fn reopen(&self) {
        let Some(path) = &self.path else { return };
        let mut g = self.db.write();
        drop(g.take());
        match Database::create(path) {
            Ok(db) => *g = Some(db),
            Err(e) => eprintln!("acid: could not reopen {} after an I/O error: {e}", path.display()),
        }
    }

    fn ensure_tables(&self) -> Result<(), EngineError> {
        self.with_db(|db| self.ensure_tables_in(db))
    }

    fn ensure_tables_in(&self, db: &Database) -> Result<(), EngineError> {
        let txn = db.begin_write().map_err(|e| db_err("begin", e))?;
        {
            txn.open_table(STREAMS).map_err(|e| db_err("open streams", e))?;
            txn.open_table(STATE).map_err(|e| db_err("open state", e))?;
            txn.open_table(DATA).map_err(|e| db_err("open data", e))?;
            txn.open_table(META).map_err(|e| db_err("open meta", e))?;
        }
        txn.commit().map_err(|e| db_err("commit", e))
    }

    /// Runs `f` in one write transaction, committed durably (for file shards).
    pub fn write<T>(&self, f: impl FnOnce(&redb::WriteTransaction) -> Result<T, EngineError>) -> Result<T, EngineError> {
        let result = self.with_db(|db| {
            let mut txn = db.begin_write().map_err(|e| db_err("begin write", e))?;
            let d = if self.durable { Durability::Immediate } else { Durability::None };
            txn.set_quick_repair(self.durable && self.quick_repair);
            txn.set_durability(d)
                .map_err(|e| EngineError::new(ErrorCode::INTERNAL, format!("set durability: {e}")))?;
            let out = f(&txn)?;
            txn.commit().map_err(|e| db_err("commit", e))?;
            Ok(out)
        });
        if let Err(e) = &result {
            if e.code == ErrorCode::STORAGE_FULL || e.code == ErrorCode::IO {
                self.reopen();
            }
        }
        result
    }

    /// Every catalog and state row (for startup).
    pub fn load(&self) -> Result<Vec<StoredRow>, EngineError> {
        self.with_db(Self::load_in)
    }

    fn load_in(db: &Database) -> Result<Vec<StoredRow>, EngineError> {
        let r = db.begin_read().map_err(|e| db_err("begin read", e))?;
        let streams = r.open_table(STREAMS).map_err(|e| db_err("open streams", e))?;
        let state = r.open_table(STATE).map_err(|e| db_err("open state", e))?;
        // Data written before retention existed has no such table.
        let trims = match r.open_table(TRIMS) {
            Ok(t) => Some(t),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(db_err("open trims", e)),
        };
        let access = match r.open_table(ACCESS) {
            Ok(t) => Some(t),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(db_err("open access", e)),
        };
        let mut out = Vec::new();
        for row in streams.iter().map_err(|e| db_err("scan streams", e))? {
            let (k, v) = row.map_err(|e| db_err("scan streams", e))?;
            let id = k.value();
            let st = state.get(id).map_err(|e| db_err("read state", e))?.map(|g| g.value().to_vec());
            let start = match &trims {
                Some(t) => t.get(id).map_err(|e| db_err("read trims", e))?.map_or(0, |g| g.value()),
                None => 0,
            };
            let at = match &access {
                Some(t) => t.get(id).map_err(|e| db_err("read access", e))?.map(|g| g.value()),
                None => None,
            };
            out.push(StoredRow {
                id,
                catalog: v.value().to_vec(),
                state: st,
                start,
                last_access_ms: at,
            });
        }
        Ok(out)
    }

    /// The shard count recorded when the data was created (in shard 0), if any.
    pub fn recorded_shard_count(&self) -> Result<Option<u64>, EngineError> {
        self.with_db(|db| {
            let r = db.begin_read().map_err(|e| db_err("begin read", e))?;
            let meta = r.open_table(META).map_err(|e| db_err("open meta", e))?;
            Ok(meta.get("shard_count").map_err(|e| db_err("read meta", e))?.map(|g| g.value()))
        })
    }

    /// Records the shard count (in shard 0), durably.
    pub fn record_shard_count(&self, n: u64) -> Result<(), EngineError> {
        self.write(|txn| {
            let mut meta = txn.open_table(META).map_err(|e| db_err("open meta", e))?;
            meta.insert("shard_count", n).map_err(|e| db_err("write meta", e))?;
            Ok(())
        })
    }

    pub fn next_counter(&self) -> Result<u64, EngineError> {
        self.with_db(|db| {
            let r = db.begin_read().map_err(|e| db_err("begin read", e))?;
            let meta = r.open_table(META).map_err(|e| db_err("open meta", e))?;
            Ok(meta
                .get("next")
                .map_err(|e| db_err("read meta", e))?
                .map(|g| g.value())
                .unwrap_or(0))
        })
    }

    /// Reads whole records of stream `id` covering `[pos, end)`, at most `max_bytes` (one record
    /// always fits in an empty `out`). Returns the position reached.
    /// Where the record of `id` holding `pos` starts (`pos` at a boundary or the tail).
    pub fn record_floor(&self, id: u64, pos: u64) -> Result<u64, EngineError> {
        self.with_db(|db| {
            let r = db.begin_read().map_err(|e| db_err("begin read", e))?;
            let data = r.open_table(DATA).map_err(|e| db_err("open data", e))?;
            let last = data
                .range((id, 0)..=(id, pos))
                .map_err(|e| db_err("range", e))?
                .next_back()
                .transpose()
                .map_err(|e| db_err("range", e))?
                .map(|(k, v)| (k.value().1, v.value().len() as u64));
            Ok(match last {
                Some((start, len)) if start + len > pos => start,
                _ => pos,
            })
        })
    }

    /// Where stream `id`'s rows (one per append) that begin in `range` begin, at most `limit`.
    pub fn record_starts(&self, id: u64, range: std::ops::Range<u64>, limit: usize) -> Result<Vec<u64>, EngineError> {
        self.with_db(|db| {
            let r = db.begin_read().map_err(|e| db_err("begin read", e))?;
            let data = r.open_table(DATA).map_err(|e| db_err("open data", e))?;
            let mut out = Vec::new();
            for row in data.range((id, range.start)..(id, range.end)).map_err(|e| db_err("range", e))? {
                let (k, v) = row.map_err(|e| db_err("range", e))?;
                if !v.value().is_empty() {
                    out.push(k.value().1);
                }
                if out.len() >= limit {
                    break;
                }
            }
            Ok(out)
        })
    }

    pub fn read_into(&self, id: u64, pos: u64, end: u64, max_bytes: usize, out: &mut Vec<u8>) -> Result<u64, EngineError> {
        self.with_db(|db| Self::read_in(db, id, pos, end, max_bytes, out))
    }

    fn read_in(db: &Database, id: u64, pos: u64, end: u64, max_bytes: usize, out: &mut Vec<u8>) -> Result<u64, EngineError> {
        let r = db.begin_read().map_err(|e| db_err("begin read", e))?;
        let data = r.open_table(DATA).map_err(|e| db_err("open data", e))?;
        let first = data
            .range((id, 0)..=(id, pos))
            .map_err(|e| db_err("range", e))?
            .next_back()
            .transpose()
            .map_err(|e| db_err("range", e))?
            .map(|(k, _)| k.value().1)
            .unwrap_or(pos);
        let mut pos = pos;
        for row in data.range((id, first)..(id, end)).map_err(|e| db_err("range", e))? {
            let (k, v) = row.map_err(|e| db_err("read data", e))?;
            let start = k.value().1;
            let bytes = v.value();
            let rec_end = start + bytes.len() as u64;
            if rec_end <= pos {
                continue;
            }
            let stop = rec_end.min(end);
            let take = (stop - pos) as usize;
            if !out.is_empty() && out.len() + take > max_bytes {
                break;
            }
            let from = (pos - start) as usize;
            out.extend_from_slice(&bytes[from..from + take]);
            pos = stop;
            if pos >= end || out.len() >= max_bytes {
                break;
            }
        }
        Ok(pos)
    }
}
