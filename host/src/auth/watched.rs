//! A configuration file a running server follows: loaded at start, re-read when its
//! modification time or length changes (looked at no more often than asked), the last good
//! contents kept when a new version does not load. Owns no format: the caller's loader parses.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::RwLock;

type Stamp = Option<(SystemTime, u64)>;

/// A file's parsed contents, followed.
pub struct Watched<T, E> {
    path: PathBuf,
    /// What the file is, for the log line when a new version does not load.
    what: &'static str,
    load: fn(&Path) -> Result<T, E>,
    loaded: RwLock<(Stamp, Arc<T>)>,
    checked_ms: AtomicU64,
}

fn stamp_of(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

impl<T, E: std::fmt::Display> Watched<T, E> {
    /// Loads `path` now; its error is the caller's (a server refuses to start).
    pub fn open(path: PathBuf, what: &'static str, load: fn(&Path) -> Result<T, E>) -> Result<Self, E> {
        let stamp = stamp_of(&path);
        let value = load(&path)?;
        Ok(Watched {
            path,
            what,
            load,
            loaded: RwLock::new((stamp, Arc::new(value))),
            checked_ms: AtomicU64::new(crate::clock::now_ms()),
        })
    }

    /// Fixed contents that are never read from `path`.
    pub fn fixed(path: PathBuf, what: &'static str, load: fn(&Path) -> Result<T, E>, value: T) -> Self {
        Watched {
            path,
            what,
            load,
            loaded: RwLock::new((None, Arc::new(value))),
            checked_ms: AtomicU64::new(u64::MAX),
        }
    }

    /// Makes the next [`Watched::current`] look at the file whatever its interval (a reload,
    /// tests).
    pub fn look_next_time(&self) {
        self.checked_ms.store(0, Ordering::Relaxed);
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The contents, the file looked at first (one `stat`) if that was `every_ms` or more ago.
    pub fn current(&self, every_ms: u64) -> Arc<T> {
        let now = crate::clock::now_ms();
        let last = self.checked_ms.load(Ordering::Relaxed);
        if last != u64::MAX
            && now.saturating_sub(last) >= every_ms
            && self
                .checked_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let stamp = stamp_of(&self.path);
            if stamp != self.loaded.read().0 {
                match (self.load)(&self.path) {
                    Ok(v) => *self.loaded.write() = (stamp, Arc::new(v)),
                    // A damaged file keeps the last good contents (and says so).
                    Err(e) => tracing::error!(error = %e, "{} unreadable: still serving with what was loaded before", self.what),
                }
            }
        }
        self.loaded.read().1.clone()
    }
}
