//! Directory durability for the local engines' files (the plumbing every file-backed plugin
//! needs): an I/O error as an engine error (a full disk is `STORAGE_FULL`), a directory
//! fsynced, a directory created so that its new entries survive a power cut. Files only; no
//! protocol.

use std::path::Path;

use durable_streams_core::abi::{EngineError, ErrorCode};

/// `e` (while doing `what` to `path`) as an engine error: `STORAGE_FULL` for a full disk, so
/// the host answers 507 and the engine recovers when space returns; `IO` otherwise.
pub fn io_error(what: &str, path: &Path, e: std::io::Error) -> EngineError {
    let code = if e.raw_os_error() == Some(28) {
        ErrorCode::STORAGE_FULL
    } else {
        ErrorCode::IO
    };
    EngineError::new(code, format!("{what} {}: {e}", path.display()))
}

/// Fsyncs directory `dir`, so the entries made in it (created, renamed, removed) are durable.
pub fn sync_dir(dir: &Path) -> Result<(), EngineError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error("fsync directory", dir, e))
}

/// Creates `dir` and its missing parents, fsyncing each directory that gained an entry.
pub fn create_dir_durable(dir: &Path) -> Result<(), EngineError> {
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur {
        if d.as_os_str().is_empty() || d.exists() {
            break;
        }
        missing.push(d.to_path_buf());
        cur = d.parent();
    }
    std::fs::create_dir_all(dir).map_err(|e| io_error("create", dir, e))?;
    for d in missing.iter().rev() {
        if let Some(parent) = d.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_nested_directories_and_syncs_them() {
        let root = std::env::temp_dir().join(format!("ds-durable-fs-{}", std::process::id()));
        let deep = root.join("a/b/c");
        create_dir_durable(&deep).unwrap();
        assert!(deep.is_dir());
        sync_dir(&deep).unwrap();
        create_dir_durable(&deep).unwrap();
        let e = sync_dir(&root.join("missing")).unwrap_err();
        assert_eq!(e.code, ErrorCode::IO);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
