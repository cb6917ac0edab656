//! Compaction of the file engines' log: a run of sealed segments whose records are largely dead
//! (removed streams' records; removal records whose stream's CREATE is gone) is rewritten with
//! only its live records, in the background, without pausing appends or reads. Owns choosing
//! runs, the crash-safe copy (the output is synced under a temporary name, renamed over the
//! run's last segment, the other inputs removed after; `Log::open` finishes or undoes an
//! interrupted one) and moving streams' record locations to the output. Decides nothing about
//! streams: which are live comes from the catalogue.

use std::collections::{HashMap, HashSet};
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use durable_streams_core::abi::{EngineError, ErrorCode};

use crate::log::{io_err, seg_path, sync_dir, Loc, Seg, TMP_SUFFIX};
use crate::rewrite::{records, rewrite, Live, Rec, Rewritten};
use crate::scan::{self, Compacted};
use crate::FileStorage;

/// Bytes of compaction output written between two syncs.
const SYNC_EVERY: usize = 2 << 20;

/// When a segment is worth compacting.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// A sealed segment with at least this share of dead bytes (percent) is compacted.
    pub dead_percent: u64,
}

/// What one compaction did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Done {
    pub inputs: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// Picks the run of sealed segments to compact next, from each one's (bytes, dead bytes) in
/// log order: the segment with the most dead bytes among those at or over the threshold, else
/// two neighbours both under a quarter of a segment (merged so that files stay few); extended
/// over small segments before it while the run's live bytes stay under half a segment.
pub fn choose_run(segs: &[(u64, u64)], segment_bytes: u64, dead_percent: u64) -> Option<(usize, usize)> {
    let live = |i: usize| segs[i].0.saturating_sub(segs[i].1);
    let small = |i: usize| segs[i].0 < segment_bytes / 4;
    let over = |i: usize| segs[i].1 > 0 && segs[i].1.saturating_mul(100) >= segs[i].0.saturating_mul(dead_percent);
    let end = (0..segs.len())
        .filter(|&i| over(i))
        .max_by_key(|&i| segs[i].1)
        .or_else(|| (1..segs.len()).find(|&i| small(i) && small(i - 1)))?;
    let mut start = end;
    let mut total = live(end);
    while start > 0 && small(start - 1) && total + live(start - 1) <= segment_bytes / 2 {
        start -= 1;
        total += live(start);
    }
    Some((start, end))
}

impl FileStorage {
    /// Compacts until no run qualifies (at most one pass per sealed segment); returns what each
    /// compaction did.
    pub fn compact(&self, policy: Policy) -> Result<Vec<Done>, EngineError> {
        let store = self.store();
        let _one = store.compacting.lock();
        let mut done = Vec::new();
        let limit = store.log.segments.read().len() * 2 + 2;
        for _ in 0..limit {
            let active = store.tail.lock().seg();
            let sealed: Vec<(u32, Arc<Seg>)> = {
                let map = store.log.segments.read();
                let mut v: Vec<_> = map.iter().filter(|(_, s)| s.disk < active).map(|(k, s)| (*k, s.clone())).collect();
                v.sort_by_key(|(_, s)| s.disk);
                v
            };
            let sizes: Vec<(u64, u64)> = sealed
                .iter()
                .map(|(_, s)| {
                    let bytes = s.bytes.load(Ordering::Relaxed);
                    (bytes, s.dead.load(Ordering::Relaxed).min(bytes))
                })
                .collect();
            let Some((a, b)) = choose_run(&sizes, store.log.segment_bytes, policy.dead_percent) else {
                break;
            };
            match self.compact_run(&sealed[a..=b]) {
                Ok(d) => {
                    let c = &store.compactions;
                    c.runs.fetch_add(1, Ordering::Relaxed);
                    c.reclaimed_bytes
                        .fetch_add(d.bytes_before.saturating_sub(d.bytes_after), Ordering::Relaxed);
                    done.push(d);
                }
                Err(e) => {
                    store.compactions.failures.fetch_add(1, Ordering::Relaxed);
                    *store.compactions.last_error.lock() = Some(e.message.to_string());
                    return Err(e);
                }
            }
        }
        Ok(done)
    }

    /// Rewrites `run` (consecutive sealed segments, in log order) as one segment.
    fn compact_run(&self, run: &[(u32, Arc<Seg>)]) -> Result<Done, EngineError> {
        let store = self.store();
        let log = &store.log;
        let inputs: Vec<Vec<u8>> = run
            .iter()
            .map(|(_, s)| {
                let mut buf = vec![0u8; s.bytes.load(Ordering::Relaxed) as usize];
                s.file
                    .read_exact_at(&mut buf, 0)
                    .map_err(|e| io_err("read", &seg_path(&log.dir, s.disk), e))?;
                Ok(buf)
            })
            .collect::<Result<_, EngineError>>()?;
        let mut parsed: Vec<Vec<Rec<'_>>> = Vec::with_capacity(run.len());
        let mut range: Option<(u64, u64)> = None;
        for ((_, seg), bytes) in run.iter().zip(&inputs) {
            let recs = records(bytes, &seg_path(&log.dir, seg.disk))?;
            let header = scan::compacted_header(bytes);
            let first = header.map(|c| c.first_lsn).or(recs.first().map(|r| r.lsn));
            let last = header.map(|c| c.last_lsn).or(recs.last().map(|r| r.lsn));
            if let (Some(f), Some(l)) = (first, last) {
                range = Some(range.map_or((f, l), |(f0, _)| (f0, l)));
            }
            parsed.push(recs);
        }
        let Some((first_lsn, last_lsn)) = range else {
            return Err(EngineError::new(ErrorCode::IO, "compaction found no records in its segments"));
        };

        // Which streams of the run the catalogue still holds (deleted ones read by forks
        // included), and their records below the retained start; a stream removed later is
        // copied and counted dead in the output.
        let input_keys: HashSet<u32> = run.iter().map(|(k, _)| *k).collect();
        let mentioned: HashSet<u64> = parsed.iter().flatten().map(|r| r.id).collect();
        let mut live: HashMap<u64, Live> = HashMap::new();
        self.0.visit_streams(|s| {
            if !mentioned.contains(&s.id) {
                return;
            }
            let mut l = Live {
                start: s.start,
                saved_access_ms: s.saved_access_ms,
                ..Default::default()
            };
            if s.start > 0 {
                for e in s.data.list.lock().iter() {
                    let end = e.start + e.data_len as u64;
                    if end <= s.start && input_keys.contains(&e.loc.seg) {
                        l.trimmed.insert((e.loc.seg, e.loc.off), end);
                    }
                }
            }
            live.insert(s.id, l);
        });
        let first_disk = run[0].1.disk;
        let last_disk = run[run.len() - 1].1.disk;
        // A DELETE record stays while its stream's CREATE is in a segment before the run.
        let delete_kept: HashSet<u64> = {
            let tombs = store.tombs.lock();
            let map = log.segments.read();
            tombs
                .iter()
                .filter(|(_, key)| map.get(key).is_some_and(|s| s.disk < first_disk))
                .map(|(id, _)| *id)
                .collect()
        };
        let header = Compacted {
            first_lsn,
            last_lsn,
            next_id: store.next_id.load(Ordering::Relaxed),
        };
        let keyed: Vec<(u32, Vec<Rec<'_>>)> = run.iter().map(|(k, _)| *k).zip(parsed).collect();
        let Rewritten {
            out,
            mut moved,
            copied_bytes,
            creates_kept,
            dropped,
        } = rewrite(&keyed, &live, &delete_kept, &header)?;

        // Write the output under a temporary name, synced, then give it the last input's name.
        let tmp = log.dir.join(format!("seg-{last_disk:08}.log{TMP_SUFFIX}"));
        let target = seg_path(&log.dir, last_disk);
        let _ = std::fs::remove_file(&tmp);
        let written = (|| {
            let mut f = OpenOptions::new().read(true).write(true).create_new(true).open(&tmp)?;
            // Synced a few MiB at a time, so that appends' own fsyncs never wait behind one
            // large flush of the whole output.
            for part in out.chunks(SYNC_EVERY) {
                f.write_all(part)?;
                f.sync_data()?;
            }
            f.sync_all()?;
            Ok::<_, std::io::Error>(f)
        })();
        let file = match written {
            Ok(f) => f,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(io_err("write compacted segment", &tmp, e));
            }
        };
        if let Err(e) = std::fs::rename(&tmp, &target) {
            let _ = std::fs::remove_file(&tmp);
            return Err(io_err("rename compacted segment to", &target, e));
        }
        // From here the output is the log's truth: memory follows whatever else fails.
        let synced = sync_dir(&log.dir);
        let mut removal = Ok(());
        for (_, s) in &run[..run.len() - 1] {
            let path = seg_path(&log.dir, s.disk);
            if let Err(e) = std::fs::remove_file(&path) {
                removal = Err(io_err("remove compacted segment", &path, e));
            }
        }
        if run.len() > 1 {
            let _ = sync_dir(&log.dir);
        }

        for moves in moved.values_mut() {
            moves.sort_unstable();
        }
        let key = log.next_key.fetch_add(1, Ordering::Relaxed);
        let output = Arc::new(Seg {
            file,
            disk: last_disk,
            bytes: (out.len() as u64).into(),
            dead: 0.into(),
        });
        log.segments.write().insert(key, output.clone());
        let mut visited = HashSet::new();
        self.0.visit_streams(|s| {
            let (moves, gone) = (moved.get(&s.id), dropped.get(&s.id));
            if moves.is_none() && gone.is_none() && !creates_kept.contains(&s.id) {
                return;
            }
            visited.insert(s.id);
            if creates_kept.contains(&s.id) {
                s.data.create_seg.store(key, Ordering::Relaxed);
            }
            let mut list = s.data.list.lock();
            if let Some(gone) = gone {
                list.retain(|e| !gone.contains(&(e.loc.seg, e.loc.off)));
            }
            let Some(moves) = moves else { return };
            for e in list.iter_mut().filter(|e| input_keys.contains(&e.loc.seg)) {
                if let Ok(i) = moves.binary_search_by_key(&(e.loc.seg, e.loc.off), |m| (m.0, m.1)) {
                    e.loc = Loc {
                        seg: key,
                        off: moves[i].2,
                        len: e.loc.len,
                    };
                }
            }
        });
        let dead_now: u64 = copied_bytes.iter().filter(|(id, _)| !visited.contains(id)).map(|(_, b)| b).sum();
        output.dead.fetch_add(dead_now, Ordering::Relaxed);
        {
            let mut tombs = store.tombs.lock();
            tombs.retain(|id, key_of| {
                if !input_keys.contains(key_of) {
                    return true;
                }
                // Removed after the catalogue was asked: its CREATE was copied.
                if creates_kept.contains(id) {
                    *key_of = key;
                    return true;
                }
                false
            });
        }
        {
            let mut map = log.segments.write();
            for k in &input_keys {
                map.remove(k);
            }
        }
        synced?;
        removal?;
        Ok(Done {
            inputs: run.len(),
            bytes_before: run.iter().map(|(_, s)| s.bytes.load(Ordering::Relaxed)).sum(),
            bytes_after: out.len() as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::choose_run;

    const SEG: u64 = 1000;

    #[test]
    fn picks_the_deadest_segment_over_the_threshold() {
        let segs = [(1000, 100), (1000, 600), (1000, 900), (1000, 0)];
        assert_eq!(choose_run(&segs, SEG, 50), Some((2, 2)));
        assert_eq!(choose_run(&[(1000, 400), (1000, 490)], SEG, 50), None);
    }

    #[test]
    fn merges_small_neighbours() {
        // Two small ones side by side are merged; small ones before a victim join it.
        assert_eq!(choose_run(&[(1000, 0), (100, 0), (200, 0)], SEG, 50), Some((1, 2)));
        assert_eq!(choose_run(&[(100, 0), (150, 0), (1000, 800)], SEG, 50), Some((0, 2)));
        // Not past half a segment of live bytes.
        assert_eq!(choose_run(&[(200, 0), (200, 0), (1000, 800)], SEG, 50), Some((1, 2)));
        assert_eq!(choose_run(&[(240, 0), (240, 0), (1000, 700)], SEG, 50), Some((2, 2)));
        assert_eq!(choose_run(&[(100, 0), (1000, 0), (100, 0)], SEG, 50), None);
    }
}
