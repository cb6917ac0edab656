//! Startup: checks the shard layout, rebuilds the in-memory stream map from every shard's
//! catalog, derives fork reference counts, and collects soft-deleted streams nobody references.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use durable_streams_core::abi::{EngineError, ErrorCode};
use parking_lot::Mutex;

use crate::engine::AcidStorage;
use crate::shard::Shard;
use crate::stream::{decode_catalog, decode_state, AcidStream, Catalog, Inner};

pub fn sync_dir(dir: &Path) -> Result<(), EngineError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| EngineError::new(ErrorCode::IO, format!("fsync directory {}: {e}", dir.display())))
}

/// Creates `dir` and missing parents, fsyncing each directory that gained an entry.
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
    std::fs::create_dir_all(dir).map_err(|e| EngineError::new(ErrorCode::IO, format!("create {}: {e}", dir.display())))?;
    for d in missing.iter().rev() {
        if let Some(parent) = d.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

/// Refuses to start when the data directory holds more shards than configured (they would be
/// silently ignored).
pub fn check_shard_files(dir: &Path, shard_count: usize) -> Result<(), EngineError> {
    let rd = std::fs::read_dir(dir).map_err(|e| EngineError::new(ErrorCode::IO, format!("list {}: {e}", dir.display())))?;
    for entry in rd.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(n) = name
            .strip_prefix("shard-")
            .and_then(|r| r.strip_suffix(".redb"))
            .and_then(|n| n.parse::<usize>().ok())
        {
            if n >= shard_count {
                return Err(EngineError::new(
                    ErrorCode::BAD_CONFIG,
                    format!(
                        "{} holds shard {n} but storage.acid_shard_count is {shard_count}; set it to the count the data was written with",
                        dir.display()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Rebuilds every stream, sources before forks.
pub fn load_streams(shards: &[Shard]) -> Result<BTreeMap<String, Arc<AcidStream>>, EngineError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut pending: Vec<(usize, u64, Catalog, Inner)> = Vec::new();
    for (i, shard) in shards.iter().enumerate() {
        let where_ = || {
            shard
                .path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "memory".into())
        };
        for (id, cat, st) in shard.load()? {
            let bad = || {
                EngineError::new(
                    ErrorCode::CORRUPT,
                    format!("undecodable stream {id} in {}; refusing to start", where_()),
                )
            };
            let cat = decode_catalog(&cat).map_err(|_| bad())?;
            let inner = match st {
                Some(b) => decode_state(&b).map_err(|_| bad())?,
                None => return Err(bad()),
            };
            pending.push((i, id, cat, inner));
        }
    }
    let mut by_id: HashMap<u64, Arc<AcidStream>> = HashMap::new();
    while !pending.is_empty() {
        let before = pending.len();
        let mut rest = Vec::new();
        for (shard, id, cat, inner) in pending {
            let fork = match cat.fork {
                None => None,
                Some((src_id, _)) => match by_id.get(&src_id) {
                    Some(src) => Some((src.name.clone(), src.clone())),
                    None => {
                        rest.push((shard, id, cat, inner));
                        continue;
                    }
                },
            };
            if let Some((_, src)) = &fork {
                src.refcount.fetch_add(1, Ordering::AcqRel);
            }
            let s = Arc::new(AcidStream {
                id,
                shard,
                name: cat.name,
                content_type: cat.content_type,
                lifetime: cat.lifetime,
                base: cat.fork.map(|f| f.1).unwrap_or(0),
                fork,
                refcount: AtomicU32::new(0),
                soft_deleted: AtomicBool::new(cat.soft_deleted),
                hidden: AtomicBool::new(cat.hidden),
                last_access_ms: AtomicU64::new(now),
                inner: Mutex::new(inner),
            });
            by_id.insert(id, s);
        }
        if rest.len() == before {
            return Err(EngineError::new(
                ErrorCode::CORRUPT,
                format!("{} forks reference sources that do not exist; refusing to start", rest.len()),
            ));
        }
        pending = rest;
    }
    let mut map = BTreeMap::new();
    let mut ordered: Vec<&Arc<AcidStream>> = by_id.values().collect();
    ordered.sort_by_key(|s| s.id >> 16);
    for s in ordered {
        if s.hidden.load(Ordering::Acquire) {
            continue;
        }
        let replace = match map.get(&s.name) {
            None => true,
            Some(old) => {
                let old: &Arc<AcidStream> = old;
                old.soft_deleted.load(Ordering::Acquire) && !s.soft_deleted.load(Ordering::Acquire)
            }
        };
        if replace {
            map.insert(s.name.clone(), s.clone());
        }
    }
    // Keep unmapped (hidden) soft-deleted streams alive through their forks' Arcs only.
    Ok(map)
}

/// Collects soft-deleted streams that no fork references any more (a crash between a fork's
/// delete and its source's collection leaves such a stream behind).
pub fn collect_orphans(engine: &AcidStorage) -> Result<(), EngineError> {
    loop {
        let orphans: Vec<Arc<AcidStream>> = engine
            .streams
            .read()
            .values()
            .filter(|s| s.soft_deleted.load(Ordering::Acquire) && s.refcount.load(Ordering::Acquire) == 0)
            .cloned()
            .collect();
        if orphans.is_empty() {
            return Ok(());
        }
        for s in orphans {
            engine.remove(&s, false)?;
        }
    }
}
