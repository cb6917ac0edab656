//! Long streams: megabytes of records of mixed sizes read back whole, in chunks of any bound,
//! from any record and from inside one, through a fork and after a trim. Engines keep a long
//! stream in pieces of their own (blocks, segments, messages): no read may show the seams.

use durable_streams_core::abi::*;

use crate::support::*;

/// 160 records from 1 byte to 70 KB (a fixed sequence), about 3 MB in all.
fn bodies() -> Vec<Vec<u8>> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..160u32)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = match i % 4 {
                0 => 1 + (x % 100) as usize,
                1 => 1 + (x % 70_000) as usize,
                _ => 1 + (x % 40_000) as usize,
            };
            (0..len).map(|j| (i as u8).wrapping_mul(31).wrapping_add(j as u8)).collect()
        })
        .collect()
}

/// Reads `name` from `pos` to its tail in chunks of at most `max` bytes, checking that each
/// chunk ends at a record end and is within `max` unless it is a single record.
fn walk(e: &EngineBox, name: &str, pos: u64, max: u64, ends: &[u64]) -> Result<Vec<u8>, Failure> {
    let mut out = Vec::new();
    let mut pos = pos;
    loop {
        let c = ok(read_at(e, name, pos, max, NOW), &format!("read {name} at {pos} (max {max})"))?;
        let data = c.data.bytes();
        check(c.next == pos + data.len() as u64, || {
            format!("read {name} at {pos}: next {} after {} bytes", c.next, data.len())
        })?;
        check(ends.binary_search(&c.next).is_ok(), || {
            format!("read {name} at {pos} (max {max}) stopped at {}, inside a record", c.next)
        })?;
        let first_end = ends[ends.partition_point(|&x| x <= pos)];
        check(data.len() as u64 <= max || c.next == first_end, || {
            format!(
                "read {name} at {pos} gave {} bytes over max {max}, more than one record",
                data.len()
            )
        })?;
        out.extend_from_slice(data.as_slice());
        if c.next == c.meta.tail {
            return Ok(out);
        }
        check(c.next > pos, || format!("read {name} at {pos} made no progress"))?;
        pos = c.next;
    }
}

pub fn long_streams_read_back_whole_from_anywhere(e: &EngineBox) -> Result<(), Failure> {
    ok(Create::new("long").run(e), "create")?;
    let mut all = Vec::new();
    let mut ends = Vec::new();
    for b in bodies() {
        ok(Append::new("long", &b).run(e), "append")?;
        all.extend_from_slice(&b);
        ends.push(all.len() as u64);
    }
    let same = |got: &[u8], from: u64, how: &str| {
        check(got == &all[from as usize..], || {
            format!("{how}: {} bytes read, {} expected from {from}", got.len(), all.len() as u64 - from)
        })
    };
    for max in [1, 4096, 100_000, 1 << 20, 16 << 20] {
        same(&walk(e, "long", 0, max, &ends)?, 0, &format!("whole stream, max {max}"))?;
    }
    for k in (0..ends.len() - 1).step_by(7) {
        for (pos, max) in [(ends[k], 1 << 20), (ends[k + 1] - 1, 50_000)] {
            same(&walk(e, "long", pos, max, &ends)?, pos, &format!("from {pos}, max {max}"))?;
        }
    }
    // A fork inherits the source's bytes below its position, then goes on with its own.
    let at = ends[100];
    let mut f = Create::new("long-fork");
    f.fork = Some(("long", at));
    ok(f.run(e), "fork")?;
    ok(Append::new("long-fork", b"own").run(e), "append to the fork")?;
    let mut fork_ends: Vec<u64> = ends[..=100].to_vec();
    fork_ends.push(at + 3);
    let got = walk(e, "long-fork", 0, 1 << 20, &fork_ends)?;
    check(
        got.len() == at as usize + 3 && got[..at as usize] == all[..at as usize] && &got[at as usize..] == b"own",
        || format!("the fork read back {} bytes, {} expected", got.len(), at + 3),
    )?;
    // After a trim the retained records read back whole (engines without retention skip).
    if let Some(t) = trim(e, "long", ends[60] + 1)? {
        let start = t["start"].as_u64().unwrap_or(u64::MAX);
        check(start <= ends[60] + 1 && (start == 0 || ends.binary_search(&start).is_ok()), || {
            format!("trim before {} answered {t}", ends[60] + 1)
        })?;
        same(&walk(e, "long", start, 1 << 20, &ends)?, start, "after the trim")?;
        same(&walk(e, "long", ends[80], 300_000, &ends)?, ends[80], "after the trim, later")?;
    }
    // Trimmed up to its last records (no fork holds them), a stream goes on where it was.
    ok(Create::new("short").run(e), "create")?;
    let mut kept = Vec::new();
    let mut kept_ends = Vec::new();
    for b in bodies().into_iter().take(40) {
        ok(Append::new("short", &b).run(e), "append")?;
        kept.extend_from_slice(&b);
        kept_ends.push(kept.len() as u64);
    }
    if let Some(t) = trim(e, "short", kept_ends[37] + 1)? {
        let start = t["start"].as_u64().unwrap_or(u64::MAX);
        check(start == kept_ends[37], || format!("trim before {} answered {t}", kept_ends[37] + 1))?;
        ok(Append::new("short", b"more").run(e), "append after the trim")?;
        kept.extend_from_slice(b"more");
        kept_ends.push(kept.len() as u64);
        let got = walk(e, "short", start, 1 << 20, &kept_ends)?;
        check(got == kept[start as usize..], || {
            format!(
                "after a trim to {start} and an append: {} bytes read, {} expected",
                got.len(),
                kept.len() as u64 - start
            )
        })?;
    }
    Ok(())
}
