//! Retention (`ext::TRIM`): a stream's head dropped at record boundaries while it continues, reads
//! below the retained start answering `TRIMMED` with that start, and forks keeping what they
//! inherited. An engine without retention answers `UNSUPPORTED` and the cases pass.

use durable_streams_core::abi::*;

use crate::support::*;

fn appends(e: &EngineBox, name: &str, bodies: &[&[u8]]) -> Result<(), Failure> {
    for b in bodies {
        ok(Append::new(name, b).run(e), &format!("append to {name}"))?;
    }
    Ok(())
}

fn start_of(v: &serde_json::Value) -> u64 {
    v["start"].as_u64().unwrap_or(u64::MAX)
}

pub fn trim_drops_whole_records_and_the_stream_goes_on(e: &EngineBox) -> Result<(), Failure> {
    ok(Create::new("r").run(e), "create")?;
    appends(e, "r", &[b"aaaa", b"bbbb", b"cccc"])?;
    let Some(t) = trim(e, "r", 6)? else { return Ok(()) };
    // The record holding position 6 stays: the start is the boundary below it.
    check(start_of(&t) == 4 && t["dropped_bytes"] == 4, || {
        format!("trim before 6 of 4-byte records: {t}")
    })?;
    read_trimmed(e, "r", 0, 4)?;
    read_trimmed(e, "r", 3, 4)?;
    let rest = read_all(e, "r", 4, 1 << 20, NOW)?;
    check(rest == b"bbbbcccc", || {
        format!("from the start: {:?}", String::from_utf8_lossy(&rest))
    })?;
    // Offsets are unchanged and appends go on.
    let out = ok(Append::new("r", b"dddd").run(e), "append after the trim")?;
    check(out.tail == 16, || format!("tail after the trim and an append: {}", out.tail))?;
    // Trimming less than what is gone changes nothing.
    let again = trim(e, "r", 2)?.unwrap_or_default();
    check(start_of(&again) == 4 && again["dropped_bytes"] == 0, || format!("{again}"))?;
    // Up to the tail: everything goes, the stream stays and is empty to read.
    let all = trim(e, "r", 1000)?.unwrap_or_default();
    check(start_of(&all) == 16, || format!("trim past the tail stops at it: {all}"))?;
    let empty = read_all(e, "r", 16, 1 << 20, NOW)?;
    check(empty.is_empty(), || "nothing left to read".into())?;
    let meta = ok(head(e, "r", NOW), "head")?;
    check(meta.tail == 16, || format!("tail {}", meta.tail))?;
    let missing = ext_call(e, ext::TRIM, serde_json::json!({"name": "missing", "before": 1, "now_ms": NOW}));
    code(missing, ErrorCode::NOT_FOUND, "trim of a missing stream")?;
    let bad = ext_call(e, ext::TRIM, serde_json::json!({"name": "r", "before": "soon"}));
    code(bad, ErrorCode::INVALID_ARGUMENT, "an ill-formed trim request")?;
    Ok(())
}

pub fn forks_keep_what_they_inherit(e: &EngineBox) -> Result<(), Failure> {
    ok(Create::new("src").run(e), "create")?;
    appends(e, "src", &[b"aaaa", b"bbbb"])?;
    let mut f = Create::new("fork");
    f.fork = Some(("src", 8));
    ok(f.run(e), "fork at 8")?;
    let Some(t) = trim(e, "src", 8)? else { return Ok(()) };
    check(start_of(&t) == 0, || {
        format!("the fork reads 0..8 of its source: nothing may go ({t})")
    })?;
    // The fork drops its own view's head (inherited bytes included).
    let tf = trim(e, "fork", 4)?.unwrap_or_default();
    check(start_of(&tf) == 4, || format!("fork trimmed before 4: {tf}"))?;
    read_trimmed(e, "fork", 0, 4)?;
    let t2 = trim(e, "src", 8)?.unwrap_or_default();
    check(start_of(&t2) == 4, || {
        format!("the source goes as far as its fork still reads: {t2}")
    })?;
    let got = read_all(e, "fork", 4, 1 << 20, NOW)?;
    check(got == b"bbbb", || {
        format!("the fork still reads what it kept: {:?}", String::from_utf8_lossy(&got))
    })?;
    ok(delete(e, "fork", NOW), "delete the fork")?;
    let t3 = trim(e, "src", 8)?.unwrap_or_default();
    check(start_of(&t3) == 8, || format!("without forks the source trims freely: {t3}"))?;
    Ok(())
}

pub fn forks_of_trimmed_data_start_at_what_is_retained(e: &EngineBox) -> Result<(), Failure> {
    ok(Create::new("s").run(e), "create")?;
    appends(e, "s", &[b"aaaa", b"bbbb", b"cccc"])?;
    let Some(_) = trim(e, "s", 8)? else { return Ok(()) };
    let mut g = Create::new("g");
    g.fork = Some(("s", 12));
    ok(g.run(e), "fork at the tail of a trimmed source")?;
    read_trimmed(e, "g", 0, 8)?;
    let got = read_all(e, "g", 8, 1 << 20, NOW)?;
    check(got == b"cccc", || {
        format!("inherits what is retained: {:?}", String::from_utf8_lossy(&got))
    })?;
    ok(Append::new("g", b"dd").run(e), "append to the fork")?;
    let got = read_all(e, "g", 8, 1 << 20, NOW)?;
    check(got == b"ccccdd", || format!("{:?}", String::from_utf8_lossy(&got)))?;
    // A fork below the retained start inherits nothing and starts at its position.
    let mut h = Create::new("h");
    h.fork = Some(("s", 4));
    ok(h.run(e), "fork at a trimmed position")?;
    read_trimmed(e, "h", 0, 4)?;
    let meta = ok(head(e, "h", NOW), "head")?;
    check(meta.tail == 4, || format!("tail {}", meta.tail))?;
    // And the source cannot go past what g still reads.
    let t = trim(e, "s", 12)?.unwrap_or_default();
    check(start_of(&t) == 8, || format!("held at g's start: {t}"))?;
    Ok(())
}
