//! The write-ahead log on disk: segment files, batched writes with optional fdatasync (zeros
//! written ahead of a synced tail), checksummed reads, and recovery (torn tails cut, corruption
//! refused). Knows no streams.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use durable_streams_core::abi::{EngineError, ErrorCode};
use parking_lot::RwLock;

use crate::record::{self, Header};
use crate::scan;

/// Segments roll over past this size unless configured (`storage.file_segment_bytes`).
pub const SEGMENT_BYTES: u64 = 64 << 20;

/// Suffix of a compaction's output while it is written (removed at open if found).
pub const TMP_SUFFIX: &str = ".compacting";

/// Where a record lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loc {
    pub seg: u32,
    pub off: u64,
    pub len: u32,
}

/// A record found during recovery.
pub struct Replayed<'a> {
    pub loc: Loc,
    pub header: Header,
    pub payload: &'a [u8],
    /// A compacted segment came at or before this record: records of streams whose CREATE was
    /// dropped (removed streams) may follow.
    pub after_compaction: bool,
}

/// One segment file. Its key in the log (the `seg` of a [`Loc`]) is its file number until a
/// compaction replaces it: the output gets a fresh key (the file takes the number of the last
/// segment it replaced), so readers holding locations in the old files keep reading them until
/// every stream has been moved to the new one.
pub struct Seg {
    pub file: File,
    /// The number in the file name (`seg-NNNNNNNN.log`): the replay order.
    pub disk: u32,
    /// Bytes in the file.
    pub bytes: AtomicU64,
    /// Bytes of records known dead (an estimate that guides compaction).
    pub dead: AtomicU64,
}

impl Seg {
    fn new(file: File, disk: u32, bytes: u64) -> Arc<Seg> {
        Arc::new(Seg {
            file,
            disk,
            bytes: AtomicU64::new(bytes),
            dead: AtomicU64::new(0),
        })
    }
}

/// Zeros are written this far ahead of a synced tail (see `Log::preallocate`).
const PREALLOCATE_CHUNK: u64 = 1 << 20;
/// Synced writes averaging more bytes than this grow the file as they go instead.
const PREALLOCATE_BELOW: u64 = 64 << 10;

/// Keys of compaction outputs start here (file numbers stay below).
pub const FIRST_OUTPUT_KEY: u32 = 1 << 31;

/// The writer's position; owned by whoever holds the engine's writer lock.
pub struct Tail {
    active: Arc<Seg>,
    seg: u32,
    len: u64,
    pub next_lsn: u64,
    /// Length of the active segment's file: past `len`, zeros written ahead (see `preallocate`).
    alloc: u64,
    /// Bytes per synced write, a moving average (whether preallocating pays).
    synced_write_avg: u64,
    /// Set after a failed fsync or a failed rollback: the log refuses further writes.
    failed: Option<String>,
}

impl Tail {
    /// The segment being written (every lower one is sealed).
    pub fn seg(&self) -> u32 {
        self.seg
    }
}

/// The segment files.
pub struct Log {
    /// Held for the life of the engine: one process per data directory.
    _lock: File,
    pub(crate) dir: PathBuf,
    pub(crate) segments: RwLock<BTreeMap<u32, Arc<Seg>>>,
    /// The next key for a compaction output.
    pub(crate) next_key: AtomicU32,
    /// Roll over to a new segment past this size.
    pub(crate) segment_bytes: u64,
    /// What opening found: reported to the host (the `recovery` extension), which logs it.
    pub recovery: Recovery,
}

/// What a log open found and did.
#[derive(Clone, Debug, Default)]
pub struct Recovery {
    /// Valid records replayed.
    pub records: u64,
    pub segments: usize,
    /// A torn or zero-filled tail cut back: the file, where it was cut, and how many bytes went.
    pub cut_tail: Option<(PathBuf, u64, u64)>,
    /// Segments written by compaction.
    pub compacted_segments: usize,
    /// Outputs of compactions a crash interrupted before they were named (removed).
    pub unfinished_compactions: usize,
    /// Inputs of finished compactions a crash left behind (removed).
    pub superseded_removed: usize,
    /// Stream ids below this were used (from compaction headers).
    pub next_id_floor: u64,
}

pub(crate) use durable_streams_catalog::durable_fs::io_error as io_err;

pub(crate) fn seg_path(dir: &Path, seg: u32) -> PathBuf {
    dir.join(format!("seg-{seg:08}.log"))
}

pub(crate) use durable_streams_catalog::durable_fs::sync_dir;

use durable_streams_catalog::durable_fs::create_dir_durable;

/// The first bytes of a segment file: at least its first record (or compaction header) when
/// the file holds one whole, fewer when it is shorter or starts damaged.
fn segment_start(path: &Path) -> Result<Vec<u8>, EngineError> {
    let file = std::fs::File::open(path).map_err(|e| io_err("open", path, e))?;
    let len = file.metadata().map_err(|e| io_err("stat", path, e))?.len();
    let read = |n: u64| -> Result<Vec<u8>, EngineError> {
        let mut b = Vec::with_capacity(n as usize);
        (&file).take(n).read_to_end(&mut b).map_err(|e| io_err("read", path, e))?;
        Ok(b)
    };
    let b = read(len.min(64 << 10))?;
    if b.len() < record::HEADER_LEN || scan::compacted_header(&b).is_some() {
        return Ok(b);
    }
    let h = record::parse_header(&b[..record::HEADER_LEN]);
    let total = (record::HEADER_LEN as u64).saturating_add(h.len as u64);
    if total > b.len() as u64 && total <= len && h.len <= record::MAX_PAYLOAD {
        return read(total);
    }
    Ok(b)
}

/// A segment file mapped read-only for replay (`None` when it is empty).
fn map_segment(file: &File, path: &Path) -> Result<Option<memmap2::Mmap>, EngineError> {
    let len = file.metadata().map_err(|e| io_err("stat", path, e))?.len();
    if len == 0 {
        return Ok(None);
    }
    // SAFETY: the data directory's LOCK is held, so no other process writes or cuts this file,
    // and this process cuts it only after the mapping is dropped.
    let map = unsafe { memmap2::MmapOptions::new().populate().map(file) }.map_err(|e| io_err("map", path, e))?;
    let _ = map.advise(memmap2::Advice::Sequential);
    Ok(Some(map))
}

impl Log {
    /// Opens (creating) the log in `dir`, replaying every valid record in order through
    /// `visit`. A torn or zero-filled tail of the last segment is cut off; damage anywhere else
    /// refuses to open, naming the file. What an interrupted compaction left is finished first:
    /// its unfinished output removed, or the inputs its finished output replaced.
    pub fn open(
        dir: &Path,
        segment_bytes: u64,
        mut visit: impl FnMut(Replayed<'_>) -> Result<(), EngineError>,
    ) -> Result<(Log, Tail), EngineError> {
        create_dir_durable(dir)?;
        let lock_path = dir.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| io_err("open", &lock_path, e))?;
        if let Err(e) = lock.try_lock() {
            return Err(EngineError::new(
                ErrorCode::IO,
                format!("data directory {} is in use by another process ({e}); stop it first", dir.display()),
            ));
        }
        let mut recovery = Recovery::default();
        let mut ids = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| io_err("list", dir, e))?.flatten() {
            let Ok(n) = entry.file_name().into_string() else { continue };
            if n.starts_with("seg-") && n.ends_with(TMP_SUFFIX) {
                // A compaction's output that never got its name: the inputs are intact.
                std::fs::remove_file(entry.path()).map_err(|e| io_err("remove", &entry.path(), e))?;
                recovery.unfinished_compactions += 1;
            } else if let Some(id) = n
                .strip_prefix("seg-")
                .and_then(|n| n.strip_suffix(".log"))
                .and_then(|n| n.parse().ok())
            {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        // Only each segment's first record is read to decide which ones stay; then they are
        // replayed one at a time from a read-only mapping (no copy out of the page cache, and
        // memory stays at one segment whatever the log's size).
        let mut starts = Vec::with_capacity(ids.len());
        for &seg in &ids {
            let b = segment_start(&seg_path(dir, seg))?;
            starts.push((seg, scan::first_lsn(&b), scan::compacted_header(&b)));
        }
        let stale = scan::superseded(&starts);
        for seg in &stale {
            let path = seg_path(dir, *seg);
            std::fs::remove_file(&path).map_err(|e| io_err("remove", &path, e))?;
            recovery.superseded_removed += 1;
        }
        if recovery.unfinished_compactions + recovery.superseded_removed > 0 {
            sync_dir(dir)?;
        }
        ids.retain(|seg| !stale.contains(seg));
        recovery.segments = ids.len();
        let mut segments = BTreeMap::new();
        let mut next_lsn = 1u64;
        let mut last_len = 0u64;
        let n = ids.len();
        for (i, seg) in ids.into_iter().enumerate() {
            let path = seg_path(dir, seg);
            let is_last = i + 1 == n;
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(|e| io_err("open", &path, e))?;
            let map = map_segment(&file, &path)?;
            let bytes: &[u8] = map.as_deref().unwrap_or(&[]);
            let mut counted = |r: Replayed<'_>| {
                recovery.records += 1;
                visit(r)
            };
            let after = recovery.compacted_segments > 0;
            let scanned = scan::scan(&path, seg, bytes, is_last, after, &mut next_lsn, &mut counted)?;
            let end = scanned.end;
            let size = bytes.len() as u64;
            // Zeros written ahead of the tail (preallocation) are cut without a report.
            let zero_tail = bytes[end as usize..].iter().all(|&b| b == 0);
            // Unmapped before any cut of the file below.
            drop(map);
            if let Some(c) = scanned.compacted {
                recovery.compacted_segments += 1;
                recovery.next_id_floor = recovery.next_id_floor.max(c.next_id);
            }
            if end < size {
                if !zero_tail {
                    recovery.cut_tail = Some((path.clone(), end, size - end));
                }
                file.set_len(end)
                    .and_then(|_| file.sync_all())
                    .map_err(|e| io_err("truncate torn tail of", &path, e))?;
            }
            if is_last {
                last_len = end;
            }
            segments.insert(seg, Seg::new(file, seg, end));
        }
        let seg = segments.keys().next_back().copied().unwrap_or(0);
        let active = match segments.get(&seg) {
            Some(f) => f.clone(),
            None => {
                let path = seg_path(dir, seg);
                let f = Seg::new(
                    OpenOptions::new()
                        .read(true)
                        .write(true)
                        .create_new(true)
                        .open(&path)
                        .map_err(|e| io_err("create", &path, e))?,
                    seg,
                    0,
                );
                sync_dir(dir)?;
                segments.insert(seg, f.clone());
                f
            }
        };
        let log = Log {
            _lock: lock,
            dir: dir.to_path_buf(),
            segments: RwLock::new(segments),
            next_key: AtomicU32::new(FIRST_OUTPUT_KEY),
            segment_bytes,
            recovery,
        };
        Ok((
            log,
            Tail {
                active,
                seg,
                len: last_len,
                next_lsn,
                alloc: last_len,
                synced_write_avg: 0,
                failed: None,
            },
        ))
    }

    /// Writes `buf` (whole records) at the tail, syncing if `sync`. Returns where it starts.
    /// On failure nothing partial remains: the segment is cut back to its previous length.
    pub fn write(&self, tail: &mut Tail, buf: &[u8], sync: bool) -> Result<(u32, u64), EngineError> {
        if let Some(why) = &tail.failed {
            return Err(EngineError::new(
                ErrorCode::IO,
                format!("the log refuses writes after an earlier failure: {why}"),
            ));
        }
        if tail.len > 0 && tail.len + buf.len() as u64 > self.segment_bytes {
            self.rotate(tail)?;
        }
        let start = tail.len;
        if sync {
            self.preallocate(tail, buf.len() as u64);
        }
        if let Err(e) = tail.active.file.write_all_at(buf, start) {
            let err = io_err("write", &seg_path(&self.dir, tail.seg), e);
            tail.alloc = start;
            if let Err(e2) = tail.active.file.set_len(start) {
                tail.failed = Some(format!("could not cut back a failed write: {e2}"));
            }
            return Err(err);
        }
        if sync {
            if let Err(e) = tail.active.file.sync_data() {
                // After a failed fsync the page cache state is unknown: fail closed.
                tail.failed = Some(format!("fsync failed: {e}"));
                tail.alloc = start;
                let _ = tail.active.file.set_len(start);
                return Err(io_err("fsync", &seg_path(&self.dir, tail.seg), e));
            }
        }
        tail.len += buf.len() as u64;
        tail.active.bytes.store(tail.len, Ordering::Relaxed);
        Ok((tail.seg, start))
    }

    /// Zeros written (and synced) ahead of the tail while synced writes are small: a sync of
    /// data written over allocated blocks writes the data alone, where a write that grows the
    /// file makes its sync write the inode too (on this project's ext4, 135 against 195 us per
    /// sync: BENCHMARKS.md). For large writes the zeros cost more than they save, so an average
    /// write over `PREALLOCATE_BELOW` grows the file as it goes. Best effort: when the zeros
    /// cannot be written (a full disk), the write goes on without them.
    fn preallocate(&self, tail: &mut Tail, len: u64) {
        tail.synced_write_avg = (tail.synced_write_avg * 7 + len) / 8;
        let need = tail.len + len;
        if need <= tail.alloc || tail.synced_write_avg > PREALLOCATE_BELOW {
            return;
        }
        let end = (tail.len + PREALLOCATE_CHUNK).min(self.segment_bytes).max(need);
        let zeros = vec![0u8; (end - tail.len) as usize];
        let file = &tail.active.file;
        match file.write_all_at(&zeros, tail.len).and_then(|()| file.sync_data()) {
            Ok(()) => tail.alloc = end,
            Err(_) => {
                let _ = file.set_len(tail.len);
                tail.alloc = tail.len;
            }
        }
    }

    /// Cuts the zeros written ahead of the active segment's tail (before it is sealed, and at
    /// shutdown): only the last segment may end in zeros.
    pub fn cut_preallocated(&self, tail: &mut Tail) -> Result<(), EngineError> {
        if tail.alloc > tail.len {
            let path = seg_path(&self.dir, tail.seg);
            tail.active
                .file
                .set_len(tail.len)
                .and_then(|()| tail.active.file.sync_all())
                .map_err(|e| io_err("cut the preallocated tail of", &path, e))?;
            tail.alloc = tail.len;
        }
        Ok(())
    }

    fn rotate(&self, tail: &mut Tail) -> Result<(), EngineError> {
        self.cut_preallocated(tail)?;
        tail.active
            .file
            .sync_data()
            .map_err(|e| io_err("fsync", &seg_path(&self.dir, tail.seg), e))?;
        let seg = tail.seg + 1;
        let path = seg_path(&self.dir, seg);
        let f = Seg::new(
            OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(|e| io_err("create", &path, e))?,
            seg,
            0,
        );
        sync_dir(&self.dir)?;
        self.segments.write().insert(seg, f.clone());
        tail.active = f;
        tail.seg = seg;
        tail.len = 0;
        tail.alloc = 0;
        Ok(())
    }

    /// Flushes the active segment (file-fast's periodic sync).
    pub fn sync_active(&self, tail: &Tail) -> Result<(), EngineError> {
        tail.active
            .file
            .sync_data()
            .map_err(|e| io_err("fsync", &seg_path(&self.dir, tail.seg), e))
    }

    /// The active segment, for syncing without holding the writer lock.
    pub fn active_seg(&self, tail: &Tail) -> Arc<Seg> {
        tail.active.clone()
    }

    /// The segment under key `seg`.
    pub fn seg(&self, seg: u32) -> Result<Arc<Seg>, EngineError> {
        self.segments
            .read()
            .get(&seg)
            .cloned()
            .ok_or_else(|| EngineError::new(ErrorCode::CORRUPT, format!("segment {seg} is missing")))
    }

    /// Counts `bytes` of segment `seg` as dead (if it still exists).
    pub fn add_dead(&self, seg: u32, bytes: u64) {
        if let Some(s) = self.segments.read().get(&seg) {
            s.dead.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    /// Bytes of every segment file (live and dead records alike).
    pub fn disk_bytes(&self) -> u64 {
        self.segments.read().values().map(|s| s.bytes.load(Ordering::Relaxed)).sum()
    }

    /// Bytes counted dead in every segment.
    pub fn dead_bytes(&self) -> u64 {
        self.segments.read().values().map(|s| s.dead.load(Ordering::Relaxed)).sum()
    }

    pub fn segment_path(&self, seg: &Seg) -> PathBuf {
        seg_path(&self.dir, seg.disk)
    }
}
