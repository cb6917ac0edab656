//! The write-ahead log on disk: segment files, batched writes with optional fdatasync,
//! checksummed reads, and recovery (torn tails cut, corruption refused). Knows no streams.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use durable_streams_core::abi::{EngineError, ErrorCode};
use parking_lot::RwLock;

use crate::record::{self, Header, HEADER_LEN, MAX_PAYLOAD};

/// Segments roll over past this size.
pub const SEGMENT_BYTES: u64 = 64 << 20;

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
}

/// The writer's position; owned by whoever holds the engine's writer lock.
pub struct Tail {
    active: Arc<File>,
    seg: u32,
    len: u64,
    pub next_lsn: u64,
    /// Set after a failed fsync or a failed rollback: the log refuses further writes.
    failed: Option<String>,
}

/// The segment files.
pub struct Log {
    /// Held for the life of the engine: one process per data directory.
    _lock: File,
    dir: PathBuf,
    segments: RwLock<BTreeMap<u32, Arc<File>>>,
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
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> EngineError {
    let code = if e.raw_os_error() == Some(28) {
        ErrorCode::STORAGE_FULL
    } else {
        ErrorCode::IO
    };
    EngineError::new(code, format!("{what} {}: {e}", path.display()))
}

fn seg_path(dir: &Path, seg: u32) -> PathBuf {
    dir.join(format!("seg-{seg:08}.log"))
}

fn sync_dir(dir: &Path) -> Result<(), EngineError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err("fsync directory", dir, e))
}

/// Creates `dir` (and missing parents) so that the new entries survive a power cut: each
/// directory that gained an entry is fsynced.
fn create_dir_durable(dir: &Path) -> Result<(), EngineError> {
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur {
        if d.as_os_str().is_empty() || d.exists() {
            break;
        }
        missing.push(d.to_path_buf());
        cur = d.parent();
    }
    std::fs::create_dir_all(dir).map_err(|e| io_err("create", dir, e))?;
    for d in missing.iter().rev() {
        if let Some(parent) = d.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

fn corrupt(path: &Path, off: u64, why: &str) -> EngineError {
    EngineError::new(
        ErrorCode::CORRUPT,
        format!(
            "corrupt record in {} at byte {off}: {why}; refusing to start (restore the file or move it aside)",
            path.display()
        ),
    )
}

impl Log {
    /// Opens (creating) the log in `dir`, replaying every valid record in order through
    /// `visit`. A torn or zero-filled tail of the last segment is cut off; damage anywhere else
    /// refuses to open, naming the file.
    pub fn open(dir: &Path, mut visit: impl FnMut(Replayed<'_>) -> Result<(), EngineError>) -> Result<(Log, Tail), EngineError> {
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
        let mut ids: Vec<u32> = std::fs::read_dir(dir)
            .map_err(|e| io_err("list", dir, e))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let n = e.file_name().into_string().ok()?;
                n.strip_prefix("seg-")?.strip_suffix(".log")?.parse().ok()
            })
            .collect();
        ids.sort_unstable();
        let mut segments = BTreeMap::new();
        let mut recovery = Recovery {
            segments: ids.len(),
            ..Default::default()
        };
        let first_lsn = 1u64;
        let mut next_lsn = first_lsn;
        let mut last_len = 0u64;
        for (i, &seg) in ids.iter().enumerate() {
            let path = seg_path(dir, seg);
            let is_last = i + 1 == ids.len();
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(|e| io_err("open", &path, e))?;
            let bytes = std::fs::read(&path).map_err(|e| io_err("read", &path, e))?;
            let end = scan(&path, seg, &bytes, is_last, &mut next_lsn, &mut visit)?;
            if end < bytes.len() as u64 {
                recovery.cut_tail = Some((path.clone(), end, bytes.len() as u64 - end));
                file.set_len(end)
                    .and_then(|_| file.sync_all())
                    .map_err(|e| io_err("truncate torn tail of", &path, e))?;
            }
            if is_last {
                last_len = end;
            }
            segments.insert(seg, Arc::new(file));
        }
        let seg = ids.last().copied().unwrap_or(0);
        let active = match segments.get(&seg) {
            Some(f) => f.clone(),
            None => {
                let path = seg_path(dir, seg);
                let f = Arc::new(
                    OpenOptions::new()
                        .read(true)
                        .write(true)
                        .create_new(true)
                        .open(&path)
                        .map_err(|e| io_err("create", &path, e))?,
                );
                sync_dir(dir)?;
                segments.insert(seg, f.clone());
                f
            }
        };
        recovery.records = next_lsn - first_lsn;
        let log = Log {
            _lock: lock,
            dir: dir.to_path_buf(),
            segments: RwLock::new(segments),
            recovery,
        };
        Ok((
            log,
            Tail {
                active,
                seg,
                len: last_len,
                next_lsn,
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
        if tail.len > 0 && tail.len + buf.len() as u64 > SEGMENT_BYTES {
            self.rotate(tail)?;
        }
        let start = tail.len;
        if let Err(e) = tail.active.write_all_at(buf, start) {
            let err = io_err("write", &seg_path(&self.dir, tail.seg), e);
            if let Err(e2) = tail.active.set_len(start) {
                tail.failed = Some(format!("could not cut back a failed write: {e2}"));
            }
            return Err(err);
        }
        if sync {
            if let Err(e) = tail.active.sync_data() {
                // After a failed fsync the page cache state is unknown: fail closed.
                tail.failed = Some(format!("fsync failed: {e}"));
                let _ = tail.active.set_len(start);
                return Err(io_err("fsync", &seg_path(&self.dir, tail.seg), e));
            }
        }
        tail.len += buf.len() as u64;
        Ok((tail.seg, start))
    }

    fn rotate(&self, tail: &mut Tail) -> Result<(), EngineError> {
        tail.active
            .sync_data()
            .map_err(|e| io_err("fsync", &seg_path(&self.dir, tail.seg), e))?;
        let seg = tail.seg + 1;
        let path = seg_path(&self.dir, seg);
        let f = Arc::new(
            OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(|e| io_err("create", &path, e))?,
        );
        sync_dir(&self.dir)?;
        self.segments.write().insert(seg, f.clone());
        tail.active = f;
        tail.seg = seg;
        tail.len = 0;
        Ok(())
    }

    /// Flushes the active segment (file-fast's periodic sync).
    pub fn sync_active(&self, tail: &Tail) -> Result<(), EngineError> {
        tail.active
            .sync_data()
            .map_err(|e| io_err("fsync", &seg_path(&self.dir, tail.seg), e))
    }

    /// The active segment's file, for syncing without holding the writer lock.
    pub fn active_file(&self, tail: &Tail) -> Arc<File> {
        tail.active.clone()
    }

    /// Reads `len` bytes at `off` of segment `seg`.
    pub fn read(&self, seg: u32, off: u64, len: usize) -> Result<Vec<u8>, EngineError> {
        let file = self
            .segments
            .read()
            .get(&seg)
            .cloned()
            .ok_or_else(|| EngineError::new(ErrorCode::CORRUPT, format!("segment {seg} is missing")))?;
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, off)
            .map_err(|e| io_err("read", &seg_path(&self.dir, seg), e))?;
        Ok(buf)
    }

    /// Bytes of every segment file (live and dead records alike).
    pub fn disk_bytes(&self) -> u64 {
        self.segments
            .read()
            .values()
            .filter_map(|f| f.metadata().ok())
            .map(|m| m.len())
            .sum()
    }

    pub fn segment_path(&self, seg: u32) -> PathBuf {
        seg_path(&self.dir, seg)
    }
}

/// Scans one segment; returns the length of its valid prefix.
fn scan(
    path: &Path,
    seg: u32,
    bytes: &[u8],
    is_last: bool,
    next_lsn: &mut u64,
    visit: &mut impl FnMut(Replayed<'_>) -> Result<(), EngineError>,
) -> Result<u64, EngineError> {
    let mut off = 0usize;
    let torn = |off: usize, why: &str| -> Result<u64, EngineError> {
        if is_last {
            Ok(off as u64)
        } else {
            Err(corrupt(path, off as u64, why))
        }
    };
    while off < bytes.len() {
        if bytes.len() - off < HEADER_LEN {
            return torn(off, "truncated record header");
        }
        let h = record::parse_header(&bytes[off..off + HEADER_LEN]);
        if h.crc == 0 && h.len == 0 && h.lsn == 0 {
            // Zero-filled tail (preallocation, or a torn write of zero pages).
            if bytes[off..].iter().all(|&b| b == 0) {
                return torn(off, "zero-filled bytes inside a sealed segment");
            }
            return torn(off, "zeroed record header followed by data");
        }
        let total = HEADER_LEN + h.len as usize;
        if h.len > MAX_PAYLOAD || off + total > bytes.len() {
            return torn(off, "record runs past the end of the file");
        }
        let rec = &bytes[off..off + total];
        if !record::verify(rec) {
            // A damaged record followed by the next valid record is corruption of
            // acknowledged data, not a torn tail.
            let next = off + total;
            let followed = bytes.len() - next >= HEADER_LEN && {
                let nh = record::parse_header(&bytes[next..next + HEADER_LEN]);
                let nt = HEADER_LEN + nh.len as usize;
                nh.len <= MAX_PAYLOAD && next + nt <= bytes.len() && record::verify(&bytes[next..next + nt])
            };
            if followed || !is_last {
                return Err(corrupt(path, off as u64, "checksum mismatch"));
            }
            return torn(off, "checksum mismatch");
        }
        if h.lsn != *next_lsn {
            if h.lsn < *next_lsn {
                return torn(off, "stale record (old sequence number)");
            }
            return Err(corrupt(
                path,
                off as u64,
                &format!("sequence gap: expected record {}, found {}", next_lsn, h.lsn),
            ));
        }
        visit(Replayed {
            loc: Loc {
                seg,
                off: off as u64,
                len: total as u32,
            },
            header: h,
            payload: &rec[HEADER_LEN..],
        })?;
        *next_lsn += 1;
        off += total;
    }
    Ok(off as u64)
}
