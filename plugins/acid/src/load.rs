//! Startup: checks the shard layout and reads every shard's catalogue and state rows for the
//! catalogue to open with (which links forks and collects soft-deleted streams nobody
//! references).

use std::path::Path;

use durable_streams_catalog::Recovered;
use durable_streams_core::abi::{EngineError, ErrorCode};

use crate::rows::{decode_catalog, decode_state};
use crate::shard::{Shard, StoredRow};

pub use durable_streams_catalog::durable_fs::{create_dir_durable, sync_dir};

/// The shard indexes present in `dir` (`shard-NNN.redb`), sorted.
fn shard_files(dir: &Path) -> Result<Vec<usize>, EngineError> {
    let rd = std::fs::read_dir(dir).map_err(|e| EngineError::new(ErrorCode::IO, format!("list {}: {e}", dir.display())))?;
    let mut out: Vec<usize> = rd
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            name.strip_prefix("shard-")?.strip_suffix(".redb")?.parse::<usize>().ok()
        })
        .collect();
    out.sort_unstable();
    Ok(out)
}

/// What else a data directory holds, to name it when the acid data is missing.
fn other_data_hint(data_dir: &Path) -> String {
    if data_dir.join("file").is_dir() {
        format!(
            " ({} holds file-mode data: use storage.mode = \"file-durable\" or \"file-fast\")",
            data_dir.display()
        )
    } else {
        String::new()
    }
}

/// Opens the shard files of `dir`, creating a new layout of `configured` shards (0: one) when
/// there is none and `create` allows it. The shard count is recorded in shard 0 when the data is
/// created; a configured count of 0 takes the recorded one, and a different configured count is
/// refused (streams are placed by a hash of the count).
pub fn open_shard_files(dir: &Path, configured: usize, create: bool) -> Result<Vec<Shard>, EngineError> {
    let data_dir = dir.parent().unwrap_or(dir);
    let missing_data = || {
        EngineError::new(
            ErrorCode::BAD_CONFIG,
            format!(
                "no acid data in {} (no {}/shard-*.redb){}; check storage.data_dir",
                data_dir.display(),
                dir.display(),
                other_data_hint(data_dir)
            ),
        )
    };
    if !dir.is_dir() {
        if !create {
            return Err(missing_data());
        }
        create_dir_durable(dir)?;
    }
    let present = shard_files(dir)?;
    let path = |i: usize| dir.join(format!("shard-{i:03}.redb"));
    let mismatch = |written: usize| {
        EngineError::new(
            ErrorCode::BAD_CONFIG,
            format!(
                "the acid data in {} was written with storage.acid_shard_count = {written}, but it is set to {configured}; set it back to {written} (the count is fixed when the data is created)",
                dir.display()
            ),
        )
    };
    if present.is_empty() {
        if !create {
            return Err(missing_data());
        }
        let configured = configured.max(1);
        let shards = (0..configured)
            .map(|i| Shard::open_file(&path(i), create))
            .collect::<Result<Vec<_>, _>>()?;
        // New shard files must survive a power cut too, and so must the recorded count.
        sync_dir(dir)?;
        shards[0].record_shard_count(configured as u64)?;
        return Ok(shards);
    }
    if present[0] != 0 {
        return Err(EngineError::new(
            ErrorCode::CORRUPT,
            format!("{} is missing; refusing to start (restore it)", path(0).display()),
        ));
    }
    let first = Shard::open_file(&path(0), create)?;
    let written = match first.recorded_shard_count()? {
        Some(n) => n as usize,
        // Data from before the count was recorded: every shard file was created at open.
        None => present.last().map(|n| n + 1).unwrap_or(configured),
    };
    if configured != 0 && written != configured {
        return Err(mismatch(written));
    }
    if let Some(i) = (0..written).find(|i| !present.contains(i)) {
        return Err(EngineError::new(
            ErrorCode::CORRUPT,
            format!("{} is missing; refusing to start (restore it)", path(i).display()),
        ));
    }
    if let Some(extra) = present.iter().find(|&&i| i >= written) {
        return Err(EngineError::new(
            ErrorCode::CORRUPT,
            format!(
                "{} does not belong to this data (written with {written} shards); move it aside",
                path(*extra).display()
            ),
        ));
    }
    let mut shards = vec![first];
    for i in 1..written {
        shards.push(Shard::open_file(&path(i), create)?);
    }
    if create && shards[0].recorded_shard_count()?.is_none() {
        shards[0].record_shard_count(written as u64)?;
    }
    Ok(shards)
}

/// Every stream of every shard as stored, for the catalogue to open with.
pub fn recovered(shards: &[Shard]) -> Result<Vec<Recovered<()>>, EngineError> {
    let mut out = Vec::new();
    for shard in shards {
        let where_ = || {
            shard
                .path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "memory".into())
        };
        for StoredRow {
            id,
            catalog: cat,
            state: st,
            start,
            last_access_ms,
        } in shard.load()?
        {
            let bad = || {
                EngineError::new(
                    ErrorCode::CORRUPT,
                    format!("undecodable stream {id} in {}; refusing to start", where_()),
                )
            };
            let row = decode_catalog(&cat).map_err(|_| bad())?;
            let (tail, writer) = decode_state(st.as_deref().ok_or_else(bad)?).map_err(|_| bad())?;
            out.push(Recovered {
                id,
                name: row.name,
                content_type: row.content_type,
                lifetime: row.lifetime,
                fork: row.fork,
                soft_deleted: row.soft_deleted,
                hidden: row.hidden,
                start,
                last_access_ms,
                tail,
                writer,
                data: (),
            });
        }
    }
    Ok(out)
}
